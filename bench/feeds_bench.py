"""iCalendar feed benchmark: `python bench/feeds_bench.py [options]` (`--help`; `make bench` runs it).

Seeds (or, with `--reuse`, finds) one venue whose feed space holds `--years` years of bookings — about
`--occurrences` occurrences (5,000 by default), a third of them from series — through the real booking
operations: `create_booking` for every booking, then the edits real series go through (`cancel_booking` of one
occurrence, `update_booking` moving or retitling one occurrence, "this and following" cut-offs), so SEQUENCE,
LAST-MODIFIED, EXDATEs and RECURRENCE-ID overrides are what production writes. Two thirds of the span lie before
today, one third ahead; the app's feed window (`FEED_PAST_DAYS` / `FEED_FUTURE_DAYS`) is set to cover the whole
span, so the feed carries every occurrence (the default window, 30 days back and a year ahead, carries about a
third of them). Private bookings, attendees, Teams links, descriptions, non-ASCII names, bookings of two spaces
and cancelled single bookings are mixed in.

Then it measures, through the real code (Flask test client, one signed feed URL, no sign-in):

- the full feed: `GET /feeds/<token>.ics` answered 200 with the body built from the database (the process's
  body cache emptied before each request), plain and with `Accept-Encoding: gzip`;
- where its time goes: `data.feed_calendar` (the queries and the events) and `ical.build_calendar` (the text)
  called directly;
- the 304 path: the same request with `If-None-Match` (the ETag) and with `If-Modified-Since` only;
- a cached body: the 200 a subscriber gets while the feed's version has not changed (each subscriber of a
  feed has its own URL: after a change every one of them fetches the new body, which is built once).

Before measuring, the feed is parsed with `icalendar` and expanded with `recurring-ical-events` over the window:
its occurrences must equal the space's occurrence rows exactly (else the run stops). Prints a Markdown table
(samples, best, median, p95, max in ms, the target, pass/FAIL on p95) and the CPU time per sample, then writes
it to `bench/results/feeds-<db>-<timestamp>.md`. Targets: < 100 ms for the full feed, < 5 ms for a 304.

Options: `--db sqlite|postgresql` (default: DATABASE_URL if set, else a SQLite file under `--results`;
PostgreSQL: DATABASE_URL if it is a PostgreSQL URL, else postgresql://postgres@127.0.0.1/roomsync_feeds_bench,
created if missing — its schema is dropped and rebuilt), `--occurrences`, `--years`, `--samples` (full-feed
requests), `--conditional-samples` (304 requests), `--reuse`, `--seed`, `--profile`, `--strict` (exit 1 on a
missed target), `--quick` (the smoke test's size), `--results DIR`.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import re
import statistics
import sys
import time as clock
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import func, inspect, select, text  # noqa: E402

from bench.report import Profiles, cpu_table, ms, write_results  # noqa: E402
from bench.report import database_server, database_url, fill_size_defaults, is_postgresql  # noqa: E402
from bench.run import Measurement, _timed, ensure_postgresql_database, reset_schema  # noqa: E402
from bench.seed import CLOSES, DURATIONS, GRID_MINUTES, OPENS, SLOTS, TITLES, Occupancy, series_rule  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.auth.models import User  # noqa: E402
from webapp.booking.models import Booking, Occurrence, Space, Venue  # noqa: E402
from webapp.booking.operations import (  # noqa: E402
    BookingInput,
    cancel_booking,
    create_booking,
    expand,
    input_from_booking,
    update_booking,
)
from webapp.extensions import db  # noqa: E402
from webapp.feeds import data as feed_data  # noqa: E402
from webapp.feeds import ical, tokens  # noqa: E402
from webapp.timeutil import localize, to_local  # noqa: E402

DEFAULT_POSTGRESQL_URL = "postgresql://postgres@127.0.0.1/roomsync_feeds_bench"
RESULTS = REPO / "bench" / "results"
TARGETS_MS = {"full": 100.0, "conditional": 5.0}
WARM_UP = 3
QUICK = {"occurrences": 150, "years": 1, "samples": 4, "conditional_samples": 8}
FULL = {"occurrences": 5000, "years": 3, "samples": 40, "conditional_samples": 300}
SERIES_SHARE = 1 / 3
PAST_SHARE = 2 / 3  # of the span, before today
TIMEZONE = "Europe/London"
FEED_SPACE = "Board room A"
OTHER_SPACES = ("Board room B", "Salle « Été »", "Atrium")
FIRST_NAMES = ("José", "Zoë", "Priya", "Wei", "Søren", "Aoife", "Małgorzata", "Kwame", "Léa", "Yūki")
LAST_NAMES = ("Núñez", "O'Brien", "Shah", "Li", "Kierkegaard", "Ní Bhriain", "Wójcik", "Mensah", "Dubois, Jr.", "Satō")
VIEWER_EMAIL = "viewer@feeds-bench.roomsync.test"
ADMIN_EMAIL = "admin@feeds-bench.roomsync.test"
TEAMS_LINK = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{n}%40thread.v2/0?context=%7b%22Tid%22%3a%22bench%22%7d"
_MARKER = "Feeds bench: {occurrences} occurrences, {days} days from {first}, seed {seed}"
_MARKER_RE = re.compile(r"^Feeds bench: (\d+) occurrences, (\d+) days from (\d{4}-\d\d-\d\d), seed (\d+)$")


@dataclass
class FeedBench:
    venue_id: int
    space_id: int
    viewer_id: int
    first_day: date
    last_day: date
    past_days: int  # the feed window that covers the span
    future_days: int
    bookings: int  # live bookings on the feed space
    series: int
    occurrences: int  # live occurrences on the feed space
    series_occurrences: int
    exceptions: int  # cancelled, moved or retitled occurrences of its series
    seed_seconds: float | None = None  # None: reused


# ---------------------------------------------------------------------------------------------- data


def _span(days: int, today: date) -> tuple[date, date]:
    first = today - timedelta(days=round(days * PAST_SHARE))
    return first, first + timedelta(days=days - 1)


def _describe(venue: Venue, first_day: date, last_day: date, today: date) -> FeedBench:
    space = db.session.scalar(select(Space).where(Space.venue_id == venue.id, Space.name == FEED_SPACE))
    viewer = db.session.scalar(select(User).where(User.email == VIEWER_EMAIL))
    on_space = select(Occurrence).where(Occurrence.space_id == space.id).subquery()
    series_ids = select(Booking.id).where(Booking.rrule.is_not(None))
    return FeedBench(
        venue_id=venue.id,
        space_id=space.id,
        viewer_id=viewer.id,
        first_day=first_day,
        last_day=last_day,
        past_days=(today - first_day).days,
        future_days=(last_day - today).days,
        bookings=db.session.scalar(select(func.count(func.distinct(on_space.c.booking_id)))),
        series=db.session.scalar(
            select(func.count(func.distinct(on_space.c.booking_id))).where(on_space.c.booking_id.in_(series_ids))),
        occurrences=db.session.scalar(select(func.count()).select_from(on_space)),
        series_occurrences=db.session.scalar(
            select(func.count()).select_from(on_space).where(on_space.c.booking_id.in_(series_ids))),
        exceptions=db.session.scalar(text("SELECT count(*) FROM occurrence_exceptions")),
    )


def find_seeded(occurrences: int, days: int, seed: int, today: date) -> FeedBench | None:
    """The data set an earlier run left with these parameters, if its span still reaches past tomorrow."""
    if not inspect(db.engine).has_table("venues"):
        return None
    for venue in db.session.scalars(select(Venue)):
        match = _MARKER_RE.match(venue.name)
        if not match or (int(match[1]), int(match[2]), int(match[4])) != (occurrences, days, seed):
            continue
        first_day = date.fromisoformat(match[3])
        last_day = first_day + timedelta(days=days - 1)
        if last_day <= today + timedelta(days=1) or first_day > today:
            return None
        return _describe(venue, first_day, last_day, today)
    return None


def _local(day: date, slot: int, tz) -> datetime:
    return localize(datetime.combine(day, time(OPENS)) + timedelta(minutes=slot * GRID_MINUTES), tz)


def _slot_of(value: datetime, tz) -> tuple[date, int]:
    local = to_local(value, tz)
    return local.date(), (local.hour * 60 + local.minute - OPENS * 60) // GRID_MINUTES


def _details(rng: random.Random, members: list[User], n: int) -> dict:
    """Title, privacy, attendees, description, Teams meeting: mixed as a real room's bookings are."""
    fields = {"title": f"{rng.choice(TITLES)} {n}", "private": rng.random() < 0.08}
    if rng.random() < 0.25:
        fields["attendees"] = sorted({m.email for m in rng.sample(members, rng.randint(1, 4))} | {"guest@example.org"})
    if rng.random() < 0.15:
        fields["description"] = f"Agenda; notes, links:\n1. Wins ☕\n2. Blockers — {n}\n" + "more text " * rng.randint(0, 15)
    fields["online_meeting"] = rng.random() < 0.1
    return fields


