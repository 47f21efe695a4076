"""The sandbox's calendar engine: events on every mailbox, with Exchange room-mailbox behaviour.

Functions over a `SandboxState`; each holds `store.lock` for its whole read-modify-write and publishes one
`changes.Change` per mailbox item it touched (resource "Users/{user-id}/Events/{event-id}", graph-facts
§4.4) once the lock is released. Errors are `errors.GraphError`s, ready for a route to answer.

Functions that look users up (by id, mail or UPN) use `directory.find_user`, so they run inside the
sandbox app's context, as every caller (Graph routes, admin API, Outlook page) does.

Public API:
- `create_event(state, user, payload)` → `(doc, created)`; `created` is False when `payload.transactionId`
  was already used on this mailbox: the existing event comes back and nothing new is published.
- `update_event(state, user, event_id, payload)` → the updated view (master, single or exception).
- `delete_event(state, user, event_id)`, `cancel_event(state, user, event_id, comment)`,
  `respond(state, user, event_id, response, comment, send_response, proposed_new_time=None)` with response
  "accepted" | "tentativelyAccepted" | "declined".
- `get_event(state, user, event_id)` → a view (stored document shaped for `event_json.render`);
  `list_events(state, user)` → single instances and series masters (as `GET /events`);
  `calendar_view(state, user_id, start, end)` → single instances, occurrences and exceptions overlapping
  [start, end), in start order; `instances(state, user, master_id, start, end)` → one series' instances.
- `processing_settings(store, room)` → the room mailbox's effective calendarProcessing settings (defaults,
  then its room document's, then its user document's).
- `parse_payload_datetime(value)` → a `dateTimeTimeZone` object → (aware UTC, zone name), the one parser of
  request dateTimeTimeZone values.

Behaviour and where it comes from:
- Ids are long, URL-safe, opaque and never change (immutable-id style, graph-facts §3.6); an occurrence id
  encodes its series master and original start, so any occurrence can be addressed without being stored.
- Every write gives a new `changeKey` (the etag is `W/"<changeKey>"`) and a new `lastModifiedDateTime`
  (graph-facts §3.1). Occurrences share their master's changeKey; an exception has its own.
- `iCalUId` follows Outlook's global object id layout, with the instance date filled in for occurrences,
  so each occurrence has its own (graph-facts §3.1); `uid` is the series' value; room copies share both.
- `transactionId` de-duplicates creates per mailbox (graph-facts §3.1; what a duplicate POST returns is
  UNCONFIRMED: we answer 201 with the first event, so a client cannot tell a retry from a first create).
- Rooms (graph-facts §6, §5.4): a `resource` attendee that is a room user (`isRoom`) with AutoAccept
  processes the meeting after it is saved, as Exchange's Resource Booking Attendant does asynchronously:
  the create/update response still shows the attendee's status as it was, and the organizer's copy then
  changes again (new changeKey, an "updated" change) to "accepted" or "declined". Accepted when every
  instance is free on the room's calendar (no conflicts allowed; one conflicting occurrence declines the
  whole series), starts within `bookingWindowInDays` (a series reaching past it is declined:
  EnforceSchedulingHorizon) and lasts at most `maximumDurationInMinutes`. The room's copy has the same
  iCalUId, the organizer's name as subject, an empty body and `sensitivity: normal`. Organizer updates
  re-run processing and rewrite the copy; organizer cancel/delete cancels then deletes the copy; a room's
  decline removes its copy and marks the room "declined" on the organizer's copy.
- Settings are read from the room's user document (or its `room` document) under `calendarProcessing`:
  `automateProcessing` ("AutoAccept" default; anything else leaves requests unprocessed, i.e. for
  delegates), `bookingWindowInDays` (180), `maximumDurationInMinutes` (1440, 0 = no limit),
  `enforceSchedulingHorizon` (True), `allowRecurringMeetings` (True).
- Attendees who are people get no copy of their own (not emulated); an event written straight into a room
  mailbox makes the room its organizer and is not processed (graph-facts §3.3, an inference).
- Per-occurrence responses are not tracked: a decline of one occurrence removes it from that calendar only.

Performance: an index per store keeps each mailbox's events as (first start, last end) spans, so a
calendarView loads only the events that can reach its window and expands a series only inside it (a room
with 5,000 events answers a month in milliseconds). The index is rebuilt whenever the number of stored
events differs from what it knows (a reset, a seed), so it never serves a stale list.
"""

from __future__ import annotations

import base64
import bisect
import copy
import hashlib
import html
import math
import re
import struct
import uuid
import weakref
from datetime import datetime, timedelta, timezone

from . import recurrence as rec
from .changes import Change
from .clock import iso_z, now, parse_graph_datetime, zone
from .errors import GraphError

UTC = timezone.utc
NOT_RESPONDED = "0001-01-01T00:00:00Z"
_ID_PREFIX = "AAMkA"
_MASTER_MARK, _OCCURRENCE_MARK = b"\x01", b"\x07"
_MASTER_RAW_LENGTH = 72
_CLASS_ID = "040000008200E00074C5B7101A82E008"
MAX_ATTENDEES = 500
DEFAULT_PROCESSING = {"automateProcessing": "AutoAccept", "bookingWindowInDays": 180,
                      "maximumDurationInMinutes": 1440, "enforceSchedulingHorizon": True,
                      "allowRecurringMeetings": True}

