"""Fast bulk seeding of the benchmark data set: one venue, N spaces, a span of days of bookings.

Public API:
- `seed(spaces, days, seed, today)` → `BenchData`: creates the venue, spaces, users and bookings in the
  current app context's (freshly migrated) database, checks a sample, and returns what the benchmark needs.
- `find_seeded(spaces, days, seed, today)` → `BenchData | None`: the data set an earlier run left behind
  with the same parameters (`--reuse`), or None.
- `verify_sample(bench, sample)` → number of bookings checked; raises `SeedMismatch` if the stored
  occurrence rows of a sampled booking differ from what `operations.occurrence_times` says.
- `count_overlaps()` → occurrences overlapping the previous one on their space (`seed` insists on 0).
- `remove_bookings_after(bench)`: deletes what a benchmark run created on top of the seeded data.
- `series_rule(rng, day)` → (first day, RRULE) of one of the series shapes people use; `Occupancy(spaces, days,
  closures)`: which 15-minute slots are taken (`free`, `take`). Shared with bench/feeds_bench.py.

The full-scale set (200 spaces × 730 days) holds about 500,000 occurrence rows, a fifth of them from series;
smaller runs keep the same density per space and day. Bookings are written with SQLAlchemy Core executemany
(SQLite) or COPY (PostgreSQL), not through `create_booking`, which would take hours for half a million rows.
The rows are nonetheless what the operations would write: series are expanded by
`operations.occurrence_times` itself, occupancy is tracked per 15-minute slot so no two bookings on a space
(or on spaces that share, like "Board A+B" and "Board A") overlap, and `verify_sample` re-checks a sample
through the ORM after the load.
"""

from __future__ import annotations

import json
import random
import re
import time as clock
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace

from sqlalchemy import Table, delete, func, inspect, select, text

from webapp.auth.models import User
from webapp.booking.models import Booking, Occurrence, OccurrenceException, Space, Venue, booking_spaces
from webapp.booking.operations import occurrence_times
from webapp.extensions import db
from webapp.timeutil import localize, now_utc, to_local

# Occurrences per space and day in the full-scale set: 500,000 over 200 spaces × 730 days.
DENSITY = 500_000 / (200 * 730)
SERIES_SHARE = 0.2
OPENS, CLOSES = 7, 22  # venue opening hours, every day
GRID_MINUTES = 15
SLOTS = (CLOSES - OPENS) * 60 // GRID_MINUTES
DURATIONS = (2, 2, 4, 4, 4, 6, 8)  # in grid slots: 30 min to 2 h, one hour most often
COMBINED_EVERY = 10  # the third space of every ten is a "combined" room depending on the two before it
MEMBERS = 60
TIMEZONE = "Europe/London"
TITLES = ("Team sync", "1:1", "Planning", "Interview", "Workshop", "Client call", "Review", "Training", "Stand-up")
VIEWER_EMAIL = "viewer@bench.roomsync.test"
ADMIN_EMAIL = "admin@bench.roomsync.test"
VIEWER_PASSWORD = "bench-password"
CHUNK = 20_000
_MARKER = "Bench venue: {spaces} spaces, {days} days from {first}, seed {seed}"
_MARKER_RE = re.compile(r"^Bench venue: (\d+) spaces, (\d+) days from (\d{4}-\d\d-\d\d), seed (\d+)$")


class SeedMismatch(AssertionError):
    """Stored occurrence rows disagree with `occurrence_times` for a seeded booking."""


@dataclass
class BenchData:
    venue_id: int
    space_ids: list[int]
    combined_space_ids: list[int]
    viewer_id: int
    admin_id: int
    first_day: date
    last_day: date
    last_seeded_booking_id: int
    bookings: int
    series: int
    occurrences: int
    series_occurrences: int
    seed_seconds: float | None = None  # None: reused from an earlier run
    verified: int = 0


# ---------------------------------------------------------------------------------------------- finding


