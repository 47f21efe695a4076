"""The initial sync survives its worker being killed anywhere (issue 5, "Resumable"): real `worker.py`
processes run `sync.initial.run_initial_sync` from Redis against the sandbox tenant over HTTPS and are killed
with SIGKILL — the worker's process group and its work horse's (RQ forks the horse into a group of its own) —
again and again; after each kill a new worker is started and, once the dead worker's lease lapsed,
`schedule.sweep()` re-queues the run (as the cron process would). The end state must be what an uninterrupted
run gives: nothing doubled, nothing lost. Works on SQLite (the suite's database file) and PostgreSQL
(`DATABASE_URL`).

Tests:
- `test_a_run_killed_again_and_again_ends_as_an_uninterrupted_run_would`: a realistic room (31 events: 27
  meetings, one of them private, two off the grid, a weekly series with a moved and a cancelled occurrence,
  an overnight meeting to refuse) and 25 Roomsync bookings (a past one; 18 to restore, among them a series
  with a cancelled and a moved occurrence, two internal ones, a private one and a two-space booking; four
  clashing with imports; one whose holder the directory does not know; one with a one-way butler event).
  Each Graph call takes 50 ms. The kill moments
  come from a seeded random plan (`ROOMSYNC_CRASH_SEED` replays another seed; the kills are printed with
  `-s`): one early (steps 1–3), then some inside step 4 (while reading the room, and after a random number of
  imported events) and step 5 (after a random number of restores, and while Outlook creates are owed), and
  one in step 6 or 7 — aimed by watching the run's step and progress in the database.
- `test_a_kill_between_the_outlook_create_and_its_commit_makes_no_second_event`: the kill lands while the
  `$batch` of Outlook creates of step 5 is in flight — after Outlook made an event, before the run saved its
  id; the resumed run gets the same events back through `transactionId`, none twice.
- `test_a_stalled_worker_that_wakes_after_another_took_over_changes_nothing`: SIGSTOP instead of SIGKILL; a
  second worker takes the lapsed lease over and finishes; the first wakes and must change nothing.
- `test_a_kill_while_declining_an_event_still_reports_and_tells_its_organizer`: the kill lands while the room
  declines a refused event; the refusal is recorded first with the decline owed, so nothing is lost.
- `test_a_run_killed_five_times_still_retries_after_one_ordinary_failure`: kills are not failures; only
  failures count towards giving up.

Times are real (the sandbox's rooms judge "upcoming" by the wall clock), as in test_initial_sync.py.
Test-only helpers: `Workers` (start / kill / pause / wake / requeue), `observe`, `Target` and `kill_plan`.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time as clock_time
import uuid
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from webapp.audit import AuditEntry
from webapp.booking.models import Booking
from webapp.booking.operations import BookingInput, ExceptionInput, create_booking
from webapp.extensions import db
from webapp.graph import graph_client
from webapp.graph.types import (Attendee, EventDraft, Location, PatternedRecurrence, RecurrencePattern,
                                RecurrenceRange)
from webapp.integration.models import IntegrationSettings
from webapp.notify.models import OutboxMessage
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL
from webapp.sync import schedule
from webapp.sync.models import ACTIVE_STATES, EventLink, InitialSync, NotedBooking, Pair, SyncReportItem
from webapp.timeutil import localize, now_utc, to_local

from sandbox_server import GRAPH_KEYS

ROOT = Path(__file__).resolve().parents[1]
LONDON = "Europe/London"
ROOM = "board-room-a@roomsync.test"
PEOPLE = [f"{name}@roomsync.test" for name in (
    "priya.shah", "tom.baker", "chloe.evans", "daniel.okafor", "emma.wilson", "george.hughes", "hannah.clarke",
    "isaac.lewis")]
PRIYA, TOM, CHLOE, DANIEL, EMMA, GEORGE, HANNAH, ISAAC = PEOPLE
GHOST = "nobody.here@roomsync.test"  # a Roomsync user the directory does not know
ADMIN = "boss@roomsync.test"
LEASE_SECONDS = 2
IMPORT_KINDS = ("imported", "refused", "removed", "skipped")
SLOTS = "roomsync:graph:slots:"  # webapp.graph.limiter's Redis keys


# ---------------------------------------------------------------------------------------------- both sides


def day(offset: int, hh: int, mm: int = 0) -> datetime:
    zone = ZoneInfo(LONDON)
    today = to_local(now_utc(), zone).date()
    return localize(datetime.combine(today + timedelta(days=offset), time(hh, mm)), zone)


def meeting(organizer: str, subject: str, start: datetime, end: datetime, *, private=False, recurrence=None):
    return graph_client().create_event(organizer, EventDraft(
        subject=subject, start=start, end=end, is_private=private, recurrence=recurrence,
        time_zone=LONDON if recurrence else None, attendees=(Attendee(email=ROOM, type="resource"),),
        location=Location(display_name="Board room A", email=ROOM)))


def book(venue, spaces, start, end, holder, title, exceptions=(), **extra) -> Booking:
    from webapp.auth.models import User

    admin = db.session.scalar(select(User).where(User.email == ADMIN))
    return create_booking(venue, BookingInput(space_ids=[s.id for s in spaces], start=start, end=end, title=title,
                                              holder_id=holder.id if holder else None, **extra),
                          actor=admin, bypass_rules=True, exceptions=exceptions)


def room_answer(organizer_event_id: str, organizer: str = TOM) -> str | None:
    """The room's response on the organizer's event."""
    event = graph_client().get_event(organizer, organizer_event_id)
    return {a.email.lower(): a.response for a in event.attendees}.get(ROOM)


def outlook_events(mailbox: str, subject: str) -> list:
    return [e for e in graph_client().calendar_view(mailbox, day(0, 0), day(45, 0)) if e.subject == subject]


@pytest.fixture
def people(connected, sandbox_admin, make_venue, make_space, make_user):
    """The venue, Board room A and B, Roomsync users for the directory's people, a ghost and an admin. Uses
    `sandbox_admin`, so the tenant is restored after the test (events made here do not leak into the next)."""
    venue = make_venue(allow_overnight=False)
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email=DEMO_BUTLER_EMAIL, enabled=True,
                                       last_validated_at=now_utc()))
    db.session.commit()
    a, b = make_space(venue, "Board room A"), make_space(venue, "Board room B")
    users = {email: make_user(email, first_name=email.split(".")[0].title()) for email in PEOPLE}
    users[GHOST] = make_user(GHOST, first_name="No", last_name="Body")
    users[ADMIN] = make_user(ADMIN, role="admin")
    return dict(venue=venue, a=a, b=b, users=users)


def pair_of(space) -> Pair:
    pair = Pair(venue_id=space.venue_id, space_id=space.id, room_email=ROOM, room_id=f"id-{ROOM}",
                room_display_name="Board room A", state="queued")
    db.session.add(pair)
    db.session.commit()
    return pair


# ---------------------------------------------------------------------------------------------- workers


@dataclass
class Seen:
    """The run as the database shows it now (read outside any ORM session: fresh every time)."""

    state: str
    step: int = 0
    attempts: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = None
    imports: int = 0  # import-side report lines (imported / refused / removed / skipped)
    decided: int = 0  # noted bookings restored or not
    linked: int = 0  # restored ones whose Outlook event id is saved
    in_flight: int = 0  # restored ones whose Outlook event id is not saved yet

    def progress(self, step: int) -> int:
        return {4: self.imports, 5: self.decided}.get(step, 0)


def observe(pair_id: int) -> Seen:
    with db.engine.connect() as conn:
        state = conn.scalar(select(Pair.state).where(Pair.id == pair_id))
        run = conn.execute(select(InitialSync.id, InitialSync.step, InitialSync.attempts, InitialSync.lease_owner,
                                  InitialSync.lease_until).where(InitialSync.pair_id == pair_id)).first()
        if run is None:
            return Seen(state)
        imports = conn.scalar(select(func.count()).select_from(SyncReportItem).where(
            SyncReportItem.run_id == run.id, SyncReportItem.kind.in_(IMPORT_KINDS)))
        rows = conn.execute(select(NotedBooking.state, NotedBooking.outlook_event_id.is_not(None), func.count())
                            .where(NotedBooking.run_id == run.id)
                            .group_by(NotedBooking.state, NotedBooking.outlook_event_id.is_not(None))).all()
    decided = sum(n for s, _, n in rows if s != "noted")
    linked = sum(n for s, has_id, n in rows if s == "restored" and has_id)
    in_flight = sum(n for s, has_id, n in rows if s == "restored" and not has_id)
    return Seen(state, run.step, run.attempts, run.lease_owner, run.lease_until, imports, decided, linked, in_flight)


_LOG_NUMBERS = itertools.count(1)


class Workers:
    """One real `python worker.py` at a time, in its own process group, on the test's queue and database."""

    def __init__(self, env: dict, logs: Path, redis: Redis, pair_id: int):
        self.env, self.logs, self.redis, self.pair_id = env, logs, redis, pair_id
        self.proc: subprocess.Popen | None = None
        self.paused: list[int] = []
        self._slots: dict[bytes, set[bytes]] = {}

    def start(self) -> None:
        self._slots = self._limiter_slots()
        log = open(self.logs / f"worker-{next(_LOG_NUMBERS):02}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int:
        """SIGKILL the worker and its work horse; answers how many processes died with the worker (its horse,
        and RQ's scheduler process if this worker ran one). RQ forks the horse into a process group of its own
        (`os.setpgrp`), so killing the worker's group is not enough: freeze that group first (no new horse can
        be forked), kill each child's group, then the worker's, and wait until none of them runs any more."""
        worker = self.proc.pid
        os.killpg(worker, signal.SIGSTOP)
        children = _children(worker)
        for child in children:
            with suppress(ProcessLookupError):
                os.killpg(os.getpgid(child), signal.SIGKILL)
        os.killpg(worker, signal.SIGKILL)
        self.proc.wait(timeout=10)
        deadline = clock_time.monotonic() + 10
        while not all(_gone(pid) for pid in children):
            assert clock_time.monotonic() < deadline, "a work horse outlived its worker"
            clock_time.sleep(0.01)
        self.proc = None
        self._release_dead_slots()
        return len(children)

    def pause(self) -> None:
        """SIGSTOP the worker and its work horse: a worker stalled (a paused VM, swapping) past its lease."""
        os.killpg(self.proc.pid, signal.SIGSTOP)
        self.paused = _children(self.proc.pid)
        for child in self.paused:
            with suppress(ProcessLookupError):
                os.killpg(os.getpgid(child), signal.SIGSTOP)

    def wake(self) -> None:
        for child in self.paused:
            with suppress(ProcessLookupError):
                os.killpg(os.getpgid(child), signal.SIGCONT)
        os.killpg(self.proc.pid, signal.SIGCONT)

    def requeue_when_lapsed(self, timeout: float = 15) -> None:
        """What the cron process does: once the dead worker's lease has lapsed, `sweep()` queues the run again."""
        deadline = clock_time.monotonic() + timeout
        while True:
            seen = observe(self.pair_id)
            if seen.state not in ACTIVE_STATES:
                return
            if seen.lease_until is None or seen.lease_until < now_utc():
                break
            assert clock_time.monotonic() < deadline, "the lease never lapsed"
            clock_time.sleep(0.05)
        db.session.rollback()
        assert self.pair_id in schedule.sweep()

    def stop(self) -> None:
        if self.alive():
            self.kill()

    def log_tail(self, lines: int = 60) -> str:
        texts = []
        for path in sorted(self.logs.glob("worker-*.log"))[-2:]:
            texts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)

    # A killed worker never gives back its Graph limiter slots (webapp.graph.limiter): they would lapse after
    # connect + read timeout + 10 s (45 s). Kills come every few seconds here, so four dead slots on one
    # mailbox would make the next worker wait 30 s and fail with Throttled: release them as their lapse would.
    def _limiter_slots(self) -> dict[bytes, set[bytes]]:
        return {key: set(self.redis.zrange(key, 0, -1)) for key in self.redis.scan_iter(SLOTS + "*")}

    def _release_dead_slots(self) -> None:
        for key, members in self._limiter_slots().items():
            dead = members - self._slots.get(key, set())
            if dead:
                self.redis.zrem(key, *dead)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _is_horse(pid: int) -> bool:
    """RQ's work horse leads a process group of its own (`os.setpgrp`); the scheduler process does not."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return True


def _gone(pid: int) -> bool:
    """Dead (a zombie waiting for a reaper counts: it runs no code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.fixture
def workers(app, connected, redis_url, tmp_path):
    """A queue of its own (`crash-<uuid>`) and the environment of the workers: the suite's database, the
    sandbox's GRAPH_* settings, a 2 s lease. The test process's app queues on the same queue (`sweep`)."""
    name = f"crash-{uuid.uuid4()}"
    keys = ("SYNC_JOBS", "REDIS_URL", "RQ_QUEUE", "SYNC_LEASE_SECONDS")
    saved = {key: app.config.get(key) for key in keys}
    app.config.update(SYNC_JOBS=False, REDIS_URL=redis_url, RQ_QUEUE=name, SYNC_LEASE_SECONDS=LEASE_SECONDS)
    app.extensions["roomsync_redis"] = None
    env = {k: v for k, v in os.environ.items() if k not in ("ROOMSYNC_SYNC_JOBS",) and not k.startswith("GRAPH_")}
    instance = tmp_path / "worker-instance"
    instance.mkdir()
    env.update({key: connected.env[key] for key in GRAPH_KEYS})
    env.update(DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], ROOMSYNC_INSTANCE=str(instance),
               SECRET_KEY="test-secret", REDIS_URL=redis_url, ROOMSYNC_RQ_QUEUE=name,
               ROOMSYNC_SYNC_LEASE_SECONDS=str(LEASE_SECONDS), PUBLIC_BASE_URL=app.config.get("PUBLIC_BASE_URL", ""),
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    redis = Redis.from_url(redis_url)
    made = []

    def make(pair_id: int) -> Workers:
        made.append(Workers(env, tmp_path, redis, pair_id))
        return made[-1]

    yield make
    for pool in made:
        pool.stop()
    Queue(name, connection=redis).delete(delete_jobs=True)
    redis.close()
    app.config.update(saved)
    app.extensions["roomsync_redis"] = None


def enqueue_run(pair_id: int) -> None:
    from webapp.jobs import queue
    from webapp.sync.initial import run_initial_sync

    queue().enqueue(run_initial_sync, pair_id)


def wait_until(condition, what: str, pool: Workers | None, timeout: float = 60, every: float = 0.005):
    """Poll `condition` until it holds; `pool`'s worker (if given) must stay alive meanwhile."""
    deadline = clock_time.monotonic() + timeout
    logs = pool.log_tail if pool is not None else str
    while True:
        value = condition()
        if value:
            return value
        assert pool is None or pool.alive(), f"the worker exited while waiting for {what}\n{logs()}"
        assert clock_time.monotonic() < deadline, f"timed out waiting for {what}\n{logs()}"
        clock_time.sleep(every)


# ---------------------------------------------------------------------------------------------- kill plan


@dataclass(frozen=True)
class Target:
    """When to kill the worker. `early`: in any step up to `step`, `after` seconds after this worker claimed
    the run. Otherwise in `step`: once the step's progress counter (`Seen.progress`) reaches `progress`; or
    `after` seconds after restored bookings began to owe their Outlook events (`in_flight`); or `after`
    seconds after this worker was first seen in the step."""

    step: int
    after: float = 0.0
    progress: int | None = None
    in_flight: bool = False
    early: bool = False

    def missed(self, seen: Seen) -> bool:
        return seen.step > self.step

    def due(self, seen: Seen, since_claim: float, since_step: float | None, since_in_flight: float | None) -> bool:
        if self.early:
            return since_claim >= self.after
        if seen.step != self.step:
            return False
        if self.progress is not None:
            return seen.progress(self.step) >= self.progress
        if self.in_flight:
            return since_in_flight is not None and since_in_flight >= self.after
        return since_step is not None and since_step >= self.after


def kill_plan(rng: random.Random, imports: int, noted: int) -> list[Target]:
    plan = [Target(3, early=True, after=rng.uniform(0.0, 0.1)),  # noting, removing butler events, clearing
            Target(4, after=rng.uniform(0.05, 1.2))]  # listing the room, reading the organizers' copies
    plan += [Target(4, progress=p) for p in sorted(rng.sample(range(2, imports - 2), rng.randint(1, 2)))]
    plan += [Target(5, progress=p) for p in sorted(rng.sample(range(1, noted - 3), rng.randint(1, 2)))]
    plan.append(Target(5, in_flight=True, after=rng.uniform(0.2, 1.0)))  # the restores' Outlook creates
    plan.append(Target(rng.choice((6, 7)), after=rng.uniform(0.0, 0.08)))  # short steps: soon after they start
    return plan


@dataclass
class Kill:
    target: Target
    step: int  # the run's step right after the kill: the one it was in
    seen: Seen
    children: int  # processes killed with the worker: its work horse (and RQ's scheduler, if it ran one)


def run_with_kills(pool: Workers, plan: list[Target], timeout: float) -> tuple[list[Kill], list[Target]]:
    """Start a worker, kill it at each target in turn (a target whose step is over by the time its worker
    works is missed), restart and re-queue after each kill; until the pair is no longer active."""
    kills, missed, pending = [], [], list(plan)
    deadline = clock_time.monotonic() + timeout
    pool.start()
    dead_owner = observe(pool.pair_id).lease_owner
    claimed_at, step_since, in_flight_since = None, {}, None
    while True:
        seen = observe(pool.pair_id)
        if seen.state not in ACTIVE_STATES:
            return kills, missed
        assert clock_time.monotonic() < deadline, f"not done in {timeout} s: {seen}\n{pool.log_tail()}"
        assert pool.alive(), f"the worker exited\n{pool.log_tail()}"
        now = clock_time.monotonic()
        if pending and seen.lease_owner not in (None, dead_owner):  # this worker has claimed the run
            claimed_at = claimed_at or now
            step_since.setdefault(seen.step, now)
            if seen.in_flight and in_flight_since is None:
                in_flight_since = now
            target = pending[0]
            if target.missed(seen):
                missed.append(pending.pop(0))
                continue
            if target.due(seen, now - claimed_at, now - step_since[seen.step],
                          None if in_flight_since is None else now - in_flight_since):
                children = pool.kill()
                after = observe(pool.pair_id)
                kills.append(Kill(pending.pop(0), after.step, after, children))
                if after.state not in ACTIVE_STATES:
                    return kills, missed
                dead_owner, claimed_at, step_since, in_flight_since = after.lease_owner, None, {}, None
                pool.start()
                pool.requeue_when_lapsed()
                continue
        clock_time.sleep(0.005)


# ---------------------------------------------------------------------------------------------- the big one


@dataclass
class Expected:
    imported: list[str]
    adjusted: dict[str, tuple]  # title → (organizer, event id, start, end after)
    refused: tuple  # (organizer, event id, title)
    restored: dict[str, tuple]  # title → (calendar it is on, occurrences)
    not_restored: dict[str, str]  # title → part of the reason
    noted: int
    deleted: int


def build_mix(people) -> Expected:
    venue, a, b, users = people["venue"], people["a"], people["b"], people["users"]
    client = graph_client()
    # Outlook: 27 meetings on the grid over 9 days (one private), two off the grid, an overnight one, a series.
    imported = []
    for n in range(27):
        offset, hh = 1 + n // 3, (8, 10, 12)[n % 3]
        title = f"Imported {n:02}"
        meeting(PEOPLE[n % 6], title, day(offset, hh), day(offset, hh + 1), private=n == 7)
        imported.append(title)
    quick = meeting(TOM, "Quick sync", day(1, 13, 53), day(1, 14, 7))
    drift = meeting(PRIYA, "Drifting stand-up", day(2, 14, 2), day(2, 14, 18))
    night = meeting(TOM, "Night deploy", day(3, 22), day(4, 2))
    weekly = PatternedRecurrence(
        RecurrencePattern(type="weekly", interval=1, days_of_week=(day(1, 9).strftime("%A").lower(),),
                          first_day_of_week="monday"),
        RecurrenceRange(type="numbered", start_date=day(1, 9).date(), number_of_occurrences=6,
                        recurrence_time_zone=LONDON))
    master = meeting(CHLOE, "Weekly 1:1", day(1, 16), day(1, 16, 45), recurrence=weekly)
    instances = sorted((e for e in client.calendar_view(CHLOE, day(0, 0), day(45, 0))
                        if e.series_master_id == master.id), key=lambda e: e.start)
    assert len(instances) == 6
    client.delete_event(CHLOE, instances[2].id)
    client.update_event(CHLOE, instances[3].id, EventDraft(start=instances[3].start + timedelta(hours=1),
                                                           end=instances[3].end + timedelta(hours=1)))
    imported += ["Quick sync", "Drifting stand-up", "Weekly 1:1"]

    # Roomsync: 16 singles to restore (two internal, one private), a series to restore, a two-space booking,
    # four clashing with imports, a holder unknown to the directory, a past booking (deleted, never noted).
    restored: dict[str, tuple] = {}
    for n in range(16):
        offset, hh = 10 + n // 4, (8, 10, 12, 14)[n % 4]
        internal = n in (3, 11)
        holder = None if internal else users[PEOPLE[(n + 2) % len(PEOPLE)]]
        title = f"Roomsync {n:02}"
        made = book(venue, [a], day(offset, hh), day(offset, hh + 1), holder, title, private=n == 6,
                    kind="internal" if internal else "regular")
        restored[title] = (DEMO_BUTLER_EMAIL if internal else holder.email, 1)
        if n == 0:  # placed in the room by the one-way sync: step 2 removes its butler event
            butler_event = client.create_event(DEMO_BUTLER_EMAIL, EventDraft(
                subject="Board room A: Roomsync 00", start=day(offset, hh), end=day(offset, hh + 1)))
            db.session.add(EventLink(booking_uid=made.uid, kind="one_way", room_email=ROOM,
                                     organizer_email=DEMO_BUTLER_EMAIL, organizer_event_id=butler_event.id))
            db.session.commit()
    book(venue, [a], day(10, 18), day(10, 19), users[EMMA], "Roomsync weekly", rrule="FREQ=WEEKLY;COUNT=4",
         exceptions=(ExceptionInput(original_start=day(17, 18), cancelled=True),
                     ExceptionInput(original_start=day(24, 18), start=day(24, 19), end=day(24, 20))))
    restored["Roomsync weekly"] = (EMMA, 3)  # one cancelled, one moved to 19:00
    book(venue, [a, b], day(13, 16), day(13, 17), users[PRIYA], "Both rooms")
    restored["Both rooms"] = (PRIYA, 1)
    clashes = {"Clash 1": (TOM, day(1, 10, 30), day(1, 11, 30)), "Clash 2": (PRIYA, day(2, 8, 30), day(2, 9)),
               "Clash 3": (DANIEL, day(4, 12, 15), day(4, 12, 45)),
               "Clash with the 1:1": (HANNAH, day(8, 16, 15), day(8, 16, 30))}
    for title, (holder, start, end) in clashes.items():
        book(venue, [a], start, end, users[holder], title)
    book(venue, [a], day(12, 16), day(12, 17), users[GHOST], "Ghost's booking")
    book(venue, [a], day(-2, 10), day(-2, 11), users[TOM], "Old one")
    not_restored = {title: "conflicts with an event imported from Outlook" for title in clashes}
    not_restored["Ghost's booking"] = "not in the Microsoft 365 directory"
    return Expected(
        imported=imported,
        adjusted={"Quick sync": (TOM, quick.id, day(1, 13, 45), day(1, 14)),
                  "Drifting stand-up": (PRIYA, drift.id, day(2, 14), day(2, 14, 30))},
        refused=(TOM, night.id, "Night deploy"), restored=restored, not_restored=not_restored,
        noted=len(restored) + len(not_restored), deleted=len(restored) + len(not_restored) + 1)


def assert_end_state(pair_id: int, space, expected: Expected) -> None:
    db.session.rollback()
    db.session.expire_all()
    pair = db.session.get(Pair, pair_id)
    run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair_id))
    assert pair.state in ("done", "live"), pair.state_detail
    assert run.step == 8 and run.finished_at is not None

    def lines(kind):
        return list(db.session.scalars(select(SyncReportItem).where(SyncReportItem.run_id == run.id,
                                                                    SyncReportItem.kind == kind)))

    bookings = [b for b in db.session.scalars(select(Booking)) if space.id in {s.id for s in b.spaces}]
    # Every room event imported exactly once, each with one link and one report line.
    assert Counter(b.title for b in bookings if b.origin == "microsoft") == Counter(expected.imported)
    imported = lines("imported")
    assert len(imported) == len(expected.imported)
    assert len({line.booking_uid for line in imported}) == len(imported)
    links = list(db.session.scalars(select(EventLink).where(EventLink.room_email == ROOM, EventLink.kind == "two_way")))
    assert len(links) == len(expected.imported) + len(expected.restored)
    assert len({link.booking_uid for link in links}) == len(links)
    room_events = [link.room_event_id for link in links]
    assert None not in room_events and len(set(room_events)) == len(room_events)  # one link per room event
    uids = {b.uid for b in bookings}
    assert {link.booking_uid for link in links} == uids
    series = next(b for b in bookings if b.title == "Weekly 1:1")
    assert series.rrule and {e.cancelled for e in series.exceptions} == {True, False}
    # The adjusted events, here and written back to their organizers' events.
    adjusted = {line.title: line for line in lines("adjusted")}
    assert set(adjusted) == set(expected.adjusted)
    for title, (organizer, event_id, start, end) in expected.adjusted.items():
        assert (adjusted[title].start_utc, adjusted[title].end_utc, adjusted[title].pending) == (start, end, None)
        event = graph_client().get_event(organizer, event_id)
        assert (event.start, event.end) == (start, end), title
    # The overnight event: refused once, declined as the room, its organizer told once.
    organizer, event_id, title = expected.refused
    refused = lines("refused")
    assert [(line.title, "spans midnight" in line.reason) for line in refused] == [(title, True)]
    attendees = {a.email.lower(): a.response for a in graph_client().get_event(organizer, event_id).attendees}
    assert attendees[ROOM] == "declined"
    mail = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "event_refused")))
    assert len(mail) == 1 and organizer in str(mail[0].to)
    # Restored exactly once here and exactly once in Outlook (on the holder's calendar, the butler's for
    # internal bookings), under the uid chosen for it.
    assert Counter(b.title for b in bookings if b.origin == "roomsync") == Counter(list(expected.restored))
    restored = lines("restored")
    assert sorted(line.booking_uid for line in restored) == sorted(
        b.uid for b in bookings if b.origin == "roomsync")
    noted = list(db.session.scalars(select(NotedBooking).where(NotedBooking.run_id == run.id)))
    by_uid = {n.restored_uid: n for n in noted if n.state == "restored"}
    for booking in (b for b in bookings if b.origin == "roomsync"):
        calendar, occurrences = expected.restored[booking.title]
        found = outlook_events(calendar, booking.title)
        assert len(found) == occurrences, (booking.title, calendar, [(e.id, e.start) for e in found])
        masters = {e.series_master_id or e.id for e in found}
        assert len(masters) == 1, booking.title
        if booking.rrule:  # the restored series' moved occurrence, moved in Outlook too
            assert day(24, 19) in {e.start for e in found}, [e.start for e in found]
        assert by_uid[booking.uid].outlook_event_id == masters.pop()
    # Not restored, each with its reason; no noted booking lost.
    missing = {line.title: line.reason for line in lines("not_restored")}
    assert set(missing) == set(expected.not_restored)
    for title, reason in expected.not_restored.items():
        assert reason in missing[title], (title, missing[title])
    assert len(noted) == expected.noted
    assert Counter(n.state for n in noted) == {"restored": len(expected.restored),
                                               "not_restored": len(expected.not_restored)}
    assert run.counts["noted"] == expected.noted and run.counts["deleted"] == expected.deleted
    assert run.counts["butler_removed"] == 1
    # No action audited twice.
    actions = Counter(db.session.scalars(select(AuditEntry.action).where(AuditEntry.subject == f"pair:{pair_id}")))
    assert {k: actions[k] for k in ("sync.imported", "sync.restored", "sync.not_restored", "sync.refused",
                                    "sync.noted", "sync.space_cleared", "sync.started", "sync.finished",
                                    "sync.parity")} == {
        "sync.imported": len(expected.imported), "sync.restored": len(expected.restored),
        "sync.not_restored": len(expected.not_restored), "sync.refused": 1, "sync.noted": 1,
        "sync.space_cleared": 1, "sync.started": 1, "sync.finished": 1, "sync.parity": 1}
    assert run.parity["agrees"] is True, run.parity


