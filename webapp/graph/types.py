"""Typed values the Graph client returns and takes. Graph JSON is parsed here and nowhere else.

Public API — frozen dataclasses, each with `from_graph(json)` (used only inside this package):
- `User(id, upn, mail, display_name, given_name, surname, account_enabled, has_mailbox)` — `account_enabled`
  is None unless selected; `has_mailbox` is None unless probed (`GraphClient.get_user(..., probe_mailbox=True)`:
  Graph's user resource does not say).
- `Room(id, email, display_name, capacity, building, floor, floor_label, booking_type)` — key rooms on
  `email`: a room's `id` "can change" (graph-facts §2.1). `RoomList(id, email, display_name)`.
- `Contact(id, display_name, given_name, surname, emails, company)`,
  `Person(id, display_name, given_name, surname, email, upn, person_type, department, job_title)`.
- `Attendee(email, name, type, response)`, `Location(display_name, email, location_type)`.
- `RecurrencePattern`, `RecurrenceRange`, `PatternedRecurrence(pattern, range)` — the recurrence is typed
  (not a raw dict) and round-trips: `to_graph()` writes only the fields its pattern/range type needs, since
  Graph validates even the fields a pattern ignores (graph-facts §3.2).
- `Event(id, ical_uid, change_key, subject, body_preview, start, end, is_all_day, sensitivity, organizer_email,
  organizer_name, attendees, location, is_cancelled, type, series_master_id, recurrence, is_online_meeting,
  join_url, transaction_id, last_modified, show_as, response)` — `start`/`end`/`last_modified` are aware UTC
  datetimes; `is_private` is true for `private` and `confidential` (over-hide rather than leak a title);
  `last_modified` is None from calendarView with `$select` (Graph does not allow selecting it there).
- `EventDraft(...)` — what Roomsync writes: `to_graph(partial=False)`; `partial=True` (PATCH) keeps only
  the fields that are not None.
- `DeltaPage(events, removed_ids, delta_link)` — one whole delta round (every nextLink followed).
- `Subscription(id, resource, change_type, notification_url, expiration, client_state)` — `client_state` is
  a secret: it is left out of the repr.
- `BatchRequest(id, method, url, body=None, headers=None, depends_on=(), mailbox=None, idempotent=None,
  parse=None)` and `BatchResult(id, status, value, error)`: `value` is `parse(body)` for a success (None when
  no parser or no body), `error` a typed `GraphError` for a failure. Build requests with the
  `GraphClient.*_request` helpers so parsers stay in this package.
- `parse_graph_datetime(dtz)` and `parse_instant(text)` → aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

from .errors import GraphError

UTC = timezone.utc
_UTC_NAMES = {"utc", "etc/utc", "coordinated universal time", "gmt", "etc/gmt", "z"}


def _text(value) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _trim_fraction(text: str) -> str:
    """Graph writes 7 fractional digits; Python reads at most 6."""
    head, dot, rest = text.partition(".")
    if not dot:
        return text
    digits = "".join(ch for ch in rest if ch.isdigit())
    suffix = rest[len(digits):]
    return f"{head}.{digits[:6]}{suffix}"


def parse_instant(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(_trim_fraction(text.replace("Z", "+00:00")))
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)


def parse_graph_datetime(dtz: dict | None) -> datetime | None:
    """A dateTimeTimeZone → aware UTC. We always ask for UTC (`Prefer: outlook.timezone="UTC"`); an IANA zone
    is honoured too, anything else is an error rather than a silently shifted booking."""
    if not isinstance(dtz, dict) or not dtz.get("dateTime"):
        return None
    value = datetime.fromisoformat(_trim_fraction(dtz["dateTime"].replace("Z", "+00:00")))
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    zone_name = (dtz.get("timeZone") or "UTC").strip()
    if zone_name.lower() in _UTC_NAMES:
        return value.replace(tzinfo=UTC)
    try:
        return value.replace(tzinfo=ZoneInfo(zone_name)).astimezone(UTC)
    except (KeyError, ValueError):
        raise GraphError(f"Graph answered in time zone '{zone_name}' although UTC was asked for.",
                         code="unexpectedTimeZone") from None


def _graph_datetime(moment: datetime, time_zone: str | None = None) -> dict:
    """A dateTimeTimeZone: UTC by default; in `time_zone` (an IANA name Graph accepts) when given — a series
    must be written in its own zone, since its occurrences keep the wall-clock time of the start's zone."""
    if moment.tzinfo is None:
        raise ValueError("event times must be aware datetimes")
    if time_zone:
        from zoneinfo import ZoneInfo

        local = moment.astimezone(ZoneInfo(time_zone))
        return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": time_zone}
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