def seed(occurrences: int, days: int, seed_value: int, today: date) -> FeedBench:
    """Venue, spaces, people and `occurrences` occurrences on the feed space over `days` days, through the
    booking operations; then the series' edits (cancelled, moved and retitled occurrences, cut-offs)."""
    started = clock.perf_counter()
    rng = random.Random(seed_value)
    first_day, last_day = _span(days, today)
    venue = Venue(
        name=_MARKER.format(occurrences=occurrences, days=days, first=first_day.isoformat(), seed=seed_value),
        timezone=TIMEZONE,
        granularity_minutes=GRID_MINUTES,
        booking_window_days=days,
        max_duration_minutes=12 * 60,
        opening_hours=dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), [f"{OPENS:02d}:00", f"{CLOSES:02d}:00"]),
    )
    spaces = [Space(venue=venue, name=name, capacity=8, position=i) for i, name in enumerate((FEED_SPACE, *OTHER_SPACES))]
    admin = User(email=ADMIN_EMAIL, first_name="Bench", last_name="Admin", role="admin")
    viewer = User(email=VIEWER_EMAIL, first_name="Bench", last_name="Viewer")
    members = [
        User(email=f"member{n}@feeds-bench.roomsync.test", first_name=FIRST_NAMES[n % 10], last_name=LAST_NAMES[n // 10 % 10])
        for n in range(40)
    ]
    db.session.add_all([venue, *spaces, admin, viewer, *members])
    db.session.commit()
    tz = venue.tz
    feed_space, others = spaces[0], spaces[1:]
    occupancy = Occupancy(1, days, [[0]])
    n = 0

    def make(start, end, rrule=None, **extra) -> Booking:
        nonlocal n
        n += 1
        holder = rng.choice(members)
        fields = _details(rng, members, n)
        fields.update(extra)
        space_ids = [feed_space.id] + ([rng.choice(others).id] if rng.random() < 0.05 else [])
        data = BookingInput(space_ids=space_ids, start=start, end=end, rrule=rrule, **fields)
        if data.kind == "internal":
            return create_booking(venue, data, actor=admin, bypass_rules=True)
        data.holder_id = holder.id
        return create_booking(venue, data, actor=holder, bypass_rules=True)

    # Series: a third of the occurrences, in the shapes people use, each checked free slot by slot.
    series: list[Booking] = []
    placed = attempts = 0
    while placed < occurrences * SERIES_SHARE and attempts < occurrences * 50:
        attempts += 1
        length = rng.choice(DURATIONS)
        slot = rng.randrange(SLOTS - length + 1)
        day, rule = series_rule(rng, first_day + timedelta(days=rng.randrange(days)))
        if day < first_day:
            continue
        start, end = _local(day, slot, tz), _local(day, slot + length, tz)
        times = expand(tz, start, end, rule)
        inside = [o for o in times if to_local(o.start, tz).date() <= last_day]
        if len(inside) < 2:
            continue
        if len(inside) < len(times):  # end the series inside the span
            rule = re.sub(r"(COUNT|UNTIL)=\w+", f"COUNT={len(inside)}", rule)
            times = expand(tz, start, end, rule)
        cells = [((to_local(o.start, tz).date() - first_day).days, slot) for o in times]
        if not all(occupancy.free(0, d, s, length) for d, s in cells):
            continue
        for d, s in cells:
            occupancy.take(0, d, s, length)
        series.append(make(start, end, rule))
        placed += len(times)

    # Singles fill the rest: 2 % internal blocks, 3 % cancelled later (they must not show).
    singles: list[Booking] = []
    attempts = 0
    while placed + len(singles) < occurrences and attempts < occurrences * 50:
        attempts += 1
        length = rng.choice(DURATIONS)
        day_index, slot = rng.randrange(days), rng.randrange(SLOTS - length + 1)
        if not occupancy.free(0, day_index, slot, length):
            continue
        occupancy.take(0, day_index, slot, length)
        day = first_day + timedelta(days=day_index)
        extra = {"kind": "internal", "title": "", "private": False} if rng.random() < 0.02 else {}
        singles.append(make(_local(day, slot, tz), _local(day, slot + length, tz), **extra))

    # What happens to real bookings afterwards, through the same operations.
    for booking in series:
        holder = db.session.get(User, booking.holder_id)
        times = expand(tz, booking.start_utc, booking.end_utc, booking.rrule)
        if rng.random() < 0.2:  # one occurrence cancelled
            cancel_booking(booking, actor=holder, scope="this", occurrence_start=rng.choice(times[1:]).original_start)
        if rng.random() < 0.15:  # one occurrence moved to a free slot the same day
            occ = rng.choice(times[1:])
            day, slot = _slot_of(occ.start, tz)
            length = round((occ.end - occ.start).total_seconds() / 60 / GRID_MINUTES)
            day_index = (day - first_day).days
            free = [s for s in range(SLOTS - length + 1) if occupancy.free(0, day_index, s, length)]
            current = next((o for o in expand(tz, booking.start_utc, booking.end_utc, booking.rrule, booking.exceptions)
                            if o.original_start == occ.original_start and not o.cancelled), None)
            if free and current is not None:
                new_slot = rng.choice(free)
                occupancy.take(0, day_index, new_slot, length)
                data = input_from_booking(booking, occ.original_start)
                data.start, data.end = _local(day, new_slot, tz), _local(day, new_slot + length, tz)
                update_booking(booking, data, actor=holder, scope="this", occurrence_start=occ.original_start,
                               bypass_rules=True)
        if rng.random() < 0.05:  # one occurrence retitled
            occ = rng.choice(times)
            now = expand(tz, booking.start_utc, booking.end_utc, booking.rrule, booking.exceptions)
            if occ.original_start in {o.original_start for o in now if not o.cancelled}:
                data = input_from_booking(booking, occ.original_start)
                data.title = f"{booking.title} — guest speaker"
                update_booking(booking, data, actor=holder, scope="this", occurrence_start=occ.original_start,
                               bypass_rules=True)
        if rng.random() < 0.03 and len(times) > 3:  # "this and following" cancelled: the series ends early
            cancel_booking(booking, actor=holder, scope="following", occurrence_start=times[-2].original_start)
    for booking in singles:
        roll = rng.random()
        if roll < 0.03:
            cancel_booking(booking, actor=db.session.get(User, booking.holder_id))
        elif roll < 0.08:  # edited later: a new title (SEQUENCE grows)
            data = input_from_booking(booking)
            data.title += " (updated)"
            update_booking(booking, data, actor=db.session.get(User, booking.holder_id), bypass_rules=True)
    # The Teams link arrives from Microsoft 365 with the sync's next write (webapp/sync/inbound.py sets it).
    for booking in db.session.scalars(select(Booking).where(Booking.online_meeting, Booking.cancelled_at.is_(None))):
        booking.join_url = TEAMS_LINK.format(n=booking.id)
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    bench = _describe(venue, first_day, last_day, today)
    bench.seed_seconds = clock.perf_counter() - started
    return bench


# ---------------------------------------------------------------------------------------------- checking


def check_feed(body: bytes, bench: FeedBench, window) -> int:
    """The feed, read by icalendar and expanded by recurring-ical-events over the window, equals the space's
    occurrence rows there (uid, start, end), exactly. Returns the number of occurrences; raises otherwise."""
    import icalendar
    import recurring_ical_events

    calendar = icalendar.Calendar.from_ical(body)
    found = sorted(
        (str(e["UID"]), e.decoded("DTSTART").astimezone(timezone.utc), e.decoded("DTEND").astimezone(timezone.utc))
        for e in recurring_ical_events.of(calendar).between(window.start, window.end)
    )
    expected = sorted(
        tuple(row) for row in db.session.execute(
            select(Booking.uid, Occurrence.start_utc, Occurrence.end_utc)
            .join(Booking, Booking.id == Occurrence.booking_id)
            .where(Occurrence.space_id == bench.space_id, Occurrence.start_utc < window.end, Occurrence.end_utc > window.start)
        ).all()
    )
    if found != expected:
        extra, missing = sorted(set(found) - set(expected))[:5], sorted(set(expected) - set(found))[:5]
        raise AssertionError(f"feed expands to {len(found)} occurrences, the space has {len(expected)}: "
                             f"extra {extra}, missing {missing}")
    return len(found)


# ---------------------------------------------------------------------------------------------- measuring


def _requests(measurement: Measurement, count: int, request, expected_status: int, profiler) -> list:
    responses = []
    for index in range(count + WARM_UP):
        sample = Measurement("warm-up", 0) if index < WARM_UP else measurement
        response = _timed(sample, request, profiler if sample is measurement else None)
        if response.status_code != expected_status:
            measurement.failure = f"HTTP {response.status_code}, expected {expected_status}"
            return responses
        responses.append(response)
    return responses


def _calls(measurement: Measurement, count: int, action, profiler) -> object:
    result = None
    for index in range(count + WARM_UP):
        sample = Measurement("warm-up", 0) if index < WARM_UP else measurement
        result = _timed(sample, action, profiler if sample is measurement else None)
    return result


def measure(app, bench: FeedBench, args, profiler) -> tuple[list[Measurement], dict]:
    from webapp.feeds import views as feed_views

    with app.app_context():
        token = tokens.feed_token(db.session.get(User, bench.viewer_id), "space", bench.space_id)
        path = f"/feeds/{tokens.plaintext(token)}.ics"
    client = app.test_client()
    cache = feed_views.body_cache(app)
    facts: dict = {}
    results: list[Measurement] = []

    def fresh(headers=None):
        cache.clear()  # a body built from the database, not the one cached by the previous request
        return client.get(path, headers=headers or {})

    full = Measurement("`GET` feed, full body built (200)", TARGETS_MS["full"])
    responses = _requests(full, args.samples, fresh, 200, profiler("full"))
    results.append(full)
    if responses:
        body = responses[-1].get_data()
        facts["bytes"] = len(body)
        facts["events"] = body.count(b"BEGIN:VEVENT")
        facts["overrides"] = body.count(b"RECURRENCE-ID")
        facts["etag"], facts["last_modified"] = responses[-1].headers["ETag"], responses[-1].headers["Last-Modified"]
        full.note = f"{len(body) / 1024:,.0f} kB, {facts['events']:,} VEVENTs"

    zipped = Measurement("`GET` feed, full body built, gzip (200)", TARGETS_MS["full"])
    responses = _requests(zipped, args.samples, lambda: fresh({"Accept-Encoding": "gzip"}), 200, profiler("gzip"))
    results.append(zipped)
    if responses:
        facts["gzip_bytes"] = len(responses[-1].get_data())
        facts["gzip_etag"] = responses[-1].headers["ETag"]
        zipped.note = f"{facts['gzip_bytes'] / 1024:,.0f} kB"

    with app.test_request_context(base_url="http://localhost"):
        venue = db.session.get(Venue, bench.venue_id)
        spec = feed_data.Feed("space", db.session.get(User, bench.viewer_id), venue, db.session.get(Space, bench.space_id))
        window = feed_data.feed_window(venue, bench.past_days, bench.future_days)
        _, last_modified = feed_data.feed_version(spec, window)
        booking_url = feed_views._booking_url_maker()
        events = Measurement("builder: `data.feed_calendar` (queries, series expansion, events)", TARGETS_MS["full"])
        calendar = _calls(events, args.samples, lambda: feed_data.feed_calendar(spec, window, booking_url, last_modified),
                          profiler("data"))
        results.append(events)
        build = Measurement("builder: `ical.build_calendar` (RFC 5545 text)", TARGETS_MS["full"])
        body = _calls(build, args.samples, lambda: ical.build_calendar(calendar), profiler("text"))
        results.append(build)
        version = Measurement("`data.feed_version` alone (the 304's one aggregate query)", TARGETS_MS["conditional"])
        _calls(version, args.conditional_samples, lambda: feed_data.feed_version(spec, window), profiler("version"))
        results.append(version)
        facts["checked"] = check_feed(body, bench, window)
        db.session.rollback()

    if "etag" in facts:
        matched = Measurement("`GET` feed, `If-None-Match` → 304", TARGETS_MS["conditional"])
        _requests(matched, args.conditional_samples, lambda: client.get(path, headers={"If-None-Match": facts["etag"]}), 304,
                  profiler("304-etag"))
        results.append(matched)
        matched_gz = Measurement("`GET` feed, `If-None-Match` (gzip ETag) + `Accept-Encoding: gzip` → 304",
                                 TARGETS_MS["conditional"])
        _requests(matched_gz, args.conditional_samples,
                  lambda: client.get(path, headers={"If-None-Match": facts["gzip_etag"], "Accept-Encoding": "gzip"}), 304,
                  profiler("304-etag-gzip"))
        results.append(matched_gz)
        since = Measurement("`GET` feed, `If-Modified-Since` only → 304", TARGETS_MS["conditional"])
        _requests(since, args.conditional_samples, lambda: client.get(path, headers={"If-Modified-Since": facts["last_modified"]}),
                  304, profiler("304-since"))
        results.append(since)
        client.get(path)  # fills the cache
        cached = Measurement("`GET` feed, body cached for this version (200)", TARGETS_MS["conditional"])
        _requests(cached, args.conditional_samples, lambda: client.get(path), 200, profiler("cached"))
        results.append(cached)
        client.get(path, headers={"Accept-Encoding": "gzip"})
        cached_gz = Measurement("`GET` feed, body cached for this version, gzip (200)", TARGETS_MS["conditional"])
        _requests(cached_gz, args.conditional_samples, lambda: client.get(path, headers={"Accept-Encoding": "gzip"}), 200,
                  profiler("cached-gzip"))
        results.append(cached_gz)
    return results, facts


# ---------------------------------------------------------------------------------------------- report


def _verdict(m: Measurement) -> str:
    if m.failure or not m.samples_ms:
        return "FAIL" + (f": {m.failure}" if m.failure else "")
    return "pass" if m.percentile(95) < m.target_ms else "FAIL"


def render(measurements: list[Measurement], facts: dict, bench: FeedBench, dialect: str, server: str, location: str,
           args) -> str:
    now = datetime.now(timezone.utc)
    share = bench.series_occurrences / bench.occurrences if bench.occurrences else 0
    seeded = "reused from an earlier run (--reuse)" if bench.seed_seconds is None else \
        f"{bench.seed_seconds:.1f} s through the booking operations"
    lines = [
        f"# Roomsync feeds benchmark: {dialect}, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"- database: {server} ({location})",
        f"- data: one space, {args.years} year{'s' if args.years != 1 else ''} ({bench.first_day} to {bench.last_day}), "
        f"{bench.bookings:,} bookings "
        f"({bench.series:,} series), {bench.occurrences:,} occurrences ({share:.1%} from series), {bench.exceptions:,} "
        f"cancelled, moved or retitled occurrences; seeding {seeded}",
        f"- feed window: {bench.past_days} days back, {bench.future_days} ahead (the whole span); "
        f"{facts.get('events', 0):,} VEVENTs ({facts.get('overrides', 0):,} RECURRENCE-ID overrides), "
        f"{facts.get('bytes', 0) / 1024:,.0f} kB ({facts.get('gzip_bytes', 0) / 1024:,.0f} kB gzipped)",
        f"- checked: the feed, expanded by recurring-ical-events, equals the space's {facts.get('checked', 0):,} "
        "occurrences in the window",
        f"- machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"load average {args.load_before:.2f} before the run",
        f"- times in ms, {WARM_UP} warm-up runs excluded; a target applies to p95",
        "",
        "| measurement | samples | best | median | p95 | max | target | result |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for m in measurements:
        name = f"{m.name} ({m.note})" if m.note else m.name
        stats = "— | — | — | —"
        if m.samples_ms:
            stats = " | ".join(ms(v) for v in (min(m.samples_ms), statistics.median(m.samples_ms), m.percentile(95),
                                               max(m.samples_ms)))
        lines.append(f"| {name} | {len(m.samples_ms)} | {stats} | p95 < {m.target_ms:g} ms | {_verdict(m)} |")
    conditional = next((m for m in measurements if m.name.startswith("`GET` feed, `If-None-Match` → 304") and m.samples_ms),
                       None)
    if conditional:
        per_poll = statistics.median(conditional.cpu_ms)
        lines += ["", f"1,000 subscribers polling every 15 minutes: 1.1 requests a second × {ms(per_poll)} ms of CPU "
                  f"(median 304) = {per_poll * 1000 / 900 / 10:.2f} % of one core."]
    lines += cpu_table([m for m in measurements if m.cpu_ms],
                       "the benchmark process (the app runs in it; PostgreSQL's own work is not included)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), help="default: DATABASE_URL if set, else sqlite")
    parser.add_argument("--occurrences", type=int, help=f"occurrences on the feed space (default {FULL['occurrences']})")
    parser.add_argument("--years", type=int, help=f"years of bookings, two thirds before today (default {FULL['years']})")
    parser.add_argument("--samples", type=int, help=f"full-feed requests and builder calls to time (default {FULL['samples']})")
    parser.add_argument("--conditional-samples", type=int,
                        help=f"304 and cached requests to time (default {FULL['conditional_samples']})")
    parser.add_argument("--reuse", action="store_true", help="keep and reuse a database seeded with the same parameters")
    parser.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data set")
    parser.add_argument("--profile", action="store_true", help="cProfile each measurement; .prof files beside the result")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for results and the SQLite file")
    args = parser.parse_args(argv)
    fill_size_defaults(args, QUICK, FULL)
    if args.occurrences < 20 or args.years < 1 or args.samples < 1 or args.conditional_samples < 1:
        parser.error("--occurrences must be at least 20, --years, --samples and --conditional-samples at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_before = os.getloadavg()[0]
    args.results.mkdir(parents=True, exist_ok=True)
    days = args.years * 365
    # --db wins; without it DATABASE_URL; else a SQLite file named after the data set's size (what --reuse finds).
    sqlite_path = args.results / f"feeds-bench-{args.occurrences}x{days}.sqlite3"
    url = database_url(args.db, DEFAULT_POSTGRESQL_URL, sqlite_path, database_url_by_default=True)
    if is_postgresql(url):
        ensure_postgresql_database(url)
    today = datetime.now(timezone.utc).astimezone(ZoneInfo(TIMEZONE)).date()
    first_day, last_day = _span(days, today)
    config = {
        "INSTANCE_PATH": str(args.results / "instance"),
        "SECRET_KEY": "roomsync-feeds-bench",
        "DATABASE_URL": url,
        "SYNC_JOBS": True,
        "WTF_CSRF_ENABLED": False,
        # The window covers the whole span: every seeded occurrence is in the feed.
        "FEED_PAST_DAYS": (today - first_day).days,
        "FEED_FUTURE_DAYS": (last_day - today).days,
    }
    app = create_app(config)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    with app.app_context():
        dialect = db.engine.dialect.name
        bench = find_seeded(args.occurrences, days, args.seed, today) if args.reuse else None
        if bench is None:
            print(f"Seeding one space with {args.occurrences:,} occurrences over {days} days on {dialect}…", file=sys.stderr)
            reset_schema()
            from flask_migrate import upgrade

            upgrade()
            bench = seed(args.occurrences, days, args.seed, today)
            print(f"Seeded in {bench.seed_seconds:.1f} s.", file=sys.stderr)
        server = database_server(db.session)
        location = db.engine.url.render_as_string(hide_password=True)
    if (bench.past_days, bench.future_days) != (config["FEED_PAST_DAYS"], config["FEED_FUTURE_DAYS"]):
        app.config.update(FEED_PAST_DAYS=bench.past_days, FEED_FUTURE_DAYS=bench.future_days)

    profiles = Profiles(args.profile)
    gc.collect()
    gc.freeze()  # as app.py does in production
    measurements, facts = measure(app, bench, args, profiles.new)
    report = render(measurements, facts, bench, dialect, server, location, args)
    stem = args.results / f"feeds-{dialect}-{stamp}"
    write_results(stem, report)
    profiles.print_reports(stem)
    missed = [m for m in measurements if _verdict(m) != "pass"]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
