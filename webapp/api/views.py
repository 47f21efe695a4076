"""JSON API v1 (mounted at /api/v1): spaces and bookings of the venue, for scripts and integrations.

Public API: `bp`. Endpoints (all need `Authorization: Bearer <token>`, see `api.auth`; errors are JSON, see
`api.errors`; parsing and response shapes live in `api.schemas`; writes go through `booking.operations`):
- `GET /spaces`: the venue's active spaces, each with its sync pair (`"pair": {"room_email", "state"}` or null).
- `GET /bookings?space=ID&start=ISO&end=ISO`: occurrences overlapping [start, end) (at most 366 days), on one
  space or on all; a booking on several spaces is listed once per occurrence.
- `POST /bookings`: create → 201 with the booking and a Location header.
- `GET /bookings/ID`: one booking (cancelled ones too, with `"cancelled": true`). A booking (this and the
  answers of POST and PATCH) carries `online_meeting` (writable), `join_url` (the Teams link, read-only, null
  when the caller may not see a private booking's details) and `sync` (null, or its pending/failed push to
  Outlook: `{"state", "error", "next_attempt_at"}`, the error for the holder and admins only).
- `PATCH /bookings/ID`: change some fields; for a series `scope` (all | this | following) and
  `occurrence_start` (the occurrence's original start) say which part. Answers the booking holding the
  edited occurrence (for "following", the new series split off).
- `DELETE /bookings/ID?scope=&occurrence_start=`: cancel → 204.
Only the holder or an admin may change or cancel a booking (403 otherwise).
- `GET /feeds`: the caller's iCalendar feeds (personal, venue, one per active space), each
  `{"kind", "name", "space_id", "url", "webcal"}`; their tokens are made if missing (see `webapp.feeds`).
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..booking.errors import ValidationError
from ..booking.models import Booking
from ..booking.operations import cancel_booking, create_booking, input_from_booking, occurrences_between, update_booking
from ..booking.privacy import can_edit
from ..extensions import csrf, db
from ..sync.outbound import pending_state
from ..sync.pairs import pair_by_space
from ..venue import current_venue
from . import errors, schemas
from .auth import api_user, protect
from .errors import ApiError

bp = Blueprint("api", __name__)
csrf.exempt(bp)  # bearer tokens, never cookies: nothing for a cross-site request to ride on
protect(bp)
errors.register(bp)


def _json_body() -> dict:
    # Reading the body first lets an oversized one answer 413 whatever its content type.
    data = request.get_data(cache=False)
    return schemas.parse_json_object(request.mimetype, data)


def _booking(booking_id: int) -> Booking:
    # Ids beyond MAX_ID cannot exist (and SQLite cannot even bind them).
    booking = db.session.get(Booking, booking_id) if booking_id <= schemas.MAX_ID else None
    if booking is None or booking.venue_id != current_venue().id:
        raise ApiError(404, "not_found", f"There is no booking {booking_id}.")
    return booking


def _booking_json(booking: Booking):
    return jsonify(schemas.booking_item(booking, api_user(), pending_state([booking.uid]).get(booking.uid)))


def _editable_booking(booking_id: int) -> Booking:
    booking = _booking(booking_id)
    if not can_edit(booking, api_user()):
        raise ApiError(403, "forbidden", "Only the holder or an admin can change this booking.")
    return booking


@bp.get("/spaces")
def list_spaces():
    schemas.reject_unknown_query(request.args)
    venue = current_venue()
    paired = pair_by_space(venue)  # one query for every space's pair
    return jsonify([schemas.space_item(space, pair=paired.get(space.id)) for space in venue.spaces if space.active])


@bp.get("/bookings")
def list_bookings():
    query = schemas.parse_listing_query(request.args)
    venue = current_venue()
    space_ids = [space.id for space in venue.spaces]
    if query.space_id is not None:
        if query.space_id not in space_ids:
            raise ValidationError({"space": f"Unknown space: {query.space_id}."})
        space_ids = [query.space_id]
    rows = occurrences_between(space_ids, query.start, query.end)
    # One query per relationship for all listed bookings instead of one per booking.
    booking_ids = {row.booking_id for row in rows}
    db.session.scalars(
        select(Booking)
        .where(Booking.id.in_(booking_ids))
        .options(selectinload(Booking.spaces), selectinload(Booking.exceptions), selectinload(Booking.holder))
    ).all()
    return jsonify(schemas.occurrence_items(rows, api_user()))


@bp.post("/bookings")
def create():
    data = schemas.parse_booking_create(_json_body())
    booking = create_booking(current_venue(), data, actor=api_user())
    response = _booking_json(booking)
    response.status_code = 201
    response.headers["Location"] = url_for(".get_booking", booking_id=booking.id)
    return response


@bp.get("/bookings/<int:booking_id>")
def get_booking(booking_id: int):
    schemas.reject_unknown_query(request.args)
    return _booking_json(_booking(booking_id))


@bp.patch("/bookings/<int:booking_id>")
def patch_booking(booking_id: int):
    booking = _editable_booking(booking_id)
    patch = schemas.parse_booking_patch(_json_body())
    data = replace(input_from_booking(booking, patch.occurrence_start), **patch.changes)
    updated = update_booking(
        booking, data, actor=api_user(), scope=patch.scope, occurrence_start=patch.occurrence_start
    )
    return _booking_json(updated)


@bp.delete("/bookings/<int:booking_id>")
def delete_booking(booking_id: int):
    booking = _editable_booking(booking_id)
    query = schemas.parse_cancel_query(request.args)
    cancel_booking(booking, actor=api_user(), scope=query.scope, occurrence_start=query.occurrence_start)
    return "", 204


@bp.get("/feeds")
def list_feeds():
    from ..feeds.views import feed_list

    schemas.reject_unknown_query(request.args)
    return jsonify(feed_list(api_user(), current_venue()))
