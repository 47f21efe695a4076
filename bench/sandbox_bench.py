"""The Microsoft 365 sandbox tenant's own cost: `python bench/sandbox_bench.py [options]` (`--help`).

The sandbox (webapp/sandbox) stands in for Graph in sync benchmarks, so it must never be their bottleneck.
This measures, over the real HTTPS server (`serve.make_sandbox_server`, a free port, a temporary instance
folder, state in its SQLite file) and the real calendar engine:

1. calendarView of one room holding `--events` events (a fifth series masters with their occurrences, the
   rest single events, spread over a year), created beforehand through `calendar.create_event` (plus some
   cancelled and modified occurrences through `delete_event` / `update_event`): GET
   /v1.0/users/{room}/calendarView for a one-week and a one-month window, with `$top` and
   `Prefer: outlook.timezone="UTC"` as Roomsync's client sends them, following `@odata.nextLink` to the end,
   with `requests` (verify = the CA from sandbox.env) and a bearer token from the sandbox's token endpoint.
   Every window's ids are checked against `calendar.calendar_view` (complete, no duplicates).
2. Notification fan-out: one subscription (created, updated, deleted) on that room's mailbox, its
   notificationUrl a tiny HTTP receiver on loopback; then `--changes` event changes through the calendar
   engine (creates, updates, deletes); the time from the first change until the receiver holds every
   notification (counted one by one, not by POST), the POST count, each notification's latency, and the
   per-change publish overhead (the time spent in `state.changes.publish` in the writer's thread).

Prints a Markdown table (samples, p50, p95, p99, max in ms) and writes it to
`bench/results/sandbox-<timestamp>.md`. No targets: the numbers are to compare with what a sync benchmark
spends per request. Exit status 1 only when something answered wrongly (an HTTP error, a missing instance,
notifications that never arrived).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from bench.report import Profiles, cpu_table, fill_size_defaults, ms, percentile, write_results  # noqa: E402
from webapp.sandbox import calendar, sandbox_state  # noqa: E402
from webapp.sandbox.identity import GRAPH_DEFAULT_SCOPE  # noqa: E402
from webapp.sandbox.seed import DEMO_DOMAIN  # noqa: E402
from webapp.sandbox.serve import make_sandbox_server  # noqa: E402

RESULTS = REPO / "bench" / "results"
WARM_UP = 3
ROOM_EMAIL = f"board-room-a@{DEMO_DOMAIN}"
ZONE_NAME = "GMT Standard Time"  # what Outlook writes for London; the sandbox maps Windows names
ZONE = ZoneInfo("Europe/London")
SERIES_SHARE = 5  # one event in five is a series master
QUICK = {"events": 60, "changes": 30, "samples": 4}
FULL = {"events": 5000, "changes": 1000, "samples": 20}
WINDOWS = (("one week", 7), ("one month", 30))


@dataclass
class Measurement:
    name: str
    samples_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # this process's CPU time (server threads included)
    note: str = ""

    def percentile(self, p: int, cpu: bool = False) -> float:
        return percentile(self.cpu_ms if cpu else self.samples_ms, p)


class BenchError(Exception):
    """The sandbox answered wrongly: the run reports it and exits with status 1."""


# ---------------------------------------------------------------------------------------------- seeding


def _dtz(moment: datetime) -> dict:
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": ZONE_NAME}


def _slot(rng: random.Random, day: date) -> tuple[datetime, datetime]:
    """A local 15-minute-grid slot between 07:00 and 21:00, 30 minutes to 2 hours long."""
    minutes = rng.choice((30, 30, 60, 60, 60, 90, 120))
    start = datetime.combine(day, dtime(7)) + timedelta(minutes=15 * rng.randrange((14 * 60 - minutes) // 15 + 1))
    return start, start + timedelta(minutes=minutes)


def _recurrence(rng: random.Random, first: date) -> tuple[dict, str]:
    """A series shape people use, starting on `first` (already on a matching weekday); (recurrence, shape)."""
    weekday = first.strftime("%A").lower()
    shape = rng.choices(
        ["weekly", "fortnightly", "twice a week", "every weekday", "monthly nth weekday", "weekly until", "weekly no end"],
        weights=[30, 12, 12, 10, 14, 17, 5],
    )[0]
    numbered = {"type": "numbered", "startDate": first.isoformat()}
    if shape == "weekly":
        return {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [weekday]},
                "range": {**numbered, "numberOfOccurrences": rng.randint(4, 26)}}, shape
    if shape == "fortnightly":
        return {"pattern": {"type": "weekly", "interval": 2, "daysOfWeek": [weekday]},
                "range": {**numbered, "numberOfOccurrences": rng.randint(3, 13)}}, shape
    if shape == "twice a week":
        other = ["thursday", "friday", "monday", "tuesday", "wednesday"][first.weekday()]
        return {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [weekday, other]},
                "range": {**numbered, "numberOfOccurrences": rng.randint(6, 20)}}, shape
    if shape == "every weekday":
        days = ["monday", "tuesday", "wednesday", "thursday", "friday"]
        end = first + timedelta(days=rng.randint(4, 20))
        return {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": days},
                "range": {"type": "endDate", "startDate": first.isoformat(), "endDate": end.isoformat()}}, shape
    if shape == "monthly nth weekday":
        index = ["first", "second", "third", "fourth", "last"][min((first.day - 1) // 7, 3)]
        return {"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": [weekday], "index": index},
                "range": {**numbered, "numberOfOccurrences": rng.randint(3, 12)}}, shape
    if shape == "weekly until":
        end = first + timedelta(days=rng.randint(30, 180))
        return {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [weekday]},
                "range": {"type": "endDate", "startDate": first.isoformat(), "endDate": end.isoformat()}}, shape
    return {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [weekday]},
            "range": {"type": "noEnd", "startDate": first.isoformat()}}, shape


def _payload(rng: random.Random, index: int, day: date, people: list[dict], room: dict) -> dict:
    start, end = _slot(rng, day)
    attendees = [{"emailAddress": {"address": p["mail"], "name": p["displayName"]}, "type": "required"}
                 for p in rng.sample(people, rng.randint(1, min(6, len(people))))]
    if rng.random() < 0.2:
        attendees.append({"emailAddress": {"address": f"guest{index}@partner.example"}, "type": "optional"})
    return {
        "subject": f"{rng.choice(['Planning', 'Stand-up', 'Review', 'Interview', 'Workshop', '1:1'])} #{index}",
        "body": {"contentType": "text", "content": f"Agenda for meeting {index}: notes, actions, next steps."},
        "start": _dtz(start),
        "end": _dtz(end),
        "location": {"displayName": room["displayName"], "locationEmailAddress": room["mail"]},
        "attendees": attendees,
        "sensitivity": "private" if rng.random() < 0.1 else "normal",
        "isOnlineMeeting": rng.random() < 0.3,
    }


@dataclass
class Seeded:
    room: dict
    first_day: date
    last_day: date
    events: int = 0
    series: int = 0
    shapes: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    modified: int = 0
    instances: int = 0  # in the whole seeded span
    seconds: float = 0.0


def seed_room(state, room: dict, count: int, rng: random.Random, today: date) -> Seeded:
    """`count` events on the room's calendar through the engine; one in five a series master."""
    people = [u for u in state.store.all("user") if u.get("mail") and not u.get("isRoom")
              and u.get("mailboxEnabled", True)]
    people.sort(key=lambda u: u["mail"])
    half = 182
    seeded = Seeded(room, today - timedelta(days=half), today + timedelta(days=half))
    started = time.perf_counter()
    masters = []
    for index in range(count):
        day = seeded.first_day + timedelta(days=rng.randrange(2 * half))
        payload = _payload(rng, index, day, people, room)
        if index % SERIES_SHARE == 0:
            while day.weekday() >= 5:  # series are weekday meetings
                day += timedelta(days=1)
            payload = _payload(rng, index, day, people, room)
            payload["recurrence"], shape = _recurrence(rng, day)
            seeded.shapes[shape] = seeded.shapes.get(shape, 0) + 1
        doc, _created = calendar.create_event(state, room, payload)
        seeded.events += 1
        if payload.get("recurrence"):
            seeded.series += 1
            masters.append(doc)
    # One series in ten loses an occurrence, one in twenty gets a moved and renamed one (an exception).
    for position, master in enumerate(masters):
        if position % 10 not in (3, 7):
            continue
        first = datetime.fromisoformat(master["_start"])
        views = calendar.instances(state, room, master["id"], first, first + timedelta(days=200))
        if len(views) < 2:
            continue
        victim = views[rng.randrange(1, len(views))]
        if position % 10 == 3:
            calendar.delete_event(state, room, victim["id"])
            seeded.cancelled += 1
        else:
            moved = datetime.fromisoformat(victim["_start"]).astimezone(ZONE) + timedelta(minutes=30)
            length = datetime.fromisoformat(victim["_end"]) - datetime.fromisoformat(victim["_start"])
            calendar.update_event(state, room, victim["id"], {"subject": "Moved this week", "start": _dtz(moved),
                                                               "end": _dtz(moved + length)})
            seeded.modified += 1
    seeded.seconds = time.perf_counter() - started
    span_start = datetime.combine(seeded.first_day, dtime(0), timezone.utc)
    span_end = datetime.combine(seeded.last_day, dtime(0), timezone.utc)
    seeded.instances = len(calendar.calendar_view(state, room["id"], span_start, span_end))
    return seeded


