"""A short-lived cache and a per-key rate limit for the attendee lookup, shared by every web process.

Public API:
- `store()` → the application's store: Redis (`REDIS_URL`) unless `INTEGRATION_CACHE` is "memory" (tests,
  single-process scripts). A Redis that cannot be reached degrades to the process's memory store for that
  call (logged once) instead of failing the page: the lookup is a convenience, never worth a 500.
- Store methods: `get_json(key)`, `set_json(key, value, ttl_seconds)`, `allow(key, cost, limit,
  window_seconds)` → True while `key` has spent at most `limit` in the current fixed window, counting `cost`.
- `MemoryStore`, `RedisStore` (the two implementations).

Why a fixed window: the limit only has to keep one person's typing from turning into a burst of provider
calls; a fixed window is one INCRBY + EXPIRE in Redis, atomic in a pipeline.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from flask import current_app
from redis.exceptions import RedisError

from ..jobs import redis_connection

log = logging.getLogger(__name__)
_PREFIX = "roomsync:integration:"


class MemoryStore:
    def __init__(self, clock=None) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, str]] = {}
        self._counters: dict[str, tuple[int, int]] = {}  # key → (window number, spent)
        self._clock = clock or (lambda: time.monotonic())  # looked up per call, so tests can freeze it

    def get_json(self, key: str):
        with self._lock:
            entry = self._values.get(key)
            if entry is None or entry[0] <= self._clock():
                self._values.pop(key, None)
                return None
            return json.loads(entry[1])

    def set_json(self, key: str, value, ttl_seconds: float) -> None:
        with self._lock:
            if len(self._values) > 10_000:  # a process-local store must not grow without bound
                now = self._clock()
                self._values = {k: v for k, v in self._values.items() if v[0] > now}
            self._values[key] = (self._clock() + ttl_seconds, json.dumps(value))

    def allow(self, key: str, cost: int, limit: int, window_seconds: int) -> bool:
        window = int(self._clock() // window_seconds)
        with self._lock:
            current, spent = self._counters.get(key, (window, 0))
            if current != window:
                spent = 0
            if spent + cost > limit:
                self._counters[key] = (window, spent)
                return False
            self._counters[key] = (window, spent + cost)
            return True

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._counters.clear()


class RedisStore:
    def __init__(self, connection) -> None:
        self._redis = connection

    def get_json(self, key: str):
        raw = self._redis.get(_PREFIX + key)
        return None if raw is None else json.loads(raw)

    def set_json(self, key: str, value, ttl_seconds: float) -> None:
        self._redis.set(_PREFIX + key, json.dumps(value), px=max(1, int(ttl_seconds * 1000)))

    def allow(self, key: str, cost: int, limit: int, window_seconds: int) -> bool:
        window = int(time.time() // window_seconds)
        name = f"{_PREFIX}rate:{key}:{window}"
        pipe = self._redis.pipeline()
        pipe.incrby(name, cost)
        pipe.expire(name, window_seconds + 1)
        spent, _ = pipe.execute()
        if spent > limit:
            self._redis.decrby(name, cost)  # a refused call spends nothing
            return False
        return True


class _Fallback:
    """Redis first; the process's memory store when Redis is down."""

    def __init__(self, primary: RedisStore, fallback: MemoryStore) -> None:
        self._primary, self._fallback, self._warned = primary, fallback, False

    def _call(self, name: str, *args):
        try:
            return getattr(self._primary, name)(*args)
        except (RedisError, OSError) as error:
            if not self._warned:
                log.warning("attendee lookup cache: Redis unavailable (%s); using this process's memory", error)
                self._warned = True
            return getattr(self._fallback, name)(*args)

    def get_json(self, key):
        return self._call("get_json", key)

    def set_json(self, key, value, ttl_seconds):
        return self._call("set_json", key, value, ttl_seconds)

    def allow(self, key, cost, limit, window_seconds):
        return self._call("allow", key, cost, limit, window_seconds)


def store():
    existing = current_app.extensions.get("integration_cache")
    if existing is not None:
        return existing
    if current_app.config.get("INTEGRATION_CACHE", "redis") == "memory":
        created = MemoryStore()
    else:
        created = _Fallback(RedisStore(redis_connection()), MemoryStore())
    current_app.extensions["integration_cache"] = created
    return created
