"""Throttling, injected faults and the admin API (graph-facts §5.1; the issue's fault list)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from freezegun import freeze_time

from webapp.sandbox.clock import now
from webapp.sandbox.faults import Faults
from webapp.sandbox.seed import DEMO_CLIENT_ID, user_id_for
from webapp.sandbox.throttle import Throttle, Throttled

PRIYA = "priya.shah@roomsync.test"
TOM = "tom.baker@roomsync.test"


# ---- Throttle ----

def test_four_concurrent_requests_per_app_and_mailbox():
    throttle = Throttle()
    leases = [throttle.acquire("app", "mailbox") for _ in range(4)]
    with pytest.raises(Throttled) as refused:
        throttle.acquire("app", "mailbox")
    assert refused.value.reason == "MailboxConcurrency" and refused.value.retry_after >= 1
    throttle.acquire("app", "other-mailbox").release()  # other mailboxes are unaffected
    throttle.acquire("other-app", "mailbox").release()
    leases[0].release()
    leases[0].release()  # releasing twice frees one slot only
    throttle.acquire("app", "mailbox")
    with pytest.raises(Throttled):
        throttle.acquire("app", "mailbox")


def test_request_budget_per_window():
    with freeze_time(now()) as frozen:
        throttle = Throttle(budget=3, window_seconds=600)
        for _ in range(3):
            throttle.acquire("app", "mailbox").release()
        frozen.tick(timedelta(seconds=100))
        with pytest.raises(Throttled) as refused:
            throttle.acquire("app", "mailbox")
        assert refused.value.reason == "RequestBudget" and refused.value.retry_after == 500
        frozen.tick(timedelta(seconds=500))
        throttle.acquire("app", "mailbox").release()


def test_throttle_is_thread_safe():
    import threading

    throttle = Throttle(budget=1000)
    granted, refused = [], []

    def take():
        try:
            granted.append(throttle.acquire("app", "mailbox"))
        except Throttled:
            refused.append(1)

    threads = [threading.Thread(target=take) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 4 and len(refused) == 46
    assert throttle.in_flight("app", "mailbox") == 4


# ---- throttling through Graph ----

def test_over_budget_answers_429_with_retry_after_per_mailbox(graph, admin):
    assert admin.put("/_sandbox/throttle", json={"budget": 3}).get_json()["budget"] == 3
    for key in (PRIYA, user_id_for(PRIYA), PRIYA.upper()):  # one mailbox, however it is named
        assert graph.get(f"/v1.0/users/{key}/people").status_code == 200
    refused = graph.get(f"/v1.0/users/{PRIYA}/contacts")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "TooManyRequests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 600
    assert graph.get(f"/v1.0/users/{TOM}/people").status_code == 200
    assert graph.get("/v1.0/users").status_code == 200  # no mailbox: not an Outlook resource


def test_concurrency_limit_through_graph(graph, sandbox_state):
    leases = [sandbox_state.throttle.acquire(DEMO_CLIENT_ID, user_id_for(PRIYA)) for _ in range(4)]
    refused = graph.get(f"/v1.0/users/{PRIYA}/people")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    for lease in leases:
        lease.release()
    assert graph.get(f"/v1.0/users/{PRIYA}/people").status_code == 200
    assert sandbox_state.throttle.in_flight(DEMO_CLIENT_ID, user_id_for(PRIYA)) == 0  # released after the call


# ---- faults ----

def test_injected_errors_for_a_path(graph, admin):
    spec = {"errors": [{"status": 503, "share": 1.0, "retryAfter": 7, "path": "/contacts$"}]}
    assert admin.put("/_sandbox/faults", json=spec).status_code == 200

    failed = graph.get(f"/v1.0/users/{PRIYA}/contacts")
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "7"
    assert failed.get_json()["error"]["code"] == "serviceNotAvailable"
    assert graph.get(f"/v1.0/users/{PRIYA}/people").status_code == 200

    assert admin.delete("/_sandbox/faults").status_code == 204
    assert graph.get(f"/v1.0/users/{PRIYA}/contacts").status_code == 200


@pytest.mark.parametrize("status", [429, 504])
def test_injected_errors_for_a_mailbox(graph, admin, status):
    admin.put("/_sandbox/faults", json={"errors": [{"status": status, "mailbox": PRIYA.upper()}]})
    failed = graph.get(f"/v1.0/users/{user_id_for(PRIYA)}/people")
    assert failed.status_code == status and "Retry-After" in failed.headers
    assert graph.get(f"/v1.0/users/{TOM}/people").status_code == 200


def test_an_application_access_policy_shuts_the_app_out_of_chosen_mailboxes(graph, admin):
    assert admin.put("/_sandbox/faults", json={"accessPolicy": {"mailboxes": [PRIYA]}}).status_code == 200
    for path in (f"/v1.0/users/{PRIYA}/events", f"/v1.0/users/{user_id_for(PRIYA)}/calendar/events"):
        denied = graph.get(path)
        assert denied.status_code == 403
        assert denied.get_json()["error"] == {**denied.get_json()["error"], "code": "ErrorAccessDenied",
                                              "message": "Access to OData is disabled."}
    assert graph.get(f"/v1.0/users/{TOM}/events").status_code == 200
    admin.delete("/_sandbox/faults")
    assert graph.get(f"/v1.0/users/{PRIYA}/events").status_code == 200


def test_an_error_share_fails_about_that_share_of_calls():
    faults = Faults(seed=7)
    faults.configure({"errors": [{"status": 429, "share": 0.3}]})
    failures = sum(faults.injected_error("/v1.0/users/x/events") is not None for _ in range(2000))
    assert 450 <= failures <= 750


def test_latency(graph, admin):
    admin.put("/_sandbox/faults", json={"latency": {"ms": 150, "path": "people"}})
    started = time.monotonic()
    graph.get(f"/v1.0/users/{PRIYA}/people")
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    graph.get(f"/v1.0/users/{PRIYA}")
    assert time.monotonic() - started < 0.15


@pytest.mark.parametrize("spec", [
    {"errors": [{"status": 500}]},
    {"errors": [{"status": 429, "share": 2}]},
    {"latency": {"ms": -1}},
    {"latency": {"ms": 5, "path": "("}},
    {"notifications": {"drop": "all"}},
    {"surprise": {}},
    [],
])
def test_malformed_fault_specs_are_400(admin, spec):
    assert admin.put("/_sandbox/faults", json=spec).status_code == 400


def test_notification_faults_are_drawn_from_the_plan(admin, sandbox_state):
    spec = {"notifications": {"drop": 1.0, "duplicate": 0.0, "delay": 1.0, "delaySeconds": 2, "reorder": 1.0}}
    assert admin.put("/_sandbox/faults", json=spec).get_json()["notifications"]["delaySeconds"] == 2
    plan = sandbox_state.faults.notification_plan()
    assert (plan.drop, plan.duplicate, plan.delay, plan.delay_seconds) == (1.0, 0.0, 1.0, 2.0)
    fate = sandbox_state.faults.notification_fate()
    assert fate.drop and not fate.duplicate and fate.delay_seconds == 2.0 and fate.reorder
    admin.delete("/_sandbox/faults")
    assert sandbox_state.faults.notification_fate() == type(fate)()


def test_expiring_delta_tokens(admin, sandbox_state):
    issued = now()
    assert not sandbox_state.faults.is_delta_token_expired(issued)
    assert admin.post("/_sandbox/delta/expire").get_json()["expireDeltaTokensBefore"]
    assert sandbox_state.faults.is_delta_token_expired(issued)
    assert not sandbox_state.faults.is_delta_token_expired(now() + timedelta(seconds=1))


# ---- admin API ----

def test_the_admin_api_needs_its_key(sandbox_app):
    client = sandbox_app.test_client()
    assert client.get("/_sandbox/state").status_code == 401
    assert client.get("/_sandbox/state", headers={"X-Sandbox-Key": "wrong"}).status_code == 401


def test_reset_restores_the_seeded_tenant(graph, admin, sandbox_state):
    admin.post("/_sandbox/permissions/revoke", json={"permission": "User.Read.All"})
    admin.post("/_sandbox/rooms/atrium@roomsync.test/delete")
    admin.put("/_sandbox/faults", json={"latency": {"ms": 10}})

    summary = admin.post("/_sandbox/reset").get_json()

    assert summary["documents"]["room"] == 11 and summary["documents"]["token"] == 0
    assert "User.Read.All" in summary["apps"][0]["permissions"]
    assert summary["faults"]["latency"]["ms"] == 0
    graph.authenticate()  # tokens are part of the state a reset wipes
    assert graph.get("/v1.0/users/atrium@roomsync.test").status_code == 200


def test_removing_a_subscription_goes_through_delivery(admin, sandbox_state, monkeypatch):
    removed = []
    monkeypatch.setattr(sandbox_state.delivery, "remove_subscription", lambda sid: removed.append(sid) or sid == "s1")
    assert admin.post("/_sandbox/subscriptions/s1/remove").status_code == 200
    assert admin.post("/_sandbox/subscriptions/nope/remove").status_code == 404
    assert removed == ["s1", "nope"]
