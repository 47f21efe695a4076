"""The tablet pages: enrolment, the room panel, the lobby board. Authenticated by the device cookie only.

Public API: `bp`, the "kiosk" blueprint; `COOKIE` (the device cookie's name). Endpoints:
- `kiosk.enrol` GET/POST /kiosk: the enrolment form (a code from /admin/devices); sets the long-lived
  `roomsync_device` cookie (HttpOnly, SameSite=Lax) and goes to the panel or the lobby board. A tablet that
  is already enrolled goes straight there.
- `kiosk.panel` GET /kiosk/panel: the full-screen page of the device's space (name, capacity, photo, clock in
  the venue's zone, QR code to the space's week view, the status fragment).
- `kiosk.panel_status` GET /kiosk/panel/status: the polled fragment `kiosk/_status.html` with a strong ETag.
  The 304 path runs two small prepared queries (`devices.poll`: the device with its venue's settings, as a
  plain row; `board.panel_marker`), loads no ORM object and renders nothing:
  the ETag hashes the space, the marker (the photo's version included), the venue's settings and the current
  minute (so the "until" texts and the timeline move on once a minute at most). `static/kiosk.js` sends
  `If-None-Match` itself. A rendered fragment carries the photo out of band (`kiosk/_photo.html`,
  `hx-swap-oob`), so a tablet shows a new photo at its next poll, without a reload. The 200 path reads the
  dependency graph from `board`'s cache only, and judges "Book now" by the items it shows (no query).
- `kiosk.panel_photo` GET /kiosk/panel/photo?v=<etag>: the photo of the device's space (`?v` = its current
  ETag: cached for a year, see `images.versioned_cache_control`), 404 without one.
- `kiosk.panel_book|panel_extend|panel_end|panel_checkin` POST /kiosk/panel/book|extend|end|checkin: call
  `kiosk.actions` (PIN first when the venue has one); answer the fresh fragment with a message (200), or the
  fragment with the error (409 for a refused action, 403 for a wrong PIN, 422 for bad input). Never a 500 for
  bad input. Without JavaScript: a flash and a redirect to the panel.
- `kiosk.lobby` GET /kiosk/lobby and `kiosk.lobby_status` GET /kiosk/lobby/status: every active room of the
  venue with its status (same ETag scheme, `board.lobby_marker`).
An unknown or revoked device cookie sends the tablet back to the enrolment page (HX-Redirect for htmx polls)
and clears the cookie. The device POSTs are CSRF-protected like every form (the token is in the page); an
expired token reloads the page (HX-Refresh).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import (Blueprint, abort, current_app, flash, get_flashed_messages, make_response, redirect,
                   render_template, request, url_for)
from flask_wtf.csrf import CSRFError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from .. import htmx, images
from ..booking.models import Space, SpacePhoto
from ..extensions import db
from ..timeutil import now_utc, to_local
from . import board, devices
from .models import Device
from .status import LABELS, compute, day_bounds, day_hours, schedule_json, span_text, until_text

bp = Blueprint("kiosk", __name__)

COOKIE = "roomsync_device"
COOKIE_MAX_AGE = 5 * 365 * 24 * 3600
IDENTIFY_LABELS = {"email": "Email", "badge": "Badge number"}


@bp.app_template_filter("kiosk_label")
def _label(state: str) -> str:
    return LABELS.get(state, state)


@bp.app_template_filter("kiosk_until")
def _until(until, schedule: dict, tz) -> str:
    day_end = datetime.fromtimestamp(schedule["dayEnd"] / 1000, timezone.utc)
    return until_text(until, day_end, tz)


@bp.app_template_filter("kiosk_span")
def _span(item, tz) -> str:
    return span_text(item, tz)


@bp.app_template_filter("kiosk_local")
def _local(value, tz, fmt: str) -> str:
    return to_local(value, tz).strftime(fmt)


# ---------------------------------------------------------------------------------------------- devices


def _device():
    return devices.device_for_token(request.cookies.get(COOKIE))


def _to_enrolment():
    response = htmx.redirect(url_for("kiosk.enrol"))
    response.delete_cookie(COOKIE, path="/")
    return response


def _no_store(response):
    response.headers["Cache-Control"] = "no-cache, private"
    return response


@bp.errorhandler(CSRFError)
def _csrf_error(error):
    if htmx.is_htmx():
        response = make_response("", 200)
        response.headers[htmx.HX_REFRESH] = "true"
        return response
    flash("The page had expired; it has been reloaded. Try again.", "error")
    return redirect(request.referrer or url_for("kiosk.enrol"), 303)


@bp.route("/kiosk", methods=["GET", "POST"])
def enrol():
    device = _device()
    if request.method == "GET" and device is not None:
        return redirect(url_for("kiosk.panel" if device.kind == "panel" else "kiosk.lobby"), 303)
    error = None
    if request.method == "POST":
        try:
            device, token = devices.enrol(request.form.get("code", ""))
        except devices.EnrolmentError as exc:
            error = exc.message
        else:
            response = redirect(url_for("kiosk.panel" if device.kind == "panel" else "kiosk.lobby"), 303)
            response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True, samesite="Lax",
                                secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))
            return response
    response = make_response(render_template("kiosk/enrol.html", error=error,
                                             code=request.form.get("code", "")), 422 if error else 200)
    return _no_store(response)


# ---------------------------------------------------------------------------------------------- the panel


# The device with its venue and space, in one query (the 200 path reads all three: one query each, lazily,
# cost more); built once, as building a statement with loader options costs more than running it.
_PANEL_DEVICE = (select(Device).options(joinedload(Device.venue), joinedload(Device.space))
                 .where(Device.id == bindparam("device_id")))


def _panel_device(device_id: int) -> Device | None:
    return db.session.scalar(_PANEL_DEVICE, {"device_id": device_id})


def _book_now_options(venue, space, now, items, day) -> list[int]:
    """The "Book now" lengths, judged by the day's items the panel shows: the same snapshot as the status, and no
    query. A walk-in that could run past midnight looks at the next day's items too."""
    from . import actions

    booked = [(i.start, i.end) for i in items]
    _, day_end = day_bounds(day, venue.tz)
    if now + timedelta(minutes=max(actions.BOOK_NOW_MINUTES) + venue.granularity_minutes) > day_end:
        tomorrow = board.day_items(venue, [space.id], day + timedelta(days=1)).get(space.id, [])
        booked += [(i.start, i.end) for i in tomorrow]
    return actions.book_now_options(space, now, booked=booked)


