"""`/v1.0/subscriptions` against the documented behaviour (graph-facts §4.1–§4.3; examples under
tests/data/graph/subscriptions/)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from freezegun import freeze_time

from webapp.sandbox.clock import iso_z, now
from webapp.sandbox.seed import DEMO_TENANT_ID, hash_secret, user_id_for

EXAMPLES = Path(__file__).parents[1] / "data" / "graph" / "subscriptions"
ROOM = "board-room-a@roomsync.test"
VALIDATION_FAILED = ("Subscription validation request failed. Notification endpoint must respond with 200 OK "
                     "to validation request.")


def _request(**overrides) -> dict:
    body = {"changeType": "created,updated,deleted", "notificationUrl": "https://app.test/hook",
            "lifecycleNotificationUrl": "https://app.test/hook/lifecycle", "resource": f"users/{ROOM}/events",
            "expirationDateTime": iso_z(now() + timedelta(hours=48)), "clientState": "s3cret-state",
            "latestSupportedTlsVersion": "v1_2"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _error(response) -> tuple[int, str, str]:
    error = response.get_json()["error"]
    return response.status_code, error["code"], error["message"]


@pytest.fixture(autouse=True)
def _room_exists(sandbox_state):
    assert sandbox_state.store.get("user", user_id_for(ROOM)) is not None, "seed changed: pick another room"


def test_create_returns_the_documented_subscription(graph, receiver, sandbox_state):
    response = graph.post("/v1.0/subscriptions", json=_request())

    assert response.status_code == 201
    body = response.get_json()
    documented = json.loads((EXAMPLES / "create-response.json").read_text())
    assert set(documented) - {"_source"} <= set(body)
    assert body["@odata.context"].endswith("/v1.0/$metadata#subscriptions/$entity")
    assert body["resource"] == f"users/{ROOM}/events"
    assert body["changeType"] == "created,updated,deleted"
    assert body["clientState"] == "s3cret-state"
    assert body["notificationUrl"] == "https://app.test/hook"
    assert body["lifecycleNotificationUrl"] == "https://app.test/hook/lifecycle"
    assert body["applicationId"] and body["creatorId"]
    assert body["latestSupportedTlsVersion"] == "v1_2"
    assert body["notificationContentType"] == "application/json"
    assert body["includeResourceData"] is False
    assert body["expirationDateTime"].endswith("Z") and len(body["expirationDateTime"].split(".")[1]) == 8
    assert not [key for key in body if key.startswith("_")]
    assert sandbox_state.store.owner_of("subscription", body["id"]) == user_id_for(ROOM)


def test_both_urls_get_the_validation_handshake_with_a_token_that_needs_decoding(graph, receiver):
    graph.post("/v1.0/subscriptions", json=_request())

    assert len(receiver.validations) == 2
    for token in receiver.validations:
        assert token.startswith("Validation: Testing client application reachability")
        assert quote(token) != token  # an endpoint echoing the raw query value would fail


@pytest.mark.parametrize("reply", [
    lambda token: (quote(token), 200, {"Content-Type": "text/plain"}),  # still URL-encoded
    lambda token: (token, 202, {"Content-Type": "text/plain"}),  # not 200
    lambda token: (json.dumps(token), 200, {"Content-Type": "application/json"}),  # not text/plain
    lambda token: ("", 500, {}),
])
def test_a_failed_handshake_refuses_the_subscription(graph, receiver, sandbox_state, reply):
    receiver.validation_reply = reply

    response = graph.post("/v1.0/subscriptions", json=_request())

    assert _error(response) == (400, "InvalidRequest", VALIDATION_FAILED)
    assert sandbox_state.store.all("subscription") == []


def test_a_failing_lifecycle_url_handshake_refuses_it_too(graph, receiver, sandbox_state):
    receiver.validation_reply = lambda token: (
        (token, 200, {"Content-Type": "text/plain"}) if len(receiver.validations) == 1 else ("", 404, {}))

    response = graph.post("/v1.0/subscriptions", json=_request())

    assert _error(response)[:2] == (400, "InvalidRequest")
    assert sandbox_state.store.all("subscription") == []


def test_an_unreachable_endpoint_fails_validation_over_http(graph, sandbox_state):
    sandbox_state.delivery.set_transport(None)  # real HTTP to a closed port
    response = graph.post("/v1.0/subscriptions", json=_request(notificationUrl="http://127.0.0.1:9/hook",
                                                               lifecycleNotificationUrl=None))
    assert _error(response) == (400, "InvalidRequest", VALIDATION_FAILED)


@pytest.mark.parametrize("url, accepted", [
    ("https://app.example.com/hook", True),
    ("http://127.0.0.1:5000/hook", True),  # divergence: loopback http for the demo
    ("http://localhost:5000/hook", True),
    ("http://[::1]:5000/hook", True),
    ("http://app.example.com/hook", False),
    ("http://10.0.0.5/hook", False),
    ("ftp://127.0.0.1/hook", False),
    ("not a url", False),
])
def test_notification_urls_must_be_https_except_on_loopback(graph, receiver, url, accepted):
    for field in ("notificationUrl", "lifecycleNotificationUrl"):
        response = graph.post("/v1.0/subscriptions", json=_request(**{field: url}))
        assert (response.status_code == 201) is accepted, (field, response.get_json())


def test_expiration_is_required_and_bounded_by_the_outlook_maximum(graph, receiver):
    assert _error(graph.post("/v1.0/subscriptions", json=_request(expirationDateTime=None))) == (
        400, "InvalidRequest", "expirationDateTime is a required property for subscription creation.")

    too_long = graph.post("/v1.0/subscriptions",
                          json=_request(expirationDateTime=iso_z(now() + timedelta(minutes=4231))))
    assert _error(too_long) == (400, "ExtensionError",
                                "Subscription expiration can only be 4230 minutes in the future.")

    in_the_past = graph.post("/v1.0/subscriptions", json=_request(expirationDateTime="2020-01-01T00:00:00Z"))
    assert in_the_past.status_code == 400

    longest = graph.post("/v1.0/subscriptions",
                         json=_request(expirationDateTime=iso_z(now() + timedelta(minutes=4229))))
    assert longest.status_code == 201


def test_the_maximum_lifetime_is_configurable(graph, receiver, sandbox_app):
    sandbox_app.config["SANDBOX_SUBSCRIPTION_MAX_MINUTES"] = 10080
    response = graph.post("/v1.0/subscriptions", json=_request(expirationDateTime=iso_z(now() + timedelta(days=6))))
    assert response.status_code == 201


def test_expiration_accepts_graphs_seven_fraction_digits(graph, receiver):
    tomorrow = now() + timedelta(days=1)
    response = graph.post("/v1.0/subscriptions",
                          json=_request(expirationDateTime=tomorrow.strftime("%Y-%m-%dT%H:%M:%S.1234567Z")))
    assert response.status_code == 201
    assert response.get_json()["expirationDateTime"] == tomorrow.strftime("%Y-%m-%dT%H:%M:%S.1234560Z")


def test_expiration_with_an_offset_is_converted_to_utc(graph, receiver):
    tomorrow = now() + timedelta(days=1)
    with_offset = tomorrow.astimezone(timezone(timedelta(hours=2))).isoformat()
    response = graph.post("/v1.0/subscriptions", json=_request(expirationDateTime=with_offset))
    assert response.status_code == 201
    returned = datetime.fromisoformat(response.get_json()["expirationDateTime"][:26] + "+00:00")
    assert abs(returned - tomorrow) < timedelta(seconds=1)


@pytest.mark.parametrize("overrides", [
    {"changeType": "created,moved"},
    {"changeType": ""},
    {"resource": "me/events"},
    {"resource": f"users/{ROOM}/messages"},
    {"clientState": "x" * 129},
    {"includeResourceData": True},
    {"latestSupportedTlsVersion": "v2_0"},
    {"notificationUrl": None},
])
def test_invalid_requests_answer_400(graph, receiver, sandbox_state, overrides):
    body = _request(**overrides)
    if overrides.get("notificationUrl", "") is None:
        body.pop("notificationUrl", None)
    response = graph.post("/v1.0/subscriptions", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"]
    assert sandbox_state.store.all("subscription") == []


def test_client_state_may_be_128_characters_or_absent(graph, receiver):
    assert graph.post("/v1.0/subscriptions", json=_request(clientState="x" * 128)).status_code == 201
    absent = graph.post("/v1.0/subscriptions", json=_request(clientState=None))
    assert absent.status_code == 201 and absent.get_json()["clientState"] is None


@pytest.mark.parametrize("resource", [
    f"users/{ROOM}/events", f"/users/{ROOM}/events", f"Users/{ROOM.upper()}/Events",
    f"users/{user_id_for(ROOM)}/events", f"users/{ROOM}/calendar/events",
])
def test_event_resource_forms(graph, receiver, sandbox_state, resource):
    response = graph.post("/v1.0/subscriptions", json=_request(resource=resource))
    assert response.status_code == 201
    assert response.get_json()["resource"] == resource
    assert sandbox_state.store.owner_of("subscription", response.get_json()["id"]) == user_id_for(ROOM)


def test_unknown_mailbox_is_404(graph, receiver):
    response = graph.post("/v1.0/subscriptions", json=_request(resource="users/nobody@roomsync.test/events"))
    assert response.status_code == 404


def test_list_get_and_delete_are_scoped_to_the_calling_app(graph, receiver, subscribe, sandbox_app,
                                                          sandbox_state, fetch_token):
    mine = subscribe(ROOM)
    sandbox_state.store.put("app", "other-app", {"appId": "other-app", "tenantId": DEMO_TENANT_ID,
                                                  "secretHash": hash_secret("other-secret"),
                                                  "permissions": ["Calendars.Read"], "enabled": True})
    other = sandbox_app.test_client()
    token = fetch_token(client_id="other-app", secret="other-secret").get_json()["access_token"]
    other.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    listed = graph.get("/v1.0/subscriptions").get_json()
    assert listed["@odata.context"].endswith("/v1.0/$metadata#subscriptions")
    assert [s["id"] for s in listed["value"]] == [mine["id"]]
    assert listed["value"][0]["clientState"] is None  # documented: not returned when listing
    assert graph.get(f"/v1.0/subscriptions/{mine['id']}").get_json()["clientState"] == "s3cret-state"

    assert other.get("/v1.0/subscriptions").get_json()["value"] == []
    assert other.get(f"/v1.0/subscriptions/{mine['id']}").status_code == 404
    assert other.delete(f"/v1.0/subscriptions/{mine['id']}").status_code == 404

    assert graph.delete(f"/v1.0/subscriptions/{mine['id']}").status_code == 204
    assert graph.get(f"/v1.0/subscriptions/{mine['id']}").status_code == 404
    assert graph.delete(f"/v1.0/subscriptions/{mine['id']}").status_code == 404


def test_renewal_extends_within_the_maximum(graph, receiver, subscribe):
    subscription = subscribe(ROOM, minutes=30)
    url = f"/v1.0/subscriptions/{subscription['id']}"
    later = iso_z(now() + timedelta(minutes=4000))

    renewed = graph.patch(url, json={"expirationDateTime": later})
    assert renewed.status_code == 200
    assert renewed.get_json()["expirationDateTime"] == later
    assert graph.get(url).get_json()["expirationDateTime"] == later

    too_far = graph.patch(url, json={"expirationDateTime": iso_z(now() + timedelta(minutes=5000))})
    assert _error(too_far)[:2] == (400, "ExtensionError")
    assert _error(graph.patch(url, json={})) == (
        400, "InvalidRequest",
        "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' property and its value.")
    assert graph.patch(url, json={"lifecycleNotificationUrl": "https://app.test/other"}).status_code == 400


def test_changing_the_notification_url_validates_it_again(graph, receiver, subscribe):
    subscription = subscribe(ROOM)
    url = f"/v1.0/subscriptions/{subscription['id']}"
    before = len(receiver.validations)

    moved = graph.patch(url, json={"notificationUrl": "https://app.test/hook/v2"})
    assert moved.status_code == 200 and moved.get_json()["notificationUrl"] == "https://app.test/hook/v2"
    assert len(receiver.validations) == before + 1

    receiver.validation_reply = lambda token: ("nope", 200, {"Content-Type": "text/plain"})
    refused = graph.patch(url, json={"notificationUrl": "https://app.test/hook/v3"})
    assert _error(refused) == (400, "InvalidRequest", VALIDATION_FAILED)
    assert graph.get(url).get_json()["notificationUrl"] == "https://app.test/hook/v2"


def test_reauthorize_answers_204(graph, receiver, subscribe):
    subscription = subscribe(ROOM)
    response = graph.post(f"/v1.0/subscriptions/{subscription['id']}/reauthorize")
    assert response.status_code == 204 and response.data == b""
    assert graph.post("/v1.0/subscriptions/no-such-id/reauthorize").status_code == 404


def test_an_app_without_calendar_permission_gets_403(graph, receiver, sandbox_state):
    app_doc = next(a for a in sandbox_state.store.all("app"))
    app_doc["permissions"] = ["User.Read.All"]
    sandbox_state.store.put("app", app_doc["appId"], app_doc)
    response = graph.post("/v1.0/subscriptions", json=_request())
    assert _error(response)[:2] == (403, "ErrorAccessDenied")


def test_an_expired_subscription_is_gone(graph, receiver):
    with freeze_time(now()) as frozen:
        created = graph.post("/v1.0/subscriptions",
                             json=_request(expirationDateTime=iso_z(now() + timedelta(minutes=10))))
        assert created.status_code == 201
        frozen.tick(timedelta(minutes=11))

        assert graph.get(f"/v1.0/subscriptions/{created.get_json()['id']}").status_code == 404
        assert graph.get("/v1.0/subscriptions").get_json()["value"] == []
