"""Live sync benchmark (issue 6): `python bench/live_sync_bench.py [options]` (`--help`).

Every process is real: Redis (REDIS_URL, else an embedded valkey), the Microsoft 365 sandbox (in this process,
HTTPS on a free port, store in memory, Outlook's throttling limits, `--latency-ms` per Graph call of Roomsync's),
the web app served by gunicorn (`--server werkzeug`, or when gunicorn is missing: werkzeug's threaded server in a
process of its own) with PUBLIC_BASE_URL pointing at it, so the sandbox's change notifications are real HTTP
POSTs to /webhooks/graph, `--workers` (default 2) `worker.py` processes and the cron process (`worker.py
--cron`, its sweep every `--sweep-seconds`: it replays spilled notifications and re-queues left-over work, as
in production; its reconcile and rooms check run once at start-up, before any pair exists, then every 15
minutes: never during a run). Database: a fresh SQLite file by
default; `--db postgresql` (DATABASE_URL if it is a PostgreSQL URL, else our own database, created if missing;
its schema is dropped and rebuilt) or `--db <URL>`.

Set-up: `--rooms` (default 10) sandbox rooms and as many spaces, paired with `sync.pairs.create_pair` (one initial
sync job each, run by the workers; the pairs are live once subscribed; a pair whose subscription job failed is
re-queued at once rather than after the cron's 10-minute renewal check, and noted in the report). Then two
measured parts:

1. Outlook side: `--changes` (default 2,000) changes to events on organizers' calendars through a `GraphClient`
   of the benchmark's own (the "driver"), `--rate` (50) per second in one burst each second: a half creates
   (the room as a resource attendee; on the 15-minute grid, so nothing is adjusted), 35 % moves (new time
   and subject), 15 % deletes. A move or delete only targets an event whose previous change has landed.
   Latency: from the driver's Graph write returning to the booking being as expected in the database
   (present; at the new times; cancelled), seen by a thread polling the bookings every `--poll-ms` (50 ms:
   the latency is an upper bound, at most one poll late).
2. Roomsync side: as many changes through `webapp.booking.operations` in this process (create / update /
   cancel, same mix and rate, holders with a Microsoft 365 mailbox), with this process's app on the same
   database and Redis, so each commit queues the pushes (`outbound.push_pending`) for the workers. Latency: from the
   operation's start (a push can land before the writing thread runs again) to the room's calendar holding the accepted event at the booking's times (or no longer
   holding it), seen through the sandbox's change feed (`state.changes`), so no polling error.

Counting Graph calls: a WSGI middleware around the sandbox app counts the HTTP requests that came over the
socket; the driver's carry a header of their own (`X-Roomsync-Bench: driver`) and are counted apart (and pay
no injected latency: Outlook users' own clients do not slow Roomsync down). "Graph calls per change" is
Roomsync's requests from the first change of a part until everything is quiet again (every change landed,
the queue empty, every notification processed, every push done), divided by the part's changes; token
requests are listed apart. Webhook response time: a timing middleware around the web app (`web_app()`, the
gunicorn factory) times every notification POST from the call into the app to the close of its response
and puts it in a Redis list; the sandbox's delivery thread also times each POST from its side (sent →
answered). Where time goes: the RQ registry of finished jobs gives each job's queue wait and run time by
function.

Prints Markdown tables, writes them to `bench/results/live-sync-<db>-<timestamp>.md` and the figures to the
`.json` beside it (worker and web logs in `live-sync-<timestamp>-logs/`). Targets: latency p99 < 5 s (both
parts), webhook p99 < 100 ms, at most 2 Graph calls per change (Outlook side). Exit status: 0; with `--check`
1 when a target is missed or a change never landed; 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import queue as queue_module
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import database_server, database_url, fill_size_defaults, is_postgresql  # noqa: E402
from bench.report import free_port, stop_processes, write_results  # noqa: E402

TIMING_KEY_ENV = "ROOMSYNC_LIVE_BENCH_TIMING_KEY"
DRIVER_HEADER = "X-Roomsync-Bench"
RESULTS = REPO / "bench" / "results"
DEFAULT_POSTGRESQL_URL = "postgresql://postgres@127.0.0.1/roomsync_live_bench"
LONDON = "Europe/London"
ZONE = ZoneInfo(LONDON)
GRAPH_KEYS = ("GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET", "GRAPH_AUTHORITY", "GRAPH_BASE_URL",
              "GRAPH_CA_BUNDLE")
OUTLOOK_LIMITS = {"budget": 10_000, "window_seconds": 600, "concurrency": 4}
TARGET_LATENCY_P99 = 5.0
TARGET_WEBHOOK_P99_MS = 100.0
TARGET_CALLS_PER_CHANGE = 2.0
FULL = {"changes": 2000, "rooms": 10, "rate": 50}
QUICK = {"changes": 40, "rooms": 2, "rate": 20}  # and --timeout 120 unless given
MIX = (("create", 0.50), ("update", 0.35), ("delete", 0.15))
WARM_BURSTS = 3  # the first bursts only create: there is nothing landed to move or delete yet
SPAN_DAYS = 170
HOURS = (7, 19)


# ---------------------------------------------------------------------------------------------- the web process


class WebhookTiming:
    """WSGI middleware (in the web process): times each notification POST to /webhooks/graph from the call into
    the app to the close of its response, and appends "<ms> <status>" to a Redis list."""

    def __init__(self, app, redis_url: str, key: str):
        from redis import Redis

        self.app, self.key = app, key
        self.redis = Redis.from_url(redis_url)

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST" or not environ.get("PATH_INFO", "").startswith("/webhooks/graph") \
                or "validationToken" in environ.get("QUERY_STRING", ""):
            return self.app(environ, start_response)
        began = time.perf_counter()
        status = []

        def recording(code, headers, exc_info=None):
            status.append(code.split(" ", 1)[0])
            return start_response(code, headers, exc_info)

        body = self.app(environ, recording)
        return _Closing(body, lambda: self._record(began, status))

    def _record(self, began: float, status: list) -> None:
        elapsed = (time.perf_counter() - began) * 1000
        try:
            self.redis.rpush(self.key, f"{elapsed:.3f} {status[0] if status else '?'}")
        except Exception:  # noqa: BLE001 — a lost sample must not break the webhook
            pass


class _Closing:
    def __init__(self, body, on_close):
        self.body, self.on_close = body, on_close

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.on_close()


def web_app():
    """The gunicorn factory (`bench.live_sync_bench:web_app()`): the real app, timed."""
    import gc

    from webapp import create_app

    app = create_app()
    gc.freeze()
    app.wsgi_app = WebhookTiming(app.wsgi_app, app.config["REDIS_URL"], os.environ[TIMING_KEY_ENV])
    return app


def serve_werkzeug(port: int) -> None:
    from werkzeug.serving import make_server

    make_server("127.0.0.1", port, web_app(), threaded=True).serve_forever()


# ---------------------------------------------------------------------------------------------- sandbox side


def request_kind(method: str, path: str) -> str:
    if path.endswith("/$batch"):
        return "POST $batch"
    parts = [p for p in path.split("/") if p][1:]
    if len(parts) >= 3 and parts[0] == "users":
        tail = parts[2:]
        what = tail[0] if tail[0] != "events" else ("events" if len(tail) == 1 else
                                                       ("event" if len(tail) == 2 else tail[2]))
        return f"{method} {what}"
    return f"{method} {parts[0] if parts else path}"


class Traffic:
    """WSGI middleware around the sandbox app: Roomsync's HTTP requests by kind, the driver's apart, token and
    other identity requests, 429s. `$batch` sub-requests (no socket) are counted as `inner`."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.roomsync: Counter = Counter()
            self.driver: Counter = Counter()
            self.inner = 0
            self.throttled = 0

    def snapshot(self) -> dict:
        with self._lock:
            return {"roomsync": dict(self.roomsync), "driver": dict(self.driver), "inner": self.inner,
                    "throttled": self.throttled}

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        outer = "werkzeug.socket" in environ
        driver = bool(environ.get("HTTP_X_ROOMSYNC_BENCH"))
        if path.startswith("/v1.0/"):
            kind = request_kind(method, path)
        elif path.endswith("/token"):
            kind = "token"
        elif path.startswith("/_sandbox"):
            return self.app(environ, start_response)
        else:
            kind = "identity (discovery)"

        def recording(status, headers, exc_info=None):
            code = int(status.split(" ", 1)[0])
            with self._lock:
                if not outer:
                    self.inner += 1
                else:
                    (self.driver if driver else self.roomsync)[kind] += 1
                    if code == 429 and not driver:
                        self.throttled += 1
            return start_response(status, headers, exc_info)

        return self.app(environ, recording)


