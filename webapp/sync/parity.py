"""The parity audit: does a paired room's calendar in Microsoft 365 hold exactly the bookings of its space?

The reference guide asks the admin to compare both sides by hand after the first pair; we compare them by
program at the end of every initial sync (step 7, stored in `InitialSync.parity`), and the live sync's
periodic audit reuses it (DESIGN "Safety nets": "a parity audit compares both sides and reports every
difference").

Public API — the pure part (no database, no provider):
- `RoomSlot(event_id, series_master_id, ical_uid, start, end, organizer_email, is_cancelled=False,
  original_start=None)`: one instance on the room's calendar (a single event, an occurrence or an exception
  of a series, as calendarView lists them). `RoomSlot.from_event(event)` from a `graph.Event`;
  `slots_from_events(events)` keeps the instances (series masters and cancelled events are left out).
- `SpaceSlot(booking_uid, original_start, start, end, holder_email, kind)`: one materialised occurrence of
  a booking on the space (`booking.models.Occurrence` joined to its booking).
- `Difference(kind, outlook_start, outlook_end, roomsync_start, roomsync_end, event_id, booking_uid,
  organizer_email, holder_email, booking_kind, time_zone="UTC")`, `kind` one of `DIFFERENCE_KINDS`:
  "only_in_outlook" (a room instance no booking holds; only the outlook_* times are set), "only_in_roomsync"
  (a booking occurrence the room lacks; only roomsync_*), "time_differs" (linked, at other times: both).
  `describe()` → one sentence in the venue's zone; `label`. No titles: the audit never holds any (privacy).
- `compare(room_slots, space_slots, links, *, ical_links=None, time_zone="UTC", window_start=None,
  window_end=None, scope="from today on", checked_at=None, limit=MAX_LISTED)` → `ParityResult`. `links`
  maps a room event id (a single event's, or a series master's) to the booking uid it belongs to
  (`EventLink.room_event_id` → `booking_uid`); `ical_links` optionally maps an iCalUId to a booking uid,
  consulted for a room instance whose ids are not linked.
- `ParityResult`: `room_count`, `space_count` (instances compared on each side), `matched`, `totals`
  ({kind: n}, every kind), `only_in_outlook`, `only_in_roomsync`, `time_differs` (each the first
  `MAX_LISTED` differences in time order, for storage), `window_start`, `window_end`, `time_zone`, `scope`,
  `checked_at`; `agrees`, `difference_count`, `truncated`; `summary()` — one sentence for people
  ("Both sides agree: 214 bookings from today on." / "3 differences from today on: 1 only in Outlook, …");
  `to_json()` → a JSON-ready dict (what `InitialSync.parity` stores, with `agrees` and `summary` written
  out for readers that do not load this module) and `ParityResult.from_json(data)`.

Public API — reading both sides (inside an app context):
- `audit_pair(pair_id, *, start=None, end=None)` → `ParityResult` for the pair's room calendar against its
  space in [start, end): `start` defaults to midnight today in the venue's zone, `end` to start + 1,080 days
  (the initial sync's horizon); `scope` reads "from today on" for the default window (whatever `end`
  defaults to), "from 3 Mar 2026 on" or "from 3 Mar 2026 to 9 Mar 2026" otherwise. Raises `LookupError` for an unknown pair and lets Graph errors raise (jobs
  retry). Reads nothing but the room's own calendar and this one space (not the spaces that share it).
- `read_room_slots(room_email, start, end)`, `read_space_slots(space_id, start, end)`,
  `read_links(room_email)` → (links, ical_links): the three reads `audit_pair` is made of;
  `default_window(tz, now=None)` → (midnight today in `tz`, 1,080 days later).

Matching, first rule first, each slot used at most once:
1. linked, same times: the instance's event (or its series master, or its iCalUId) is linked to a booking
   that has an occurrence at exactly the same start and end → they match;
2. linked, other times: the remaining instances and occurrences of the same booking are paired (by original
   start, as a series' moved occurrence keeps it; then in time order) → "time_differs";
3. unlinked, same times: a remaining instance and a remaining occurrence with exactly the same start and end
   match whatever their links (a restored booking whose room copy id is not stored yet);
4. what is left is "only_in_outlook" or "only_in_roomsync".
Rule 2 runs before rule 3 so that an event moved in Outlook onto the time of another booking is reported as
moved, not as that booking. Two bookings at one time with one room event give one match and one
difference. Internal blocks (the butler's events) and bookings of kind "unavailable" are compared like any
other: the room calendar holds them too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ..auth.models import User
from ..booking.models import Booking, Occurrence, Venue
from ..extensions import db
from ..graph import graph_client
from ..timeutil import ensure_aware, local_day_bounds, now_utc, parse_iso, to_local
from .models import EventLink, Pair

DIFFERENCE_KINDS = ("only_in_outlook", "only_in_roomsync", "time_differs")
KIND_LABELS = {"only_in_outlook": "only in Outlook", "only_in_roomsync": "only in Roomsync",
               "time_differs": "at different times"}
MAX_LISTED = 50  # differences kept per kind in the stored result; the totals count them all
HORIZON_DAYS = 1080  # the initial sync's cap on series (DESIGN "Initial sync of a new pair")
# calendarView's largest page: the sandbox serves up to 1,000 (as Outlook's REST API did); Graph's own maximum
# is UNCONFIRMED (graph-facts §3.4) and a larger $top is paged, not refused, so asking for 1,000 is safe and
# makes a busy room's three years a handful of requests instead of hundreds at the default 10.
PAGE_SIZE = 1000
JSON_VERSION = 1


# ---------------------------------------------------------------------------------------------- slots


@dataclass(frozen=True)
class RoomSlot:
    event_id: str
    series_master_id: str | None
    ical_uid: str | None
    start: datetime
    end: datetime
    organizer_email: str | None
    is_cancelled: bool = False
    original_start: datetime | None = None  # occurrences and exceptions: where the series put them

    @classmethod
    def from_event(cls, event) -> RoomSlot:
        return cls(event_id=event.id, series_master_id=event.series_master_id, ical_uid=event.ical_uid,
                   start=ensure_aware(event.start), end=ensure_aware(event.end),
                   organizer_email=(event.organizer_email or "").lower() or None,
                   is_cancelled=bool(event.is_cancelled),
                   original_start=ensure_aware(event.original_start) if event.original_start else None)


def slots_from_events(events: Iterable) -> list[RoomSlot]:
    """The room's instances among `events` (calendarView lists no series masters, but a master is no slot
    anyway); cancelled events hold no time in the room and are left out."""
    return [RoomSlot.from_event(e) for e in events if e.type != "seriesMaster" and not e.is_cancelled]


@dataclass(frozen=True)
class SpaceSlot:
    booking_uid: str
    original_start: datetime
    start: datetime
    end: datetime
    holder_email: str | None
    kind: str


# ---------------------------------------------------------------------------------------------- differences


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, lossless (fractions of a second kept when there are any)."""
    return ensure_aware(value).isoformat().replace("+00:00", "Z") if value is not None else None