def find_seeded(spaces: int, days: int, seed: int, today: date) -> BenchData | None:
    """The seeded set with these parameters, if the database holds one whose future part is still ahead."""
    if not inspect(db.engine).has_table("venues"):
        return None
    for venue in db.session.scalars(select(Venue)):
        match = _MARKER_RE.match(venue.name)
        if not match or (int(match[1]), int(match[2]), int(match[4])) != (spaces, days, seed):
            continue
        first_day = date.fromisoformat(match[3])
        last_day = first_day + timedelta(days=days - 1)
        if last_day <= today + timedelta(days=1):
            return None
        return _describe(venue, first_day, last_day)
    return None


def _describe(venue: Venue, first_day: date, last_day: date) -> BenchData:
    viewer = db.session.scalar(select(User).where(User.email == VIEWER_EMAIL))
    admin = db.session.scalar(select(User).where(User.email == ADMIN_EMAIL))
    spaces = list(db.session.scalars(select(Space).where(Space.venue_id == venue.id).order_by(Space.id)))
    series_ids = select(Booking.id).where(Booking.venue_id == venue.id, Booking.rrule.is_not(None))
    return BenchData(
        venue_id=venue.id,
        space_ids=[s.id for s in spaces],
        combined_space_ids=[s.id for s in spaces if s.depends_on],
        viewer_id=viewer.id,
        admin_id=admin.id,
        first_day=first_day,
        last_day=last_day,
        last_seeded_booking_id=db.session.scalar(select(func.max(Booking.id))) or 0,
        bookings=db.session.scalar(select(func.count()).select_from(Booking)),
        series=db.session.scalar(select(func.count()).select_from(series_ids.subquery())),
        occurrences=db.session.scalar(select(func.count()).select_from(Occurrence)),
        series_occurrences=db.session.scalar(
            select(func.count()).select_from(Occurrence).where(Occurrence.booking_id.in_(series_ids))
        ),
    )


# ---------------------------------------------------------------------------------------------- planning


@dataclass
class _Planned:
    space: int  # index into the space list
    start: datetime
    end: datetime
    rrule: str | None = None
    live: list | None = None  # series: live OccurrenceTime list
    cancelled: list | None = None  # series: original starts of cancelled occurrences


class Occupancy:
    """Which 15-minute slots of each space are taken, so the seeded bookings never overlap."""

    def __init__(self, spaces: int, days: int, closures: list[list[int]]):
        self.busy = [bytearray(days * SLOTS) for _ in range(spaces)]
        self.closures = closures

    def free(self, space: int, day: int, slot: int, length: int) -> bool:
        first = day * SLOTS + slot
        return all(self.busy[other].find(1, first, first + length) == -1 for other in self.closures[space])

    def take(self, space: int, day: int, slot: int, length: int) -> None:
        first = day * SLOTS + slot
        self.busy[space][first : first + length] = b"\x01" * length


def _closures(spaces: int) -> tuple[list[list[int]], dict[int, tuple[int, int]]]:
    """Conflict closure of each space index, and the combined spaces with the two spaces they depend on."""
    combined = {i: (i - 2, i - 1) for i in range(spaces) if i % COMBINED_EVERY == 2}
    closures = [[i] for i in range(spaces)]
    for room, parts in combined.items():
        for part in parts:
            closures[room].append(part)
            closures[part].append(room)
    return closures, combined


def _slot_of(local: datetime) -> int:
    return (local.hour * 60 + local.minute - OPENS * 60) // GRID_MINUTES


