"""A space's status at a glance: pure functions, no database, no Flask.

Public API:
- `Item(start, end, title, holder, private, booking_id=None, original_start=None, kind="regular", via="")`: one
  occurrence on the space (or on a space it shares with) on the day; `title` is already masked
  (`booking.privacy`), `holder` a display name ("" when none). Times are aware UTC.
- `day_hours(opening_hours, day, tz)` → `(opens, closes)` in UTC, or None when the venue is closed that day.
  `opening_hours` is `Venue.hours_for(weekday)`'s value (a pair of `time`, `time.max` meaning midnight).
- `day_bounds(day, tz)` → the UTC instants of the day's local midnights (23 or 25 hours apart on DST days).
- `compute(now, items, hours, soon_minutes)` → `Status(state, until, current, upcoming, changes_at)`.
- `LABELS`, `until_text(until, day_end, tz)` ("until 14:30", "until midnight", "until Wed 01:00", ""),
  `span_text(item, tz)` ("09:00–10:00"): the words the panel shows, also spelled out in `kiosk.js`.
- `schedule_json(items, hours, soon_minutes, day_end)` → the plain data `static/kiosk.js` recomputes the
  status from when the panel is offline (milliseconds since the epoch, so no zone arithmetic in the browser).

The rule (kept identical in `kiosk.js`'s `computeStatus`; change both together):
1. `current` is the item in progress (start ≤ now < end); the state is **busy**, "until" the end of the run of
   back-to-back items it starts (an item starting at or before the run's end extends it).
2. Otherwise the next item is the first starting after now. When it starts within `soon_minutes`
   (now ≥ start − soon) the state is **soon**, "until" its start.
3. Otherwise, outside opening hours (no hours that day, before opening or from closing time on) the state is
   **closed**, "until" the opening time when it is still ahead today, else none.
4. Otherwise **free**, "until" the earlier of the next item's start and closing time.
`upcoming` lists the items starting after now (not the current one). `changes_at` is the next instant at which
the state or its "until" can change (for the browser's timer), or None.

Boundaries: an item is current from its start inclusive to its end exclusive; "soon" starts exactly
`soon_minutes` before the start; the day is open from `opens` inclusive to `closes` exclusive. Days are
local-calendar days of the venue's zone: `day_bounds` and `day_hours` go through `timeutil.localize`, so a
spring-forward day is 23 hours long, a fall-back day 25, and an opening time inside the DST gap moves forward
like a wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..timeutil import local_day_bounds, localize

STATES = ("free", "soon", "busy", "closed")
LABELS = {"free": "Free", "soon": "Starting soon", "busy": "Busy", "closed": "Closed"}


@dataclass(frozen=True)
class Item:
    start: datetime
    end: datetime
    title: str
    holder: str = ""
    private: bool = False
    booking_id: int | None = None
    original_start: datetime | None = None
    kind: str = "regular"
    via: str = ""  # the sharing space's name when the item is on another space ("Board room A+B")


@dataclass(frozen=True)
class Status:
    state: str  # free | soon | busy | closed
    until: datetime | None
    current: Item | None = None
    upcoming: list[Item] = field(default_factory=list)
    changes_at: datetime | None = None

    @property
    def next(self) -> Item | None:
        return self.upcoming[0] if self.upcoming else None


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return local_day_bounds(day, tz)


def day_hours(opening_hours: tuple[time, time] | None, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    if not opening_hours:
        return None
    opens, closes = opening_hours
    opens_at = localize(datetime.combine(day, opens), tz)
    if closes == time.max:
        closes_at = day_bounds(day, tz)[1]
    else:
        closes_at = localize(datetime.combine(day, closes), tz)
    if closes_at <= opens_at:
        return None
    return opens_at, closes_at


def compute(now: datetime, items, hours: tuple[datetime, datetime] | None, soon_minutes: int) -> Status:
    items = sorted((i for i in items if i.end > i.start), key=lambda i: (i.start, i.end))
    soon = timedelta(minutes=max(0, soon_minutes))
    current = next((i for i in items if i.start <= now < i.end), None)
    upcoming = [i for i in items if i.start > now]
    nxt = upcoming[0] if upcoming else None

    if current is not None:
        until = current.end
        for item in items:
            if item.start <= until and item.end > until:
                until = item.end
        state = "busy"
    elif nxt is not None and now >= nxt.start - soon:
        state, until = "soon", nxt.start
    elif hours is None or now < hours[0] or now >= hours[1]:
        state = "closed"
        until = hours[0] if hours is not None and now < hours[0] else None
    else:
        state = "free"
        until = min(nxt.start, hours[1]) if nxt is not None else hours[1]

    # The next instant anything above can flip: an item's start or end, a "soon" threshold, opening or closing.
    candidates = [t for i in items for t in (i.start, i.end, i.start - soon)]
    if hours is not None:
        candidates += list(hours)
    later = [t for t in candidates if t > now]
    return Status(state, until, current, upcoming, min(later) if later else None)


def until_text(until: datetime | None, day_end: datetime, tz: ZoneInfo) -> str:
    if until is None:
        return ""
    if until == day_end:
        return "until midnight"
    local = until.astimezone(tz)
    return f"until {local:%a %H:%M}" if until > day_end else f"until {local:%H:%M}"


def span_text(item: Item, tz: ZoneInfo) -> str:
    return f"{item.start.astimezone(tz):%H:%M}\u2013{item.end.astimezone(tz):%H:%M}"


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def schedule_json(items, hours: tuple[datetime, datetime] | None, soon_minutes: int, day_end: datetime) -> dict:
    """The day's schedule as `kiosk.js` reads it (see `computeStatus` there)."""
    return {
        "soon": max(0, soon_minutes),
        "opens": _ms(hours[0]) if hours else None,
        "closes": _ms(hours[1]) if hours else None,
        "dayEnd": _ms(day_end),
        "items": [
            {"start": _ms(i.start), "end": _ms(i.end), "title": i.title, "holder": i.holder}
            for i in sorted(items, key=lambda i: (i.start, i.end))
            if i.end > i.start
        ],
    }
