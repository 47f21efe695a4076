"""What a panel or the lobby board shows, read from the database (the status rule itself is `kiosk.status`).

Public API:
- `related_ids(space_id)` → the space and the spaces whose bookings occupy it ("Board room A+B" for "Board
  room A"), from a per-process cache of the dependency graph (`DEPENDENCY_TTL` seconds: dependencies change
  rarely and the polled path must stay at one or two queries). It is the tablets' one copy of the graph: the
  panel's render passes it on to `kiosk.actions` rather than have them reload the graph (`booking.operations`'
  `space_closure` reads it afresh, as booking writes must). Every request path that uses it (polls, renders)
  may lag a dependency change by `DEPENDENCY_TTL`; the booking operations themselves never do.
- `day_items(venue, space_ids, day)` → `{space_id: [Item]}` for the local `day`: the occurrences on each space
  and on the spaces that share with it, private titles masked, holders' names, deduplicated per occurrence.
- `panel_marker(tz, space_id, day)` → `PanelMarker` / `lobby_marker(venue, day)`: a cheap fingerprint (one
  query) of what the fragment shows: the day's occurrences on the spaces (count, sum of row ids, latest booking
  change) and, for a panel, the space's check-ins and the version of its photo (`SpacePhoto.etag`, which the
  fragment carries along: `PanelMarker.photo`). Occurrence rows are rebuilt on every booking change (new row
  ids), bookings carry `updated_at` and `sequence`, so any change of a booking touching the day changes the
  marker. The panel's runs on every poll of every tablet: its statement is built once, with bound parameters
  (as are `day_items`' statements: building a select costs more than SQLAlchemy's cached compilation).
- `venue_fingerprint(venue)`: the venue settings the fragments depend on (`venue`: a `Venue`, or the row of
  `devices.poll`, which has the same names).
- `etag(*parts)` → a strong ETag value (hex digest).
- `timeline(items, hours, day, tz, now)` → `Timeline` (percent positions for the day bar).
- `qr_svg(url)` → inline SVG of a QR code (segno), cached per URL.
"""

from __future__ import annotations

import hashlib
import json
import time as monotonic
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple

from markupsafe import Markup
from sqlalchemy import bindparam, func, select

from ..auth.models import User
from ..booking.models import Booking, Occurrence, OccurrenceException, Space, SpacePhoto
from ..booking.operations import DependencyGraph
from ..booking.privacy import PRIVATE_TITLE
from ..booking.rules import HARD_MAX_DURATION
from ..extensions import db
from ..timeutil import localize, to_local
from .checkins import CheckIn
from .status import Item, day_bounds

DEPENDENCY_TTL = 30.0
_graph_cache: dict[str, tuple[float, dict[int, set[int]]]] = {}


def _blockers() -> dict[int, set[int]]:
    key = str(db.engine.url)
    cached = _graph_cache.get(key)
    now = monotonic.monotonic()
    if cached is None or now - cached[0] > DEPENDENCY_TTL:
        cached = _graph_cache[key] = (now, DependencyGraph.load().blockers())
    return cached[1]


def clear_cache() -> None:
    _graph_cache.clear()


def related_ids(space_id: int) -> list[int]:
    return sorted({space_id} | _blockers().get(space_id, set()))


def _overlap(start: datetime, end: datetime):
    return (Occurrence.start_utc < end, Occurrence.start_utc >= start - HARD_MAX_DURATION, Occurrence.end_utc > start)


