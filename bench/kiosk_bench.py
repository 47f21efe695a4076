"""Tablet status fragment benchmark (issue 7): `python bench/kiosk_bench.py [options]` (`--help`).

What it measures: the polled fragment `GET /kiosk/panel/status` of 1,000 simulated tablets (`--tablets`), served
by gunicorn (`--workers` processes, gthread with `--threads` threads each; default 3 × 2 on this 2-core machine,
see `parse_args`), driven by wrk on loopback with `bench/kiosk_tablets.lua`:
every request carries one tablet's own device cookie, rotating through all of them, through `--connections`
keep-alive connections. Three runs of `--duration` seconds each, after a short warm-up of each:

1. trivial: `GET /bench/trivial`, a Flask endpoint that returns "ok", added to the same app in the same gunicorn
   (same middleware, same cookies): the floor that the framework and the server set.
2. 304: each tablet sends the ETag it got (If-None-Match), as kiosk.js does: the path a thousand idle panels
   take every few seconds (the device lookup and `board.panel_marker`, no rendering). Twice: flat out (its
   throughput), and paced at about `--rate` requests per second (1,000: ten times what 1,000 tablets polling
   every 10 s ask) through `PACED_CONNECTIONS` connections, each waiting a random 0–2× its share between
   requests (wrk's Lua `delay`; wrk has no fixed-rate mode): its latency under that load. Flat out, latency is
   mostly queueing (Little's law: connections ÷ throughput), so the p99 target is read at the paced rate.
3. full (200): no If-None-Match: the fragment rendered (the day's bookings of the space and the spaces that
   share with it, the status, the timeline), as when something changed, flat out.

The ETags hash the current minute, so the 304 run starts with ETags fetched in the minute it ends in (waiting
for the next minute when what is left of this one is too short: a run lasts at most 45 s); responses are counted by status and the table says how
many were not 304. The tablets' `last_seen_at` are spread over the last minute first, so the run pays the
steady-state share of "last seen" writes (one per tablet per minute), not none.

Data: `bench/seed.py` (the booking benchmark's seeder, same density: ~3.4 bookings per space and day, one space
in ten a combined room that depends on the two before it) with enough spaces for one tablet per room, over 4
days around today; each tablet enrolled through `kiosk.devices` (a code, then `enrol`). Database: a fresh SQLite
file by default; `--db postgresql` (DATABASE_URL if it is a PostgreSQL URL, else
postgresql://postgres@127.0.0.1/roomsync_kiosk_bench, created if missing; its schema is dropped and rebuilt) or
`--db <URL>`.

wrk is Debian's package: when it is missing the benchmark installs it (`apt-get update`, then `apt-get install
-y wrk`) if it runs as root, and otherwise stops with the command to run.

Targets (the 304 path, issue 7): ≥ 1,000 requests/s (flat out), p99 < 20 ms (at `--rate`), and throughput
within 3x of the trivial endpoint's (both flat out). Prints a Markdown table (plus the CPU time the gunicorn workers spent per request, which other work
on a shared machine moves less than wall time) and writes it to `bench/results/kiosk-<db>-<timestamp>.md`, the
figures to the `.json` beside it. Exit status: 0; with `--check` 1 when a target is missed; 2 when the benchmark
could not run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import database_server, database_url, fill_size_defaults, is_postgresql  # noqa: E402
from bench.report import free_port, ms, stop_processes, write_results  # noqa: E402

RESULTS = REPO / "bench" / "results"
LUA = REPO / "bench" / "kiosk_tablets.lua"
DEFAULT_POSTGRESQL_URL = "postgresql://postgres@127.0.0.1/roomsync_kiosk_bench"
TRIVIAL_PATH = "/bench/trivial"
STATUS_PATH = "/kiosk/panel/status"
SECRET_KEY = "roomsync-kiosk-bench"
DAYS = 4  # of bookings, around today (the fragment shows today's)
TARGET_RPS = 1000.0
TARGET_P99_MS = 20.0
TARGET_RATIO = 3.0
MAX_304_SECONDS = 45  # the 304 run must end in the minute its ETags belong to
PACED_CONNECTIONS = 50
FULL = {"tablets": 1000, "duration": 30, "connections": 16, "warmup": 5, "rate": 1000}
QUICK = {"tablets": 20, "duration": 2, "connections": 4, "warmup": 1, "rate": 200}


class BenchError(Exception):
    """The benchmark could not run: exit 2."""


# ---------------------------------------------------------------------------------------------- the web process


def web_app():
    """The gunicorn factory (`bench.kiosk_bench:web_app()`): the real app, configured from the environment as
    `app.py` is, plus the trivial endpoint, then `gc.freeze()` as `app.py` does."""
    from webapp import create_app

    app = create_app()
    app.add_url_rule(TRIVIAL_PATH, "bench_trivial", lambda: "ok")
    gc.freeze()
    return app


def start_gunicorn(args, env: dict, port: int, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "bench.kiosk_bench:web_app()", "--bind", f"127.0.0.1:{port}",
               "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
               "--chdir", str(REPO), "--log-level", "warning", "--graceful-timeout", "5"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def http_get(url: str, headers: dict | None = None, timeout: float = 10.0):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for_web(base: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"gunicorn exited (status {process.returncode}); see its log")
        try:
            if http_get(base + TRIVIAL_PATH, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(f"gunicorn did not answer within {timeout:.0f} s")


def worker_cpu_seconds(master: int) -> float:
    """User + system CPU time of gunicorn's worker processes (children of the master), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return float("nan")
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of stat)
    return total


