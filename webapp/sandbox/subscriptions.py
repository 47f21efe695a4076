"""Graph change-notification subscriptions on Outlook events: `/v1.0/subscriptions`.

Routes (on `graph.bp`):
- `POST /subscriptions` → 201 and the subscription ([D:api-reference/v1.0/api/subscription-post-subscriptions.md]).
- `GET /subscriptions` → this app's live subscriptions, `clientState` null as documented
  ([D:api-reference/v1.0/api/subscription-list.md]: "not returned for security purposes").
- `GET /subscriptions/{id}` → 200 ([D:api-reference/v1.0/api/subscription-get.md]).
- `PATCH /subscriptions/{id}` → 200; renews (`expirationDateTime`) and/or moves (`notificationUrl`, validated
  again); renewing also reauthorizes ([D:api-reference/v1.0/api/subscription-update.md], graph-facts §4.6).
- `POST /subscriptions/{id}/reauthorize` → 204 ([D:api-reference/v1.0/api/subscription-reauthorize.md]).
- `DELETE /subscriptions/{id}` → 204.

Public API besides the routes: `subscription_json(doc)` (a stored subscription as Graph renders it),
`MAX_LIFETIME_MINUTES`.

Rules (graph-facts §4.1–§4.3):
- `resource`: `users/{id|userPrincipalName}/events` or `users/{id|upn}/calendar/events`, with or without a
  leading "/" (any casing of "users"/"events"). The mailbox must exist and have Exchange Online
  (`directory.resolve_mailbox`: 404 otherwise).
- `changeType`: a comma-separated subset of created, updated, deleted.
- `notificationUrl` and `lifecycleNotificationUrl` must be `https`. DIVERGENCE (README's list): plain `http`
  is accepted when the host is loopback (127.0.0.1, localhost, [::1]) so the demo app needs no certificate.
- `clientState`: at most 128 characters (the subscription resource page; changeNotification.md says 255 —
  we take the stricter).
- `expirationDateTime`: required, in the future, and at most `MAX_LIFETIME_MINUTES` (4,230 = "under 3 days",
  the Outlook event row of [D:api-reference/v1.0/resources/subscription.md] and every stored copy of the
  lifetime table) from now, else 400 `ExtensionError` "Subscription expiration can only be 4230 minutes in
  the future." (the message Graph returned, [GH:microsoftgraph/microsoft-graph-docs-contrib#7726]). Newer
  pages are quoted as 10,080 (UNCONFIRMED, §4.3): the stricter documented value is the default, the config
  key `SANDBOX_SUBSCRIPTION_MAX_MINUTES` overrides it.
- `includeResourceData: true` (rich notifications) is not emulated: 400.
- The validation handshake (`Delivery.validate_endpoint`) runs for both URLs on create, and for a new
  `notificationUrl` on update; failure → 400 `InvalidRequest` "Subscription validation request failed.
  Notification endpoint must respond with 200 OK to validation request." (the error Graph returns, quoted in
  abraunegg/onedrive's source).
- Permissions: Calendars.Read (documented least privilege) or Calendars.ReadWrite. A subscription belongs to
  the app that created it; another app's id answers 404 like an unknown one.
- Status codes the docs leave open are marked UNCONFIRMED where they are raised; clients should act on the
  HTTP status, not the code.

Storage: kind "subscription", owner = the mailbox's user id (so a change finds its subscriptions at once);
the document is the Graph JSON plus private `_`-prefixed fields (never rendered).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app, g, request

from . import sandbox_state
from .auth import require
from .clock import iso_z, now, parse_graph_datetime
from .directory import resolve_mailbox
from .errors import GraphError
from .graph import bp
from .notifications import SUBSCRIPTION_GRANTS, subscription_expired
from .paging import context_url

MAX_LIFETIME_MINUTES = 4230
MAX_CLIENT_STATE = 128
CHANGE_TYPES = ("created", "updated", "deleted")
TLS_VERSIONS = ("v1_0", "v1_1", "v1_2", "v1_3")
_RESOURCE = re.compile(r"^/?users/(?P<key>[^/]+)/(?:calendar/)?events/?$", re.IGNORECASE)
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_VALIDATION_FAILED = ("Subscription validation request failed. Notification endpoint must respond with 200 OK "
                      "to validation request.")
# Field order of the documented create response.
_PUBLIC_FIELDS = ("id", "resource", "applicationId", "changeType", "clientState", "notificationUrl",
                  "notificationQueryOptions", "lifecycleNotificationUrl", "expirationDateTime", "creatorId",
                  "includeResourceData", "latestSupportedTlsVersion", "encryptionCertificate",
                  "encryptionCertificateId", "notificationUrlAppId", "notificationContentType")


def _invalid(message: str, code: str = "InvalidRequest") -> GraphError:
    return GraphError(400, code, message)


def subscription_json(doc: dict, *, hide_client_state: bool = False) -> dict:
    body = {name: doc.get(name) for name in _PUBLIC_FIELDS}
    if hide_client_state:
        body["clientState"] = None
    return body


def _check_url(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{name} is a required property for subscription creation.")
    parts = urlsplit(value.strip())
    # DIVERGENCE: Graph requires https; plain http is accepted on loopback only (demo app without certificate).
    loopback_http = parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS
    if not parts.hostname or not (parts.scheme == "https" or loopback_http):
        # Wording UNCONFIRMED; the rule (HTTPS only) is documented on the subscription resource page.
        raise _invalid(f"The {name} must use the HTTPS protocol.")
    return value.strip()


def _check_change_type(value) -> str:
    types = [part.strip() for part in value.split(",")] if isinstance(value, str) else []
    if not types or any(t not in CHANGE_TYPES for t in types) or len(set(types)) != len(types):
        raise _invalid("changeType must be a comma-separated list of: created, updated, deleted.")
    return ",".join(types)


def _max_lifetime() -> int:
    return int(current_app.config.get("SANDBOX_SUBSCRIPTION_MAX_MINUTES") or MAX_LIFETIME_MINUTES)


def _check_expiration(value) -> datetime:
    if not isinstance(value, str) or not value.strip():
        # The message Graph returns ([GH:microsoftgraph/microsoft-graph-docs-contrib#7399]).
        raise _invalid("expirationDateTime is a required property for subscription creation.")
    try:
        expires = parse_graph_datetime(value, "UTC")  # a DateTimeOffset without offset is read as UTC
    except ValueError:
        raise _invalid("Could not process subscription creation payload. "
                       "expirationDateTime is not a valid DateTimeOffset.") from None
    current = now()
    if expires <= current:
        # Status documented only as "will fail"; wording UNCONFIRMED.
        raise _invalid("Subscription expiration must be in the future.", "ExtensionError")
    limit = _max_lifetime()
    if expires > current + timedelta(minutes=limit):
        raise _invalid(f"Subscription expiration can only be {limit} minutes in the future.", "ExtensionError")
    return expires


def _parse_resource(value) -> dict:
    match = _RESOURCE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        # Only Outlook events are emulated; wording UNCONFIRMED.
        raise _invalid(f"Resource '{value}' is not supported for subscriptions in this tenant.")
    return resolve_mailbox(match["key"].strip("'"))


def _own_subscription(subscription_id: str) -> dict:
    """This app's live subscription (an expired one is deleted on sight, as Graph deletes it)."""
    store = sandbox_state().store
    doc = store.get("subscription", subscription_id)
    if doc is not None and subscription_expired(doc):
        store.delete("subscription", subscription_id)
        doc = None
    if doc is None or doc["applicationId"] != g.sandbox_app["appId"]:
        # UNCONFIRMED code; the status is what clients act on (404 → recreate).
        raise GraphError(404, "ResourceNotFound", f"The object was not found. Subscription '{subscription_id}'.")
    return doc


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _invalid("Could not process subscription creation payload. The request body is not a JSON object.")
    return body