_ENUMS = {
    "importance": ["low", "normal", "high"],
    "sensitivity": ["normal", "personal", "private", "confidential"],
    "showAs": ["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"],
    "onlineMeetingProvider": ["unknown", "teamsForBusiness", "skypeForBusiness", "skypeForConsumer"],
}
_ATTENDEE_TYPES = ["required", "optional", "resource"]
_LOCATION_TYPES = ["default", "conferenceRoom", "homeAddress", "businessAddress", "geoCoordinates",
                   "streetAddress", "hotel", "restaurant", "localBusiness", "postalAddress"]
_BOOLEANS = ["isAllDay", "isReminderOn", "responseRequested", "allowNewTimeProposals", "isOnlineMeeting",
             "hideAttendees", "isDraft"]
# Properties a client may write (event-update.md); anything else is refused like Graph's deserializer does.
_WRITABLE = {"subject", "body", "start", "end", "location", "locations", "attendees", "recurrence",
             "importance", "sensitivity", "showAs", "categories", "reminderMinutesBeforeStart",
             "onlineMeetingProvider", "transactionId", *_BOOLEANS}
# What an occurrence can override when it becomes an exception.
_EXCEPTION_FIELDS = {"subject", "body", "bodyPreview", "location", "locations", "importance", "sensitivity",
                     "showAs", "categories", "isReminderOn", "reminderMinutesBeforeStart"}


def _bad_body(message: str) -> GraphError:
    return GraphError(400, "UnableToDeserializePostBody", message)


def _invalid(message: str) -> GraphError:
    return GraphError(400, "ErrorPropertyValidationFailure", message)


def _not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


# ---------------------------------------------------------------- users and mailboxes

def _find_user(key: str) -> dict | None:
    from .directory import find_user  # imported late: directory loads graph.bp, which loads this module's users

    return find_user(key)


def _has_mailbox(user: dict) -> bool:
    return bool(user.get("mailboxEnabled", True))


def _address(user: dict) -> str:
    return user.get("mail") or user.get("userPrincipalName") or ""


def _recipient(user: dict) -> dict:
    return {"emailAddress": {"name": user.get("displayName") or _address(user), "address": _address(user)}}


def processing_settings(store, room: dict) -> dict:
    settings = dict(DEFAULT_PROCESSING)
    room_doc = store.get("room", room["id"]) or {}
    settings.update(room_doc.get("calendarProcessing") or {})
    settings.update(room.get("calendarProcessing") or {})
    return settings


# ---------------------------------------------------------------- ids, keys, uids

def _encode(raw: bytes) -> str:
    return _ID_PREFIX + base64.urlsafe_b64encode(raw).decode()


def _new_event_id(mailbox_id: str) -> str:
    unique = uuid.uuid4().bytes
    filler = hashlib.sha256(unique).digest()[:_MASTER_RAW_LENGTH - 49]
    return _encode(_MASTER_MARK + hashlib.sha256(mailbox_id.encode()).digest() + unique + filler)


def occurrence_id(master_id: str, original_start: datetime) -> str:
    raw = base64.urlsafe_b64decode(master_id[len(_ID_PREFIX):])
    return _encode(raw + _OCCURRENCE_MARK + struct.pack(">q", int(original_start.timestamp())))


def parse_event_id(event_id: str) -> tuple[str, datetime | None]:
    """(series master or single id, original start of the occurrence or None); 404 for a foreign id."""
    try:
        raw = base64.urlsafe_b64decode(event_id[len(_ID_PREFIX):]) if event_id.startswith(_ID_PREFIX) else b""
    except ValueError:
        raw = b""
    if len(raw) == _MASTER_RAW_LENGTH and raw[:1] == _MASTER_MARK:
        return event_id, None
    if len(raw) == _MASTER_RAW_LENGTH + 9 and raw[_MASTER_RAW_LENGTH:_MASTER_RAW_LENGTH + 1] == _OCCURRENCE_MARK:
        seconds = struct.unpack(">q", raw[_MASTER_RAW_LENGTH + 1:])[0]
        return _encode(raw[:_MASTER_RAW_LENGTH]), datetime.fromtimestamp(seconds, UTC)
    raise _not_found()


def _new_change_key(store) -> str:
    counter = store.next_sequence("changeKey")
    return base64.b64encode(uuid.uuid4().bytes + counter.to_bytes(6, "big")).decode()


