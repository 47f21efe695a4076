"""Booking operations: the only code that creates, changes or cancels bookings.

Public API:
- `BookingInput`: what a booking should look like (all times aware).
- `ExceptionInput(original_start, cancelled=False, start=None, end=None, title=None)`: one cancelled or
  moved (or retitled) occurrence of a series being created.
- `create_booking(venue, data, actor=…, origin=…, bypass_rules=False, uid=None, exceptions=(),
  ignore_sync_freeze=False, also_write=None)` → Booking. `also_write(booking)`, if given, adds the rows that
  must commit with the booking or not at all (the sync's links and report lines). `exceptions` are stored with the series in the same transaction,
  before its occurrences are materialised and checked (an imported Outlook series keeps its cancelled and
  moved occurrences); an `original_start` that is not an occurrence of the rule, or moved times that do not
  end after they start, are refused (`ValidationError` key `exceptions`).
- `update_booking(booking, data, actor=…, scope="all"|"this"|"following", occurrence_start=None, bypass_rules=False,
  ignore_sync_freeze=False)` → the booking holding the edited occurrence (a new booking for "following").
- `cancel_booking(booking, actor=…, scope=…, occurrence_start=None, ignore_sync_freeze=False)`
- `replace_booking(booking, data, exceptions=(), actor=None, origin="microsoft", also_write=None)` → the
  booking made exactly `data` + `exceptions` (the live sync applying Outlook's version of an event).
- `input_from_booking(booking, occurrence_start=None)` → BookingInput of what is there now (edit forms,
  PATCH merges).
- `occurrence_times(booking)` → list[OccurrenceTime], `expand(tz, start, end, rrule, exceptions)` (pure), `occurrences_between(space_ids, start, end)`,
  `find_conflicts(space_ids, intervals, exclude_booking_ids)`, `space_closure(space_ids)`, `DependencyGraph`,
  `materialise(booking)`.

Every write runs the same way: validate the input and (unless `bypass_rules`, for provider-origin bookings)
the venue rules; lock the spaces (`locking.lock_spaces`); apply; rebuild the booking's occurrence rows;
check overlaps against every other booking on the same spaces and on spaces they share with (dependants
and dependencies, transitively); commit — or roll back and raise, so nothing half-applied remains.
Operations never touch `request` or `flash`: errors are `booking.errors` exceptions.

Sync freeze: while a space of the locked closure is in its initial sync with Microsoft 365, every write
(any origin) is refused with `SpaceSyncing`, read after the locks are taken (see `sync.freeze`, imported
lazily: the sync package builds on this one). Only the initial sync job itself passes `ignore_sync_freeze`.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import contains_eager

from ..auth.models import User, normalise_email
from ..extensions import db
from ..signals import booking_changed
from ..timeutil import NaiveDatetimeError, ensure_aware, localize, now_utc, to_local
from .errors import Conflict, ConflictError, NotFound, PermissionDenied, ValidationError
from .locking import lock_spaces
from .models import BOOKING_KINDS, ORIGINS, Booking, Occurrence, OccurrenceException, Space, Venue, space_dependencies
from .privacy import can_edit
from .recurrence import Recurrence, RecurrenceError
from .rules import HARD_MAX_DURATION, check_venue_rules

SCOPES = ("all", "this", "following")
MAX_TITLE = 255
MAX_ATTENDEES = 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class BookingInput:
    space_ids: list[int]
    start: datetime
    end: datetime
    title: str = ""
    description: str = ""
    private: bool = False
    kind: str = "regular"
    attendees: list[str] = field(default_factory=list)
    custom_fields: dict = field(default_factory=dict)
    rrule: str | None = None
    holder_id: int | None = None  # None: the actor
    online_meeting: bool = False


@dataclass(frozen=True)
class ExceptionInput:
    """One occurrence of a new series that is cancelled or moved: `original_start` (aware) is where the rule
    puts it; `start`/`end` (aware; None keeps the rule's) and `title` (None keeps the series') say where it
    went. A cancelled occurrence's times and title are ignored."""

    original_start: datetime
    cancelled: bool = False
    start: datetime | None = None
    end: datetime | None = None
    title: str | None = None


@dataclass(frozen=True)
class OccurrenceTime:
    original_start: datetime
    start: datetime
    end: datetime
    cancelled: bool = False
    title: str | None = None  # per-occurrence title override


# ---------------------------------------------------------------------------------------------- reading