def series_rule(rng: random.Random, day: date) -> tuple[date, str]:
    """A first day and an RRULE of one of the shapes people use (Graph's patternedRecurrence shapes)."""
    shape = rng.random()
    if shape < 0.4:
        return day, f"FREQ=WEEKLY;COUNT={rng.randint(4, 52)}"
    if shape < 0.55:
        return day, f"FREQ=WEEKLY;INTERVAL=2;COUNT={rng.randint(4, 26)}"
    if shape < 0.7:
        monday = day - timedelta(days=day.weekday())
        return monday, f"FREQ=WEEKLY;BYDAY=MO,TH;COUNT={rng.randint(4, 40)}"
    if shape < 0.8:
        return day, f"FREQ=DAILY;COUNT={rng.randint(3, 10)}"
    if shape < 0.9:
        nth = min((day.day - 1) // 7 + 1, 4)
        code = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[day.weekday()]
        first = day.replace(day=1)
        first += timedelta(days=(day.weekday() - first.weekday()) % 7 + 7 * (nth - 1))
        return first, f"FREQ=MONTHLY;BYDAY={nth}{code};COUNT={rng.randint(3, 12)}"
    return day, f"FREQ=WEEKLY;UNTIL={day + timedelta(weeks=rng.randint(3, 30)):%Y%m%d}"


def _plan_series(rng, venue, occupancy, spaces, first_day, days, target) -> list[_Planned]:
    tz = venue.tz
    last_day = first_day + timedelta(days=days - 1)
    planned: list[_Planned] = []
    placed = attempts = 0
    while placed < target and attempts < target * 20:
        attempts += 1
        space = rng.randrange(spaces)
        length = rng.choice(DURATIONS)
        slot = rng.randrange(SLOTS - length + 1)
        day, rule = series_rule(rng, first_day + timedelta(days=rng.randrange(days)))
        if day < first_day:
            continue
        first_local = datetime.combine(day, time(OPENS)) + timedelta(minutes=slot * GRID_MINUTES)
        start = localize(first_local, tz)
        end = localize(first_local + timedelta(minutes=length * GRID_MINUTES), tz)
        # occurrence_times reads only these attributes; a plain object keeps the probe out of the session.
        probe = SimpleNamespace(rrule=rule, start_utc=start, end_utc=end, venue=venue, exceptions=[])
        times = occurrence_times(probe)
        inside = [o for o in times if to_local(o.start, tz).date() <= last_day]
        if len(inside) < 2:
            continue
        if len(inside) < len(times):  # shorten the series so it ends inside the seeded span
            probe.rrule = re.sub(r"(COUNT|UNTIL)=\w+", f"COUNT={len(inside)}", rule)
            times = occurrence_times(probe)
        cells = [((to_local(o.start, tz).date() - first_day).days, _slot_of(to_local(o.start, tz))) for o in times]
        if not all(occupancy.free(space, d, s, length) for d, s in cells):
            continue
        cancelled = []
        if rng.random() < 0.1:  # some series have one occurrence cancelled, as real ones do
            gone = times[rng.randrange(len(times))].original_start
            probe.exceptions = [SimpleNamespace(original_start_utc=gone, cancelled=True, start_utc=None, end_utc=None, title=None)]
            cancelled = [gone]
            times = occurrence_times(probe)
        live = [o for o in times if not o.cancelled]
        for o, (d, s) in zip(times, cells):
            if not o.cancelled:
                occupancy.take(space, d, s, length)
        planned.append(_Planned(space, start, end, probe.rrule, live, cancelled))
        placed += len(live)
    return planned


def _plan_singles(rng, venue, occupancy, spaces, first_day, days, target) -> list[_Planned]:
    tz = venue.tz
    planned: list[_Planned] = []
    attempts = 0
    while len(planned) < target and attempts < target * 4:
        attempts += 1
        space, day = rng.randrange(spaces), rng.randrange(days)
        length = rng.choice(DURATIONS)
        slot = rng.randrange(SLOTS - length + 1)
        if not occupancy.free(space, day, slot, length):
            continue
        occupancy.take(space, day, slot, length)
        local = datetime.combine(first_day + timedelta(days=day), time(OPENS)) + timedelta(minutes=slot * GRID_MINUTES)
        planned.append(_Planned(space, localize(local, tz), localize(local + timedelta(minutes=length * GRID_MINUTES), tz)))
    return planned


# ---------------------------------------------------------------------------------------------- writing


class _BulkWriter:
    """Inserts row dicts: Core executemany on SQLite, COPY on PostgreSQL (same values, same storage)."""

    def __init__(self, connection):
        self.connection = connection
        self.copy = connection.dialect.name == "postgresql"

    def write(self, table: Table, rows: list[dict]) -> None:
        if not rows:
            return
        if not self.copy:
            self.connection.execute(table.insert(), rows)
            return
        columns = list(rows[0])
        json_columns = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with self.connection.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([_copy_value(row[c], c in json_columns) for c in columns])


def _copy_value(value, is_json: bool):
    if is_json:
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)  # UTCDateTime stores naive UTC
    return value


