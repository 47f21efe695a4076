"""Venue rules for bookings made in Roomsync; pure functions over occurrence times, no database.

Public API: `check_venue_rules(venue, occurrences, now, existing_starts)` → {field: message} (empty when every rule holds);
`on_grid(dt_local, granularity)`; `HARD_MAX_DURATION`.

Each rule has its own message, and for a series the message names the first date that breaks it. Bookings
that come from the provider skip these rules (`bypass_rules`), never the overlap check.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Iterable

from ..timeutil import to_local
from .models import WEEKDAYS, Venue

# No occurrence may be longer than this, whatever the venue says; it bounds the conflict query's scan.
HARD_MAX_DURATION = timedelta(days=14)


def on_grid(local: datetime, granularity: int) -> bool:
    minutes = local.hour * 60 + local.minute
    return local.second == 0 and local.microsecond == 0 and minutes % granularity == 0


def _day(local: datetime) -> str:
    return f"{local:%a %d %b %Y}"


def _fmt_minutes(minutes: int) -> str:
    hours, mins = divmod(minutes, 60)
    if hours and mins:
        return f"{hours} h {mins} min"
    return f"{hours} h" if hours else f"{mins} min"


def check_venue_rules(
    venue: Venue,
    occurrences: Iterable[tuple[datetime, datetime]],
    now: datetime,
    existing_starts: frozenset[datetime] = frozenset(),
) -> dict[str, str]:
    """Check every (start, end) in UTC; returns the first failure of each rule keyed by form field.
    Starts in `existing_starts` were already booked, so a meeting in progress may still be changed (its end
    moved) without its start counting as "in the past"."""
    tz = venue.tz
    errors: dict[str, str] = {}
    grid = venue.granularity_minutes
    window_end = now + timedelta(days=venue.booking_window_days)
    max_minutes = venue.max_duration_minutes
    # The slot in progress may still be booked (a walk-in at 10:07 takes 10:00–10:30).
    earliest_start = now - timedelta(minutes=grid)

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, message)

    for start, end in occurrences:
        local_start, local_end = to_local(start, tz), to_local(end, tz)
        if end <= start:
            fail("end", "The end must be after the start.")
            continue
        if not on_grid(local_start, grid):
            fail("start", f"Start on the {grid}-minute grid (e.g. {local_start:%H}:00 or {local_start:%H}:{grid:02d}).")
        if not on_grid(local_end, grid):
            fail("end", f"End on the {grid}-minute grid.")
        if start < earliest_start and start not in existing_starts:
            fail("start", f"{_day(local_start)} {local_start:%H:%M} is in the past.")
        if end > window_end:
            fail("start", f"Bookings can be made at most {venue.booking_window_days} days ahead ({_day(local_start)} is too far).")
        minutes = int((end - start).total_seconds() // 60)
        if minutes > max_minutes or end - start > HARD_MAX_DURATION:
            fail("end", f"A booking may last at most {_fmt_minutes(max_minutes)}.")
        overnight = local_end.date() > local_start.date() and local_end.time() != time(0, 0) or (
            local_end.date() > local_start.date() + timedelta(days=1)
        )
        if overnight and not venue.allow_overnight:
            fail("end", f"Bookings cannot run overnight ({_day(local_start)}).")
        hours = venue.hours_for(local_start.weekday())
        if hours is None:
            fail("start", f"The venue is closed on {WEEKDAYS_LONG[local_start.weekday()]}s ({_day(local_start)}).")
            continue
        opens, closes = hours
        if local_start.time() < opens:
            fail("start", f"The venue opens at {opens:%H:%M} on {_day(local_start)}.")
        if not overnight:
            end_time = time.max if local_end.time() == time(0, 0) else local_end.time()
            if end_time > closes:
                fail("end", f"The venue closes at {_closing(closes)} on {_day(local_start)}.")
    return errors


WEEKDAYS_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
assert len(WEEKDAYS) == len(WEEKDAYS_LONG)


def _closing(closes: time) -> str:
    return "midnight" if closes == time.max else f"{closes:%H:%M}"