def occurrence_times(booking: Booking) -> list[OccurrenceTime]:
    """Every occurrence of a booking (cancelled ones flagged), sorted by start."""
    return expand(booking.venue.tz, booking.start_utc, booking.end_utc, booking.rrule, booking.exceptions)


def expand(tz, start: datetime, end: datetime, rrule: str | None, exceptions=()) -> list[OccurrenceTime]:
    """Pure expansion of a booking's times: the rule runs on wall-clock time in `tz`, exceptions (by
    original start) cancel or move single occurrences."""
    if not rrule:
        return [OccurrenceTime(start, start, end)]
    first_local = to_local(start, tz).replace(tzinfo=None)
    wall_duration = to_local(end, tz).replace(tzinfo=None) - first_local
    overrides = {exc.original_start_utc: exc for exc in exceptions}
    result = []
    for local_start in Recurrence.parse(rrule).starts(first_local):
        original = localize(local_start, tz)
        occurrence_end = localize(local_start + wall_duration, tz)
        exc = overrides.get(original)
        if exc is None:
            result.append(OccurrenceTime(original, original, occurrence_end))
        elif exc.cancelled:
            result.append(OccurrenceTime(original, original, occurrence_end, cancelled=True))
        else:
            result.append(
                OccurrenceTime(original, exc.start_utc or original, exc.end_utc or occurrence_end, title=exc.title)
            )
    result.sort(key=lambda o: o.start)
    return result


def find_occurrence(booking: Booking, original_start: datetime) -> OccurrenceTime:
    original_start = ensure_aware(original_start, "occurrence")
    for occ in occurrence_times(booking):
        if occ.original_start == original_start:
            return occ
    raise NotFound("That booking has no occurrence at that time.")


def occurrences_between(space_ids: Iterable[int], start: datetime, end: datetime) -> list[Occurrence]:
    """Live occurrence rows on the spaces overlapping [start, end), with their bookings loaded."""
    ids = list(space_ids)
    if not ids:
        return []
    stmt = (
        select(Occurrence)
        .join(Occurrence.booking)
        # Grids and listings never show these; they are loaded on access where a page needs them.
        .options(contains_eager(Occurrence.booking).defer(Booking.description).defer(Booking.custom_fields))
        .where(
            Occurrence.space_id.in_(ids),
            Occurrence.start_utc < end,
            Occurrence.start_utc >= start - HARD_MAX_DURATION,
            Occurrence.end_utc > start,
        )
        .order_by(Occurrence.start_utc, Occurrence.space_id)
    )
    return list(db.session.scalars(stmt))


class DependencyGraph:
    """Space-sharing, read once: which spaces block which.

    A booking occupies its spaces and everything they depend on, transitively ("A+B" occupies A and B).
    Two bookings collide when what they occupy overlaps, so a booking of some spaces collides with every
    space that occupies any space they occupy: go down, then up. Booking "A" blocks "A+B" but not "B";
    "A+B" and "A+C" block each other through A.
    """

    def __init__(self, edges: Iterable[tuple[int, int]]):
        self.down: dict[int, set[int]] = defaultdict(set)  # space → spaces it depends on
        self.up: dict[int, set[int]] = defaultdict(set)  # space → spaces that depend on it
        for space_id, depends_on_id in edges:
            self.down[space_id].add(depends_on_id)
            self.up[depends_on_id].add(space_id)

    @classmethod
    def load(cls) -> DependencyGraph:
        return cls(db.session.execute(select(space_dependencies.c.space_id, space_dependencies.c.depends_on_id)))

    def closure(self, space_ids: Iterable[int]) -> set[int]:
        return _reachable(_reachable(set(space_ids), self.down), self.up)

    def blockers(self) -> dict[int, set[int]]:
        """For every space that shares with others: the other spaces whose bookings block it."""
        related = set(self.down) | set(self.up)
        return {space: self.closure([space]) - {space} for space in related}


def space_closure(space_ids: Iterable[int]) -> set[int]:
    """The spaces whose bookings collide with a booking of `space_ids` (see `DependencyGraph`)."""
    return DependencyGraph.load().closure(space_ids)


def _reachable(starts: set[int], graph: dict[int, set[int]]) -> set[int]:
    seen = set(starts)
    stack = list(starts)
    while stack:
        for neighbour in graph.get(stack.pop(), ()):
            if neighbour not in seen:
                seen.add(neighbour)
                stack.append(neighbour)
    return seen


