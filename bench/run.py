"""Roomsync performance benchmark: `python bench/run.py [options]` (`make bench`). See bench/README.md.

Seeds (or, with `--reuse`, finds) a venue of `--spaces` spaces with `--days` days of bookings (200 × 730 by
default: about 500,000 occurrence rows, a fifth from series) in a database migrated by the real migrations,
then measures, in-process and through the real code paths:

- `create_booking` with its conflict check, on random slots, some free and some taken (conflicts);
- the day view of every space (`GET /?date=…` through the Flask test client, signed in);
- `GET /api/v1/bookings?space=…&start=…&end=…` for one space over a month, with a Bearer token.

It prints a Markdown table of p50/p95/p99/max per measurement with the target and pass/fail (plus the process's
CPU time per sample, which other load on the machine barely moves), and writes it to
`bench/results/<db>-<timestamp>.md`. An endpoint that does not exist yet gets a "not available" row.
Exit status: 0, or 1 with `--strict` when a target is missed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import create_engine, delete, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from werkzeug.exceptions import MethodNotAllowed, NotFound  # noqa: E402

from bench import seed as seeding  # noqa: E402
from bench.report import Profiles, cpu_table, ms, percentile, write_results  # noqa: E402
from bench.report import database_server, database_url, fill_size_defaults, is_postgresql  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.auth.models import ApiToken, User, issue_api_token  # noqa: E402
from webapp.booking.errors import ConflictError, ValidationError  # noqa: E402
from webapp.booking.models import Occurrence, Venue  # noqa: E402
from webapp.booking.operations import BookingInput, create_booking, space_closure  # noqa: E402
from webapp.config import normalise_database_url  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.timeutil import localize  # noqa: E402

DEFAULT_POSTGRESQL_URL = "postgresql://postgres@127.0.0.1/roomsync_bench"
RESULTS = REPO / "bench" / "results"
TARGETS_MS = {"create": 20.0, "day_view": 150.0, "api": 50.0}
WARM_UP = 3
QUICK = {"spaces": 3, "days": 14, "creates": 20, "day_views": 4, "api_requests": 4}
FULL = {"spaces": 200, "days": 730, "creates": 300, "day_views": 40, "api_requests": 100}


@dataclass
class Measurement:
    name: str
    target_ms: float
    samples_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # this process's CPU time per sample
    note: str = ""
    unavailable: str | None = None  # why there is nothing to measure
    failure: str | None = None  # the code path answered wrongly (an HTTP error, an unexpected exception)

    def percentile(self, p: int, cpu: bool = False) -> float:
        return percentile(self.cpu_ms if cpu else self.samples_ms, p)

    @property
    def verdict(self) -> str:
        if self.unavailable:
            return "n/a"
        if self.failure or not self.samples_ms:
            return "FAIL"
        return "pass" if self.percentile(99) < self.target_ms else "FAIL"


# ---------------------------------------------------------------------------------------------- database


def ensure_postgresql_database(url: str) -> None:
    """Create the database if missing (what `createdb` does), connecting to the `postgres` database."""
    target = make_url(normalise_database_url(url))
    maintenance = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as connection:
            exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database})
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        maintenance.dispose()


def reset_schema() -> None:
    """Empty the database so the migrations build it from nothing."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        return
    path = Path(engine.url.database)
    engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- measuring


def _timed(measurement: Measurement, action, profiler: cProfile.Profile | None) -> object:
    if profiler:
        profiler.enable()
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        return action()
    finally:
        measurement.samples_ms.append((time.perf_counter() - started) * 1000)
        measurement.cpu_ms.append((time.process_time() - cpu_started) * 1000)
        if profiler:
            profiler.disable()


