"""What the webhook does with a notification POST: check, persist, queue — fast.

Public API:
- `accept(payload, kind)` → `Accepted(stored, rejected, pairs)`: `kind` "change" or "lifecycle". Each
  notification in `payload["value"]` is matched to a pair by its subscription id and `clientState` (a wrong
  or missing one is rejected: counted, logged without the secret, nothing stored or changed); the matching
  ones are stored as `InboundNotification` rows in one short transaction, the pairs' `last_notification_at`
  stamped, and `inbound.process_notifications` queued once per pair after the commit. Queueing that fails
  (Redis down) leaves the rows for the sweeper: they are persisted, so the answer is still 202.
- `BadPayload`: raised for a body that is not a notification collection (the view answers 400).
- `spill(raw_body, kind)` / `drain_spill()` / `drain_spill_job()`: when the database cannot take the rows in
  time, the raw body goes to a Redis list instead (still 202) and a job replays it into the database (the
  sweeper too, should that job be lost). Only when both fail
  does the view answer 503, and Graph retries.
- `DB_DEADLINE_MS` (PostgreSQL lock and statement timeouts) and `SQLITE_DEADLINE_MS` (SQLite's busy timeout):
  how long the webhook's transaction may wait for a lock, so the answer stays well under Graph's 3 seconds
  (`accept(..., wait_ms=)` overrides it: the drain job waits up to `SPILL_DEADLINE_MS`).
- `queue_processing(pair_ids)`: queue `inbound.process_notifications` for these pairs. `QUEUED_KEY`: while a
  pair's processing job waits in the queue no second one is queued for it (a burst of notifications is one
  job, not fifty); `inbound.process_notifications` clears it as it starts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import text, update

from ..extensions import db
from ..timeutil import now_utc
from .models import InboundNotification, Pair

log = logging.getLogger(__name__)

DB_DEADLINE_MS = 1500
SQLITE_DEADLINE_MS = 60  # SQLite's busy wait is unfair to a waiter, and a worker's write can hold the one
# writer's lock for longer: the answer must stay fast (p99 < 100 ms), so spill to Redis early
SPILL_DEADLINE_MS = 5000  # a job storing spilled bodies can wait its turn
QUEUED_KEY = "roomsync:inbound:queued:{}"  # set while a pair's processing job waits in the queue
QUEUED_TTL = 60
SPILL_KEY = "roomsync:webhook:spill"
SPILL_QUEUED_KEY = "roomsync:webhook:spill:queued"  # set while a drain job waits in the queue
MAX_ITEMS = 1000
_EVENT_SEGMENT = "/events/"


class BadPayload(ValueError):
    pass


@dataclass
class Accepted:
    stored: int = 0
    rejected: int = 0
    pairs: set = field(default_factory=set)


def _event_id(item: dict) -> str | None:
    data = item.get("resourceData")
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return data["id"][:400]
    resource = item.get("resource")
    if isinstance(resource, str) and _EVENT_SEGMENT in resource.lower():
        index = resource.lower().rindex(_EVENT_SEGMENT)
        return resource[index + len(_EVENT_SEGMENT):].split("/")[0][:400] or None
    return None


def _items(payload) -> list[dict]:
    if not isinstance(payload, dict) or not isinstance(payload.get("value"), list):
        raise BadPayload("Expected a JSON object with a 'value' array of notifications.")
    items = payload["value"]
    if len(items) > MAX_ITEMS or not all(isinstance(i, dict) for i in items):
        raise BadPayload("The 'value' array must hold notification objects.")
    return items


def _bound_waits(wait_ms: int) -> None:
    """PostgreSQL: lock and statement timeouts local to the transaction (SQLite: `db_engine.bounded_wait`)."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"SET LOCAL lock_timeout = '{int(wait_ms)}ms'"))
        db.session.execute(text(f"SET LOCAL statement_timeout = '{int(wait_ms) * 2}ms'"))


def _begin_writing() -> None:
    """SQLite: the insert runs in a transaction that begins as the writer: one that has read cannot become
    the writer once a worker has written (see `db_engine`)."""
    from ..db_engine import begin_serialised_write

    if db.engine.dialect.name == "sqlite":
        begin_serialised_write()


def accept(payload, kind: str, *, wait_ms: int | None = None) -> Accepted:
    from ..db_engine import bounded_wait

    if wait_ms is None:
        wait_ms = SQLITE_DEADLINE_MS if db.engine.dialect.name == "sqlite" else DB_DEADLINE_MS
    with bounded_wait(wait_ms):
        return _accept(payload, kind, wait_ms)