def _filetime_hex(moment: datetime) -> str:
    ticks = int((moment - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)
    return struct.pack("<Q", ticks).hex().upper()


def _new_uid(created: datetime) -> str:
    return f"{_CLASS_ID}00000000{_filetime_hex(created)}{'0' * 16}10000000{uuid.uuid4().hex.upper()}"


def occurrence_ical_uid(uid: str, original_local_date) -> str:
    stamp = f"{original_local_date.year:04X}{original_local_date.month:02X}{original_local_date.day:02X}"
    return uid[:32] + stamp + uid[40:]


def teams_join_url(tenant_id: str, organizer_id: str) -> str:
    thread = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
    context = f"%7b%22Tid%22%3a%22{tenant_id}%22%2c%22Oid%22%3a%22{organizer_id}%22%7d"
    return f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0?context={context}"


# ---------------------------------------------------------------- the per-mailbox index

class _Index:
    """Per mailbox: event id → (first start, last end) as epoch seconds (math.inf for a noEnd series)."""

    def __init__(self, store):
        self.spans: dict[str, dict[str, tuple[float, float]]] = {}
        self.owner: dict[str, str] = {}
        for doc in store.all("event"):
            self.add(doc)

    def add(self, doc: dict) -> None:
        self.remove(doc["id"])
        self.spans.setdefault(doc["_mailbox"], {})[doc["id"]] = _span(doc)
        self.owner[doc["id"]] = doc["_mailbox"]

    def remove(self, event_id: str) -> None:
        mailbox = self.owner.pop(event_id, None)
        if mailbox is not None:
            self.spans[mailbox].pop(event_id, None)

    def overlapping(self, mailbox: str, start: datetime, end: datetime) -> list[str]:
        low, high = start.timestamp(), end.timestamp()
        return [i for i, (first, last) in self.spans.get(mailbox, {}).items() if first < high and last > low]

    def ids(self, mailbox: str) -> list[str]:
        return list(self.spans.get(mailbox, {}))


_INDEXES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _index(store) -> _Index:
    index = _INDEXES.get(store)
    if index is None or len(index.owner) != len(store.ids("event")):
        index = _INDEXES[store] = _Index(store)
    return index


def _start(doc: dict) -> datetime:
    return datetime.fromisoformat(doc["_start"])


def _end(doc: dict) -> datetime:
    return datetime.fromisoformat(doc["_end"])


def _first_local(doc: dict) -> datetime:
    return _start(doc).astimezone(zone(doc["originalStartTimeZone"]))


def _span(doc: dict) -> tuple[float, float]:
    first, last = _start(doc), _end(doc)
    if doc.get("recurrence"):
        final = rec.last_start(doc["recurrence"], _first_local(doc))
        last = datetime.max.replace(tzinfo=UTC) if final is None else final + (last - first)
    for exception in doc.get("_exceptions", {}).values():
        first = min(first, datetime.fromisoformat(exception["_start"]))
        last = max(last, datetime.fromisoformat(exception["_end"]))
    return first.timestamp(), (math.inf if last.year == datetime.max.year else last.timestamp())


def _save(store, doc: dict) -> None:
    index = _index(store)  # before the write: the index checks itself against the stored count
    store.put("event", doc["id"], doc, owner=doc["_mailbox"])
    index.add(doc)


def _remove(store, doc: dict) -> None:
    index = _index(store)
    store.delete("event", doc["id"])
    index.remove(doc["id"])
    if doc.get("transactionId"):
        store.delete("transaction", _transaction_key(doc["_mailbox"], doc["transactionId"]))


def _transaction_key(mailbox_id: str, transaction_id: str) -> str:
    return f"{mailbox_id}:{transaction_id}"


def _touch(store, doc: dict, moment: datetime) -> None:
    doc["changeKey"] = _new_change_key(store)
    doc["lastModifiedDateTime"] = iso_z(moment)


def _change(doc: dict, change_type: str, event_id: str | None = None) -> Change:
    event_id = event_id or doc["id"]
    return Change(doc["_mailbox"], f"Users/{doc['_mailbox']}/Events/{event_id}", change_type, event_id)


def _publish(state, changes: list[Change]) -> None:
    for change in changes:
        state.changes.publish(change)


# ---------------------------------------------------------------- views: what event_json renders

def _master_view(doc: dict) -> dict:
    view = dict(doc)
    view["type"] = "seriesMaster" if doc.get("recurrence") else "singleInstance"
    view["seriesMasterId"] = None
    return view


def _instance_view(doc: dict, original_start: datetime) -> dict | None:
    key = original_start.isoformat()
    if key in doc.get("_cancelled", []):
        return None
    view = dict(doc)
    exception = doc.get("_exceptions", {}).get(key)
    view.update(id=occurrence_id(doc["id"], original_start), seriesMasterId=doc["id"], recurrence=None,
                originalStart=iso_z(original_start), type="occurrence",
                iCalUId=occurrence_ical_uid(doc["uid"], original_start.astimezone(
                    zone(doc["recurrence"]["range"]["recurrenceTimeZone"])).date()))
    if exception is None:
        view["_start"] = original_start.isoformat()
        view["_end"] = (original_start + (_end(doc) - _start(doc))).isoformat()
    else:
        view.update(exception, type="exception")
    return view


def _is_occurrence_start(doc: dict, original_start: datetime) -> bool:
    found = next(rec.occurrence_starts(doc["recurrence"], _first_local(doc), not_before=original_start,
                                       not_after=original_start), None)
    return found == original_start


def _views_in(doc: dict, start: datetime, end: datetime) -> list[dict]:
    if not doc.get("recurrence"):
        return [_master_view(doc)] if _start(doc) < end and _end(doc) > start else []
    duration = _end(doc) - _start(doc)
    exceptions = doc.get("_exceptions", {})
    views = []
    for original in rec.occurrence_starts(doc["recurrence"], _first_local(doc), not_before=start - duration,
                                          not_after=end):
        if original.isoformat() not in exceptions:
            view = _instance_view(doc, original)
            if view is not None and original + duration > start and original < end:
                views.append(view)
    for key, exception in exceptions.items():
        if datetime.fromisoformat(exception["_start"]) < end and datetime.fromisoformat(exception["_end"]) > start:
            view = _instance_view(doc, datetime.fromisoformat(key))
            if view is not None:
                views.append(view)
    return views


def _by_start(views: list[dict]) -> list[dict]:
    return sorted(views, key=lambda v: (v["_start"], v["_end"], v["id"]))


def _mailbox_doc(state, user: dict, event_id: str) -> tuple[dict, datetime | None]:
    master_id, original = parse_event_id(event_id)
    doc = state.store.get("event", master_id)
    if doc is None or doc["_mailbox"] != user["id"]:
        raise _not_found()
    if original is not None and (not doc.get("recurrence") or original.isoformat() in doc.get("_cancelled", [])
                                 or not _is_occurrence_start(doc, original)):
        raise _not_found()
    return doc, original


def get_event(state, user: dict, event_id: str) -> dict:
    with state.store.lock:
        doc, original = _mailbox_doc(state, user, event_id)
        return _master_view(doc) if original is None else _instance_view(doc, original)


def list_events(state, user: dict) -> list[dict]:
    store = state.store
    with store.lock:
        docs = [store.peek("event", i) for i in _index(store).ids(user["id"])]
    return sorted((_master_view(d) for d in docs if d), key=lambda v: (v["_start"], v["id"]))


# calendarView pages of one window arrive one request each: the expanded window is kept until the next write.
_VIEW_CACHE: dict[tuple, list[dict]] = {}
_VIEW_CACHE_SIZE = 64


def calendar_view(state, user_id: str, start: datetime, end: datetime) -> list[dict]:
    """Occurrences, exceptions and single events of a mailbox overlapping [start, end), by start. Views are
    shallow and share the stored documents' nested values (read-only: renderers build new JSON)."""
    store = state.store
    with store.lock:
        key = (id(store), store.version, user_id, start, end)
        cached = _VIEW_CACHE.get(key)
        if cached is not None:
            return cached
        docs = [store.peek("event", i) for i in _index(store).overlapping(user_id, start, end)]
    views: list[dict] = []
    for doc in docs:
        if doc is not None:
            views.extend(_views_in(doc, start, end))
    result = _by_start(views)
    if len(_VIEW_CACHE) >= _VIEW_CACHE_SIZE:
        _VIEW_CACHE.clear()
    _VIEW_CACHE[key] = result
    return result


def instances(state, user: dict, master_id: str, start: datetime, end: datetime) -> list[dict]:
    with state.store.lock:
        doc, original = _mailbox_doc(state, user, master_id)
    if original is not None or not doc.get("recurrence"):
        return []  # instances of a single instance or of an occurrence: nothing to expand
    return _by_start(_views_in(doc, start, end))


# ---------------------------------------------------------------- request payloads

def parse_payload_datetime(value) -> tuple[datetime, str]:
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise _bad_body("A dateTimeTimeZone needs a dateTime string.")
    zone_name = value.get("timeZone") if isinstance(value.get("timeZone"), str) else ""
    try:
        if not zone_name.strip():
            raise KeyError(zone_name)
        zone(zone_name)
    except KeyError:
        raise GraphError(400, "TimeZoneNotSupportedException",
                         f"A valid TimeZone value must be specified. The following TimeZone value is not "
                         f"supported: '{zone_name}'.") from None
    try:
        return parse_graph_datetime(value["dateTime"], zone_name), zone_name
    except ValueError:
        raise _bad_body(f"Cannot convert the literal '{value['dateTime']}' to the expected type "
                        f"'Edm.DateTimeOffset'.") from None


def _enum(field: str, value, allowed: list[str]) -> str:
    if isinstance(value, str):
        for candidate in allowed:
            if candidate.lower() == value.lower():
                return candidate
    raise _bad_body(f"Cannot convert the literal '{value}' to the expected type 'microsoft.graph.{field}'.")


def _body(value) -> tuple[dict, str]:
    if value is None:
        return {"contentType": "html", "content": ""}, ""
    if not isinstance(value, dict):
        raise _bad_body("body must be an itemBody object.")
    content_type = _enum("bodyType", value.get("contentType") or "text", ["text", "html"])
    content = value.get("content") or ""
    if not isinstance(content, str):
        raise _bad_body("body.content must be a string.")
    text = html.unescape(re.sub(r"<[^>]+>", " ", content)) if content_type == "html" else content
    preview = " ".join(text.split())[:255]
    if content_type == "html" and content and "<html" not in content.lower():
        content = f"<html><head></head><body>{content}</body></html>"  # the server wraps HTML bodies
    return {"contentType": content_type, "content": content}, preview


def _location(value, *, in_list: bool) -> dict:
    if not isinstance(value, dict):
        raise _bad_body("location must be a location object.")
    name = value.get("displayName") or ""
    email = value.get("locationEmailAddress")
    room = _find_user(email) if isinstance(email, str) and email else None
    location = {"displayName": name}
    if email:
        location["locationEmailAddress"] = email
    location["locationType"] = _enum("locationType", value.get("locationType") or "default", _LOCATION_TYPES)
    if room is not None and room.get("isRoom"):
        location.update(locationType="conferenceRoom", uniqueId=_address(room), uniqueIdType="directory")
    elif name and not in_list:
        location.update(uniqueId=name, uniqueIdType="private")
    else:
        location["uniqueIdType"] = "unknown"
    for extra in ("address", "coordinates", "locationUri"):
        if extra in value:
            location[extra] = value[extra]
    return location


def _attendees(value, previous: list[dict]) -> list[dict]:
    if not isinstance(value, list):
        raise _bad_body("attendees must be a list.")
    if len(value) > MAX_ATTENDEES:
        raise _invalid(f"An event can have at most {MAX_ATTENDEES} attendees.")
    known = {a["emailAddress"]["address"].lower(): a for a in previous}
    result = []
    for item in value:
        email = item.get("emailAddress") if isinstance(item, dict) else None
        address = email.get("address") if isinstance(email, dict) else None
        if not isinstance(address, str) or "@" not in address:
            raise _invalid("Every attendee needs an emailAddress with an address.")
        kind = _enum("attendeeType", item.get("type") or "required", _ATTENDEE_TYPES)
        before = known.get(address.lower())
        status = before["status"] if before else {"response": "none", "time": NOT_RESPONDED}
        result.append({"type": kind, "status": status,
                       "emailAddress": {"name": email.get("name") or address, "address": address}})
    return result


def _apply(state, doc: dict, payload: dict, *, creating: bool) -> set[str]:
    """Write a create/update payload into `doc`; returns the names of the properties it set."""
    unknown = [k for k in payload if k not in _WRITABLE and not k.startswith("@odata.")]
    if unknown:
        raise _bad_body(f"Invalid property '{unknown[0]}' for type 'microsoft.graph.event'.")
    if "transactionId" in payload and not creating and payload["transactionId"] != doc.get("transactionId"):
        raise GraphError(400, "ErrorInvalidRequest", "The transactionId of an event cannot be changed.")
    for name in _BOOLEANS:
        if name in payload:
            if not isinstance(payload[name], bool):
                raise _bad_body(f"Cannot convert the literal '{payload[name]}' to the expected type 'Edm.Boolean'.")
            if name == "isOnlineMeeting" and doc.get("isOnlineMeeting") and not payload[name]:
                continue  # once on, an online meeting cannot be turned off (outlook-calendar-online-meetings.md)
            doc[name] = payload[name]
    for name, allowed in _ENUMS.items():
        if name in payload:
            doc[name] = _enum(name, payload[name], allowed)
    if "subject" in payload:
        if payload["subject"] is not None and not isinstance(payload["subject"], str):
            raise _bad_body("subject must be a string.")
        doc["subject"] = payload["subject"] or ""
    if "body" in payload:
        doc["body"], doc["bodyPreview"] = _body(payload["body"])
    if "categories" in payload:
        if not isinstance(payload["categories"], list) or not all(isinstance(c, str) for c in payload["categories"]):
            raise _bad_body("categories must be a list of strings.")
        doc["categories"] = payload["categories"]
    if "reminderMinutesBeforeStart" in payload:
        minutes = payload["reminderMinutesBeforeStart"]
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise _bad_body("reminderMinutesBeforeStart must be an integer.")
        doc["reminderMinutesBeforeStart"] = minutes
    if "transactionId" in payload and creating:
        doc["transactionId"] = payload["transactionId"]
    if "location" in payload:
        location = payload["location"] or {}
        doc["location"] = _location(location, in_list=False)
        if "locations" not in payload:  # updating location replaces locations (graph-facts §3.1)
            doc["locations"] = [_location(location, in_list=True)] if doc["location"]["displayName"] else []
    if "locations" in payload:
        if not isinstance(payload["locations"], list):
            raise _bad_body("locations must be a list.")
        doc["locations"] = [_location(item, in_list=True) for item in payload["locations"]]
    if "attendees" in payload:
        doc["attendees"] = _attendees(payload["attendees"], doc.get("attendees", []))
    if creating and ("start" not in payload or "end" not in payload):
        raise _invalid("An event needs a start and an end.")
    if "start" in payload:
        start, doc["originalStartTimeZone"] = parse_payload_datetime(payload["start"])
        doc["_start"] = start.isoformat()
    if "end" in payload:
        end, doc["originalEndTimeZone"] = parse_payload_datetime(payload["end"])
        doc["_end"] = end.isoformat()
    if _end(doc) < _start(doc):
        raise GraphError(400, "ErrorCalendarEndDateIsEarlierThanStartDate",
                         "The end date occurs before the start date.")
    if doc.get("isAllDay"):
        local_start, local_end = _first_local(doc), _end(doc).astimezone(zone(doc["originalEndTimeZone"]))
        if (local_start.time() != local_end.time() or local_start.hour or local_start.minute or local_start.second
                or doc["originalStartTimeZone"] != doc["originalEndTimeZone"] or local_end <= local_start):
            raise _invalid("An all-day event must start and end at midnight in the same time zone.")
    if "recurrence" in payload or ("start" in payload and doc.get("recurrence")):
        raw = payload.get("recurrence", doc.get("recurrence"))
        try:
            doc["recurrence"] = (rec.normalize(raw, _first_local(doc), doc["originalStartTimeZone"])
                                 if raw is not None else None)
        except rec.RecurrenceError as error:
            raise _invalid(str(error)) from None
    if doc.get("isOnlineMeeting") and not doc.get("onlineMeeting"):
        if doc.get("onlineMeetingProvider", "unknown") == "unknown":
            doc["onlineMeetingProvider"] = "teamsForBusiness"
        doc["onlineMeeting"] = {"joinUrl": teams_join_url(_tenant_id(state), doc["_mailbox"])}
    return set(payload)


def _tenant_id(state) -> str:
    from .seed import DEMO_TENANT_ID

    return state.config.get("SANDBOX_TENANT_ID", DEMO_TENANT_ID)


def _new_doc(state, user: dict, moment: datetime) -> dict:
    event_id = _new_event_id(user["id"])
    uid = _new_uid(moment)
    return {
        "id": event_id, "_mailbox": user["id"], "createdDateTime": iso_z(moment),
        "lastModifiedDateTime": iso_z(moment), "changeKey": _new_change_key(state.store), "categories": [],
        "transactionId": None, "originalStartTimeZone": "UTC", "originalEndTimeZone": "UTC",
        "iCalUId": uid, "uid": uid, "reminderMinutesBeforeStart": 15, "isReminderOn": True,
        "hasAttachments": False, "subject": "", "bodyPreview": "", "importance": "normal",
        "sensitivity": "normal", "isAllDay": False, "isCancelled": False, "isOrganizer": True,
        "responseRequested": True, "showAs": "busy", "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown", "allowNewTimeProposals": True, "isDraft": False,
        "hideAttendees": False, "responseStatus": {"response": "organizer", "time": NOT_RESPONDED},
        "body": {"contentType": "html", "content": ""},
        "location": {"displayName": "", "locationType": "default", "uniqueIdType": "unknown"},
        "locations": [], "recurrence": None, "attendees": [], "organizer": _recipient(user),
        "onlineMeeting": None, "_start": None, "_end": None, "_exceptions": {}, "_cancelled": [],
        "_roomCopies": {}, "_organizerRef": None,
    }


# ---------------------------------------------------------------- writes

def create_event(state, user: dict, payload: dict) -> tuple[dict, bool]:
    if not isinstance(payload, dict):
        raise _bad_body("The request body must be an event object.")
    store, changes = state.store, []
    moment = now()
    with store.lock:
        transaction_id = payload.get("transactionId")
        if transaction_id is not None and not isinstance(transaction_id, str):
            raise _bad_body("transactionId must be a string.")
        if transaction_id:
            known = store.get("transaction", _transaction_key(user["id"], transaction_id))
            existing = store.get("event", known["eventId"]) if known else None
            if existing is not None:
                return _master_view(existing), False
        doc = _new_doc(state, user, moment)
        doc["_start"] = doc["_end"] = moment.isoformat()
        _apply(state, doc, payload, creating=True)
        _save(store, doc)
        if transaction_id:
            store.put("transaction", _transaction_key(user["id"], transaction_id), {"eventId": doc["id"]},
                      owner=user["id"])
        created = copy.deepcopy(_master_view(doc))  # the answer shows the event before the rooms reply
        changes.append(_change(doc, "created"))
        _process_rooms(state, doc, moment, changes)
    _publish(state, changes)
    return created, True


def update_event(state, user: dict, event_id: str, payload: dict) -> dict:
    if not isinstance(payload, dict):
        raise _bad_body("The request body must be an event object.")
    store, changes = state.store, []
    moment = now()
    with store.lock:
        doc, original = _mailbox_doc(state, user, event_id)
        if original is not None:
            _update_occurrence(state, doc, original, payload, moment)
        else:
            before = (doc["_start"], doc["_end"], doc.get("recurrence"))
            _apply(state, doc, payload, creating=False)
            if (doc["_start"], doc["_end"], doc.get("recurrence")) != before:
                doc["_exceptions"], doc["_cancelled"] = {}, []  # a new pattern or time drops exceptions
        _touch(store, doc, moment)
        _save(store, doc)
        changes.append(_change(doc, "updated"))
        if doc["isOrganizer"]:
            _process_rooms(state, doc, moment, changes)
        result = _master_view(doc) if original is None else _instance_view(store.get("event", doc["id"]), original)
    _publish(state, changes)
    return result


def _update_occurrence(state, doc: dict, original: datetime, payload: dict, moment: datetime) -> None:
    key = original.isoformat()
    exception = dict(doc["_exceptions"].get(key) or {})
    scratch = {**doc, **exception, "recurrence": None, "_exceptions": {}}
    if "recurrence" in payload or "transactionId" in payload:
        raise GraphError(400, "ErrorInvalidRequest", "An occurrence cannot change the series' recurrence.")
    _apply(state, scratch, payload, creating=False)
    new_start = datetime.fromisoformat(scratch["_start"])
    _check_boundary(doc, original, new_start)
    for name in _EXCEPTION_FIELDS | {"_start", "_end"}:
        if name in scratch:
            exception[name] = scratch[name]
    exception["_start"] = exception.get("_start") or original.isoformat()
    exception["_end"] = exception.get("_end") or (original + (_end(doc) - _start(doc))).isoformat()
    exception["changeKey"] = _new_change_key(state.store)
    exception["lastModifiedDateTime"] = iso_z(moment)
    doc["_exceptions"][key] = exception


def _check_boundary(doc: dict, original: datetime, new_start: datetime) -> None:
    """An occurrence may not move onto or past the day of an adjacent one (event-update.md)."""
    tz = zone(doc["recurrence"]["range"]["recurrenceTimeZone"])
    duration = _end(doc) - _start(doc)
    starts = list(rec.occurrence_starts(doc["recurrence"], _first_local(doc), not_before=original - timedelta(days=400),
                                        not_after=original + timedelta(days=400) + duration))
    position = starts.index(original)
    new_day = new_start.astimezone(tz).date()
    if (position > 0 and new_day <= starts[position - 1].astimezone(tz).date()) or \
            (position + 1 < len(starts) and new_day >= starts[position + 1].astimezone(tz).date()):
        raise GraphError(400, "ErrorOccurrenceCrossingBoundary",
                         "Modified occurrence is crossing or overlapping adjacent occurrence.")


def _drop_occurrence(store, doc: dict, original: datetime, moment: datetime) -> None:
    doc["_exceptions"].pop(original.isoformat(), None)
    doc["_cancelled"] = sorted(set(doc["_cancelled"]) | {original.isoformat()})
    _touch(store, doc, moment)
    _save(store, doc)


def delete_event(state, user: dict, event_id: str) -> None:
    _remove_meeting(state, user, event_id, organizer_only=False)


def cancel_event(state, user: dict, event_id: str, comment: str | None = None) -> None:
    _remove_meeting(state, user, event_id, organizer_only=True)


def _remove_meeting(state, user: dict, event_id: str, *, organizer_only: bool) -> None:
    store, changes = state.store, []
    moment = now()
    with store.lock:
        doc, original = _mailbox_doc(state, user, event_id)
        if organizer_only and not doc["isOrganizer"]:
            raise GraphError(400, "ErrorInvalidRequest",
                             "Your request can't be completed. You need to be an organizer to cancel a meeting.")
        if original is not None:
            _drop_occurrence(store, doc, original, moment)
            changes.append(_change(doc, "updated"))
            if doc["isOrganizer"]:
                _process_rooms(state, doc, moment, changes)
        else:
            _remove(store, doc)
            changes.append(_change(doc, "deleted"))
            if doc["isOrganizer"]:
                for copy_id in doc.get("_roomCopies", {}).values():
                    _cancel_room_copy(state, copy_id, moment, changes)
    _publish(state, changes)


def respond(state, user: dict, event_id: str, response: str, comment: str | None = None,
            send_response: bool = True, proposed_new_time=None) -> None:
    store, changes = state.store, []
    moment = now()
    with store.lock:
        doc, original = _mailbox_doc(state, user, event_id)
        if doc["isOrganizer"]:
            raise GraphError(400, "ErrorInvalidRequest",
                             "Your request can't be completed. You can't respond to a meeting you organized.")
        if proposed_new_time is not None and (not send_response or not doc.get("allowNewTimeProposals", True)):
            raise GraphError(400, "ErrorInvalidRequest",
                             "A new time can be proposed only with sendResponse true on a meeting that allows it.")
        if original is not None:
            if response == "declined":
                _drop_occurrence(store, doc, original, moment)
                changes.append(_change(doc, "updated"))
            _publish(state, changes)
            return
        if response == "declined":
            _remove(store, doc)  # a declined meeting leaves the calendar (moved to Deleted Items)
            changes.append(_change(doc, "deleted"))
        else:
            doc["responseStatus"] = {"response": response, "time": iso_z(moment)}
            _touch(store, doc, moment)
            _save(store, doc)
            changes.append(_change(doc, "updated"))
        if send_response and doc.get("_organizerRef"):
            _record_response(state, doc, user, response, moment, changes)
    _publish(state, changes)


def _record_response(state, attendee_doc: dict, user: dict, response: str, moment: datetime,
                     changes: list[Change]) -> None:
    store = state.store
    organizer_doc = store.get("event", attendee_doc["_organizerRef"]["eventId"])
    if organizer_doc is None:
        return
    address = _address(user).lower()
    for attendee in organizer_doc["attendees"]:
        if attendee["emailAddress"]["address"].lower() == address:
            attendee["status"] = {"response": response, "time": iso_z(moment)}
    if response == "declined":
        organizer_doc["_roomCopies"].pop(user["id"], None)
    _touch(store, organizer_doc, moment)
    _save(store, organizer_doc)
    changes.append(_change(organizer_doc, "updated"))


# ---------------------------------------------------------------- the room's Resource Booking Attendant

def _all_instances(doc: dict, until: datetime) -> list[tuple[datetime, datetime]]:
    """Every instance (start, end) of `doc` starting no later than `until`."""
    if not doc.get("recurrence"):
        return [(_start(doc), _end(doc))]
    views = _views_in(doc, _start(doc) - timedelta(days=1), until)
    return sorted((datetime.fromisoformat(v["_start"]), datetime.fromisoformat(v["_end"])) for v in views)


def _room_verdict(state, room: dict, settings: dict, doc: dict, moment: datetime) -> bool:
    horizon = moment + timedelta(days=settings["bookingWindowInDays"])
    if doc.get("recurrence"):
        if not settings["allowRecurringMeetings"]:
            return False
        final = rec.last_start(doc["recurrence"], _first_local(doc))
        if settings["enforceSchedulingHorizon"] and (final is None or final > horizon):
            return False  # a series reaching past the booking window is declined as a whole
    slots = _all_instances(doc, horizon)
    if not slots or slots[0][0] > horizon:
        return False
    limit = settings["maximumDurationInMinutes"]
    if limit and any(end - start > timedelta(minutes=limit) for start, end in slots):
        return False
    busy = [(datetime.fromisoformat(v["_start"]), datetime.fromisoformat(v["_end"]))
            for v in calendar_view(state, room["id"], slots[0][0], slots[-1][1])
            if v["uid"] != doc["uid"] and not v["isCancelled"] and v["showAs"] != "free"
            and v["responseStatus"]["response"] != "declined"]
    busy.sort()
    starts = [b[0] for b in busy]
    latest_end, running = [], datetime.min.replace(tzinfo=UTC)
    for _, end in busy:
        running = max(running, end)
        latest_end.append(running)
    for start, end in slots:
        position = bisect.bisect_left(starts, end)
        if position and latest_end[position - 1] > start:
            return False  # any conflicting instance declines the whole request (AllowConflicts $false)
    return True


def _process_rooms(state, doc: dict, moment: datetime, changes: list[Change]) -> None:
    """Let every room invited as a resource accept or decline `doc` (saved, organizer's copy)."""
    store = state.store
    previous_copies = dict(doc.get("_roomCopies", {}))
    copies, statuses_changed = {}, False
    for attendee in doc["attendees"]:
        if attendee["type"] != "resource":
            continue
        room = _find_user(attendee["emailAddress"]["address"])
        if room is None or not room.get("isRoom") or room["id"] == doc["_mailbox"] or not _has_mailbox(room):
            continue
        settings = processing_settings(store, room)
        if settings["automateProcessing"] != "AutoAccept":
            continue
        existing = previous_copies.get(room["id"])
        accepted = _room_verdict(state, room, settings, doc, moment)
        response = "accepted" if accepted else "declined"
        if attendee["status"]["response"] != response:  # before the copy is written: it shows the reply too
            attendee["status"] = {"response": response, "time": iso_z(moment)}
            statuses_changed = True
        if accepted:
            copies[room["id"]] = _write_room_copy(state, room, doc, existing, moment, changes)
        elif existing:
            _cancel_room_copy(state, existing, moment, changes)
    for room_id, copy_id in previous_copies.items():
        if room_id not in copies:  # the room left the attendees (or declined): its copy goes
            _cancel_room_copy(state, copy_id, moment, changes)
    doc["_roomCopies"] = copies
    if statuses_changed:  # the room's reply reaches the organizer's copy: a visible change
        _touch(store, doc, moment)
        _save(store, doc)
        changes.append(_change(doc, "updated"))
    elif copies != previous_copies:
        _save(store, doc)  # bookkeeping only, nothing a client can see


def _write_room_copy(state, room: dict, doc: dict, existing_id: str | None, moment: datetime,
                     changes: list[Change]) -> str:
    store = state.store
    existing = store.get("event", existing_id) if existing_id else None
    room_copy = {key: value for key, value in doc.items()}
    organizer_name = doc["organizer"]["emailAddress"]["name"]
    room_copy.update(
        id=existing["id"] if existing else _new_event_id(room["id"]), _mailbox=room["id"],
        createdDateTime=existing["createdDateTime"] if existing else iso_z(moment),
        subject=organizer_name,  # AddOrganizerToSubject + DeleteSubject
        body={"contentType": "html", "content": ""}, bodyPreview="",  # DeleteComments
        sensitivity="normal",  # RemovePrivateProperty
        isOrganizer=False, transactionId=None, _roomCopies={},
        responseStatus={"response": "accepted", "time": iso_z(moment)},
        _organizerRef={"mailbox": doc["_mailbox"], "eventId": doc["id"]},
        _exceptions={key: {k: v for k, v in exception.items() if k not in ("subject", "body", "bodyPreview",
                                                                         "sensitivity")}
                     for key, exception in doc.get("_exceptions", {}).items()},
    )
    _touch(store, room_copy, moment)
    _save(store, room_copy)
    changes.append(_change(room_copy, "updated" if existing else "created"))
    return room_copy["id"]


def _cancel_room_copy(state, copy_id: str, moment: datetime, changes: list[Change]) -> None:
    """The organizer cancelled: the room's copy is marked cancelled, then removed (Calendar Attendant)."""
    store = state.store
    room_copy = store.get("event", copy_id)
    if room_copy is None:
        return
    room_copy["isCancelled"] = True
    room_copy["subject"] = f"Canceled: {room_copy['subject']}"
    _touch(store, room_copy, moment)
    _save(store, room_copy)
    changes.append(_change(room_copy, "updated"))
    _remove(store, room_copy)
    changes.append(_change(room_copy, "deleted"))