def install_latency(state, milliseconds: float) -> None:
    """Injected latency per Roomsync HTTP request (none for `$batch` sub-requests, none for the driver)."""
    from flask import has_request_context, request

    state.faults.configure({"latency": {"ms": milliseconds}} if milliseconds else {})
    original = state.faults.latency_seconds

    def latency_seconds(path, mailbox_names=frozenset()):
        seconds = original(path, mailbox_names)
        if seconds and has_request_context() and (
                "werkzeug.socket" not in request.environ or request.headers.get(DRIVER_HEADER)):
            return 0.0
        return seconds

    state.faults.latency_seconds = latency_seconds


class DeliveryTiming:
    """The sandbox's notification transport, timed from its side: (seconds, notifications, status) per POST."""

    def __init__(self, send):
        self.send, self.samples, self._lock = send, [], threading.Lock()

    def __call__(self, url, json_body):
        if json_body is None:
            return self.send(url, json_body)
        began = time.perf_counter()
        result = self.send(url, json_body)
        status = result[0] if isinstance(result, tuple) else result
        with self._lock:
            self.samples.append((time.perf_counter() - began, len(json_body.get("value") or []), status))
        return result

    def take(self) -> list:
        with self._lock:
            samples, self.samples = self.samples, []
        return samples


class RoomWatch:
    """Listens to the sandbox's change feed: every write to a watched room's calendar, as (wall time, booking
    uid, (start, end) or None when the room no longer holds it). The uid is the organizer's event's
    `transactionId` (Roomsync's booking uid); a removed copy is known by the id it had."""

    def __init__(self, state, room_ids: set[str]):
        self.state, self.room_ids = state, room_ids
        self.copies: dict[str, str] = {}  # room copy id → booking uid
        self.seen: "queue_module.Queue" = queue_module.Queue()
        self.active = False
        state.changes.subscribe(self._on_change)

    def _on_change(self, change) -> None:
        if not self.active or change.mailbox not in self.room_ids:
            return
        now = time.time()
        store = self.state.store
        doc = store.peek("event", change.event_id)
        if change.change_type == "deleted" or doc is None or doc.get("isCancelled"):
            uid = self.copies.get(change.event_id)
            if uid:
                self.seen.put((now, uid, None))
            return
        ref = doc.get("_organizerRef") or {}
        organizer = store.peek("event", ref.get("eventId")) if ref.get("eventId") else None
        uid = (organizer or {}).get("transactionId")
        if not uid or (doc.get("responseStatus") or {}).get("response") != "accepted":
            return
        self.copies[change.event_id] = uid
        self.seen.put((now, uid, (datetime.fromisoformat(doc["_start"]), datetime.fromisoformat(doc["_end"]))))


# ---------------------------------------------------------------------------------------------- planning