def _accept(payload, kind: str, wait_ms: int) -> Accepted:
    from .subscriptions import pair_for_notification

    items = _items(payload)
    result = Accepted()
    now = now_utc()
    try:
        _bound_waits(wait_ms)
        rows = []
        for item in items:
            pair = pair_for_notification(item.get("subscriptionId"), item.get("clientState"))
            if pair is None:
                result.rejected += 1
                continue
            if kind == "lifecycle":
                rows.append(dict(pair_id=pair.id, subscription_graph_id=str(item.get("subscriptionId"))[:200],
                                 kind="lifecycle", lifecycle_event=str(item.get("lifecycleEvent") or "")[:40],
                                 received_at=now, state="new"))
            else:
                rows.append(dict(pair_id=pair.id, subscription_graph_id=str(item.get("subscriptionId"))[:200],
                                 kind="change", change_type=str(item.get("changeType") or "")[:20],
                                 event_id=_event_id(item), received_at=now, state="new"))
            result.pairs.add(pair.id)
        if rows:
            _begin_writing()  # only now: rejected notifications and handshakes never take the writer lock
            db.session.execute(InboundNotification.__table__.insert(), rows)
            db.session.execute(update(Pair).where(Pair.id.in_(result.pairs)).values(last_notification_at=now))
        result.stored = len(rows)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if result.rejected:
        log.warning("webhook: %d %s notification(s) with an unknown subscription or a wrong clientState ignored",
                    result.rejected, kind)
    queue_processing(result.pairs)
    return result


def queue_processing(pair_ids) -> None:
    """Queue `inbound.process_notifications` for these pairs: one waiting job per pair (`QUEUED_KEY`); with
    inline jobs, process them now."""
    from .inbound import process_notifications

    if not pair_ids:
        return
    if current_app.config.get("SYNC_JOBS"):
        for pair_id in sorted(pair_ids):
            try:
                process_notifications(pair_id)
            except Exception:  # noqa: BLE001 — as a failed job: the rows stay new for the sweeper
                db.session.rollback()
                current_app.logger.exception("inline processing of pair %s failed", pair_id)
        return
    if not current_app.config.get("REDIS_URL"):
        return  # no queue configured: the sweeper (or a test) processes the rows
    try:
        from ..jobs import queue, redis_connection

        q, conn = queue(), redis_connection()
        for pair_id in sorted(pair_ids):
            # One waiting job per pair is enough: it takes every row stored before it starts (a burst of
            # 50 notifications a second must not become 50 jobs, each paying a worker's fork).
            if conn.set(QUEUED_KEY.format(pair_id), "1", nx=True, ex=QUEUED_TTL):
                q.enqueue(process_notifications, pair_id, job_timeout=600)
    except Exception:  # noqa: BLE001 — persisted already; the sweeper queues them
        log.warning("webhook: could not queue processing (Redis?); the sweeper will", exc_info=True)


def spill(raw_body: bytes, kind: str) -> bool:
    try:
        from ..jobs import redis_connection

        if not current_app.config.get("REDIS_URL"):
            return False
        redis_connection().rpush(SPILL_KEY, json.dumps({"kind": kind, "body": raw_body.decode("utf-8", "replace")}))
    except Exception:  # noqa: BLE001
        log.error("webhook: neither the database nor Redis took a notification; Graph will retry")
        return False
    try:
        from ..jobs import queue

        # Stored within seconds, not at the next sweep; one waiting job drains every body spilled meanwhile.
        if redis_connection().set(SPILL_QUEUED_KEY, "1", nx=True, ex=QUEUED_TTL):
            queue().enqueue(drain_spill_job)
    except Exception:  # noqa: BLE001 — the sweeper drains it
        pass
    return True


def drain_spill_job() -> int:
    """Job: store what the webhook spilled (see `drain_spill`)."""
    from ..jobs import redis_connection

    try:
        redis_connection().delete(SPILL_QUEUED_KEY)  # from now on a new spill queues a new job
    except Exception:  # noqa: BLE001
        pass
    return drain_spill()


def drain_spill(limit: int = 1000) -> int:
    from ..jobs import redis_connection

    if not current_app.config.get("REDIS_URL"):
        return 0
    conn = redis_connection()
    drained = 0
    while drained < limit:
        raw = conn.lpop(SPILL_KEY)
        if raw is None:
            break
        try:
            entry = json.loads(raw)
            accept(json.loads(entry["body"]), entry.get("kind", "change"), wait_ms=SPILL_DEADLINE_MS)
        except BadPayload:
            pass
        except Exception:  # noqa: BLE001 — put it back for the next sweep
            conn.lpush(SPILL_KEY, raw)
            raise
        drained += 1
    return drained
