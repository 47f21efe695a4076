"""Repeating bookings: the RRULE subset Roomsync supports and its expansion in venue wall-clock time.

Public API:
- `Recurrence`: parsed rule; `Recurrence.parse(text)` (raises `RecurrenceError`), `.to_rrule()`,
  `.starts(first_local)` → naive local starts, `.describe()` for people.
- `MAX_OCCURRENCES`: hard cap of one series.

Supported (RFC 5545 §3.3.10 subset, the same shapes Microsoft Graph's `patternedRecurrence` has):
FREQ=DAILY|WEEKLY|MONTHLY|YEARLY; INTERVAL; WEEKLY with BYDAY=MO,TU…; MONTHLY with BYMONTHDAY=n
(by day) or BYDAY=±nXX (by weekday, e.g. 2TU, -1FR); YEARLY on the first occurrence's date; COUNT or
UNTIL (a date, inclusive, in the venue zone). A series must end: open-ended rules are refused, since a
booking window bounds what may be booked.

Expansion runs on naive wall-clock times so a weekly 09:00 meeting stays at 09:00 across DST changes;
callers localise each start with `timeutil.localize`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time

from dateutil import rrule as du

MAX_OCCURRENCES = 1500
FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ORDINAL_DAY = re.compile(r"^([+-]?[1-5])(MO|TU|WE|TH|FR|SA|SU)$")


class RecurrenceError(ValueError):
    """The rule is malformed or outside the supported subset; the message says which part."""


@dataclass(frozen=True)
class Recurrence:
    freq: str
    interval: int = 1
    weekdays: tuple[str, ...] = ()  # WEEKLY: BYDAY=MO,WE
    monthday: int | None = None  # MONTHLY by day: BYMONTHDAY=15
    nth_weekday: tuple[int, str] | None = None  # MONTHLY by weekday: BYDAY=2TU → (2, "TU")
    count: int | None = None
    until: date | None = None
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Recurrence:
        if not isinstance(text, str) or not text.strip():
            raise RecurrenceError("The repeat rule is empty.")
        body = text.strip()
        if body.upper().startswith("RRULE:"):
            body = body[6:]
        parts: dict[str, str] = {}
        for chunk in body.split(";"):
            if not chunk:
                continue
            if "=" not in chunk:
                raise RecurrenceError(f"'{chunk}' is not NAME=VALUE.")
            name, value = chunk.split("=", 1)
            name = name.strip().upper()
            if name in parts:
                raise RecurrenceError(f"{name} appears twice.")
            parts[name] = value.strip().upper()
        unsupported = set(parts) - {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "COUNT", "UNTIL", "WKST"}
        if unsupported:
            raise RecurrenceError(f"Unsupported repeat rule part: {', '.join(sorted(unsupported))}.")
        freq = parts.get("FREQ")
        if freq not in FREQS:
            raise RecurrenceError("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY.")
        interval = _positive_int(parts.get("INTERVAL", "1"), "INTERVAL", 1, 99)
        count = _positive_int(parts["COUNT"], "COUNT", 1, MAX_OCCURRENCES) if "COUNT" in parts else None
        until = _parse_until(parts["UNTIL"]) if "UNTIL" in parts else None
        if count is not None and until is not None:
            raise RecurrenceError("Give either COUNT or UNTIL, not both.")
        if count is None and until is None:
            raise RecurrenceError("A repeating booking needs an end: a number of times (COUNT) or an end date (UNTIL).")
        weekdays: tuple[str, ...] = ()
        monthday = None
        nth = None
        byday = parts.get("BYDAY")
        if freq == "WEEKLY":
            if "BYMONTHDAY" in parts:
                raise RecurrenceError("BYMONTHDAY does not go with FREQ=WEEKLY.")
            if byday:
                codes = [c.strip() for c in byday.split(",") if c.strip()]
                if not codes or any(c not in DAY_CODES for c in codes):
                    raise RecurrenceError("BYDAY must list weekdays such as MO,WE,FR.")
                weekdays = tuple(sorted(set(codes), key=DAY_CODES.index))
        elif freq == "MONTHLY":
            if byday and "BYMONTHDAY" in parts:
                raise RecurrenceError("Repeat monthly either by day of month or by weekday, not both.")
            if "BYMONTHDAY" in parts:
                monthday = _positive_int(parts["BYMONTHDAY"], "BYMONTHDAY", 1, 31)
            elif byday:
                match = _ORDINAL_DAY.match(byday)
                if not match or int(match.group(1)) == 0:
                    raise RecurrenceError("Monthly BYDAY must be one ordinal weekday such as 2TU or -1FR.")
                nth = (int(match.group(1)), match.group(2))
        else:
            if byday or "BYMONTHDAY" in parts:
                raise RecurrenceError(f"BYDAY and BYMONTHDAY are not supported with FREQ={freq}.")
        return cls(freq, interval, weekdays, monthday, nth, count, until)

    def to_rrule(self) -> str:
        parts = [f"FREQ={self.freq}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.weekdays:
            parts.append("BYDAY=" + ",".join(self.weekdays))
        if self.monthday is not None:
            parts.append(f"BYMONTHDAY={self.monthday}")
        if self.nth_weekday is not None:
            parts.append(f"BYDAY={self.nth_weekday[0]}{self.nth_weekday[1]}")
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        if self.until is not None:
            parts.append(f"UNTIL={self.until:%Y%m%d}")
        return ";".join(parts)

    def with_until(self, until: date) -> Recurrence:
        return Recurrence(self.freq, self.interval, self.weekdays, self.monthday, self.nth_weekday, None, until)

    def with_count(self, count: int) -> Recurrence:
        return Recurrence(self.freq, self.interval, self.weekdays, self.monthday, self.nth_weekday, count, None)

    def starts(self, first_local: datetime) -> list[datetime]:
        """Naive local start times, the first one included when it matches the rule (RFC 5545 says DTSTART
        always counts; we follow that so a booking never silently loses its first occurrence)."""
        kwargs: dict = {"dtstart": first_local, "interval": self.interval, "cache": False}
        if self.count is not None:
            kwargs["count"] = self.count
        else:
            kwargs["until"] = datetime.combine(self.until, time.max)
        if self.weekdays:
            kwargs["byweekday"] = [DAY_CODES.index(c) for c in self.weekdays]
        if self.monthday is not None:
            kwargs["bymonthday"] = self.monthday
        if self.nth_weekday is not None:
            n, code = self.nth_weekday
            kwargs["byweekday"] = du.weekday(DAY_CODES.index(code), n)
        rule = du.rrule(getattr(du, self.freq), **kwargs)
        starts: list[datetime] = []
        for start in rule:
            starts.append(start)
            if len(starts) > MAX_OCCURRENCES:
                raise RecurrenceError(f"A series may have at most {MAX_OCCURRENCES} occurrences.")
        if starts and starts[0] != first_local:
            # DTSTART not on the pattern (e.g. weekly on MO,WE starting on a Tuesday): RFC 5545 counts it.
            starts.insert(0, first_local)
            if self.count is not None:
                starts.pop()
        elif not starts:
            starts = [first_local]
        return starts

    def describe(self) -> str:
        unit = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}[self.freq]
        text = f"Every {unit}" if self.interval == 1 else f"Every {self.interval} {unit}s"
        if self.weekdays:
            text += " on " + ", ".join(DAY_NAMES[DAY_CODES.index(c)] for c in self.weekdays)
        if self.monthday is not None:
            text += f" on day {self.monthday}"
        if self.nth_weekday is not None:
            n, code = self.nth_weekday
            ordinal = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}.get(n, str(n))
            text += f" on the {ordinal} {DAY_NAMES[DAY_CODES.index(code)]}"
        if self.count is not None:
            text += f", {self.count} times"
        if self.until is not None:
            text += f", until {self.until:%d %b %Y}"
        return text


def _positive_int(value: str, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RecurrenceError(f"{name} must be a whole number.") from None
    if not low <= number <= high:
        raise RecurrenceError(f"{name} must be between {low} and {high}.")
    return number


def _parse_until(value: str) -> date:
    text = value.strip().upper()
    for fmt in ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise RecurrenceError("UNTIL must be a date such as 20261231.")