def find_conflicts(
    space_ids: Iterable[int],
    intervals: Sequence[tuple[datetime, datetime]],
    exclude_booking_ids: Iterable[int] = (),
) -> list[Conflict]:
    """Occurrences of other bookings that overlap any interval on the spaces' closure.

    `intervals` must not overlap each other (a series never does). One range query over the closure,
    then a sweep: the cost is one index scan whatever the number of occurrences.
    """
    if not intervals:
        return []
    closure = space_closure(space_ids)
    ordered = sorted(intervals)
    starts = [s for s, _ in ordered]
    ends = [e for _, e in ordered]
    excluded = list(exclude_booking_ids)
    stmt = (
        select(Occurrence.booking_id, Occurrence.space_id, Space.name, Occurrence.start_utc, Occurrence.end_utc)
        .join(Space, Space.id == Occurrence.space_id)
        .where(
            Occurrence.space_id.in_(closure),
            Occurrence.start_utc < ends[-1],
            Occurrence.start_utc >= starts[0] - HARD_MAX_DURATION,
            Occurrence.end_utc > starts[0],
        )
    )
    if excluded:
        stmt = stmt.where(Occurrence.booking_id.not_in(excluded))
    conflicts = []
    for booking_id, space_id, space_name, start, end in db.session.execute(stmt):
        index = bisect.bisect_right(ends, start)  # first requested interval ending after `start`
        while index < len(ordered) and starts[index] < end:
            conflicts.append(Conflict(booking_id, space_id, space_name, start, end, starts[index]))
            index += 1
    conflicts.sort(key=lambda c: (c.requested_start_utc, c.start_utc, c.space_name))
    return conflicts


def input_from_booking(booking: Booking, occurrence_start: datetime | None = None) -> BookingInput:
    start, end = booking.start_utc, booking.end_utc
    title = booking.title
    if occurrence_start is not None:
        occ = find_occurrence(booking, occurrence_start)
        start, end, title = occ.start, occ.end, occ.title if occ.title is not None else booking.title
    return BookingInput(
        space_ids=[s.id for s in booking.spaces],
        start=start,
        end=end,
        title=title,
        description=booking.description,
        private=booking.private,
        kind=booking.kind,
        attendees=list(booking.attendees or []),
        # Values of fields an admin has since deleted are dropped, so old bookings stay editable.
        custom_fields={k: v for k, v in (booking.custom_fields or {}).items() if k in {f.key for f in booking.venue.custom_fields}},
        rrule=booking.rrule,
        holder_id=booking.holder_id,
        online_meeting=bool(booking.online_meeting),
    )


# ---------------------------------------------------------------------------------------------- validation