def test_a_run_killed_again_and_again_ends_as_an_uninterrupted_run_would(people, sandbox_admin, workers):
    seed = int(os.environ.get("ROOMSYNC_CRASH_SEED", "20260302"))
    expected = build_mix(people)
    pair = pair_of(people["a"])
    pool = workers(pair.id)
    sandbox_admin.faults({"latency": {"ms": 50}})
    plan = kill_plan(random.Random(seed), imports=len(expected.imported) + 1, noted=expected.noted)
    enqueue_run(pair.id)
    started = clock_time.monotonic()

    kills, missed = run_with_kills(pool, plan, timeout=120)

    took = clock_time.monotonic() - started
    per_step = Counter(k.step for k in kills)
    print(f"\nseed {seed}: {len(kills)} kills in {took:.1f} s, per step {dict(sorted(per_step.items()))}; "
          f"missed {missed}\n" + "\n".join(f"  {k.target} -> step {k.step}, {k.children} children: {k.seen}" for k in kills))
    pool.stop()
    assert observe(pair.id).state in ("done", "live"), (observe(pair.id), db.session.get(Pair, pair.id).state_detail,
                                              pool.log_tail())
    assert len(kills) >= 5, (kills, missed)
    assert per_step[4] >= 2 and per_step[5] >= 2, per_step
    assert any(k.step == 5 and k.seen.in_flight for k in kills), "no kill landed while Outlook creates were owed"
    assert_end_state(pair.id, people["a"], expected)