def _random_future_start(rng: random.Random, bench, tz, today: date) -> tuple[datetime, datetime]:
    """A grid-aligned slot inside opening hours, between tomorrow and the end of the seeded span."""
    day = today + timedelta(days=rng.randint(1, max(1, (bench.last_day - today).days)))
    minutes = rng.choice((30, 60, 60, 90, 120))
    slot = rng.randrange(((seeding.CLOSES - seeding.OPENS) * 60 - minutes) // seeding.GRID_MINUTES + 1)
    local = datetime.combine(day, datetime.min.time()) + timedelta(hours=seeding.OPENS, minutes=slot * seeding.GRID_MINUTES)
    return localize(local, tz), localize(local + timedelta(minutes=minutes), tz)


def _slot_for(rng: random.Random, bench, venue, today: date, space_id: int, free: bool) -> tuple[datetime, datetime]:
    """A free slot (nothing on the space's conflict closure) or a taken one (an existing booking's)."""
    closure = space_closure([space_id])
    for _ in range(100):
        start, end = _random_future_start(rng, bench, venue.tz, today)
        if not free:
            taken = db.session.execute(
                select(Occurrence.start_utc, Occurrence.end_utc)
                .where(Occurrence.space_id == space_id, Occurrence.start_utc >= start)
                .order_by(Occurrence.start_utc)
                .limit(1)
            ).first()
            if taken:
                return taken.start_utc, taken.end_utc
            continue
        overlap = select(Occurrence.id).where(
            Occurrence.space_id.in_(closure), Occurrence.start_utc < end, Occurrence.end_utc > start
        )
        if db.session.execute(overlap.limit(1)).first() is None:
            return start, end
    raise RuntimeError(f"no {'free' if free else 'taken'} slot found on space {space_id}")


def measure_creates(bench, count: int, rng: random.Random, profiler) -> Measurement:
    """create_booking on random slots: two in three free, one in three taken (a conflict)."""
    measurement = Measurement("create_booking with conflict check", TARGETS_MS["create"])
    if count == 0:
        measurement.unavailable = "skipped (0 creates asked)"
        return measurement
    by_outcome: dict[str, list[float]] = {"created": [], "conflicts": []}
    actor = db.session.get(User, bench.viewer_id)
    venue = db.session.get(Venue, bench.venue_id)
    today = datetime.now(timezone.utc).astimezone(venue.tz).date()
    for index in range(count + WARM_UP):
        space_id = rng.choice(bench.space_ids)
        start, end = _slot_for(rng, bench, venue, today, space_id, free=index % 3 != 0)
        db.session.commit()  # end the read transaction, as a new request would start without one
        data = BookingInput(space_ids=[space_id], start=start, end=end, title="Bench create")
        sample = Measurement("warm-up", 0) if index < WARM_UP else measurement
        outcome = "created"
        try:
            _timed(sample, lambda: create_booking(venue, data, actor=actor), profiler if sample is measurement else None)
        except ConflictError:
            outcome = "conflicts"
        except ValidationError as error:
            measurement.failure = f"unexpected validation error: {error.fields}"
            break
        if sample is measurement:
            by_outcome[outcome].append(sample.samples_ms[-1])
    measurement.note = "; ".join(
        f"{len(times)} {name}" + (f", p50 {statistics.median(times):.1f}" if times else "") for name, times in by_outcome.items()
    )
    return measurement


def _signed_in_client(app, user_id: int):
    client = app.test_client()
    with client.session_transaction() as session:  # what flask-login stores on sign-in
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
    return client


def _has_route(app, path: str) -> bool:
    try:
        app.url_map.bind("localhost").match(path, method="GET")
    except (NotFound, MethodNotAllowed):
        return False
    return True


def _requests(measurement: Measurement, count: int, request, profiler, size) -> None:
    """Time `count` requests after the warm-up; `size(response)` → a number averaged into the note."""
    if count == 0:
        measurement.unavailable = "skipped (0 requests asked)"
        return
    sizes = []
    for index in range(count + WARM_UP):
        sample = Measurement("warm-up", 0) if index < WARM_UP else measurement
        response = _timed(sample, request, profiler if sample is measurement else None)
        if response.status_code != 200:
            measurement.failure = f"HTTP {response.status_code} for {response.request.url}"
            return
        sizes.append(size(response))
    measurement.note = measurement.note.format(statistics.mean(sizes))


def measure_day_view(app, bench, count: int, rng: random.Random, profiler) -> Measurement:
    measurement = Measurement(f"day view, {len(bench.space_ids)} spaces (GET /?date=)", TARGETS_MS["day_view"])
    if "booking.day_view" not in app.view_functions:
        measurement.unavailable = "not available (no booking.day_view endpoint yet)"
        return measurement
    client = _signed_in_client(app, bench.viewer_id)
    # Today and the days ahead: what people look at, and the heavier page (past slots are not bookable links).
    today = datetime.now(timezone.utc).date()
    ahead = max(0, (bench.last_day - today).days)

    def request():
        day = today + timedelta(days=rng.randint(0, ahead))
        return client.get("/", query_string={"date": day.isoformat()})

    measurement.note = "{:.0f} kB of HTML on average"
    _requests(measurement, count, request, profiler, lambda response: len(response.data) / 1024)
    return measurement


def measure_api(app, bench, count: int, rng: random.Random, profiler) -> Measurement:
    measurement = Measurement("GET /api/v1/bookings, one space, one month", TARGETS_MS["api"])
    if not _has_route(app, "/api/v1/bookings"):
        measurement.unavailable = "not available (no /api/v1/bookings endpoint yet)"
        return measurement
    with app.app_context():
        token, plaintext = issue_api_token(db.session.get(User, bench.viewer_id), "bench")
        db.session.commit()
        token_id = token.id
    client = app.test_client()
    headers = {"Authorization": f"Bearer {plaintext}"}
    span = (bench.last_day - bench.first_day).days

    def request():
        first = datetime.combine(bench.first_day + timedelta(days=rng.randrange(max(1, span - 30))), datetime.min.time(), timezone.utc)
        query = {
            "space": rng.choice(bench.space_ids),
            "start": f"{first:%Y-%m-%dT%H:%M:%SZ}",
            "end": f"{first + timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}",
        }
        return client.get("/api/v1/bookings", query_string=query, headers=headers)

    measurement.note = "{:.0f} occurrences per response on average"
    try:
        _requests(measurement, count, request, profiler, lambda response: len(response.get_json()))
    finally:
        with app.app_context():
            db.session.execute(delete(ApiToken).where(ApiToken.id == token_id))
            db.session.commit()
    return measurement


# ---------------------------------------------------------------------------------------------- report


def render(measurements: list[Measurement], bench, dialect: str, server: str, location: str, args) -> str:
    now = datetime.now(timezone.utc)
    share = bench.series_occurrences / bench.occurrences if bench.occurrences else 0
    seeding = f"{bench.seed_seconds:.1f} s" if bench.seed_seconds is not None else "reused from an earlier run (--reuse)"
    lines = [
        f"# Roomsync benchmark: {dialect}, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"- database: {server} ({location})",
        f"- data: {len(bench.space_ids)} spaces ({len(bench.combined_space_ids)} combined), {args.days} days "
        f"({bench.first_day} to {bench.last_day}), {bench.bookings:,} bookings ({bench.series:,} series), "
        f"{bench.occurrences:,} occurrences ({share:.1%} from series)",
        f"- seeding: {seeding}" + (f"; {bench.verified} sampled bookings match occurrence_times" if bench.verified else ""),
        f"- machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"load average {args.load_before:.2f} before the run (other work on the machine skews the tail)",
        f"- latencies in ms, {WARM_UP} warm-up runs excluded; a target applies to p99",
        "",
        "| measurement | samples | p50 | p95 | p99 | max | target | result |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for m in measurements:
        name = f"{m.name} ({m.note})" if m.note else m.name
        target = f"p99 < {m.target_ms:g} ms"
        if m.unavailable:
            lines.append(f"| {name} | 0 | — | — | — | — | {target} | {m.unavailable} |")
            continue
        if m.samples_ms:
            stats = " | ".join(ms(v) for v in (m.percentile(50), m.percentile(95), m.percentile(99), max(m.samples_ms)))
        else:
            stats = "— | — | — | —"
        result = m.verdict + (f": {m.failure}" if m.failure else "")
        lines.append(f"| {name} | {len(m.samples_ms)} | {stats} | {target} | {result} |")
    lines += cpu_table([m for m in measurements if m.cpu_ms and not m.unavailable],
                       "the benchmark process (the app runs in it; PostgreSQL's own work is not included)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), help="default: DATABASE_URL if set, else sqlite")
    parser.add_argument("--spaces", type=int, help=f"spaces to seed (default {FULL['spaces']})")
    parser.add_argument("--days", type=int, help=f"days of bookings, half past and half ahead (default {FULL['days']})")
    parser.add_argument("--creates", type=int, help=f"create_booking calls to time (default {FULL['creates']})")
    parser.add_argument("--day-views", type=int, help=f"day view requests to time (default {FULL['day_views']})")
    parser.add_argument("--api-requests", type=int, help=f"API requests to time (default {FULL['api_requests']})")
    parser.add_argument("--reuse", action="store_true", help="keep and reuse a database seeded with the same parameters")
    parser.add_argument("--quick", action="store_true", help="tiny run for the smoke test (3 spaces × 14 days)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data set and of the requests")
    parser.add_argument("--profile", action="store_true", help="cProfile each measurement; .prof files beside the result")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for results and the SQLite file")
    args = parser.parse_args(argv)
    fill_size_defaults(args, QUICK, FULL)
    if args.spaces < 1 or args.days < 7:
        parser.error("--spaces must be at least 1 and --days at least 7")
    if min(args.creates, args.day_views, args.api_requests) < 0:
        parser.error("counts cannot be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_before = os.getloadavg()[0]
    args.results.mkdir(parents=True, exist_ok=True)
    # --db wins; without it DATABASE_URL; else a SQLite file named after the data set's size (what --reuse finds).
    sqlite_path = args.results / f"bench-{args.spaces}x{args.days}.sqlite3"
    url = database_url(args.db, DEFAULT_POSTGRESQL_URL, sqlite_path, database_url_by_default=True)
    if is_postgresql(url):
        ensure_postgresql_database(url)
    app = create_app(
        {
            "INSTANCE_PATH": str(args.results / "instance"),
            "SECRET_KEY": "roomsync-bench",
            "DATABASE_URL": url,
            "SYNC_JOBS": True,
            "WTF_CSRF_ENABLED": False,
        }
    )
    rng = random.Random(args.seed)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    with app.app_context():
        dialect = db.engine.dialect.name
        today = datetime.now(timezone.utc).date()
        bench = seeding.find_seeded(args.spaces, args.days, args.seed, today) if args.reuse else None
        if bench is None:
            print(f"Seeding {args.spaces} spaces × {args.days} days on {dialect}…", file=sys.stderr)
            reset_schema()
            upgrade()
            bench = seeding.seed(args.spaces, args.days, args.seed, today)
            print(f"Seeded {bench.occurrences:,} occurrences in {bench.seed_seconds:.1f} s.", file=sys.stderr)
        else:
            upgrade()
        server = database_server(db.session)
        location = db.engine.url.render_as_string(hide_password=True)

    profiles = Profiles(args.profile)
    measurements: list[Measurement] = []
    gc.collect()
    gc.freeze()  # as app.py does in production: long-lived objects leave the collector's generations
    try:
        with app.app_context():
            measurements.append(measure_creates(bench, args.creates, rng, profiles.new("create")))
        # Outside any app context, so every request gets its own context, session and `g` as in production.
        measurements.append(measure_day_view(app, bench, args.day_views, rng, profiles.new("day_view")))
        measurements.append(measure_api(app, bench, args.api_requests, rng, profiles.new("api")))
    finally:
        with app.app_context():
            seeding.remove_bookings_after(bench)

    report = render(measurements, bench, dialect, server, location, args)
    stem = args.results / f"{dialect}-{stamp}"
    write_results(stem, report)
    profiles.print_reports(stem)
    missed = [m for m in measurements if m.verdict == "FAIL"]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
