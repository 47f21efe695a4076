"""Outlook series ↔ Roomsync repeat rules: Microsoft Graph `patternedRecurrence` mapped to the RRULE subset of
`webapp.booking.recurrence` and back. Pure: no database, no HTTP.

Public API:
- `UnsupportedRecurrence(reason)` (a `ValueError`; `.reason` is a sentence for the admin's report): the series
  has no exact Roomsync equivalent — the caller imports each occurrence as a single booking instead.
- `MappedRule(rrule, shortened, original_end, first_start)`: `rrule` parses with `Recurrence.parse`;
  `shortened` is True when the series has occurrences after the horizon (they are not imported);
  `original_end` is the series' own last date (`endDate`, or the date of the last of a `numbered` series;
  None for `noEnd`); `first_start` is the naive local start of the first occurrence the rule yields — pass it
  to `Recurrence.starts` (it is the first occurrence on or after `first_start_local` / `not_before`).
- `rrule_from_graph(recurrence, first_start_local, *, horizon_date, not_before=None, zone_name=None)` →
  `MappedRule`. `first_start_local` is the series master's start as naive venue-local time (its time of day is
  the occurrences' time); `horizon_date` the last date Roomsync may hold (the initial sync passes
  today + 1,080 days); `not_before` (a date) starts the rule at the first occurrence on or after it (only the
  upcoming part of a series; a `numbered` COUNT is reduced by the occurrences skipped); `zone_name` (the
  venue's zone) lets a series that repeats in another known zone through when both clocks agree on every
  occurrence. `noEnd`, or an end after the horizon → `UNTIL=<horizon_date>` and `shortened`; `numbered` →
  `COUNT` (or `UNTIL=<horizon_date>` when its last occurrence is after the horizon); `endDate` → `UNTIL`.
- `graph_from_rrule(rrule, first_start_local, tz_name)` → `PatternedRecurrence` with `recurrenceTimeZone`
  = `tz_name` (writing a Roomsync series to Outlook). Raises `recurrence.RecurrenceError` for a malformed rule
  and `UnsupportedRecurrence` for one Outlook would expand differently.
- `shortened_graph_range(recurrence, horizon_date)` → the same recurrence ending on `horizon_date` (range type
  `endDate`), for writing the 1,080-day cap back to the organizer's event.

How the two sides differ, and what is refused (Graph: [D:api-reference/v1.0/resources/recurrencepattern.md],
[D:api-reference/v1.0/resources/recurrencerange.md]; RRULE: RFC 5545 §3.3.10 as dateutil expands it):
- Graph's first occurrence is the first pattern date on or after `range.startDate`; RFC 5545 always counts
  DTSTART. We therefore start every rule on a real occurrence (`MappedRule.first_start`), and refuse to write a
  Roomsync rule whose first booking is off its own pattern.
- Weeks: Graph groups an `interval` > 1 weekly series by `firstDayOfWeek`; Roomsync's rule by Monday (it does
  not keep WKST). Refused when the days straddle Monday and the week starts on another day.
- Months too short for the day: Outlook moves day 29–31 to the month's last day; RRULE skips the month. Refused
  when that happens within the imported range (`absoluteMonthly`, `absoluteYearly` on 29 February).
- `relativeMonthly` with several days ("the first weekday") needs BYSETPOS, `relativeYearly` BYMONTH with an
  ordinal day: neither is in the subset. Ordinals are first…fourth and last (Graph has no fifth).
- Expansion runs on naive wall-clock dates on both sides, so a weekly 09:00 London meeting stays at 09:00
  across DST. Every mapping is finally checked by expanding both sides and comparing the starts; a difference
  raises rather than importing a series whose occurrences would land on other days.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from webapp.booking.recurrence import DAY_CODES, MAX_OCCURRENCES, Recurrence, RecurrenceError
from webapp.graph.types import PatternedRecurrence, RecurrencePattern, RecurrenceRange

GRAPH_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")  # index = weekday()
GRAPH_INDEXES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
MAX_INTERVAL = 99  # Recurrence.parse's limit
MAX_NUMBERED = 999  # the largest numberOfOccurrences Graph takes (sandbox: recurrence.normalize)
_LAST_YEAR = 4000
_UTC_NAMES = {"utc", "etc/utc", "gmt", "etc/gmt", "coordinated universal time"}


class UnsupportedRecurrence(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MappedRule:
    rrule: str
    shortened: bool
    original_end: date | None
    first_start: datetime


# ---------------------------------------------------------------- Graph's expansion, on dates

def _day_name(value: str) -> str:
    name = (value or "").strip().lower()
    if name not in GRAPH_DAYS:
        raise UnsupportedRecurrence(f"'{value}' is not a day of the week.")
    return name


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, _calendar.monthrange(year, month)[1]))


def _add_months(day: date, months: int) -> tuple[int, int]:
    total = day.year * 12 + day.month - 1 + months
    return total // 12, total % 12 + 1


def _nth_weekday(year: int, month: int, days: tuple[str, ...], index: str) -> date | None:
    wanted = {GRAPH_DAYS.index(d) for d in days}
    matching = [date(year, month, d) for d in range(1, _calendar.monthrange(year, month)[1] + 1)
                if date(year, month, d).weekday() in wanted]
    if not matching:
        return None
    position = GRAPH_INDEXES[index]
    if position == -1:
        return matching[-1]
    return matching[position - 1] if position <= len(matching) else None


def _pattern_dates(pattern: RecurrencePattern, start: date) -> Iterator[date]:
    """Every date Graph's pattern gives from `start` (range.startDate) on, in order, unbounded: the first
    occurrence is the first pattern date on or after `start`; months too short for a day of the month fall on
    their last day (as Outlook does)."""
    kind, interval = pattern.type, max(pattern.interval, 1)
    days = tuple(_day_name(d) for d in pattern.days_of_week)
    index = (pattern.index or "first").lower()
    if kind == "weekly":
        first_day = GRAPH_DAYS.index(_day_name(pattern.first_day_of_week or "sunday"))
        week_start = start - timedelta(days=(start.weekday() - first_day) % 7)
        offsets = sorted({(GRAPH_DAYS.index(d) - first_day) % 7 for d in days})
    period = 0
    while True:
        step = period * interval
        if kind == "daily":
            candidates = [start + timedelta(days=step)]
            year = candidates[0].year
        elif kind == "weekly":
            base = week_start + timedelta(weeks=step)
            candidates = [base + timedelta(days=o) for o in offsets]
            year = base.year
        elif kind in ("absoluteMonthly", "relativeMonthly"):
            year, month = _add_months(start, step)
            candidates = [_clamped(year, month, pattern.day_of_month) if kind == "absoluteMonthly"
                          else _nth_weekday(year, month, days, index)]
        else:
            year = start.year + step
            candidates = [_clamped(year, pattern.month, pattern.day_of_month) if kind == "absoluteYearly"
                          else _nth_weekday(year, pattern.month, days, index)]
        for candidate in candidates:
            if candidate is not None and candidate >= start:
                yield candidate
        if year >= _LAST_YEAR:
            return  # a noEnd series is unbounded, the calendar is not
        period += 1


# ---------------------------------------------------------------- Graph → RRULE

def _check_pattern(pattern: RecurrencePattern) -> None:
    kind = pattern.type
    if kind not in ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"):
        raise UnsupportedRecurrence(f"Outlook's '{kind}' repeat pattern is unknown to Roomsync.")
    if kind == "relativeYearly":
        raise UnsupportedRecurrence("A series repeating yearly on an ordinal weekday (such as the second Tuesday of "
                                    "March) has no Roomsync repeat rule.")
    if not 1 <= pattern.interval <= MAX_INTERVAL:
        raise UnsupportedRecurrence(f"A series repeating every {pattern.interval} periods is beyond Roomsync's "
                                    f"limit of {MAX_INTERVAL}.")
    if kind in ("weekly", "relativeMonthly") and not pattern.days_of_week:
        raise UnsupportedRecurrence(f"The {kind} series names no day of the week.")
    if kind in ("absoluteMonthly", "absoluteYearly") and not pattern.day_of_month:
        raise UnsupportedRecurrence(f"The {kind} series names no day of the month.")
    if kind == "absoluteYearly" and not pattern.month:
        raise UnsupportedRecurrence("The yearly series names no month.")
    if not 0 <= (pattern.month or 0) <= 12 or not 0 <= (pattern.day_of_month or 0) <= 31:
        raise UnsupportedRecurrence("The series names a month or a day of the month that does not exist.")
    if kind == "relativeMonthly":
        if len(pattern.days_of_week) != 1:
            raise UnsupportedRecurrence("A series on 'the first/last of several weekdays' of a month has no "
                                        "Roomsync repeat rule (one weekday only).")
        if (pattern.index or "first").lower() not in GRAPH_INDEXES:
            raise UnsupportedRecurrence(f"'{pattern.index}' is not an ordinal Roomsync knows.")
    if kind == "weekly" and pattern.interval > 1:
        first_day = GRAPH_DAYS.index(_day_name(pattern.first_day_of_week or "sunday"))
        if first_day != 0:
            # Days from firstDayOfWeek to Sunday fall in one Monday-based week, Monday to the day before
            # firstDayOfWeek in the next: with days on both sides the weeks are grouped differently.
            sides = {GRAPH_DAYS.index(_day_name(d)) >= first_day for d in pattern.days_of_week}
            if len(sides) > 1:
                raise UnsupportedRecurrence(
                    f"This series repeats every {pattern.interval} weeks counted from "
                    f"{(pattern.first_day_of_week or 'sunday').capitalize()}; Roomsync counts weeks from Monday, "
                    "which would move some of its days to other weeks.")


def _rule_for(pattern: RecurrencePattern, first: date) -> Recurrence:
    """The Roomsync rule (without its end) that repeats `pattern` from its occurrence `first`."""
    kind = pattern.type
    if kind == "daily":
        return Recurrence("DAILY", pattern.interval)
    if kind == "weekly":
        codes = tuple(sorted({DAY_CODES[GRAPH_DAYS.index(_day_name(d))] for d in pattern.days_of_week},
                             key=DAY_CODES.index))
        return Recurrence("WEEKLY", pattern.interval, weekdays=codes)
    if kind == "absoluteMonthly":
        return Recurrence("MONTHLY", pattern.interval, monthday=pattern.day_of_month)
    if kind == "relativeMonthly":
        code = DAY_CODES[GRAPH_DAYS.index(_day_name(pattern.days_of_week[0]))]
        return Recurrence("MONTHLY", pattern.interval, nth_weekday=(GRAPH_INDEXES[(pattern.index or "first").lower()],
                                                                    code))
    # absoluteYearly: RRULE YEARLY repeats DTSTART's month and day.
    if (first.month, first.day) != (pattern.month, pattern.day_of_month):
        raise UnsupportedRecurrence(f"The yearly series on day {pattern.day_of_month} of month {pattern.month} "
                                    f"falls on {first:%d %B} in a short month, which Roomsync cannot repeat.")
    return Recurrence("YEARLY", pattern.interval)


def _known_zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    if name.strip().lower() in _UTC_NAMES:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None  # e.g. a Windows zone name: cannot be compared, taken as the venue's


def _venue_local(dates: list[date], first_start_local: datetime, recurrence_zone: ZoneInfo | None,
                 venue_zone: ZoneInfo | None) -> list[datetime]:
    """Graph's occurrence dates as naive venue-local starts. The occurrences keep the wall-clock time of the
    recurrence zone; when that is not the venue's zone, each is converted (and must keep its date)."""
    if recurrence_zone is None or venue_zone is None or recurrence_zone.key == venue_zone.key:
        return [datetime.combine(d, first_start_local.time()) for d in dates]
    wall = first_start_local.replace(tzinfo=venue_zone).astimezone(recurrence_zone).time().replace(tzinfo=None)
    return [datetime.combine(d, wall, tzinfo=recurrence_zone).astimezone(venue_zone).replace(tzinfo=None)
            for d in dates]


