"""Graph `patternedRecurrence`: validation, the full server echo, and expansion into occurrence starts.

Public API:
- `RecurrenceError` (a `ValueError`): the message Graph-style validation failures carry; the routes answer
  it as 400 (see `events.py` for the code chosen).
- `normalize(raw, first_start_local, zone_name)` → the recurrence as Graph echoes it: every pattern field (`type`,
  `interval`, `month`, `dayOfMonth`, `daysOfWeek`, `firstDayOfWeek`, `index`) and every range field (`type`,
  `startDate`, `endDate`, `recurrenceTimeZone`, `numberOfOccurrences`), zeros/defaults for unused ones
  (`endDate` "0001-01-01" when the range has none). `first_start_local` is the event's start in its own
  zone `zone_name`: `range.startDate` must be its date; a missing `recurrenceTimeZone` defaults to that zone.
- `occurrence_starts(recurrence, first_start_local, *, not_before=None, not_after=None)` → the original
  start of every occurrence (aware UTC), in order, optionally only those whose start lies in
  [`not_before`, `not_after`]; expansion skips straight to `not_before` when the range is not `numbered`,
  so a window far into a `noEnd` series costs no more than one near its start.
- `last_start(recurrence, first_start_local)` → the last occurrence's start (aware UTC), or None for `noEnd`.

Behaviour (graph-facts §3.2; [D:api-reference/v1.0/resources/recurrencepattern.md],
[D:api-reference/v1.0/resources/recurrencerange.md], [D:concepts/outlook-schedule-recurring-events.md]):
- Required fields per pattern type: daily (interval); weekly (interval, daysOfWeek; firstDayOfWeek defaults
  to sunday); absoluteMonthly (interval, dayOfMonth); relativeMonthly (interval, daysOfWeek, index defaults
  to first); absoluteYearly (interval, dayOfMonth, month); relativeYearly (interval, daysOfWeek, month,
  index). Fields a pattern ignores are still range-checked (the docs: "an out-of-range value is an error").
- Enum values are accepted in any case (the docs' own example sends "Monday") and echoed camelCase/lowercase.
- Occurrences happen at the event's local start time in the recurrence time zone, so a weekly 09:00 London
  meeting stays at 09:00 local across a DST change (its UTC time moves).
- A day-of-month beyond the month's length (31 in April) falls on the month's last day, as Outlook does.
- `endDate` is inclusive; `numbered` counts occurrences from `startDate`.
"""

from __future__ import annotations

import calendar as _calendar
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator

from .clock import zone

PATTERN_TYPES = ["daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"]
RANGE_TYPES = ["endDate", "noEnd", "numbered"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]  # index = weekday()
INDEXES = ["first", "second", "third", "fourth", "last"]
NO_DATE = "0001-01-01"
_LAST_YEAR = 4000


class RecurrenceError(ValueError):
    pass


def _enum(value, allowed: list[str], field: str) -> str:
    if not isinstance(value, str):
        raise RecurrenceError(f"Invalid value for {field}.")
    for candidate in allowed:
        if candidate.lower() == value.strip().lower():
            return candidate
    raise RecurrenceError(f"'{value}' is not a valid value for {field}.")


def _int(value, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecurrenceError(f"The value of {field} must be an integer from {low} to {high}.")
    return value


def _date(value, field: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise RecurrenceError(f"{field} must be a date in the form yyyy-MM-dd.") from None


def normalize(raw, first_start_local: datetime, zone_name: str) -> dict:
    if not isinstance(raw, dict) or not isinstance(raw.get("pattern"), dict) or not isinstance(raw.get("range"), dict):
        raise RecurrenceError("A recurrence needs a pattern and a range.")
    p, r = raw["pattern"], raw["range"]
    kind = _enum(p.get("type"), PATTERN_TYPES, "pattern.type")
    if "interval" not in p:
        raise RecurrenceError("pattern.interval is required.")
    interval = _int(p["interval"], "pattern.interval", 1, 999)
    month = _int(p.get("month", 0) or 0, "pattern.month", 0, 12)
    day_of_month = _int(p.get("dayOfMonth", 0) or 0, "pattern.dayOfMonth", 0, 31)
    days_raw = p.get("daysOfWeek") or []
    if not isinstance(days_raw, list):
        raise RecurrenceError("pattern.daysOfWeek must be a list.")
    days = [_enum(d, DAYS, "pattern.daysOfWeek") for d in days_raw]
    first_day = _enum(p.get("firstDayOfWeek") or "sunday", DAYS, "pattern.firstDayOfWeek")
    index = _enum(p.get("index") or "first", INDEXES, "pattern.index")
    if kind in ("weekly", "relativeMonthly", "relativeYearly") and not days:
        raise RecurrenceError(f"pattern.daysOfWeek is required for a {kind} pattern.")
    if kind in ("absoluteMonthly", "absoluteYearly") and not day_of_month:
        raise RecurrenceError(f"pattern.dayOfMonth is required for a {kind} pattern.")
    if kind in ("absoluteYearly", "relativeYearly") and not month:
        raise RecurrenceError(f"pattern.month is required for a {kind} pattern.")

    range_kind = _enum(r.get("type"), RANGE_TYPES, "range.type")
    start_date = _date(r.get("startDate"), "range.startDate")
    if start_date != first_start_local.date():
        raise RecurrenceError("range.startDate must be the same date as the event's start.")
    end_date_text, count = NO_DATE, 0
    if range_kind == "endDate":
        end_date = _date(r.get("endDate"), "range.endDate")
        if end_date < start_date:
            raise RecurrenceError("range.endDate must not be earlier than range.startDate.")
        end_date_text = end_date.isoformat()
    elif range_kind == "numbered":
        count = _int(r.get("numberOfOccurrences"), "range.numberOfOccurrences", 1, 999)
    zone_name = r.get("recurrenceTimeZone") or zone_name
    try:
        zone(zone_name)
    except KeyError:
        raise RecurrenceError(f"'{zone_name}' is not a supported recurrenceTimeZone.") from None
    return {
        "pattern": {"type": kind, "interval": interval, "month": month, "dayOfMonth": day_of_month,
                    "daysOfWeek": days, "firstDayOfWeek": first_day, "index": index},
        "range": {"type": range_kind, "startDate": start_date.isoformat(), "endDate": end_date_text,
                  "recurrenceTimeZone": zone_name, "numberOfOccurrences": count},
    }


def _add_months(day: date, months: int) -> tuple[int, int]:
    total = day.year * 12 + day.month - 1 + months
    return total // 12, total % 12 + 1


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, _calendar.monthrange(year, month)[1]))


