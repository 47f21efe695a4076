"""Real processes for the end-to-end tests: headless Chromium, Roomsync served over HTTP, a real `worker.py`
on a queue of its own, and the demo connected to the sandbox tenant. pytest puts tests/ on sys.path; a test
module imports the fixtures it uses (`from processes import browser, served, worker  # noqa: F401`), so they
reach only the modules that ask for them.

Constants: `CHROMIUM` (Debian's, `/usr/bin/chromium`: Playwright's own browser download is not used),
`CHROMIUM_ARGS`, `ARTIFACTS` (screenshots: test-artifacts/), `AROUND_THE_CLOCK` (opening hours, every day all
day), `SECRET` (the secret key shared by `served` and `worker`), `PAIRED_SPACE` / `PAIRED_ROOM` (the demo space
`live_demo` pairs).

Fixtures:
- `browser`: Chromium through Playwright's sync API; skipped when Chromium is missing (failed in CI).
- `live_server`: the app over HTTP (werkzeug, threaded) on the suite's database, CSRF ON, jobs run inline
  (`SYNC_JOBS`); yields its base URL. No Redis, no provider.
- `job_queue`: an RQ queue of its own on the suite's Redis, so no other test's worker takes its jobs.
- `served`: the app over HTTP pointed at the sandbox tenant (`sandbox_server.graph_config`, itself as the
  public base URL, where the sandbox's notifications land) and queueing its jobs on `job_queue`.
- `worker`: a real `worker.py` subprocess on the suite's database and `job_queue`, talking to the sandbox over
  HTTPS; its log's tail is printed at teardown (pytest shows it when the test fails).
- `connected_demo`: both demos (Roomsync's `seed_demo`, the sandbox's `seed_demo_calendars`), connected with the
  served app as the integration's public base URL; returns the demo venue's id. Nothing paired yet.
- `live_demo`: `connected_demo` with `PAIRED_SPACE` paired to `PAIRED_ROOM` and live; returns
  `dict(venue_id, space_id, pair_id, monday)` (`monday`: three weeks ahead, where neither demo has anything in
  the board rooms).

Helpers: `pair_live(venue, space, room_email)` → the `Pair`, after its initial sync ran (inline, in this
process) and it subscribed through the served app's webhook; `signed_in_page(browser, base, email, password,
timeout, **context_options)` → a page signed in to Roomsync; `until(page, check, what, deadline, url)` reloads a
page (the Outlook page and Roomsync's day view do not poll) until `check(page)` holds and returns the seconds it
took; `outlook_book(page, day, subject, start, end, room)` books a meeting through the sandbox's Outlook page.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time as clock
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select

from sandbox_server import GRAPH_KEYS, graph_config, serve_app
from webapp import create_app
from webapp.extensions import db

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"
AROUND_THE_CLOCK = {day: ["00:00", "24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SECRET = "browser-processes-secret"
PAIRED_SPACE = "Board room A"
PAIRED_ROOM = "board-room-a@roomsync.test"
SYNC_DEADLINE = 30.0  # s: "within seconds", with room for a slow CI machine


# ---------------------------------------------------------------------------------------------- the browser


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must run the browser tests")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# ---------------------------------------------------------------------------------------------- Roomsync served


@pytest.fixture
def live_server(app, tmp_path):
    served = create_app(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "browser-test-secret",
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "WTF_CSRF_ENABLED": True,
            "SYNC_JOBS": True,
        }
    )
    with serve_app(served) as url:
        yield url


@pytest.fixture
def job_queue(redis_url):
    connection = Redis.from_url(redis_url)
    queue = Queue(f"test-jobs-{uuid.uuid4().hex[:8]}", connection=connection)  # its own: a shared Redis (CI)
    yield queue
    queue.delete(delete_jobs=True)
    connection.close()


@pytest.fixture
def served(app, tmp_path, sandbox_tenant, redis_url, job_queue):
    web = create_app({"INSTANCE_PATH": str(tmp_path / "web"), "SECRET_KEY": SECRET,
                      "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "WTF_CSRF_ENABLED": True,
                      "SYNC_JOBS": False})
    with serve_app(web) as base:
        # Before the first request: the sandbox's settings, our queue, and this server as the webhook address.
        web.config.update(graph_config(sandbox_tenant, base))
        web.config.update(REDIS_URL=redis_url, RQ_QUEUE=job_queue.name)
        yield base


@pytest.fixture
def worker(app, tmp_path, sandbox_tenant, served, redis_url, job_queue):
    env = {key: value for key, value in os.environ.items() if key != "ROOMSYNC_SYNC_JOBS"}
    env.update({key: sandbox_tenant.env[key] for key in GRAPH_KEYS})
    env.update(DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], ROOMSYNC_INSTANCE=str(tmp_path / "worker"),
               SECRET_KEY=SECRET, REDIS_URL=redis_url, ROOMSYNC_RQ_QUEUE=job_queue.name, PUBLIC_BASE_URL=served)
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # RQ's warm shutdown: the current job (if any) finishes first
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    print("---- worker.log (tail) ----\n" + log_path.read_text(errors="replace")[-6000:])


# ---------------------------------------------------------------------------------------------- the demo


@pytest.fixture
def connected_demo(connected, sandbox_admin, served):
    from webapp.booking.models import Venue
    from webapp.demo import seed_demo
    from webapp.integration.models import IntegrationSettings
    from webapp.sandbox.seed import DEMO_BUTLER_EMAIL, seed_demo_calendars
    from webapp.timeutil import now_utc

    sandbox_admin.reset()
    assert seed_demo()
    assert seed_demo_calendars(connected.server.app) > 0
    venue = db.session.scalar(select(Venue))
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email=DEMO_BUTLER_EMAIL, enabled=True,
                                       public_base_url=served, last_validated_at=now_utc()))
    db.session.commit()
    return venue.id


def pair_live(venue, space, room_email: str):
    """Pair `space` with the room, as the demo's admin. The suite's app runs jobs inline: the initial sync,
    then `ensure_subscription`, which subscribes with the served app's webhook (the sandbox's handshake
    reaches it) and makes the pair live."""
    from webapp.auth.models import User
    from webapp.demo import DEMO_ADMIN_EMAIL
    from webapp.sync.models import Pair, Subscription
    from webapp.sync.pairs import create_pair
    from webapp.sync.rooms import find_room

    admin = db.session.scalar(select(User).where(User.email == DEMO_ADMIN_EMAIL))
    pair = create_pair(venue, space, find_room(room_email), admin)
    db.session.expire_all()
    pair = db.session.get(Pair, pair.id)
    assert pair.state == "live", pair.state_detail
    subscription = db.session.scalar(select(Subscription).where(Subscription.pair_id == pair.id))
    assert subscription.state == "active" and subscription.graph_id
    return pair


@pytest.fixture
def live_demo(connected_demo):
    from webapp.booking.models import Space, Venue
    from webapp.timeutil import now_utc, to_local

    venue = db.session.get(Venue, connected_demo)
    space = db.session.scalar(select(Space).where(Space.name == PAIRED_SPACE))
    pair = pair_live(venue, space, PAIRED_ROOM)
    today = to_local(now_utc(), venue.tz).date()
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=3)
    result = dict(venue_id=venue.id, space_id=space.id, pair_id=pair.id, monday=monday)
    db.session.rollback()  # end the reads: on SQLite an open transaction would hold back the other processes
    return result


# ---------------------------------------------------------------------------------------------- pages


def signed_in_page(browser, base: str, email: str, password: str | None = None, *, timeout: float = 20_000,
                   **context_options):
    """A page of a new browser context (1280×1000 unless `viewport` says otherwise) signed in to Roomsync at
    `base` as `email`, with the demo's password unless `password` is given."""
    from playwright.sync_api import expect

    from webapp.demo import DEMO_PASSWORD

    context = browser.new_context(**{"viewport": {"width": 1280, "height": 1000}, **context_options})
    page = context.new_page()
    page.set_default_timeout(timeout)
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password or DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".flash")).to_contain_text("Signed in as")
    return page


