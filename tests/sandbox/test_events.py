"""Events on any mailbox: create/get/update/delete/cancel/respond, recurrence, calendarView, instances,
transactionId, validation and permissions, and a fidelity check against the documented examples
(tests/data/graph/events/). Users are added to the seeded tenant by the `people` fixture."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from webapp.sandbox.seed import DEMO_CLIENT_ID

DATA = Path(__file__).resolve().parents[1] / "data" / "graph" / "events"
GRAPH_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def example(name: str) -> dict:
    doc = json.loads((DATA / name).read_text())
    doc.pop("_source")
    return doc


@pytest.fixture
def people(sandbox_state):
    """Alice and Bob (people), Nomail (no mailbox) and Room One (a room), added to the seeded tenant."""
    store = sandbox_state.store
    users = {
        "alice": {"id": "u-alice", "displayName": "Alice Organizer", "mail": "alice@cal.test",
                  "userPrincipalName": "alice@cal.test", "mailboxEnabled": True, "isRoom": False},
        "bob": {"id": "u-bob", "displayName": "Bob Attendee", "mail": "bob@cal.test",
                "userPrincipalName": "bob@cal.test", "mailboxEnabled": True, "isRoom": False},
        "nomail": {"id": "u-nomail", "displayName": "No Mail", "mail": None, "userPrincipalName": "nomail@cal.test",
                   "mailboxEnabled": False, "isRoom": False},
        "room": {"id": "u-room1", "displayName": "Room One", "mail": "room1@cal.test",
                 "userPrincipalName": "room1@cal.test", "mailboxEnabled": True, "isRoom": True},
    }
    for user in users.values():
        store.put("user", user["id"], user)
    return users


def event_body(subject="Planning", start="2026-03-10T09:00:00", end="2026-03-10T10:00:00", zone="UTC", **extra):
    return {"subject": subject, "start": {"dateTime": start, "timeZone": zone},
            "end": {"dateTime": end, "timeZone": zone}, **extra}


def create(graph, user="u-alice", **kwargs):
    response = graph.post(f"/v1.0/users/{user}/events", json=event_body(**kwargs))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def test_create_answers_201_with_the_documented_event(graph, people):
    response = graph.post("/v1.0/users/alice@cal.test/events", json=example("create_event_request.json"),
                          headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'})
    assert response.status_code == 201
    body = response.get_json()
    documented = example("create_event_response.json")
    assert set(documented) <= set(body), set(documented) - set(body)
    assert body["@odata.etag"] == f'W/"{body["changeKey"]}"'
    assert body["@odata.context"].endswith("$metadata#users('u-alice')/events/$entity")
    assert len(body["id"]) > 90 and re.fullmatch(r"[A-Za-z0-9_\-=]+", body["id"])
    assert body["start"] == {"dateTime": "2017-04-15T12:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert body["end"]["dateTime"] == "2017-04-15T14:00:00.0000000"
    assert response.headers["Preference-Applied"] == 'outlook.timezone="Pacific Standard Time"'
    assert ISO_Z.match(body["createdDateTime"]) and ISO_Z.match(body["lastModifiedDateTime"])
    assert re.fullmatch(r"040000008200E00074C5B7101A82E00800000000[0-9A-F]{16}0{16}10000000[0-9A-F]{32}", body["iCalUId"])
    for key in ("type", "showAs", "importance", "sensitivity", "responseStatus", "location", "locations",
                "attendees", "recurrence", "seriesMasterId", "onlineMeetingUrl", "isOrganizer", "bodyPreview"):
        assert body[key] == documented[key], key
    assert body["body"]["content"] == documented["body"]["content"]
    assert body["organizer"] == {"emailAddress": {"name": "Alice Organizer", "address": "alice@cal.test"}}


def test_times_come_back_in_utc_with_seven_digits_without_a_prefer_header(graph, people):
    body = create(graph, start="2026-07-01T09:00:00", end="2026-07-01T10:30:00", zone="W. Europe Standard Time")
    assert body["start"] == {"dateTime": "2026-07-01T07:00:00.0000000", "timeZone": "UTC"}
    assert GRAPH_DATETIME.match(body["end"]["dateTime"])
    assert body["originalStartTimeZone"] == "W. Europe Standard Time"


def test_every_write_changes_the_change_key_and_the_etag(graph, people):
    created = create(graph)
    url = f"/v1.0/users/u-alice/events/{created['id']}"
    patched = graph.patch(url, json={"subject": "Renamed"}).get_json()
    assert patched["subject"] == "Renamed"
    assert patched["changeKey"] != created["changeKey"] and patched["@odata.etag"] != created["@odata.etag"]
    assert patched["lastModifiedDateTime"] >= created["lastModifiedDateTime"]
    again = graph.patch(url, json={"subject": "Renamed"}).get_json()
    assert again["changeKey"] != patched["changeKey"]
    fetched = graph.get(url).get_json()
    assert fetched["changeKey"] == again["changeKey"] and fetched["subject"] == "Renamed"
    assert graph.delete(url).status_code == 204
    assert error_code(graph.get(url)) == "ErrorItemNotFound"


def test_a_repeated_transaction_id_returns_the_first_event_and_publishes_once(graph, people, sandbox_state):
    published = []
    sandbox_state.changes.subscribe(published.append)
    first = create(graph, transactionId="booking-42")
    second = create(graph, transactionId="booking-42", subject="Retry")
    assert second["id"] == first["id"] and second["subject"] == "Planning"
    assert second["transactionId"] == "booking-42"
    assert [c.change_type for c in published if c.mailbox == "u-alice"] == ["created"]
    listed = graph.get("/v1.0/users/u-alice/events").get_json()["value"]
    assert [e["id"] for e in listed] == [first["id"]]
    other = create(graph, user="u-bob", transactionId="booking-42")
    assert other["id"] != first["id"]  # de-duplication is per mailbox


def test_changes_name_the_resource_as_graph_does(graph, people, sandbox_state):
    published = []
    sandbox_state.changes.subscribe(published.append)
    created = create(graph)
    assert published[0].resource == f"Users/u-alice/Events/{created['id']}"
    assert published[0].event_id == created["id"] and published[0].change_type == "created"


def test_recurrence_is_echoed_in_full_and_expanded_in_calendar_view(graph, people):
    response = graph.post("/v1.0/users/u-alice/events", json=example("recurring_event_request.json"))
    master = response.get_json()
    documented = example("recurring_event_response_recurrence.json")
    assert master["type"] == "seriesMaster" and master["recurrence"] == documented["recurrence"]
    view = graph.get("/v1.0/users/u-alice/calendarView?startDateTime=2017-09-01T00:00:00Z"
                     "&endDateTime=2017-10-01T00:00:00Z").get_json()["value"]
    assert [v["start"]["dateTime"] for v in view] == [f"2017-09-{d:02d}T19:00:00.0000000" for d in (4, 11, 18, 25)]
    assert {v["type"] for v in view} == {"occurrence"}
    assert {v["seriesMasterId"] for v in view} == {master["id"]}
    assert all(v["recurrence"] is None for v in view)
    assert len({v["iCalUId"] for v in view}) == 4  # each occurrence has its own iCalUId
    assert {v["originalStart"] for v in view} >= {"2017-09-04T19:00:00.0000000Z"}
    occurrence = graph.get(f"/v1.0/users/u-alice/events/{view[1]['id']}").get_json()
    assert occurrence["type"] == "occurrence" and occurrence["start"] == view[1]["start"]


def test_an_edited_occurrence_becomes_an_exception_and_a_deleted_one_disappears(graph, people):
    master = graph.post("/v1.0/users/u-alice/events", json=example("recurring_event_request.json")).get_json()
    url = ("/v1.0/users/u-alice/events/{}/instances?startDateTime=2017-09-01T00:00:00Z"
           "&endDateTime=2017-10-01T00:00:00Z")
    instances = graph.get(url.format(master["id"])).get_json()["value"]
    moved = graph.patch(f"/v1.0/users/u-alice/events/{instances[1]['id']}",
                        json={"subject": "Moved", "start": {"dateTime": "2017-09-12T08:00:00", "timeZone": "UTC"},
                              "end": {"dateTime": "2017-09-12T09:00:00", "timeZone": "UTC"}})
    assert moved.status_code == 200
    assert moved.get_json()["type"] == "exception" and moved.get_json()["id"] == instances[1]["id"]
    assert graph.delete(f"/v1.0/users/u-alice/events/{instances[2]['id']}").status_code == 204
    after = graph.get(url.format(master["id"])).get_json()["value"]
    assert [(i["type"], i["start"]["dateTime"][:10]) for i in after] == [
        ("occurrence", "2017-09-04"), ("exception", "2017-09-12"), ("occurrence", "2017-09-25")]
    assert after[1]["subject"] == "Moved"
    crossing = graph.patch(f"/v1.0/users/u-alice/events/{instances[3]['id']}",
                           json={"start": {"dateTime": "2017-10-03T19:00:00", "timeZone": "UTC"},
                                 "end": {"dateTime": "2017-10-03T20:00:00", "timeZone": "UTC"}})
    assert crossing.status_code == 400 and error_code(crossing) == "ErrorOccurrenceCrossingBoundary"


def test_calendar_view_pages_selects_and_orders(graph, people):
    for day in range(1, 13):
        create(graph, subject=f"Day {day}", start=f"2026-04-{day:02d}T09:00:00", end=f"2026-04-{day:02d}T10:00:00")
    url = ("/v1.0/users/u-alice/calendarView?startDateTime=2026-04-01T00:00:00Z&endDateTime=2026-05-01T00:00:00Z"
           "&$select=subject,start")
    first = graph.get(url).get_json()
    assert len(first["value"]) == 10  # Graph's default page for calendarView
    assert set(first["value"][0]) == {"@odata.etag", "id", "subject", "start"}
    second = graph.get(first["@odata.nextLink"].split("https://127.0.0.1:5001", 1)[-1]).get_json()
    assert [e["subject"] for e in first["value"] + second["value"]] == [f"Day {d}" for d in range(1, 13)]
    assert "@odata.nextLink" not in second
    latest = graph.get(url + "&$top=2&$orderby=start/dateTime desc").get_json()["value"]
    assert [e["subject"] for e in latest] == ["Day 12", "Day 11"]


def test_calendar_view_needs_its_window(graph, people):
    response = graph.get("/v1.0/users/u-alice/calendarView?startDateTime=2026-04-01T00:00:00Z")
    assert response.status_code == 400 and error_code(response) == "ErrorInvalidParameter"
    response = graph.get("/v1.0/users/u-alice/calendarView?startDateTime=soon&endDateTime=later")
    assert response.status_code == 400 and error_code(response) == "ErrorInvalidParameter"


def test_window_offsets_are_honoured(graph, people):
    create(graph, start="2026-04-01T07:30:00", end="2026-04-01T08:00:00")
    inside = graph.get("/v1.0/users/u-alice/calendarView?startDateTime=2026-04-01T09:00:00%2B02:00"
                       "&endDateTime=2026-04-01T10:00:00%2B02:00").get_json()["value"]
    assert len(inside) == 1


@pytest.mark.parametrize("payload, status, code", [
    ("{not json", 400, "UnableToDeserializePostBody"),
    ('["a list"]', 400, "UnableToDeserializePostBody"),
    ('{"subject": "No times"}', 400, "ErrorPropertyValidationFailure"),
    ('{"subject": 5, "start": {"dateTime": "2026-04-01T09:00:00", "timeZone": "UTC"},'
     ' "end": {"dateTime": "2026-04-01T10:00:00", "timeZone": "UTC"}}', 400, "UnableToDeserializePostBody"),
    ('{"start": {"dateTime": "2026-04-01T09:00:00", "timeZone": "Mars/Olympus"},'
     ' "end": {"dateTime": "2026-04-01T10:00:00", "timeZone": "UTC"}}', 400, "TimeZoneNotSupportedException"),
    ('{"start": {"dateTime": "2026-04-01T11:00:00", "timeZone": "UTC"},'
     ' "end": {"dateTime": "2026-04-01T10:00:00", "timeZone": "UTC"}}', 400, "ErrorCalendarEndDateIsEarlierThanStartDate"),
    ('{"start": {"dateTime": "2026-04-01T09:00:00", "timeZone": "UTC"},'
     ' "end": {"dateTime": "2026-04-01T10:00:00", "timeZone": "UTC"}, "showAs": "sleeping"}', 400,
     "UnableToDeserializePostBody"),
    ('{"start": {"dateTime": "2026-04-01T09:00:00", "timeZone": "UTC"},'
     ' "end": {"dateTime": "2026-04-01T10:00:00", "timeZone": "UTC"}, "colour": "red"}', 400,
     "UnableToDeserializePostBody"),
    ('{"start": {"dateTime": "2026-04-01T09:00:00", "timeZone": "UTC"},'
     ' "end": {"dateTime": "2026-04-01T10:00:00", "timeZone": "UTC"},'
     ' "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},'
     ' "range": {"type": "endDate", "startDate": "2026-04-02", "endDate": "2026-05-01"}}}', 400,
     "ErrorPropertyValidationFailure"),
    ('{"start": {"dateTime": "2026-04-01T09:00:00", "timeZone": "UTC"},'
     ' "end": {"dateTime": "2026-04-01T10:00:00", "timeZone": "UTC"},'
     ' "recurrence": {"pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 32},'
     ' "range": {"type": "noEnd", "startDate": "2026-04-01"}}}', 400, "ErrorPropertyValidationFailure"),
    ('{"isAllDay": true, "start": {"dateTime": "2026-04-01T09:00:00", "timeZone": "UTC"},'
     ' "end": {"dateTime": "2026-04-02T09:00:00", "timeZone": "UTC"}}', 400, "ErrorPropertyValidationFailure"),
])
def test_bad_requests_answer_graph_errors_never_500(graph, people, payload, status, code):
    response = graph.post("/v1.0/users/u-alice/events", data=payload, content_type="application/json")
    assert response.status_code == status, response.get_json()
    assert error_code(response) == code
    assert set(response.get_json()["error"]) == {"code", "message", "innerError"}


def test_unknown_users_mailboxless_users_and_unknown_events(graph, people):
    assert error_code(graph.get("/v1.0/users/ghost@cal.test/events")) == "ErrorInvalidUser"
    response = graph.get("/v1.0/users/nomail@cal.test/events")
    assert response.status_code == 404 and error_code(response) == "MailboxNotEnabledForRESTAPI"
    for bad_id in ("AAMkAGI1AAAt9AHjAAA=", "nonsense"):
        response = graph.get(f"/v1.0/users/u-alice/events/{bad_id}")
        assert response.status_code == 404 and error_code(response) == "ErrorItemNotFound"
    created = create(graph)
    response = graph.get(f"/v1.0/users/u-bob/events/{created['id']}")  # another mailbox's id
    assert response.status_code == 404


def test_permissions_are_checked_on_every_call(graph, people, sandbox_state):
    store = sandbox_state.store
    app_doc = store.get("app", DEMO_CLIENT_ID)
    app_doc["permissions"] = ["Calendars.Read"]
    store.put("app", DEMO_CLIENT_ID, app_doc)
    assert graph.get("/v1.0/users/u-alice/events").status_code == 200
    response = graph.post("/v1.0/users/u-alice/events", json=event_body())
    assert response.status_code == 403 and error_code(response) == "ErrorAccessDenied"
    app_doc["permissions"] = []
    store.put("app", DEMO_CLIENT_ID, app_doc)
    assert graph.get("/v1.0/users/u-alice/events").status_code == 403


def test_only_the_organizer_cancels_and_only_attendees_respond(graph, people):
    created = create(graph)
    url = f"/v1.0/users/u-alice/events/{created['id']}"
    response = graph.post(url + "/decline", json={"comment": "no", "sendResponse": True})
    assert response.status_code == 400
    assert graph.post(url + "/cancel", json={"comment": "Sorry"}).status_code == 202
    assert graph.get(url).status_code == 404  # a cancelled meeting leaves the organizer's calendar


def test_online_meetings_get_a_teams_join_url(graph, people):
    body = create(graph, isOnlineMeeting=True)
    assert body["isOnlineMeeting"] is True and body["onlineMeetingProvider"] == "teamsForBusiness"
    assert body["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/l/meetup-join/19%3ameeting_")
    again = graph.patch(f"/v1.0/users/u-alice/events/{body['id']}", json={"isOnlineMeeting": False}).get_json()
    assert again["isOnlineMeeting"] is True  # cannot be turned off once on


def test_immutable_id_preference_is_accepted_and_ids_are_stable(graph, people):
    headers = {"Prefer": 'IdType="ImmutableId", outlook.timezone="Tokyo Standard Time"'}
    created = graph.post("/v1.0/users/u-alice/events", json=event_body(), headers=headers).get_json()
    assert created["start"]["timeZone"] == "Tokyo Standard Time"
    assert created["start"]["dateTime"] == "2026-03-10T18:00:00.0000000"
    patched = graph.patch(f"/v1.0/users/u-alice/events/{created['id']}", json={"subject": "x"}).get_json()
    assert patched["id"] == created["id"]


def test_instances_fidelity_with_the_documented_example(graph, people):
    master = graph.post("/v1.0/users/u-alice/events", json=example("recurring_event_request.json")).get_json()
    documented = example("instances_response.json")
    selected = "subject,bodyPreview,seriesMasterId,type,recurrence,start,end"
    body = graph.get(f"/v1.0/users/u-alice/events/{master['id']}/instances?startDateTime=2017-09-01T00:00:00Z"
                     f"&endDateTime=2017-10-01T00:00:00Z&$select={selected}").get_json()
    assert set(body) >= {"@odata.context", "value"}
    assert set(body["value"][0]) == set(documented["value"][1])
    assert body["value"][0]["@odata.etag"] == master["@odata.etag"]  # occurrences carry the master's etag