# ---------------------------------------------------------------------------------------------- HTTPS client


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip()] = value.strip()
    return values


def graph_session(env: dict[str, str]) -> requests.Session:
    """A requests session as Roomsync's client builds it: the sandbox's CA, no proxies, a bearer token."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE / proxies from the environment would override verify=
    session.verify = env["GRAPH_CA_BUNDLE"]
    reply = session.post(f"{env['GRAPH_AUTHORITY']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": env["GRAPH_CLIENT_ID"],
        "client_secret": env["GRAPH_CLIENT_SECRET"], "scope": GRAPH_DEFAULT_SCOPE})
    if reply.status_code != 200:
        raise BenchError(f"token endpoint answered HTTP {reply.status_code}: {reply.text[:300]}")
    session.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
    return session


def calendar_view_window(session, base: str, mailbox: str, start: datetime, end: datetime, top: int,
                         page_ms: list[float]) -> list[str]:
    """Every instance id of the window, following @odata.nextLink to the end; each page's time in `page_ms`."""
    url = f"{base}/users/{mailbox}/calendarView"
    params = {"startDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "$top": str(top)}
    headers = {"Prefer": 'outlook.timezone="UTC"'}
    ids: list[str] = []
    while url:
        started = time.perf_counter()
        reply = session.get(url, params=params, headers=headers)
        if reply.status_code != 200:
            raise BenchError(f"HTTP {reply.status_code} for {reply.request.url}: {reply.text[:300]}")
        body = reply.json()
        page_ms.append((time.perf_counter() - started) * 1000)
        ids.extend(item["id"] for item in body["value"])
        url, params = body.get("@odata.nextLink"), None  # the nextLink carries every query option
    return ids


def measure_calendar_view(sandbox, state, env, seeded: Seeded, days: int, label: str, samples: int, top: int,
                          rng: random.Random, pages: Measurement) -> Measurement:
    measurement = Measurement(f"calendarView, {label}, every page ($top={top})")
    session = graph_session(env)
    span = (seeded.last_day - seeded.first_day).days - days
    counts, page_counts = [], []
    for index in range(samples + WARM_UP):
        first = seeded.first_day + timedelta(days=rng.randrange(max(1, span)))
        start = datetime.combine(first, dtime(0), timezone.utc)
        end = start + timedelta(days=days)
        page_ms: list[float] = []
        started, cpu_started = time.perf_counter(), time.process_time()
        ids = calendar_view_window(session, env["GRAPH_BASE_URL"], seeded.room["mail"], start, end, top, page_ms)
        elapsed, cpu = (time.perf_counter() - started) * 1000, (time.process_time() - cpu_started) * 1000
        with sandbox.app.app_context():
            expected = [v["id"] for v in calendar.calendar_view(state, seeded.room["id"], start, end)]
        if len(ids) != len(set(ids)) or sorted(ids) != sorted(expected):
            raise BenchError(f"calendarView {start:%Y-%m-%d}+{days}d returned {len(ids)} ids ({len(set(ids))} distinct), "
                             f"the engine has {len(expected)}")
        if index < WARM_UP:
            continue
        measurement.samples_ms.append(elapsed)
        measurement.cpu_ms.append(cpu)
        pages.samples_ms.extend(page_ms)
        counts.append(len(ids))
        page_counts.append(len(page_ms))
    session.close()
    measurement.note = (f"{statistics.mean(counts):.0f} instances ({min(counts)}–{max(counts)}) in "
                        f"{statistics.mean(page_counts):.1f} pages on average")
    return measurement


# ---------------------------------------------------------------------------------------------- receiver


class Receiver:
    """A tiny notification endpoint: echoes the validation token, counts notifications, answers 202."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.posts: list[tuple[float, int]] = []  # (monotonic arrival, notifications in the POST)
        self.arrivals: list[tuple[float, dict]] = []
        self.validations = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 — http.server's naming
                query = parse_qs(urlsplit(self.path).query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if "validationToken" in query:
                    token = query["validationToken"][0].encode()
                    with receiver.lock:
                        receiver.validations += 1
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(token)))
                    self.end_headers()
                    self.wfile.write(token)
                    return
                items = json.loads(raw).get("value", [])
                arrived = time.monotonic()
                with receiver.lock:
                    receiver.posts.append((arrived, len(items)))
                    receiver.arrivals.extend((arrived, item) for item in items)
                    if len(receiver.arrivals) >= receiver.expected:
                        receiver.done.set()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-receiver", daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------- fan-out


@dataclass
class FanOut:
    writes: Measurement
    publish: Measurement
    latency: Measurement
    total: Measurement
    counts: dict[str, int]
    posts: int = 0
    notifications: int = 0
    largest_post: int = 0
    writes_ms: float = 0.0
    drain_ms: float = 0.0


def measure_fan_out(sandbox, state, env, seeded: Seeded, changes: int, rng: random.Random,
                    profiler: cProfile.Profile | None) -> FanOut:
    receiver = Receiver(changes)
    session = graph_session(env)
    room = seeded.room
    expires = (datetime.now(timezone.utc) + timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reply = session.post(f"{env['GRAPH_BASE_URL']}/subscriptions", json={
        "changeType": "created,updated,deleted", "notificationUrl": receiver.url,
        "resource": f"users/{room['mail']}/events", "expirationDateTime": expires, "clientState": "bench-state"})
    session.close()
    if reply.status_code != 201:
        receiver.stop()
        raise BenchError(f"subscription create answered HTTP {reply.status_code}: {reply.text[:300]}")
    subscription_id = reply.json()["id"]

    # Time the change feed in the writer's thread: the subscription matching and enqueueing every change costs.
    feed = state.changes
    original_publish = feed.publish
    published: list[tuple[float, str, str]] = []  # (monotonic, changeType, event id)
    publish_ms: list[float] = []

    def timed_publish(change) -> None:
        started = time.perf_counter()
        original_publish(change)
        publish_ms.append((time.perf_counter() - started) * 1000)
        published.append((time.monotonic(), change.change_type, change.event_id))

    feed.publish = timed_publish
    counts = {"created": 0, "updated": 0, "deleted": 0}
    writes = Measurement("engine write per change (create/update/delete on the room, publish included)")
    live: list[str] = []
    people = sorted((u for u in state.store.all("user") if u.get("mail") and not u.get("isRoom")),
                    key=lambda u: u["mail"])
    today = datetime.now(timezone.utc).date()
    plan = []
    for index in range(changes):  # half creates, three in ten updates, one in five deletes
        kind = "create" if index % 10 < 5 or index < 2 else ("update" if index % 10 < 8 else "delete")
        plan.append(kind)
    first_change = time.monotonic()
    try:
        with sandbox.app.app_context():
            if profiler:
                profiler.enable()
            for index, kind in enumerate(plan):
                if kind == "create":
                    payload = _payload(rng, 100_000 + index, today + timedelta(days=rng.randint(1, 60)), people, room)
                elif kind == "update":
                    payload = {"subject": f"Updated {index}", "categories": ["Bench"]}
                started, cpu_started = time.perf_counter(), time.process_time()
                if kind == "create":
                    doc, _ = calendar.create_event(state, room, payload)
                    live.append(doc["id"])
                elif kind == "update":
                    calendar.update_event(state, room, rng.choice(live), payload)
                else:
                    calendar.delete_event(state, room, live.pop(rng.randrange(len(live))))
                writes.samples_ms.append((time.perf_counter() - started) * 1000)
                writes.cpu_ms.append((time.process_time() - cpu_started) * 1000)
            if profiler:
                profiler.disable()
        last_write = time.monotonic()
        arrived_all = receiver.done.wait(timeout=30 + changes * 0.05)
        time.sleep(0.2)  # anything beyond the expected count (a duplicate) would show up now
    finally:
        feed.publish = original_publish
        receiver.stop()
        with sandbox.app.app_context():
            state.delivery.remove_subscription(subscription_id)
        for doc_id in live:
            calendar.delete_event(state, room, doc_id)
    for _, change_type, _ in published:
        counts[change_type] += 1
    if len(published) != changes:
        raise BenchError(f"{changes} engine writes published {len(published)} changes (expected one each)")
    if not arrived_all:
        raise BenchError(f"the receiver got {len(receiver.arrivals)} of {changes} notifications within the wait")

    # Each notification's latency: matched to its change by (changeType, event id), in publish order.
    sent: dict[tuple[str, str], list[float]] = {}
    for moment, change_type, event_id in published:
        sent.setdefault((change_type, event_id), []).append(moment)
    latency = Measurement("notification latency (change published → received by the endpoint)")
    for arrived, item in receiver.arrivals:
        if item.get("subscriptionId") != subscription_id or item.get("clientState") != "bench-state":
            raise BenchError(f"unexpected notification: {item}")
        queue = sent.get((item["changeType"], item["resourceData"]["id"]))
        if queue:
            latency.samples_ms.append((arrived - queue.pop(0)) * 1000)
    if len(latency.samples_ms) != changes:
        raise BenchError(f"{len(latency.samples_ms)} notifications matched a change, expected {changes}")

    everything = max(arrived for arrived, _ in receiver.arrivals)
    result = FanOut(
        writes=writes,
        publish=Measurement("publish overhead per change (ChangeFeed.publish: match subscriptions, enqueue)",
                            publish_ms),
        latency=latency,
        total=Measurement(f"fan-out: first change → all {changes:,} notifications received", [(everything - first_change) * 1000]),
        counts=counts,
        posts=len(receiver.posts),
        notifications=len(receiver.arrivals),
        largest_post=max(n for _, n in receiver.posts),
        writes_ms=(last_write - first_change) * 1000,
        drain_ms=(everything - last_write) * 1000,
    )
    per_post = result.notifications / result.posts
    rate = result.notifications / (everything - first_change)
    result.total.note = (f"{result.posts} POSTs, {per_post:.1f} notifications per POST on average (largest "
                         f"{result.largest_post}); writes took {result.writes_ms:.0f} ms, the last notification "
                         f"arrived {result.drain_ms:.0f} ms after the last write; {rate:,.0f} notifications/s")
    writes.note = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return result


# ---------------------------------------------------------------------------------------------- report


def render(measurements: list[Measurement], seeded: Seeded, args, fan_out: FanOut | None, port: int) -> str:
    now = datetime.now(timezone.utc)
    shapes = ", ".join(f"{n} {shape}" for shape, n in sorted(seeded.shapes.items(), key=lambda kv: -kv[1]))
    lines = [
        f"# Sandbox tenant benchmark, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"- sandbox: `make_sandbox_server` over HTTPS on 127.0.0.1:{port} (threaded werkzeug server in this "
        "process), state in a temporary instance folder's sandbox.sqlite3",
        f"- data: room {seeded.room['mail']} holds {seeded.events:,} events created through "
        f"`calendar.create_event` ({seeded.series:,} series masters: {shapes}; {seeded.events - seeded.series:,} "
        f"single events), {seeded.cancelled} cancelled and {seeded.modified} modified occurrences, "
        f"{seeded.first_day} to {seeded.last_day}: {seeded.instances:,} instances in that span",
        f"- seeding: {seeded.seconds:.1f} s ({seeded.seconds * 1000 / max(1, seeded.events):.2f} ms per event, "
        "exceptions included)",
        f"- calendarView: `requests` over HTTPS (CA from sandbox.env), bearer token from the token endpoint, "
        f"`$top={args.page_size}`, `Prefer: outlook.timezone=\"UTC\"`, every `@odata.nextLink` followed; "
        f"{args.samples} random windows each, after {WARM_UP} warm-up windows; every window's ids checked "
        "against `calendar.calendar_view` (complete, no duplicates)",
    ]
    if fan_out:
        lines.append(
            f"- notifications: one subscription (created,updated,deleted) on the room → a local HTTP receiver; "
            f"{sum(fan_out.counts.values()):,} changes through the engine; {fan_out.notifications:,} notifications "
            f"received in {fan_out.posts} POSTs")
    lines += [
        f"- machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}, load average {args.load_before:.2f} before the run and {os.getloadavg()[0]:.2f} "
        "after (other work on the machine skews the tail)",
        "- latencies in ms",
        "",
        "| measurement | samples | p50 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        name = f"{m.name} ({m.note})" if m.note else m.name
        stats = " | ".join(ms(v) for v in (m.percentile(50), m.percentile(95), m.percentile(99), max(m.samples_ms)))
        lines.append(f"| {name} | {len(m.samples_ms)} | {stats} |")
    lines += cpu_table([m for m in measurements if m.cpu_ms],
                       "the process (the sandbox server, the client and the receiver all run in it) per sample")
    return "\n".join(lines) + "\n"


def profile_month_view(sandbox, env, seeded: Seeded, top: int, rng: random.Random) -> cProfile.Profile:
    """The month window's pages through the Flask test client in this thread (cProfile sees one thread only):
    the same view code as over HTTPS, without the socket and TLS."""
    client = sandbox.app.test_client()
    reply = client.post(urlsplit(env["GRAPH_AUTHORITY"]).path + "/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": env["GRAPH_CLIENT_ID"],
        "client_secret": env["GRAPH_CLIENT_SECRET"], "scope": GRAPH_DEFAULT_SCOPE})
    headers = {"Authorization": f"Bearer {reply.get_json()['access_token']}", "Prefer": 'outlook.timezone="UTC"'}
    profiler = cProfile.Profile()
    span = (seeded.last_day - seeded.first_day).days - 30
    for _ in range(5):
        start = datetime.combine(seeded.first_day + timedelta(days=rng.randrange(max(1, span))), dtime(0), timezone.utc)
        url = (f"/v1.0/users/{seeded.room['mail']}/calendarView?startDateTime={start:%Y-%m-%dT%H:%M:%SZ}"
               f"&endDateTime={start + timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}&$top={top}")
        while url:
            profiler.enable()
            response = client.get(url, headers=headers)
            profiler.disable()
            link = response.get_json().get("@odata.nextLink")
            url = None if not link else link[len(sandbox.base_url):]
    return profiler


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, help=f"events on the room's calendar (default {FULL['events']})")
    parser.add_argument("--changes", type=int, help=f"event changes for the notification fan-out (default {FULL['changes']})")
    parser.add_argument("--samples", type=int, help=f"calendarView windows timed per window size (default {FULL['samples']})")
    parser.add_argument("--page-size", type=int, default=100, help="$top of each calendarView request (default 100)")
    parser.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data and of the windows")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the month view (in-process, after the timings) and the timed writes (which it slows: judge times without it); .prof files beside the result")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the result file")
    args = parser.parse_args(argv)
    fill_size_defaults(args, QUICK, FULL)
    if args.events < SERIES_SHARE or args.changes < 2 or args.samples < 1 or not 1 <= args.page_size <= 1000:
        parser.error(f"--events must be at least {SERIES_SHARE}, --changes at least 2, --samples at least 1, "
                     "--page-size from 1 to 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_before = os.getloadavg()[0]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request on stderr
    args.results.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    profiles = Profiles(args.profile)
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as instance:
        sandbox = make_sandbox_server("127.0.0.1", 0, instance).start()
        try:
            state = sandbox_state(sandbox.app)
            env = read_env(sandbox.env_path)
            from webapp.sandbox.directory import find_user  # after the app: its blueprints settle the import cycle

            with sandbox.app.app_context():
                room = find_user(ROOM_EMAIL)
                print(f"Seeding {args.events:,} events on {ROOM_EMAIL}…", file=sys.stderr)
                seeded = seed_room(state, room, args.events, rng, datetime.now(timezone.utc).date())
            print(f"Seeded in {seeded.seconds:.1f} s ({seeded.instances:,} instances).", file=sys.stderr)
            pages = Measurement(f"calendarView, one request of the month windows ($top={args.page_size})")
            measurements = []
            for label, days in WINDOWS:
                page_times = Measurement("pages")
                measurements.append(measure_calendar_view(sandbox, state, env, seeded, days, label, args.samples,
                                                          args.page_size, rng, page_times))
                if days == WINDOWS[-1][1]:
                    pages.samples_ms = page_times.samples_ms
            pages.note = "TLS, routing, auth, the engine's view and one page of JSON"
            measurements.append(pages)
            print("Measuring the notification fan-out…", file=sys.stderr)
            write_profiler = cProfile.Profile() if args.profile else None
            fan_out = measure_fan_out(sandbox, state, env, seeded, args.changes, rng, write_profiler)
            measurements += [fan_out.writes, fan_out.publish, fan_out.latency, fan_out.total]
            if args.profile:
                profiles.add("calendarview-month", profile_month_view(sandbox, env, seeded, args.page_size, rng))
                profiles.add("writes", write_profiler)
            port = sandbox.port
        except BenchError as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
        finally:
            sandbox.shutdown()
    report = render(measurements, seeded, args, fan_out, port)
    stem = args.results / f"sandbox-{stamp}"
    write_results(stem, report)
    profiles.print_reports(stem, top=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
