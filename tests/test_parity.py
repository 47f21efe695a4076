"""The parity audit (webapp/sync/parity.py): the pure comparison of a room's calendar with its space's bookings
(links, series with exceptions, moved occurrences, unlinked matches, duplicate times, cancelled events, the
stored result and its sentences), then `audit_pair` against the sandbox tenant over HTTPS: real room copies
made by the room's auto-accept, matching bookings, then one difference of each kind.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from webapp.booking.operations import input_from_booking, update_booking
from webapp.extensions import db
from webapp.graph import (Attendee, Event, EventDraft, Location, PatternedRecurrence, RecurrencePattern,
                          RecurrenceRange, graph_client)
from webapp.sync import parity
from webapp.sync.models import EventLink, Pair
from webapp.sync.parity import Difference, ParityResult, RoomSlot, SpaceSlot, compare
from webapp.timeutil import localize, now_utc, to_local

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def room(event_id, start, minutes=60, *, master=None, original=None, organizer="priya.shah@roomsync.test",
         cancelled=False, ical=None) -> RoomSlot:
    return RoomSlot(event_id, master, ical, start, start + timedelta(minutes=minutes), organizer, cancelled,
                    original)


def space(uid, start, minutes=60, *, original=None, holder="priya.shah@roomsync.test", kind="regular") -> SpaceSlot:
    return SpaceSlot(uid, original or start, start, start + timedelta(minutes=minutes), holder, kind)


def weekly(first: datetime, count=3) -> list[datetime]:
    return [first + timedelta(weeks=n) for n in range(count)]


# ---------------------------------------------------------------------------------------------- compare


def test_both_sides_agree_with_singles_series_internal_blocks_and_unavailable_time():
    series = weekly(at(3, 14))
    rooms = [room("single", at(3, 10)), room("butler-block", at(4, 9), organizer="roomsync.butler@roomsync.test"),
             room("closed", at(5, 7), 120)]
    rooms += [room(f"occ-{n}", s, master="master", original=s) for n, s in enumerate(series)]
    spaces = [space("b-single", at(3, 10)), space("b-block", at(4, 9), holder=None, kind="internal"),
              space("b-closed", at(5, 7), 120, holder=None, kind="unavailable")]
    spaces += [space("b-series", s) for s in series]
    links = {"single": "b-single", "master": "b-series", "butler-block": "b-block"}

    result = compare(rooms, spaces, links)

    assert result.agrees and result.difference_count == 0
    assert (result.room_count, result.space_count, result.matched) == (6, 6, 6)
    assert result.totals == {"only_in_outlook": 0, "only_in_roomsync": 0, "time_differs": 0}
    assert result.summary() == "Both sides agree: 6 bookings from today on."
    assert compare(rooms[:1], spaces[:1], links).summary() == "Both sides agree: 1 booking from today on."
    assert compare([], [], {}).summary() == "Both sides agree: 0 bookings from today on."


def test_an_event_missing_on_either_side_is_reported_with_who_and_when():
    rooms = [room("a", at(3, 10)), room("outlook-only", at(3, 12), organizer="tom.baker@roomsync.test")]
    spaces = [space("b-a", at(3, 10)), space("b-roomsync-only", at(3, 15), 30, holder="ivy.chen@roomsync.test")]

    result = compare(rooms, spaces, {"a": "b-a"}, time_zone="Europe/London")

    assert not result.agrees and result.matched == 1
    assert result.only_in_outlook == [Difference("only_in_outlook", outlook_start=at(3, 12), outlook_end=at(3, 13),
                                                 event_id="outlook-only", organizer_email="tom.baker@roomsync.test")]
    assert result.only_in_roomsync == [Difference("only_in_roomsync", roomsync_start=at(3, 15),
                                                  roomsync_end=at(3, 15, 30), booking_uid="b-roomsync-only",
                                                  holder_email="ivy.chen@roomsync.test", booking_kind="regular")]
    assert result.time_differs == []
    assert result.summary() == "2 differences from today on: 1 only in Outlook, 1 only in Roomsync."
    assert result.only_in_outlook[0].describe() == (
        "Tue 3 Mar 2026 12:00–13:00: in Outlook (organizer tom.baker@roomsync.test), not in Roomsync.")
    assert result.only_in_roomsync[0].describe() == (
        "Tue 3 Mar 2026 15:00–15:30: in Roomsync (holder ivy.chen@roomsync.test), not in Outlook.")


def test_an_occurrence_moved_on_one_side_is_one_time_difference_with_both_times():
    series = weekly(at(3, 14))
    moved = series[1] + timedelta(hours=2)  # moved in Outlook; Roomsync still has it at 14:00
    rooms = [room("occ-0", series[0], master="m", original=series[0]),
             room("occ-1", moved, master="m", original=series[1]),
             room("occ-2", series[2], master="m", original=series[2])]
    spaces = [space("b", s) for s in series]

    result = compare(rooms, spaces, {"m": "b"}, time_zone="Europe/London")

    assert result.matched == 2 and result.totals["time_differs"] == 1 and result.difference_count == 1
    (difference,) = result.time_differs
    assert (difference.outlook_start, difference.outlook_end) == (moved, moved + timedelta(hours=1))
    assert (difference.roomsync_start, difference.roomsync_end) == (series[1], series[1] + timedelta(hours=1))
    assert (difference.event_id, difference.booking_uid) == ("occ-1", "b")
    assert difference.describe() == ("Outlook has Tue 10 Mar 2026 16:00–17:00, Roomsync Tue 10 Mar 2026 "
                                     "14:00–15:00 (organizer priya.shah@roomsync.test).")
    assert result.summary() == "1 difference from today on: 1 at different times."

    # Occurrence 1 gone from the room, occurrence 2 moved: the moved one is paired by its original start
    # (not with occurrence 1, the earliest left over), and occurrence 1 is the one the room lacks.
    later = series[2] + timedelta(hours=1)
    rooms = [room("occ-0", series[0], master="m", original=series[0]),
             room("occ-2", later, master="m", original=series[2])]
    result = compare(rooms, spaces, {"m": "b"})
    assert [(d.roomsync_start, d.outlook_start) for d in result.time_differs] == [(series[2], later)]
    assert [d.roomsync_start for d in result.only_in_roomsync] == [series[1]]


def test_a_linked_event_moved_onto_another_bookings_time_is_reported_as_moved_not_as_that_booking():
    # "a" was moved in Outlook to 12:00, where Roomsync has an unrelated booking the room does not hold.
    rooms = [room("a", at(3, 12))]
    spaces = [space("b-a", at(3, 10)), space("b-other", at(3, 12))]
    result = compare(rooms, spaces, {"a": "b-a"})
    assert [d.booking_uid for d in result.time_differs] == ["b-a"]
    assert [d.booking_uid for d in result.only_in_roomsync] == ["b-other"]
    assert result.matched == 0 and result.difference_count == 2


def test_series_with_exceptions_agree_and_a_cancelled_occurrence_must_be_gone_from_both():
    series = weekly(at(3, 14), 4)
    moved = series[1] + timedelta(hours=1)
    rooms = [room("occ-0", series[0], master="m", original=series[0]),
             room("exc-1", moved, master="m", original=series[1]),  # the exception, same on both sides
             room("occ-3", series[3], master="m", original=series[3])]  # occurrence 2 cancelled in Outlook
    spaces = [space("b", series[0]), space("b", moved, original=series[1]), space("b", series[3])]
    assert compare(rooms, spaces, {"m": "b"}).agrees

    # Roomsync still has occurrence 2: the room does not.
    result = compare(rooms, spaces + [space("b", series[2])], {"m": "b"})
    assert [(d.kind, d.roomsync_start) for d in result.differences()] == [("only_in_roomsync", series[2])]


def test_equal_times_match_without_a_link_and_an_icaluid_link_counts_as_a_link():
    # A restored booking: created in Outlook on its holder's calendar, the room copy's id not stored yet.
    assert compare([room("copy", at(3, 10))], [space("restored", at(3, 10))], {}).agrees
    # Linked by iCalUId only (the organizer's event id is known, the room copy's is not): a moved copy is a
    # time difference of that booking, not two unrelated differences.
    result = compare([room("copy", at(3, 11), ical="ical-1")], [space("restored", at(3, 10))], {},
                     ical_links={"ical-1": "restored"})
    assert [d.kind for d in result.differences()] == ["time_differs"]
    # Without any link, other times are two differences.
    unlinked = compare([room("copy", at(3, 11), ical="ical-1")], [space("restored", at(3, 10))], {})
    assert sorted(d.kind for d in unlinked.differences()) == ["only_in_outlook", "only_in_roomsync"]


def test_two_bookings_at_one_time_with_one_room_event_give_one_difference():
    spaces = [space("b-1", at(3, 10)), space("b-2", at(3, 10))]
    unlinked = compare([room("e", at(3, 10))], spaces, {})
    assert unlinked.matched == 1 and unlinked.difference_count == 1
    assert [d.kind for d in unlinked.differences()] == ["only_in_roomsync"]
    # Linked to the second: the first is the one the room lacks.
    linked = compare([room("e", at(3, 10))], spaces, {"e": "b-2"})
    assert [d.booking_uid for d in linked.only_in_roomsync] == ["b-1"] and linked.difference_count == 1
    # And the other way round: two room events, one booking.
    doubled = compare([room("e-1", at(3, 10)), room("e-2", at(3, 10))], [space("b-1", at(3, 10))], {})
    assert doubled.totals == {"only_in_outlook": 1, "only_in_roomsync": 0, "time_differs": 0}


def test_cancelled_room_events_and_series_masters_are_ignored():
    cancelled = room("gone", at(3, 10), cancelled=True)
    result = compare([cancelled], [], {})
    assert result.agrees and result.room_count == 0

    def event(event_id, kind, *, is_cancelled=False):
        return Event(id=event_id, ical_uid=f"ical-{event_id}", change_key="ck", subject="Room copy",
                     body_preview="", start=at(3, 10), end=at(3, 11), organizer_email="Priya.Shah@RoomSync.test",
                     is_cancelled=is_cancelled, type=kind, series_master_id="m" if kind != "singleInstance" else None,
                     original_start=at(3, 10) if kind in ("occurrence", "exception") else None)

    slots = parity.slots_from_events([event("s", "singleInstance"), event("m", "seriesMaster"), event("o", "occurrence"),
                               event("x", "exception", is_cancelled=True)])
    assert [s.event_id for s in slots] == ["s", "o"]
    assert slots[1] == RoomSlot("o", "m", "ical-o", at(3, 10), at(3, 11), "priya.shah@roomsync.test", False,
                                at(3, 10))


def test_stored_lists_are_capped_while_the_totals_count_everything():
    rooms = [room(f"e{n}", at(3, 8) + timedelta(minutes=15 * n), 15) for n in range(60)]
    result = compare(rooms, [], {}, limit=parity.MAX_LISTED)
    assert len(result.only_in_outlook) == parity.MAX_LISTED == 50 and result.totals["only_in_outlook"] == 60
    assert result.truncated and result.summary() == "60 differences from today on: 60 only in Outlook."
    assert result.only_in_outlook[0].event_id == "e0"  # the earliest first
    back = ParityResult.from_json(json.loads(json.dumps(result.to_json())))
    assert back.totals["only_in_outlook"] == 60 and len(back.only_in_outlook) == 50 and back.truncated


def test_json_round_trip_keeps_everything_and_descriptions_use_the_venue_zone():
    checked = at(2, 9)
    result = compare([room("a", at(3, 10)), room("b", at(1, 9, month=6)), room("m-1", at(4, 11), master="m")],
                     [space("u-a", at(3, 10)), space("u-m", at(4, 10)),
                      space("u-c", at(5, 8), holder=None, kind="internal")],
                     {"a": "u-a", "m": "u-m"}, time_zone="Europe/London", window_start=at(2, 0),
                     window_end=at(2, 0) + timedelta(days=1080), checked_at=checked)
    data = result.to_json()
    assert data["agrees"] is False and data["summary"] == result.summary()
    assert data["totals"] == {"only_in_outlook": 1, "only_in_roomsync": 1, "time_differs": 1}
    assert data["window_start"] == "2026-03-02T00:00:00Z" and data["checked_at"] == "2026-03-02T09:00:00Z"

    back = ParityResult.from_json(json.loads(json.dumps(data)))
    assert back == result
    assert back.summary() == result.summary() == (
        "3 differences from today on: 1 only in Outlook, 1 only in Roomsync, 1 at different times.")
    assert [d.describe() for d in back.differences()] == [
        "Outlook has Wed 4 Mar 2026 11:00–12:00, Roomsync Wed 4 Mar 2026 10:00–11:00 "
        "(organizer priya.shah@roomsync.test).",
        "Thu 5 Mar 2026 08:00–09:00: in Roomsync (internal block), not in Outlook.",
        "Mon 1 Jun 2026 10:00–11:00: in Outlook (organizer priya.shah@roomsync.test), not in Roomsync.",  # BST
    ]
    agreeing = ParityResult.from_json(compare([], [], {}).to_json())
    assert agreeing.agrees and agreeing.summary() == "Both sides agree: 0 bookings from today on."


@pytest.mark.parametrize("data", [[], {"only_in_outlook": [{"kind": "nonsense"}]}, {"time_zone": "Mars/Base"},
                                  {"only_in_roomsync": [{"kind": "only_in_roomsync", "roomsync_start": "tomorrow"}]}])
def test_a_malformed_stored_result_is_refused_with_a_value_error(data):
    with pytest.raises(ValueError):
        ParityResult.from_json(data)


def test_an_unknown_pair_is_a_lookup_error(app):
    with pytest.raises(LookupError):
        parity.audit_pair(999_999)


# ---------------------------------------------------------------------------------------------- audit_pair


PRIYA = "priya.shah@roomsync.test"
ROOM = "focus-room-1@roomsync.test"
ROOM_NAME = "Focus room 1"


def draft(subject, start, end, **fields) -> EventDraft:
    return EventDraft(subject=subject, start=start, end=end, attendees=(Attendee(ROOM, ROOM_NAME, "resource"),),
                      location=Location(ROOM_NAME, ROOM, "conferenceRoom"), **fields)


def local(day, hour, minute=0) -> datetime:
    return localize(datetime.combine(day, datetime.min.time()).replace(hour=hour, minute=minute), LONDON)


def room_copies(client, start, end) -> list[Event]:
    return client.calendar_view(ROOM, start, end, page_size=parity.PAGE_SIZE)


def test_audit_pair_against_the_sandbox_agrees_then_reports_a_difference_of_each_kind(
        connected, make_venue, make_space, make_user, make_booking):
    client = graph_client()
    venue = make_venue()
    focus = make_space(venue, ROOM_NAME)
    combined = make_space(venue, "Focus 1+2", depends_on=[focus])  # shares the room: not this room's calendar
    priya = make_user(PRIYA, first_name="Priya", last_name="Shah")
    today = to_local(now_utc(), LONDON).date()
    day1, day2 = today + timedelta(days=1), today + timedelta(days=2)
    window = (local(today, 0), local(today, 0) + timedelta(days=40))

    # Outlook: a single meeting, a weekly series with one moved occurrence, and a meeting whose booking is a
    # restore (no link to the room copy yet). The room accepts each and keeps its own copy.
    single = client.create_event(PRIYA, draft("Planning", local(day1, 10), local(day1, 11)))
    restored = client.create_event(PRIYA, draft("Restored", local(day1, 13), local(day1, 14)))
    recurrence = PatternedRecurrence(
        RecurrencePattern("weekly", 1, days_of_week=(day2.strftime("%A").lower(),), first_day_of_week="monday"),
        RecurrenceRange("numbered", day2, number_of_occurrences=3, recurrence_time_zone="Europe/London"))
    series = client.create_event(PRIYA, draft("Weekly", local(day2, 14), local(day2, 15), recurrence=recurrence,
                                              time_zone="Europe/London"))
    organizer_occurrences = sorted((e for e in client.calendar_view(PRIYA, *window)
                                    if e.series_master_id == series.id), key=lambda e: e.start)
    assert len(organizer_occurrences) == 3
    second = organizer_occurrences[1]
    client.update_event(PRIYA, second.id, EventDraft(start=second.start + timedelta(hours=2),
                                                     end=second.end + timedelta(hours=2)))

    copies = room_copies(client, *window)
    assert len(copies) == 5, [(e.type, e.start) for e in copies]  # every instance accepted by the room
    single_copy = next(e for e in copies if e.ical_uid == single.ical_uid)
    master_copy_id = next(e.series_master_id for e in copies if e.series_master_id)
    assert single_copy.id != single.id  # the room's own copy, with its own id

    # Roomsync: the same bookings, linked as the initial sync links them (the restore is not linked).
    planning = make_booking(venue, focus, local(day1, 10), holder=priya, title="Planning")
    make_booking(venue, focus, local(day1, 13), holder=priya, title="Restored")
    weekly_booking = make_booking(venue, focus, local(day2, 14), holder=priya, title="Weekly",
                                  rrule="FREQ=WEEKLY;COUNT=3")
    moved_original = local(day2 + timedelta(weeks=1), 14)
    data = input_from_booking(weekly_booking, moved_original)
    data.start, data.end = data.start + timedelta(hours=2), data.end + timedelta(hours=2)
    update_booking(weekly_booking, data, actor=priya, scope="this", occurrence_start=moved_original)
    make_booking(venue, combined, local(day1, 8), holder=priya, title="On the shared space")
    make_booking(venue, focus, local(today - timedelta(days=1), 10), holder=priya, title="Yesterday",
                 origin="microsoft", bypass_rules=True)
    db.session.add_all([
        EventLink(booking_uid=planning.uid, room_email=ROOM, room_event_id=single_copy.id, organizer_email=PRIYA,
                  organizer_event_id=single.id, ical_uid=single.ical_uid),
        EventLink(booking_uid=weekly_booking.uid, room_email=ROOM, room_event_id=master_copy_id,
                  organizer_email=PRIYA, organizer_event_id=series.id, ical_uid=series.ical_uid),
    ])
    pair = Pair(venue_id=venue.id, space_id=focus.id, room_email=ROOM, room_id="focus-room-1", state="live")
    db.session.add(pair)
    db.session.commit()

    calls = client.calls
    result = parity.audit_pair(pair.id)
    assert client.calls - calls == 1  # the whole 1,080-day window in one calendarView page
    assert result.agrees, [d.describe() for d in result.differences()]
    assert (result.room_count, result.space_count, result.matched) == (5, 5, 5)
    assert result.summary() == "Both sides agree: 5 bookings from today on."
    assert result.window_start == local(today, 0) and result.window_end == local(today, 0) + timedelta(days=1080)
    assert result.time_zone == "Europe/London"

    # Now one difference of each kind: a meeting only in Outlook, a booking only in Roomsync, and the third
    # occurrence of the series moved in Outlook only.
    extra = client.create_event("tom.baker@roomsync.test", draft("Walk-in", local(day1, 16), local(day1, 16, 30)))
    from webapp.sync.inbound import inbound_writes

    with inbound_writes():  # a booking the live sync never pushed (else it would be in Outlook at once)
        lonely = make_booking(venue, focus, local(day1, 18), holder=priya, title="Roomsync only")
    third = organizer_occurrences[2]
    client.update_event(PRIYA, third.id, EventDraft(start=third.start + timedelta(hours=1),
                                                    end=third.end + timedelta(hours=1)))

    result = parity.audit_pair(pair.id)
    assert result.totals == {"only_in_outlook": 1, "only_in_roomsync": 1, "time_differs": 1}
    assert result.matched == 5 - 1
    (outlook_only,) = result.only_in_outlook
    assert (outlook_only.outlook_start, outlook_only.outlook_end) == (local(day1, 16), local(day1, 16, 30))
    assert outlook_only.organizer_email == "tom.baker@roomsync.test"
    assert outlook_only.event_id == next(e.id for e in room_copies(client, *window) if e.ical_uid == extra.ical_uid)
    (roomsync_only,) = result.only_in_roomsync
    assert (roomsync_only.booking_uid, roomsync_only.roomsync_start) == (lonely.uid, local(day1, 18))
    (moved,) = result.time_differs
    assert moved.booking_uid == weekly_booking.uid
    assert (moved.outlook_start, moved.roomsync_start) == (third.start + timedelta(hours=1), third.start)
    assert result.summary() == (
        "3 differences from today on: 1 only in Outlook, 1 only in Roomsync, 1 at different times.")

    # Stored and read back as the initial sync stores it.
    stored = ParityResult.from_json(json.loads(json.dumps(result.to_json())))
    assert stored == result and not stored.agrees

    # A narrower window: tomorrow only (the series and the later differences fall outside).
    narrow = parity.audit_pair(pair.id, start=local(day1, 0), end=local(day2, 0))
    assert narrow.totals == {"only_in_outlook": 1, "only_in_roomsync": 1, "time_differs": 0}
    assert narrow.matched == 2
    assert narrow.scope == f"from {day1.day} {day1:%b %Y} to {day1.day} {day1:%b %Y}"
    assert parity.audit_pair(pair.id, start=local(today, 0)).scope == "from today on"
    later = parity.audit_pair(pair.id, start=local(day2, 0))
    assert later.scope == f"from {day2.day} {day2:%b %Y} on" and later.totals["only_in_outlook"] == 0
