"""Change-notification delivery (graph-facts §4.2–§4.6): payloads, batching, retries, faults, lifecycle."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time
from webhook_receiver import Receiver

from webapp.sandbox import notifications
from webapp.sandbox.changes import Change
from webapp.sandbox.clock import iso_z, now
from webapp.sandbox.seed import DEMO_CLIENT_ID, DEMO_TENANT_ID, user_id_for

ROOM = "board-room-a@roomsync.test"
OTHER_ROOM = "atrium@roomsync.test"
ORGANIZER = "priya.shah@roomsync.test"


def _change(mailbox: str, change_type: str = "created", event_id: str = "AAMkEvent1") -> Change:
    user_id = user_id_for(mailbox)
    return Change(user_id, f"Users/{user_id}/Events/{event_id}", change_type, event_id)


def _publish(state, *changes: Change) -> None:
    for change in changes:
        state.changes.publish(change)


def _meeting(start: datetime, room: str = ROOM) -> dict:
    return {"subject": "Planning", "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "location": {"displayName": room, "locationEmailAddress": room},
            "attendees": [{"type": "resource", "emailAddress": {"address": room}}]}


def test_a_booking_by_an_organizer_notifies_the_rooms_subscription(sandbox_state, graph, receiver, subscribe):
    subscription = subscribe(ROOM)
    tomorrow = (now() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    created = graph.post(f"/v1.0/users/{ORGANIZER}/events", json=_meeting(tomorrow))
    assert created.status_code == 201
    assert sandbox_state.delivery.flush()

    [item] = receiver.notifications("/hook")
    room_id = user_id_for(ROOM)
    copy_id = item["resourceData"]["id"]
    room_copy = graph.get(f"/v1.0/users/{ROOM}/events/{copy_id}").get_json()
    assert item == {
        "subscriptionId": subscription["id"],
        "subscriptionExpirationDateTime": subscription["expirationDateTime"],
        "changeType": "created",
        "resource": f"Users/{room_id}/Events/{copy_id}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": f"Users/{room_id}/Events/{copy_id}",
                         "@odata.etag": room_copy["@odata.etag"], "id": copy_id},
        "clientState": "s3cret-state",
        "tenantId": DEMO_TENANT_ID,
    }
    assert room_copy["iCalUId"] == created.get_json()["iCalUId"]

    assert graph.delete(f"/v1.0/users/{ORGANIZER}/events/{created.get_json()['id']}").status_code == 204
    assert sandbox_state.delivery.flush()
    assert "deleted" in [n["changeType"] for n in receiver.notifications("/hook")]


def test_only_matching_mailboxes_and_change_types_are_notified(sandbox_state, receiver, subscribe):
    subscribe(ROOM, change_type="deleted")
    _publish(sandbox_state, _change(ROOM, "created"), _change(ROOM, "updated"), _change(OTHER_ROOM, "deleted"),
             _change(ROOM, "deleted"))
    assert sandbox_state.delivery.flush()

    assert [(n["changeType"], n["resource"].split("/")[1]) for n in receiver.notifications("/hook")] == [
        ("deleted", user_id_for(ROOM))]


def test_a_burst_shares_one_post_across_subscriptions_of_the_same_url(sandbox_state, receiver, subscribe):
    first, second = subscribe(ROOM), subscribe(OTHER_ROOM)
    _publish(sandbox_state, _change(ROOM, "created", "E1"), _change(ROOM, "updated", "E1"),
             _change(OTHER_ROOM, "created", "E2"))
    assert sandbox_state.delivery.flush()

    posts = [p for p in receiver.posts if p.path == "/hook"]
    assert len(posts) == 1
    assert [(n["subscriptionId"], n["changeType"]) for n in posts[0].body["value"]] == [
        (first["id"], "created"), (first["id"], "updated"), (second["id"], "created")]


def test_delivery_over_real_http_to_a_local_server(sandbox_state, subscribe):
    hook = Receiver()
    base_url, stop = hook.serve()
    try:
        sandbox_state.delivery.set_transport(None)
        subscribe(ROOM, url=f"{base_url}/hook?tenant=demo", lifecycle=None)  # loopback http: accepted
        _publish(sandbox_state, _change(ROOM, "updated"))
        assert sandbox_state.delivery.flush()
    finally:
        stop()

    assert len(hook.validations) == 1
    [post] = hook.posts
    assert post.query == {"tenant": "demo"}  # documented: query parameters of notificationUrl are kept
    assert post.body["value"][0]["changeType"] == "updated"


def test_failed_deliveries_are_retried_with_growing_back_off(sandbox_state, receiver, subscribe):
    sandbox_state.config["SANDBOX_TIME_FACTOR"] = 100  # first retry after 0.15 s, then 0.3 s
    subscribe(ROOM)
    receiver.statuses.extend([503, 500])

    _publish(sandbox_state, _change(ROOM))
    assert sandbox_state.delivery.flush(timeout=5)

    attempts = [p for p in receiver.posts if p.path == "/hook"]
    assert len(attempts) == 3
    assert all(p.body == attempts[0].body for p in attempts)
    first_gap, second_gap = attempts[1].at - attempts[0].at, attempts[2].at - attempts[1].at
    assert first_gap >= 0.15 and second_gap >= 0.3
    assert second_gap > first_gap * 1.5


def test_an_answer_slower_than_3_seconds_counts_as_failed(sandbox_state, receiver, subscribe, monkeypatch):
    monkeypatch.setattr(notifications, "DELIVERY_TIMEOUT", 0.1)  # stands for Graph's 3 s
    subscribe(ROOM)
    receiver.delays.append(0.15)  # only the first answer is slow
    _publish(sandbox_state, _change(ROOM))
    assert sandbox_state.delivery.flush()

    # The receiver saw it twice: the slow answer was retried, as Graph does.
    assert len(receiver.notifications("/hook")) == 2


def test_after_the_retry_window_the_change_is_dropped_and_missed_is_sent(sandbox_state, receiver, subscribe):
    sandbox_state.config["SANDBOX_TIME_FACTOR"] = 36000  # 4 h → 0.4 s
    subscription = subscribe(ROOM)
    receiver.failing.add("/hook")

    _publish(sandbox_state, _change(ROOM))
    assert sandbox_state.delivery.flush()

    [missed] = receiver.notifications("/hook/lifecycle")
    assert missed == {"subscriptionId": subscription["id"],
                      "subscriptionExpirationDateTime": subscription["expirationDateTime"],
                      "tenantId": DEMO_TENANT_ID, "clientState": "s3cret-state", "lifecycleEvent": "missed"}
    change_attempts = [p for p in receiver.posts if p.path == "/hook"]
    assert len(change_attempts) >= 5  # several attempts within the (scaled) four hours


def test_deleting_a_subscription_stops_pending_deliveries(sandbox_state, receiver, subscribe, graph):
    sandbox_state.config["SANDBOX_TIME_FACTOR"] = 100
    subscription = subscribe(ROOM)
    receiver.statuses.extend([503])
    _publish(sandbox_state, _change(ROOM))
    time.sleep(0.1)  # the first attempt failed; the retry is due in 0.15 s
    assert graph.delete(f"/v1.0/subscriptions/{subscription['id']}").status_code == 204
    assert sandbox_state.delivery.flush()

    assert len(receiver.notifications("/hook")) == 1


@pytest.mark.parametrize("spec, expected", [
    ({"drop": 1.0}, []),
    ({"duplicate": 1.0}, ["created", "created"]),
    ({"reorder": 1.0}, ["updated", "created"]),
])
def test_notification_faults(sandbox_state, receiver, subscribe, spec, expected):
    subscribe(ROOM)
    sandbox_state.faults.configure({"notifications": spec})
    _publish(sandbox_state, _change(ROOM, "created"))
    if spec.get("reorder"):
        _publish(sandbox_state, _change(ROOM, "updated"))
    assert sandbox_state.delivery.flush()

    posts = [p for p in receiver.posts if p.path == "/hook"]
    assert [n["changeType"] for p in posts for n in p.body["value"]] == expected
    assert all(len(p.body["value"]) == 1 for p in posts)  # a duplicate or an overtaken one comes in its own POST


def test_a_delay_fault_holds_notifications(sandbox_state, receiver, subscribe):
    subscribe(ROOM)
    sandbox_state.faults.configure({"notifications": {"delay": 1.0, "delaySeconds": 0.5}})
    started = time.monotonic()
    _publish(sandbox_state, _change(ROOM))
    assert sandbox_state.delivery.flush()

    [post] = [p for p in receiver.posts if p.path == "/hook"]
    assert post.at - started >= 0.5


def test_lifecycle_notifications_are_not_faulted(sandbox_state, receiver, subscribe):
    subscription = subscribe(ROOM)
    sandbox_state.faults.configure({"notifications": {"drop": 1.0}})
    assert sandbox_state.delivery.remove_subscription(subscription["id"])
    assert sandbox_state.delivery.flush()
    assert [n["lifecycleEvent"] for n in receiver.notifications("/hook/lifecycle")] == ["subscriptionRemoved"]


def test_admin_removal_sends_subscription_removed_and_stops_notifications(sandbox_state, receiver, subscribe, graph):
    subscription = subscribe(ROOM)

    assert sandbox_state.delivery.remove_subscription(subscription["id"]) is True
    assert sandbox_state.delivery.remove_subscription(subscription["id"]) is False
    _publish(sandbox_state, _change(ROOM))
    assert sandbox_state.delivery.flush()

    assert receiver.notifications("/hook") == []
    [removed] = receiver.notifications("/hook/lifecycle")
    assert removed == {"subscriptionId": subscription["id"],
                       "subscriptionExpirationDateTime": subscription["expirationDateTime"],
                       "tenantId": DEMO_TENANT_ID, "clientState": "s3cret-state",
                       "lifecycleEvent": "subscriptionRemoved"}
    assert graph.get(f"/v1.0/subscriptions/{subscription['id']}").status_code == 404


def test_reauthorization_is_required_near_expiry_until_renewed(sandbox_state, receiver, subscribe, graph):
    with freeze_time(now()) as frozen:
        subscription = subscribe(ROOM, minutes=3 * 60)
        assert sandbox_state.delivery.flush()
        assert receiver.notifications("/hook/lifecycle") == []

        frozen.tick(timedelta(minutes=2 * 60 + 5))  # 55 minutes left
        assert sandbox_state.delivery.flush()
        frozen.tick(timedelta(minutes=5))  # not again within 15 minutes
        assert sandbox_state.delivery.flush()
        assert [n["lifecycleEvent"] for n in receiver.notifications("/hook/lifecycle")] == ["reauthorizationRequired"]

        frozen.tick(timedelta(minutes=11))
        assert sandbox_state.delivery.flush()
        assert len(receiver.notifications("/hook/lifecycle")) == 2

        graph.authenticate()  # the app's token expired meanwhile: get a fresh one, as MSAL would
        renewed = graph.patch(f"/v1.0/subscriptions/{subscription['id']}",
                              json={"expirationDateTime": iso_z(now() + timedelta(hours=48))})
        assert renewed.status_code == 200
        frozen.tick(timedelta(minutes=30))
        assert sandbox_state.delivery.flush()
        assert len(receiver.notifications("/hook/lifecycle")) == 2


def test_expired_subscriptions_stop_delivering_and_are_removed(sandbox_state, receiver, subscribe):
    with freeze_time(now()) as frozen:
        subscription = subscribe(ROOM, minutes=30, lifecycle=None)
        frozen.tick(timedelta(minutes=31))
        _publish(sandbox_state, _change(ROOM))
        assert sandbox_state.delivery.flush()

        assert receiver.notifications("/hook") == []
        assert sandbox_state.store.get("subscription", subscription["id"]) is None


def test_a_revoked_permission_pauses_delivery_until_reauthorized(sandbox_state, receiver, subscribe, graph):
    subscription = subscribe(ROOM)
    app_doc = sandbox_state.store.get("app", DEMO_CLIENT_ID)
    granted = list(app_doc["permissions"])
    app_doc["permissions"] = [p for p in granted if not p.startswith("Calendars.")]
    sandbox_state.store.put("app", DEMO_CLIENT_ID, app_doc)

    _publish(sandbox_state, _change(ROOM, "created"))
    assert sandbox_state.delivery.flush()
    assert receiver.notifications("/hook") == []
    assert [n["lifecycleEvent"] for n in receiver.notifications("/hook/lifecycle")] == ["reauthorizationRequired"]

    app_doc["permissions"] = granted
    sandbox_state.store.put("app", DEMO_CLIENT_ID, app_doc)
    _publish(sandbox_state, _change(ROOM, "updated"))  # still paused: lost, as documented
    assert sandbox_state.delivery.flush()
    assert receiver.notifications("/hook") == []

    assert graph.post(f"/v1.0/subscriptions/{subscription['id']}/reauthorize").status_code == 204
    _publish(sandbox_state, _change(ROOM, "deleted"))
    assert sandbox_state.delivery.flush()
    assert [n["changeType"] for n in receiver.notifications("/hook")] == ["deleted"]


def test_close_stops_the_sender(sandbox_state, receiver, subscribe):
    subscribe(ROOM)
    _publish(sandbox_state, _change(ROOM))
    assert sandbox_state.delivery.flush()
    thread = sandbox_state.delivery._thread
    sandbox_state.delivery.close()
    assert thread is not None and not thread.is_alive()
