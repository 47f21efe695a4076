"""Short Redis locks that keep one worker at a time on a piece of sync work.

Public API: `pair_lock(kind, key, ttl=LOCK_TTL)` — a context manager yielding a `Held` handle, truthy when
this process holds the lock `roomsync:lock:{kind}:{key}` (non-blocking); `held.refresh()` extends it by
`ttl` again (long work refreshes it as it goes, so the TTL can stay short: a killed worker's lock lapses
within `ttl` seconds). Without Redis (`REDIS_URL` unset: tests running jobs
inline) or when Redis cannot be reached it yields True: the work it guards is idempotent, the lock only
saves duplicate effort, so an outage must not stop the sync.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from flask import current_app

log = logging.getLogger(__name__)

LOCK_TTL = 30  # seconds: a worker killed while holding it frees it by then


class Held:
    def __init__(self, lock=None, acquired: bool = True, ttl: int = LOCK_TTL):
        self._lock, self._acquired, self._ttl = lock, acquired, ttl

    def __bool__(self) -> bool:
        return self._acquired

    def refresh(self) -> None:
        if self._lock is None or not self._acquired:
            return
        from redis.exceptions import RedisError

        try:
            self._lock.extend(self._ttl, replace_ttl=True)
        except Exception as error:  # noqa: BLE001 — lost or Redis gone: the work is idempotent, carry on
            if not isinstance(error, RedisError):
                log.info("lock refresh failed: %s", error)


@contextmanager
def pair_lock(kind: str, key, ttl: int = LOCK_TTL):
    if not current_app.config.get("REDIS_URL"):
        yield Held()
        return
    from redis.exceptions import RedisError

    from ..jobs import redis_connection

    lock = redis_connection().lock(f"roomsync:lock:{kind}:{key}", timeout=ttl, blocking=False)
    try:
        acquired = lock.acquire()
    except RedisError:
        log.warning("Redis unavailable: %s %s runs without its lock", kind, key)
        yield Held()
        return
    try:
        yield Held(lock, acquired, ttl)
    finally:
        if acquired:
            try:
                lock.release()
            except RedisError:  # expired or Redis gone: the TTL frees it
                pass