# ---------------------------------------------------------------------------------------------- precise kills


def test_a_kill_between_the_outlook_create_and_its_commit_makes_no_second_event(people, sandbox_admin, workers):
    venue, a, users = people["venue"], people["a"], people["users"]
    meeting(PRIYA, "Design review", day(1, 10), day(1, 11))
    holders = PEOPLE[:6]
    for n, email in enumerate(holders):
        book(venue, [a], day(3 + n // 3, 9 + 2 * (n % 3)), day(3 + n // 3, 10 + 2 * (n % 3)), users[email],
             f"Keep me {n}")
    pair = pair_of(a)
    pool = workers(pair.id)
    # Creating an event (and finding one by iCalUId) takes 300 ms: the $batch of six creates is in flight ~2 s.
    sandbox_admin.faults({"latency": {"ms": 300, "path": "/events$"}})
    enqueue_run(pair.id)
    pool.start()

    wait_until(lambda: (lambda s: s.step == 5 and s.decided == 6 and s.in_flight == 6)(observe(pair.id)),
               "all six restored here, their Outlook events owed", pool)
    wait_until(lambda: outlook_events(holders[0], "Keep me 0"), "Outlook to make the first event", pool,
               every=0.02)
    pool.kill()

    seen = observe(pair.id)
    assert (seen.step, seen.in_flight, seen.linked) == (5, 6, 0), seen  # made in Outlook, not saved here
    # The sandbox finishes the dead worker's batch (Outlook would too): all six exist before the resume.
    wait_until(lambda: all(outlook_events(email, f"Keep me {n}") for n, email in enumerate(holders)),
               "the sandbox to finish the dead worker's batch", None, timeout=10, every=0.1)
    before = {n: [e.id for e in outlook_events(email, f"Keep me {n}")] for n, email in enumerate(holders)}
    pool.start()
    pool.requeue_when_lapsed()
    wait_until(lambda: observe(pair.id).state not in ACTIVE_STATES, "the resumed run to finish", pool, timeout=60,
               every=0.05)
    pool.stop()

    db.session.rollback()
    run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair.id))
    assert db.session.get(Pair, pair.id).state in ("done", "live"), db.session.get(Pair, pair.id).state_detail
    noted = {n.snapshot["title"]: n for n in db.session.scalars(select(NotedBooking).where(NotedBooking.run_id == run.id))}
    for n, email in enumerate(holders):
        found = outlook_events(email, f"Keep me {n}")
        assert [e.id for e in found] == before[n], (n, found)  # the same single event, no second one
        row = noted[f"Keep me {n}"]
        assert (row.state, row.outlook_event_id) == ("restored", found[0].id)
        assert found[0].transaction_id in (None, row.restored_uid)
    links = list(db.session.scalars(select(EventLink).where(EventLink.room_email == ROOM)))
    assert len(links) == 7 and len({link.room_event_id for link in links}) == 7
    assert len([line for line in db.session.scalars(select(SyncReportItem).where(
        SyncReportItem.run_id == run.id, SyncReportItem.kind == "restored"))]) == 6
    assert run.parity["agrees"] is True, run.parity


