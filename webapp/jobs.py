"""Background jobs on RQ.

Public API:
- `init_app(app)`: binds the Redis connection and queue lazily (nothing connects before a worker forks).
- `queue()`: the application's RQ queue.
- `enqueue_after_commit(func, *args, **kwargs)`: queue a job once the current database transaction commits
  (dropped on rollback), so a job never runs against rows that do not exist yet. Jobs take ids, not objects.
  With `SYNC_JOBS` set (tests, scripts) the job runs inline right after the commit instead.
"""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session

from .extensions import db

_PENDING_KEY = "roomsync_pending_jobs"


def init_app(app: Flask) -> None:
    app.extensions["roomsync_redis"] = None


def redis_connection() -> Redis:
    conn = current_app.extensions.get("roomsync_redis")
    if conn is None:
        conn = Redis.from_url(current_app.config["REDIS_URL"])
        current_app.extensions["roomsync_redis"] = conn
    return conn


def queue() -> Queue:
    return Queue(current_app.config["RQ_QUEUE"], connection=redis_connection())


def enqueue_after_commit(func, *args, **kwargs) -> None:
    session = db.session()
    session.info.setdefault(_PENDING_KEY, []).append((func, args, kwargs))


@event.listens_for(Session, "after_commit")
def _flush_pending_jobs(session) -> None:
    pending = session.info.pop(_PENDING_KEY, [])
    if not pending:
        return
    if current_app.config.get("SYNC_JOBS"):
        for func, args, kwargs in pending:
            func(*args, **kwargs)
        return
    q = queue()
    for func, args, kwargs in pending:
        q.enqueue(func, *args, **kwargs)


@event.listens_for(Session, "after_rollback")
def _drop_pending_jobs(session) -> None:
    session.info.pop(_PENDING_KEY, None)