def _booking_row(booking_id: int, plan: _Planned, venue_id: int, rng: random.Random, members: list[tuple[int, str]], admin_id: int, now: datetime) -> dict:
    internal = rng.random() < 0.02
    holder_id = None if internal else rng.choice(members)[0]
    attendees = [email for _, email in rng.sample(members, 2)] if rng.random() < 0.2 else []
    return {
        "id": booking_id,
        "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "venue_id": venue_id,
        "holder_id": holder_id,
        "kind": "internal" if internal else "regular",
        "title": f"{rng.choice(TITLES)} {booking_id}",
        "description": "",
        "private": rng.random() < 0.1,
        "start_utc": plan.start,
        "end_utc": plan.end,
        "rrule": plan.rrule,
        "attendees": attendees,
        "custom_fields": {},
        "origin": "roomsync",
        "cancelled_at": None,
        "sequence": 0,
        "created_at": now,
        "updated_at": now,
        "created_by_id": holder_id or admin_id,
        "updated_by_id": holder_id or admin_id,
    }


def _write_bookings(plans: list[_Planned], space_ids: list[int], venue_id: int, rng, members, admin_id) -> None:
    """Load the planned bookings on a connection of its own; the session must hold no transaction (on
    SQLite its read snapshot would not see the rows), so callers pass plain ids, not ORM objects."""
    now = now_utc()
    next_id = (db.session.scalar(select(func.max(Booking.id))) or 0) + 1
    db.session.commit()
    with db.engine.begin() as connection:
        writer = _BulkWriter(connection)
        for first in range(0, len(plans), CHUNK):
            bookings, links, occurrences, exceptions = [], [], [], []
            for offset, plan in enumerate(plans[first : first + CHUNK]):
                booking_id = next_id + first + offset
                space_id = space_ids[plan.space]
                bookings.append(_booking_row(booking_id, plan, venue_id, rng, members, admin_id, now))
                links.append({"booking_id": booking_id, "space_id": space_id})
                for o in plan.live or [SimpleNamespace(start=plan.start, end=plan.end, original_start=plan.start)]:
                    occurrences.append(
                        {"booking_id": booking_id, "space_id": space_id, "start_utc": o.start, "end_utc": o.end, "original_start_utc": o.original_start}
                    )
                for original in plan.cancelled or []:
                    exceptions.append(
                        {"booking_id": booking_id, "original_start_utc": original, "cancelled": True, "start_utc": None, "end_utc": None, "title": None, "updated_at": now}
                    )
            writer.write(Booking.__table__, bookings)
            writer.write(booking_spaces, links)
            writer.write(Occurrence.__table__, occurrences)
            writer.write(OccurrenceException.__table__, exceptions)
        if connection.dialect.name == "postgresql":
            # Ids were given explicitly: move the sequence past them so create_booking gets fresh ones.
            connection.execute(text("SELECT setval(pg_get_serial_sequence('bookings', 'id'), (SELECT max(id) FROM bookings))"))
    if db.engine.dialect.name == "postgresql":
        # A bulk load leaves the planner without statistics until autovacuum runs; a live database has them.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))