def test_a_kill_while_declining_an_event_still_reports_and_tells_its_organizer(people, sandbox_admin, workers):
    a = people["a"]
    meeting(PRIYA, "Design review", day(1, 10), day(1, 11))
    night = meeting(TOM, "Night deploy", day(3, 22), day(4, 2))
    pair = pair_of(a)
    pool = workers(pair.id)
    sandbox_admin.faults({"latency": {"ms": 1500, "path": "/decline$"}})  # the decline is in flight 1.5 s
    enqueue_run(pair.id)
    pool.start()
    wait_until(lambda: observe(pair.id).step == 4, "step 4", pool)
    # The room's decline is applied by the sandbox after the latency, whether its caller still lives or not:
    # kill the worker half-way through that wait.
    wait_until(lambda: observe(pair.id).imports >= 1, "the other event imported", pool)
    clock_time.sleep(0.75)
    answered = room_answer(night.id)
    pool.kill()
    assert answered != "declined" and observe(pair.id).step == 4  # killed in step 4, the decline in flight
    wait_until(lambda: room_answer(night.id) == "declined", "the sandbox to finish the dead worker's decline",
               None, timeout=10, every=0.1)
    pool.start()
    pool.requeue_when_lapsed()
    wait_until(lambda: observe(pair.id).state not in ACTIVE_STATES, "the resumed run to finish", pool, timeout=60,
               every=0.05)
    pool.stop()

    db.session.rollback()
    run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair.id))
    refused = list(db.session.scalars(select(SyncReportItem).where(SyncReportItem.run_id == run.id,
                                                                   SyncReportItem.kind == "refused")))
    assert [line.title for line in refused] == ["Night deploy"]
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.kind == "event_refused")) == 1
    assert [b.title for b in db.session.scalars(select(Booking))] == ["Design review"]
    assert run.parity["agrees"] is True, run.parity


