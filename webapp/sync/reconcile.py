"""Reconciliation: the periodic repair of whatever a lost notification missed, and the audit after it.

Public API:
- `reconcile_pair(pair_id)` → `ReconcileResult`: job. One calendarView delta round on the room (from the
  stored delta link; a full round from midnight today to the 1,080-day horizon when there is none, when
  the day has changed, or when Graph expired the link). Every event the round reports is synced with
  `inbound.sync_room_event` (unchanged ones stop at their changeKey, without a Graph call); removed ones lose
  their booking. A full round also looks for links to events the room no longer has — each confirmed gone
  by reading it (a side that suddenly looks empty never wipes the other) — and re-pushes upcoming bookings
  of the space that Outlook has never seen. Then the parity audit (`parity.audit_pair`), stored on the pair.
- `reconcile_all()`: job (cron, every `RECONCILE_SECONDS`, config `SYNC_RECONCILE_SECONDS`): queues
  `reconcile_pair` for every syncing pair.
- `audit_now(pair_id)`: job behind the health page's "Audit now": the audit alone, stored on the pair.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from ..booking.models import Booking, booking_spaces
from ..extensions import db
from ..graph.errors import NotFound, SyncStateExpired
from ..timeutil import now_utc
from .inbound import live_context, sync_room_event
from .models import SYNCING_STATES, EventLink, OutboundState, Pair

log = logging.getLogger(__name__)

RECONCILE_SECONDS = 15 * 60
DELTA_PAGE = 200


@dataclass
class ReconcileResult:
    full: bool = False
    events: int = 0
    outcomes: dict = field(default_factory=dict)
    gone: int = 0
    pushed: int = 0
    differences: int | None = None


def reconcile_pair(pair_id: int) -> ReconcileResult | None:
    from ..db_engine import job_transactions
    from .locks import pair_lock

    from ..graph.errors import GraphError
    from .inbound import _room_gone, _trouble

    with job_transactions(), pair_lock("reconcile", pair_id, ttl=600) as acquired:
        if not acquired:
            return None
        try:
            return _reconcile(pair_id)
        except GraphError as error:  # recorded for the health page; the job fails and the next round retries
            if not _room_gone(pair_id, error):
                _trouble(pair_id, error)
            raise


def _round(ctx, pair: Pair, window_start):
    graph = ctx.graph
    if pair.delta_link and pair.delta_window_start == window_start:
        try:
            return graph.calendar_view_delta(ctx.room, delta_link=pair.delta_link, page_size=DELTA_PAGE), False
        except SyncStateExpired:
            log.info("delta link of pair %s expired: full round", pair.id)
    return graph.calendar_view_delta(ctx.room, start=window_start, end=ctx.horizon, page_size=DELTA_PAGE), True


def _reconcile(pair_id: int) -> ReconcileResult | None:
    ctx = live_context(pair_id)
    if ctx is None:
        return None
    pair = ctx.pair
    window_start = ctx.today_start
    db.session.commit()
    page, full = _round(ctx, pair, window_start)
    result = ReconcileResult(full=full)
    heads: dict[str, object] = {}
    for event in page.events:
        if event.type in ("occurrence", "exception") and event.series_master_id:
            heads.setdefault(event.series_master_id, None)
        else:
            heads[event.id] = event
    seen = set(heads)
    for event_id, event in heads.items():
        outcome = sync_room_event(pair_id, event_id, event=event, ctx=ctx)
        result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
        result.events += 1
    for removed in page.removed_ids:
        if removed not in seen:
            sync_room_event(pair_id, removed, deleted=True, ctx=ctx)
            result.gone += 1
    if full:
        result.gone += _confirm_vanished(ctx, seen, window_start)
        result.pushed += _push_unseen(ctx, window_start)
    pair = db.session.get(Pair, pair_id)
    pair.delta_link, pair.delta_window_start = page.delta_link, window_start
    pair.last_reconciled_at = now_utc()
    db.session.commit()
    result.differences = audit_now(pair_id)
    return result


def _confirm_vanished(ctx, seen: set[str], window_start) -> int:
    """Links of this room to events the full round did not list: each read once; only a 404 removes."""
    rows = db.session.execute(
        select(EventLink.room_event_id).join(Booking, Booking.uid == EventLink.booking_uid)
        .where(EventLink.room_email == ctx.room, EventLink.room_event_id.is_not(None),
               Booking.cancelled_at.is_(None))).scalars()
    gone = 0
    missing = [r for r in rows if r not in seen]
    db.session.commit()
    for event_id in missing:
        try:
            event = ctx.graph.get_event(ctx.room, event_id)
        except NotFound:
            sync_room_event(ctx.pair.id, event_id, deleted=True, ctx=ctx)
            gone += 1
            continue
        if event.end >= window_start or event.type == "seriesMaster":
            sync_room_event(ctx.pair.id, event_id, event=event, ctx=ctx)
    return gone


def _push_unseen(ctx, window_start) -> int:
    """Upcoming bookings of the space Outlook has never seen (no link to this room, no push pending)."""
    from .outbound import request_push

    linked = select(EventLink.booking_uid).where(EventLink.room_email == ctx.room)
    pending = select(OutboundState.booking_uid).where(OutboundState.state.in_(("pending", "failed")))
    bookings = list(db.session.scalars(
        select(Booking).join(booking_spaces, booking_spaces.c.booking_id == Booking.id)
        .where(booking_spaces.c.space_id == ctx.space.id, Booking.cancelled_at.is_(None),
               Booking.uid.not_in(linked), Booking.uid.not_in(pending))))
    from ..booking.operations import occurrence_times

    count = 0
    for booking in bookings:
        if any(o.end > window_start and not o.cancelled for o in occurrence_times(booking)):
            request_push(booking, reason="reconcile")
            count += 1
    db.session.commit()
    return count


def audit_now(pair_id: int) -> int | None:
    from ..db_engine import job_transactions

    with job_transactions():
        return _audit(pair_id)


def _audit(pair_id: int) -> int | None:
    from .parity import audit_pair

    pair = db.session.get(Pair, pair_id)
    if pair is None or pair.state not in SYNCING_STATES:
        return None
    db.session.commit()
    result = audit_pair(pair_id)
    pair.last_parity = result.to_json()
    db.session.commit()
    return result.difference_count


def reconcile_all() -> list[int]:
    from ..jobs import queue

    ids = list(db.session.scalars(select(Pair.id).where(Pair.state.in_(tuple(SYNCING_STATES)))))
    for pair_id in ids:
        queue().enqueue(reconcile_pair, pair_id, job_timeout=1800)
    return ids
