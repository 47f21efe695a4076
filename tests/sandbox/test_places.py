"""Rooms and room lists against the documented examples (graph-facts §2.1; tests/data/graph/places/)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

EXAMPLES = Path(__file__).parents[1] / "data" / "graph" / "places"
DEMO_ROOM_NAMES = {"Board room A", "Board room B", "Board room A+B", "Focus room 1", "Focus room 2", "Atrium",
                   "Studio", "Library"}
FLOOR_2 = "hq-floor2-rooms@roomsync.test"


def _documented(name: str) -> dict:
    return {k: v for k, v in json.loads((EXAMPLES / name).read_text()).items() if k != "_source"}


def _get(graph, url: str):
    parts = urlsplit(url)
    return graph.get(parts.path + ("?" + parts.query if parts.query else ""))


def test_rooms_have_the_documented_properties(graph):
    body = graph.get("/v1.0/places/microsoft.graph.room").get_json()

    assert body["@odata.context"] == "https://127.0.0.1:5001/v1.0/$metadata#places/microsoft.graph.room"
    documented = _documented("list-rooms-in-roomlist.json")["value"][0]
    assert all(list(room) == list(documented) for room in body["value"])
    names = {room["displayName"] for room in body["value"]}
    assert len(body["value"]) == 11 and DEMO_ROOM_NAMES <= names
    board_a = next(r for r in body["value"] if r["displayName"] == "Board room A")
    assert board_a["emailAddress"] == "board-room-a@roomsync.test"
    assert board_a["capacity"] == 10 and board_a["bookingType"] == "standard"


def test_room_pages_follow_skip_links(graph):
    first = graph.get("/v1.0/places/microsoft.graph.room?$top=4").get_json()
    assert len(first["value"]) == 4
    assert first["@odata.nextLink"].endswith("$top=4&$skip=4")
    second = _get(graph, first["@odata.nextLink"]).get_json()
    third = _get(graph, second["@odata.nextLink"]).get_json()
    assert len(third["value"]) == 3 and "@odata.nextLink" not in third
    ids = [r["id"] for page in (first, second, third) for r in page["value"]]
    assert len(set(ids)) == 11


def test_select_and_count(graph):
    body = graph.get("/v1.0/places/microsoft.graph.room?$select=displayName,capacity&$count=true").get_json()
    assert body["@odata.count"] == 11
    assert all(set(room) == {"id", "displayName", "capacity"} for room in body["value"])


def test_room_lists(graph):
    body = graph.get("/v1.0/places/microsoft.graph.roomlist").get_json()
    assert body["@odata.context"].endswith("$metadata#places/microsoft.graph.roomList")
    documented = _documented("list-roomlists.json")["value"][0]
    assert {k.lower() for k in documented} == {k.lower() for k in body["value"][0]}
    assert {rl["emailAddress"] for rl in body["value"]} == {"hq-floor1-rooms@roomsync.test", FLOOR_2}


def test_rooms_of_a_list_by_its_email_address(graph):
    body = graph.get(f"/v1.0/places/{FLOOR_2}/microsoft.graph.roomlist/rooms").get_json()
    assert body["@odata.context"].endswith(
        "$metadata#places('hq-floor2-rooms%40roomsync.test')/microsoft.graph.roomList/rooms")
    assert {r["displayName"] for r in body["value"]} == {"Board room A", "Board room B", "Board room A+B",
                                                         "Library", "Quiet pod"}


def test_a_room_list_is_addressed_by_email_not_id(graph):
    room_list = graph.get("/v1.0/places/microsoft.graph.roomlist").get_json()["value"][0]
    response = graph.get(f"/v1.0/places/{room_list['id']}/microsoft.graph.roomlist/rooms")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "ErrorItemNotFound"


def test_a_deleted_room_disappears(graph, admin):
    assert admin.post("/_sandbox/rooms/studio@roomsync.test/delete").status_code == 200
    names = {r["displayName"] for r in graph.get("/v1.0/places/microsoft.graph.room").get_json()["value"]}
    assert "Studio" not in names and len(names) == 10
    assert graph.get("/v1.0/users/studio@roomsync.test").status_code == 404
    assert admin.post("/_sandbox/rooms/studio@roomsync.test/delete").status_code == 404


def test_places_need_place_read_all(graph, admin):
    admin.post("/_sandbox/permissions/revoke", json={"permission": "Place.Read.All"})
    response = graph.get("/v1.0/places/microsoft.graph.room")
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "ErrorAccessDenied"


def test_room_docs_carry_exchange_calendar_processing_defaults(sandbox_state):
    for room in sandbox_state.store.all("room"):
        settings = room["calendarProcessing"]
        assert settings["bookingWindowInDays"] == 180 and settings["maximumDurationInMinutes"] == 1440
        assert settings["automateProcessing"] == "AutoAccept" and settings["allowConflicts"] is False
        assert settings["addOrganizerToSubject"] and settings["deleteSubject"] and settings["deleteComments"]
        assert settings["removePrivateProperty"]
        assert sandbox_state.store.get("user", room["id"])["isRoom"] is True
