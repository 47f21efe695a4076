"""The Graph client calls the initial sync uses, against the sandbox tenant over real HTTPS: finding the copies of a
meeting by iCalUId (directly and in `$batch`), and the batched PATCH (times, and a series shortened to the
1,080-day cap), decline (as the room) and cancel (as the organizer)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from webapp.graph import Event, EventDraft, NotFound
from webapp.graph.types import Attendee, Location, PatternedRecurrence, RecurrencePattern, RecurrenceRange
from webapp.sync.recurrence_map import rrule_from_graph, shortened_graph_range

ROOM = "board-room-a@roomsync.test"
ORGANIZER = "priya.shah@roomsync.test"


def _slot(days: int, hour: int = 10, minutes: int = 60) -> tuple[datetime, datetime]:
    start = (datetime.now(timezone.utc) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return start, start + timedelta(minutes=minutes)


def _meeting(client, subject: str, start: datetime, end: datetime, recurrence=None) -> Event:
    return client.create_event(ORGANIZER, EventDraft(
        subject=subject, start=start, end=end, attendees=(Attendee(ROOM, "Board room A", "resource"),),
        location=Location("Board room A", ROOM), recurrence=recurrence, transaction_id=f"tx-{subject}"))


def _room_response(client, event_id: str) -> str | None:
    return [a.response for a in client.get_event(ORGANIZER, event_id).room_attendees][0]


def test_find_events_by_ical_uid_finds_the_room_copy_and_the_organizers_copy(make_client):
    client = make_client()
    meeting = _meeting(client, "Planning", *_slot(2))
    _meeting(client, "Other", *_slot(3))
    [room_copy] = client.find_events_by_ical_uid(ROOM, meeting.ical_uid)
    assert isinstance(room_copy, Event) and room_copy.id != meeting.id
    assert room_copy.ical_uid == meeting.ical_uid and room_copy.organizer_email == ORGANIZER
    assert room_copy.subject != "Planning"  # the room's copy is stripped: the organizer's holds the title
    [organizer_copy] = client.find_events_by_ical_uid(ORGANIZER, room_copy.ical_uid)
    assert organizer_copy.id == meeting.id and organizer_copy.subject == "Planning"
    assert organizer_copy.last_modified is not None  # EVENT_SELECT, not the calendarView one
    assert client.find_events_by_ical_uid("roomsync.butler@roomsync.test", meeting.ical_uid) == []
    sent = client.recorder.requests[-1]["url"]
    assert "iCalUId%20eq%20%27" in sent and "+" not in sent.split("?", 1)[1]


def test_a_quote_in_the_ical_uid_is_escaped_not_an_error(make_client):
    client = make_client()
    assert client.find_events_by_ical_uid(ORGANIZER, "it's-not-there") == []
    assert "it%27%27s" in client.recorder.requests[-1]["url"]


def test_a_series_copy_is_found_by_the_masters_ical_uid(make_client):
    client = make_client()
    start, end = _slot(7, 9)
    weekly = PatternedRecurrence(RecurrencePattern("weekly", 1, (start.strftime("%A").lower(),), "monday"),
                                 RecurrenceRange("numbered", start.date(), number_of_occurrences=4))
    series = _meeting(client, "Weekly", start, end, weekly)
    occurrence = next(e for e in client.calendar_view(ROOM, start, start + timedelta(days=30))
                      if e.type == "occurrence")
    room_master = client.get_event(ROOM, occurrence.series_master_id)
    [organizer_master] = client.find_events_by_ical_uid(ORGANIZER, room_master.ical_uid)
    assert organizer_master.id == series.id and organizer_master.type == "seriesMaster"
    assert organizer_master.recurrence.range.number_of_occurrences == 4


def test_batched_find_and_update_move_the_meeting_and_its_room_copy(make_client):
    client = make_client()
    meeting = _meeting(client, "Adjust", *_slot(4, 13, minutes=14))
    new_start, new_end = _slot(4, 13, minutes=15)
    results = client.batch([
        client.find_events_by_ical_uid_request("room", ROOM, meeting.ical_uid),
        client.find_events_by_ical_uid_request("organizer", ORGANIZER, meeting.ical_uid),
        client.update_event_request("move", ORGANIZER, meeting.id, EventDraft(start=new_start, end=new_end),
                                    depends_on=("organizer",)),
    ])
    assert len(client.recorder.requests) == 1 + 1  # the create, then one $batch POST
    room, organizer, move = results
    assert room.ok and isinstance(room.value, tuple) and [e.ical_uid for e in room.value] == [meeting.ical_uid]
    assert [e.id for e in organizer.value] == [meeting.id]
    assert move.status == 200 and isinstance(move.value, Event)
    assert (move.value.start, move.value.end) == (new_start, new_end) and move.value.subject == "Adjust"
    [room_copy] = client.find_events_by_ical_uid(ROOM, meeting.ical_uid)
    assert (room_copy.start, room_copy.end) == (new_start, new_end)


def test_a_batched_decline_as_the_room_frees_it_and_tells_the_organizer(make_client):
    client = make_client()
    told, silent = _meeting(client, "Told", *_slot(5, 9)), _meeting(client, "Silent", *_slot(5, 11))
    [told_copy] = client.find_events_by_ical_uid(ROOM, told.ical_uid)
    [silent_copy] = client.find_events_by_ical_uid(ROOM, silent.ical_uid)
    results = client.batch([
        client.decline_event_request("told", ROOM, told_copy.id, "Spans midnight: not imported"),
        client.decline_event_request("silent", ROOM, silent_copy.id, "No reply", send_response=False),
    ])
    assert [(r.status, r.value, r.error) for r in results] == [(202, None, None), (202, None, None)]
    assert client.find_events_by_ical_uid(ROOM, told.ical_uid) == []
    assert client.find_events_by_ical_uid(ROOM, silent.ical_uid) == []
    assert _room_response(client, told.id) == "declined"
    assert _room_response(client, silent.id) == "accepted"  # no response sent: the organizer is not told


def test_a_batched_cancel_by_the_organizer_removes_both_copies(make_client):
    client = make_client()
    meeting = _meeting(client, "Cancelled", *_slot(6))
    [result] = client.batch([client.cancel_event_request("cancel", ORGANIZER, meeting.id, "Room withdrawn")])
    assert result.ok and result.status == 202
    with pytest.raises(NotFound):
        client.get_event(ORGANIZER, meeting.id)
    assert client.find_events_by_ical_uid(ROOM, meeting.ical_uid) == []
    [refused] = client.batch([client.cancel_event_request("again", ORGANIZER, meeting.id, "Twice")])
    assert isinstance(refused.error, NotFound)


def test_shortening_an_endless_series_to_the_cap_gets_it_accepted(make_client, admin):
    """The initial sync writes the 1,080-day cap back to the organizer's series: a room whose booking window
    reaches the cap declines an endless series and accepts it once it ends there."""
    settings = admin.set_processing(ROOM, bookingWindowInDays=1080, enforceSchedulingHorizon=True)
    assert settings["bookingWindowInDays"] == 1080 and settings["enforceSchedulingHorizon"] is True
    client = make_client()
    start, end = _slot(1, 8, minutes=30)
    endless = PatternedRecurrence(RecurrencePattern("weekly", 1, (start.strftime("%A").lower(),), "monday"),
                                  RecurrenceRange("noEnd", start.date(), recurrence_time_zone="UTC"))
    series = _meeting(client, "Standup", start, end, endless)
    assert _room_response(client, series.id) == "declined"

    horizon = datetime.now(timezone.utc).date() + timedelta(days=1080)
    mapped = rrule_from_graph(series.recurrence, start.replace(tzinfo=None), horizon_date=horizon)
    assert mapped.shortened and mapped.rrule.endswith(f"UNTIL={horizon:%Y%m%d}")
    [result] = client.batch([client.update_event_request(
        "cap", ORGANIZER, series.id, EventDraft(recurrence=shortened_graph_range(series.recurrence, horizon)))])
    assert result.ok and result.value.recurrence.range.type == "endDate"
    assert result.value.recurrence.range.end_date == horizon
    assert _room_response(client, series.id) == "accepted"
    [room_master] = client.find_events_by_ical_uid(ROOM, series.ical_uid)
    again = rrule_from_graph(room_master.recurrence, start.replace(tzinfo=None), horizon_date=horizon)
    assert again.rrule == mapped.rrule and again.shortened is False and again.original_end == horizon


def test_set_processing_is_undone_by_the_restore_after_each_test(make_client, admin):
    settings = admin.set_processing(ROOM, maximumDurationInMinutes=30)
    assert settings["maximumDurationInMinutes"] == 30
    client = make_client()
    assert _room_response(client, _meeting(client, "Long", *_slot(8)).id) == "declined"
    admin.restore()
    assert _room_response(client, _meeting(client, "Long again", *_slot(9)).id) == "accepted"
