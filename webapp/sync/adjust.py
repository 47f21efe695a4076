"""Fitting a provider event onto the venue's time grid (pure; no database, no provider).

Public API: `adjust_to_grid(start, end, tz, step_minutes=15)` → (start, end), aware UTC; `needs_adjustment`.

The rule (the reference guide's FAQ, which its table must satisfy exactly; see tests/test_adjust.py):
1. the duration is rounded up to a whole number of grid steps, at least one;
2. among grid-aligned starts (aligned in the venue's wall-clock time), take the one whose adjusted interval
   overlaps the original event the most;
3. on a tie, take the earlier start.
So 13:53–14:07 → 13:45–14:00 and 14:02–14:18 → 14:00–14:30. An event already on the grid is unchanged.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..timeutil import ensure_aware, localize


def needs_adjustment(start: datetime, end: datetime, tz: ZoneInfo, step_minutes: int = 15) -> bool:
    return adjust_to_grid(start, end, tz, step_minutes) != (ensure_aware(start), ensure_aware(end))


def adjust_to_grid(start: datetime, end: datetime, tz: ZoneInfo, step_minutes: int = 15) -> tuple[datetime, datetime]:
    start, end = ensure_aware(start, "start"), ensure_aware(end, "end")
    step = timedelta(minutes=step_minutes)
    steps = max(1, math.ceil((end - start) / step))
    length = steps * step
    local = start.astimezone(tz)
    minutes = local.hour * 60 + local.minute
    floor_local = local.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0) + timedelta(
        minutes=minutes - minutes % step_minutes
    )
    aligned = localize(floor_local, tz)  # the last grid point at or before the original start
    best_start, best_overlap = aligned, timedelta(-1)
    # Only two candidates can win: the grid point at or before the original start, and the next one. An
    # earlier one ends `step` sooner while the original runs past it (its duration exceeds steps-1 steps), so
    # it always covers less; a later one starts after the original's start and its end is covered already.
    for k in (0, 1):
        candidate = aligned + k * step
        overlap = max(timedelta(0), min(end, candidate + length) - max(start, candidate))
        if overlap > best_overlap:  # strictly greater: a tie keeps the earlier start
            best_start, best_overlap = candidate, overlap
    return best_start, best_start + length
