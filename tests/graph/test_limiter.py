"""The per-mailbox limiter on a real Redis (valkey): 4 leases per (app, mailbox), bounded waits, expiry."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from redis import Redis

from webapp.graph import NullLimiter, RedisMailboxLimiter, Throttled

APP = "app-1"
ROOM = "board-room-a@roomsync.test"


@pytest.fixture
def redis(redis_url):
    connection = Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def make_limiter(redis):
    prefix = f"test:graph:slots:{uuid.uuid4().hex[:8]}"  # a shared Redis (CI) never mixes tests

    def make(**options) -> RedisMailboxLimiter:
        return RedisMailboxLimiter(redis, prefix=prefix, **options)

    yield make
    for key in redis.scan_iter(f"{prefix}:*"):
        redis.delete(key)


def test_four_leases_per_mailbox_and_the_fifth_fails_after_its_timeout(make_limiter):
    limiter = make_limiter(wait_timeout=0.3)
    leases = [limiter.acquire(APP, ROOM) for _ in range(4)]
    assert len(set(leases)) == 4 and limiter.in_use(APP, ROOM) == 4
    began = time.monotonic()
    with pytest.raises(Throttled) as caught:
        limiter.acquire(APP, ROOM)
    assert time.monotonic() - began >= 0.3
    assert caught.value.code == "MailboxConcurrency" and caught.value.retry_after == 1.0
    limiter.release(APP, ROOM, leases[0])
    assert limiter.acquire(APP, ROOM)  # a released slot is free at once


def test_the_fifth_waits_for_a_release(make_limiter):
    limiter = make_limiter(wait_timeout=5)
    leases = [limiter.acquire(APP, ROOM) for _ in range(4)]
    threading.Timer(0.3, limiter.release, args=(APP, ROOM, leases[2])).start()
    began = time.monotonic()
    limiter.acquire(APP, ROOM)
    assert 0.25 <= time.monotonic() - began < 3


def test_expired_leases_of_a_crashed_worker_are_reclaimed(make_limiter):
    limiter = make_limiter(lease_seconds=0.4, wait_timeout=0.05)
    for _ in range(4):
        limiter.acquire(APP, ROOM)  # never released: the worker "crashed"
    with pytest.raises(Throttled):
        limiter.acquire(APP, ROOM)
    time.sleep(0.5)
    assert limiter.in_use(APP, ROOM) == 0
    assert limiter.acquire(APP, ROOM) and limiter.in_use(APP, ROOM) == 1


def test_mailboxes_and_apps_are_independent_and_names_are_case_insensitive(make_limiter):
    limiter = make_limiter(wait_timeout=0.05)
    for _ in range(4):
        limiter.acquire(APP, ROOM)
    assert limiter.acquire(APP, "atrium@roomsync.test")
    assert limiter.acquire("another-app", ROOM)
    with pytest.raises(Throttled):
        limiter.acquire(APP, ROOM.upper())


def test_a_slot_is_given_back_when_the_body_raises(make_limiter):
    limiter = make_limiter()
    with pytest.raises(RuntimeError):
        with limiter.slot(APP, ROOM):
            assert limiter.in_use(APP, ROOM) == 1
            raise RuntimeError("Graph call failed")
    assert limiter.in_use(APP, ROOM) == 0


def test_two_workers_sharing_redis_never_exceed_four_in_flight(make_limiter, redis_url):
    # Two limiter instances on two connections stand in for two worker processes.
    workers = [make_limiter(wait_timeout=10), make_limiter(wait_timeout=10)]
    workers[1].redis = Redis.from_url(redis_url)
    workers[1]._acquire = workers[1].redis.register_script(workers[0]._acquire.script)
    in_flight, peak, lock = 0, 0, threading.Lock()

    def call(limiter):
        nonlocal in_flight, peak
        with limiter.slot(APP, ROOM):
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.05)
            with lock:
                in_flight -= 1

    threads = [threading.Thread(target=call, args=(workers[i % 2],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    workers[1].redis.close()
    assert peak == 4


def test_the_null_limiter_never_waits():
    limiter = NullLimiter()
    with limiter.slot(APP, ROOM), limiter.slot(APP, ROOM), limiter.slot(APP, ROOM), limiter.slot(APP, ROOM), \
            limiter.slot(APP, ROOM):
        assert limiter.in_use(APP, ROOM) == 0


def _peak_in_flight(client, calls: int = 12) -> int:
    """Run `calls` parallel calendarView calls on one room; the most Graph requests in flight at once."""
    from datetime import datetime, timedelta, timezone

    start = datetime.now(timezone.utc) + timedelta(days=1)
    original, lock = client.session.request, threading.Lock()
    state = {"now": 0, "peak": 0}

    def counting(method, url, **kwargs):
        graph = "/v1.0/" in url
        if graph:
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
        try:
            return original(method, url, **kwargs)
        finally:
            if graph:
                with lock:
                    state["now"] -= 1

    client.session.request = counting
    client.tokens.token()  # one token for all threads
    errors = []

    def call():
        try:
            client.calendar_view(ROOM, start, start + timedelta(hours=1))
        except Exception as error:  # noqa: BLE001 — collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state["peak"], errors


def test_the_client_keeps_at_most_four_requests_in_flight_per_mailbox(sandbox, make_client, make_limiter, admin):
    admin.faults({"latency": {"ms": 200, "path": "calendarView"}})  # slow answers: requests overlap
    peak, errors = _peak_in_flight(make_client())
    # Without a limiter all 12 go at once, and the mailbox refuses what is over 4 concurrent requests.
    assert peak > 4 and errors and all(isinstance(e, Throttled) for e in errors)
    limited = make_client(limiter=make_limiter(wait_timeout=20))
    peak, errors = _peak_in_flight(limited)
    assert (peak, errors) == (4, [])
    assert limited.recorder.statuses() == [200] * 12