def _validate_input(venue: Venue, data: BookingInput, actor: User | None, origin: str) -> tuple[list[Space], Recurrence | None, User | None]:
    errors: dict[str, str] = {}
    try:
        data.start = ensure_aware(data.start, "start")
    except (NaiveDatetimeError, AttributeError, TypeError):
        errors["start"] = "The start needs a date, a time and a UTC offset."
    try:
        data.end = ensure_aware(data.end, "end")
    except (NaiveDatetimeError, AttributeError, TypeError):
        errors["end"] = "The end needs a date, a time and a UTC offset."
    if "start" not in errors and "end" not in errors and data.end <= data.start:
        errors["end"] = "The end must be after the start."
    if origin not in ORIGINS:
        errors["origin"] = "Unknown origin."
    if data.kind not in BOOKING_KINDS:
        errors["kind"] = "Kind must be regular, internal or unavailable."
    elif data.kind != "regular" and origin == "roomsync" and not (actor and actor.is_admin):
        errors["kind"] = "Only admins can make internal or unavailable bookings."
    data.title = (data.title or "").strip()
    if len(data.title) > MAX_TITLE:
        errors["title"] = f"The title may have at most {MAX_TITLE} characters."
    data.description = (data.description or "").strip()
    if len(data.description) > 10_000:
        errors["description"] = "The description is too long (10,000 characters at most)."

    spaces: list[Space] = []
    ids = list(dict.fromkeys(data.space_ids or []))
    if not ids:
        errors["space_ids"] = "Choose at least one space."
    else:
        found = {s.id: s for s in db.session.scalars(select(Space).where(Space.id.in_(ids), Space.venue_id == venue.id))}
        missing = [i for i in ids if i not in found]
        if missing:
            errors["space_ids"] = f"Unknown space: {', '.join(map(str, missing))}."
        elif any(not found[i].active for i in ids):
            errors["space_ids"] = "That space is not bookable at the moment."
        spaces = [found[i] for i in ids if i in found]
    data.space_ids = [s.id for s in spaces]

    attendees = []
    for raw in data.attendees or []:
        email = normalise_email(str(raw))
        if not email:
            continue
        if not _EMAIL.match(email):
            errors["attendees"] = f"'{raw}' is not an email address."
            break
        if email not in attendees:
            attendees.append(email)
    if len(attendees) > MAX_ATTENDEES:
        errors["attendees"] = f"At most {MAX_ATTENDEES} attendees."
    data.attendees = attendees

    values = {}
    definitions = {f.key: f for f in venue.custom_fields}
    for key, value in (data.custom_fields or {}).items():
        definition = definitions.get(key)
        if definition is None:
            errors[f"custom_fields.{key}"] = f"Unknown field '{key}'."
            continue
        text = "" if value is None else str(value).strip()
        if definition.kind == "choice" and text and text not in definition.choices:
            errors[f"custom_fields.{key}"] = f"{definition.label}: choose one of {', '.join(definition.choices)}."
        elif len(text) > 500:
            errors[f"custom_fields.{key}"] = f"{definition.label} is too long."
        if text:
            values[key] = text
    if origin == "roomsync":
        for definition in definitions.values():
            if definition.required and not values.get(definition.key):
                errors.setdefault(f"custom_fields.{definition.key}", f"{definition.label} is required.")
    data.custom_fields = values

    recurrence = None
    if data.rrule:
        try:
            recurrence = Recurrence.parse(data.rrule)
            data.rrule = recurrence.to_rrule()
        except RecurrenceError as exc:
            errors["rrule"] = str(exc)
    else:
        data.rrule = None

    holder = actor
    if data.holder_id is not None and (actor is None or data.holder_id != actor.id):
        holder = db.session.get(User, data.holder_id)
        if holder is None or not holder.active:
            errors["holder_id"] = "Unknown or inactive holder."
        elif origin == "roomsync" and not (actor and actor.is_admin):
            errors["holder_id"] = "Only admins can book for someone else."
    if holder is None and data.kind == "regular" and "holder_id" not in errors:
        errors["holder_id"] = "A regular booking needs a holder."
    if errors:
        raise ValidationError(errors)
    return spaces, recurrence, holder


def _check_series_shape(times: list[OccurrenceTime]) -> None:
    live = [o for o in times if not o.cancelled]
    for previous, current in zip(live, live[1:]):
        if current.start < previous.end:
            raise ValidationError({"start": "Occurrences of this series would overlap each other."})


def _check_rules(venue: Venue, times: Iterable[OccurrenceTime], now: datetime, existing_starts=frozenset()) -> None:
    """Venue rules for what this write books. Occurrences that were booked before and are over are history:
    a series edited today is not refused because last month's occurrences broke today's rules."""
    existing = frozenset(existing_starts)
    candidates = [(o.start, o.end) for o in times if not o.cancelled and (o.end > now or o.start not in existing)]
    errors = check_venue_rules(venue, candidates, now, existing)
    if errors:
        raise ValidationError(errors)


# ---------------------------------------------------------------------------------------------- writing


def materialise(booking: Booking) -> list[OccurrenceTime]:
    """Rebuild the booking's occurrence rows; returns the live occurrences."""
    db.session.execute(delete(Occurrence).where(Occurrence.booking_id == booking.id))
    if booking.cancelled_at is not None:
        return []
    live = [o for o in occurrence_times(booking) if not o.cancelled]
    rows = [
        {
            "booking_id": booking.id,
            "space_id": space.id,
            "start_utc": o.start,
            "end_utc": o.end,
            "original_start_utc": o.original_start,
        }
        for o in live
        for space in booking.spaces
    ]
    if rows:
        db.session.execute(insert(Occurrence), rows)
    return live


def _commit_checked(bookings: list[Booking], change: str, scope: str = "all") -> None:
    """Materialise, check overlaps against everyone else, announce, commit. Raises ConflictError."""
    db.session.flush()
    ids = [b.id for b in bookings]
    conflicts: list[Conflict] = []
    for booking in bookings:
        live = materialise(booking)
        conflicts += find_conflicts([s.id for s in booking.spaces], [(o.start, o.end) for o in live], ids)
    if conflicts:
        raise ConflictError(conflicts, _conflict_message(bookings[0].venue, conflicts))
    for booking in bookings:
        booking_changed.send(db.session, booking_id=booking.id, change=change, scope=scope)
    db.session.commit()


