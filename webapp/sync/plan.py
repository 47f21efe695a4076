"""What the initial sync does with one event of a room: a pure decision (no database, no provider).

Public API:
- `RoomItem`: one upcoming event of the room as the initial sync sees it — `key` (the room's event id of a
  single event, or of a series master), `room_event` (that room copy; for a series, its master),
  `instances` (the room's upcoming instances in the window: one for a single event, the occurrences and
  exceptions of a series), `organizer_copy` (the organizer's own event: its subject and privacy are the
  truth, since the room's copy has them stripped; None when it cannot be read).
- `Decision`, `decide(item, ctx)` and `DecisionContext` (the venue's zone and grid, whether overnight
  bookings are allowed, the paired room addresses, this room, the window start and the 1,080-day horizon).
- `holder_email(item, room_email)`: the organizer, or None for an event the room organizes itself.
- `overnight(start, end, tz)`.

The decision table, first match wins (the reference guide's step 4, DESIGN "The sync, in one page"):

| # | the event …                                                   | action  | Outlook side                 |
|---|---------------------------------------------------------------|---------|------------------------------|
| 1 | books more than `MAX_PAIRED_ROOMS` (10) paired rooms           | remove  | organizer's event cancelled  |
| 2 | is a series whose pattern Roomsync cannot express             | import  | each instance as a single    |
| 3 | has an instance spanning midnight (venue disallows overnight) | refuse  | declined as the room         |
| 4 | otherwise                                                     | import  | adjusted times / shortened   |
|   |                                                               |         | series written back          |

Conflicts (with a space-sharing booking or with another imported event) are found when the booking is
written, since they depend on what is in the database: the caller refuses those (`refuse`, same Outlook
side as row 3). Adjustment uses `adjust.adjust_to_grid` on the venue's grid; a series is shifted as a whole
by its first instance's adjustment in wall-clock time (a weekly 13:53 stays a weekly 13:45), its moved
instances are adjusted one by one. Series reaching past the horizon are cut there (`shortened`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..booking.operations import ExceptionInput
from ..booking.recurrence import Recurrence
from ..graph.types import Event
from ..timeutil import localize, to_local
from .adjust import adjust_to_grid
from .recurrence_map import UnsupportedRecurrence, rrule_from_graph

MAX_PAIRED_ROOMS = 10
HORIZON_DAYS = 1080


@dataclass(frozen=True)
class RoomItem:
    key: str
    room_event: Event
    instances: tuple[Event, ...]
    organizer_copy: Event | None = None

    @property
    def is_series(self) -> bool:
        return self.room_event.type == "seriesMaster"

    @property
    def title(self) -> str:
        source = self.organizer_copy or self.room_event
        return (source.subject or "").strip()[:255]

    @property
    def private(self) -> bool:
        return bool(self.organizer_copy and self.organizer_copy.is_private)

    @property
    def organizer_email(self) -> str | None:
        source = self.organizer_copy or self.room_event
        return (source.organizer_email or "").lower() or None

    @property
    def organizer_name(self) -> str:
        source = self.organizer_copy or self.room_event
        return source.organizer_name or source.organizer_email or ""

    @property
    def first(self) -> Event:
        return self.instances[0] if self.instances else self.room_event


@dataclass(frozen=True)
class DecisionContext:
    tz: ZoneInfo
    step_minutes: int
    allow_overnight: bool
    paired_rooms: frozenset[str]
    room_email: str
    window_start: datetime
    horizon_date: date


@dataclass(frozen=True)
class Slot:
    key: str  # the room's instance id (singles), the series key otherwise
    start: datetime
    end: datetime
    before_start: datetime
    before_end: datetime

    @property
    def adjusted(self) -> bool:
        return (self.start, self.end) != (self.before_start, self.before_end)


@dataclass(frozen=True)
class Decision:
    action: str  # import | refuse | remove | skip (nothing upcoming is left of it)
    reason: str = ""
    # import of a single event or a series (first upcoming occurrence):
    slot: Slot | None = None
    rrule: str | None = None
    exceptions: tuple[ExceptionInput, ...] = ()
    shortened: bool = False
    shortened_until: date | None = None
    # a series Roomsync cannot express: each upcoming instance becomes a single booking
    singles: tuple[Slot, ...] = ()
    master_shift: timedelta | None = None  # how far the series' wall-clock start moved (write-back)
    master_length: timedelta | None = None
    paired_rooms: tuple[str, ...] = field(default=())

    @property
    def adjusted(self) -> bool:
        return bool(self.slot and self.slot.adjusted) or any(s.adjusted for s in self.singles)


def overnight(start: datetime, end: datetime, tz: ZoneInfo) -> bool:
    """Whether [start, end) reaches into another local day (ending exactly at midnight does not)."""
    return to_local(start, tz).date() != to_local(end - timedelta(microseconds=1), tz).date()


def holder_email(item: RoomItem, room_email: str) -> str | None:
    organizer = item.organizer_email
    return None if organizer is None or organizer == room_email.lower() else organizer


def _paired_rooms_booked(item: RoomItem, ctx: DecisionContext) -> tuple[str, ...]:
    source = item.organizer_copy or item.room_event
    rooms = {a.email.lower() for a in source.attendees if a.type == "resource"}
    if source.location and source.location.email:
        rooms.add(source.location.email.lower())
    rooms.add(ctx.room_email.lower())
    return tuple(sorted(rooms & ctx.paired_rooms | {ctx.room_email.lower()}))


def _adjust(key: str, start: datetime, end: datetime, ctx: DecisionContext) -> Slot:
    new_start, new_end = adjust_to_grid(start, end, ctx.tz, ctx.step_minutes)
    return Slot(key, new_start, new_end, start, end)


def _overnight_reason(ctx: DecisionContext) -> str:
    return ("It spans midnight, and this venue's spaces are booked one day at a time: split it into one "
            "event per day.")


def decide(item: RoomItem, ctx: DecisionContext) -> Decision:
    rooms = _paired_rooms_booked(item, ctx)
    if len(rooms) > MAX_PAIRED_ROOMS:
        return Decision("remove", f"It books {len(rooms)} synced rooms; Roomsync syncs events that book at most "
                                  f"{MAX_PAIRED_ROOMS}. Split it into several events.", paired_rooms=rooms)
    if not item.is_series:
        event = item.first
        slot = _adjust(item.key, event.start, event.end, ctx)
        if not ctx.allow_overnight and overnight(slot.start, slot.end, ctx.tz):
            return Decision("refuse", _overnight_reason(ctx), slot=slot)
        return Decision("import", slot=slot)
    return _decide_series(item, ctx)


def _as_singles(item: RoomItem, ctx: DecisionContext, why: str) -> Decision:
    singles = tuple(_adjust(i.id, i.start, i.end, ctx) for i in item.instances if not i.is_cancelled)
    if not ctx.allow_overnight and any(overnight(s.start, s.end, ctx.tz) for s in singles):
        return Decision("refuse", _overnight_reason(ctx))
    return Decision("import", reason=why, singles=singles)


def _decide_series(item: RoomItem, ctx: DecisionContext) -> Decision:
    master = item.room_event
    if master.recurrence is None:
        return _as_singles(item, ctx, "The series has no readable repeat pattern: imported occurrence by occurrence.")
    first_local = to_local(master.start, ctx.tz).replace(tzinfo=None)
    try:
        mapped = rrule_from_graph(master.recurrence, first_local, horizon_date=ctx.horizon_date,
                                  zone_name=ctx.tz.key)
    except UnsupportedRecurrence as error:
        return _as_singles(item, ctx, f"{error} Imported occurrence by occurrence.")
    # The series' own adjustment: its first occurrence's, applied in wall-clock time to every occurrence.
    base = _adjust(master.id, master.start, master.end, ctx)
    shift = to_local(base.start, ctx.tz).replace(tzinfo=None) - first_local
    length = base.end - base.start
    rule = Recurrence.parse(mapped.rrule)
    window_local = to_local(ctx.window_start, ctx.tz).replace(tzinfo=None)
    all_starts = rule.starts(mapped.first_start)
    upcoming = [s for s in all_starts if s >= window_local]
    skipped = len(all_starts) - len(upcoming)
    by_original = {}
    for instance in item.instances:
        original = instance.original_start or instance.start
        by_original[to_local(original, ctx.tz).replace(tzinfo=None)] = instance
    if not upcoming:
        return _as_singles(item, ctx, "The series has no upcoming occurrence of its own pattern.")
    if rule.count is not None:
        rule = rule.with_count(max(1, rule.count - skipped))
    exceptions: list[ExceptionInput] = []
    slots: list[tuple[datetime, datetime]] = []
    for original_local in upcoming:
        ours = localize(original_local + shift, ctx.tz)
        instance = by_original.get(original_local)
        if instance is None or instance.is_cancelled:
            exceptions.append(ExceptionInput(original_start=ours, cancelled=True))
            continue
        expected_start = localize(original_local, ctx.tz)
        if instance.type == "exception" and (instance.start, instance.end) != (expected_start,
                                                                                expected_start + (master.end - master.start)):
            moved = _adjust(instance.id, instance.start, instance.end, ctx)
            exceptions.append(ExceptionInput(original_start=ours, start=moved.start, end=moved.end))
            slots.append((moved.start, moved.end))
        else:
            slots.append((ours, ours + length))
    if not ctx.allow_overnight and any(overnight(start, end, ctx.tz) for start, end in slots):
        return Decision("refuse", _overnight_reason(ctx))
    first_ours = localize(upcoming[0] + shift, ctx.tz)
    first_before = localize(upcoming[0], ctx.tz)
    slot = Slot(item.key, first_ours, first_ours + length, first_before, first_before + (master.end - master.start))
    if all(e.cancelled for e in exceptions) and len(exceptions) == len(upcoming):
        return Decision("skip", reason="Every upcoming occurrence is cancelled.")
    return Decision("import", slot=slot, rrule=rule.to_rrule(), exceptions=tuple(exceptions), shortened=mapped.shortened,
                    shortened_until=ctx.horizon_date if mapped.shortened else None, master_shift=shift,
                    master_length=length)