def _validate_or_fail(url: str) -> None:
    if not sandbox_state().delivery.validate_endpoint(url):
        raise _invalid(_VALIDATION_FAILED)


@bp.post("/subscriptions")
@require(*SUBSCRIPTION_GRANTS)
def create_subscription():
    body = _body()
    change_type = _check_change_type(body.get("changeType"))
    notification_url = _check_url(body.get("notificationUrl"), "notificationUrl")
    lifecycle_url = body.get("lifecycleNotificationUrl")
    if lifecycle_url is not None:
        lifecycle_url = _check_url(lifecycle_url, "lifecycleNotificationUrl")
    client_state = body.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE):
        raise _invalid(f"clientState must be a string of at most {MAX_CLIENT_STATE} characters.")
    expires = _check_expiration(body.get("expirationDateTime"))
    if body.get("includeResourceData"):
        raise _invalid("Change notifications with resource data are not supported by this tenant.")
    tls = body.get("latestSupportedTlsVersion") or "v1_2"  # Graph's default, subscription resource page
    if tls not in TLS_VERSIONS:
        raise _invalid(f"latestSupportedTlsVersion must be one of: {', '.join(TLS_VERSIONS)}.")
    mailbox = _parse_resource(body.get("resource"))

    # The handshakes are network calls (up to 10 s each): never under the store lock.
    _validate_or_fail(notification_url)
    if lifecycle_url:
        _validate_or_fail(lifecycle_url)

    app_doc = g.sandbox_app
    doc = {
        "id": str(uuid.uuid4()),
        "resource": body["resource"],
        "applicationId": app_doc["appId"],
        "changeType": change_type,
        "clientState": client_state,
        "notificationUrl": notification_url,
        "notificationQueryOptions": None,
        "lifecycleNotificationUrl": lifecycle_url,
        "expirationDateTime": iso_z(expires),
        # App-only: the app's service principal; the sandbox has one object per app, keyed by appId.
        "creatorId": app_doc.get("servicePrincipalId", app_doc["appId"]),
        "includeResourceData": False,
        "latestSupportedTlsVersion": tls,
        "encryptionCertificate": None,
        "encryptionCertificateId": None,
        "notificationUrlAppId": None,
        "notificationContentType": "application/json",
    }
    state = sandbox_state()
    state.store.put("subscription", doc["id"], doc, owner=mailbox["id"])
    state.delivery.subscription_created()
    body_out = {"@odata.context": context_url("subscriptions/$entity"), **subscription_json(doc)}
    return body_out, 201