def _conflict_message(venue: Venue, conflicts: list[Conflict]) -> str:
    tz = venue.tz
    dates = sorted({to_local(c.requested_start_utc, tz).date() for c in conflicts})
    spaces = sorted({c.space_name for c in conflicts})
    where = ", ".join(spaces)
    if len(dates) == 1:
        first = conflicts[0]
        start, end = to_local(first.start_utc, tz), to_local(first.end_utc, tz)
        return f"{where} is already booked {start:%a %d %b %H:%M}–{end:%H:%M}."
    listed = ", ".join(f"{d:%d %b %Y}" for d in dates[:10])
    more = f" and {len(dates) - 10} more" if len(dates) > 10 else ""
    return f"{where} is already booked on {len(dates)} of these dates: {listed}{more}."


def _refuse_if_syncing(closure: Iterable[int], space_ids: Iterable[int], *, changing: bool = False) -> None:
    """Inside the locked section: refuse when a space of the locked closure is in its initial sync."""
    # Imported here, not at the top: webapp.sync builds on webapp.booking (see the module docstring).
    from ..sync.freeze import refuse_if_syncing

    refuse_if_syncing(closure, space_ids, changing=changing)


def _exception_rows(venue: Venue, data: BookingInput, exceptions: Sequence[ExceptionInput], now: datetime) -> list[OccurrenceException]:
    """The OccurrenceException rows of a new series, checked against its rule (not yet attached)."""
    if not exceptions:
        return []
    if not data.rrule:
        raise ValidationError({"exceptions": "Only a repeating booking can have cancelled or moved occurrences."})
    tz = venue.tz
    by_original = {o.original_start: o for o in expand(tz, data.start, data.end, data.rrule)}
    rows: list[OccurrenceException] = []
    seen: set[datetime] = set()
    for exc in exceptions:
        try:
            original = ensure_aware(exc.original_start, "original_start")
            start = ensure_aware(exc.start, "start") if exc.start is not None and not exc.cancelled else None
            end = ensure_aware(exc.end, "end") if exc.end is not None and not exc.cancelled else None
        except (NaiveDatetimeError, AttributeError, TypeError):
            raise ValidationError({"exceptions": "Occurrence times need a date, a time and a UTC offset."}) from None
        occurrence = by_original.get(original)
        if occurrence is None:
            raise ValidationError(
                {"exceptions": f"{to_local(original, tz):%a %d %b %Y %H:%M} is not an occurrence of this series."}
            )
        if original in seen:
            raise ValidationError({"exceptions": f"The occurrence of {to_local(original, tz):%a %d %b %Y %H:%M} is given twice."})
        seen.add(original)
        if exc.cancelled:
            rows.append(OccurrenceException(original_start_utc=original, cancelled=True, updated_at=now))
            continue
        if (end or occurrence.end) <= (start or occurrence.start):
            raise ValidationError(
                {"exceptions": f"The occurrence of {to_local(original, tz):%a %d %b %Y %H:%M} must end after it starts."}
            )
        title = (exc.title or "").strip() if exc.title is not None else None
        if title is not None and len(title) > MAX_TITLE:
            raise ValidationError({"exceptions": f"An occurrence's title may have at most {MAX_TITLE} characters."})
        rows.append(
            OccurrenceException(
                original_start_utc=original,
                cancelled=False,
                start_utc=start,
                end_utc=end,
                title=None if title == data.title else title,
                updated_at=now,
            )
        )
    if len(seen) == len(by_original) and all(r.cancelled for r in rows):
        raise ValidationError({"exceptions": "Every occurrence of this series is cancelled: there is nothing to book."})
    return rows


def _run(write):
    """Run a write; on any error roll the session back so no half-applied change can be committed.
    A rule that cannot be expanded (too many occurrences, beyond the calendar) is a validation error."""
    try:
        return write()
    except (RecurrenceError, OverflowError) as exc:
        db.session.rollback()
        message = str(exc) if isinstance(exc, RecurrenceError) else "The series runs past the end of the calendar."
        raise ValidationError({"rrule": message}) from exc
    except BaseException:
        db.session.rollback()
        raise


