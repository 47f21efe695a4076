"""Database engine tuning that SQLite needs and PostgreSQL does not.

Public API: `init_app(app)`; `job_transactions()` and `bounded_wait(ms)` (see below); `begin_serialised_write()` starts the session's next transaction so that
writers are serialised: on SQLite with `BEGIN IMMEDIATE` (one writer at a time across threads and processes,
others wait up to the busy timeout); on PostgreSQL it does nothing (booking writes take advisory locks, see
`booking.locking`).

On SQLite the transactions of POST/PUT/PATCH/DELETE requests (not the webhook's, which takes the lock only
for its insert) begin with BEGIN IMMEDIATE too (see `init_app`).

SQLite runs in WAL mode (readers never wait for the writer), with foreign keys on and a 30 s busy timeout.
pysqlite's own transaction handling is switched off so SQLAlchemy's BEGIN is the one that runs (the
recipe from SQLAlchemy's SQLite dialect documentation, "Serializable isolation / Savepoints / Transactional
DDL").
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .extensions import db

IMMEDIATE = "roomsync_sqlite_immediate"
_ALL_IMMEDIATE: ContextVar[bool] = ContextVar("roomsync_sqlite_all_immediate", default=False)


SQLITE_BUSY_TIMEOUT_MS = 30000
_BUSY_TIMEOUT_MS: ContextVar[int] = ContextVar("roomsync_sqlite_busy_timeout", default=SQLITE_BUSY_TIMEOUT_MS)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _record.info["roomsync_busy_timeout"] = SQLITE_BUSY_TIMEOUT_MS
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        # Per transaction, since a pooled connection serves many callers (see `bounded_wait`); only when it
        # differs from what this connection has.
        wanted, info = _BUSY_TIMEOUT_MS.get(), connection.connection.info
        if info.get("roomsync_busy_timeout") != wanted:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={wanted}")
            info["roomsync_busy_timeout"] = wanted
        immediate = connection.get_execution_options().get(IMMEDIATE) or _ALL_IMMEDIATE.get()
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def init_app(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
        if engine.dialect.name != "sqlite":
            return
        _configure_sqlite(engine)

    # SQLite: a request that changes something reads first (the form's objects) and writes at the commit; if a
    # worker or the webhook writes in between, its upgrade to writer fails at once ("database is locked").
    # So the transactions of POST/PUT/PATCH/DELETE requests begin as the writer (BEGIN IMMEDIATE, waiting the
    # busy timeout). GET requests stay readers. Views must not hold a transaction across a provider call.
    from flask import g, request

    @app.before_request
    def _writer_transactions():
        if request.method in UNSAFE_METHODS and not request.path.startswith("/webhooks/"):
            g.roomsync_immediate = _ALL_IMMEDIATE.set(True)

    @app.teardown_request
    def _reader_transactions(_exc=None):
        token = g.pop("roomsync_immediate", None)
        if token is not None:
            try:
                _ALL_IMMEDIATE.reset(token)
            except ValueError:  # torn down in another context (a streamed response): just switch it off
                _ALL_IMMEDIATE.set(False)


def dialect_name() -> str:
    return db.session.get_bind().dialect.name


def begin_serialised_write() -> None:
    """Make the session's current transaction a serialised writer (see the module docstring).

    On SQLite the lock must be taken when the transaction begins, so a read transaction the request has
    open is committed first (it holds no writes) and a new one begins with BEGIN IMMEDIATE.
    """
    if dialect_name() != "sqlite":
        return
    session = db.session()  # the request's Session behind the scoped_session proxy
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={IMMEDIATE: True})


@contextmanager
def serialised_writes():
    """Inside (this thread or task only): on SQLite every transaction begins with BEGIN IMMEDIATE; nothing on
    PostgreSQL. For background jobs whose transactions read and then write while other processes write: a
    deferred transaction that has read cannot become the writer once another connection committed after its
    first read — SQLite answers "database is locked" at once, whatever the busy timeout."""
    token = _ALL_IMMEDIATE.set(True)
    try:
        yield
    finally:
        _ALL_IMMEDIATE.reset(token)


@contextmanager
def job_transactions():
    """For a background job that reads, calls Microsoft Graph, then writes: every transaction begins as the
    writer on SQLite (`serialised_writes`), and committing keeps the job's objects loaded (no reload per
    commit) — so the job can commit before each Graph call and never hold the write lock across one. Work
    that must see other processes' changes calls `db.session.expire_all()` first."""
    session = db.session()
    session.commit()  # what the caller had open began before this
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        with serialised_writes():
            try:
                yield
            except BaseException:
                session.rollback()
                raise
            session.commit()  # a transaction begun inside must not outlive it (on SQLite it holds the writer lock)
    finally:
        session.expire_on_commit = expire_on_commit


@contextmanager
def bounded_wait(milliseconds: int):
    """Inside (this thread or task): SQLite transactions wait at most `milliseconds` for the database's locks
    (its busy timeout, set as each transaction begins), instead of `SQLITE_BUSY_TIMEOUT_MS`. PostgreSQL callers
    use `SET LOCAL lock_timeout` instead."""
    token = _BUSY_TIMEOUT_MS.set(int(milliseconds))
    try:
        yield
    finally:
        _BUSY_TIMEOUT_MS.reset(token)
