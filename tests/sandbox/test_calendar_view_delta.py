"""calendarView delta: a first round paged by `Prefer: odata.maxpagesize` ending in a deltaLink, later rounds
with only what changed (removals as `@removed`), expired tokens answering 410 syncStateNotFound, and the
item shapes of the documented example (tests/data/graph/events/calendarview_delta_*.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webapp.sandbox.events import expire_delta_tokens

DATA = Path(__file__).resolve().parents[1] / "data" / "graph" / "events"
BASE = "https://127.0.0.1:5001"
WINDOW = "startDateTime=2026-04-01T00:00:00Z&endDateTime=2026-05-01T00:00:00Z"


@pytest.fixture
def alice(sandbox_state):
    user = {"id": "u-alice", "displayName": "Alice", "mail": "alice@cal.test", "userPrincipalName": "alice@cal.test",
            "mailboxEnabled": True, "isRoom": False}
    sandbox_state.store.put("user", user["id"], user)
    return user


def add(graph, subject, day):
    body = {"subject": subject, "start": {"dateTime": f"2026-04-{day:02d}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"2026-04-{day:02d}T10:00:00", "timeZone": "UTC"}}
    response = graph.post("/v1.0/users/u-alice/events", json=body)
    assert response.status_code == 201
    return response.get_json()


def follow(graph, link, page_size=2):
    return graph.get(link.removeprefix(BASE), headers={"Prefer": f"odata.maxpagesize={page_size}"})


def full_round(graph, first_url):
    pages, response = [], follow(graph, first_url)
    while True:
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        pages.append(body)
        if "@odata.deltaLink" in body:
            return pages, body["@odata.deltaLink"]
        assert "@odata.deltaLink" not in body and "$skiptoken=" in body["@odata.nextLink"]
        response = follow(graph, body["@odata.nextLink"])


def test_rounds_page_then_report_only_changes(graph, alice):
    events = [add(graph, f"E{d}", d) for d in (1, 2, 3, 4, 5)]
    pages, delta_link = full_round(graph, f"/v1.0/users/u-alice/calendarView/delta?{WINDOW}")
    assert [len(p["value"]) for p in pages] == [2, 2, 1]
    assert "$deltatoken=" in delta_link and delta_link.startswith(BASE)
    assert sorted(i["subject"] for p in pages for i in p["value"]) == ["E1", "E2", "E3", "E4", "E5"]
    nothing, delta_link = full_round(graph, delta_link)
    assert [i for p in nothing for i in p["value"]] == []
    graph.patch(f"/v1.0/users/u-alice/events/{events[0]['id']}", json={"subject": "E1 renamed"})
    graph.delete(f"/v1.0/users/u-alice/events/{events[1]['id']}")
    added = add(graph, "E9", 9)
    add(graph, "Late", 28)
    graph.patch(f"/v1.0/users/u-alice/events/{events[2]['id']}",
                json={"start": {"dateTime": "2026-06-01T09:00:00", "timeZone": "UTC"},
                      "end": {"dateTime": "2026-06-01T10:00:00", "timeZone": "UTC"}})  # leaves the window
    pages, delta_link = full_round(graph, delta_link)
    items = [i for p in pages for i in p["value"]]
    removed = {i["id"] for i in items if "@removed" in i}
    assert removed == {events[1]["id"], events[2]["id"]}
    changed = {i["subject"] for i in items if "@removed" not in i}
    assert changed == {"E1 renamed", "E9", "Late"}
    assert added["id"] in {i["id"] for i in items}


def test_items_have_the_documented_shape(graph, alice):
    first = add(graph, "Shape", 2)
    body = follow(graph, f"/v1.0/users/u-alice/calendarView/delta?{WINDOW}").get_json()
    documented = json.loads((DATA / "calendarview_delta_first_page_response.json").read_text())
    assert body["@odata.context"].endswith("$metadata#Collection(event)")
    item = body["value"][0]
    assert set(documented["value"][0]) <= set(item)
    assert list(item)[:2] == ["@odata.type", "@odata.etag"] and item["@odata.type"] == "#microsoft.graph.event"
    graph.delete(f"/v1.0/users/u-alice/events/{first['id']}")
    again = follow(graph, body["@odata.deltaLink"]).get_json()
    documented_removed = json.loads((DATA / "calendarview_delta_next_round_response.json").read_text())["value"][0]
    assert again["value"] == [{"@odata.type": "#microsoft.graph.event", "id": first["id"], "@removed": {"reason": "deleted"}}]
    assert set(again["value"][0]) == set(documented_removed)


def test_recurring_series_are_reported_per_occurrence(graph, alice):
    body = {"subject": "Daily", "start": {"dateTime": "2026-04-27T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-04-27T09:30:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "daily", "interval": 1},
                           "range": {"type": "noEnd", "startDate": "2026-04-27"}}}
    graph.post("/v1.0/users/u-alice/events", json=body)
    pages, _ = full_round(graph, f"/v1.0/users/u-alice/calendarView/delta?{WINDOW}")
    items = [i for p in pages for i in p["value"]]
    assert [i["type"] for i in items] == ["occurrence"] * 4


def test_expired_or_unknown_tokens_answer_410_sync_state_not_found(graph, alice, sandbox_state):
    add(graph, "E", 1)
    add(graph, "F", 2)
    first = follow(graph, f"/v1.0/users/u-alice/calendarView/delta?{WINDOW}", page_size=1).get_json()
    _, delta_link = full_round(graph, f"/v1.0/users/u-alice/calendarView/delta?{WINDOW}")
    assert expire_delta_tokens(sandbox_state) >= 2
    for link in (delta_link, first["@odata.nextLink"]):
        response = follow(graph, link)
        assert response.status_code == 410 and response.get_json()["error"]["code"] == "syncStateNotFound"
    response = graph.get("/v1.0/users/u-alice/calendarView/delta?$deltatoken=not-a-token")
    assert response.status_code == 410


def test_the_first_round_needs_a_window_and_refuses_select(graph, alice):
    response = graph.get("/v1.0/users/u-alice/calendarView/delta")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "ErrorInvalidParameter"
    assert graph.get(f"/v1.0/users/u-alice/calendarView/delta?{WINDOW}&$select=subject").status_code == 400

