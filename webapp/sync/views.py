"""The sync pairs page (blueprint "sync", mounted at /admin/sync; admins only).

Public API: `bp`. Endpoints:
- `GET /admin/sync/` (`sync.pairs`): the "Sync new resource" form (unpaired active spaces; the provider's
  unpaired rooms, read through `sync.rooms` — cached a minute) and the pair list.
- `POST /admin/sync/` (`sync.create`): pair → redirect to the page with a flash; a refused pair re-renders
  the page with the messages (422).
- `GET /admin/sync/pairs` (`sync.pair_list`): the pair list fragment `sync/_pairs.html`; it polls itself every
  2 s while some pair is queued or running, and stops by itself otherwise.
- `GET /admin/sync/rooms?q=` (`sync.room_options`): the room `<option>`s matching the filter
  (`sync/_room_options.html`), for the filter box.
- `POST /admin/sync/<pair_id>/unsync` (`sync.unsync`): remove the pair → redirect with a flash.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask_login import current_user, login_required

from .. import htmx
from ..admin.forms import show_errors
from ..api.schemas import MAX_ID
from ..booking.errors import ValidationError
from ..booking.models import Space
from ..extensions import db
from ..venue import current_venue
from . import pairs, rooms
from .forms import PairForm, UnsyncForm
from .models import Pair

log = logging.getLogger(__name__)

bp = Blueprint("sync", __name__)


@bp.before_request
@login_required
def require_admin():
    if not current_user.is_admin:
        abort(403)


def _rooms_or_error():
    """(rooms, None) or ([], message): the provider may be unreachable; the page still renders."""
    try:
        return rooms.provider_rooms(), None
    except Exception as error:  # noqa: BLE001 - any provider failure becomes a message, never a 500
        log.warning("listing the provider's rooms failed: %s", error)
        return [], "Microsoft 365's rooms could not be listed just now. Try again in a minute."


def _room_options(venue, query: str):
    all_rooms, rooms_error = _rooms_or_error()
    shown, matched = rooms.filter_rooms(all_rooms, query, exclude=pairs.paired_room_emails(venue))
    return shown, matched, rooms_error


def _page(form: PairForm, status: int = 200):
    venue = current_venue()
    ready = pairs.integration_ready(venue)
    spaces = pairs.unpaired_spaces(venue)
    form.space_id.choices = [("", "Choose a space…")] + [(str(s.id), f"{s.name} ({s.kind})") for s in spaces]
    shown, matched, rooms_error = _room_options(venue, "") if ready else ([], 0, None)
    form.room_email.choices = [("", "Choose a room…")] + [(r.email, f"{r.display_name} — {r.email}") for r in shown]
    return render_template(
        "sync/pairs.html", form=form, ready=ready, rooms_error=rooms_error, room_count=matched,
        shown_count=len(shown), **_list_context(venue)), status


def _list_context(venue) -> dict:
    listed = pairs.pairs_of(venue)
    return dict(pair_list=listed, polling=pairs.any_active(listed), unsync_form=UnsyncForm())


@bp.get("/", endpoint="pairs")
def page():
    return _page(PairForm(formdata=None))


@bp.post("/")
def create():
    venue = current_venue()
    form = PairForm()
    if not form.validate_on_submit():
        return _page(form, 422)
    space_id = form.space_id.data or ""
    space = db.session.get(Space, int(space_id)) if space_id.isdigit() and int(space_id) <= MAX_ID else None
    room = None
    if form.room_email.data:
        try:
            room = rooms.find_room(form.room_email.data)
        except Exception:  # noqa: BLE001
            form.form_errors.append("Microsoft 365's rooms could not be listed just now. Try again in a minute.")
            return _page(form, 422)
    try:
        pair = pairs.create_pair(venue, space, room, current_user)
    except ValidationError as error:
        show_errors(form, {("space_id" if k == "space" else "room_email" if k == "room" else k): v
                           for k, v in error.fields.items()})
        return _page(form, 422)
    flash(f"{pair.space.name} is now synced with {pair.room_display_name}. The initial sync is queued.", "success")
    return htmx.redirect(url_for("sync.pairs"))


@bp.get("/pairs")
def pair_list():
    return render_template("sync/_pairs.html", **_list_context(current_venue()))


@bp.get("/rooms")
def room_options():
    venue = current_venue()
    shown, matched, rooms_error = _room_options(venue, request.args.get("q", "")[:200])
    return render_template("sync/_room_options.html", rooms=shown, room_count=matched, rooms_error=rooms_error)


@bp.post("/<int:pair_id>/unsync")
def unsync(pair_id: int):
    pair = db.session.get(Pair, pair_id) if pair_id <= MAX_ID else None
    if pair is None or pair.venue_id != current_venue().id:
        abort(404)
    if not UnsyncForm().validate_on_submit():
        abort(400)
    name, room = pair.space.name, pair.room_display_name
    pairs.unsync(pair, current_user)
    flash(f"{name} is no longer synced with {room}.", "success")
    return htmx.redirect(url_for("sync.pairs"))
