"""Per-mailbox concurrency limiter shared by every worker through Redis.

Outlook allows an app **4 concurrent requests per mailbox** ([D:includes/throttling-outlook.md], graph-facts
§5.1); going over costs a 429 and a Retry-After. Roomsync runs many workers on many hosts, so the count
lives in Redis.

Public API:
- `RedisMailboxLimiter(redis, *, limit=4, lease_seconds=60, wait_timeout=30, prefix="roomsync:graph:slots")`
  - `slot(app_id, mailbox)` — context manager holding one of the `limit` slots of (app, mailbox) for the
    body; waits up to `wait_timeout` seconds for one, then raises `errors.Throttled` (code
    `MailboxConcurrency`, `retry_after` = 1).
  - `acquire(app_id, mailbox, timeout=None)` → a lease id; `release(app_id, mailbox, lease_id)`;
    `in_use(app_id, mailbox)` → live leases now.
- `NullLimiter()` — same interface, never waits (no Redis configured; the settings page's validation).
- `mailbox_key(mailbox)` → the normalised name a slot is counted under (lower-cased).

Algorithm: one sorted set per (app, mailbox) whose members are lease ids scored by their expiry (Redis
server time, so hosts with skewed clocks agree). Acquiring is one Lua script, atomic in Redis: drop
expired leases (`ZREMRANGEBYSCORE`), then add ours if fewer than `limit` remain. Releasing removes the
lease id. A worker that crashes mid-request never releases, but its lease expires after `lease_seconds`
and the next acquire reclaims the slot — so `lease_seconds` must exceed the longest request (the client
passes connect + read timeout plus a margin). Waiting polls with jittered sleeps (20–100 ms): simple and
good enough for the handful of waiters one mailbox sees.

Callers must name a mailbox the same way every time (Roomsync uses the email address): a mailbox reached
once by id and once by address would be counted as two.
"""

from __future__ import annotations

import random
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

from .errors import Throttled

_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
  return 1
end
return 0
"""

_IN_USE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now_ms, '+inf')
"""


def mailbox_key(mailbox: str) -> str:
    return mailbox.strip().lower()


class NullLimiter:
    @contextmanager
    def slot(self, app_id: str, mailbox: str | None) -> Iterator[None]:
        yield

    def acquire(self, app_id: str, mailbox: str, timeout: float | None = None) -> str:
        return ""

    def release(self, app_id: str, mailbox: str, lease_id: str) -> None:
        pass

    def in_use(self, app_id: str, mailbox: str) -> int:
        return 0


class RedisMailboxLimiter:
    def __init__(self, redis, *, limit: int = 4, lease_seconds: float = 60.0, wait_timeout: float = 30.0,
                 prefix: str = "roomsync:graph:slots"):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.redis, self.limit, self.lease_seconds = redis, limit, lease_seconds
        self.wait_timeout, self.prefix = wait_timeout, prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._in_use = redis.register_script(_IN_USE)

    def _key(self, app_id: str, mailbox: str) -> str:
        return f"{self.prefix}:{app_id}:{mailbox_key(mailbox)}"

    def try_acquire(self, app_id: str, mailbox: str) -> str | None:
        lease_id = uuid.uuid4().hex
        granted = self._acquire(keys=[self._key(app_id, mailbox)],
                                args=[self.limit, int(self.lease_seconds * 1000), lease_id])
        return lease_id if granted == 1 else None

    def acquire(self, app_id: str, mailbox: str, timeout: float | None = None) -> str:
        timeout = self.wait_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            lease_id = self.try_acquire(app_id, mailbox)
            if lease_id is not None:
                return lease_id
            left = deadline - time.monotonic()
            if left <= 0:
                raise Throttled(f"{self.limit} requests to this mailbox are already in flight; waited {timeout:g} s.",
                                code="MailboxConcurrency", retry_after=1.0)
            time.sleep(min(left, random.uniform(0.02, 0.1)))

    def release(self, app_id: str, mailbox: str, lease_id: str) -> None:
        self.redis.zrem(self._key(app_id, mailbox), lease_id)

    def in_use(self, app_id: str, mailbox: str) -> int:
        return int(self._in_use(keys=[self._key(app_id, mailbox)]))

    @contextmanager
    def slot(self, app_id: str, mailbox: str | None) -> Iterator[None]:
        if not mailbox:
            yield
            return
        lease_id = self.acquire(app_id, mailbox)
        try:
            yield
        finally:
            self.release(app_id, mailbox, lease_id)
