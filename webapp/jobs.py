"""Background jobs on RQ.

Public API:
- `init_app(app)`: binds the Redis connection and queue lazily (nothing connects before a worker forks).
- `queue()`: the application's RQ queue.
- `call_after_commit(func, *args)`: call `func` in this process after the commit (to decide whether to queue).
- `run_inline(func, *args)`: what SYNC_JOBS does with a job: run it now in a context of its own.
- `enqueue_after_commit(func, *args, **kwargs)`: queue a job once the current database transaction commits
  (dropped on rollback), so a job never runs against rows that do not exist yet. Jobs take ids, not objects.
  RQ's own options (`job_timeout`, `retry`, … — `RQ_OPTIONS`) go to RQ, never to the function.
  With `SYNC_JOBS` set (tests, scripts) the job runs right after the commit instead, synchronously, in an app
  context (and so a database session) of its own — as a worker would run it. A failing job is logged with its
  traceback, as RQ records a failed job; the request that enqueued it has committed and is not affected.
"""

from __future__ import annotations

import threading

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session

from .extensions import db

_PENDING_KEY = "roomsync_pending_jobs"
_CALLBACKS_KEY = "roomsync_after_commit_calls"


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


def call_after_commit(func, *args) -> None:
    """Call `func(*args)` in this process once the current transaction commits (dropped on rollback) — for
    deciding *whether* to queue a job (e.g. one queued job per kind of work), which must not itself cost a
    job. It runs outside any transaction; it must not touch the database."""
    session = db.session()
    session.info.setdefault(_CALLBACKS_KEY, []).append((func, args))


@event.listens_for(Session, "after_commit")
def _flush_pending_jobs(session) -> None:
    for func, args in session.info.pop(_CALLBACKS_KEY, []):
        try:
            func(*args)
        except Exception:  # noqa: BLE001 — committed already; the sweeper covers what this would have queued
            current_app.logger.exception("after-commit call %s failed", getattr(func, "__name__", func))
    pending = session.info.pop(_PENDING_KEY, [])
    if not pending:
        return
    if current_app.config.get("SYNC_JOBS"):
        app = current_app._get_current_object()
        for func, args, kwargs in pending:
            _run_in_own_context(app, func, args, kwargs)
        return
    q = queue()
    for func, args, kwargs in pending:
        q.enqueue(func, *args, **kwargs)


# Keyword arguments that are RQ's own (`Queue.enqueue` options), not the job function's.
RQ_OPTIONS = frozenset({"job_timeout", "retry", "result_ttl", "ttl", "failure_ttl", "description", "job_id",
                        "at_front", "meta", "depends_on"})


def _run_in_own_context(app: Flask, func, args, kwargs) -> None:
    """Inside `after_commit` the committing session cannot run SQL, and the job must not share it anyway: a
    thread gets its own app context and session, and the caller waits for it."""

    kwargs = {key: value for key, value in kwargs.items() if key not in RQ_OPTIONS}

    def run() -> None:
        with app.app_context():
            try:
                func(*args, **kwargs)
            except Exception:  # noqa: BLE001 — a job's failure is its own, as with RQ
                app.logger.exception("job %s failed", getattr(func, "__name__", func))
            finally:
                db.session.remove()

    worker = threading.Thread(target=run, name=f"job-{getattr(func, '__name__', 'job')}")
    worker.start()
    worker.join()


@event.listens_for(Session, "after_rollback")
def _drop_pending_jobs(session) -> None:
    session.info.pop(_PENDING_KEY, None)
    session.info.pop(_CALLBACKS_KEY, None)


def run_inline(func, *args, **kwargs) -> None:
    _run_in_own_context(current_app._get_current_object(), func, args, kwargs)