def _panel_context(device, now, message=None, level="success", *, photo=None):
    """Everything `kiosk/_status.html` shows (the 200 path only). `photo`: the space photo's version (the
    panel marker's), for the out-of-band copy of `kiosk/_photo.html`."""
    from . import actions

    venue, space = device.venue, device.space
    tz = venue.tz
    day = to_local(now, tz).date()
    items = board.day_items(venue, [space.id], day).get(space.id, [])
    hours = day_hours(venue.hours_for(day.weekday()), day, tz)
    soon = getattr(venue, "kiosk_soon_minutes", 10)
    status = compute(now, items, hours, soon)
    current_row = None
    checked_in = checkin_open = False
    if status.current is not None:
        # The one extend / end now / check in act on (`_run_action` finds it again, exactly, when one is tapped).
        current_row = actions.current_occurrence(space, now, related=board.related_ids(space.id))
    # Check-in: the booking in progress, or the next one once its window opens (a few minutes before it).
    checkin_item = status.current if status.current is not None else status.next
    if checkin_item is not None and (checkin_item is status.current or checkin_item.via == "") \
            and checkin_item.kind != "unavailable":
        row = current_row if checkin_item is status.current else _occurrence_row(space.id, checkin_item)
        if row is not None:
            checked_in = actions.is_checked_in(row.booking, row.original_start_utc)
            if getattr(venue, "checkin_required", False) and not checked_in:
                opens, closes = actions.checkin_window(venue, row)
                checkin_open = opens <= now < closes
        if checkin_item is not status.current:
            checked_in = False  # the badge is about the booking in progress
    options = _book_now_options(venue, space, now, items, day) if status.current is None else []
    _, day_end = day_bounds(day, tz)
    return dict(
        device=device, venue=venue, space=space, now=now, tz=tz, status=status, hours=hours, photo=photo,
        items=items, timeline=board.timeline(items, hours, day, tz, now), options=options,
        current_row=current_row, checked_in=checked_in, checkin_open=checkin_open,
        # "End now" only when it would free something: not in the meeting's last grid step.
        can_extend=current_row is not None,
        can_end=current_row is not None and actions.ceil_to_grid(venue, now) < current_row.end_utc,
        identify=IDENTIFY_LABELS.get(getattr(venue, "kiosk_identify", "device")),
        needs_pin=bool(getattr(venue, "kiosk_pin_hash", None)),
        schedule=schedule_json(items, hours, soon, day_end),
        poll=max(2, int(getattr(venue, "kiosk_poll_seconds", 10) or 10)),
        message=message, level=level,
    )