# ---------------------------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    """wrk's path, installing Debian's package when it is missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed. Install Debian's package (sudo apt-get install -y wrk), or run the "
                         "benchmark as root, which installs it.")
    print("wrk is missing: installing Debian's package (apt-get update, apt-get install -y wrk)…", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get installed wrk, but it is not on PATH")
    return found


@dataclass
class Run:
    name: str
    path: str
    mode: str  # "etag" | "none"
    rate: float | None = None  # paced at about this many requests/s; None: flat out
    connections: int = 0
    seconds: float = 0.0
    requests: int = 0
    rps: float = 0.0
    latency_ms: dict = field(default_factory=dict)  # min, mean, p50, p90, p99, p999, max
    status: dict = field(default_factory=dict)  # "200", "304", "other"
    errors: dict = field(default_factory=dict)
    cpu_ms_per_request: float = float("nan")
    bytes_per_response: float = 0.0
    started_second: int | None = None  # of the minute (the 304 run)


def run_wrk(wrk: str, args, base: str, tablets_file: Path, run: Run, seconds: float, master: int) -> Run:
    script, run.connections = LUA, args.connections
    if run.rate:
        # Each connection waits a random 0–2× its share of the rate between requests (minus ~1 ms of answer).
        run.connections = PACED_CONNECTIONS
        mean_ms = max(0, round(PACED_CONNECTIONS * 1000 / run.rate) - 1)
        script = tablets_file.with_name(f"paced-{run.name}.lua")
        script.write_text(f'dofile("{LUA}")\nfunction delay() return math.random(0, {2 * mean_ms}) end\n')
    command = [wrk, "-t", str(args.wrk_threads), "-c", str(run.connections), "-d", f"{seconds:g}s",
               "--timeout", "5s", "-s", str(script), base + run.path, "--", str(tablets_file), run.path, run.mode]
    cpu_before = worker_cpu_seconds(master)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu_after = worker_cpu_seconds(master)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("KIOSK_BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-800:] or done.stdout[-800:]}")
    figures = json.loads(line.split(" ", 1)[1])
    run.seconds = figures["duration_us"] / 1e6
    run.requests = figures["requests"]
    run.rps = run.requests / run.seconds if run.seconds else 0.0
    run.latency_ms = {k: v / 1000 for k, v in figures["latency_us"].items()}
    run.status = figures["status"]
    run.errors = {k: v for k, v in figures["errors"].items() if v}
    run.bytes_per_response = figures["bytes"] / max(run.requests, 1)
    if run.requests:
        run.cpu_ms_per_request = (cpu_after - cpu_before) * 1000 / run.requests
    return run


# ---------------------------------------------------------------------------------------------- data


def seed_and_enrol(app, tablets: int, seed: int) -> dict:
    """Seed enough spaces for one tablet per room, then enrol one panel per room; returns what the run needs."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from bench.run import reset_schema
    from bench.seed import TIMEZONE, seed as seed_bookings
    from webapp.auth.models import User
    from webapp.booking.models import Space, Venue
    from webapp.extensions import db
    from webapp.kiosk import devices
    from webapp.timeutil import now_utc, to_local

    with app.app_context():
        reset_schema()
        upgrade()
        dialect = db.engine.dialect.name
        database = database_server(db.session)
        # Three spaces in four are rooms (the rest desks, which get no tablet): seed a third more.
        spaces = tablets * 4 // 3 + 12
        today = to_local(now_utc(), ZoneInfo(TIMEZONE)).date()
        started = time.perf_counter()
        bench = seed_bookings(spaces, DAYS, seed, today)
        seeded = time.perf_counter() - started
        venue = db.session.get(Venue, bench.venue_id)
        admin = db.session.get(User, bench.admin_id)
        rooms = list(db.session.scalars(select(Space).where(Space.venue_id == venue.id, Space.kind == "room")
                                        .order_by(Space.position)))[:tablets]
        if len(rooms) < tablets:
            raise BenchError(f"only {len(rooms)} rooms seeded for {tablets} tablets")
        started = time.perf_counter()
        tokens = []
        for room in rooms:
            code = devices.start_enrolment(venue, name=f"{room.name} door", space=room, actor=admin)
            tokens.append(devices.enrol(code)[1])
        enrolled = time.perf_counter() - started
        about = {"database": database, "dialect": dialect, "spaces": spaces, "rooms": len(rooms),
                 "bookings": bench.bookings, "occurrences": bench.occurrences, "seed_seconds": round(seeded, 1),
                 "enrol_seconds": round(enrolled, 1), "venue_id": venue.id}
        db.session.remove()
        db.engine.dispose()
    return {"tokens": tokens, "about": about}


def spread_last_seen(app, rng: random.Random) -> None:
    """Each tablet last seen somewhere in the last minute: during a run, about one in 60 per second refreshes
    its `last_seen_at` (one UPDATE), as in steady state."""
    from sqlalchemy import select, update

    from webapp.extensions import db
    from webapp.kiosk.models import Device
    from webapp.timeutil import now_utc

    with app.app_context():
        now = now_utc()
        ids = list(db.session.scalars(select(Device.id)))
        for device_id in ids:
            db.session.execute(update(Device).where(Device.id == device_id)
                               .values(last_seen_at=now - timedelta(seconds=rng.uniform(0, 60))))
        db.session.commit()
        db.session.remove()


def fetch_etags(base: str, tokens: list[str]) -> list[str]:
    """Each tablet's current ETag, fetched as its first poll would (a full fragment)."""
    def one(token: str) -> str:
        status, headers, _ = http_get(base + STATUS_PATH, {"Cookie": f"roomsync_device={token}", "HX-Request": "true"})
        tag = headers.get("ETag")
        if status != 200 or not tag:
            raise BenchError(f"the status fragment answered {status} without an ETag for a tablet")
        return tag

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, tokens))