def _nth_weekday(year: int, month: int, days: list[str], index: str) -> date | None:
    wanted = {DAYS.index(d) for d in days}
    matching = [date(year, month, d) for d in range(1, _calendar.monthrange(year, month)[1] + 1)
                if date(year, month, d).weekday() in wanted]
    if not matching:
        return None
    if index == "last":
        return matching[-1]
    position = INDEXES.index(index)
    return matching[position] if position < len(matching) else None


def _periods_to_skip(pattern: dict, start: date, not_before: date | None) -> int:
    """How many whole periods (days/weeks/months/years of `interval`) lie before `not_before`: expansion
    may start there without changing which dates follow (only for ranges that do not count)."""
    if not_before is None or not_before <= start:
        return 0
    kind, interval = pattern["type"], pattern["interval"]
    if kind == "daily":
        span = (not_before - start).days
    elif kind == "weekly":
        span = (not_before - start).days // 7 - 1
    elif kind in ("absoluteMonthly", "relativeMonthly"):
        span = (not_before.year - start.year) * 12 + not_before.month - start.month - 1
    else:
        span = not_before.year - start.year - 1
    return max(span, 0) // interval


def _dates(recurrence: dict, not_before: date | None) -> Iterator[date]:
    """Every occurrence date (in the recurrence zone) from range.startDate on, in order, unbounded."""
    pattern = recurrence["pattern"]
    start = date.fromisoformat(recurrence["range"]["startDate"])
    kind, interval = pattern["type"], pattern["interval"]
    period = _periods_to_skip(pattern, start, not_before) if recurrence["range"]["type"] != "numbered" else 0
    if kind == "weekly":
        first_day = DAYS.index(pattern["firstDayOfWeek"])
        week_start = start - timedelta(days=(start.weekday() - first_day) % 7)
        offsets = sorted((DAYS.index(d) - first_day) % 7 for d in pattern["daysOfWeek"])
    while True:
        step = period * interval
        if kind == "daily":
            candidates = [start + timedelta(days=step)]
        elif kind == "weekly":
            base = week_start + timedelta(weeks=step)
            candidates = [base + timedelta(days=o) for o in offsets]
        elif kind == "absoluteMonthly":
            candidates = [_clamped(*_add_months(start, step), pattern["dayOfMonth"])]
        elif kind == "relativeMonthly":
            candidates = [_nth_weekday(*_add_months(start, step), pattern["daysOfWeek"], pattern["index"])]
        elif kind == "absoluteYearly":
            candidates = [_clamped(start.year + step, pattern["month"], pattern["dayOfMonth"])]
        else:
            candidates = [_nth_weekday(start.year + step, pattern["month"], pattern["daysOfWeek"], pattern["index"])]
        for candidate in candidates:
            if candidate is not None and candidate >= start:
                yield candidate
        if candidates[-1] is not None and candidates[-1].year >= _LAST_YEAR:
            return  # a noEnd series is unbounded, the calendar is not
        period += 1


def occurrence_starts(recurrence: dict, first_start_local: datetime, *, not_before: datetime | None = None,
                      not_after: datetime | None = None) -> Iterator[datetime]:
    rng = recurrence["range"]
    tz = zone(rng["recurrenceTimeZone"])
    local_time: time = first_start_local.astimezone(tz).time().replace(tzinfo=None)
    end_date = date.fromisoformat(rng["endDate"]) if rng["type"] == "endDate" else None
    remaining = rng["numberOfOccurrences"] if rng["type"] == "numbered" else None
    # One day of slack: the window is UTC, the dates are local.
    skip_to = (not_before.astimezone(tz).date() - timedelta(days=1)) if not_before else None
    for day in _dates(recurrence, skip_to):
        if end_date is not None and day > end_date:
            return
        if remaining is not None:
            if remaining == 0:
                return
            remaining -= 1
        start = datetime.combine(day, local_time, tzinfo=tz).astimezone(timezone.utc)
        if not_after is not None and start > not_after:
            return
        if not_before is None or start >= not_before:
            yield start


def last_start(recurrence: dict, first_start_local: datetime) -> datetime | None:
    if recurrence["range"]["type"] == "noEnd":
        return None
    last = None
    for last in occurrence_starts(recurrence, first_start_local):
        pass
    return last
