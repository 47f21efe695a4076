"""The outbox page (blueprint "notify", mounted at /admin/outbox; admins only): every email Roomsync sent
or holds, newest first, with its status — sent, queued, outbox only (no `MAIL_SERVER`: the default, so the
admins read the mail here) or failed with the server's reason.

Public API: `bp`. Endpoints:
- `GET /admin/outbox/?before=ID` (`notify.outbox`): 50 messages older than `before` (the first page without).
- `GET /admin/outbox/<id>` (`notify.message`): one message: headers, text, and the html part in a sandboxed
  frame. The body of a confidential message (someone's private event) is shown only to its recipients and,
  where the venue lets admins see private titles, to admins (`mailer.readable_by`).
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_login import current_user, login_required
from werkzeug.exceptions import NotFound

from ..api.schemas import MAX_ID
from ..extensions import db
from ..timeutil import to_local
from ..venue import current_venue
from . import mailer
from .models import STATUS_LABELS, OutboxMessage

bp = Blueprint("notify", __name__)

PAGE_SIZE = 50


@bp.before_request
@login_required
def require_admin():
    if not current_user.is_admin:
        abort(403)


def _local(value, venue) -> str:
    """A time for the page: the venue's zone when there is a venue, else UTC."""
    if value is None:
        return ""
    shown = to_local(value, venue.tz) if venue is not None else value
    return f"{shown:%Y-%m-%d %H:%M} {'' if venue is not None else 'UTC'}".strip()


def _venue_or_none():
    try:
        return current_venue()
    except NotFound:
        return None


@bp.get("/", endpoint="outbox")
def outbox():
    venue = _venue_or_none()
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_ID + 1:
        before = None
    messages = mailer.recent(venue.id if venue else None, before=before, limit=PAGE_SIZE + 1)
    older = messages[PAGE_SIZE].id + 1 if len(messages) > PAGE_SIZE else None
    return render_template("notify/outbox.html", messages=messages[:PAGE_SIZE], older=older, venue=venue,
                           configured=mailer.mail_configured(), status_labels=STATUS_LABELS, paged=before is not None,
                           local=_local)


@bp.get("/<int:message_id>", endpoint="message")
def message(message_id: int):
    venue = _venue_or_none()
    found = db.session.get(OutboxMessage, message_id) if message_id <= MAX_ID else None
    if found is None or (found.venue_id is not None and (venue is None or found.venue_id != venue.id)):
        abort(404)
    return render_template("notify/message.html", message=found, venue=venue, configured=mailer.mail_configured(),
                           status_labels=STATUS_LABELS, readable=mailer.readable_by(found, current_user, venue), local=_local)
