"""The admin's Tablets page (`/admin/devices`): enrolment codes and enrolled tablets. Admins only.

Public API: `bp`, the "kiosk_admin" blueprint; endpoints `kiosk_admin.devices` (GET: the list; POST: make an
enrolment code for a space or for the lobby board, shown once on the page that answers) and
`kiosk_admin.revoke` (POST /<id>/revoke).

The list shows each tablet's space (or "Lobby board"), when it was enrolled, when it was last seen (its polls
refresh that at most once a minute) and a "Stale" mark when it has been silent for more than
`models.STALE_AFTER` (5 minutes): unplugged, off the network, or its browser closed.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.validators import InputRequired, Length

from ..admin.forms import StorableForm
from ..api.schemas import MAX_ID
from ..booking.models import Space
from ..extensions import db
from ..timeutil import now_utc
from ..venue import current_venue
from . import devices as device_ops
from .devices import CODE_TTL
from .models import STALE_AFTER, Device

bp = Blueprint("kiosk_admin", __name__)

LOBBY = "lobby"


class EnrolmentForm(StorableForm):
    name = StringField("Tablet name", validators=[Length(max=120)],
                       description="Where it hangs, e.g. \u201cBoard room A door\u201d. Empty: the space's name.")
    target = SelectField("Shows", validators=[InputRequired()])


class RevokeForm(FlaskForm):
    pass


@bp.before_request
@login_required
def require_admin():
    if not current_user.is_admin:
        abort(403)


def _form(venue) -> EnrolmentForm:
    form = EnrolmentForm()
    spaces = db.session.scalars(select(Space).where(Space.venue_id == venue.id, Space.active.is_(True))
                                .order_by(Space.position, Space.id))
    form.target.choices = [(str(s.id), s.name) for s in spaces] + [(LOBBY, "Lobby board (every room)")]
    return form


def _page(form, venue, code=None, code_for=None, status=200):
    now = now_utc()
    return render_template(
        "admin/devices.html", form=form, venue=venue, devices=device_ops.devices(venue),
        codes=device_ops.pending_codes(venue, now), now=now, code=code, code_for=code_for,
        code_minutes=int(CODE_TTL.total_seconds() // 60), stale_minutes=int(STALE_AFTER.total_seconds() // 60),
        revoke_form=RevokeForm(),
    ), status


@bp.route("/", methods=["GET", "POST"])
def devices():
    venue = current_venue()
    form = _form(venue)
    if request.method == "GET":
        return _page(form, venue)
    if not form.validate_on_submit():
        return _page(form, venue, status=422)
    space = None
    if form.target.data != LOBBY:
        space = db.session.get(Space, int(form.target.data))
    code = device_ops.start_enrolment(venue, name=form.name.data or "", space=space, actor=current_user)
    return _page(_form(venue), venue, code=code, code_for=space.name if space is not None else "the lobby board")


@bp.post("/<int:device_id>/revoke")
def revoke(device_id: int):
    venue = current_venue()
    device = db.session.get(Device, device_id) if device_id <= MAX_ID else None
    if device is None or device.venue_id != venue.id:
        abort(404)
    if not RevokeForm().validate_on_submit():
        abort(400)
    device_ops.revoke(device, current_user)
    flash(f"Tablet \u201c{device.name}\u201d revoked: it shows the enrolment page from its next poll.", "success")
    return redirect(url_for("kiosk_admin.devices"), 303)