def write_tablets(path: Path, tokens: list[str], etags: list[str] | None) -> Path:
    path.write_text("".join(f"{t} {etags[i] if etags else '-'}\n" for i, t in enumerate(tokens)))
    return path


def etags_for_a_run(app, base: str, tokens: list[str], seconds: float, rng: random.Random) -> list[str]:
    """The tablets' ETags, fetched so that a run of `seconds` starting now ends in the same minute (they hash
    the minute): when what is left of this minute is too short, wait for the next one first."""
    while True:
        if time.time() % 60 + seconds + 5 > 58:
            time.sleep(60 - time.time() % 60 + 0.5)
        minute = int(time.time() // 60)
        etags = fetch_etags(base, tokens)
        spread_last_seen(app, rng)
        if int(time.time() // 60) == minute and time.time() % 60 + seconds <= 58:
            return etags


# ---------------------------------------------------------------------------------------------- report


def verdicts(runs: dict[str, Run]) -> dict[str, tuple[bool, str]]:
    fast, paced, trivial = runs["304"], runs["304-paced"], runs["trivial"]
    ratio = trivial.rps / fast.rps if fast.rps else float("inf")
    not_304 = sum(r.status.get("200", 0) + r.status.get("other", 0) for r in (fast, paced))
    return {
        "throughput": (fast.rps >= TARGET_RPS, f"{fast.rps:,.0f} requests/s flat out"),
        "p99": (paced.latency_ms["p99"] < TARGET_P99_MS,
                f"p99 {ms(paced.latency_ms['p99'])} ms at {paced.rps:,.0f} requests/s "
                f"({ms(fast.latency_ms['p99'])} ms flat out)"),
        "ratio": (ratio <= TARGET_RATIO, f"trivial ÷ 304 throughput: {ratio:.2f}x"),
        "all_304": (not_304 <= (fast.requests + paced.requests) * 0.01,
                    f"{not_304} of {fast.requests + paced.requests} conditional polls were not answered 304 (a "
                    "minute turned, or ETags are unstable)"),
    }


def render(runs: dict[str, Run], args, about: dict) -> str:
    now = datetime.now(timezone.utc)
    checks = verdicts(runs)
    lines = [
        f"# Tablet status fragment benchmark: {about['database']}, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"- {args.tablets:,} tablets enrolled (one per room; each request one tablet's own cookie, rotating), "
        f"{about['spaces']:,} spaces, {about['bookings']:,} bookings over {DAYS} days around today "
        f"(seeded in {about['seed_seconds']} s, tablets enrolled in {about['enrol_seconds']} s)",
        f"- gunicorn: {args.workers} processes × {args.threads} threads (gthread), `gc.freeze()` as in app.py; "
        f"{about['wrk']}: {args.wrk_threads} thread(s), {args.connections} keep-alive connections flat out, "
        f"{args.duration} s per run after {args.warmup} s of warm-up, on loopback",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {about['load_before']:.2f} before the run, {about['load_after']:.2f} after",
        "",
        "| endpoint | requests/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | answers | CPU per request (ms) |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    labels = {"trivial": f"trivial Flask endpoint (`GET {TRIVIAL_PATH}`), flat out",
              "304": f"status fragment, 304 path (`GET {STATUS_PATH}` + If-None-Match), flat out",
              "304-paced": f"status fragment, 304 path, paced at ~{args.rate:,} requests/s "
                           f"({PACED_CONNECTIONS} connections)",
              "full": f"status fragment, full path (`GET {STATUS_PATH}`, rendered), flat out"}
    for key in ("trivial", "304", "304-paced", "full"):
        run = runs[key]
        answers = ", ".join(f"{n:,} × {code}" for code, n in run.status.items() if n)
        if run.errors:
            answers += "; errors " + ", ".join(f"{k} {v}" for k, v in run.errors.items())
        lat = run.latency_ms
        lines.append(f"| {labels[key]} | {run.rps:,.0f} | {ms(lat['p50'])} | {ms(lat['p90'])} | {ms(lat['p99'])} | "
                     f"{ms(lat['max'])} | {answers} | {ms(run.cpu_ms_per_request)} |")
    lines += ["", "| target (304 path) | measured | result |", "|---|---|---|"]
    for key, label in (("throughput", f"≥ {TARGET_RPS:,.0f} requests/s"), ("p99", f"p99 < {TARGET_P99_MS:g} ms"),
                       ("ratio", f"within {TARGET_RATIO:g}x of the trivial endpoint")):
        ok, detail = checks[key]
        lines.append(f"| {label} | {detail} | {'pass' if ok else 'FAIL'} |")
    ok, detail = checks["all_304"]
    if not ok:
        lines += ["", f"Note: {detail}."]
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tablets", type=int, help=f"enrolled tablets (default {FULL['tablets']:,})")
    parser.add_argument("--duration", type=int, help=f"seconds per run (default {FULL['duration']}; at most "
                                                     f"{MAX_304_SECONDS})")
    parser.add_argument("--warmup", type=int, help=f"seconds of warm-up per endpoint (default {FULL['warmup']})")
    parser.add_argument("--connections", type=int, help=f"wrk's connections (default {FULL['connections']})")
    parser.add_argument("--rate", type=int, help=f"requests/s of the paced 304 run (default {FULL['rate']:,})")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk's threads (default 1)")
    # 3 processes × 2 threads on 2 cores: fewer threads per process wait less for the GIL. Measured on this
    # project's machine, 2 × 4 gave the same throughput but a p99 of 44 ms at 850 requests/s (30 s runs), 3 × 2
    # 11.5 ms at 976/s, 4 × 1 lost half the throughput.
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker (default 2)")
    parser.add_argument("--db", help="sqlite (default: a fresh file), postgresql (DATABASE_URL if it is one, else "
                                     f"{DEFAULT_POSTGRESQL_URL}, created if missing; its schema is dropped and "
                                     "rebuilt) or a database URL")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the smoke test (20 tablets, 2 s runs)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data set (default 1)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results (default bench/results)")
    args = parser.parse_args(argv)
    fill_size_defaults(args, QUICK, FULL)
    if min(args.tablets, args.duration, args.connections, args.wrk_threads, args.workers, args.threads, args.rate) < 1 \
            or args.warmup < 0:
        parser.error("sizes must be positive")
    if args.duration > MAX_304_SECONDS:
        parser.error(f"--duration is at most {MAX_304_SECONDS} s: the 304 run must end within the minute of its "
                     "ETags")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from webapp import create_app

    load_before = os.getloadavg()[0]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    args.results.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    process = None
    try:
        wrk = ensure_wrk()
        wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0].split(" [")[0]
        with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as folder:
            folder = Path(folder)
            url = database_url(args.db, DEFAULT_POSTGRESQL_URL, folder / "kiosk-bench.sqlite3")
            if is_postgresql(url):
                from bench.run import ensure_postgresql_database

                ensure_postgresql_database(url)
            instance = folder / "instance"
            app = create_app({"INSTANCE_PATH": str(instance), "SECRET_KEY": SECRET_KEY, "DATABASE_URL": url,
                              "SYNC_JOBS": True})
            print(f"seeding and enrolling {args.tablets} tablets…", file=sys.stderr)
            world = seed_and_enrol(app, args.tablets, args.seed)
            about = {**world["about"], "wrk": wrk_version, "load_before": load_before}
            tokens = world["tokens"]
            env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMSYNC_") and k != "DATABASE_URL"}
            env.update(DATABASE_URL=url, ROOMSYNC_INSTANCE=str(instance), SECRET_KEY=SECRET_KEY, PYTHONPATH=str(REPO))
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            log_path = args.results / f"kiosk-{stamp}-gunicorn.log"
            with open(log_path, "w") as log:
                process = start_gunicorn(args, env, port, log)
                wait_for_web(base, process)
                print(f"gunicorn at {base} ({args.workers} × {args.threads}); warming up…", file=sys.stderr)
                plain = write_tablets(folder / "tablets-plain.txt", tokens, None)
                runs = {"trivial": Run("trivial", TRIVIAL_PATH, "none"), "304": Run("304", STATUS_PATH, "etag"),
                        "304-paced": Run("304-paced", STATUS_PATH, "etag", rate=args.rate),
                        "full": Run("full", STATUS_PATH, "none")}
                if args.warmup:
                    for path in (TRIVIAL_PATH, STATUS_PATH):
                        run_wrk(wrk, args, base, plain, Run("warm-up", path, "none"), args.warmup, process.pid)
                print("run: trivial…", file=sys.stderr)
                spread_last_seen(app, rng)
                run_wrk(wrk, args, base, plain, runs["trivial"], args.duration, process.pid)
                for key in ("304", "304-paced"):
                    print(f"run: {key} (within one minute: the ETags hash it)…", file=sys.stderr)
                    etags = etags_for_a_run(app, base, tokens, args.duration, rng)
                    runs[key].started_second = int(time.time() % 60)
                    conditional = write_tablets(folder / "tablets-etag.txt", tokens, etags)
                    run_wrk(wrk, args, base, conditional, runs[key], args.duration, process.pid)
                print("run: full…", file=sys.stderr)
                spread_last_seen(app, rng)
                run_wrk(wrk, args, base, plain, runs["full"], args.duration, process.pid)
                if process.poll() is not None:
                    raise BenchError("gunicorn died during the runs; see its log")
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        if process is not None:
            stop_processes([process])
    about["load_after"] = os.getloadavg()[0]
    report = render(runs, args, about)
    figures = {"about": about, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "runs": {k: asdict(v) for k, v in runs.items()},
               "verdicts": {k: {"ok": ok, "detail": detail} for k, (ok, detail) in verdicts(runs).items()}}
    write_results(args.results / f"kiosk-{about['dialect']}-{stamp}", report, figures, f"gunicorn log: {log_path}")
    missed = [detail for key, (ok, detail) in verdicts(runs).items() if not ok and key != "all_304"]
    for detail in missed:
        print(f"target missed: {detail}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