def _occurrence_row(space_id, item):
    from ..booking.models import Occurrence

    return db.session.scalar(
        db.select(Occurrence).where(Occurrence.space_id == space_id, Occurrence.booking_id == item.booking_id,
                                    Occurrence.original_start_utc == item.original_start)
    )


def _panel_etag(device, now) -> tuple[str, board.PanelMarker]:
    """(ETag, the marker it hashes). `device`: a `Device`, or the row of `devices.poll` (the same ETag either way)."""
    venue = getattr(device, "venue", None) or device  # the poll's row carries the venue's settings itself
    tz = ZoneInfo(venue.timezone)
    day = to_local(now, tz).date()
    marker = board.panel_marker(tz, device.space_id, day)
    tag = board.etag("panel", device.id, device.space_id, marker, board.venue_fingerprint(venue),
                     int(now.timestamp() // 60))
    return tag, marker


@bp.get("/kiosk/panel")
def panel():
    device = _device()
    if device is None:
        return _to_enrolment()
    if device.kind != "panel" or device.space is None:
        return redirect(url_for("kiosk.lobby"), 303)
    now = now_utc()
    messages = get_flashed_messages(with_categories=True)
    message, level = (messages[-1][1], "error" if messages[-1][0] == "error" else "success") if messages else (None, "success")
    tag, marker = _panel_etag(device, now)
    context = _panel_context(device, now, message, level, photo=marker.photo)
    week_url = url_for("booking.week_view", space_id=device.space_id, _external=True)
    response = make_response(render_template("kiosk/panel.html", etag=tag, qr=board.qr_svg(week_url),
                                             week_url=week_url, **context))
    return _no_store(response)


@bp.get("/kiosk/panel/status")
def panel_status():
    # The hot path: every tablet, every few seconds. Plain rows until the fragment must be rendered.
    polled = devices.poll(request.cookies.get(COOKIE))
    if polled is None or polled.kind != "panel" or polled.space_id is None:
        return _to_enrolment()
    now = now_utc()
    tag, marker = _panel_etag(polled, now)
    if request.if_none_match.contains(tag):
        response = make_response("", 304)
    else:
        context = _panel_context(_panel_device(polled.id), now, photo=marker.photo)
        response = make_response(render_template("kiosk/_status.html", etag=tag, photo_oob=True, **context))
    response.set_etag(tag)
    devices.touch_after(response, polled)
    return _no_store(response)


@bp.get("/kiosk/panel/photo")
def panel_photo():
    polled = devices.poll(request.cookies.get(COOKIE))
    photo = SpacePhoto.with_bytes(polled.space_id) if polled is not None and polled.space_id is not None else None
    if photo is None:
        abort(404)  # an image request: no enrolment redirect (nor cookie cleared) for a picture
    return images.image_response(photo.data, photo.content_type, photo.etag,
                                 images.versioned_cache_control(request.args.get("v"), photo.etag))


def _act(name: str):
    """Run one action for the device's space; answer the fresh fragment with the outcome."""
    from . import actions

    device = _device()
    if device is None or device.kind != "panel" or device.space_id is None:
        return _to_enrolment()
    venue = device.venue
    status_code, level = 200, "success"
    try:
        if getattr(venue, "kiosk_pin_hash", None) and not actions.verify_kiosk_pin(venue, request.form.get("pin", "")):
            raise _Refused("Wrong PIN. Try again.", 403)
        message = _run_action(actions, name, device)
    except _Refused as exc:
        db.session.rollback()
        message, status_code, level = exc.message, exc.status, "error"
    except actions.KioskError as exc:
        db.session.rollback()
        message, status_code, level = getattr(exc, "message", str(exc)), 409, "error"
    if not htmx.is_htmx():
        flash(message, "error" if level == "error" else "success")
        return redirect(url_for("kiosk.panel"), 303)
    db.session.expire_all()
    device = _device()
    now = now_utc()
    tag, marker = _panel_etag(device, now)
    context = _panel_context(device, now, message, level, photo=marker.photo)
    response = make_response(render_template("kiosk/_status.html", etag=tag, photo_oob=True, **context),
                             status_code)
    response.set_etag(tag)
    return _no_store(response)


class _Refused(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message, self.status = message, status


def _run_action(actions, name: str, device) -> str:
    tz = device.venue.tz
    if name == "book":
        try:
            minutes = int(request.form.get("minutes", ""))
        except ValueError:
            raise _Refused("Choose how long to book: 15, 30, 45 or 60 minutes.", 422) from None
        if minutes not in (15, 30, 45, 60):
            raise _Refused("Choose how long to book: 15, 30, 45 or 60 minutes.", 422)
        identity = (request.form.get("identity") or "").strip() or None
        if getattr(device.venue, "kiosk_identify", "device") != "device" and not identity:
            label = IDENTIFY_LABELS.get(device.venue.kiosk_identify, "Email").lower()
            raise _Refused(f"Type your {label} to book.", 422)
        booking = actions.book_now(device, minutes, identity=identity)
        return f"Booked until {to_local(booking.end_utc, tz):%H:%M}."
    if name == "extend":
        booking = actions.extend(device)
        end = getattr(booking, "end_utc", None)
        return "Extended." if end is None or booking.rrule else f"Extended until {to_local(end, tz):%H:%M}."
    if name == "end":
        free_from = actions.end_early(device)
        if free_from > now_utc():  # the grid step in progress stays booked
            return f"Meeting ended: the room is free from {to_local(free_from, tz):%H:%M}."
        return "Meeting ended: the room is free."
    if name == "checkin":
        actions.check_in(device)
        return "Checked in. Enjoy your meeting."
    raise _Refused("Unknown action.", 422)


@bp.post("/kiosk/panel/book")
def panel_book():
    return _act("book")


@bp.post("/kiosk/panel/extend")
def panel_extend():
    return _act("extend")


@bp.post("/kiosk/panel/end")
def panel_end():
    return _act("end")


@bp.post("/kiosk/panel/checkin")
def panel_checkin():
    return _act("checkin")


# ---------------------------------------------------------------------------------------------- the lobby


def _lobby_context(device, now):
    venue = device.venue
    tz = venue.tz
    day = to_local(now, tz).date()
    spaces = [s for s in db.session.scalars(
        db.select(Space).where(Space.venue_id == venue.id, Space.active.is_(True)).order_by(Space.position, Space.id)
    )]
    rooms = [s for s in spaces if s.kind == "room"] or spaces
    items = board.day_items(venue, [s.id for s in rooms], day)
    hours = day_hours(venue.hours_for(day.weekday()), day, tz)
    soon = getattr(venue, "kiosk_soon_minutes", 10)
    _, day_end = day_bounds(day, tz)
    cards = []
    for space in rooms:
        space_items = items.get(space.id, [])
        cards.append(dict(space=space, status=compute(now, space_items, hours, soon),
                          schedule=schedule_json(space_items, hours, soon, day_end)))
    return dict(device=device, venue=venue, tz=tz, now=now, cards=cards,
                poll=max(2, int(getattr(venue, "kiosk_poll_seconds", 10) or 10)))


def _lobby_etag(device, now) -> str:
    venue = device.venue
    day = to_local(now, venue.tz).date()
    return board.etag("lobby", device.id, board.lobby_marker(venue, day), board.venue_fingerprint(venue),
                      int(now.timestamp() // 60))


@bp.get("/kiosk/lobby")
def lobby():
    device = _device()
    if device is None:
        return _to_enrolment()
    if device.kind != "lobby":
        return redirect(url_for("kiosk.panel"), 303)
    now = now_utc()
    response = make_response(render_template("kiosk/lobby.html", etag=_lobby_etag(device, now),
                                             **_lobby_context(device, now)))
    return _no_store(response)


@bp.get("/kiosk/lobby/status")
def lobby_status():
    device = _device()
    if device is None or device.kind != "lobby":
        return _to_enrolment()
    now = now_utc()
    tag = _lobby_etag(device, now)
    if request.if_none_match.contains(tag):
        response = make_response("", 304)
        response.set_etag(tag)
        return _no_store(response)
    response = make_response(render_template("kiosk/_lobby_status.html", etag=tag, **_lobby_context(device, now)))
    response.set_etag(tag)
    return _no_store(response)