def _instant(text) -> datetime | None:
    return parse_iso(text) if text else None


def _span(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    """"Tue 3 Mar 2026 10:00–11:00" in the venue's zone (the end's date too when it is another day)."""
    local_start, local_end = to_local(start, tz), to_local(end, tz)
    day = f"{local_start:%a} {local_start.day} {local_start:%b %Y}"
    if local_end.date() != local_start.date():
        return f"{day} {local_start:%H:%M} – {local_end:%a} {local_end.day} {local_end:%b %Y} {local_end:%H:%M}"
    return f"{day} {local_start:%H:%M}–{local_end:%H:%M}"


_BOOKING_KIND_WORDS = {"internal": "internal block", "unavailable": "unavailable"}


@dataclass(frozen=True)
class Difference:
    kind: str
    outlook_start: datetime | None = None
    outlook_end: datetime | None = None
    roomsync_start: datetime | None = None
    roomsync_end: datetime | None = None
    event_id: str | None = None
    booking_uid: str | None = None
    organizer_email: str | None = None
    holder_email: str | None = None
    booking_kind: str | None = None
    time_zone: str = field(default="UTC", compare=False)

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    @property
    def sort_key(self) -> tuple:
        first = self.outlook_start or self.roomsync_start
        return (first, self.event_id or "", self.booking_uid or "")

    def _who(self) -> str:
        bits = []
        if self.organizer_email:
            bits.append(f"organizer {self.organizer_email}")
        if self.holder_email and self.holder_email != self.organizer_email:
            bits.append(f"holder {self.holder_email}")
        if self.booking_kind in _BOOKING_KIND_WORDS:
            bits.append(_BOOKING_KIND_WORDS[self.booking_kind])
        return f" ({', '.join(bits)})" if bits else ""

    def describe(self) -> str:
        """One sentence for the admin, times in the venue's zone; names people by address, never a title."""
        tz = ZoneInfo(self.time_zone)
        if self.kind == "only_in_outlook":
            return f"{_span(self.outlook_start, self.outlook_end, tz)}: in Outlook{self._who()}, not in Roomsync."
        if self.kind == "only_in_roomsync":
            return f"{_span(self.roomsync_start, self.roomsync_end, tz)}: in Roomsync{self._who()}, not in Outlook."
        return (f"Outlook has {_span(self.outlook_start, self.outlook_end, tz)}, Roomsync "
                f"{_span(self.roomsync_start, self.roomsync_end, tz)}{self._who()}.")

    def to_json(self) -> dict:
        return {"kind": self.kind, "outlook_start": _iso(self.outlook_start), "outlook_end": _iso(self.outlook_end),
                "roomsync_start": _iso(self.roomsync_start), "roomsync_end": _iso(self.roomsync_end),
                "event_id": self.event_id, "booking_uid": self.booking_uid,
                "organizer_email": self.organizer_email, "holder_email": self.holder_email,
                "booking_kind": self.booking_kind}

    @classmethod
    def from_json(cls, data: dict, time_zone: str = "UTC") -> Difference:
        if data.get("kind") not in DIFFERENCE_KINDS:
            raise ValueError(f"unknown difference kind {data.get('kind')!r}")
        return cls(kind=data["kind"], outlook_start=_instant(data.get("outlook_start")),
                   outlook_end=_instant(data.get("outlook_end")), roomsync_start=_instant(data.get("roomsync_start")),
                   roomsync_end=_instant(data.get("roomsync_end")), event_id=data.get("event_id"),
                   booking_uid=data.get("booking_uid"), organizer_email=data.get("organizer_email"),
                   holder_email=data.get("holder_email"), booking_kind=data.get("booking_kind"),
                   time_zone=time_zone)


def _only_in_outlook(slot: RoomSlot, time_zone: str) -> Difference:
    return Difference("only_in_outlook", outlook_start=slot.start, outlook_end=slot.end, event_id=slot.event_id,
                      organizer_email=slot.organizer_email, time_zone=time_zone)


def _only_in_roomsync(slot: SpaceSlot, time_zone: str) -> Difference:
    return Difference("only_in_roomsync", roomsync_start=slot.start, roomsync_end=slot.end,
                      booking_uid=slot.booking_uid, holder_email=slot.holder_email, booking_kind=slot.kind,
                      time_zone=time_zone)


def _time_differs(room: RoomSlot, space: SpaceSlot, time_zone: str) -> Difference:
    return Difference("time_differs", outlook_start=room.start, outlook_end=room.end, roomsync_start=space.start,
                      roomsync_end=space.end, event_id=room.event_id, booking_uid=space.booking_uid,
                      organizer_email=room.organizer_email, holder_email=space.holder_email,
                      booking_kind=space.kind, time_zone=time_zone)


# ---------------------------------------------------------------------------------------------- the result


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


@dataclass
class ParityResult:
    room_count: int = 0
    space_count: int = 0
    matched: int = 0
    totals: dict[str, int] = field(default_factory=lambda: {kind: 0 for kind in DIFFERENCE_KINDS})
    only_in_outlook: list[Difference] = field(default_factory=list)
    only_in_roomsync: list[Difference] = field(default_factory=list)
    time_differs: list[Difference] = field(default_factory=list)
    window_start: datetime | None = None
    window_end: datetime | None = None
    time_zone: str = "UTC"
    scope: str = "from today on"
    checked_at: datetime | None = None

    @property
    def difference_count(self) -> int:
        return sum(self.totals.get(kind, 0) for kind in DIFFERENCE_KINDS)

    @property
    def agrees(self) -> bool:
        return self.difference_count == 0

    @property
    def truncated(self) -> bool:
        """Whether some differences were counted but not listed."""
        return any(len(getattr(self, kind)) < self.totals.get(kind, 0) for kind in DIFFERENCE_KINDS)

    def differences(self) -> list[Difference]:
        """The listed differences of every kind, in time order."""
        return sorted((d for kind in DIFFERENCE_KINDS for d in getattr(self, kind)), key=lambda d: d.sort_key)

    def summary(self) -> str:
        scope = f" {self.scope}" if self.scope else ""
        if self.agrees:
            return f"Both sides agree: {_plural(self.matched, 'booking')}{scope}."
        parts = [f"{self.totals[kind]:,} {KIND_LABELS[kind]}" for kind in DIFFERENCE_KINDS if self.totals.get(kind)]
        return f"{_plural(self.difference_count, 'difference')}{scope}: {', '.join(parts)}."

    def to_json(self) -> dict:
        return {
            "version": JSON_VERSION,
            "agrees": self.agrees,
            "summary": self.summary(),
            "room_count": self.room_count,
            "space_count": self.space_count,
            "matched": self.matched,
            "totals": {kind: int(self.totals.get(kind, 0)) for kind in DIFFERENCE_KINDS},
            **{kind: [d.to_json() for d in getattr(self, kind)] for kind in DIFFERENCE_KINDS},
            "window_start": _iso(self.window_start),
            "window_end": _iso(self.window_end),
            "time_zone": self.time_zone,
            "scope": self.scope,
            "checked_at": _iso(self.checked_at),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> ParityResult:
        if not isinstance(data, Mapping):
            raise ValueError("a parity result is a JSON object")
        time_zone = data.get("time_zone") or "UTC"
        try:
            ZoneInfo(time_zone)
        except (KeyError, ValueError):  # an unknown zone is a malformed result, not a 500 later in describe()
            raise ValueError(f"unknown time zone {time_zone!r}") from None
        lists = {kind: [Difference.from_json(d, time_zone) for d in data.get(kind) or []] for kind in DIFFERENCE_KINDS}
        raw_totals = data.get("totals") or {}
        totals = {kind: max(int(raw_totals.get(kind, 0)), len(lists[kind])) for kind in DIFFERENCE_KINDS}
        return cls(room_count=int(data.get("room_count", 0)), space_count=int(data.get("space_count", 0)),
                   matched=int(data.get("matched", 0)), totals=totals, **lists,
                   window_start=_instant(data.get("window_start")), window_end=_instant(data.get("window_end")),
                   time_zone=time_zone, scope=str(data.get("scope") or ""), checked_at=_instant(data.get("checked_at")))


# ---------------------------------------------------------------------------------------------- compare


def _times(slot) -> tuple[datetime, datetime]:
    return (slot.start, slot.end)


def _linked_uid(slot: RoomSlot, links: Mapping[str, str], ical_links: Mapping[str, str]) -> str | None:
    for key in (slot.event_id, slot.series_master_id):
        if key and key in links:
            return links[key]
    if slot.ical_uid and slot.ical_uid in ical_links:
        return ical_links[slot.ical_uid]
    return None


def compare(room_slots: Sequence[RoomSlot], space_slots: Sequence[SpaceSlot], links: Mapping[str, str], *,
            ical_links: Mapping[str, str] | None = None, time_zone: str = "UTC",
            window_start: datetime | None = None, window_end: datetime | None = None, scope: str = "from today on",
            checked_at: datetime | None = None, limit: int = MAX_LISTED) -> ParityResult:
    ical_links = ical_links or {}
    # Deterministic whatever order the sides were read in: the same data always gives the same report.
    room_left = sorted((s for s in room_slots if not s.is_cancelled), key=lambda s: (s.start, s.end, s.event_id))
    space_left = sorted(space_slots, key=lambda s: (s.start, s.end, s.booking_uid, s.original_start))
    matched, differs = 0, []

    # Rule 1: linked, same times.
    space_by_uid: dict[str, list[SpaceSlot]] = defaultdict(list)
    for slot in space_left:
        space_by_uid[slot.booking_uid].append(slot)
    used_space: set[int] = set()  # ids of SpaceSlot objects taken (slots may compare equal to each other)
    linked_rest: dict[str, list[RoomSlot]] = defaultdict(list)
    unlinked: list[RoomSlot] = []
    for slot in room_left:
        uid = _linked_uid(slot, links, ical_links)
        if uid is None:
            unlinked.append(slot)
            continue
        partner = next((s for s in space_by_uid.get(uid, ()) if id(s) not in used_space and _times(s) == _times(slot)),
                       None)
        if partner is None:
            linked_rest[uid].append(slot)
        else:
            used_space.add(id(partner))
            matched += 1

    # Rule 2: linked, other times — pair what is left of the same booking.
    room_rest: list[RoomSlot] = list(unlinked)
    for uid, slots in linked_rest.items():
        candidates = [s for s in space_by_uid.get(uid, ()) if id(s) not in used_space]
        pending: list[RoomSlot] = []
        for slot in slots:  # a moved occurrence keeps its original start on both sides
            partner = next((s for s in candidates if slot.original_start is not None
                            and s.original_start == slot.original_start), None)
            if partner is None:
                pending.append(slot)
            else:
                candidates.remove(partner)
                used_space.add(id(partner))
                differs.append(_time_differs(slot, partner, time_zone))
        for slot, partner in zip(pending, candidates):  # then in time order (both lists are sorted)
            used_space.add(id(partner))
            differs.append(_time_differs(slot, partner, time_zone))
        room_rest.extend(pending[len(candidates):])

    # Rule 3: unlinked, same times.
    space_rest = [s for s in space_left if id(s) not in used_space]
    free_by_times: dict[tuple, list[SpaceSlot]] = defaultdict(list)
    for slot in space_rest:
        free_by_times[_times(slot)].append(slot)
    only_outlook: list[Difference] = []
    for slot in sorted(room_rest, key=lambda s: (s.start, s.end, s.event_id)):
        same = free_by_times.get(_times(slot))
        if same:
            used_space.add(id(same.pop(0)))
            matched += 1
        else:
            only_outlook.append(_only_in_outlook(slot, time_zone))  # rule 4
    only_roomsync = [_only_in_roomsync(s, time_zone) for s in space_rest if id(s) not in used_space]

    found = {"only_in_outlook": only_outlook, "only_in_roomsync": only_roomsync, "time_differs": differs}
    for kind in found:
        found[kind].sort(key=lambda d: d.sort_key)
    return ParityResult(
        room_count=len(room_left), space_count=len(space_left), matched=matched,
        totals={kind: len(found[kind]) for kind in DIFFERENCE_KINDS},
        **{kind: found[kind][:limit] for kind in DIFFERENCE_KINDS},
        window_start=window_start, window_end=window_end, time_zone=time_zone, scope=scope,
        checked_at=checked_at)


# ---------------------------------------------------------------------------------------------- both sides


def read_room_slots(room_email: str, start: datetime, end: datetime) -> list[RoomSlot]:
    """The room's own calendar in [start, end), every page (Graph errors raise: the caller's job retries)."""
    events = graph_client().iter_calendar_view(room_email, start, end, page_size=PAGE_SIZE)
    return slots_from_events(events)


def read_space_slots(space_id: int, start: datetime, end: datetime) -> list[SpaceSlot]:
    """This space's live occurrences overlapping [start, end) — only this space: a booking of a space that
    shares it ("Board A+B") is not in this room's calendar, it is in its own room's."""
    rows = db.session.execute(
        select(Booking.uid, Occurrence.original_start_utc, Occurrence.start_utc, Occurrence.end_utc, User.email,
               Booking.kind)
        .join(Booking, Booking.id == Occurrence.booking_id)
        .outerjoin(User, User.id == Booking.holder_id)
        .where(Occurrence.space_id == space_id, Occurrence.start_utc < end, Occurrence.end_utc > start)
    )
    return [SpaceSlot(booking_uid=uid, original_start=original, start=s, end=e, holder_email=email, kind=kind)
            for uid, original, s, e, email, kind in rows]


def read_links(room_email: str) -> tuple[dict[str, str], dict[str, str]]:
    """(room event id → booking uid, iCalUId → booking uid) of the room's event links. Links store the room's
    address lower-cased, as `Pair.room_email` does."""
    by_event: dict[str, str] = {}
    by_ical: dict[str, str] = {}
    rows = db.session.execute(select(EventLink.room_event_id, EventLink.ical_uid, EventLink.booking_uid)
                              .where(EventLink.room_email == room_email.lower()))
    for event_id, ical_uid, booking_uid in rows:
        if event_id:
            by_event[event_id] = booking_uid
        if ical_uid:
            by_ical.setdefault(ical_uid, booking_uid)
    return by_event, by_ical


def default_window(tz: ZoneInfo, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Midnight today in the venue's zone, and 1,080 days later."""
    today = to_local(now or now_utc(), tz).date()
    start = local_day_bounds(today, tz)[0]
    return start, start + timedelta(days=HORIZON_DAYS)


def _scope(start: datetime, end: datetime | None, tz: ZoneInfo, today_start: datetime) -> str:
    """How `summary()` names the window: "from today on" for the default one."""
    first = to_local(start, tz)
    if end is None:
        return "from today on" if start == today_start else f"from {first.day} {first:%b %Y} on"
    last = to_local(end - timedelta(microseconds=1), tz)
    return f"from {first.day} {first:%b %Y} to {last.day} {last:%b %Y}"


def audit_pair(pair_id: int, *, start: datetime | None = None, end: datetime | None = None) -> ParityResult:
    pair = db.session.get(Pair, pair_id)
    if pair is None:
        raise LookupError(f"There is no sync pair {pair_id}.")
    venue = db.session.get(Venue, pair.venue_id)
    tz = venue.tz
    default_start, _ = default_window(tz)
    start = ensure_aware(start, "start") if start is not None else default_start
    scope = _scope(start, end, tz, default_start)
    end = ensure_aware(end, "end") if end is not None else start + timedelta(days=HORIZON_DAYS)
    if end <= start:
        raise ValueError("the audit window must end after it starts")
    checked_at = now_utc()
    room = read_room_slots(pair.room_email, start, end)
    space = read_space_slots(pair.space_id, start, end)
    links, ical_links = read_links(pair.room_email)
    return compare(room, space, links, ical_links=ical_links, time_zone=venue.timezone, window_start=start,
                   window_end=end, scope=scope, checked_at=checked_at)


__all__ = ["RoomSlot", "SpaceSlot", "Difference", "ParityResult", "compare", "slots_from_events", "audit_pair",
           "read_room_slots", "read_space_slots", "read_links", "default_window", "DIFFERENCE_KINDS",
           "KIND_LABELS", "MAX_LISTED", "PAGE_SIZE", "HORIZON_DAYS"]