# ---------------------------------------------------------------- directory and places

@dataclass(frozen=True)
class User:
    id: str
    upn: str | None
    mail: str | None
    display_name: str | None
    given_name: str | None = None
    surname: str | None = None
    account_enabled: bool | None = None
    has_mailbox: bool | None = None

    @property
    def email(self) -> str | None:
        return self.mail or self.upn

    @classmethod
    def from_graph(cls, data: dict) -> User:
        enabled = data.get("accountEnabled")
        return cls(id=data["id"], upn=_text(data.get("userPrincipalName")), mail=_text(data.get("mail")),
                   display_name=_text(data.get("displayName")), given_name=_text(data.get("givenName")),
                   surname=_text(data.get("surname")),
                   account_enabled=enabled if isinstance(enabled, bool) else None)


def _int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():  # older docs show "capacity": "50"
        return int(value)
    return None


@dataclass(frozen=True)
class Room:
    id: str
    email: str
    display_name: str
    capacity: int | None = None
    building: str | None = None
    floor: int | None = None
    floor_label: str | None = None
    booking_type: str = "standard"

    @property
    def bookable(self) -> bool:
        return self.booking_type != "reserved"

    @classmethod
    def from_graph(cls, data: dict) -> Room:
        return cls(id=data["id"], email=data.get("emailAddress") or "", display_name=data.get("displayName") or "",
                   capacity=_int(data.get("capacity")), building=_text(data.get("building")),
                   floor=_int(data.get("floorNumber")), floor_label=_text(data.get("floorLabel")),
                   booking_type=(data.get("bookingType") or "standard"))


@dataclass(frozen=True)
class RoomList:
    id: str
    email: str
    display_name: str

    @classmethod
    def from_graph(cls, data: dict) -> RoomList:
        return cls(id=data["id"], email=data.get("emailAddress") or "", display_name=data.get("displayName") or "")


@dataclass(frozen=True)
class Contact:
    id: str
    display_name: str | None
    given_name: str | None
    surname: str | None
    emails: tuple[str, ...] = ()
    company: str | None = None

    @property
    def email(self) -> str | None:
        return self.emails[0] if self.emails else None

    @classmethod
    def from_graph(cls, data: dict) -> Contact:
        emails = tuple(e["address"] for e in data.get("emailAddresses") or []
                       if isinstance(e, dict) and _text(e.get("address")))
        return cls(id=data["id"], display_name=_text(data.get("displayName")), given_name=_text(data.get("givenName")),
                   surname=_text(data.get("surname")), emails=emails, company=_text(data.get("companyName")))


@dataclass(frozen=True)
class Person:
    id: str
    display_name: str | None
    given_name: str | None
    surname: str | None
    email: str | None
    upn: str | None = None
    person_type: str | None = None  # "Person/OrganizationUser", "Group/UnifiedGroup", …
    department: str | None = None
    job_title: str | None = None

    @classmethod
    def from_graph(cls, data: dict) -> Person:
        scored = [s for s in data.get("scoredEmailAddresses") or [] if isinstance(s, dict) and _text(s.get("address"))]
        kind = data.get("personType") or {}
        person_type = "/".join(p for p in (kind.get("class"), kind.get("subclass")) if p) or None
        return cls(id=data["id"], display_name=_text(data.get("displayName")), given_name=_text(data.get("givenName")),
                   surname=_text(data.get("surname")), email=scored[0]["address"] if scored else None,
                   upn=_text(data.get("userPrincipalName")), person_type=person_type,
                   department=_text(data.get("department")), job_title=_text(data.get("jobTitle")))


