"""iCalendar (RFC 5545) text for the feeds: pure builders that take plain data and return bytes.

Public API:
- `Person(email, name="")`: an organizer or attendee.
- `Override(recurrence_id, start, end, summary=None)`: a moved or retitled occurrence of a series (all aware).
- `FeedEvent(...)`: one booking as the feed shows it (already masked by the caller where privacy says so).
- `FeedCalendar(name, timezone, events, dtstamp, refresh_minutes=15)`.
- `build_calendar(calendar)` → bytes (UTF-8, CRLF line ends, folded at 75 octets).
- `escape_text(text)`, `fold(line)`, `vtimezone(tzid, first_year, last_year)` (cached).

Written by hand rather than through the `icalendar` package because a 3-year space feed (about 3,500 events)
must build in a few tens of milliseconds; the VTIMEZONE block is built from the system's zone data (yearly
RRULEs, as Outlook and Google write them), once per zone and span of years. Tests
parse the output back with `icalendar` and `vobject` and expand it with `recurring-ical-events`.

RFC 5545 points followed: CRLF line ends and folding at 75 octets without splitting a UTF-8 character
(§3.1); TEXT escaping of backslash, semicolon, comma and newlines (§3.3.11); quoted parameter values for
CN, with the DQUOTE that cannot appear in them dropped (§3.2); DTSTART/DTEND with TZID in the venue's zone
(§3.3.5 form 3) and a VTIMEZONE for it; an RRULE's UNTIL in UTC since DTSTART has a TZID (§3.3.10); EXDATE and
RECURRENCE-ID in the same form as DTSTART (§3.8.4.4, §3.8.5.1). An instant in the repeated hour of a
fall-back change whose wall-clock time would be read as the first pass is written in UTC instead, so no
local time is ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from urllib.parse import quote
from zoneinfo import ZoneInfo

PRODID = "-//Roomsync//Roomsync iCalendar feeds//EN"
UTC = timezone.utc


@dataclass(frozen=True)
class Person:
    email: str
    name: str = ""


@dataclass(frozen=True)
class Override:
    recurrence_id: datetime  # the occurrence's original start (aware)
    start: datetime
    end: datetime
    summary: str | None = None  # None: the series' summary


@dataclass(frozen=True)
class FeedEvent:
    uid: str
    start: datetime  # aware; the first occurrence of a series
    end: datetime
    summary: str
    sequence: int = 0
    created: datetime | None = None
    last_modified: datetime | None = None
    rrule: str | None = None  # RFC 5545 RRULE value in wall-clock time of the calendar's zone
    exdates: tuple[datetime, ...] = ()  # original starts of cancelled occurrences
    overrides: tuple[Override, ...] = ()
    location: str = ""
    description: str = ""
    organizer: Person | None = None
    attendees: tuple[Person, ...] = ()
    url: str = ""
    private: bool = False  # CLASS:PRIVATE (the caller has already masked what must not show)
    categories: tuple[str, ...] = ()
    last_end: datetime | None = None  # a series' last occurrence's end: how far the VTIMEZONE must reach


@dataclass(frozen=True)
class FeedCalendar:
    name: str
    timezone: str
    events: list[FeedEvent] = field(default_factory=list)
    dtstamp: datetime | None = None  # the version of the content (deterministic for one ETag)
    refresh_minutes: int = 15
    description: str = ""


# ---------------------------------------------------------------------------------------------- text


_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", ";": "\\;", ",": "\\,", "\n": "\\n", "\r": None})
# Control characters other than HTAB are not allowed in a content line (§3.1, §3.3.11).
_CONTROLS = dict.fromkeys([c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)] + [0x7F])


def escape_text(value: str) -> str:
    """A TEXT value (§3.3.11): backslash, semicolon and comma escaped, newlines as \\n."""
    return value.replace("\r\n", "\n").translate(_CONTROLS).translate(_TEXT_ESCAPES)


def param_value(value: str) -> str:
    """A parameter value (§3.2): quoted; DQUOTE cannot appear inside, control characters neither."""
    cleaned = value.translate(_CONTROLS).replace("\r", " ").replace("\n", " ").replace('"', "'")
    return f'"{cleaned}"'


def fold(line: str) -> str:
    """Fold one content line at 75 octets (§3.1), never inside a UTF-8 sequence; returns it with CRLF."""
    if len(line) <= 75 and line.isascii():
        return line + "\r\n"
    encoded = line.encode("utf-8")
    if len(encoded) <= 75:
        return line + "\r\n"
    parts = []
    start = 0
    limit = 75
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        # Step back to the start of a character: continuation bytes are 0b10xxxxxx.
        while end < len(encoded) and (encoded[end] & 0xC0) == 0x80:
            end -= 1
        parts.append(encoded[start:end].decode("utf-8"))
        start = end
        limit = 74  # the leading space of a continuation line counts
    return "\r\n ".join(parts) + "\r\n"


def mailto(email: str) -> str:
    return "mailto:" + quote(email, safe="@.+-_~!$&'*=")


def in_zone(value: datetime, tz: ZoneInfo) -> datetime:
    """`value` (aware) as wall-clock time in `tz`, its `fold` right in the repeated hour of a fall-back change.
    The fold is re-derived from the wall time itself because date-time subclasses (freezegun's, in tests) drop
    it in `astimezone`, which would read 01:30 GMT as 01:30 BST."""
    local = value.astimezone(tz)
    offset = local.replace(tzinfo=None) - value.astimezone(UTC).replace(tzinfo=None)
    if local.utcoffset() != offset:
        local = local.replace(fold=1 - local.fold)
    return local


def _utc_stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


class _Times:
    """Date-time values in one zone: `TZID=…:local` or UTC where the local time would be ambiguous."""

    def __init__(self, tzid: str):
        self.tzid = tzid
        self.tz = ZoneInfo(tzid)
        self.prefix = f";TZID={tzid}:"

    def local(self, value: datetime) -> datetime:
        return in_zone(value, self.tz)

    def prop(self, name: str, value: datetime) -> str:
        local = in_zone(value, self.tz)
        if local.fold and local.replace(fold=0).utcoffset() != local.utcoffset():
            return f"{name}:{_utc_stamp(value)}"
        return f"{name}{self.prefix}{local:%Y%m%dT%H%M%S}"

    def list_prop(self, name: str, values) -> list[str]:
        """EXDATE lines: local ones together on one line, ambiguous ones (in UTC) one per line."""
        local_values, lines = [], []
        for value in values:
            line = self.prop(name, value)
            if line.startswith(name + ";"):
                local_values.append(line.split(":", 1)[1])
            else:
                lines.append(line)
        if local_values:
            lines.insert(0, f"{name}{self.prefix}{','.join(local_values)}")
        return lines


def utc_rrule(rrule: str, tz: ZoneInfo) -> str:
    """Our RRULE's UNTIL is a date in the venue zone, inclusive; with a TZID DTSTART, RFC 5545 wants UNTIL as a
    UTC date-time: the last second of that local day."""
    parts = []
    for part in rrule.split(";"):
        if part.upper().startswith("UNTIL="):
            value = part.split("=", 1)[1]
            if "T" not in value:
                day = date(int(value[0:4]), int(value[4:6]), int(value[6:8]))
                last = datetime.combine(day, time(23, 59, 59), tzinfo=tz)
                part = "UNTIL=" + _utc_stamp(last)
        parts.append(part)
    return ";".join(parts)


_DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _offset(delta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def _transitions(tz: ZoneInfo, first_year: int, last_year: int) -> list[tuple[datetime, datetime]]:
    """(instant in UTC, the same instant one second earlier) of every offset change in the years, found by a
    daily scan and a binary search to the second."""
    found = []
    day = datetime(first_year, 1, 1, tzinfo=UTC)
    stop = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(days=1)
    before = in_zone(day, tz).utcoffset()
    while day < stop:
        after_day = day + step
        after = in_zone(after_day, tz).utcoffset()
        if after != before:
            low, high = day, after_day  # offset(low) == before, offset(high) != before
            while (high - low) > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if in_zone(middle, tz).utcoffset() == before:
                    low = middle
                else:
                    high = middle
            found.append((high.replace(microsecond=0), low))
            before = after
        day = after_day
    return found


def _yearly_rules(local: datetime) -> set[str]:
    """The ways to name a transition's day in a yearly rule: nth weekday of the month, from either end."""
    code = _DAY_CODES[local.weekday()]
    rules = {f"{(local.day - 1) // 7 + 1}{code}"}
    month_days = ((local.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)).day
    if local.day + 7 > month_days:
        rules.add(f"-1{code}")
    return rules


@lru_cache(maxsize=32)
def vtimezone(tzid: str, first_year: int, last_year: int) -> str:
    """The VTIMEZONE component (CRLF lines) for `tzid` from the system's zone data: the offset at 1 January of
    `first_year`, then the transitions up to `last_year` as yearly RRULEs (the form calendar apps read best;
    `UNTIL` where a pattern stops, the last pattern open-ended, as the zone's rules continue), single
    transitions as a bare DTSTART."""
    tz = ZoneInfo(tzid)
    begin = in_zone(datetime(first_year, 1, 1, tzinfo=UTC), tz)
    observances = []  # (kind, dtstart local naive, from, to, name, rrule or "")
    kind = "DAYLIGHT" if begin.dst() else "STANDARD"
    observances.append([kind, datetime(first_year, 1, 1), begin.utcoffset(), begin.utcoffset(), begin.tzname(), None, None])
    groups: list[dict] = []
    for instant, just_before in _transitions(tz, first_year, last_year):
        after = in_zone(instant, tz)
        prior = in_zone(just_before, tz)
        onset = (instant + prior.utcoffset()).replace(tzinfo=None)  # local time in the old offset (RFC 5545)
        key = ("DAYLIGHT" if after.dst() else "STANDARD", prior.utcoffset(), after.utcoffset(), after.tzname(),
               onset.month, onset.time())
        rules = _yearly_rules(onset)
        same = [g for g in groups if g["key"] == key and g["open"] and g["years"][-1] == onset.year - 1
                and g["rules"] & rules]
        if same:
            group = same[0]
            group["rules"] &= rules
            group["years"].append(onset.year)
            group["until"] = instant
        else:
            group = {"key": key, "start": onset, "rules": rules, "years": [onset.year], "until": instant, "open": True}
            groups.append(group)
        # A group whose pattern did not recur this year is closed.
        for other in groups:
            if other is not group and other["open"] and other["key"][0] == key[0] and other["years"][-1] < onset.year:
                other["open"] = False
    lines = ["BEGIN:VTIMEZONE", f"TZID:{tzid}"]
    for kind, start, frm, to, name, _, _ in observances:
        lines += [f"BEGIN:{kind}", f"DTSTART:{start:%Y%m%dT%H%M%S}", f"TZOFFSETFROM:{_offset(frm)}",
                  f"TZOFFSETTO:{_offset(to)}", f"TZNAME:{name}", f"END:{kind}"]
    for group in groups:
        kind, frm, to, name, month, _ = group["key"]
        lines += [f"BEGIN:{kind}", f"DTSTART:{group['start']:%Y%m%dT%H%M%S}"]
        if len(group["years"]) > 1:
            rule = f"FREQ=YEARLY;BYMONTH={month};BYDAY={sorted(group['rules'])[0]}"
            if group["open"] and group["years"][-1] == last_year:
                lines.append(f"RRULE:{rule}")  # the zone's rules go on past the span
            else:
                lines.append(f"RRULE:{rule};UNTIL={_utc_stamp(group['until'])}")
        lines += [f"TZOFFSETFROM:{_offset(frm)}", f"TZOFFSETTO:{_offset(to)}", f"TZNAME:{name}", f"END:{kind}"]
    lines.append("END:VTIMEZONE")
    return "".join(fold(line) for line in lines)


# ---------------------------------------------------------------------------------------------- building


def _event_lines(out: list[str], event: FeedEvent, times: _Times, stamp: str, *, override: Override | None = None) -> None:
    start = override.start if override else event.start
    end = override.end if override else event.end
    summary = override.summary if override and override.summary is not None else event.summary
    out.append("BEGIN:VEVENT")
    out.append("UID:" + escape_text(event.uid))
    out.append("DTSTAMP:" + stamp)
    if override is not None:
        out.append(times.prop("RECURRENCE-ID", override.recurrence_id))
    out.append(times.prop("DTSTART", start))
    out.append(times.prop("DTEND", end))
    if override is None and event.rrule:
        out.append("RRULE:" + utc_rrule(event.rrule, times.tz))
        if event.exdates:
            out.extend(times.list_prop("EXDATE", sorted(event.exdates)))
    out.append(f"SEQUENCE:{event.sequence}")
    if event.created is not None:
        out.append("CREATED:" + _utc_stamp(event.created))
    if event.last_modified is not None:
        out.append("LAST-MODIFIED:" + _utc_stamp(event.last_modified))
    out.append("SUMMARY:" + escape_text(summary))
    if event.location:
        out.append("LOCATION:" + escape_text(event.location))
    if event.description:
        out.append("DESCRIPTION:" + escape_text(event.description))
    out.append("CLASS:PRIVATE" if event.private else "CLASS:PUBLIC")
    out.append("STATUS:CONFIRMED")
    out.append("TRANSP:OPAQUE")
    if event.categories:
        out.append("CATEGORIES:" + ",".join(escape_text(c) for c in event.categories))
    if event.organizer is not None:
        cn = f";CN={param_value(event.organizer.name)}" if event.organizer.name else ""
        out.append(f"ORGANIZER{cn}:{mailto(event.organizer.email)}")
    for person in event.attendees:
        cn = f";CN={param_value(person.name)}" if person.name else ""
        out.append(f"ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT{cn}:{mailto(person.email)}")
    if event.url:
        out.append("URL:" + event.url)
    out.append("END:VEVENT")


def _years(calendar: FeedCalendar) -> tuple[int, int]:
    tz = ZoneInfo(calendar.timezone)
    first = last = (calendar.dtstamp or datetime.now(UTC)).astimezone(tz).year
    for event in calendar.events:
        year = event.start.astimezone(tz).year
        first = min(first, year)
        last = max(last, year)
        last = max(last, (event.last_end or event.end).astimezone(tz).year)
        for override in event.overrides:
            last = max(last, override.end.astimezone(tz).year)
    return first, last + 1


def build_calendar(calendar: FeedCalendar) -> bytes:
    """The whole VCALENDAR as UTF-8 bytes."""
    times = _Times(calendar.timezone)
    stamp = _utc_stamp(calendar.dtstamp or datetime.now(UTC))
    refresh = f"PT{calendar.refresh_minutes}M"
    out = [
        "BEGIN:VCALENDAR",
        "PRODID:" + PRODID,
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "NAME:" + escape_text(calendar.name),
        "X-WR-CALNAME:" + escape_text(calendar.name),
        "X-WR-TIMEZONE:" + calendar.timezone,
        "REFRESH-INTERVAL;VALUE=DURATION:" + refresh,
        "X-PUBLISHED-TTL:" + refresh,
    ]
    if calendar.description:
        out.append("DESCRIPTION:" + escape_text(calendar.description))
        out.append("X-WR-CALDESC:" + escape_text(calendar.description))
    body = ["".join(fold(line) for line in out), vtimezone(calendar.timezone, *_years(calendar))]
    lines: list[str] = []
    for event in calendar.events:
        _event_lines(lines, event, times, stamp)
        for override in event.overrides:
            _event_lines(lines, event, times, stamp, override=override)
    lines.append("END:VCALENDAR")
    body.append("".join([fold(line) for line in lines]))
    return "".join(body).encode("utf-8")


def http_date_floor(value: datetime) -> datetime:
    """HTTP dates have whole seconds."""
    return value.astimezone(UTC).replace(microsecond=0)


__all__ = [
    "Person", "Override", "FeedEvent", "FeedCalendar", "build_calendar", "escape_text", "fold", "vtimezone",
    "param_value", "mailto", "utc_rrule", "http_date_floor",
]