def _day_statements():
    """`day_items`' two statements, on the tables (plain rows: no ORM machinery on a path every tablet takes),
    with bound parameters: `space_ids`, `start`, `end`, `window_start` (= start - HARD_MAX_DURATION, as in
    `_overlap`); `booking_ids`."""
    o, b, s, u, x = (Occurrence.__table__, Booking.__table__, Space.__table__, User.__table__,
                     OccurrenceException.__table__)
    rows = (
        select(o.c.space_id, o.c.booking_id, o.c.start_utc, o.c.end_utc, o.c.original_start_utc, b.c.title,
               b.c.private, b.c.kind, b.c.rrule, u.c.first_name, u.c.last_name, u.c.email, s.c.name)
        .select_from(o.join(b, b.c.id == o.c.booking_id).join(s, s.c.id == o.c.space_id)
                     .outerjoin(u, u.c.id == b.c.holder_id))
        .where(o.c.space_id.in_(bindparam("space_ids", expanding=True)), o.c.start_utc < bindparam("end"),
               o.c.start_utc >= bindparam("window_start"), o.c.end_utc > bindparam("start"))
        .order_by(o.c.start_utc, o.c.space_id)
    )
    retitled = (select(x.c.booking_id, x.c.original_start_utc, x.c.title)
                .where(x.c.booking_id.in_(bindparam("booking_ids", expanding=True)), x.c.title.is_not(None)))
    return rows, retitled


_DAY_ROWS, _RETITLED = _day_statements()


def day_items(venue, space_ids, day: date) -> dict[int, list[Item]]:
    tz = venue.tz
    start, end = day_bounds(day, tz)
    space_ids = list(space_ids)
    blockers = _blockers()
    wanted = {sid: {sid} | blockers.get(sid, set()) for sid in space_ids}
    all_ids = set().union(*wanted.values()) if wanted else set()
    if not all_ids:
        return {}
    rows = db.session.execute(_DAY_ROWS, {"space_ids": sorted(all_ids), "start": start, "end": end,
                                          "window_start": start - HARD_MAX_DURATION}).all()
    series = {r.booking_id for r in rows if r.rrule}
    overrides = {}
    if series:
        overrides = {(b, s): t for b, s, t in db.session.execute(_RETITLED, {"booking_ids": sorted(series)})}
    result: dict[int, list[Item]] = {}
    for sid, ids in wanted.items():
        seen: dict[tuple[int, datetime], Item] = {}
        for r in rows:
            if r.space_id not in ids:
                continue
            key = (r.booking_id, r.original_start_utc)
            if key in seen and (seen[key].via == "" or r.space_id != sid):
                continue
            if r.private:
                title = PRIVATE_TITLE
            else:
                title = overrides.get(key) or r.title or ("Walk-in" if r.kind == "internal" else "Booked")
            holder = f"{r.first_name or ''} {r.last_name or ''}".strip() or (r.email or "")
            seen[key] = Item(r.start_utc, r.end_utc, title, holder, bool(r.private), r.booking_id,
                             r.original_start_utc, r.kind, via="" if r.space_id == sid else r.name)
        result[sid] = sorted(seen.values(), key=lambda i: (i.start, i.end))
    return result


class PanelMarker(NamedTuple):
    space_ids: tuple[int, ...]
    occurrences: int
    occurrence_id_sum: int
    last_change: datetime | None
    sequences: int
    checkins: int
    photo: str | None  # the space photo's version (`SpacePhoto.etag`), None when it has none to show


def _panel_marker_statement():
    occurrences, bookings, checkins = Occurrence.__table__, Booking.__table__, CheckIn.__table__
    day_start, day_end, window_start = bindparam("day_start"), bindparam("day_end"), bindparam("window_start")
    space_id, photos = bindparam("space_id"), SpacePhoto.__table__
    checked_in = select(func.count(checkins.c.id) * 1000003 + func.coalesce(func.max(checkins.c.id), 0)).where(
        checkins.c.space_id == space_id, checkins.c.occurrence_start >= window_start,
        checkins.c.occurrence_start < day_end,
    ).scalar_subquery()
    photo = select(photos.c.etag).where(photos.c.space_id == space_id).scalar_subquery()  # by primary key
    return (
        select(func.count(occurrences.c.id), func.coalesce(func.sum(occurrences.c.id), 0),
               func.max(bookings.c.updated_at), func.coalesce(func.sum(bookings.c.sequence), 0), checked_in, photo)
        .select_from(occurrences.join(bookings, bookings.c.id == occurrences.c.booking_id))
        # `_overlap`, as plain columns: starts before the day ends, ends after it begins (the lower bound on the
        # start lets the (space_id, start_utc, end_utc) index narrow the scan).
        .where(occurrences.c.space_id.in_(bindparam("space_ids", expanding=True)), occurrences.c.start_utc < day_end,
               occurrences.c.start_utc >= window_start, occurrences.c.end_utc > day_start)
    )


