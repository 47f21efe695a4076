"""Exchange room-mailbox behaviour (graph-facts §6, §5.4): auto-accept when free, decline when busy, whole
series declined on one conflict or past the booking window, the room's stripped copy, propagation of
organizer updates and cancellations, the room's own decline, changes for both mailboxes, and the
calendarView cost of a busy room."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from webapp.sandbox import calendar

NOW = "2026-03-02T09:00:00Z"


@pytest.fixture
def client(sandbox_state, sandbox_app, request):
    """A frozen clock first, then the authenticated `graph` client (its token is issued at frozen time)."""
    with freeze_time(NOW):
        store = sandbox_state.store
        for user in (
            {"id": "u-alice", "displayName": "Alice Organizer", "mail": "alice@cal.test",
             "userPrincipalName": "alice@cal.test", "mailboxEnabled": True, "isRoom": False},
            {"id": "u-carol", "displayName": "Carol Other", "mail": "carol@cal.test",
             "userPrincipalName": "carol@cal.test", "mailboxEnabled": True, "isRoom": False},
            {"id": "u-room1", "displayName": "Room One", "mail": "room1@cal.test",
             "userPrincipalName": "room1@cal.test", "mailboxEnabled": True, "isRoom": True},
            {"id": "u-room2", "displayName": "Room Two", "mail": "room2@cal.test",
             "userPrincipalName": "room2@cal.test", "mailboxEnabled": True, "isRoom": True,
             "calendarProcessing": {"bookingWindowInDays": 30, "maximumDurationInMinutes": 120}},
        ):
            store.put("user", user["id"], user)
        yield request.getfixturevalue("graph")


def meeting(subject="Board", start="2026-03-10T09:00:00", end="2026-03-10T10:00:00", rooms=("room1@cal.test",),
            **extra):
    attendees = [{"emailAddress": {"address": a, "name": a}, "type": "resource"} for a in rooms]
    attendees.append({"emailAddress": {"address": "bob@elsewhere.test", "name": "Bob"}, "type": "required"})
    return {"subject": subject, "body": {"contentType": "text", "content": "Secret agenda"},
            "sensitivity": "private", "start": {"dateTime": start, "timeZone": "UTC"},
            "end": {"dateTime": end, "timeZone": "UTC"}, "attendees": attendees,
            "location": {"displayName": "Room One", "locationEmailAddress": "room1@cal.test"}, **extra}


def book(client, organizer="u-alice", **kwargs):
    response = client.post(f"/v1.0/users/{organizer}/events", json=meeting(**kwargs))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def status_of(client, event, address="room1@cal.test", organizer="u-alice"):
    current = client.get(f"/v1.0/users/{organizer}/events/{event['id']}").get_json()
    return next(a["status"]["response"] for a in current["attendees"] if a["emailAddress"]["address"] == address)


def room_events(client, room="u-room1", start="2026-03-01T00:00:00Z", end="2026-04-01T00:00:00Z"):
    url = f"/v1.0/users/{room}/calendarView?startDateTime={start}&endDateTime={end}&$top=100"
    return client.get(url).get_json()["value"]


def test_a_free_room_accepts_and_gets_a_stripped_copy(client, sandbox_state):
    published = []
    sandbox_state.changes.subscribe(published.append)
    created = book(client)
    assert created["attendees"][0]["status"]["response"] == "none"  # the reply comes after the create
    assert status_of(client, created) == "accepted"
    organizer_copy = client.get(f"/v1.0/users/u-alice/events/{created['id']}").get_json()
    assert organizer_copy["changeKey"] != created["changeKey"]
    assert organizer_copy["location"]["locationType"] == "conferenceRoom"
    [copy] = room_events(client)
    assert copy["iCalUId"] == created["iCalUId"] and copy["id"] != created["id"]
    assert copy["subject"] == "Alice Organizer"
    assert copy["body"]["content"] == "" and copy["bodyPreview"] == ""
    assert copy["sensitivity"] == "normal"
    assert copy["isOrganizer"] is False and copy["responseStatus"]["response"] == "accepted"
    assert copy["organizer"]["emailAddress"]["address"] == "alice@cal.test"
    assert [(c.mailbox, c.change_type) for c in published] == [
        ("u-alice", "created"), ("u-room1", "created"), ("u-alice", "updated")]
    assert published[1].resource == f"Users/u-room1/Events/{copy['id']}"


def test_a_busy_room_declines_and_keeps_no_copy(client):
    first = book(client)
    second = book(client, subject="Clash", start="2026-03-10T09:30:00", end="2026-03-10T11:00:00")
    assert status_of(client, first) == "accepted"
    assert status_of(client, second) == "declined"
    assert [e["iCalUId"] for e in room_events(client)] == [first["iCalUId"]]
    back_to_back = book(client, subject="After", start="2026-03-10T10:00:00", end="2026-03-10T11:00:00")
    assert status_of(client, back_to_back) == "accepted"  # touching is not overlapping


def test_one_conflicting_occurrence_declines_the_whole_series(client):
    book(client, subject="Blocker", start="2026-03-17T09:30:00", end="2026-03-17T10:30:00")
    series = book(client, subject="Weekly", recurrence={
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
        "range": {"type": "numbered", "startDate": "2026-03-10", "numberOfOccurrences": 4}})
    assert status_of(client, series) == "declined"
    assert {e["subject"] for e in room_events(client)} == {"Alice Organizer"}
    assert len(room_events(client)) == 1


def test_a_free_series_is_accepted_with_every_occurrence_on_the_room(client):
    series = book(client, subject="Weekly", recurrence={
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
        "range": {"type": "numbered", "startDate": "2026-03-10", "numberOfOccurrences": 4}})
    assert status_of(client, series) == "accepted"
    copies = room_events(client)
    assert [c["start"]["dateTime"][:10] for c in copies] == ["2026-03-10", "2026-03-17", "2026-03-24", "2026-03-31"]
    assert {c["type"] for c in copies} == {"occurrence"}


@pytest.mark.parametrize("kwargs", [
    {"start": "2026-04-20T09:00:00", "end": "2026-04-20T10:00:00"},  # past the 30-day window
    {"start": "2026-03-10T09:00:00", "end": "2026-03-10T12:00:00"},  # longer than 120 minutes
    {"recurrence": {"pattern": {"type": "daily", "interval": 1},  # a series reaching past the window
                    "range": {"type": "noEnd", "startDate": "2026-03-10"}}},
])
def test_room_policies_decline(client, kwargs):
    event = book(client, rooms=("room2@cal.test",), **kwargs)
    assert status_of(client, event, "room2@cal.test") == "declined"
    assert room_events(client, "u-room2", end="2026-06-01T00:00:00Z") == []


def test_default_booking_window_is_180_days(client):
    inside = book(client, start="2026-08-20T09:00:00", end="2026-08-20T10:00:00")
    outside = book(client, start="2026-09-20T09:00:00", end="2026-09-20T10:00:00")
    assert status_of(client, inside) == "accepted" and status_of(client, outside) == "declined"


def test_organizer_updates_move_the_room_copy_or_release_it(client, sandbox_state):
    event = book(client)
    blocker = book(client, subject="Blocker", start="2026-03-11T09:00:00", end="2026-03-11T10:00:00")
    url = f"/v1.0/users/u-alice/events/{event['id']}"
    client.patch(url, json={"start": {"dateTime": "2026-03-12T14:00:00", "timeZone": "UTC"},
                            "end": {"dateTime": "2026-03-12T15:00:00", "timeZone": "UTC"}})
    copies = {c["iCalUId"]: c for c in room_events(client)}
    assert copies[event["iCalUId"]]["start"]["dateTime"] == "2026-03-12T14:00:00.0000000"
    assert status_of(client, event) == "accepted"
    published = []
    sandbox_state.changes.subscribe(published.append)
    client.patch(url, json={"start": {"dateTime": "2026-03-11T09:30:00", "timeZone": "UTC"},
                            "end": {"dateTime": "2026-03-11T10:30:00", "timeZone": "UTC"}})
    assert status_of(client, event) == "declined"
    assert [c["iCalUId"] for c in room_events(client)] == [blocker["iCalUId"]]
    assert ("u-room1", "deleted") in [(c.mailbox, c.change_type) for c in published]
    client.patch(url, json={"start": {"dateTime": "2026-03-13T09:00:00", "timeZone": "UTC"},
                            "end": {"dateTime": "2026-03-13T10:00:00", "timeZone": "UTC"}})
    assert status_of(client, event) == "accepted"  # an update is a new request: processed again
    client.patch(url, json={"attendees": [{"emailAddress": {"address": "bob@elsewhere.test"}, "type": "required"}]})
    assert [c["iCalUId"] for c in room_events(client)] == [blocker["iCalUId"]]


def test_organizer_cancel_and_delete_remove_the_room_copy(client, sandbox_state):
    cancelled = book(client)
    deleted = book(client, start="2026-03-12T09:00:00", end="2026-03-12T10:00:00")
    published = []
    sandbox_state.changes.subscribe(published.append)
    assert client.post(f"/v1.0/users/u-alice/events/{cancelled['id']}/cancel", json={"comment": "Off"}).status_code == 202
    assert [(c.mailbox, c.change_type) for c in published] == [
        ("u-alice", "deleted"), ("u-room1", "updated"), ("u-room1", "deleted")]
    assert client.delete(f"/v1.0/users/u-alice/events/{deleted['id']}").status_code == 204
    assert room_events(client) == []


def test_the_room_declining_removes_its_copy_and_tells_the_organizer(client, sandbox_state):
    event = book(client)
    [copy] = room_events(client)
    published = []
    sandbox_state.changes.subscribe(published.append)
    response = client.post(f"/v1.0/users/u-room1/events/{copy['id']}/decline",
                           json={"comment": "Booked in Roomsync", "sendResponse": True})
    assert response.status_code == 202 and response.get_data() == b""
    assert room_events(client) == []
    assert status_of(client, event) == "declined"
    assert {(c.mailbox, c.change_type) for c in published} == {("u-room1", "deleted"), ("u-alice", "updated")}
    assert client.post(f"/v1.0/users/u-room1/events/{copy['id']}/cancel").status_code == 404


def test_a_room_copy_cannot_be_cancelled_by_the_room(client):
    book(client)
    [copy] = room_events(client)
    response = client.post(f"/v1.0/users/u-room1/events/{copy['id']}/cancel", json={})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "ErrorInvalidRequest"


def test_calendar_view_of_a_room_with_5000_events_is_fast(client, sandbox_state):
    state = sandbox_state
    room = state.store.get("user", "u-room1")
    start = datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    with freeze_time(NOW), client.application.app_context():
        for n in range(5000):
            at = start + timedelta(days=n // 8, hours=n % 8)
            payload = {"subject": f"E{n}", "start": {"dateTime": at.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                       "end": {"dateTime": (at + timedelta(minutes=50)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}}
            if n % 50 == 0:
                payload["recurrence"] = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [
                    at.strftime("%A").lower()]}, "range": {"type": "noEnd", "startDate": at.strftime("%Y-%m-%d")}}
            calendar.create_event(state, room, payload)
    url = ("/v1.0/users/u-room1/calendarView?startDateTime=2026-06-01T00:00:00Z&endDateTime=2026-07-01T00:00:00Z"
           "&$top=50")
    client.get(url)  # warm-up
    began = time.perf_counter()
    body = client.get(url).get_json()
    elapsed = time.perf_counter() - began
    assert len(body["value"]) == 50 and "@odata.nextLink" in body
    assert elapsed < 0.2, f"calendarView took {elapsed * 1000:.0f} ms"
