"""Short Redis locks that keep one worker at a time on a piece of sync work.

Public API: `pair_lock(kind, key, ttl=LOCK_TTL)` — a context manager yielding whether this process holds
the lock `roomsync:lock:{kind}:{key}` (non-blocking). Without Redis (`REDIS_URL` unset: tests running jobs
inline) or when Redis cannot be reached it yields True: the work it guards is idempotent, the lock only
saves duplicate effort, so an outage must not stop the sync.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from flask import current_app

log = logging.getLogger(__name__)

LOCK_TTL = 300  # seconds: a worker killed while holding it frees it by then


@contextmanager
def pair_lock(kind: str, key, ttl: int = LOCK_TTL):
    if not current_app.config.get("REDIS_URL"):
        yield True
        return
    from redis.exceptions import RedisError

    from ..jobs import redis_connection

    lock = redis_connection().lock(f"roomsync:lock:{kind}:{key}", timeout=ttl, blocking=False)
    try:
        acquired = lock.acquire()
    except RedisError:
        log.warning("Redis unavailable: %s %s runs without its lock", kind, key)
        yield True
        return
    try:
        yield acquired
    finally:
        if acquired:
            try:
                lock.release()
            except RedisError:  # expired or Redis gone: the TTL frees it
                pass