def _mismatch_reason(pattern: RecurrencePattern, graph: list[datetime], rule: list[datetime]) -> str:
    if pattern.type in ("absoluteMonthly", "absoluteYearly") and (pattern.day_of_month or 0) > 28:
        return (f"Outlook moves day {pattern.day_of_month} to the last day of shorter months; Roomsync's repeat "
                "rule would skip those months.")
    if graph and rule and {s.time() for s in graph} != {rule[0].time()}:
        return "The series repeats in another time zone whose clock changes differ from the venue's."
    return "Roomsync's repeat rule would place this series' occurrences on other days."


def rrule_from_graph(recurrence: PatternedRecurrence, first_start_local: datetime, *, horizon_date: date,
                     not_before: date | None = None, zone_name: str | None = None) -> MappedRule:
    if first_start_local.tzinfo is not None:
        raise ValueError("first_start_local must be a naive local time")
    pattern, rng = recurrence.pattern, recurrence.range
    _check_pattern(pattern)
    if rng.type not in ("endDate", "noEnd", "numbered"):
        raise UnsupportedRecurrence(f"Outlook's '{rng.type}' series range is unknown to Roomsync.")
    if rng.type == "endDate" and rng.end_date is None:
        raise UnsupportedRecurrence("The series has an end-date range without an end date.")
    if rng.type == "numbered" and not rng.number_of_occurrences:
        raise UnsupportedRecurrence("The series has a numbered range without a number of occurrences.")

    # The series' own dates up to the horizon, and whether it goes on after it.
    if rng.type == "numbered":
        every = list(islice(_pattern_dates(pattern, rng.start_date), rng.number_of_occurrences))
        original_end = every[-1] if every else None
        series = [d for d in every if d <= horizon_date]
        beyond_horizon = len(series) < len(every)
    else:
        original_end = rng.end_date if rng.type == "endDate" else None
        series, beyond_horizon = [], False
        for day in _pattern_dates(pattern, rng.start_date):
            if original_end is not None and day > original_end:
                break
            if day > horizon_date:
                beyond_horizon = True
                break
            series.append(day)

    lower = max(rng.start_date, first_start_local.date(), not_before or date.min)
    skipped = sum(1 for d in series if d < lower)
    kept = series[skipped:]
    if not kept:
        if beyond_horizon:
            raise UnsupportedRecurrence(f"The series has no occurrence from {lower:%d %b %Y} to the horizon "
                                        f"({horizon_date:%d %b %Y}).")
        raise UnsupportedRecurrence(f"The series has no occurrence on or after {lower:%d %b %Y}.")
    if len(kept) > MAX_OCCURRENCES:
        raise UnsupportedRecurrence(f"The series has more than {MAX_OCCURRENCES} occurrences before the horizon.")

    rule = _rule_for(pattern, kept[0])
    if beyond_horizon or rng.type == "noEnd":
        rule = rule.with_until(horizon_date)
    elif rng.type == "numbered":
        rule = rule.with_count(rng.number_of_occurrences - skipped)
    else:
        rule = rule.with_until(min(rng.end_date, horizon_date))

    venue_zone = _known_zone(zone_name)
    graph_starts = _venue_local(kept, first_start_local, _known_zone(rng.recurrence_time_zone), venue_zone)
    first_start = datetime.combine(kept[0], first_start_local.time())
    try:
        rule_starts = rule.starts(first_start)
    except RecurrenceError as error:
        raise UnsupportedRecurrence(str(error)) from None
    if rule_starts != graph_starts:
        raise UnsupportedRecurrence(_mismatch_reason(pattern, graph_starts, rule_starts))
    return MappedRule(rrule=rule.to_rrule(), shortened=beyond_horizon, original_end=original_end,
                      first_start=first_start)


