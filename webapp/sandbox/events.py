"""Graph event routes on `graph.bp` (/v1.0): thin views over `calendar` and `event_json`.

Routes ({user} is an id or a userPrincipalName; `/calendar/...` forms are the same views):
- `POST /users/{user}/events` (201; a repeated `transactionId` answers 201 with the first event),
  `GET /users/{user}/events` (single instances and series masters; `$top`, `$skip`, `$select`, and
  `$filter=iCalUId eq '…'` — the one filter we serve: the organizer's, attendees' and rooms' copies of a meeting
  share it, and a series master's identifies its series (graph-facts §3.1). The value is an OData string
  literal (`''` for a quote) compared case-insensitively; any other `$filter` → 400
  `ErrorInvalidUrlQueryFilter`. Graph's `uid` property is not filterable in its documentation, so not here),
- `GET|PATCH|DELETE /users/{user}/events/{id}` (200 / 200 / 204; `$select` on GET),
- `POST /users/{user}/events/{id}/cancel` (`{"comment"}`, organizer only), `/accept`,
  `/tentativelyAccept`, `/decline` (`{"comment", "sendResponse", "proposedNewTime"}`): 202, no body,
- `GET /users/{user}/calendarView?startDateTime&endDateTime` and `GET /users/{user}/events/{id}/instances?…`
  (both parameters required: 400 `ErrorInvalidParameter`; ISO 8601, UTC unless the value has an offset, not
  affected by `Prefer: outlook.timezone`; default page 10 (graph-facts §3.4), `$top` up to 1000, `$skip`
  nextLinks, `$select`, `$orderby` on start/dateTime or end/dateTime),
- `GET /users/{user}/calendarView/delta` (first call with the window, `Prefer: odata.maxpagesize`, default 10
  per page; `@odata.nextLink` with `$skiptoken`, the last page `@odata.deltaLink` with `$deltatoken`; later
  rounds return only what changed, removals as `@removed`; `$select` is not supported, as documented; an
  expired or unknown token → 410 `syncStateNotFound`),
- `expire_delta_tokens(state)` — forget every delta and skip token (the admin API's "expire a delta token").

Headers honoured: `Prefer: outlook.timezone="…"` (answered with `Preference-Applied`),
`Prefer: IdType="ImmutableId"` (our ids never change, so both id types are the same value),
`Prefer: odata.maxpagesize=N` on delta.

Error codes chosen (graph-facts §5.3 and observed Graph answers): unreadable JSON, wrong JSON types and
unknown properties → 400 `UnableToDeserializePostBody`; semantic validation (missing start/end, recurrence,
all-day rules) → 400 `ErrorPropertyValidationFailure`; an unknown zone → 400
`TimeZoneNotSupportedException`; end before start → 400 `ErrorCalendarEndDateIsEarlierThanStartDate`;
unknown event → 404 `ErrorItemNotFound`; unknown user → 404 `ErrorInvalidUser`; user without a mailbox → 404
`MailboxNotEnabledForRESTAPI`. Permissions: `Calendars.ReadWrite` for writes, `Calendars.Read` or
`Calendars.ReadWrite` for reads ([D:api-reference/v1.0/api/user-list-calendarview.md]).
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime

from flask import current_app, request

from .graph import bp  # first: importing this module alone must load the blueprint before its users

from . import calendar, directory, event_json, paging, sandbox_state  # noqa: E402
from .auth import require  # noqa: E402
from .clock import iso_z, now, parse_graph_datetime  # noqa: E402
from .errors import GraphError  # noqa: E402

READ = ("Calendars.Read", "Calendars.ReadWrite")
WRITE = ("Calendars.ReadWrite",)
DEFAULT_PAGE, MAX_PAGE = 10, 1000
DELTA_PAGE = 10
_RESPONSES = {"accept": "accepted", "tentativelyAccept": "tentativelyAccepted", "decline": "declined"}
_ORDERABLE = {"start/datetime": "_start", "end/datetime": "_end"}
_ICAL_UID_FILTER = re.compile(r"^\s*iCalUId\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)


# ---------------------------------------------------------------- request helpers

def _preferences() -> dict[str, str]:
    """`Prefer` header(s) → {name: value}; several preferences may share one header, comma-separated."""
    found = {}
    for header in request.headers.getlist("Prefer"):
        for name, quoted, bare in re.findall(r'\s*([\w.\-]+)\s*(?:=\s*(?:"([^"]*)"|([^,\s]*)))?\s*,?', header):
            if name:
                found[name.lower()] = quoted or bare
    return found


def _zone_preference() -> str | None:
    return _preferences().get("outlook.timezone")


def _json(response_body, status: int = 200, headers: dict | None = None):
    tz_name = _zone_preference()
    headers = dict(headers or {})
    if tz_name and event_json.resolved_zone_name(tz_name) == tz_name:
        headers["Preference-Applied"] = f'outlook.timezone="{tz_name}"'
    return response_body, status, headers


def _payload(*, optional: bool = False) -> dict:
    raw = request.get_data(cache=True)
    if optional and not raw.strip():
        return {}
    try:
        payload = request.get_json(force=True, silent=False)
    except Exception:  # noqa: BLE001 — any unreadable body is the client's fault, never a 500
        payload = None
    if not isinstance(payload, dict):
        raise GraphError(400, "UnableToDeserializePostBody", "were unable to deserialize ")
    return payload


def _window() -> tuple[datetime, datetime]:
    start, end = request.args.get("startDateTime"), request.args.get("endDateTime")
    if not start or not end:
        raise GraphError(400, "ErrorInvalidParameter", "This request requires a time window specified by the "
                         "query string parameters StartDateTime and EndDateTime.")
    try:
        return parse_graph_datetime(start, "UTC"), parse_graph_datetime(end, "UTC")
    except ValueError:
        raise GraphError(400, "ErrorInvalidParameter",
                         "The value of the parameter 'StartDateTime' or 'EndDateTime' is invalid.") from None


def _ordered(views: list[dict]) -> list[dict]:
    raw = request.args.get("$orderby")
    if not raw:
        return views
    field, _, direction = raw.strip().partition(" ")
    key = _ORDERABLE.get(field.lower())
    if key is None or direction.strip().lower() not in ("", "asc", "desc"):
        raise GraphError(400, "BadRequest", f"The $orderby expression '{raw}' is not supported.")
    return sorted(views, key=lambda v: (v[key], v["id"]), reverse=direction.strip().lower() == "desc")


def _filtered(views: list[dict]) -> list[dict]:
    raw = request.args.get("$filter")
    if raw is None:
        return views
    match = _ICAL_UID_FILTER.match(raw)
    if match is None:
        raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
    wanted = match.group(1).replace("''", "'").lower()
    return [view for view in views if (view.get("iCalUId") or "").lower() == wanted]


def _collection(views: list[dict], user: dict, fragment: str) -> dict:
    fields = paging.selected_fields(event_json.PROPERTIES, "event")
    tz_name = _zone_preference()
    return paging.collection(_ordered(views), context=f"users('{user['id']}')/{fragment}", default_top=DEFAULT_PAGE,
                             max_top=MAX_PAGE, render=lambda v: event_json.render(v, tz_name), fields=fields)


def _entity(view: dict, user: dict) -> dict:
    fields = paging.selected_fields(event_json.PROPERTIES, "event")
    body = {"@odata.context": paging.context_url(f"users('{user['id']}')/events/$entity")}
    body.update(paging.project(event_json.render(view, _zone_preference()), fields))
    return body


def _user(user_key: str) -> dict:
    return directory.resolve_mailbox(user_key)


# ---------------------------------------------------------------- events

@bp.post("/users/<user_key>/events")
@bp.post("/users/<user_key>/calendar/events")
@require(*WRITE)
def create_event(user_key):
    user = _user(user_key)
    view, _created = calendar.create_event(sandbox_state(), user, _payload())
    return _json(_entity(view, user), 201)


@bp.get("/users/<user_key>/events")
@bp.get("/users/<user_key>/calendar/events")
@require(*READ)
def list_events(user_key):
    user = _user(user_key)
    return _json(_collection(_filtered(calendar.list_events(sandbox_state(), user)), user, "events"))


@bp.get("/users/<user_key>/events/<event_id>")
@bp.get("/users/<user_key>/calendar/events/<event_id>")
@require(*READ)
def get_event(user_key, event_id):
    user = _user(user_key)
    return _json(_entity(calendar.get_event(sandbox_state(), user, event_id), user))


@bp.patch("/users/<user_key>/events/<event_id>")
@bp.patch("/users/<user_key>/calendar/events/<event_id>")
@require(*WRITE)
def update_event(user_key, event_id):
    user = _user(user_key)
    return _json(_entity(calendar.update_event(sandbox_state(), user, event_id, _payload()), user))


@bp.delete("/users/<user_key>/events/<event_id>")
@bp.delete("/users/<user_key>/calendar/events/<event_id>")
@require(*WRITE)
def delete_event(user_key, event_id):
    calendar.delete_event(sandbox_state(), _user(user_key), event_id)
    return "", 204


@bp.post("/users/<user_key>/events/<event_id>/cancel")
@bp.post("/users/<user_key>/calendar/events/<event_id>/cancel")
@require(*WRITE)
def cancel_event(user_key, event_id):
    user = _user(user_key)
    payload = _payload(optional=True)
    calendar.cancel_event(sandbox_state(), user, event_id, payload.get("comment"))
    return "", 202


@bp.post("/users/<user_key>/events/<event_id>/<action>")
@bp.post("/users/<user_key>/calendar/events/<event_id>/<action>")
@require(*WRITE)
def respond_to_event(user_key, event_id, action):
    if action not in _RESPONSES:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{action}'.")
    user = _user(user_key)
    payload = _payload(optional=True)
    send_response = payload.get("sendResponse", True)
    if not isinstance(send_response, bool):
        raise GraphError(400, "UnableToDeserializePostBody", "sendResponse must be a boolean.")
    calendar.respond(sandbox_state(), user, event_id, _RESPONSES[action], payload.get("comment"), send_response,
                     payload.get("proposedNewTime"))
    return "", 202


# ---------------------------------------------------------------- calendarView and instances

@bp.get("/users/<user_key>/calendarView")
@bp.get("/users/<user_key>/calendar/calendarView")
@require(*READ)
def calendar_view(user_key):
    user = _user(user_key)
    start, end = _window()
    return _json(_collection(calendar.calendar_view(sandbox_state(), user["id"], start, end), user, "calendarView"))


@bp.get("/users/<user_key>/events/<event_id>/instances")
@bp.get("/users/<user_key>/calendar/events/<event_id>/instances")
@require(*READ)
def event_instances(user_key, event_id):
    user = _user(user_key)
    start, end = _window()
    views = calendar.instances(sandbox_state(), user, event_id, start, end)
    return _json(_collection(views, user, f"events('{event_id}')/instances"))


# ---------------------------------------------------------------- calendarView delta

def _sync_state_not_found() -> GraphError:
    return GraphError(410, "syncStateNotFound",
                      "The sync state is not found or has expired. Restart synchronization without a token.")


def expire_delta_tokens(state) -> int:
    """Forget every delta round: the next use of any deltaLink or nextLink gets 410 syncStateNotFound."""
    with state.store.lock:
        ids = state.store.ids("deltaToken")
        for token_id in ids:
            state.store.delete("deltaToken", token_id)
    return len(ids)


def _encode_token(round_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{round_id}.{offset}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[str, int]:
    try:
        round_id, offset = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().rsplit(".", 1)
        return round_id, int(offset)
    except (ValueError, UnicodeDecodeError):
        raise _sync_state_not_found() from None


def _delta_link(name: str, token: str) -> str:
    base = current_app.config["SANDBOX_BASE_URL"].rstrip("/")
    return f"{base}{request.path}?{name}={token}"


def _snapshot(state, mailbox: str, start: str, end: str) -> tuple[dict, dict]:
    views = calendar.calendar_view(state, mailbox, datetime.fromisoformat(start), datetime.fromisoformat(end))
    return {v["id"]: v for v in views}, {v["id"]: v["changeKey"] for v in views}


def _start_round(state, mailbox: str, start: str, end: str, previous: dict | None) -> str:
    """Record a new round: what to send (changed or new ids, then removed ids) and the state it ends in."""
    _views, snapshot = _snapshot(state, mailbox, start, end)
    if previous is None:
        pending, removed = list(snapshot), []
    else:
        pending = [i for i, key in snapshot.items() if previous.get(i) != key]
        removed = [i for i in previous if i not in snapshot]
    round_id = secrets.token_urlsafe(18)
    state.store.put("deltaToken", round_id, {"mailbox": mailbox, "start": start, "end": end, "issuedAt": iso_z(now()),
                                             "items": removed + pending, "removed": removed, "snapshot": snapshot},
                    owner=mailbox)
    return round_id


@bp.get("/users/<user_key>/calendarView/delta")
@bp.get("/users/<user_key>/calendar/calendarView/delta")
@require(*READ)
def calendar_view_delta(user_key):
    state = sandbox_state()
    user = _user(user_key)
    if "$select" in request.args:
        raise GraphError(400, "ErrorInvalidUrlQuery", "The query parameter '$select' is not supported with delta.")
    try:
        page_size = max(1, int(_preferences().get("odata.maxpagesize") or DELTA_PAGE))
    except ValueError:
        page_size = DELTA_PAGE
    with state.store.lock:
        if "$skiptoken" in request.args or "$deltatoken" in request.args:
            skip = "$skiptoken" in request.args
            round_id, offset = _decode_token(request.args.get("$skiptoken") or request.args.get("$deltatoken"))
            record = state.store.get("deltaToken", round_id)
            if (record is None or record["mailbox"] != user["id"]
                    or state.faults.is_delta_token_expired(parse_graph_datetime(record["issuedAt"], "UTC"))):
                raise _sync_state_not_found()
            if not skip:  # a deltaLink opens the next round: only what changed since this one ended
                round_id = _start_round(state, user["id"], record["start"], record["end"], record["snapshot"])
                record, offset = state.store.get("deltaToken", round_id), 0
        else:
            start, end = _window()
            round_id = _start_round(state, user["id"], start.isoformat(), end.isoformat(), None)
            record, offset = state.store.get("deltaToken", round_id), 0
    views, _keys = _snapshot(state, user["id"], record["start"], record["end"])
    removed = set(record["removed"])
    tz_name = _zone_preference()
    page = record["items"][offset:offset + page_size]
    value = [event_json.render(views[i], tz_name, with_type=True) if i in views and i not in removed
             else event_json.remove_marker(i) for i in page]
    body = {"@odata.context": paging.context_url("Collection(event)")}
    if offset + page_size < len(record["items"]):
        body["@odata.nextLink"] = _delta_link("$skiptoken", _encode_token(round_id, offset + page_size))
    else:
        body["@odata.deltaLink"] = _delta_link("$deltatoken", _encode_token(round_id, 0))
    body["value"] = value
    return _json(body)