# ---------------------------------------------------------------- events

@dataclass(frozen=True)
class Attendee:
    email: str
    name: str | None = None
    type: str = "required"  # required | optional | resource
    response: str | None = None  # none | organizer | accepted | tentativelyAccepted | declined | notResponded

    @classmethod
    def from_graph(cls, data: dict) -> Attendee:
        address = (data.get("emailAddress") or {})
        return cls(email=address.get("address") or "", name=_text(address.get("name")),
                   type=data.get("type") or "required", response=(data.get("status") or {}).get("response"))

    def to_graph(self) -> dict:
        return {"emailAddress": {"address": self.email, **({"name": self.name} if self.name else {})},
                "type": self.type}


@dataclass(frozen=True)
class Location:
    display_name: str | None = None
    email: str | None = None
    location_type: str | None = None

    @classmethod
    def from_graph(cls, data: dict | None) -> Location | None:
        if not isinstance(data, dict) or not (data.get("displayName") or data.get("locationEmailAddress")):
            return None
        return cls(display_name=_text(data.get("displayName")), email=_text(data.get("locationEmailAddress")),
                   location_type=_text(data.get("locationType")))

    def to_graph(self) -> dict:
        body: dict = {"displayName": self.display_name or self.email or ""}
        if self.email:
            body["locationEmailAddress"] = self.email
        if self.location_type:
            body["locationType"] = self.location_type
        return body


_PATTERN_FIELDS = {
    "daily": (),
    "weekly": ("daysOfWeek", "firstDayOfWeek"),
    "absoluteMonthly": ("dayOfMonth",),
    "relativeMonthly": ("daysOfWeek", "index"),
    "absoluteYearly": ("dayOfMonth", "month"),
    "relativeYearly": ("daysOfWeek", "month", "index"),
}


@dataclass(frozen=True)
class RecurrencePattern:
    type: str
    interval: int = 1
    days_of_week: tuple[str, ...] = ()
    first_day_of_week: str | None = None
    index: str | None = None
    month: int | None = None
    day_of_month: int | None = None

    @classmethod
    def from_graph(cls, data: dict) -> RecurrencePattern:
        return cls(type=data.get("type") or "daily", interval=_int(data.get("interval")) or 1,
                   days_of_week=tuple(data.get("daysOfWeek") or ()),
                   first_day_of_week=_text(data.get("firstDayOfWeek")), index=_text(data.get("index")),
                   month=_int(data.get("month")) or None, day_of_month=_int(data.get("dayOfMonth")) or None)

    def to_graph(self) -> dict:
        values = {"daysOfWeek": list(self.days_of_week), "firstDayOfWeek": self.first_day_of_week or "sunday",
                  "index": self.index or "first", "month": self.month, "dayOfMonth": self.day_of_month}
        body = {"type": self.type, "interval": self.interval}
        for name in _PATTERN_FIELDS.get(self.type, ()):
            body[name] = values[name]
        return body