# ---------------------------------------------------------------- RRULE → Graph

_INDEX_NAMES = {number: name for name, number in GRAPH_INDEXES.items()}


def graph_from_rrule(rrule: str, first_start_local: datetime, tz_name: str) -> PatternedRecurrence:
    if first_start_local.tzinfo is not None:
        raise ValueError("first_start_local must be a naive local time")
    rule = Recurrence.parse(rrule)
    first = first_start_local.date()
    if rule.freq == "DAILY":
        pattern = RecurrencePattern("daily", rule.interval)
    elif rule.freq == "WEEKLY":
        codes = rule.weekdays or (DAY_CODES[first.weekday()],)
        # dateutil groups weeks from Monday (WKST default), so Outlook must too.
        pattern = RecurrencePattern("weekly", rule.interval, days_of_week=tuple(GRAPH_DAYS[DAY_CODES.index(c)]
                                                                               for c in codes),
                                    first_day_of_week="monday")
    elif rule.freq == "MONTHLY" and rule.nth_weekday is not None:
        number, code = rule.nth_weekday
        if number not in _INDEX_NAMES:
            raise UnsupportedRecurrence(f"Outlook has no 'occurrence {number}' of a weekday in a month (first to "
                                        "fourth, or last).")
        pattern = RecurrencePattern("relativeMonthly", rule.interval, days_of_week=(GRAPH_DAYS[DAY_CODES.index(code)],),
                                    index=_INDEX_NAMES[number])
    elif rule.freq == "MONTHLY":
        pattern = RecurrencePattern("absoluteMonthly", rule.interval, day_of_month=rule.monthday or first.day)
    else:
        pattern = RecurrencePattern("absoluteYearly", rule.interval, month=first.month, day_of_month=first.day)

    if rule.until is not None and rule.until < first:
        raise UnsupportedRecurrence("The repeat rule ends before its first booking.")
    starts = rule.starts(first_start_local)
    last = starts[-1].date()
    if rule.count is not None and rule.count <= MAX_NUMBERED:
        rng = RecurrenceRange("numbered", first, number_of_occurrences=rule.count, recurrence_time_zone=tz_name)
    else:  # a COUNT beyond Graph's limit ends on its last occurrence's date instead (the same series)
        rng = RecurrenceRange("endDate", first, end_date=rule.until if rule.count is None else last,
                              recurrence_time_zone=tz_name)
    result = PatternedRecurrence(pattern, rng)

    graph_dates = _pattern_dates(pattern, first)
    if rng.type == "numbered":
        graph_dates = islice(graph_dates, rng.number_of_occurrences)
    expected: list[datetime] = []
    for day in graph_dates:
        if rng.type == "endDate" and day > rng.end_date:
            break
        expected.append(datetime.combine(day, first_start_local.time()))
        if len(expected) > len(starts):
            break
    if expected != starts:
        if not expected or expected[0] != starts[0]:
            raise UnsupportedRecurrence("The first booking is not on its own repeat pattern; Outlook would start "
                                        "the series on a later day.")
        raise UnsupportedRecurrence(_mismatch_reason(pattern, expected, starts))
    return result


def shortened_graph_range(recurrence: PatternedRecurrence, horizon_date: date) -> PatternedRecurrence:
    rng = recurrence.range
    if horizon_date < rng.start_date:
        raise ValueError("the horizon is before the series starts")
    return PatternedRecurrence(recurrence.pattern, RecurrenceRange("endDate", rng.start_date, end_date=horizon_date,
                                                                   recurrence_time_zone=rng.recurrence_time_zone))