@bp.get("/subscriptions")
@require(*SUBSCRIPTION_GRANTS)
def list_subscriptions():
    app_id = g.sandbox_app["appId"]
    docs = [d for d in sandbox_state().store.all("subscription")
            if d["applicationId"] == app_id and not subscription_expired(d)]
    docs.sort(key=lambda d: d["expirationDateTime"])
    return {"@odata.context": context_url("subscriptions"),
            "value": [subscription_json(d, hide_client_state=True) for d in docs]}


@bp.get("/subscriptions/<subscription_id>")
@require(*SUBSCRIPTION_GRANTS)
def get_subscription(subscription_id: str):
    doc = _own_subscription(subscription_id)
    return {"@odata.context": context_url("subscriptions/$entity"), **subscription_json(doc)}


@bp.patch("/subscriptions/<subscription_id>")
@require(*SUBSCRIPTION_GRANTS)
def update_subscription(subscription_id: str):
    _own_subscription(subscription_id)
    body = _body()
    if "lifecycleNotificationUrl" in body:
        # Documented: it cannot be added or changed later; delete and recreate (graph-facts §4.1).
        raise _invalid("lifecycleNotificationUrl cannot be updated; delete the subscription and create a new one.")
    if not body.get("expirationDateTime") and not body.get("notificationUrl"):
        # The message Graph returns (quoted in microsoftgraph/microsoft-graph-docs-contrib#9498).
        raise _invalid("Subscription must contain either the 'expirationDateTime' or 'notificationUrl' "
                       "property and its value.")
    expires = _check_expiration(body["expirationDateTime"]) if body.get("expirationDateTime") else None
    notification_url = _check_url(body["notificationUrl"], "notificationUrl") if body.get("notificationUrl") else None
    if notification_url:
        _validate_or_fail(notification_url)
    store = sandbox_state().store
    with store.lock:
        doc = _own_subscription(subscription_id)
        if expires is not None:
            doc["expirationDateTime"] = iso_z(expires)
            # Renewing reauthorizes too (graph-facts §4.6): challenges start afresh before the new expiry.
            doc.pop("_reauthorizationRequired", None)
            doc.pop("_reauthorizationSentAt", None)
        if notification_url:
            doc["notificationUrl"] = notification_url
        store.put("subscription", subscription_id, doc, owner=store.owner_of("subscription", subscription_id))
    return {"@odata.context": context_url("subscriptions/$entity"), **subscription_json(doc)}


@bp.post("/subscriptions/<subscription_id>/reauthorize")
@require(*SUBSCRIPTION_GRANTS)
def reauthorize_subscription(subscription_id: str):
    store = sandbox_state().store
    with store.lock:
        doc = _own_subscription(subscription_id)
        doc.pop("_reauthorizationRequired", None)
        store.put("subscription", subscription_id, doc, owner=store.owner_of("subscription", subscription_id))
    return "", 204


@bp.delete("/subscriptions/<subscription_id>")
@require(*SUBSCRIPTION_GRANTS)
def delete_subscription(subscription_id: str):
    store = sandbox_state().store
    with store.lock:
        _own_subscription(subscription_id)
        store.delete("subscription", subscription_id)
    return "", 204
