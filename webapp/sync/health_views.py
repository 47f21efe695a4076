"""The sync health page (on the "sync" blueprint, so admins only): how each pair's live sync is doing.

Public API — endpoints (registered on `views.bp` when `views` imports this module):
- `GET /admin/sync/health` (`sync.health`): the page; per pair a status (green "Healthy", amber "Needs
  attention", red "Failing" — always with its word, never colour alone), the subscription's state and expiry,
  the last notification, the last reconcile, pending and failed pushes to Outlook (the failed ones listed by
  time and holder, never by title), unprocessed notifications, the last audit, the problems and warnings
  (`health.venue_health`), recent incidents with their causes, and four buttons. Times in the venue's zone.
- `GET /admin/sync/health/panel` (`sync.health_panel`): the panel fragment `sync/_health.html` alone; it
  re-renders itself every 10 s.
- `POST /admin/sync/<pair_id>/resync` (`sync.health_resync`): queues `reconcile.reconcile_pair` (a delta
  round, then the audit).
- `POST /admin/sync/<pair_id>/audit` (`sync.health_audit`): queues `reconcile.audit_now`.
- `POST /admin/sync/<pair_id>/renew` (`sync.health_renew`): queues `subscriptions.ensure_subscription` with
  `force_renew` (which creates the subscription when it is missing or Graph no longer knows it).
- `POST /admin/sync/<pair_id>/retry-pushes` (`sync.health_retry_pushes`): `outbound.request_push` for every
  booking of the pair's space whose push failed.
Each action is CSRF-protected (`HealthActionForm`), audited (`pair.resync_requested`, `pair.audit_requested`,
`pair.renew_requested`, `pair.pushes_retried`), queued after the commit, and answered with a redirect to the
page and a flash. Only pairs whose initial sync is done can be acted on (the jobs do nothing for the others;
the flash says why). Pair ids are bounded by `MAX_ID`; another venue's or an unknown id is a 404.

Operations (no `request`, no `flash`): `resync(pair, actor)`, `audit(pair, actor)`, `renew(pair, actor)`,
`retry_pushes(pair, actor)` → number of pushes queued again; each raises `ValidationError` (key `form`) when
the pair is not syncing. Queries: `failed_bookings(pair, limit=None)` → [(Booking, OutboundState)] whose push
failed; `audit_view(pair)` → `AuditView` (summary, time, differences as sentences) of `pair.last_parity`, or
None. `HealthActionForm` (CSRF only), `POLL_SECONDS`, `STATUS_LABELS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import abort, flash, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from .. import audit as audit_log
from .. import htmx
from ..admin.forms import StorableForm
from ..api.schemas import MAX_ID
from ..auth.models import User
from ..booking.errors import ValidationError
from ..booking.models import Booking, booking_spaces
from ..extensions import db
from ..jobs import enqueue_after_commit
from ..timeutil import now_utc
from ..venue import current_venue
from . import health, outbound, reconcile, subscriptions
from .models import SYNCING_STATES, OutboundState, Pair
from .report import PARITY_LISTS
from .views import bp

POLL_SECONDS = 10
FAILED_LISTED = 5  # failed pushes listed per pair; the count says how many there are

STATUS_LABELS = {"ok": "Healthy", "warning": "Needs attention", "error": "Failing"}
SUBSCRIPTION_LABELS = {"active": "Active", "failed": "Failed"}


class HealthActionForm(StorableForm):
    """Only the CSRF token: the health page's buttons take no input."""


# ---------------------------------------------------------------------------------------------- operations


def _require_syncing(pair: Pair) -> None:
    if pair.state not in SYNCING_STATES:
        raise ValidationError({"form": f"{pair.space.name} is not syncing ({pair.state_label.lower()}): only a pair "
                                       "whose initial sync is done can be resynced, audited or renewed."})


def _record(pair: Pair, actor: User | None, action: str, detail: str) -> None:
    audit_log.record(action, subject=f"pair:{pair.id}", venue_id=pair.venue_id,
                     actor_id=actor.id if actor is not None else None, detail=detail)


def resync(pair: Pair, actor: User | None) -> None:
    _require_syncing(pair)
    _record(pair, actor, "pair.resync_requested", "Resync requested from the health page: a reconcile, then an audit.")
    # Looked up at call time (not imported by name), so the job is whatever the module holds now.
    enqueue_after_commit(reconcile.reconcile_pair, pair.id)
    db.session.commit()


def audit(pair: Pair, actor: User | None) -> None:
    _require_syncing(pair)
    _record(pair, actor, "pair.audit_requested", "Audit requested from the health page.")
    enqueue_after_commit(reconcile.audit_now, pair.id)
    db.session.commit()


def renew(pair: Pair, actor: User | None) -> None:
    _require_syncing(pair)
    _record(pair, actor, "pair.renew_requested", "Subscription renewal requested from the health page.")
    enqueue_after_commit(subscriptions.ensure_subscription, pair.id, force_renew=True)
    db.session.commit()


def failed_bookings(pair: Pair, limit: int | None = None) -> list[tuple[Booking, OutboundState]]:
    """Bookings of the pair's space whose push to Outlook failed for good, oldest first."""
    query = (select(Booking, OutboundState).join(OutboundState, OutboundState.booking_uid == Booking.uid)
             .join(booking_spaces, booking_spaces.c.booking_id == Booking.id)
             .where(booking_spaces.c.space_id == pair.space_id, OutboundState.state == "failed")
             .order_by(Booking.start_utc, Booking.id))
    if limit is not None:
        query = query.limit(limit)
    return [(booking, state) for booking, state in db.session.execute(query).all()]


