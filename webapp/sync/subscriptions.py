"""The Graph subscription of each live pair: create, renew, recreate, delete; lifecycle events.

Public API:
- `ensure_subscription(pair_id)` → "created" | "renewed" | "checked" (None: not a syncing pair): job. Makes the pair's subscription exist and last: creates one (random
  `clientState`, stored only as its SHA-256; lifecycle URL; resource `users/{room}/events`, created, updated
  and deleted) when it has none or its Graph id is unknown to Graph, renews it when it expires within
  `RENEW_BEFORE` (or at once with `force_renew`; `force_new` replaces it), and otherwise reads it (one GET)
  to notice a subscription deleted behind our back. A pair whose initial sync is done becomes "live" once subscribed. Failures are recorded on
  the subscription and as an incident, then raised (RQ retries; the scheduler calls again).
- `renew_due()`: job (cron, every `RENEW_CHECK_SECONDS`): `ensure_subscription` for every syncing pair (it
  renews those due, recreates missing ones and checks the others with one GET each).
- `delete_subscription(graph_id)`: job (unsync): deletes it in Graph; a subscription Graph no longer knows
  counts as deleted.
- `handle_lifecycle(pair_id, event)`: job. `reauthorizationRequired` → renew; `subscriptionRemoved` →
  recreate, then reconcile; `missed` → reconcile (graph-facts §4.6).
- `pair_for_notification(graph_id, client_state)` → the Pair whose live subscription has that id and whose
  clientState digest matches (constant-time), else None.
- `LIFETIME` (how long we ask for: under the 4,230-minute maximum for Outlook events), `RENEW_BEFORE`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

from sqlalchemy import select

from ..extensions import db
from ..graph.errors import GraphError, NotFound
from ..timeutil import now_utc
from .models import SYNCING_STATES, Pair, Subscription

log = logging.getLogger(__name__)

LIFETIME = timedelta(minutes=4230 - 30)
RENEW_BEFORE = timedelta(hours=24)
RENEW_CHECK_SECONDS = 10 * 60


def _digest(client_state: str) -> str:
    return hashlib.sha256(client_state.encode()).hexdigest()


def _urls() -> tuple[str, str]:
    from ..integration.operations import active_settings, public_base_url
    from ..integration.views import LIFECYCLE_PATH, WEBHOOK_PATH

    settings = active_settings()
    if settings is None:
        raise RuntimeError("The Microsoft 365 integration is not configured.")
    base = public_base_url(settings).rstrip("/")
    return base + WEBHOOK_PATH, base + LIFECYCLE_PATH


def _graph():
    from ..graph import graph_client

    return graph_client()


def pair_for_notification(graph_id: str | None, client_state: str | None) -> Pair | None:
    if not graph_id:
        return None
    row = db.session.scalar(select(Subscription).where(Subscription.graph_id == graph_id))
    if row is None or not client_state or not row.client_state_hash:
        return None
    if not hmac.compare_digest(row.client_state_hash, _digest(client_state)):
        return None
    return row.pair


def _create(pair: Pair, row: Subscription) -> None:
    notification_url, lifecycle_url = _urls()
    client_state = secrets.token_urlsafe(32)
    created = _graph().create_subscription(f"users/{pair.room_email}/events", notification_url,
                                           now_utc() + LIFETIME, client_state, lifecycle_url=lifecycle_url)
    row.graph_id, row.client_state_hash = created.id, _digest(client_state)
    row.expires_at, row.state, row.error, row.renewed_at = created.expiration, "active", "", now_utc()


def ensure_subscription(pair_id: int, *, force_new: bool = False, force_renew: bool = False) -> str | None:
    from ..db_engine import job_transactions

    with job_transactions():
        return _ensure(pair_id, force_new, force_renew)


def _ensure(pair_id: int, force_new: bool, force_renew: bool) -> str | None:
    pair = db.session.get(Pair, pair_id)
    if pair is None or pair.state not in SYNCING_STATES:
        return None
    outcome = "checked"
    row = db.session.scalar(select(Subscription).where(Subscription.pair_id == pair.id))
    if row is None:
        row = Subscription(pair_id=pair.id, state="failed")
        db.session.add(row)
    db.session.commit()  # no transaction stays open across the Graph calls below
    try:
        if row.graph_id and not force_new:
            due = (force_renew or row.expires_at is None or row.expires_at - now_utc() < RENEW_BEFORE
                   or row.state != "active")
            try:
                if due:
                    renewed = _graph().renew_subscription(row.graph_id, now_utc() + LIFETIME)
                    row.expires_at, row.state, row.error, row.renewed_at = renewed.expiration, "active", "", now_utc()
                    outcome = "renewed"
                else:
                    _graph().get_subscription(row.graph_id)  # still there? (deleted behind our back: NotFound)
            except NotFound:  # removed or expired in Graph: a new one, and a reconcile for what was missed
                log.warning("subscription of pair %s is gone in Graph; creating a new one", pair.id)
                _create(pair, row)
                _after_recreate(pair)
                outcome = "created"
        else:
            old = row.graph_id
            _create(pair, row)
            outcome = "created"
            if old:
                _delete_quietly(old)
            if old or force_new:
                _after_recreate(pair)
    except GraphError as error:
        from .health import cause_of, record_incident

        db.session.rollback()
        row = db.session.scalar(select(Subscription).where(Subscription.pair_id == pair_id))
        row.state, row.error = "failed", str(error)[:500]
        cause = cause_of(error)
        record_incident(pair_id, f"The subscription could not be {'renewed' if row.graph_id else 'created'}: "
                                 f"{error}", cause=cause if cause in ("permission", "room_deleted", "throttled")
                        else "subscription")
        db.session.commit()  # recorded before the job fails: its rollback must not take the incident along
        raise
    if pair.state == "done":
        pair.state = "live"
        pair.state_detail = "Live: changes flow both ways."
    db.session.commit()
    return outcome


def _after_recreate(pair: Pair) -> None:
    from ..jobs import enqueue_after_commit
    from .reconcile import reconcile_pair

    enqueue_after_commit(reconcile_pair, pair.id)


def _delete_quietly(graph_id: str) -> None:
    try:
        _graph().delete_subscription(graph_id)
    except GraphError:
        log.info("old subscription %s could not be deleted (it expires by itself)", graph_id)


def delete_subscription(graph_id: str) -> None:
    try:
        _graph().delete_subscription(graph_id)
    except NotFound:
        pass


def renew_due() -> list[int]:
    """Every syncing pair: renewed when due, recreated when missing or unknown to Graph, else checked.
    Returns the pairs whose subscription was renewed or (re)created, or failed to be."""
    changed = []
    for pair_id in list(db.session.scalars(select(Pair.id).where(Pair.state.in_(tuple(SYNCING_STATES)))
                                           .order_by(Pair.id))):
        try:
            if ensure_subscription(pair_id) != "checked":
                changed.append(pair_id)
        except Exception:  # noqa: BLE001 — one pair's failure (recorded as an incident) must not stop the others
            db.session.rollback()
            changed.append(pair_id)
            log.warning("subscription of pair %s could not be ensured", pair_id, exc_info=True)
    return changed


def handle_lifecycle(pair_id: int, event: str) -> None:
    from .reconcile import reconcile_pair

    if event == "reauthorizationRequired":
        ensure_subscription(pair_id, force_renew=True)  # renewing reauthorizes (graph-facts §4.6)
    elif event == "subscriptionRemoved":
        ensure_subscription(pair_id, force_new=True)  # queues a reconcile for what was missed meanwhile
    elif event == "missed":
        reconcile_pair(pair_id)
    else:
        log.info("lifecycle event %r for pair %s ignored", event, pair_id)
