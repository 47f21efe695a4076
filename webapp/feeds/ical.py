"""iCalendar (RFC 5545) text for the feeds: pure builders that take plain data and return bytes.

Public API:
- `Person(email, name="")`: an organizer or attendee (frozen, hashable).
- `Override(recurrence_id, start, end, summary=None)`: a moved or retitled occurrence of a series (all aware).
- `FeedEvent(...)`: one booking as the feed shows it (already masked by the caller where privacy says so).
- `FeedCalendar(name, timezone, events, dtstamp, refresh_minutes=15)`.
- `build_calendar(calendar)` → bytes (UTF-8, CRLF line ends, folded at 75 octets).
- `escape_text(text)`, `param_value(text)`, `fold(line)`, `mailto(email)`, `utc_rrule(rrule, tz)`,
  `vtimezone(tzid, first_year, last_year)` (cached), `http_date_floor(value)`.

Written by hand rather than through the `icalendar` package because a 3-year space feed (about 3,400 events)
must build in a few tens of milliseconds (bench/feeds_bench.py): each event is one f-string; only lines whose
length depends on data go through `fold`; people, places and dates are formatted once per build where they
repeat. The VTIMEZONE block is built from the system's zone data (yearly RRULEs, as Outlook and Google write
them), once per zone and span of years. Tests parse the output back with `icalendar` and `vobject` and expand it
with `recurring-ical-events`; scripts/check_feeds.py also reads it with ical.js and with Thunderbird.

RFC 5545 points followed: CRLF line ends and folding at 75 octets without splitting a UTF-8 character
(§3.1); TEXT escaping of backslash, semicolon, comma and newlines (§3.3.11); quoted parameter values for
CN, with the DQUOTE that cannot appear in them dropped (§3.2); DTSTART/DTEND with TZID in the venue's zone
(§3.3.5 form 3) and a VTIMEZONE for it; an RRULE's UNTIL in UTC since DTSTART has a TZID (§3.3.10); EXDATE and
RECURRENCE-ID in the same form as DTSTART (§3.8.4.4, §3.8.5.1); DTSTAMP and LAST-MODIFIED in UTC (§3.8.7);
CUTYPE and ROLE left at their defaults (INDIVIDUAL, REQ-PARTICIPANT). An instant in the repeated hour of a
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


# Override and FeedEvent are made by the thousand per build: slots and no `frozen` (whose __init__ is twice as
# slow); treat them as read-only all the same.
@dataclass(slots=True)
class Override:
    recurrence_id: datetime  # the occurrence's original start (aware)
    start: datetime
    end: datetime
    summary: str | None = None  # None: the series' summary


@dataclass(slots=True)
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


# One pass: backslash, semicolon, comma and newlines escaped (§3.3.11), CR dropped (CRLF counts as one newline),
# control characters other than HTAB dropped (not allowed in a content line, §3.1).
_TEXT_TABLE = str.maketrans(
    {"\\": "\\\\", ";": "\\;", ",": "\\,", "\n": "\\n", "\r": None,
     **dict.fromkeys([c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)] + [0x7F])}
)
# Parameter values cannot hold DQUOTE or line breaks (§3.2): breaks become spaces, DQUOTE a single quote.
_PARAM_TABLE = str.maketrans(
    {"\r": " ", "\n": " ", '"': "'", **dict.fromkeys([c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)] + [0x7F])}
)


def escape_text(value: str) -> str:
    """A TEXT value (§3.3.11): backslash, semicolon and comma escaped, newlines as \\n."""
    return value.translate(_TEXT_TABLE)


def param_value(value: str) -> str:
    """A parameter value (§3.2): quoted; DQUOTE cannot appear inside, control characters neither."""
    return f'"{value.translate(_PARAM_TABLE)}"'


def _fold_octets(line: bytes) -> bytes:
    """One content line (no CRLF) folded into pieces of at most 75 octets, never inside a UTF-8 sequence."""
    parts = []
    start, limit, size = 0, 75, len(line)
    while start < size:
        end = min(start + limit, size)
        # Step back to the start of a character: continuation bytes are 0b10xxxxxx.
        while end < size and (line[end] & 0xC0) == 0x80:
            end -= 1
        parts.append(line[start:end])
        start = end
        limit = 74  # the leading space of a continuation line counts
    return b"\r\n ".join(parts)


def fold(line: str) -> str:
    """One content line folded at 75 octets (§3.1), never inside a UTF-8 sequence; returns it with CRLF. Only
    lines whose length depends on data go through here: the fixed ones (dates, SEQUENCE, CLASS…) are short."""
    if len(line) <= 75 and line.isascii():
        return line + "\r\n"
    encoded = line.encode("utf-8")
    if len(encoded) <= 75:
        return line + "\r\n"
    return _fold_octets(encoded).decode("utf-8") + "\r\n"


@lru_cache(maxsize=4096)
def mailto(email: str) -> str:
    return "mailto:" + quote(email, safe="@.+-_~!$&'*=")


# Freezegun (the tests' clock) swaps every module attribute that *is* the datetime class for its subclass; a
# tuple keeps the real class out of its reach, so `_Times` can tell real date-times from its fakes.
_REAL_DATETIME = (datetime,)


def in_zone(value: datetime, tz: ZoneInfo) -> datetime:
    """`value` (aware) as wall-clock time in `tz`, its `fold` right in the repeated hour of a fall-back change.
    The fold is re-derived from the wall time itself because date-time subclasses (freezegun's, in tests) drop
    it in `astimezone`, which would read 01:30 GMT as 01:30 BST."""
    local = value.astimezone(tz)
    if type(local) is _REAL_DATETIME[0]:
        return local  # `astimezone` sets the fold of real date-times itself
    offset = local.replace(tzinfo=None) - value.astimezone(UTC).replace(tzinfo=None)
    if local.utcoffset() != offset:
        local = local.replace(fold=1 - local.fold)
    return local


def _compact(iso: str) -> str:
    """`YYYY-MM-DDTHH:MM:SS…` (isoformat, 4 times faster than strftime) → `YYYYMMDDTHHMMSS`."""
    return f"{iso[0:4]}{iso[5:7]}{iso[8:13]}{iso[14:16]}{iso[17:19]}"


def _utc_stamp(value: datetime) -> str:
    return _compact(value.astimezone(UTC).isoformat()) + "Z"


class _Times:
    """Date-time values in one zone: `TZID=…:local` or UTC where the local time would be ambiguous."""

    def __init__(self, tzid: str):
        self.tzid = tzid
        self.tz = ZoneInfo(tzid)
        self.prefix = f";TZID={tzid}:"

    def local(self, value: datetime) -> datetime:
        return in_zone(value, self.tz)

    def prop(self, name: str, value: datetime) -> str:
        local = value.astimezone(self.tz)
        if type(local) is not _REAL_DATETIME[0]:
            local = in_zone(value, self.tz)
        # fold=1: the second pass of a repeated hour, which a TZID value cannot name (§3.3.5 reads the first).
        if local.fold and local.replace(fold=0).utcoffset() != local.utcoffset():
            return f"{name}:{_utc_stamp(value)}"
        return f"{name}{self.prefix}{_compact(local.isoformat())}"

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


class _People:
    """ORGANIZER, ATTENDEE and LOCATION lines, each made once per build: a feed names the same people and
    spaces again and again."""

    def __init__(self):
        self.organizers: dict[Person, str] = {}
        self.attendees: dict[Person, str] = {}
        self.locations: dict[str, str] = {}

    def location(self, location: str) -> str:
        line = self.locations.get(location)
        if line is None:
            line = self.locations[location] = fold("LOCATION:" + escape_text(location))
        return line

    def organizer(self, person: Person) -> str:
        return self._person("ORGANIZER", person, self.organizers)

    def attendee(self, person: Person) -> str:
        # CUTYPE=INDIVIDUAL and ROLE=REQ-PARTICIPANT are the defaults (§3.2.3, §3.2.16): not repeated.
        return self._person("ATTENDEE", person, self.attendees)

    @staticmethod
    def _person(name: str, person: Person, lines: dict) -> str:
        line = lines.get(person)
        if line is None:
            cn = f";CN={param_value(person.name)}" if person.name else ""
            line = lines[person] = fold(f"{name}{cn}:{mailto(person.email)}")
        return line


def _event_text(out: list[str], event: FeedEvent, times: _Times, stamp: str, details: str,
                override: Override | None = None) -> None:
    """One VEVENT, unfolded, CRLF after each line. `details`: the lines every instance of the event shares
    (SEQUENCE to URL), made once for a series and its overrides."""
    if override is None:
        start, end, recurrence = event.start, event.end, ""
        if event.rrule:
            recurrence = fold("RRULE:" + utc_rrule(event.rrule, times.tz))
            if event.exdates:
                recurrence += "".join(fold(line) for line in times.list_prop("EXDATE", sorted(event.exdates)))
        summary = event.summary
    else:
        start, end = override.start, override.end
        recurrence = times.prop("RECURRENCE-ID", override.recurrence_id) + "\r\n"
        summary = override.summary if override.summary is not None else event.summary
    # Dates and their TZID fit in 75 octets whatever the zone (the longest TZID is 32 characters).
    out.append(
        f"BEGIN:VEVENT\r\n{fold('UID:' + escape_text(event.uid))}DTSTAMP:{stamp}\r\n{times.prop('DTSTART', start)}\r\n"
        f"{times.prop('DTEND', end)}\r\n{recurrence}{fold('SUMMARY:' + escape_text(summary))}{details}END:VEVENT\r\n"
    )


def _details(event: FeedEvent, people: _People) -> str:
    parts = [f"SEQUENCE:{event.sequence}\r\n"]
    if event.created is not None:
        parts.append(f"CREATED:{_utc_stamp(event.created)}\r\n")
    if event.last_modified is not None:
        parts.append(f"LAST-MODIFIED:{_utc_stamp(event.last_modified)}\r\n")
    if event.location:
        parts.append(people.location(event.location))
    if event.description:
        parts.append(fold("DESCRIPTION:" + escape_text(event.description)))
    parts.append("CLASS:PRIVATE\r\n" if event.private else "CLASS:PUBLIC\r\n")
    parts.append("STATUS:CONFIRMED\r\nTRANSP:OPAQUE\r\n")
    if event.categories:
        parts.append(fold("CATEGORIES:" + ",".join(escape_text(c) for c in event.categories)))
    if event.organizer is not None:
        parts.append(people.organizer(event.organizer))
    for person in event.attendees:
        parts.append(people.attendee(person))
    if event.url:
        parts.append(fold("URL:" + event.url))
    return "".join(parts)


def _years(calendar: FeedCalendar) -> tuple[int, int]:
    """The years the VTIMEZONE must describe: from the first start (or today) to the year after the last end."""
    tz = ZoneInfo(calendar.timezone)
    today = (calendar.dtstamp or datetime.now(UTC)).astimezone(tz)
    if not calendar.events:
        return today.year, today.year + 1
    first = min(event.start for event in calendar.events)
    last = max(max(event.last_end or event.end, event.end) for event in calendar.events)
    last = max([last] + [o.end for event in calendar.events for o in event.overrides])
    return min(today.year, first.astimezone(tz).year), max(today.year, last.astimezone(tz).year) + 1


def build_calendar(calendar: FeedCalendar) -> bytes:
    """The whole VCALENDAR as UTF-8 bytes, CRLF line ends, lines folded at 75 octets."""
    times = _Times(calendar.timezone)
    stamp = _utc_stamp(calendar.dtstamp or datetime.now(UTC))
    refresh = f"PT{calendar.refresh_minutes}M"
    head = [
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
        head.append("DESCRIPTION:" + escape_text(calendar.description))
        head.append("X-WR-CALDESC:" + escape_text(calendar.description))
    out = ["".join(fold(line) for line in head), vtimezone(calendar.timezone, *_years(calendar))]
    people = _People()
    for event in calendar.events:
        details = _details(event, people)
        _event_text(out, event, times, stamp, details)
        for override in event.overrides:
            _event_text(out, event, times, stamp, details, override)
    out.append("END:VCALENDAR\r\n")
    return "".join(out).encode("utf-8")


def http_date_floor(value: datetime) -> datetime:
    """HTTP dates have whole seconds."""
    return value.astimezone(UTC).replace(microsecond=0)


__all__ = [
    "Person", "Override", "FeedEvent", "FeedCalendar", "build_calendar", "escape_text", "fold", "vtimezone",
    "param_value", "mailto", "utc_rrule", "http_date_floor",
]
