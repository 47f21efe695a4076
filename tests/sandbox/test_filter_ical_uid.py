"""`GET /users/{id}/events?$filter=iCalUId eq '…'` (graph-facts §3.1: the organizer's and the rooms' copies of a
meeting share their iCalUId; a series master's identifies its series), also inside `$batch`; any other
`$filter` refused with Graph's 400 error shape; and the admin API's `PUT /_sandbox/rooms/<email>/processing`
(the room's calendarProcessing, as Set-CalendarProcessing would set it)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from freezegun import freeze_time

NOW = "2026-03-02T09:00:00Z"
ROOM = "room1@cal.test"


@pytest.fixture
def client(sandbox_state, request):
    with freeze_time(NOW):
        for user in (
            {"id": "u-alice", "displayName": "Alice Organizer", "mail": "alice@cal.test",
             "userPrincipalName": "alice@cal.test", "mailboxEnabled": True, "isRoom": False},
            {"id": "u-carol", "displayName": "Carol Other", "mail": "carol@cal.test",
             "userPrincipalName": "carol@cal.test", "mailboxEnabled": True, "isRoom": False},
            {"id": "u-room1", "displayName": "Room One", "mail": ROOM, "userPrincipalName": ROOM,
             "mailboxEnabled": True, "isRoom": True},
        ):
            sandbox_state.store.put("user", user["id"], user)
        yield request.getfixturevalue("graph")


def book(client, subject="Board", start="2026-03-10T09:00:00", end="2026-03-10T10:00:00", organizer="u-alice",
         **extra):
    body = {"subject": subject, "start": {"dateTime": start, "timeZone": "UTC"},
            "end": {"dateTime": end, "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": ROOM, "name": "Room One"}, "type": "resource"}], **extra}
    response = client.post(f"/v1.0/users/{organizer}/events", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def by_ical_uid(client, mailbox, ical_uid, extra=""):
    literal = ical_uid.replace("'", "''")
    return client.get(f"/v1.0/users/{mailbox}/events?$filter={quote(f'iCalUId eq {chr(39)}{literal}{chr(39)}')}{extra}")


def room_status(client, event):
    current = client.get(f"/v1.0/users/u-alice/events/{event['id']}").get_json()
    return next(a["status"]["response"] for a in current["attendees"] if a["emailAddress"]["address"] == ROOM)


# ---------------------------------------------------------------- the filter

def test_the_room_copy_and_the_organizer_copy_are_found_by_their_shared_ical_uid(client):
    meeting = book(client)
    book(client, subject="Other", start="2026-03-11T09:00:00", end="2026-03-11T10:00:00")
    [room_copy] = by_ical_uid(client, ROOM, meeting["iCalUId"]).get_json()["value"]
    assert room_copy["iCalUId"] == meeting["iCalUId"] and room_copy["id"] != meeting["id"]
    assert room_copy["subject"] == "Alice Organizer" and room_copy["isOrganizer"] is False
    [organizer_copy] = by_ical_uid(client, "alice@cal.test", meeting["iCalUId"]).get_json()["value"]
    assert organizer_copy["id"] == meeting["id"] and organizer_copy["subject"] == "Board"
    assert by_ical_uid(client, "u-carol", meeting["iCalUId"]).get_json()["value"] == []
    response = by_ical_uid(client, "u-alice", "040000008200E00074C5B7101A82E008-not-there")
    assert response.status_code == 200 and response.get_json()["value"] == []


def test_a_series_is_found_by_its_masters_ical_uid_and_an_occurrences_is_not_listed(client):
    series = book(client, subject="Weekly", recurrence={
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
        "range": {"type": "numbered", "startDate": "2026-03-10", "numberOfOccurrences": 4}})
    assert room_status(client, series) == "accepted"
    [room_master] = by_ical_uid(client, "u-room1", series["iCalUId"]).get_json()["value"]
    assert room_master["type"] == "seriesMaster" and room_master["recurrence"]["range"]["numberOfOccurrences"] == 4
    occurrences = client.get("/v1.0/users/u-room1/calendarView?startDateTime=2026-03-01T00:00:00Z"
                             "&endDateTime=2026-04-01T00:00:00Z").get_json()["value"]
    assert len(occurrences) == 4 and occurrences[0]["iCalUId"] != series["iCalUId"]
    assert {o["seriesMasterId"] for o in occurrences} == {room_master["id"]}
    # GET /events lists single instances and series masters only: an occurrence's own iCalUId finds nothing.
    assert by_ical_uid(client, "u-room1", occurrences[0]["iCalUId"]).get_json()["value"] == []


def test_quotes_in_the_literal_are_doubled_and_select_and_paging_still_apply(client, sandbox_state):
    first, second = book(client), book(client, subject="Two", start="2026-03-12T09:00:00", end="2026-03-12T10:00:00")
    for event, uid in ((first, "uid-o'brien"), (second, "UID-O'BRIEN")):
        doc = sandbox_state.store.get("event", event["id"])
        doc["iCalUId"] = uid
        sandbox_state.store.put("event", doc["id"], doc, owner=doc["_mailbox"])
    page = by_ical_uid(client, "u-alice", "uid-O'Brien", "&$select=subject,iCalUId&$top=1").get_json()
    assert [(e["subject"], e["iCalUId"]) for e in page["value"]] == [("Board", "uid-o'brien")]
    assert set(page["value"][0]) == {"@odata.etag", "id", "subject", "iCalUId"}
    assert "%24filter=" in page["@odata.nextLink"] or "$filter=" in page["@odata.nextLink"]
    rest = client.get("/v1.0" + page["@odata.nextLink"].split("/v1.0", 1)[1]).get_json()
    assert [e["subject"] for e in rest["value"]] == ["Two"] and "@odata.nextLink" not in rest


@pytest.mark.parametrize("expression", [
    "subject eq 'Board'",
    "iCalUId eq 'a' or iCalUId eq 'b'",
    "iCalUId ne 'a'",
    "startswith(iCalUId,'0400')",
    "iCalUId eq 'unbalanced",
    "uid eq 'a'",  # Graph documents no filter on uid
    "",
])
def test_other_filters_are_refused_with_graphs_error_shape(client, expression):
    book(client)
    response = client.get(f"/v1.0/users/u-alice/events?$filter={quote(expression)}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "ErrorInvalidUrlQueryFilter" and error["message"]
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])


def test_the_filter_works_inside_a_batch(client):
    meeting = book(client)
    encoded = quote(f"iCalUId eq '{meeting['iCalUId']}'")
    requests = [
        {"id": "room", "method": "GET", "url": f"/users/{ROOM}/events?%24filter={encoded}&%24select=id,iCalUId"},
        {"id": "organizer", "method": "GET", "url": f"users/u-alice/events?$filter={encoded}"},
        {"id": "bad", "method": "GET", "url": f"/users/u-alice/events?$filter={quote('subject eq 1')}"},
    ]
    response = client.post("/v1.0/$batch", json={"requests": requests})
    assert response.status_code == 200
    answers = {r["id"]: r for r in response.get_json()["responses"]}
    assert answers["room"]["status"] == 200
    [room_copy] = answers["room"]["body"]["value"]
    assert room_copy["iCalUId"] == meeting["iCalUId"] and room_copy["id"] != meeting["id"]
    assert [e["id"] for e in answers["organizer"]["body"]["value"]] == [meeting["id"]]
    assert answers["bad"]["status"] == 400
    assert answers["bad"]["body"]["error"]["code"] == "ErrorInvalidUrlQueryFilter"


# ---------------------------------------------------------------- the admin API: calendar processing

def test_setting_a_rooms_processing_changes_what_it_accepts(client, admin):
    response = admin.put(f"/_sandbox/rooms/{ROOM.upper()}/processing",
                         json={"bookingWindowInDays": 1080, "enforceSchedulingHorizon": False})
    assert response.status_code == 200
    settings = response.get_json()["calendarProcessing"]
    assert settings["bookingWindowInDays"] == 1080 and settings["enforceSchedulingHorizon"] is False
    assert settings["automateProcessing"] == "AutoAccept" and settings["maximumDurationInMinutes"] == 1440
    far = book(client, subject="Far", start="2028-06-01T11:00:00", end="2028-06-01T12:00:00")
    assert room_status(client, far) == "accepted"  # beyond the default 180 days, inside 1,080
    endless = book(client, subject="Daily", start="2026-03-20T09:00:00", end="2026-03-20T10:00:00",
                   recurrence={"pattern": {"type": "daily", "interval": 1},
                               "range": {"type": "noEnd", "startDate": "2026-03-20"}})
    assert room_status(client, endless) == "accepted"  # no horizon enforced: an endless series is taken

    admin.put(f"/_sandbox/rooms/{ROOM}/processing", json={"allowRecurringMeetings": False,
                                                         "maximumDurationInMinutes": 30})
    weekly = book(client, subject="Weekly", start="2026-03-05T12:00:00", end="2026-03-05T12:30:00", recurrence={
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["thursday"]},
        "range": {"type": "numbered", "startDate": "2026-03-05", "numberOfOccurrences": 2}})
    long = book(client, subject="Long", start="2026-03-06T12:00:00", end="2026-03-06T13:00:00")
    short = book(client, subject="Short", start="2026-03-06T14:00:00", end="2026-03-06T14:30:00")
    assert [room_status(client, e) for e in (weekly, long, short)] == ["declined", "declined", "accepted"]
    kept = admin.put(f"/_sandbox/rooms/{ROOM}/processing", json={}).get_json()["calendarProcessing"]
    assert kept["bookingWindowInDays"] == 1080 and kept["allowRecurringMeetings"] is False  # merged, not replaced

    admin.put(f"/_sandbox/rooms/{ROOM}/processing", json={"automateProcessing": "None"})
    unprocessed = book(client, subject="Pending", start="2026-03-06T16:00:00", end="2026-03-06T16:15:00")
    assert room_status(client, unprocessed) == "none"  # left for a delegate


@pytest.mark.parametrize("body, status", [
    ({"bookingWindowInDays": 1081}, 400),
    ({"bookingWindowInDays": "30"}, 400),
    ({"maximumDurationInMinutes": -1}, 400),
    ({"enforceSchedulingHorizon": "no"}, 400),
    ({"automateProcessing": "autoaccept"}, 400),
    ({"allowConflicts": True}, 400),
    ([], 400),
])
def test_bad_processing_settings_are_refused(client, admin, body, status):
    response = admin.put(f"/_sandbox/rooms/{ROOM}/processing", json=body)
    assert response.status_code == status and response.get_json()["error"]["code"] == "BadRequest"


def test_processing_needs_a_room_and_the_admin_key(client, admin, sandbox_app):
    assert admin.put("/_sandbox/rooms/alice@cal.test/processing", json={}).status_code == 404
    assert admin.put("/_sandbox/rooms/ghost@cal.test/processing", json={}).status_code == 404
    assert sandbox_app.test_client().put(f"/_sandbox/rooms/{ROOM}/processing",
                                         json={"bookingWindowInDays": 1}).status_code == 401