def create_booking(
    venue: Venue,
    data: BookingInput,
    *,
    actor: User | None,
    origin: str = "roomsync",
    bypass_rules: bool = False,
    uid: str | None = None,
    exceptions: Sequence[ExceptionInput] = (),
    ignore_sync_freeze: bool = False,
    also_write: Callable[[Booking], None] | None = None,
) -> Booking:
    def write():
        spaces, recurrence, holder = _validate_input(venue, data, actor, origin)
        now = now_utc()
        exception_rows = _exception_rows(venue, data, exceptions, now)
        times = expand(venue.tz, data.start, data.end, data.rrule, exception_rows)
        _check_series_shape(times)
        if not bypass_rules:
            _check_rules(venue, times, now)
        closure = space_closure(data.space_ids)
        lock_spaces(closure)
        if not ignore_sync_freeze:
            _refuse_if_syncing(closure, data.space_ids)
        booking = Booking(
            venue_id=venue.id,
            holder_id=holder.id if holder else None,
            kind=data.kind,
            title=data.title,
            description=data.description,
            private=bool(data.private),
            start_utc=data.start,
            end_utc=data.end,
            rrule=data.rrule,
            attendees=data.attendees,
            custom_fields=data.custom_fields,
            online_meeting=bool(data.online_meeting),
            origin=origin,
            created_by_id=actor.id if actor else None,
            updated_by_id=actor.id if actor else None,
            created_at=now,
            updated_at=now,
        )
        if uid:
            booking.uid = uid
        booking.spaces = list(db.session.scalars(select(Space).where(Space.id.in_(data.space_ids))))
        booking.exceptions = exception_rows
        db.session.add(booking)
        if also_write is not None:
            # Rows that must commit with the booking or not at all (the sync's links and report lines). They
            # are written here, inside the locked transaction: SQLite's lock commits what was pending before.
            also_write(booking)
        _commit_checked([booking], "created")
        return booking

    return _run(write)


def _require_editable(booking: Booking, actor: User | None, origin: str) -> None:
    if booking.cancelled_at is not None:
        raise ValidationError({"booking": "This booking is cancelled."})
    if origin == "roomsync" and not can_edit(booking, actor):
        raise PermissionDenied("Only the holder or an admin can change this booking.")


def _touch(booking: Booking, actor: User | None, now: datetime) -> None:
    booking.sequence = (booking.sequence or 0) + 1
    booking.updated_at = now
    booking.updated_by_id = actor.id if actor else None


def _apply_fields(booking: Booking, data: BookingInput, spaces: list[Space], holder: User | None) -> None:
    booking.title = data.title
    booking.description = data.description
    booking.private = bool(data.private)
    booking.kind = data.kind
    booking.attendees = data.attendees
    booking.custom_fields = data.custom_fields
    booking.online_meeting = bool(data.online_meeting)
    booking.holder_id = holder.id if holder else booking.holder_id
    booking.spaces = spaces