class Killed(BaseException):
    """What SIGKILL looks like from inside a pass: it stops dead, records nothing (no `except Exception`)."""


def test_a_run_killed_five_times_still_retries_after_one_ordinary_failure(people, monkeypatch):
    from webapp.graph.errors import ServiceUnavailable
    from webapp.sync import initial

    meeting(PRIYA, "Design review", day(1, 10), day(1, 11))
    pair = pair_of(people["a"])
    original = initial.STEPS[4]
    fates = iter([Killed("worker killed")] * 5 + [ServiceUnavailable("Graph hiccup", status=503)])

    def step_import(ctx):
        fate = next(fates, None)
        if fate is not None:
            raise fate
        return original(ctx)

    monkeypatch.setitem(initial.STEPS, 4, step_import)
    for _ in range(5):
        with pytest.raises(Killed):
            initial.run_initial_sync(pair.id)
        db.session.rollback()
        run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair.id))
        run.lease_until = now_utc() - timedelta(seconds=1)  # the dead worker's lease lapses
        db.session.commit()
    with pytest.raises(ServiceUnavailable):
        initial.run_initial_sync(pair.id)
    db.session.expire_all()
    assert db.session.get(Pair, pair.id).state == "running", db.session.get(Pair, pair.id).state_detail
    initial.run_initial_sync(pair.id)
    db.session.expire_all()
    assert db.session.get(Pair, pair.id).state in ("done", "live")
    assert [b.title for b in db.session.scalars(select(Booking))] == ["Design review"]