def seed(spaces: int, days: int, seed: int, today: date) -> BenchData:
    started = clock.perf_counter()
    rng = random.Random(seed)
    first_day = today - timedelta(days=days // 2)
    venue = Venue(
        name=_MARKER.format(spaces=spaces, days=days, first=first_day.isoformat(), seed=seed),
        timezone=TIMEZONE,
        granularity_minutes=GRID_MINUTES,
        booking_window_days=days,
        max_duration_minutes=12 * 60,
        opening_hours={d: [f"{OPENS:02d}:00", f"{CLOSES:02d}:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )
    admin = User(email=ADMIN_EMAIL, first_name="Bench", last_name="Admin", role="admin")
    viewer = User(email=VIEWER_EMAIL, first_name="Bench", last_name="Viewer")
    viewer.set_password(VIEWER_PASSWORD)
    members = [viewer] + [User(email=f"member{n}@bench.roomsync.test", first_name="Member", last_name=str(n)) for n in range(1, MEMBERS)]
    closures, combined = _closures(spaces)
    space_rows = [
        Space(
            venue=venue,
            name=f"Board {i - 1}+{i}" if i in combined else (f"Desk {i + 1}" if i % 4 == 3 else f"Room {i + 1}"),
            kind="desk" if i % 4 == 3 and i not in combined else "room",
            capacity=1 if i % 4 == 3 else rng.choice((4, 6, 8, 12)),
            position=i,
        )
        for i in range(spaces)
    ]
    for room, (a, b) in combined.items():
        space_rows[room].depends_on = [space_rows[a], space_rows[b]]
    db.session.add_all([venue, admin, *members, *space_rows])
    db.session.commit()

    target = round(DENSITY * spaces * days)
    occupancy = Occupancy(spaces, days, closures)
    plans = _plan_series(rng, venue, occupancy, spaces, first_day, days, round(target * SERIES_SHARE))
    series_occurrences = sum(len(p.live) for p in plans)
    plans += _plan_singles(rng, venue, occupancy, spaces, first_day, days, target - series_occurrences)
    members_ids = [(m.id, m.email) for m in members]
    _write_bookings(plans, [s.id for s in space_rows], venue.id, rng, members_ids, admin.id)
    db.session.expire_all()

    bench = _describe(venue, first_day, first_day + timedelta(days=days - 1))
    bench.verified = verify_sample(bench, sample=60, rng=rng)
    overlaps = count_overlaps()
    if overlaps:
        raise SeedMismatch(f"{overlaps} seeded occurrences overlap another on the same space")
    bench.seed_seconds = clock.perf_counter() - started
    return bench


# ---------------------------------------------------------------------------------------------- checking


def verify_sample(bench: BenchData, sample: int, rng: random.Random | None = None) -> int:
    """Compare the stored occurrence rows of up to `sample` series and `sample` single bookings with
    `occurrence_times` of the booking loaded through the ORM. Returns how many bookings were checked."""
    rng = rng or random.Random(0)
    checked = 0
    for series in (True, False):
        condition = Booking.rrule.is_not(None) if series else Booking.rrule.is_(None)
        ids = list(db.session.scalars(select(Booking.id).where(Booking.venue_id == bench.venue_id, condition)))
        for booking_id in rng.sample(ids, min(sample, len(ids))):
            booking = db.session.get(Booking, booking_id)
            expected = {
                (space.id, o.start, o.end, o.original_start)
                for o in occurrence_times(booking)
                if not o.cancelled
                for space in booking.spaces
            }
            stored = {
                (row.space_id, row.start_utc, row.end_utc, row.original_start_utc)
                for row in db.session.scalars(select(Occurrence).where(Occurrence.booking_id == booking_id))
            }
            if expected != stored or not expected:
                raise SeedMismatch(f"booking {booking_id}: stored {len(stored)} occurrence rows, occurrence_times gives {len(expected)}")
            checked += 1
    db.session.expire_all()
    return checked


def count_overlaps() -> int:
    """Occurrences that start before the previous one on the same space ends (0 for a sound data set)."""
    previous_end = func.lag(Occurrence.end_utc).over(partition_by=Occurrence.space_id, order_by=Occurrence.start_utc)
    ordered = select(Occurrence.start_utc, previous_end.label("previous_end")).subquery()
    return db.session.scalar(select(func.count()).select_from(ordered).where(ordered.c.start_utc < ordered.c.previous_end))


def remove_bookings_after(bench: BenchData) -> int:
    """Delete the bookings a run created (ids above the seeded ones), so a reused set stays as seeded."""
    newer = select(Booking.id).where(Booking.id > bench.last_seeded_booking_id)
    removed = db.session.scalar(select(func.count()).select_from(newer.subquery()))
    db.session.execute(delete(Occurrence).where(Occurrence.booking_id.in_(newer)))
    db.session.execute(delete(OccurrenceException).where(OccurrenceException.booking_id.in_(newer)))
    db.session.execute(delete(booking_spaces).where(booking_spaces.c.booking_id.in_(newer)))
    db.session.execute(delete(Booking).where(Booking.id > bench.last_seeded_booking_id))
    db.session.commit()
    return removed