@dataclass(frozen=True)
class RecurrenceRange:
    type: str  # endDate | noEnd | numbered
    start_date: date
    end_date: date | None = None
    number_of_occurrences: int | None = None
    recurrence_time_zone: str | None = None

    @classmethod
    def from_graph(cls, data: dict) -> RecurrenceRange:
        end = data.get("endDate")
        return cls(type=data.get("type") or "noEnd", start_date=date.fromisoformat(data["startDate"]),
                   end_date=date.fromisoformat(end) if end and end != "0001-01-01" else None,
                   number_of_occurrences=_int(data.get("numberOfOccurrences")) or None,
                   recurrence_time_zone=_text(data.get("recurrenceTimeZone")))

    def to_graph(self) -> dict:
        body: dict = {"type": self.type, "startDate": self.start_date.isoformat()}
        if self.type == "endDate":
            body["endDate"] = self.end_date.isoformat() if self.end_date else None
        if self.type == "numbered":
            body["numberOfOccurrences"] = self.number_of_occurrences
        if self.recurrence_time_zone:
            body["recurrenceTimeZone"] = self.recurrence_time_zone
        return body


@dataclass(frozen=True)
class PatternedRecurrence:
    pattern: RecurrencePattern
    range: RecurrenceRange

    @classmethod
    def from_graph(cls, data: dict | None) -> PatternedRecurrence | None:
        if not isinstance(data, dict) or not data.get("pattern") or not data.get("range"):
            return None
        return cls(RecurrencePattern.from_graph(data["pattern"]), RecurrenceRange.from_graph(data["range"]))

    def to_graph(self) -> dict:
        return {"pattern": self.pattern.to_graph(), "range": self.range.to_graph()}


@dataclass(frozen=True)
class Event:
    id: str
    ical_uid: str | None
    change_key: str | None
    subject: str | None
    body_preview: str | None
    start: datetime
    end: datetime
    is_all_day: bool = False
    sensitivity: str = "normal"
    organizer_email: str | None = None
    organizer_name: str | None = None
    attendees: tuple[Attendee, ...] = ()
    location: Location | None = None
    is_cancelled: bool = False
    type: str = "singleInstance"  # singleInstance | occurrence | exception | seriesMaster
    series_master_id: str | None = None
    recurrence: PatternedRecurrence | None = None
    is_online_meeting: bool = False
    join_url: str | None = None
    transaction_id: str | None = None
    last_modified: datetime | None = None
    show_as: str | None = None
    response: str | None = None  # the calendar owner's own response
    original_start: datetime | None = None  # occurrences and exceptions: the start the series gave them

    @property
    def is_private(self) -> bool:
        return self.sensitivity in ("private", "confidential")

    @property
    def room_attendees(self) -> tuple[Attendee, ...]:
        return tuple(a for a in self.attendees if a.type == "resource")

    @classmethod
    def from_graph(cls, data: dict) -> Event:
        organizer = (data.get("organizer") or {}).get("emailAddress") or {}
        meeting = data.get("onlineMeeting") or {}
        start, end = parse_graph_datetime(data.get("start")), parse_graph_datetime(data.get("end"))
        if start is None or end is None:
            raise GraphError(f"Event {data.get('id')} has no start or end.", code="unexpectedEvent")
        return cls(
            id=data["id"], ical_uid=_text(data.get("iCalUId")), change_key=_text(data.get("changeKey")),
            subject=data.get("subject"), body_preview=data.get("bodyPreview"), start=start, end=end,
            is_all_day=bool(data.get("isAllDay")), sensitivity=data.get("sensitivity") or "normal",
            organizer_email=_text(organizer.get("address")), organizer_name=_text(organizer.get("name")),
            attendees=tuple(Attendee.from_graph(a) for a in data.get("attendees") or [] if isinstance(a, dict)),
            location=Location.from_graph(data.get("location")), is_cancelled=bool(data.get("isCancelled")),
            type=data.get("type") or "singleInstance", series_master_id=_text(data.get("seriesMasterId")),
            recurrence=PatternedRecurrence.from_graph(data.get("recurrence")),
            is_online_meeting=bool(data.get("isOnlineMeeting")),
            join_url=_text(meeting.get("joinUrl")) if isinstance(meeting, dict) else None,
            transaction_id=_text(data.get("transactionId")),
            last_modified=parse_instant(data.get("lastModifiedDateTime")),
            show_as=_text(data.get("showAs")), response=(data.get("responseStatus") or {}).get("response"),
            original_start=parse_instant(data.get("originalStart")),
        )


