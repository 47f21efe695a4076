"""Request parsing and response shapes of the JSON API v1: functions of their arguments, no request access
and no writes.

Public API:
- Parsing. Field problems raise `booking.errors.ValidationError` (422, every bad field at once); a body that
  is not a JSON object raises `api.errors.ApiError` (415 or 400, code `invalid_json`).
  `parse_json_object(mimetype, data)` → dict; `parse_booking_create(body)` → `BookingInput`;
  `parse_booking_patch(body)` → `BookingPatch`; `parse_listing_query(args)` → `ListingQuery`;
  `parse_cancel_query(args)` → `CancelQuery`; `reject_unknown_query(args, allowed)`.
- Serialising (times in the venue zone, ISO 8601 with offset): `iso(dt, tz)`, `space_item(space, pair=None)` (`pair`:
  the space's sync pair, serialised as {room_email, state} or null),
  `occurrence_items(occurrence_rows, viewer)`, `booking_item(booking, viewer, outbound=None)`,
  `sync_item(outbound, booking, viewer)`, `conflict_items(conflicts, tz)`.
  Titles, descriptions, attendees, custom fields and the Teams `join_url` go out only where
  `privacy.can_see_details` allows. `booking_item` also carries `online_meeting` (writable) and `sync`: null,
  or {state: pending | failed, error, next_attempt_at} from the booking's `sync.models.OutboundState`
  (`outbound`, which the view reads; `error` only for the holder and admins — `privacy.can_edit`).
  Read-only fields (`READ_ONLY_FIELDS`) sent in a body are refused with their own message.
- Limits: `MAX_ID` (ids are 32-bit integers on PostgreSQL), `MIN_YEAR`–`MAX_YEAR`, `MAX_LISTING_DAYS`.

Strings that reach the database must be storable by both engines: no NUL (PostgreSQL refuses it) and no lone
surrogates (not encodable as UTF-8).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable, Mapping

from ..booking.errors import Conflict, ValidationError
from ..booking.operations import SCOPES, BookingInput, occurrence_times
from ..booking.privacy import can_edit, can_see_details
from ..timeutil import NaiveDatetimeError, parse_iso, to_local
from .errors import ApiError

MAX_ID = 2**31 - 1
MIN_YEAR, MAX_YEAR = 1970, 2199
MAX_LISTING_DAYS = 366
MAX_SPACES_PER_BOOKING = 100
_QUERY_ID = re.compile(r"[0-9]{1,10}")
# RFC 3339's shape (offset optional so a naive value gets its own message): Python's fromisoformat alone
# also takes week dates, stray characters before the offset and offsets with seconds.
_ISO_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?")
DATETIME_HINT = "an ISO 8601 date and time with a UTC offset, e.g. 2026-03-02T10:00:00+00:00"


class _Invalid(ValueError):
    """One field's value is unusable; the message is shown next to the field."""


# ---------------------------------------------------------------------------------------------- values


def _id(value) -> int:
    if type(value) is not int or not 1 <= value <= MAX_ID:  # `type`, not isinstance: true/false are ints
        raise _Invalid("Must be an id (a positive whole number).")
    return value


def _optional_id(value) -> int | None:
    return None if value is None else _id(value)


def _space_ids(value) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _Invalid("Must be a non-empty list of space ids.")
    if len(value) > MAX_SPACES_PER_BOOKING:
        raise _Invalid(f"At most {MAX_SPACES_PER_BOOKING} spaces.")
    try:
        return [_id(item) for item in value]
    except _Invalid:
        raise _Invalid("Must be a list of space ids (positive whole numbers).") from None