def update_booking(
    booking: Booking,
    data: BookingInput,
    *,
    actor: User | None,
    scope: str = "all",
    occurrence_start: datetime | None = None,
    origin: str = "roomsync",
    bypass_rules: bool = False,
    ignore_sync_freeze: bool = False,
) -> Booking:
    """Change a booking. For a series, `occurrence_start` (the original start of the occurrence being
    edited) and `scope` say which part: "this" occurrence, "following" (this and later ones, split into a
    new series), or "all". Times in `data` are those of that occurrence; for "all" the whole series moves
    by the same wall-clock offset."""
    if scope not in SCOPES:
        raise ValidationError({"scope": "Scope must be all, this or following."})

    def write():
        _require_editable(booking, actor, origin)
        venue = booking.venue
        old_space_ids = [s.id for s in booking.spaces]
        booked_starts = {o.start for o in occurrence_times(booking) if not o.cancelled}
        if not booking.rrule:
            data.rrule = data.rrule if data.rrule else None
        spaces, recurrence, holder = _validate_input(venue, data, actor, origin)
        now = now_utc()
        reference = (
            find_occurrence(booking, occurrence_start)
            if occurrence_start is not None and booking.rrule
            else OccurrenceTime(booking.start_utc, booking.start_utc, booking.end_utc)
        )
        effective_scope = scope if booking.rrule else "all"
        if effective_scope == "following" and reference.original_start == booking.start_utc:
            effective_scope = "all"
        closure = space_closure(old_space_ids + data.space_ids)
        lock_spaces(closure)
        if not ignore_sync_freeze:
            _refuse_if_syncing(closure, old_space_ids + data.space_ids, changing=True)

        if effective_scope == "this":
            changed = _changed_series_fields(booking, data)
            if changed:
                raise ValidationError(
                    {changed[0]: "That change applies to a whole series: choose 'this and following' or 'all'."}
                )
            exc = _exception_for(booking, reference.original_start)
            exc.cancelled = False
            exc.start_utc, exc.end_utc = data.start, data.end
            exc.title = data.title if data.title != booking.title else None
            exc.updated_at = now
            _touch(booking, actor, now)
            if not bypass_rules:
                _check_rules(venue, [OccurrenceTime(reference.original_start, data.start, data.end)], now, booked_starts)
            _check_series_shape(occurrence_times(booking))
            _commit_checked([booking], "updated", "this")
            return booking

        if effective_scope == "following":
            new = _split_series(booking, reference, data, recurrence, actor, now)
            _apply_fields(new, data, spaces, holder)
            new.origin = booking.origin
            db.session.add(new)
            times = occurrence_times(new)
            _check_series_shape(times)
            if not bypass_rules:
                _check_rules(venue, times, now, booked_starts)
            _touch(booking, actor, now)
            _commit_checked([booking, new], "updated", "following")
            return new

        # "all": move the series (or the single booking) by the offset given for the reference occurrence.
        tz = venue.tz
        shift = to_local(data.start, tz).replace(tzinfo=None) - to_local(reference.start, tz).replace(tzinfo=None)
        new_wall_duration = to_local(data.end, tz).replace(tzinfo=None) - to_local(data.start, tz).replace(tzinfo=None)
        first_local = to_local(booking.start_utc, tz).replace(tzinfo=None) + shift
        same_pattern = data.rrule == booking.rrule
        booking.start_utc = localize(first_local, tz)
        booking.end_utc = localize(first_local + new_wall_duration, tz)
        booking.rrule = data.rrule
        if not booking.rrule:
            booking.exceptions.clear()
        elif shift != timedelta(0) or not same_pattern:
            # The pattern moved: overrides no longer line up. Cancelled dates move with an unchanged pattern
            # (the user cancelled "the 3rd one", not "09:00 on the 3rd"); moved occurrences reset.
            cancelled = [e.original_start_utc for e in booking.exceptions if e.cancelled] if same_pattern else []
            booking.exceptions.clear()
            db.session.flush()
            for original in cancelled:
                moved_original = localize(to_local(original, tz).replace(tzinfo=None) + shift, tz)
                booking.exceptions.append(OccurrenceException(original_start_utc=moved_original, cancelled=True, updated_at=now))
        _apply_fields(booking, data, spaces, holder)
        times = occurrence_times(booking)
        _check_series_shape(times)
        if not bypass_rules:
            _check_rules(venue, times, now, booked_starts)
        _touch(booking, actor, now)
        _commit_checked([booking], "updated", "all")
        return booking

    return _run(write)


def replace_booking(
    booking: Booking,
    data: BookingInput,
    *,
    exceptions: Sequence[ExceptionInput] = (),
    actor: User | None = None,
    origin: str = "microsoft",
    also_write: Callable[[Booking], None] | None = None,
) -> Booking:
    """Make `booking` exactly what `data` and `exceptions` say — times, pattern, exceptions, fields — in one
    checked transaction (the live sync: Outlook's version of an event replaces ours). Venue rules are not
    applied (provider-origin changes ignore them); overlaps and space-sharing are checked; the sync freeze
    does not apply (the sync itself is writing). Raises like `update_booking`."""

    def write():
        venue = booking.venue
        if booking.cancelled_at is not None:
            raise ValidationError({"booking": "This booking is cancelled."})
        old_space_ids = [s.id for s in booking.spaces]
        spaces, _recurrence, holder = _validate_input(venue, data, actor, origin)
        now = now_utc()
        exception_rows = _exception_rows(venue, data, exceptions, now)
        times = expand(venue.tz, data.start, data.end, data.rrule, exception_rows)
        _check_series_shape(times)
        lock_spaces(space_closure(old_space_ids + data.space_ids))
        db.session.refresh(booking)  # under the locks: the caller's copy may predate another writer's commit
        if booking.cancelled_at is not None:
            raise ValidationError({"booking": "This booking is cancelled."})
        booking.start_utc, booking.end_utc, booking.rrule = data.start, data.end, data.rrule
        booking.exceptions.clear()
        db.session.flush()
        booking.exceptions = exception_rows
        _apply_fields(booking, data, spaces, holder)
        if holder is None and data.kind != "regular":
            booking.holder_id = None
        _touch(booking, actor, now)
        if also_write is not None:
            also_write(booking)
        _commit_checked([booking], "updated", "all")
        return booking

    return _run(write)