_PANEL_MARKER = _panel_marker_statement()


def panel_marker(tz, space_id: int, day: date) -> PanelMarker:
    start, end = day_bounds(day, tz)
    ids = related_ids(space_id)
    row = db.session.execute(_PANEL_MARKER, {
        "space_ids": ids, "space_id": space_id, "day_start": start, "day_end": end,
        "window_start": start - HARD_MAX_DURATION,
    }).one()
    return PanelMarker(tuple(ids), *row)


def lobby_marker(venue, day: date) -> tuple:
    start, end = day_bounds(day, venue.tz)
    spaces = select(func.count(Space.id) * 1000003 + func.coalesce(func.sum(Space.capacity * 31 + Space.position), 0)).where(
        Space.venue_id == venue.id, Space.active.is_(True)
    ).scalar_subquery()
    row = db.session.execute(
        select(func.count(Occurrence.id), func.coalesce(func.sum(Occurrence.id), 0), func.max(Booking.updated_at),
               func.coalesce(func.sum(Booking.sequence), 0), spaces)
        .select_from(Occurrence).join(Booking, Booking.id == Occurrence.booking_id)
        .where(Booking.venue_id == venue.id, *_overlap(start, end))
    ).one()
    return tuple(row)


def venue_fingerprint(venue) -> tuple:
    return (
        venue.name, venue.timezone, json.dumps(venue.opening_hours or {}, sort_keys=True), venue.granularity_minutes,
        venue.max_duration_minutes, venue.allow_overnight,
        getattr(venue, "kiosk_soon_minutes", 10), getattr(venue, "kiosk_poll_seconds", 10),
        getattr(venue, "kiosk_identify", "device"), bool(getattr(venue, "kiosk_pin_hash", None)),
        getattr(venue, "checkin_required", False), getattr(venue, "checkin_opens_minutes", 10),
        getattr(venue, "checkin_release_minutes", 10),
    )


def etag(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------- display

FALLBACK_HOURS = (time(7), time(20))


@dataclass(frozen=True)
class Bar:
    left: float
    width: float
    item: Item


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    now: float | None  # percent, None when now is outside the shown range


def timeline(items, hours, day: date, tz, now: datetime) -> Timeline:
    """The day bar: from opening to closing (07:00–20:00 on a closed day) widened to whole hours and to any
    item of the day, so nothing is hidden."""
    day_start, day_end = day_bounds(day, tz)
    if hours is not None:
        start, end = hours
    else:
        start = localize(datetime.combine(day, FALLBACK_HOURS[0]), tz)
        end = localize(datetime.combine(day, FALLBACK_HOURS[1]), tz)
    for item in items:
        start, end = min(start, max(item.start, day_start)), max(end, min(item.end, day_end))
    local_start = to_local(start, tz).replace(minute=0, second=0, microsecond=0)
    start = max(day_start, local_start.astimezone(start.tzinfo))
    if to_local(end, tz).minute or to_local(end, tz).second:
        end = min(day_end, end + timedelta(minutes=60 - to_local(end, tz).minute))
    span = (end - start).total_seconds() or 1.0

    def pct(value: datetime) -> float:
        return round(max(0.0, min(100.0, (value - start).total_seconds() / span * 100)), 3)

    bars = [Bar(pct(i.start), round(pct(i.end) - pct(i.start), 3), i) for i in items if i.end > start and i.start < end]
    ticks = []
    tick = start
    step = timedelta(hours=1 if span <= 14 * 3600 else 2)
    while tick <= end:
        ticks.append((pct(tick), f"{to_local(tick, tz):%H}"))
        tick += step
    return Timeline(bars, ticks, pct(now) if start <= now < end else None)


@lru_cache(maxsize=512)
def qr_svg(url: str) -> Markup:
    import segno

    return Markup(segno.make(url, error="m").svg_inline(scale=4, dark="#000", light="#fff", title="QR code"))
