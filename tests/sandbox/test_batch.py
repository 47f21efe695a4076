"""JSON batching (`POST /v1.0/$batch`, [D:concepts/json-batching.md]): up to 20 requests, unique ids,
relative urls, dependsOn run in order with 424 on a failed dependency, per-request authentication and
permissions, responses correlated by id, and the documented response shape
(tests/data/graph/events/batch_response.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webapp.sandbox.seed import DEMO_CLIENT_ID

DATA = Path(__file__).resolve().parents[1] / "data" / "graph" / "events"


@pytest.fixture
def alice(sandbox_state):
    user = {"id": "u-alice", "displayName": "Alice", "mail": "alice@cal.test", "userPrincipalName": "alice@cal.test",
            "mailboxEnabled": True, "isRoom": False}
    sandbox_state.store.put("user", user["id"], user)
    return user


def new_event(subject="Batched"):
    return {"subject": subject, "start": {"dateTime": "2026-04-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-04-01T10:00:00", "timeZone": "UTC"}}


def by_id(body) -> dict:
    return {r["id"]: r for r in body["responses"]}


def test_a_batch_runs_each_request_and_answers_each_by_id(graph, alice):
    requests = [
        {"id": "1", "method": "POST", "url": "/users/u-alice/events", "body": new_event("One"),
         "headers": {"Content-Type": "application/json"}},
        {"id": "2", "method": "GET", "url": "users/u-alice/calendarView?startDateTime=2026-04-01T00:00:00Z"
                                            "&endDateTime=2026-04-02T00:00:00Z", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": "/users/u-alice/events/does-not-exist"},
    ]
    response = graph.post("/v1.0/$batch", json={"requests": requests})
    assert response.status_code == 200
    responses = by_id(response.get_json())
    assert responses["1"]["status"] == 201 and responses["1"]["body"]["subject"] == "One"
    assert responses["1"]["headers"]["Content-Type"].startswith("application/json")
    assert [e["subject"] for e in responses["2"]["body"]["value"]] == ["One"]
    assert responses["3"]["status"] == 404 and responses["3"]["body"]["error"]["code"] == "ErrorItemNotFound"
    documented = json.loads((DATA / "batch_response.json").read_text())["responses"][0]
    assert set(responses["3"]) == set(documented)
    assert set(responses["3"]["body"]["error"]) == set(documented["body"]["error"])


def test_a_failed_dependency_answers_424_and_the_request_does_not_run(graph, alice):
    requests = [
        {"id": "a", "method": "GET", "url": "/users/ghost@cal.test/events"},
        {"id": "b", "method": "POST", "url": "/users/u-alice/events", "body": new_event(), "dependsOn": ["a"],
         "headers": {"Content-Type": "application/json"}},
        {"id": "c", "method": "DELETE", "url": "/users/u-alice/events/x", "dependsOn": ["b"]},
    ]
    responses = by_id(graph.post("/v1.0/$batch", json={"requests": requests}).get_json())
    assert responses["a"]["status"] == 404
    assert responses["b"]["status"] == 424 and responses["c"]["status"] == 424
    assert graph.get("/v1.0/users/u-alice/events").get_json()["value"] == []


def test_each_request_is_checked_against_the_apps_permissions(graph, alice, sandbox_state):
    app_doc = sandbox_state.store.get("app", DEMO_CLIENT_ID)
    app_doc["permissions"] = ["Calendars.Read"]
    sandbox_state.store.put("app", DEMO_CLIENT_ID, app_doc)
    requests = [{"id": "read", "method": "GET", "url": "/users/u-alice/events"},
                {"id": "write", "method": "POST", "url": "/users/u-alice/events", "body": new_event(),
                 "headers": {"Content-Type": "application/json"}}]
    responses = by_id(graph.post("/v1.0/$batch", json={"requests": requests}).get_json())
    assert responses["read"]["status"] == 200 and responses["write"]["status"] == 403


def test_the_batch_itself_needs_a_token(sandbox_app):
    client = sandbox_app.test_client()
    response = client.post("/v1.0/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/users"}]})
    assert response.status_code == 401


def test_responses_are_not_promised_in_request_order(graph, alice):
    requests = [{"id": str(n), "method": "GET", "url": "/users/u-alice/events"} for n in range(1, 11)]
    body = graph.post("/v1.0/$batch", json={"requests": requests}).get_json()
    ids = [r["id"] for r in body["responses"]]
    assert sorted(ids) == sorted(str(n) for n in range(1, 11)) and ids != [str(n) for n in range(1, 11)]


@pytest.mark.parametrize("payload", [
    {"requests": [{"id": str(n), "method": "GET", "url": "/users/u-alice/events"} for n in range(21)]},
    {"requests": [{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/users"}]},
    {"requests": [{"id": "1", "method": "POST", "url": "/users/u-alice/events", "body": {}}]},
    {"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}]},
    {"requests": [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]},
    {"requests": [{"id": "1", "method": "GET"}]},
    {"requests": []},
    {"nothing": True},
])
def test_malformed_batches_answer_400(graph, alice, payload):
    response = graph.post("/v1.0/$batch", json=payload)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "BadRequest"


def test_unreadable_json_answers_400(graph):
    response = graph.post("/v1.0/$batch", data="{oops", content_type="application/json")
    assert response.status_code == 400