def retry_pushes(pair: Pair, actor: User | None) -> int:
    _require_syncing(pair)
    failed = [booking for booking, _ in failed_bookings(pair)]
    for booking in failed:
        outbound.request_push(booking, reason="retry")
    if failed:
        _record(pair, actor, "pair.pushes_retried",
                f"{len(failed)} failed push(es) to Outlook queued again from the health page.")
    db.session.commit()
    return len(failed)


# ---------------------------------------------------------------------------------------------- display


@dataclass
class AuditView:
    agrees: bool
    summary: str
    checked_at: datetime | None
    differences: list[tuple[str, list[str], int]]


def audit_view(pair: Pair) -> AuditView | None:
    """The pair's last audit, read through `ParityResult.from_json`; its written-out summary alone when that
    cannot read it (never a 500)."""
    data = pair.last_parity
    if not isinstance(data, dict):
        return None
    from .parity import ParityResult

    try:
        result = ParityResult.from_json(data)
    except Exception:  # noqa: BLE001 - a malformed stored result still shows what it says
        return AuditView(agrees=data.get("agrees") is True, summary=str(data.get("summary") or ""), checked_at=None,
                         differences=[])
    differences = []
    for key, heading in PARITY_LISTS:
        listed = getattr(result, key, None) or []
        if listed:
            # describe() names times and addresses, never a title (see sync.parity).
            differences.append((heading, [d.describe() for d in listed], max(result.totals.get(key, 0), len(listed))))
    return AuditView(agrees=result.agrees, summary=result.summary(), checked_at=result.checked_at,
                     differences=differences)


def _ago(moment: datetime, now: datetime) -> str:
    seconds = int((now - moment).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        return "in under a minute" if future else "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            text = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return ""  # unreachable


def _at_for(tz):
    def at(moment: datetime) -> str:
        local = moment.astimezone(tz)
        return f"{local.strftime('%a')} {local.day} {local.strftime('%b %Y, %H:%M')}"

    return at


def _when_for(tz, now: datetime):
    at = _at_for(tz)

    def when(moment: datetime | None, never: str = "never") -> str:
        return never if moment is None else f"{at(moment)} ({_ago(moment, now)})"

    return when


def _context() -> dict:
    venue = current_venue()
    now = now_utc()
    rows = health.venue_health(venue, now)
    failed = {row.pair.id: failed_bookings(row.pair, FAILED_LISTED) for row in rows if row.failed_pushes}
    counts = {status: sum(1 for row in rows if row.status == status) for status in STATUS_LABELS}
    return dict(rows=rows, counts=counts, status_labels=STATUS_LABELS, subscription_labels=SUBSCRIPTION_LABELS,
                audits={row.pair.id: audit_view(row.pair) for row in rows}, failed=failed,
                syncing_states=SYNCING_STATES, now=now, when=_when_for(venue.tz, now), at=_at_for(venue.tz),
                checked=_at_for(venue.tz)(now),
                tz_name=venue.timezone, action_form=HealthActionForm(), poll_seconds=POLL_SECONDS)


# ---------------------------------------------------------------------------------------------- views


@bp.get("/health", endpoint="health")
def health_page():
    return render_template("sync/health.html", **_context())


@bp.get("/health/panel", endpoint="health_panel")
def health_panel():
    return render_template("sync/_health.html", **_context())


def _pair_or_404(pair_id: int) -> Pair:
    pair = db.session.get(Pair, pair_id) if pair_id <= MAX_ID else None
    if pair is None or pair.venue_id != current_venue().id:
        abort(404)
    return pair


def _act(pair_id: int, operation, done) -> object:
    pair = _pair_or_404(pair_id)
    if not HealthActionForm().validate_on_submit():
        abort(400)
    name = pair.space.name
    try:
        result = operation(pair, current_user)
    except ValidationError as error:
        flash(" ".join(error.fields.values()), "error")
    else:
        flash(done(name, result), "success")
    return htmx.redirect(url_for("sync.health"))


@bp.post("/<int:pair_id>/resync", endpoint="health_resync")
def resync_view(pair_id: int):
    return _act(pair_id, resync, lambda name, _: f"A resync of {name} is queued: a reconcile with Outlook, then an "
                                                 "audit of both sides.")


@bp.post("/<int:pair_id>/audit", endpoint="health_audit")
def audit_action(pair_id: int):
    return _act(pair_id, audit, lambda name, _: f"An audit of {name} is queued: both sides will be compared.")


@bp.post("/<int:pair_id>/renew", endpoint="health_renew")
def renew_view(pair_id: int):
    return _act(pair_id, renew, lambda name, _: f"The subscription of {name} is being renewed.")


@bp.post("/<int:pair_id>/retry-pushes", endpoint="health_retry_pushes")
def retry_pushes_view(pair_id: int):
    def done(name: str, count: int) -> str:
        if not count:
            return f"{name} has no failed pushes to retry."
        return f"{count} failed push{'' if count == 1 else 'es'} of {name} queued again."

    return _act(pair_id, retry_pushes, done)