def _changed_series_fields(booking: Booking, data: BookingInput) -> list[str]:
    changed = []
    if sorted(data.space_ids) != sorted(s.id for s in booking.spaces):
        changed.append("space_ids")
    if bool(data.private) != booking.private:
        changed.append("private")
    if data.description != booking.description:
        changed.append("description")
    if data.attendees != list(booking.attendees or []):
        changed.append("attendees")
    if data.custom_fields != dict(booking.custom_fields or {}):
        changed.append("custom_fields")
    if (data.rrule or None) != booking.rrule:
        changed.append("rrule")
    if data.kind != booking.kind:
        changed.append("kind")
    if bool(data.online_meeting) != bool(booking.online_meeting):
        changed.append("online_meeting")
    return changed


def _exception_for(booking: Booking, original_start: datetime) -> OccurrenceException:
    for exc in booking.exceptions:
        if exc.original_start_utc == original_start:
            return exc
    exc = OccurrenceException(original_start_utc=original_start)
    booking.exceptions.append(exc)
    return exc


def _split_series(
    booking: Booking,
    reference: OccurrenceTime,
    data: BookingInput,
    recurrence: Recurrence | None,
    actor: User | None,
    now: datetime,
) -> Booking:
    """End `booking` before `reference` and return a new series that starts at the edited occurrence."""
    tz = booking.venue.tz
    old_rule = Recurrence.parse(booking.rrule)
    before = [o for o in occurrence_times(booking) if o.original_start < reference.original_start]
    remaining = [o for o in occurrence_times(booking) if o.original_start >= reference.original_start]
    last_kept_day = to_local(before[-1].original_start, tz).date() if before else None
    booking.rrule = old_rule.with_until(last_kept_day).to_rrule() if last_kept_day else booking.rrule
    for exc in list(booking.exceptions):
        if exc.original_start_utc >= reference.original_start:
            booking.exceptions.remove(exc)
    if recurrence is not None and data.rrule != booking.rrule and data.rrule != old_rule.to_rrule():
        new_rule = recurrence
    elif old_rule.count is not None:
        new_rule = old_rule.with_count(len(remaining))
    else:
        new_rule = old_rule
    return Booking(
        venue=booking.venue,
        kind=booking.kind,
        start_utc=data.start,
        end_utc=data.end,
        rrule=new_rule.to_rrule(),
        created_by_id=actor.id if actor else None,
        updated_by_id=actor.id if actor else None,
        created_at=now,
        updated_at=now,
    )


def cancel_booking(
    booking: Booking,
    *,
    actor: User | None,
    scope: str = "all",
    occurrence_start: datetime | None = None,
    origin: str = "roomsync",
    ignore_sync_freeze: bool = False,
) -> Booking:
    """Cancel a booking, one occurrence of a series ("this"), or this and the following ones."""
    if scope not in SCOPES:
        raise ValidationError({"scope": "Scope must be all, this or following."})

    def write():
        _require_editable(booking, actor, origin)
        now = now_utc()
        effective_scope = scope if booking.rrule and occurrence_start is not None else "all"
        reference = find_occurrence(booking, occurrence_start) if effective_scope != "all" else None
        if reference is not None and effective_scope == "following" and reference.original_start == booking.start_utc:
            effective_scope = "all"
        space_ids = [s.id for s in booking.spaces]
        closure = space_closure(space_ids)
        lock_spaces(closure)
        if not ignore_sync_freeze:
            _refuse_if_syncing(closure, space_ids, changing=True)
        if effective_scope == "this":
            exc = _exception_for(booking, reference.original_start)
            exc.cancelled, exc.start_utc, exc.end_utc, exc.updated_at = True, None, None, now
            if all(o.cancelled for o in occurrence_times(booking)):
                booking.cancelled_at = now
        elif effective_scope == "following":
            tz = booking.venue.tz
            before = [o for o in occurrence_times(booking) if o.original_start < reference.original_start]
            booking.rrule = Recurrence.parse(booking.rrule).with_until(to_local(before[-1].original_start, tz).date()).to_rrule()
            for exc in list(booking.exceptions):
                if exc.original_start_utc >= reference.original_start:
                    booking.exceptions.remove(exc)
        else:
            booking.cancelled_at = now
        _touch(booking, actor, now)
        db.session.flush()
        materialise(booking)
        booking_changed.send(db.session, booking_id=booking.id, change="cancelled", scope=effective_scope)
        db.session.commit()
        return booking

    return _run(write)