def test_a_stalled_worker_that_wakes_after_another_took_over_changes_nothing(people, sandbox_admin, workers):
    titles = [f"Meeting {n:02}" for n in range(12)]
    for n, title in enumerate(titles):
        meeting(PEOPLE[n % 4], title, day(1 + n // 4, 9 + 2 * (n % 4)), day(1 + n // 4, 10 + 2 * (n % 4)))
    pair = pair_of(people["a"])
    stalled, taking_over = workers(pair.id), workers(pair.id)
    sandbox_admin.faults({"latency": {"ms": 50}})
    enqueue_run(pair.id)
    stalled.start()
    # Paused while it reads the organizers' copies (a Graph call, no database transaction open: on SQLite a
    # writer paused mid-transaction would hold the database's only write lock and stall everyone).
    wait_until(lambda: observe(pair.id).step == 4, "step 4", stalled)
    clock_time.sleep(0.3)
    assert observe(pair.id).imports == 0
    stalled.pause()
    taking_over.start()
    taking_over.requeue_when_lapsed()
    wait_until(lambda: observe(pair.id).state not in ACTIVE_STATES, "the second worker to finish", taking_over,
               timeout=60, every=0.05)
    stalled.wake()
    wait_until(lambda: all(_gone(pid) for pid in stalled.paused if _is_horse(pid)), "the woken job to end", None,
               timeout=30, every=0.05)  # what it does once awake: stopped by the lease, or by the unique keys
    stalled.stop()
    taking_over.stop()

    db.session.rollback()
    run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair.id))
    kinds = Counter(db.session.scalars(select(SyncReportItem.kind).where(SyncReportItem.run_id == run.id)))
    assert kinds == {"imported": 12}, (kinds, stalled.log_tail())
    assert sorted(b.title for b in db.session.scalars(select(Booking))) == titles
    room = [e for e in graph_client().calendar_view(ROOM, day(0, 0), day(10, 0)) if not e.is_cancelled]
    assert len(room) == 12
    from webapp.sync.parity import audit_pair

    assert audit_pair(pair.id, start=run.window_start, end=run.window_start + timedelta(days=30)).agrees
