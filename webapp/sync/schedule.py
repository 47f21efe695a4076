"""The sync's periodic work and the cron process that queues it.

Public API:
- `sweep()`: job, every `SWEEP_SECONDS`. Re-queues the initial sync of every pair still queued or running
  whose run has no live lease (its worker died, was killed, or the job was lost before it started), and of
  queued pairs without a run that have waited longer than a lease. Idempotent: the run's lease lets one
  worker at a time work on a pair, so a re-queue of a healthy run does nothing.
  Live sync's safety net too: notifications persisted but not processed for `STALE_NOTIFICATION_SECONDS`
  (their job was lost, or Redis was down when the webhook queued it) are queued again, pushes whose retry
  time has come are queued, and bodies the webhook spilled to Redis are stored.
- `check_all_rooms()`: job, every `CHECK_ROOMS_SECONDS`: `pairs.check_rooms` for every venue with pairs.
- `subscriptions.renew_due` every `subscriptions.RENEW_CHECK_SECONDS`, `reconcile.reconcile_all` every
  `SYNC_RECONCILE_SECONDS` (config; 15 minutes by default).
- `build_cron(app)` → an RQ `CronScheduler` with all of them registered (`python worker.py --cron`; one such process
  per deployment is enough, two only queue harmless duplicates).
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import or_, select

from ..extensions import db
from ..timeutil import now_utc
from .models import ACTIVE_STATES, InitialSync, Pair

SWEEP_SECONDS = 30
CHECK_ROOMS_SECONDS = 15 * 60


def stalled_pair_ids() -> list[int]:
    from .initial import _lease_seconds

    now = now_utc()
    rows = db.session.execute(
        select(Pair.id, Pair.created_at, InitialSync.id, InitialSync.lease_until)
        .outerjoin(InitialSync, InitialSync.pair_id == Pair.id)
        .where(Pair.state.in_(ACTIVE_STATES))
        .where(or_(InitialSync.id.is_(None), InitialSync.lease_until.is_(None), InitialSync.lease_until < now))
    ).all()
    grace = _lease_seconds()
    # A pair made moments ago whose run was never claimed: its own job is probably on its way.
    return [pair_id for pair_id, created_at, run_id, lease_until in rows
            if not (lease_until is None and created_at is not None and created_at > now - grace)]


STALE_NOTIFICATION_SECONDS = 20


def sweep() -> list[int]:
    from ..jobs import queue
    from .initial import run_initial_sync
    from .pairs import INITIAL_SYNC_TIMEOUT

    stalled = stalled_pair_ids()
    for pair_id in stalled:
        queue().enqueue(run_initial_sync, pair_id, job_timeout=INITIAL_SYNC_TIMEOUT)
    sweep_live_sync()
    return stalled


def sweep_live_sync() -> dict:
    """Queue what live sync left behind; returns what it queued (for tests and logs)."""
    from datetime import timedelta

    from ..jobs import queue
    from .inbound import process_notifications
    from .models import InboundNotification
    from .outbound import due_pushes, push_booking
    from .webhook import drain_spill

    spilled = 0
    try:
        spilled = drain_spill()
    except Exception:  # noqa: BLE001 — Redis trouble: next sweep
        db.session.rollback()
    old = now_utc() - timedelta(seconds=STALE_NOTIFICATION_SECONDS)
    pairs = sorted(set(db.session.scalars(select(InboundNotification.pair_id).where(
        InboundNotification.state == "new", InboundNotification.received_at < old,
        InboundNotification.pair_id.is_not(None)))))
    pushes = due_pushes()
    q = queue()
    for pair_id in pairs:
        q.enqueue(process_notifications, pair_id, job_timeout=600)
    for uid in pushes:
        q.enqueue(push_booking, uid)
    return {"spilled": spilled, "pairs": pairs, "pushes": pushes}


def check_all_rooms() -> None:
    from .pairs import check_rooms

    for venue_id in set(db.session.scalars(select(Pair.venue_id))):
        check_rooms(venue_id)


def build_cron(app: Flask):
    from rq.cron import CronScheduler

    from ..jobs import queue

    with app.app_context():
        q = queue()
        sweep_every = int(app.config.get("SYNC_SWEEP_SECONDS", SWEEP_SECONDS))
    cron = CronScheduler(connection=q.connection)
    cron.register(sweep, q.name, interval=sweep_every)
    cron.register(check_all_rooms, q.name, interval=CHECK_ROOMS_SECONDS)
    from .reconcile import RECONCILE_SECONDS, reconcile_all
    from .subscriptions import RENEW_CHECK_SECONDS, renew_due

    cron.register(renew_due, q.name, interval=RENEW_CHECK_SECONDS)
    cron.register(reconcile_all, q.name, interval=int(app.config.get("SYNC_RECONCILE_SECONDS", RECONCILE_SECONDS)))
    return cron

