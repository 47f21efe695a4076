"""The sandbox's admin API: faults on demand and tenant administration. Not part of Graph.

Every route needs the header `X-Sandbox-Key: <SANDBOX_ADMIN_KEY>` (401 otherwise) and answers JSON; errors
use the Graph error shape so one client helper reads both.

Routes (prefix /_sandbox):
- `GET /faults` → the fault configuration (`Faults.snapshot()`); `PUT /faults` replaces it (body: the spec
  documented in `faults.py`; 400 on a malformed one) and answers the new snapshot; `DELETE /faults` → 204,
  every fault off.
- `PUT /throttle` {"budget", "windowSeconds", "concurrency"} (each optional) → the throttle limits, and
  clears the counters (benchmarks and tests shrink the window; defaults are Outlook's 10,000 / 600 s / 4).
- `POST /reset` → the tenant back to its seed: store emptied and reseeded, faults off, throttle counters
  cleared. Changes of the wiped state are not announced (a reset is not something Graph can do).
- `POST /permissions/revoke` and `/permissions/grant` {"permission": "Calendars.ReadWrite", "appId"?
  (default: the demo app)} → the app's permissions. Graph checks live grants, so the next call answers 403.
- `PUT /rooms/<email>/processing` {"bookingWindowInDays", "enforceSchedulingHorizon", "maximumDurationInMinutes",
  "automateProcessing", "allowRecurringMeetings"} (each optional) → the room mailbox's Set-CalendarProcessing
  settings that `calendar.processing_settings` reads, merged into what it had; answers the room's effective
  settings. 404 if there is no such room mailbox, 400 on an unknown key or a value of the wrong type or range
  (Exchange: BookingWindowInDays 0–1080, MaximumDurationInMinutes 0–2147483647, AutomateProcessing None,
  AutoUpdate or AutoAccept). Applies to the next request the room processes.
- `POST /rooms/<email>/delete` → the room disappears from Places and its mailbox from the directory (calls
  on it then answer `ErrorInvalidUser`); 404 if there is no such room.
- `POST /subscriptions/<id>/remove` → the subscription is deleted and `subscriptionRemoved` sent
  (`Delivery.remove_subscription`); 404 if unknown.
- `POST /delta/expire` → every delta token issued so far answers `syncStateNotFound` (`Faults.expire_delta_tokens`).
- `GET /state` → a summary: document counts by kind, app permissions, faults, throttle limits.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, request

from . import sandbox_state
from .calendar import processing_settings
from .errors import GraphError
from .seed import DEMO_CLIENT_ID, seed_tenant

bp = Blueprint("admin_api", __name__, url_prefix="/_sandbox")

_KINDS = ["tenant", "app", "token", "user", "photo", "contact", "person", "room", "roomList", "event",
          "subscription", "deltaToken", "transaction"]


@bp.before_request
def require_admin_key():
    given = request.headers.get("X-Sandbox-Key", "")
    if not hmac.compare_digest(given.encode(), str(current_app.config["SANDBOX_ADMIN_KEY"]).encode()):
        raise GraphError(401, "Unauthorized", "The X-Sandbox-Key header is missing or wrong.")


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
    return body


@bp.get("/faults")
def get_faults():
    return sandbox_state().faults.snapshot()


@bp.put("/faults")
def put_faults():
    faults = sandbox_state().faults
    try:
        faults.configure(_json_body())
    except ValueError as error:
        raise GraphError(400, "BadRequest", str(error)) from None
    return faults.snapshot()


@bp.delete("/faults")
def delete_faults():
    sandbox_state().faults.reset()
    return "", 204


@bp.put("/throttle")
def put_throttle():
    body = _json_body()
    limits = {"budget": body.get("budget"), "window_seconds": body.get("windowSeconds"),
              "concurrency": body.get("concurrency")}
    for name, value in limits.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise GraphError(400, "BadRequest", f"{name} must be a positive number")
    throttle = sandbox_state().throttle
    throttle.configure(**limits)
    throttle.reset()
    return _throttle_limits()


def _throttle_limits() -> dict:
    throttle = sandbox_state().throttle
    return {"budget": throttle.budget, "windowSeconds": throttle.window_seconds, "concurrency": throttle.concurrency}


@bp.post("/reset")
def reset_tenant():
    state = sandbox_state()
    with state.store.lock:
        state.store.reset()
        seed_tenant(state.store)
    state.faults.reset()
    state.throttle.reset()
    return _summary()


def _change_permission(grant: bool):
    body = _json_body()
    permission = body.get("permission")
    if not isinstance(permission, str) or not permission:
        raise GraphError(400, "BadRequest", "Give the permission to change as {\"permission\": \"…\"}.")
    store = sandbox_state().store
    app_id = body.get("appId", DEMO_CLIENT_ID)
    with store.lock:
        app_doc = store.get("app", app_id)
        if app_doc is None:
            raise GraphError(404, "NotFound", f"No application '{app_id}'.")
        permissions = [p for p in app_doc.get("permissions", []) if p != permission]
        if grant:
            permissions.append(permission)
        app_doc["permissions"] = permissions
        store.put("app", app_id, app_doc)
    return {"appId": app_id, "permissions": permissions}


@bp.post("/permissions/revoke")
def revoke_permission():
    return _change_permission(grant=False)


@bp.post("/permissions/grant")
def grant_permission():
    return _change_permission(grant=True)


def _int_in(low: int, high: int):
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


_PROCESSING_KEYS = {
    "bookingWindowInDays": _int_in(0, 1080),
    "maximumDurationInMinutes": _int_in(0, 2_147_483_647),
    "enforceSchedulingHorizon": lambda value: isinstance(value, bool),
    "allowRecurringMeetings": lambda value: isinstance(value, bool),
    "automateProcessing": lambda value: value in ("None", "AutoUpdate", "AutoAccept"),
}


@bp.put("/rooms/<email>/processing")
def set_room_processing(email: str):
    body = _json_body()
    for key, value in body.items():
        valid = _PROCESSING_KEYS.get(key)
        if valid is None:
            raise GraphError(400, "BadRequest", f"Unknown calendar processing setting '{key}'; known: "
                             f"{', '.join(sorted(_PROCESSING_KEYS))}.")
        if not valid(value):
            raise GraphError(400, "BadRequest", f"{value!r} is not a valid value for {key}.")
    store = sandbox_state().store
    with store.lock:
        user = next((u for u in store.all("user") if u.get("isRoom") and email.lower() in
                     ((u.get("mail") or "").lower(), (u.get("userPrincipalName") or "").lower())), None)
        if user is None:
            raise GraphError(404, "ErrorItemNotFound", f"No room mailbox '{email}'.")
        # The user document's settings win over the room document's (see calendar.processing_settings).
        user["calendarProcessing"] = {**(user.get("calendarProcessing") or {}), **body}
        store.put("user", user["id"], user)
        effective = processing_settings(store, user)
    return {"room": user.get("mail") or user.get("userPrincipalName"), "calendarProcessing": effective}


@bp.post("/rooms/<email>/delete")
def delete_room(email: str):
    store = sandbox_state().store
    with store.lock:
        room = next((r for r in store.all("room") if r["emailAddress"].lower() == email.lower()), None)
        if room is None:
            raise GraphError(404, "ErrorItemNotFound", f"No room '{email}'.")
        store.delete("room", room["id"])
        store.delete("user", room["id"])
        store.delete("photo", room["id"])
    return {"deleted": room["emailAddress"], "id": room["id"]}


@bp.post("/subscriptions/<subscription_id>/remove")
def remove_subscription(subscription_id: str):
    if not sandbox_state().delivery.remove_subscription(subscription_id):
        raise GraphError(404, "ResourceNotFound", f"No subscription '{subscription_id}'.")
    return {"removed": subscription_id}


@bp.post("/delta/expire")
def expire_delta_tokens():
    faults = sandbox_state().faults
    faults.expire_delta_tokens()
    return {"expireDeltaTokensBefore": faults.snapshot()["expireDeltaTokensBefore"]}


def _summary() -> dict:
    state = sandbox_state()
    return {
        "documents": {kind: len(state.store.ids(kind)) for kind in _KINDS},
        "apps": [{"appId": a["appId"], "permissions": a.get("permissions", []), "enabled": a.get("enabled", True)}
                 for a in state.store.all("app")],
        "faults": state.faults.snapshot(),
        "throttle": _throttle_limits(),
    }


@bp.get("/state")
def get_state():
    return _summary()