def _storable(text: str) -> str:
    if "\x00" in text:
        raise _Invalid("Must not contain NUL characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid("Must be valid Unicode text.") from None
    return text


def _text(value) -> str:
    if not isinstance(value, str):
        raise _Invalid("Must be a string.")
    return _storable(value)


def _optional_text(value) -> str | None:
    return None if value is None else _text(value)


def _boolean(value) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("Must be true or false.")
    return value


def _datetime(value) -> datetime:
    if not isinstance(value, str) or not _ISO_DATETIME.fullmatch(value):
        raise _Invalid(f"Must be {DATETIME_HINT} (in a URL, write + as %2B).")
    try:
        parsed = parse_iso(value)
    except NaiveDatetimeError:
        raise _Invalid(f"Needs a UTC offset: {DATETIME_HINT}.") from None
    except (ValueError, OverflowError):  # OverflowError: year 1 with a positive offset has no UTC instant
        raise _Invalid(f"Must be {DATETIME_HINT}.") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise _Invalid(f"Must fall between the years {MIN_YEAR} and {MAX_YEAR}.")
    return parsed


def _string_list(value) -> list[str]:
    if not isinstance(value, list):
        raise _Invalid("Must be a list of strings.")
    try:
        return [_text(item) for item in value]
    except _Invalid as exc:
        raise _Invalid(f"Must be a list of strings: {exc}") from None


def _string_map(value) -> dict[str, str | None]:
    if not isinstance(value, dict):
        raise _Invalid("Must be an object mapping field keys to strings.")
    try:
        return {_storable(key): _optional_text(item) for key, item in value.items()}
    except _Invalid as exc:
        raise _Invalid(f"Must map field keys to strings: {exc}") from None


def _scope(value) -> str:
    if value not in SCOPES:  # also refuses non-strings: SCOPES holds strings only
        raise _Invalid(f"Must be one of {', '.join(SCOPES)}.")
    return value


# ---------------------------------------------------------------------------------------------- bodies


def parse_json_object(mimetype: str, data: bytes) -> dict:
    """The request body as a JSON object; anything else is `invalid_json` (415 wrong type, 400 bad body)."""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, "invalid_json", "Send a JSON object with Content-Type: application/json.")

    def refuse_constant(name):  # NaN and Infinity are not JSON
        raise ValueError(f"{name} is not JSON")

    try:
        body = json.loads(data.decode("utf-8"), parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, numbers too long, nesting too deep
        message = exc.args[0] if isinstance(exc, json.JSONDecodeError) else "not valid JSON"
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {message}.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return body


BOOKING_FIELDS: dict[str, Callable] = {
    "space_ids": _space_ids,
    "start": _datetime,
    "end": _datetime,
    "title": _text,
    "description": _text,
    "private": _boolean,
    "attendees": _string_list,
    "rrule": _optional_text,
    "custom_fields": _string_map,
    "kind": _text,
    "holder_id": _optional_id,
    "online_meeting": _boolean,
}
# Fields of the response that a client cannot write (the join link is Outlook's, the sync state Roomsync's).
READ_ONLY_FIELDS = frozenset({"join_url", "sync"})
REQUIRED_ON_CREATE = ("space_ids", "start", "end", "title")
PATCH_FIELDS: dict[str, Callable] = {**BOOKING_FIELDS, "scope": _scope, "occurrence_start": _datetime}


def _parse_fields(source: Mapping, parsers: Mapping[str, Callable], required: Iterable[str] = ()) -> dict:
    values, errors = {}, {}
    for key in source:
        if key not in parsers:
            errors[key] = "Read-only field." if key in READ_ONLY_FIELDS else "Unknown field."
    for key in required:
        if key not in source:
            errors[key] = "This field is required."
    for key, parse in parsers.items():
        if key in source:
            try:
                values[key] = parse(source[key])
            except _Invalid as exc:
                errors[key] = str(exc)
    if errors:
        raise ValidationError(errors)
    return values


def parse_booking_create(body: Mapping) -> BookingInput:
    return BookingInput(**_parse_fields(body, BOOKING_FIELDS, REQUIRED_ON_CREATE))


@dataclass(frozen=True)
class BookingPatch:
    changes: dict  # BookingInput fields to replace
    scope: str
    occurrence_start: datetime | None  # original start of the occurrence the change starts from


def _require_occurrence_for_scope(scope: str, occurrence_start: datetime | None) -> None:
    # Without the occurrence, operations would apply "this"/"following" to the whole series.
    if scope != "all" and occurrence_start is None:
        raise ValidationError({"occurrence_start": f"Say which occurrence scope '{scope}' starts from."})


def parse_booking_patch(body: Mapping) -> BookingPatch:
    values = _parse_fields(body, PATCH_FIELDS)
    scope = values.pop("scope", "all")
    occurrence_start = values.pop("occurrence_start", None)
    _require_occurrence_for_scope(scope, occurrence_start)
    return BookingPatch(values, scope, occurrence_start)


# ---------------------------------------------------------------------------------------------- query strings


def _query_id(text: str) -> int:
    if not _QUERY_ID.fullmatch(text) or not 1 <= int(text) <= MAX_ID:
        raise _Invalid("Must be an id (a positive whole number).")
    return int(text)


def _single_values(args, parsers: Mapping[str, Callable], required: Iterable[str] = ()) -> dict:
    """Query parameters given once each (a repeated one is refused rather than silently picking one)."""
    repeated = {key: "Give this parameter once." for key in args if len(args.getlist(key)) > 1}
    if repeated:
        raise ValidationError(repeated)
    return _parse_fields({key: args.get(key) for key in args}, parsers, required)


def reject_unknown_query(args, allowed: Iterable[str] = ()) -> None:
    unknown = {key: "Unknown parameter." for key in args if key not in set(allowed)}
    if unknown:
        raise ValidationError(unknown)


@dataclass(frozen=True)
class ListingQuery:
    space_id: int | None
    start: datetime
    end: datetime


def parse_listing_query(args) -> ListingQuery:
    values = _single_values(args, {"space": _query_id, "start": _datetime, "end": _datetime}, ("start", "end"))
    start, end = values["start"], values["end"]
    if end <= start:
        raise ValidationError({"end": "Must be after start."})
    if end - start > timedelta(days=MAX_LISTING_DAYS):
        raise ValidationError({"end": f"The range may span at most {MAX_LISTING_DAYS} days."})
    return ListingQuery(values.get("space"), start, end)


@dataclass(frozen=True)
class CancelQuery:
    scope: str
    occurrence_start: datetime | None


def parse_cancel_query(args) -> CancelQuery:
    values = _single_values(args, {"scope": _scope, "occurrence_start": _datetime})
    scope = values.get("scope", "all")
    occurrence_start = values.get("occurrence_start")
    _require_occurrence_for_scope(scope, occurrence_start)
    return CancelQuery(scope, occurrence_start)


# ---------------------------------------------------------------------------------------------- responses


def iso(value: datetime, tz) -> str:
    return to_local(value, tz).isoformat()


def space_item(space, pair=None) -> dict:
    return {
        "id": space.id,
        "name": space.name,
        "kind": space.kind,
        "capacity": space.capacity,
        "tags": list(space.tags or []),
        "depends_on": [s.id for s in space.depends_on],
        "dependants": [s.id for s in space.dependants],
        "pair": {"room_email": pair.room_email, "state": pair.state} if pair is not None else None,
    }


def _holder_item(user) -> dict | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.display_name, "email": user.email}


