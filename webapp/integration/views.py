"""Pages and endpoints of the provider integration.

Public API — three blueprints (registered in `webapp.blueprints`, paths given in full here):
- `bp` "integration", admins only: `GET /admin/integration/` (`integration.settings`): the settings page —
  connection (what the environment configures, secrets only as "configured, from where"), prerequisites
  with links that fix them, the form, the application permissions and the admin-consent link.
  `POST /admin/integration/` (`integration.save`): runs the live validation; the form fragment
  (`integration/_form.html`, which includes `integration/_results.html`) comes back to htmx with the results:
  200 when saved, 422 when a field, a prerequisite or a test failed (nothing saved).
- `people_bp` "people", signed-in users: `GET /people/search?q=` (`people.search`): the attendee typeahead's
  listbox fragment (`people/_suggestions.html`); `GET /people/<user_id>/photo` (`people.photo`): a synced
  photo with cache headers (ETag, 304) or 404, and the templates show initials instead.
- `webhooks_bp` "webhooks", no sign-in, CSRF-exempt: `POST /webhooks/graph` and `/webhooks/graph/lifecycle`
  answer Graph's validation handshake (`?validationToken=` → 200 text/plain, the decoded token) and accept
  notifications: `sync.webhook.accept` checks each one's clientState, persists and queues them, then 202;
  a body that is not a notification collection gets a 400 JSON error; when the database cannot store
  them the raw body is spilled to Redis (202), and only when both fail the answer is 503 (Graph retries).
- `WEBHOOK_PATH`, `LIFECYCLE_PATH`, `PERMISSIONS` (the application permissions two-way sync needs, each with
  why), `REVOKE_AFTER`, `consent_url(summary, butler_email)`.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote, urlencode, urlsplit

from flask import Blueprint, abort, make_response, render_template, request
from flask_login import current_user, login_required
from werkzeug.exceptions import NotFound

from .. import images
from ..booking.errors import ValidationError
from ..extensions import csrf
from ..venue import current_venue
from . import operations, photos, provider
from .forms import IntegrationForm
from .prerequisites import check_venue

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/graph"
LIFECYCLE_PATH = "/webhooks/graph/lifecycle"
MAX_VALIDATION_TOKEN = 4096
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"

PERMISSIONS = [
    ("Calendars.ReadWrite", "Create, change and cancel events on holders' and the butler's calendars, read the "
                            "rooms' calendars, and subscribe to changes of their events."),
    ("Place.Read.All", "List the tenant's rooms so spaces can be paired with them."),
    ("User.Read.All", "Check the butler and holders (account enabled, mailbox present), read names of people "
                      "first seen in Outlook, photos, and the full-directory search when it is allowed."),
    ("Contacts.Read", "Suggest each person's own contacts when they add attendees to a booking."),
    ("People.Read.All", "Suggest each person's relevant people (those they work with) when adding attendees."),
]
REVOKE_AFTER = [
    ("Mail.Read", "not used by two-way sync"),
    ("Mail.Send", "not used by two-way sync"),
]

bp = Blueprint("integration", __name__)
people_bp = Blueprint("people", __name__)
webhooks_bp = Blueprint("webhooks", __name__)
csrf.exempt(webhooks_bp)


# ---------------------------------------------------------------------------------------------- settings


@bp.before_request
@login_required
def require_admin():
    if not current_user.is_admin:
        abort(403)


def consent_url(summary: dict, butler_email: str | None) -> str | None:
    """The admin-consent link: tenant id, else the butler's domain; on the configured authority's host (the
    sandbox's in sandbox mode)."""
    tenant = summary.get("tenant_id") or ((butler_email or "").rpartition("@")[2] or None)
    client_id = summary.get("client_id")
    if not tenant or not client_id:
        return None
    parts = urlsplit(summary.get("authority") or "")
    host = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else DEFAULT_AUTHORITY_HOST
    return f"{host}/{quote(tenant, safe='')}/adminconsent?{urlencode({'client_id': client_id})}"


def _venue_or_none():
    try:
        return current_venue()
    except NotFound:
        return None


def _page(form: IntegrationForm, *, outcome=None, status: int = 200):
    venue = _venue_or_none()
    settings = operations.settings_for(venue) if venue is not None else None
    summary = provider.connection_summary()
    prerequisites = outcome.prerequisites if outcome is not None else (check_venue(venue) if venue else [])
    context = dict(
        form=form, venue=venue, settings=settings, summary=summary, prerequisites=prerequisites,
        outcome=outcome, permissions=PERMISSIONS, revoke_after=REVOKE_AFTER,
        consent_url=consent_url(summary, form.butler_email.data or (settings.butler_email if settings else None)),
        default_base_url=operations.default_public_base_url(),
        webhook_path=WEBHOOK_PATH,
    )
    template = "integration/_form.html" if request.method == "POST" and _is_htmx() else "integration/settings.html"
    return render_template(template, **context), status


def _is_htmx() -> bool:
    from .. import htmx

    return htmx.is_htmx()


@bp.get("/admin/integration/")
def settings():
    venue = _venue_or_none()
    if venue is None:
        return render_template("integration/no_venue.html"), 200
    form = IntegrationForm()
    existing = operations.settings_for(venue)
    if existing is not None:
        form.load(existing)
    return _page(form)


@bp.post("/admin/integration/")
def save():
    venue = current_venue()
    form = IntegrationForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    try:
        outcome = operations.save_settings(venue, form.settings_input())
    except ValidationError as error:
        from ..admin.forms import show_errors

        show_errors(form, error.fields)
        return _page(form, status=422)
    return _page(form, outcome=outcome, status=200 if outcome.saved else 422)


# ---------------------------------------------------------------------------------------------- people


@people_bp.before_request
@login_required
def require_login():
    return None


@people_bp.get("/people/search")
def search():
    results = operations.search_people(current_user, request.args.get("q", ""))
    ids = [s.user_id for s in results.items if s.user_id]
    with_photo = photos.holders_with_photos(current_venue(), ids) if ids else set()
    response = make_response(render_template("people/_suggestions.html", results=results, with_photo=with_photo))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@people_bp.get("/people/<int:user_id>/photo")
def photo(user_id: int):
    if user_id > 2**31 - 1 or not operations.photos_enabled():
        abort(404)
    stored = operations.photo_for(user_id)
    if stored is None:
        abort(404)
    # Unversioned URL (pages link it by user id alone): cached an hour, then revalidated by its ETag.
    return images.image_response(stored.data, stored.content_type or "application/octet-stream",
                                 stored.etag or images.digest(stored.data), "private, max-age=3600")


# ---------------------------------------------------------------------------------------------- webhooks


MAX_NOTIFICATION_BYTES = 1_000_000


def _handshake_or_accept(kind: str):
    from ..sync import webhook

    token = request.args.get("validationToken")
    if token is not None:
        # Graph wants the decoded token back as text/plain within 10 s (graph-facts §4.2).
        if len(token) > MAX_VALIDATION_TOKEN:
            abort(400)
        response = make_response(token, 200)
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
    if (request.content_length or 0) > MAX_NOTIFICATION_BYTES:
        return _problem(413, "too_large", "The notification body is too large.")
    raw = request.get_data(cache=False)
    try:
        payload = json.loads(raw)
    except ValueError:
        return _problem(400, "bad_json", "The body is not JSON.")
    # Persist first, answer after (Graph wants an answer within 3 s; the work happens in a job). The body
    # carries the clientState: it is never logged.
    try:
        webhook.accept(payload, kind)
    except webhook.BadPayload as error:
        return _problem(400, "bad_notification", str(error))
    except Exception:  # noqa: BLE001 — the database is down or too slow: spill to Redis, else let Graph retry
        from ..extensions import db

        db.session.rollback()
        log.exception("webhook: could not store %s notifications", kind)
        if webhook.spill(raw, kind):
            return "", 202
        return _problem(503, "unavailable", "Try again later.")
    return "", 202


def _problem(status: int, code: str, message: str):
    response = make_response(json.dumps({"error": {"code": code, "message": message}}), status)
    response.headers["Content-Type"] = "application/json"
    return response


@webhooks_bp.post(WEBHOOK_PATH)
def graph_notification():
    return _handshake_or_accept("change")


@webhooks_bp.post(LIFECYCLE_PATH)
def graph_lifecycle():
    return _handshake_or_accept("lifecycle")
