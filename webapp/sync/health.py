"""Sync health: recent incidents per pair and the figures the health page shows.

Public API:
- `record_incident(pair_id, error_or_text, cause=None)`: adds a `SyncIncident` (cause from `cause_of` when
  not given) in the caller's transaction; keeps the newest `KEEP` per pair.
- `cause_of(error)` → one of `models.INCIDENT_CAUSES`: room deleted (the room's mailbox is gone), permission
  (a revoked grant, an access policy, failed authentication), throttled, unavailable (5xx, connection), other.
- `PairHealth` and `venue_health(venue)` → [PairHealth]: per pair its state, subscription state and expiry,
  last notification, last reconcile, pending and failed outbound pushes, unprocessed notifications, the last
  parity result and recent incidents; `status` is "ok" (green), "warning" (pending work, a subscription
  close to expiry, recent transient errors) or "error" (broken, subscription failed or missing, failed
  pushes, differences found by the last audit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from ..booking.models import Booking, Venue, booking_spaces
from ..extensions import db
from ..graph.errors import (AccessPolicyDenied, AuthFailed, ConnectionFailed, GraphError, InvalidUser,
                            MailboxNotEnabled, NotFound, PermissionMissing, ServiceUnavailable, Throttled)
from ..timeutil import now_utc
from .models import SYNCING_STATES, InboundNotification, OutboundState, Pair, Subscription, SyncIncident

KEEP = 50
RECENT = timedelta(hours=24)


def cause_of(error) -> str:
    if isinstance(error, Throttled):
        return "throttled"
    if isinstance(error, (PermissionMissing, AccessPolicyDenied, AuthFailed)):
        return "permission"
    if isinstance(error, (InvalidUser, MailboxNotEnabled)):
        return "room_deleted"
    if isinstance(error, (ServiceUnavailable, ConnectionFailed)):
        return "unavailable"
    if isinstance(error, GraphError) and getattr(error, "status", None) and error.status >= 500:
        return "unavailable"
    return "other"


def record_incident(pair_id: int | None, error, cause: str | None = None) -> None:
    detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    db.session.add(SyncIncident(pair_id=pair_id, cause=cause or cause_of(error), detail=str(detail)[:1000],
                                at=now_utc()))
    if pair_id is not None:
        old = list(db.session.scalars(select(SyncIncident.id).where(SyncIncident.pair_id == pair_id)
                                      .order_by(SyncIncident.id.desc()).offset(KEEP)))
        if old:
            db.session.execute(SyncIncident.__table__.delete().where(SyncIncident.id.in_(old)))


@dataclass
class PairHealth:
    pair: Pair
    subscription: Subscription | None
    pending_pushes: int
    failed_pushes: int
    unprocessed: int
    incidents: list[SyncIncident] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "error" if self.problems else "warning" if self.warnings else "ok"

    @property
    def parity_differences(self) -> int | None:
        from .parity import ParityResult

        if not self.pair.last_parity:
            return None
        try:
            return ParityResult.from_json(self.pair.last_parity).difference_count
        except (KeyError, TypeError, ValueError):  # a stored audit of an older shape: not a verdict
            return None


def _counts_by_space(space_ids: list[int], state: str) -> dict[int, int]:
    if not space_ids:
        return {}
    rows = db.session.execute(
        select(booking_spaces.c.space_id, func.count())
        .select_from(OutboundState)
        .join(Booking, Booking.uid == OutboundState.booking_uid)
        .join(booking_spaces, booking_spaces.c.booking_id == Booking.id)
        .where(OutboundState.state == state, booking_spaces.c.space_id.in_(space_ids))
        .group_by(booking_spaces.c.space_id))
    return dict(rows.all())


def venue_health(venue: Venue, now: datetime | None = None) -> list[PairHealth]:
    now = now or now_utc()
    pairs = list(db.session.scalars(select(Pair).where(Pair.venue_id == venue.id).order_by(Pair.id)))
    ids = [p.id for p in pairs]
    subs = {s.pair_id: s for s in db.session.scalars(select(Subscription).where(Subscription.pair_id.in_(ids)))} if ids else {}
    pending = _counts_by_space([p.space_id for p in pairs], "pending")
    failed = _counts_by_space([p.space_id for p in pairs], "failed")
    unprocessed = dict(db.session.execute(
        select(InboundNotification.pair_id, func.count()).where(InboundNotification.pair_id.in_(ids),
                                                                InboundNotification.state == "new")
        .group_by(InboundNotification.pair_id)).all()) if ids else {}
    result = []
    for pair in pairs:
        incidents = list(db.session.scalars(select(SyncIncident).where(SyncIncident.pair_id == pair.id)
                                            .order_by(SyncIncident.id.desc()).limit(10)))
        health = PairHealth(pair=pair, subscription=subs.get(pair.id), pending_pushes=pending.get(pair.space_id, 0),
                            failed_pushes=failed.get(pair.space_id, 0), unprocessed=unprocessed.get(pair.id, 0),
                            incidents=incidents)
        _judge(health, now)
        result.append(health)
    return result


def _judge(h: PairHealth, now: datetime) -> None:
    pair, sub = h.pair, h.subscription
    if pair.state == "broken":
        h.problems.append(pair.state_detail or "The pair is broken.")
    elif pair.state == "failed":
        h.problems.append("The initial sync failed.")
    elif pair.state in ("queued", "running"):
        h.warnings.append("The initial sync is still running.")
    if pair.state in SYNCING_STATES:
        if sub is None or not sub.graph_id:
            h.problems.append("No change-notification subscription: Outlook changes arrive only with the reconcile.")
        elif sub.state != "active":
            h.problems.append(f"The subscription failed: {sub.error or 'unknown error'}")
        elif sub.expires_at is not None and sub.expires_at < now:
            h.problems.append("The subscription has expired.")
        elif sub.expires_at is not None and sub.expires_at < now + timedelta(hours=6):
            h.warnings.append("The subscription expires within 6 hours and has not been renewed yet.")
    if h.failed_pushes:
        h.problems.append(f"{h.failed_pushes} booking(s) could not be written to Outlook.")
    if h.parity_differences:
        h.problems.append(f"The last audit found {h.parity_differences} difference(s).")
    if h.pending_pushes:
        h.warnings.append(f"{h.pending_pushes} booking(s) waiting to be written to Outlook.")
    if h.unprocessed:
        h.warnings.append(f"{h.unprocessed} notification(s) waiting to be processed.")
    recent = [i for i in h.incidents if i.at > now - timedelta(minutes=30) and i.cause != "refused"]
    lasting = [i for i in recent if i.cause in ("permission", "room_deleted")]
    if lasting:  # these do not heal by retrying: someone must act
        h.problems.append(f"{lasting[0].cause_label}: {lasting[0].detail}")
    elif recent and not h.problems:
        h.warnings.append(f"{len(recent)} error(s) in the last 30 minutes; the sync retries by itself.")