def _item(booking, viewer, original_start: datetime, start: datetime, end: datetime, title: str) -> dict:
    tz = booking.venue.tz
    visible = can_see_details(booking, viewer)
    return {
        "id": booking.id,
        "uid": booking.uid,
        "occurrence_start": iso(original_start, tz),
        "start": iso(start, tz),
        "end": iso(end, tz),
        "title": title if visible else None,
        "private": booking.private,
        "kind": booking.kind,
        "holder": _holder_item(booking.holder),
        "space_ids": [s.id for s in booking.spaces],
        "attendees": list(booking.attendees or []) if visible else [],
        "series": booking.is_series,
        "rrule": booking.rrule,
        "origin": booking.origin,
    }


def _occurrence_title(booking, original_start: datetime) -> str:
    """A series occurrence may carry its own title (an exception keyed by its original start)."""
    for exc in booking.exceptions:
        if exc.original_start_utc == original_start and exc.title is not None:
            return exc.title
    return booking.title


def occurrence_items(rows: Iterable, viewer) -> list[dict]:
    """One item per occurrence from occurrence rows (one row per occurrence and space), in row order."""
    items, seen = [], set()
    for row in rows:
        key = (row.booking_id, row.original_start_utc)
        if key in seen:
            continue
        seen.add(key)
        booking = row.booking
        title = _occurrence_title(booking, row.original_start_utc)
        items.append(_item(booking, viewer, row.original_start_utc, row.start_utc, row.end_utc, title))
    return items


def sync_item(outbound, booking, viewer) -> dict | None:
    """`outbound`: the booking's `OutboundState` when its push to Outlook is pending or failed, else None."""
    if outbound is None or outbound.state not in ("pending", "failed"):
        return None
    next_at = outbound.next_attempt_at if outbound.state == "pending" else None
    return {
        "state": outbound.state,
        "error": (outbound.error or None) if can_edit(booking, viewer) else None,
        "next_attempt_at": iso(next_at, booking.venue.tz) if next_at is not None else None,
    }


def booking_item(booking, viewer, outbound=None) -> dict:
    """The booking itself: times of its first occurrence, how many occurrences are live, cancelled or not."""
    visible = can_see_details(booking, viewer)
    item = _item(booking, viewer, booking.start_utc, booking.start_utc, booking.end_utc, booking.title)
    live = 0 if booking.is_cancelled else sum(1 for o in occurrence_times(booking) if not o.cancelled)
    item.update(
        description=booking.description if visible else None,
        custom_fields=dict(booking.custom_fields or {}) if visible else {},
        cancelled=booking.is_cancelled,
        occurrences=live,
        online_meeting=bool(booking.online_meeting),
        join_url=booking.join_url if visible else None,
        sync=sync_item(outbound, booking, viewer),
    )
    return item


def conflict_items(conflicts: Iterable[Conflict], tz) -> list[dict]:
    """What a refused write collided with: which booking, where and when — never its title."""
    items, seen = [], set()
    for conflict in conflicts:
        key = (conflict.booking_id, conflict.space_id, conflict.start_utc)
        if key in seen:
            continue
        seen.add(key)
        items.append(
            {
                "booking_id": conflict.booking_id,
                "space_id": conflict.space_id,
                "space": conflict.space_name,
                "start": iso(conflict.start_utc, tz),
                "end": iso(conflict.end_utc, tz),
            }
        )
    return items