class Slots:
    """15-minute slots taken per room and local day; a slot once taken is never given again (an old time may
    still be held while a move travels)."""

    def __init__(self, rng, today: date):
        self.rng, self.today, self.taken = rng, today, defaultdict(set)
        self.lock = threading.Lock()

    def take(self, room: str) -> tuple[datetime, datetime]:
        with self.lock:
            return self._take(room)

    def _take(self, room: str) -> tuple[datetime, datetime]:
        from webapp.timeutil import localize

        for _ in range(10_000):
            minutes = self.rng.choice((30, 60))
            day = self.today + timedelta(days=self.rng.randint(1, SPAN_DAYS))
            first = self.rng.randrange(HOURS[0] * 4, HOURS[1] * 4 - minutes // 15)
            wanted = {(day, first + n) for n in range(minutes // 15)}
            if not wanted & self.taken[room]:
                self.taken[room] |= wanted
                local = datetime.combine(day, dtime(0)) + timedelta(minutes=15 * first)
                start = localize(local, ZONE).astimezone(timezone.utc)
                return start, start + timedelta(minutes=minutes)
        raise BenchError(f"no free slot left in {room}")


def kinds_for(changes: int, rate: int) -> list[str]:
    """The kind of every change, burst by burst: creates first, then the mix."""
    counts = {kind: round(changes * share) for kind, share in MIX}
    counts["create"] += changes - sum(counts.values())
    warm = min(WARM_BURSTS * rate, counts["create"])
    rest = ["create"] * (counts["create"] - warm) + ["update"] * counts["update"] + ["delete"] * counts["delete"]
    random.Random(changes).shuffle(rest)
    return ["create"] * warm + rest


# ---------------------------------------------------------------------------------------------- expectations


@dataclass
class Expect:
    uid: str
    kind: str
    issued: float  # wall time the change was written (Graph call returned / operation committed)
    times: tuple | None  # expected (start, end) in UTC; None: gone (delete) ; for create any live state counts
    landed: float | None = None

    def matches(self, state) -> bool:
        if self.kind == "delete":
            return state is None
        if state is None:
            return False
        return state == self.times


class Ledger:
    """Expectations per booking uid, and which uids may take their next change (the previous one landed)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: dict[str, Expect] = {}
        self.done: list[Expect] = []
        self.ready: list[str] = []  # uids whose last change landed and that still exist
        self.info: dict[str, dict] = {}  # uid → whatever the driver needs to change it again
        self.latest: dict[str, tuple] = {}  # uid → (wall time, state) of its last observation

    def expect(self, expect: Expect) -> None:
        with self.lock:
            self.pending[expect.uid] = expect
            seen = self.latest.get(expect.uid)
        if seen is not None:  # the change landed before its writer got here (a fast worker): count it
            self.observe(expect.uid, seen[1], seen[0])

    def observe(self, uid: str, state, when: float) -> None:
        with self.lock:
            self.latest[uid] = (when, state)
            expect = self.pending.get(uid)
            if expect is None or when < expect.issued or not expect.matches(state):
                return
            expect.landed = when
            self.done.append(self.pending.pop(uid))
            if expect.kind != "delete":
                self.ready.append(uid)

    def take_ready(self, rng) -> str | None:
        with self.lock:
            if not self.ready:
                return None
            return self.ready.pop(rng.randrange(len(self.ready)))

    def outstanding(self) -> int:
        with self.lock:
            return len(self.pending)


# ---------------------------------------------------------------------------------------------- results


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))  # nearest rank
    return ordered[rank]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values) if values else float("nan"),
            "mean": statistics.fmean(values) if values else float("nan")}


@dataclass
class PartResult:
    name: str
    changes: int = 0
    by_kind: dict = field(default_factory=dict)
    landed: int = 0
    missing: list = field(default_factory=list)
    latency: dict = field(default_factory=dict)  # all kinds
    latency_by_kind: dict = field(default_factory=dict)
    write_seconds: float = 0.0  # first change → last change written
    achieved_rate: float = 0.0
    settle_seconds: float = 0.0  # first change → quiet
    roomsync_requests: dict = field(default_factory=dict)
    driver_requests: dict = field(default_factory=dict)
    calls_per_change: float = 0.0
    graph_requests: int = 0
    token_requests: int = 0
    throttled: int = 0
    webhook_ms: dict = field(default_factory=dict)
    webhook_statuses: dict = field(default_factory=dict)
    delivery: dict = field(default_factory=dict)
    jobs: dict = field(default_factory=dict)  # function → {"n", "wait": summary, "run": summary}
    failed_jobs: int = 0
    not_quiet: dict = field(default_factory=dict)  # what was still to do when the quiet wait ended
    sync_actions: dict = field(default_factory=dict)  # audit log actions of the sync during the part
    missing_detail: list = field(default_factory=list)  # for changes that never landed: where things stand
    driver_errors: list = field(default_factory=list)

    def misses(self, target_calls: bool) -> list[str]:
        out = []
        if self.missing:
            out.append(f"{self.name}: {len(self.missing)} of {self.changes} changes never landed")
        if not self.latency.get("p99", float("inf")) < TARGET_LATENCY_P99:
            out.append(f"{self.name}: latency p99 {self.latency.get('p99', float('nan')):.2f} s ≥ {TARGET_LATENCY_P99} s")
        if self.webhook_ms and not self.webhook_ms.get("p99", float("inf")) < TARGET_WEBHOOK_P99_MS:
            out.append(f"{self.name}: webhook p99 {self.webhook_ms['p99']:.1f} ms ≥ {TARGET_WEBHOOK_P99_MS} ms")
        if target_calls and self.calls_per_change > TARGET_CALLS_PER_CHANGE:
            out.append(f"{self.name}: {self.calls_per_change:.2f} Graph calls per change > {TARGET_CALLS_PER_CHANGE}")
        return out


class BenchError(Exception):
    """The benchmark could not run as designed: exit 2."""


# ---------------------------------------------------------------------------------------------- processes


def process_environment(app, sandbox_env: dict, queue_name: str, instance: Path, public_url: str,
                        timing_key: str, sweep_seconds: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPH_", "ROOMSYNC_")) and k != "DATABASE_URL"}
    env.update({key: sandbox_env[key] for key in GRAPH_KEYS})
    env.update(DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=app.config["REDIS_URL"],
               ROOMSYNC_RQ_QUEUE=queue_name, ROOMSYNC_INSTANCE=str(instance), SECRET_KEY=app.config["SECRET_KEY"],
               PUBLIC_BASE_URL=public_url, PYTHONUNBUFFERED="1", ROOMSYNC_SYNC_SWEEP_SECONDS=str(sweep_seconds), PYTHONPATH=str(REPO),
               **{TIMING_KEY_ENV: timing_key})
    return env


def web_command(server: str, port: int) -> list[str]:
    if server == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "bench.live_sync_bench:web_app()", "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--worker-class", "gthread", "--threads", "4", "--graceful-timeout", "5",
                "--no-control-socket", "--chdir", str(REPO), "--log-level", "warning"]
    return [sys.executable, str(Path(__file__).resolve()), "--serve-web", str(port)]


def wait_for_web(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the web server exited (status {process.returncode})")
        try:
            opener.open(url + "/login", timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise BenchError("the web server did not answer within 60 s")


# ---------------------------------------------------------------------------------------------- set-up


def add_room(state, email: str, name: str) -> dict:
    from bench.initial_sync_bench import add_room as add

    return add(state, email, name)


def setup(app, state, args, processes, logs: Path) -> dict:
    """Venue, users, rooms and spaces; pairs created (their initial syncs queued); waits until all are live."""
    from sqlalchemy import select

    from bench.initial_sync_bench import add_space, directory_people, setup_venue
    from webapp.auth.models import User
    from webapp.booking.models import Space, Venue
    from webapp.extensions import db
    from webapp.sandbox.seed import DEMO_DOMAIN
    from webapp.sync import pairs as pair_ops
    from webapp import jobs
    from webapp.sync.models import Pair, Subscription
    from webapp.sync.subscriptions import ensure_subscription

    world_notes: list[str] = []
    people = directory_people(state)[:20]
    with app.app_context():
        bench = setup_venue(people)
        rooms = []
        for number in range(1, args.rooms + 1):
            name = f"Live bench room {number:02d}"
            room = add_room(state, f"live-bench-{number:02d}@{DEMO_DOMAIN}", name)
            space_id = add_space(bench, name, number)
            rooms.append((room, space_id))
        venue, admin = db.session.get(Venue, bench.venue_id), db.session.get(User, bench.admin_id)
        pair_ids = [pair_ops.create_pair(venue, db.session.get(Space, space_id),
                                         pair_ops.RoomChoice(room["id"], room["mail"], room["displayName"]), admin).id
                    for room, space_id in rooms]
        db.session.remove()
    deadline = time.monotonic() + 180
    requeued: Counter = Counter()
    done_since: dict[int, float] = {}
    while True:
        with app.app_context():
            states = dict(db.session.execute(select(Pair.id, Pair.state).where(Pair.id.in_(pair_ids))).all())
            details = dict(db.session.execute(select(Pair.id, Pair.state_detail).where(Pair.id.in_(pair_ids))).all())
            # A pair whose subscription job failed (on SQLite: "database is locked", see the report) waits for
            # the cron's renew_due (every 10 minutes); queue its ensure_subscription sooner instead.
            errors = dict(db.session.execute(select(Subscription.pair_id, Subscription.error).where(
                Subscription.pair_id.in_(pair_ids))).all())
            for pair_id, pair_state in states.items():
                if pair_state != "done":
                    done_since.pop(pair_id, None)
                    continue
                since = done_since.setdefault(pair_id, time.monotonic())
                if time.monotonic() - since >= 8 and requeued[pair_id] < 5:
                    requeued[pair_id] += 1
                    done_since[pair_id] = time.monotonic()
                    world_notes.append(f"pair {pair_id} stayed initial-sync-done without a subscription (the "
                                       f"subscription job failed{': ' + errors[pair_id][:100] if errors.get(pair_id) else ''}"
                                       "; see the worker logs); re-queued")
                    jobs.queue().enqueue(ensure_subscription, pair_id)
            db.session.remove()
        if all(s == "live" for s in states.values()):
            break
        bad = {p: (s, details[p]) for p, s in states.items() if s in ("failed", "broken")}
        if bad:
            raise BenchError(f"pairs could not go live: {bad}")
        if any(p.poll() is not None for p in processes):
            raise BenchError(f"a process exited early; see {logs}")
        if time.monotonic() > deadline:
            raise BenchError(f"pairs not live after 180 s: {states}")
        time.sleep(0.25)
    with app.app_context():
        holders = {u.email: u.id for u in db.session.scalars(select(User).where(
            User.email.in_([p["mail"].lower() for p in people])))}
        db.session.remove()
    return {"venue_id": bench.venue_id, "admin_id": bench.admin_id, "people": people, "rooms": rooms,
            "pair_ids": pair_ids, "holders": holders, "notes": world_notes}


def warm_calendars(app, world) -> None:
    """The active-calendar check of every holder, made once before the clock (a steady state: it is cached)."""
    from webapp.auth.models import User
    from webapp.extensions import db
    from webapp.integration.operations import has_active_calendar

    from sqlalchemy.exc import OperationalError

    with app.app_context():
        for user_id in world["holders"].values():
            for attempt in range(5):  # on SQLite a worker's write can end our read snapshot: "database is locked"
                try:
                    has_active_calendar(db.session.get(User, user_id))
                    break
                except OperationalError:
                    db.session.rollback()
                    if attempt == 4:
                        raise
                    time.sleep(0.5)
        db.session.remove()


# ---------------------------------------------------------------------------------------------- waiting


def leftovers(app, rq_queue) -> dict:
    """What is still to do: queued and running jobs, unprocessed notifications, pending pushes."""
    from sqlalchemy import func, select

    from webapp.extensions import db
    from webapp.sync.models import InboundNotification, OutboundState

    with app.app_context():
        new = db.session.scalar(select(func.count()).select_from(InboundNotification)
                                .where(InboundNotification.state == "new"))
        pending = db.session.scalar(select(func.count()).select_from(OutboundState)
                                    .where(OutboundState.state == "pending"))
        db.session.remove()
    left = {"queued jobs": rq_queue.count, "running jobs": rq_queue.started_job_registry.count,
            "new notifications": new, "pending pushes": pending}
    return {k: v for k, v in left.items() if v}


def wait_until_settled(app, rq_queue, ledger: Ledger, state, deadline: float, quiet_seconds: float,
                       processes) -> tuple[float, dict]:
    """Until every change landed (or the deadline), then until the queue, notifications and pushes have been
    quiet for 1.5 s (at most `quiet_seconds` more). Returns (the moment it settled, what was left if never)."""
    def alive() -> None:
        if any(p.poll() is not None for p in processes):
            raise BenchError("a worker, the cron process or the web server exited during the run")

    said = idle_since = checked = time.monotonic()
    while ledger.outstanding() and time.monotonic() < deadline:
        alive()
        if time.monotonic() - checked > 2:
            checked = time.monotonic()
            left = leftovers(app, rq_queue)
            if left:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > quiet_seconds:
                break  # nothing left to do anywhere: what has not landed never will
            if time.monotonic() - said > 10:
                print(f"  … {ledger.outstanding()} changes not landed yet; {left}", file=sys.stderr)
                said = time.monotonic()
        time.sleep(0.1)
    calm_since, left = None, {}
    until = min(deadline, time.monotonic() + quiet_seconds)
    while time.monotonic() < until:
        alive()
        state.delivery.flush(timeout=2)
        left = leftovers(app, rq_queue)
        if not left:
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= 1.5:
                return calm_since, {}
        else:
            calm_since = None
        time.sleep(0.2)
    return time.monotonic(), left


def job_times(rq_queue, since: datetime) -> tuple[dict, int]:
    """Queue wait and run time of every finished job since `since`, by function; and the failed ones."""
    from rq.job import Job

    registry = rq_queue.finished_job_registry
    ids = registry.get_job_ids()
    waits, runs = defaultdict(list), defaultdict(list)
    for job in Job.fetch_many(ids, connection=rq_queue.connection):
        if job is None or job.enqueued_at is None or job.started_at is None or job.ended_at is None:
            continue
        if job.enqueued_at.replace(tzinfo=timezone.utc) < since:
            continue
        name = (job.func_name or "?").rsplit(".", 2)[-2:]
        name = ".".join(name)
        waits[name].append((job.started_at - job.enqueued_at).total_seconds())
        runs[name].append((job.ended_at - job.started_at).total_seconds())
    failed = rq_queue.failed_job_registry.count
    return {name: {"n": len(runs[name]), "wait": summary(waits[name]), "run": summary(runs[name])}
            for name in sorted(runs)}, failed


# ---------------------------------------------------------------------------------------------- part 1


class DbWatch(threading.Thread):
    """Polls the venue's bookings every `interval` s; hands each uid's state to the ledger."""

    def __init__(self, app, venue_id: int, ledger: Ledger, interval: float):
        super().__init__(name="db-watch", daemon=True)
        self.app, self.venue_id, self.ledger, self.interval = app, venue_id, ledger, interval
        self.stopping = threading.Event()
        self.polls, self.poll_seconds = 0, 0.0

    def run(self) -> None:
        from sqlalchemy import select

        from webapp.booking.models import Booking
        from webapp.extensions import db

        table = Booking.__table__
        query = select(table.c.uid, table.c.start_utc, table.c.end_utc, table.c.cancelled_at).where(
            table.c.venue_id == self.venue_id, table.c.origin == "microsoft")
        with self.app.app_context():
            while not self.stopping.is_set():
                began = time.time()
                with db.engine.connect() as conn:
                    rows = conn.execute(query).all()
                states = {uid: (None if cancelled else (start, end)) for uid, start, end, cancelled in rows}
                with self.ledger.lock:
                    waiting = list(self.ledger.pending)
                for uid in waiting:
                    self.ledger.observe(uid, states.get(uid), began)
                self.polls += 1
                self.poll_seconds += time.time() - began
                self.stopping.wait(max(0.0, self.interval - (time.time() - began)))


def outlook_part(app, sandbox, state, traffic, delivery, world, args, rq_queue, redis, timing_key,
                 processes) -> PartResult:
    from webapp.graph.auth import TokenProvider, new_session
    from webapp.graph.client import GraphClient
    from webapp.graph.settings import settings_from_values
    from webapp.graph.types import Attendee, EventDraft, Location
    from webapp.sync.inbound import booking_uid_for

    result = PartResult("Outlook → Roomsync")
    settings = settings_from_values(sandbox.env, "sandbox")
    session = new_session(settings)
    session.headers[DRIVER_HEADER] = "driver"
    driver = GraphClient(settings, tokens=TokenProvider(settings, session), session=session)
    driver.tokens.token()  # before the clock
    rng = random.Random(args.seed)  # only the pool's threads draw, under the ledger's lock (take_ready)
    slots = world["slots"]
    rooms = [room for room, _ in world["rooms"]]
    organizers = world["people"]
    ledger = Ledger()
    kinds = kinds_for(args.changes, args.rate)
    watch = DbWatch(app, world["venue_id"], ledger, args.poll_ms / 1000)
    errors: list[str] = []
    made = Counter()
    made_lock = threading.Lock()

    def create(number: int) -> None:
        room = rooms[number % len(rooms)]
        organizer = organizers[(number * 7) % len(organizers)]
        start, end = slots.take(room["mail"])
        draft = EventDraft(subject=f"Outlook meeting #{number}", start=start, end=end, body_text="Live bench.",
                           is_private=number % 20 == 7, response_requested=True,
                           attendees=(Attendee(email=room["mail"], name=room["displayName"], type="resource"),),
                           location=Location(display_name=room["displayName"], email=room["mail"],
                                             location_type="conferenceRoom"))
        event = driver.create_event(organizer["mail"], draft)
        written = time.time()
        doc = state.store.peek("event", event.id) or {}
        copy_id = (doc.get("_roomCopies") or {}).get(room["id"])
        if not copy_id:
            raise BenchError(f"{room['mail']} declined {start:%Y-%m-%d %H:%M}")
        uid = booking_uid_for(room["mail"], copy_id)
        ledger.info[uid] = {"mailbox": organizer["mail"], "event_id": event.id, "room": room, "number": number}
        ledger.expect(Expect(uid, "create", written, (start, end)))

    def change(kind: str, number: int) -> None:
        uid = ledger.take_ready(rng)
        if uid is None:  # nothing landed to change yet: create instead
            create(number)
            return "create"
        info = ledger.info[uid]
        if kind == "update":
            start, end = slots.take(info["room"]["mail"])
            driver.update_event(info["mailbox"], info["event_id"],
                                EventDraft(subject=f"Outlook meeting #{info['number']} (moved)", start=start, end=end))
            ledger.expect(Expect(uid, "update", time.time(), (start, end)))
        else:
            driver.delete_event(info["mailbox"], info["event_id"])
            ledger.expect(Expect(uid, "delete", time.time(), None))
        return kind

    def run(kind: str, number: int) -> None:
        try:
            if kind == "create":
                create(number)
            else:
                kind = change(kind, number)  # "create" when nothing had landed to change yet
            with made_lock:
                made[kind] += 1
        except Exception as error:  # noqa: BLE001 — reported, and the change counts as not landed
            errors.append(f"{kind} #{number}: {type(error).__name__}: {error}"[:300])

    result.by_kind, result.driver_errors = made, errors
    return _drive(app, state, traffic, delivery, args, rq_queue, redis, timing_key, processes, ledger, kinds,
                  watch, run, result, concurrent=True)


def _drive(app, state, traffic, delivery, args, rq_queue, redis, timing_key, processes, ledger, kinds, watch, run,
           result: PartResult, concurrent: bool) -> PartResult:
    redis.delete(timing_key)
    delivery.take()
    traffic.reset()
    since = datetime.now(timezone.utc)
    if watch is not None:
        watch.start()
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=16 if concurrent else 1, thread_name_prefix="driver") as pool:
        for burst in range(0, len(kinds), args.rate):
            due = began + burst // args.rate
            time.sleep(max(0.0, due - time.monotonic()))
            futures = [pool.submit(run, kind, burst + n) for n, kind in enumerate(kinds[burst:burst + args.rate])]
            if not concurrent:
                for future in futures:
                    future.result()
        pool.shutdown(wait=True)
    result.write_seconds = time.monotonic() - began
    result.changes = len(kinds)
    result.achieved_rate = len(kinds) / max(result.write_seconds, 1e-9)
    settled, result.not_quiet = wait_until_settled(app, rq_queue, ledger, state, time.monotonic() + args.timeout,
                                                   args.quiet_timeout, processes)
    result.settle_seconds = settled - began
    if watch is not None:
        watch.stopping.set()
        watch.join(timeout=10)
    counts = traffic.snapshot()
    result.roomsync_requests = dict(sorted(counts["roomsync"].items()))
    result.driver_requests = dict(sorted(counts["driver"].items()))
    result.token_requests = sum(n for k, n in counts["roomsync"].items() if k in ("token", "identity (discovery)"))
    result.graph_requests = sum(counts["roomsync"].values()) - result.token_requests
    result.throttled = counts["throttled"]
    result.calls_per_change = result.graph_requests / max(result.changes, 1)
    with ledger.lock:
        done, missing = list(ledger.done), list(ledger.pending.values())
    result.landed = len(done)
    result.missing = [f"{e.kind} {e.uid}" for e in missing] + list(result.driver_errors)
    result.latency = summary([e.landed - e.issued for e in done])
    result.latency_by_kind = {kind: summary([e.landed - e.issued for e in done if e.kind == kind])
                              for kind in ("create", "update", "delete") if any(e.kind == kind for e in done)}
    samples = [line.decode().split() for line in redis.lrange(timing_key, 0, -1)]
    result.webhook_ms = summary([float(ms) for ms, _ in samples])
    result.webhook_statuses = dict(Counter(status for _, status in samples))
    posts = delivery.take()
    result.delivery = {"posts": len(posts), "notifications": sum(n for _, n, _ in posts),
                       "ms": summary([s * 1000 for s, _, _ in posts]),
                       "statuses": dict(Counter(str(code) for _, _, code in posts))}
    result.jobs, result.failed_jobs = job_times(rq_queue, since)
    result.by_kind = dict(result.by_kind)
    result.sync_actions, result.missing_detail = diagnose(app, since, missing)
    return result


def diagnose(app, since: datetime, missing: list[Expect]) -> tuple[dict, list[str]]:
    """The sync's audit actions since `since`; for each change that never landed, the booking as it is."""
    from sqlalchemy import func, select

    from webapp.audit import AuditEntry
    from webapp.booking.models import Booking
    from webapp.extensions import db
    from webapp.sync.models import OutboundState

    with app.app_context():
        actions = dict(db.session.execute(select(AuditEntry.action, func.count()).where(
            AuditEntry.at >= since, AuditEntry.action.like("sync.%")).group_by(AuditEntry.action)).all())
        details = []
        for expect in missing[:20]:
            booking = db.session.scalar(select(Booking).where(Booking.uid == expect.uid))
            push = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == expect.uid))
            wanted = "cancelled" if expect.times is None else f"{expect.times[0]:%m-%d %H:%M}–{expect.times[1]:%H:%M}"
            have = "no booking" if booking is None else (
                f"cancelled" if booking.cancelled_at else f"{booking.start_utc:%m-%d %H:%M}–{booking.end_utc:%H:%M}")
            details.append(f"{expect.kind} {expect.uid[:8]}: wanted {wanted}, booking {have}"
                           + (f" (seq {booking.sequence}, origin {booking.origin})" if booking else "")
                           + (f", push {push.state} {push.error[:80]}" if push else ""))
        db.session.remove()
    return actions, details


# ---------------------------------------------------------------------------------------------- part 2


def roomsync_part(app, sandbox, state, traffic, delivery, world, args, rq_queue, redis, timing_key,
                  processes) -> PartResult:
    from webapp.auth.models import User
    from webapp.booking.models import Booking, Space, Venue
    from webapp.booking.operations import BookingInput, cancel_booking, create_booking, input_from_booking, \
        update_booking
    from webapp.extensions import db

    result = PartResult("Roomsync → Outlook")
    rng = random.Random(args.seed + 1)
    slots = world["slots"]
    rooms = world["rooms"]
    holders = list(world["holders"].values())
    ledger = Ledger()
    kinds = kinds_for(args.changes, args.rate)
    watch = RoomWatch(state, {room["id"] for room, _ in rooms})
    errors: list[str] = []
    made = Counter()
    consumer_stop = threading.Event()

    def consume() -> None:
        while not consumer_stop.is_set() or not watch.seen.empty():
            try:
                when, uid, times = watch.seen.get(timeout=0.1)
            except queue_module.Empty:
                continue
            ledger.observe(uid, times, when)

    consumer = threading.Thread(target=consume, name="room-watch", daemon=True)

    def create(number: int) -> None:
        room, space_id = rooms[number % len(rooms)]
        start, end = slots.take(room["mail"])
        holder = db.session.get(User, holders[(number * 3) % len(holders)])
        data = BookingInput(space_ids=[space_id], start=start, end=end, title=f"Roomsync booking #{number}",
                            private=number % 20 == 3, holder_id=holder.id)
        written = time.time()  # before the commit: its push may land before this thread runs again
        booking = create_booking(db.session.get(Venue, world["venue_id"]), data, actor=holder, bypass_rules=True)
        ledger.info[booking.uid] = {"room": room, "holder_id": holder.id}
        ledger.expect(Expect(booking.uid, "create", written, (start, end)))

    def change(kind: str, number: int) -> None:
        uid = ledger.take_ready(rng)
        if uid is None:  # nothing landed to change yet: create instead
            create(number)
            return "create"
        info = ledger.info[uid]
        booking = db.session.scalar(db.select(Booking).where(Booking.uid == uid))
        holder = db.session.get(User, info["holder_id"])
        if kind == "update":
            start, end = slots.take(info["room"]["mail"])
            data = input_from_booking(booking)
            data.start, data.end, data.title = start, end, f"{booking.title} (moved)"
            written = time.time()
            update_booking(booking, data, actor=holder, bypass_rules=True)
            ledger.expect(Expect(uid, "update", written, (start, end)))
        else:
            written = time.time()
            cancel_booking(booking, actor=holder)
            ledger.expect(Expect(uid, "delete", written, None))
        return kind

    def run(kind: str, number: int) -> None:
        try:
            with app.app_context():
                if kind == "create":
                    create(number)
                else:
                    kind = change(kind, number)  # "create" when nothing had landed to change yet
                db.session.remove()
            made[kind] += 1
        except Exception as error:  # noqa: BLE001
            errors.append(f"{kind} #{number}: {type(error).__name__}: {error}"[:300])

    _ = Space
    result.by_kind, result.driver_errors = made, errors
    watch.active = True
    consumer.start()
    try:
        return _drive(app, state, traffic, delivery, args, rq_queue, redis, timing_key, processes, ledger, kinds,
                      None, run, result, concurrent=False)
    finally:
        watch.active = False
        consumer_stop.set()
        consumer.join(timeout=10)


# ---------------------------------------------------------------------------------------------- report


def _f(value: float, digits: int = 2) -> str:
    return "–" if value != value else f"{value:.{digits}f}"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def render(parts: list[PartResult], args, about: dict) -> str:
    now = datetime.now(timezone.utc)
    lines = [
        f"# Live sync benchmark: {about['database']}, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"- {args.rooms} paired rooms, live; {args.changes} changes per side in bursts of {args.rate} per second; "
        f"{args.workers} `worker.py` processes; web: {about['server']} (PUBLIC_BASE_URL → it); "
        f"{about['redis']}",
        f"- sandbox in this process over HTTPS, Outlook's throttling limits, {args.latency_ms:g} ms latency per "
        f"Roomsync Graph request (none for the driver's); database {about['location']}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {about['load_before']:.2f} before the run, {os.getloadavg()[0]:.2f} after",
        "",
        "| measurement | part | p50 | p95 | p99 | max | target | result |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for part in parts:
        lat = part.latency
        what = ("Graph write → booking in the database (s)" if part.name.startswith("Outlook")
                else "commit → room holds the accepted event (s)")
        lines.append(f"| {what} | {part.name} | {_f(lat['p50'])} | {_f(lat['p95'])} | {_f(lat['p99'])} | "
                     f"{_f(lat['max'])} | p99 < {TARGET_LATENCY_P99:g} s | "
                     f"{_verdict(lat['p99'] < TARGET_LATENCY_P99 and not part.missing)} |")
        for kind, values in part.latency_by_kind.items():
            lines.append(f"| … {kind} ({values['n']}) | | {_f(values['p50'])} | {_f(values['p95'])} | "
                         f"{_f(values['p99'])} | {_f(values['max'])} | | |")
        hook = part.webhook_ms
        lines.append(f"| webhook response, in the web app (ms; {hook['n']} POSTs) | {part.name} | {_f(hook['p50'], 1)} | "
                     f"{_f(hook['p95'], 1)} | {_f(hook['p99'], 1)} | {_f(hook['max'], 1)} | "
                     f"p99 < {TARGET_WEBHOOK_P99_MS:g} ms | {_verdict(hook['n'] == 0 or hook['p99'] < TARGET_WEBHOOK_P99_MS)} |")
        sent = part.delivery["ms"]
        lines.append(f"| webhook POST seen by the sandbox (ms; {part.delivery['notifications']} notifications) | | "
                     f"{_f(sent['p50'], 1)} | {_f(sent['p95'], 1)} | {_f(sent['p99'], 1)} | {_f(sent['max'], 1)} | | |")
    lines += ["", "| part | changes | landed | written in (s) | rate (/s) | settled after (s) | Graph requests | "
                  "per change | token requests | 429s | failed jobs |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for part in parts:
        target = " (target ≤ 2)" if part.name.startswith("Outlook") else ""
        lines.append(f"| {part.name} | {part.changes} ({', '.join(f'{k} {n}' for k, n in part.by_kind.items())}) | "
                     f"{part.landed} | {_f(part.write_seconds, 1)} | {_f(part.achieved_rate, 1)} | "
                     f"{_f(part.settle_seconds, 1)} | {part.graph_requests} | {_f(part.calls_per_change)}{target} | "
                     f"{part.token_requests} | {part.throttled} | {part.failed_jobs} |")
    for part in parts:
        lines += ["", f"### {part.name}: Roomsync's requests by kind (driver's: "
                      f"{', '.join(f'{k} {n}' for k, n in part.driver_requests.items()) or 'none'})", "",
                  "| request | count | per change |", "|---|---:|---:|"]
        for kind, count in sorted(part.roomsync_requests.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {kind} | {count} | {count / max(part.changes, 1):.2f} |")
        lines += ["", f"### {part.name}: where the time goes (RQ jobs, s)", "",
                  "| job | runs | wait p50 | wait p99 | run p50 | run p99 | run total |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, job in part.jobs.items():
            lines.append(f"| {name} | {job['n']} | {_f(job['wait']['p50'])} | {_f(job['wait']['p99'])} | "
                         f"{_f(job['run']['p50'])} | {_f(job['run']['p99'])} | "
                         f"{_f(job['run']['mean'] * job['n'], 1)} |")
        if part.not_quiet:
            lines += ["", f"Not quiet {args.quiet_timeout:g} s after the last change landed: {part.not_quiet}"]
        if part.sync_actions:
            lines += ["", "Sync actions (audit log): " + ", ".join(f"{k} {n}" for k, n in sorted(part.sync_actions.items()))]
        if part.missing:
            lines += ["", f"Not landed ({len(part.missing)}): " + "; ".join(part.missing_detail or part.missing[:10])]
            lines += [f"- {line}" for line in part.driver_errors[:10]]
    if about.get("notes"):
        lines += ["", "Set-up notes: " + "; ".join(about["notes"])]
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="sqlite (default: a fresh file), postgresql (DATABASE_URL if it is one, else "
                                     f"{DEFAULT_POSTGRESQL_URL}, created if missing) or a database URL; the "
                                     "schema of a PostgreSQL database is dropped and rebuilt")
    parser.add_argument("--changes", type=int, help=f"changes per side (default {FULL['changes']})")
    parser.add_argument("--rooms", type=int, help=f"paired rooms (default {FULL['rooms']})")
    parser.add_argument("--rate", type=int, help=f"changes per second, one burst a second (default {FULL['rate']})")
    parser.add_argument("--workers", type=int, default=2, help="worker.py processes (default 2)")
    parser.add_argument("--server", choices=("gunicorn", "werkzeug"),
                        help="web server (default gunicorn when installed, else werkzeug threaded)")
    parser.add_argument("--latency-ms", type=float, default=50.0,
                        help="latency per Roomsync Graph request (default 50)")
    parser.add_argument("--poll-ms", type=float, default=50.0, help="database poll interval of part 1 (default 50)")
    parser.add_argument("--timeout", type=float,
                        help="seconds after the last change to wait for everything to land (default 600; 120 with "
                             "--quick)")
    parser.add_argument("--quiet-timeout", type=float, default=60.0,
                        help="seconds to wait, once every change landed, for the queue and the sync tables to "
                             "empty (default 60: two sweeps)")
    parser.add_argument("--sweep-seconds", type=int, default=30,
                        help="the cron process's sweep interval (default 30, as in production)")
    parser.add_argument("--parts", default="outlook,roomsync", help="outlook, roomsync or both (default)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the smoke test")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results and logs")
    parser.add_argument("--serve-web", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    fill_size_defaults(args, QUICK, FULL)
    if args.timeout is None:
        args.timeout = 120.0 if args.quick else 600.0
    if args.server is None:
        try:
            import gunicorn  # noqa: F401

            args.server = "gunicorn"
        except ImportError:
            args.server = "werkzeug"
    args.part_names = [p.strip() for p in args.parts.split(",") if p.strip()]
    if args.changes < 1 or args.rooms < 1 or args.rate < 1 or args.workers < 1 or \
            not set(args.part_names) <= {"outlook", "roomsync"}:
        parser.error("counts must be positive; --parts takes outlook and/or roomsync")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_web:
        serve_werkzeug(args.serve_web)
        return 0
    from flask_migrate import upgrade

    from bench.initial_sync_bench import redis_server
    from bench.run import ensure_postgresql_database, reset_schema
    from webapp import create_app
    from webapp.extensions import db
    from webapp.graph.settings import read_env_file
    from webapp.sandbox import notifications, sandbox_state
    from webapp.sandbox.serve import make_sandbox_server

    load_before = os.getloadavg()[0]
    args.results.mkdir(parents=True, exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = args.results / f"live-sync-{stamp}-logs"
    logs.mkdir(exist_ok=True)
    parts: list[PartResult] = []
    with tempfile.TemporaryDirectory(prefix="live-sync-bench-") as folder, \
            redis_server() as (redis_url, redis_about), ExitStack() as stack:
        folder = Path(folder)
        url = database_url(args.db, DEFAULT_POSTGRESQL_URL, folder / "live-sync-bench.sqlite3")
        if is_postgresql(url):
            ensure_postgresql_database(url)
        sandbox_server = make_sandbox_server("127.0.0.1", 0, folder / "sandbox", config={"SANDBOX_DB": ":memory:"})
        traffic = Traffic(sandbox_server.app.wsgi_app)
        sandbox_server.app.wsgi_app = traffic
        sandbox_server.start()
        stack.callback(sandbox_server.shutdown)
        processes: list[subprocess.Popen] = []
        try:
            sandbox_env = sandbox_server.env = read_env_file(sandbox_server.env_path)
            state = sandbox_state(sandbox_server.app)
            install_latency(state, args.latency_ms)
            state.throttle.configure(**OUTLOOK_LIMITS)
            delivery = DeliveryTiming(notifications.http_transport)
            state.delivery.set_transport(delivery)
            port = free_port()
            web_url = f"http://127.0.0.1:{port}"
            queue_name = f"live-sync-bench-{os.getpid()}"
            timing_key = f"live-sync-bench:{os.getpid()}:webhook"
            app = create_app({
                "INSTANCE_PATH": str(folder / "instance"), "SECRET_KEY": "roomsync-live-sync-bench",
                "DATABASE_URL": url, "REDIS_URL": redis_url, "RQ_QUEUE": queue_name, "SYNC_JOBS": False,
                "INTEGRATION_CACHE": "memory", "PUBLIC_BASE_URL": web_url,
                **{key: sandbox_env[key] for key in GRAPH_KEYS},
            })
            with app.app_context():
                if db.engine.dialect.name == "postgresql":
                    reset_schema()
                upgrade()
                dialect = db.engine.dialect.name
                database = database_server(db.session)
                from webapp import jobs

                rq_queue = jobs.queue()
                redis = rq_queue.connection
                db.session.remove()
            about = {"database": database, "location": app.config["SQLALCHEMY_DATABASE_URI"].split("@")[-1],
                     "redis": redis_about,
                     "server": ("gunicorn (1 process, gthread, 4 threads)" if args.server == "gunicorn"
                                else "werkzeug threaded server (its own process)"), "load_before": load_before}
            env = process_environment(app, sandbox_env, queue_name, folder / "instance", web_url, timing_key,
                                      args.sweep_seconds)
            stack.callback(stop_processes, processes)
            log_files = []
            for name, command in [("web", web_command(args.server, port))] + [
                    (f"worker-{n + 1}", [sys.executable, str(REPO / "worker.py"), "--log-level", "WARNING"])
                    for n in range(args.workers)] + [
                    ("cron", [sys.executable, str(REPO / "worker.py"), "--cron", "--log-level", "WARNING"])]:
                log_file = stack.enter_context(open(logs / f"{name}.log", "w"))
                log_files.append(log_file)
                processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file,
                                                  stderr=subprocess.STDOUT))
            wait_for_web(web_url, processes[0])
            print(f"web at {web_url} ({args.server}); {args.workers} workers; pairing {args.rooms} rooms…",
                  file=sys.stderr)
            world = setup(app, state, args, processes, logs)
            world["slots"] = Slots(random.Random(args.seed), datetime.now(ZONE).date())
            warm_calendars(app, world)
            about["notes"] = world["notes"]
            for name in args.part_names:
                print(f"part: {name} ({args.changes} changes at {args.rate}/s)…", file=sys.stderr)
                run = outlook_part if name == "outlook" else roomsync_part
                parts.append(run(app, sandbox_server, state, traffic, delivery, world, args, rq_queue, redis,
                                 timing_key, processes))
            rq_queue.delete(delete_jobs=True)
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        except BenchError as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 2
    report = render(parts, args, about)
    figures = {"database": about["database"], "server": about["server"], "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "serve_web"},
        "load_before": load_before, "load_after": os.getloadavg()[0], "parts": [asdict(p) for p in parts]}
    write_results(args.results / f"live-sync-{dialect}-{stamp}", report, figures, f"logs in {logs}")
    missed = [m for p in parts for m in p.misses(p.name.startswith("Outlook"))]
    for line in missed:
        print(f"target missed: {line}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