@dataclass(frozen=True)
class EventDraft:
    """An event to create (subject, start and end required) or the changes of a PATCH (`partial=True`)."""

    subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    body_text: str | None = None
    body_html: str | None = None
    is_all_day: bool | None = None
    is_private: bool | None = None
    attendees: tuple[Attendee, ...] | None = None
    location: Location | None = None
    recurrence: PatternedRecurrence | None = None
    is_online_meeting: bool | None = None
    show_as: str | None = None
    response_requested: bool | None = None
    time_zone: str | None = None  # write start/end in this zone (series); UTC otherwise
    categories: tuple[str, ...] | None = None
    transaction_id: str | None = None

    def to_graph(self, partial: bool = False) -> dict:
        if not partial and (self.subject is None or self.start is None or self.end is None):
            raise ValueError("a new event needs a subject, a start and an end")
        body: dict[str, Any] = {}
        if self.subject is not None:
            body["subject"] = self.subject
        if self.body_html is not None:
            body["body"] = {"contentType": "html", "content": self.body_html}
        elif self.body_text is not None:
            body["body"] = {"contentType": "text", "content": self.body_text}
        if self.start is not None:
            body["start"] = _graph_datetime(self.start, self.time_zone)
        if self.end is not None:
            body["end"] = _graph_datetime(self.end, self.time_zone)
        if self.is_all_day is not None:
            body["isAllDay"] = self.is_all_day
        if self.is_private is not None:
            body["sensitivity"] = "private" if self.is_private else "normal"
        if self.attendees is not None:
            body["attendees"] = [a.to_graph() for a in self.attendees]
        if self.location is not None:
            body["location"] = self.location.to_graph()
        if self.recurrence is not None:
            body["recurrence"] = self.recurrence.to_graph()
        if self.is_online_meeting is not None:
            body["isOnlineMeeting"] = self.is_online_meeting
            if self.is_online_meeting:
                body["onlineMeetingProvider"] = "teamsForBusiness"
        if self.show_as is not None:
            body["showAs"] = self.show_as
        if self.response_requested is not None:
            body["responseRequested"] = self.response_requested
        elif not partial:
            body["responseRequested"] = True
        if self.categories is not None:
            body["categories"] = list(self.categories)
        if self.transaction_id is not None and not partial:
            body["transactionId"] = self.transaction_id
        return body


@dataclass(frozen=True)
class DeltaPage:
    events: tuple[Event, ...]
    removed_ids: tuple[str, ...]
    delta_link: str


@dataclass(frozen=True)
class Subscription:
    id: str
    resource: str
    change_type: str
    notification_url: str | None
    expiration: datetime
    client_state: str | None = field(default=None, repr=False)

    @classmethod
    def from_graph(cls, data: dict) -> Subscription:
        return cls(id=data["id"], resource=data.get("resource") or "", change_type=data.get("changeType") or "",
                   notification_url=_text(data.get("notificationUrl")),
                   expiration=parse_instant(data["expirationDateTime"]), client_state=_text(data.get("clientState")))


# ---------------------------------------------------------------- $batch

@dataclass(frozen=True)
class BatchRequest:
    id: str
    method: str
    url: str  # relative to the Graph version root, e.g. "/users/x@y/events/AAMk…"
    body: dict | None = None
    headers: dict | None = None
    depends_on: tuple[str, ...] = ()
    mailbox: str | None = None  # for the per-mailbox limiter
    idempotent: bool | None = None  # None: by method (GET, PUT, PATCH, DELETE are; POST is not)
    parse: Callable[[dict], Any] | None = field(default=None, compare=False, repr=False)

    @property
    def retry_safe(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() != "POST"


@dataclass(frozen=True)
class BatchResult:
    id: str
    status: int
    value: Any = None
    error: GraphError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