def until(page, check, what: str, deadline: float = SYNC_DEADLINE, url: str | None = None) -> float:
    """Reload `page` (or open `url`) until `check(page)` holds; returns the seconds it took. Each look waits
    up to what `check` allows (half a second, say), so a change shows within about that of landing."""
    started = clock.monotonic()
    while True:
        if url:
            page.goto(url)
        else:
            page.reload()
        try:
            check(page)
            return clock.monotonic() - started
        except AssertionError:
            if clock.monotonic() - started > deadline:
                raise AssertionError(f"{what}: not within {deadline:.0f} s") from None


def outlook_book(page, day, subject: str, start: str, end: str, room: str = PAIRED_ROOM) -> float:
    """Through the meeting form of the mailbox open on the sandbox's Outlook page (the day's "New meeting"
    link): subject, times, the room. Returns the moment it was sent (time.monotonic())."""
    from playwright.sync_api import expect

    page.get_by_role("link", name=f"{day:%a %d %b}", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("^New meeting"))).to_be_visible()
    expect(page.get_by_label("Date")).to_have_value(day.isoformat())
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Start").fill(start)
    page.get_by_label("End").fill(end)
    page.locator(f'input[name="rooms"][value="{room}"]').check()
    sent = clock.monotonic()
    page.get_by_role("button", name="Send").click()
    expect(page.locator("a.event").filter(has_text=subject)).to_be_visible()  # back on the week, saved
    return sent
