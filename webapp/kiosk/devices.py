"""Enrolling tablets: no staff login on the wall, a device token instead.

Public API:
- `start_enrolment(venue, *, name, space=None, actor)` → the short code (shown once to the admin; only its
  hash is stored). Valid `CODE_TTL` (15 minutes), once. `space` None makes a lobby board.
- `enrol(code)` → `(Device, token)`: the raw token goes into the tablet's long-lived cookie; only its SHA-256
  is stored. Raises `EnrolmentError` (a message for the tablet) for an unknown, used or expired code.
- `device_for_token(token)` → the active `Device`, or None (unknown or revoked). Refreshes `last_seen_at` at
  most once per `SEEN_EVERY` (one UPDATE, committed), so a thousand tablets polling every 10 s cost a
  thousand small writes a minute, not six thousand.
- `poll(token)` → the same lookup for the polled fragments' hot path, as one plain row (no ORM objects): the
  device's `id`, `kind`, `space_id`, `venue_id`, `last_seen_at` and the venue's settings that the fragments
  depend on (`POLL_VENUE_COLUMNS`, under their own names: `timezone`, `opening_hours`, `kiosk_soon_minutes`…);
  None when unknown or revoked. Its statement is built once: building and loading ORM queries was most of a
  304's cost (bench/kiosk_bench.py). It writes nothing: `touch_after(response, row)` refreshes `last_seen_at`
  (as throttled as above) once the response has been sent, so no poll's answer waits for a write (on SQLite,
  for the writer's lock).
- `revoke(device, actor)`: the token stops working at once; the panel goes back to the enrolment page.
- `normalise_code(text)`: what the tablet typed → the canonical code (case, spaces and dashes ignored).
- `devices(venue)`, `pending_codes(venue, now)`: the admin page's lists.

Codes use an alphabet without look-alikes (no 0/O, 1/I/L) so they can be read across a room and typed on a
touch keyboard. Every step is audited (`kiosk.enrolment_started`, `kiosk.enrolled`, `kiosk.revoked`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import logging

from flask import current_app, has_app_context
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import joinedload

from .. import audit
from ..booking.models import Venue
from ..db_engine import begin_serialised_write, bounded_wait
from ..extensions import db
from ..timeutil import now_utc
from .models import Device, EnrolmentCode

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
CODE_TTL = timedelta(minutes=15)
SEEN_EVERY = timedelta(seconds=60)


class EnrolmentError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def normalise_code(text: str) -> str:
    return "".join(ch for ch in (text or "").upper() if ch.isalnum())


def start_enrolment(venue, *, name: str, space=None, actor) -> str:
    name = (name or "").strip()[:120] or (space.name if space is not None else "Lobby board")
    if space is not None and space.venue_id != venue.id:
        raise ValueError("The space belongs to another venue.")
    now = now_utc()
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if db.session.scalar(select(EnrolmentCode.id).where(EnrolmentCode.code_hash == _digest(code))) is None:
            break
    db.session.add(EnrolmentCode(venue_id=venue.id, space_id=space.id if space is not None else None, name=name,
                                 code_hash=_digest(code), created_at=now, expires_at=now + CODE_TTL,
                                 created_by_id=actor.id if actor is not None else None))
    target = space.name if space is not None else "the lobby board"
    audit.record("kiosk.enrolment_started", subject=f"space:{space.id}" if space is not None else "lobby",
                 detail=f"Enrolment code made for a tablet \u201c{name}\u201d ({target})", venue_id=venue.id,
                 actor_id=actor.id if actor is not None else None)
    db.session.commit()
    return code


def enrol(code: str) -> tuple[Device, str]:
    code = normalise_code(code)
    if not code:
        raise EnrolmentError("Type the code shown on the admin's Tablets page.")
    now = now_utc()
    row = db.session.scalar(select(EnrolmentCode).where(EnrolmentCode.code_hash == _digest(code)))
    if row is None:
        raise EnrolmentError("That code is not valid. Check it, or ask an admin for a new one.")
    if row.used_at is not None:
        raise EnrolmentError("That code has already been used. Ask an admin for a new one.")
    if now >= row.expires_at:
        raise EnrolmentError("That code has expired. Ask an admin for a new one.")
    if row.space_id is not None and (row.space is None or not row.space.active):
        raise EnrolmentError("That code's space is no longer available. Ask an admin for a new code.")
    token = secrets.token_urlsafe(32)
    device = Device(venue_id=row.venue_id, space_id=row.space_id, name=row.name,
                    kind="panel" if row.space_id is not None else "lobby", token_hash=_digest(token),
                    created_at=now, created_by_id=row.created_by_id, last_seen_at=now)
    db.session.add(device)
    # Used once, even by two tablets typing the same code at the same time: the conditional UPDATE decides.
    db.session.flush()
    claimed = db.session.execute(
        update(EnrolmentCode).where(EnrolmentCode.id == row.id, EnrolmentCode.used_at.is_(None))
        .values(used_at=now, device_id=device.id)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise EnrolmentError("That code has already been used. Ask an admin for a new one.")
    audit.record("kiosk.enrolled", subject=f"device:{device.id}",
                 detail=f"Tablet \u201c{device.name}\u201d enrolled", venue_id=device.venue_id)
    db.session.commit()
    return device, token


def device_for_token(token: str | None, *, touch: bool = True) -> Device | None:
    if not token or len(token) > 200:
        return None
    device = db.session.scalar(
        select(Device).options(joinedload(Device.venue))
        .where(Device.token_hash == _digest(token), Device.revoked_at.is_(None))
    )
    if device is None:
        return None
    if touch:
        _touch(device.id, device.last_seen_at)  # the commit expires `device`: it reloads on next access
    return device


# The venue's columns a poll reads (`board.venue_fingerprint` and the zone): plain columns, not the ORM entity.
POLL_VENUE_COLUMNS = ("name", "timezone", "opening_hours", "granularity_minutes", "max_duration_minutes",
                      "allow_overnight", "kiosk_soon_minutes", "kiosk_poll_seconds", "kiosk_identify", "kiosk_pin_hash",
                      "checkin_required", "checkin_opens_minutes", "checkin_release_minutes")
_devices, _venues = Device.__table__, Venue.__table__
_POLL = (
    select(_devices.c.id, _devices.c.kind, _devices.c.space_id, _devices.c.venue_id, _devices.c.last_seen_at,
           *(_venues.c[name] for name in POLL_VENUE_COLUMNS))
    .select_from(_devices.join(_venues, _venues.c.id == _devices.c.venue_id))
    .where(_devices.c.token_hash == bindparam("token_hash"), _devices.c.revoked_at.is_(None))
)
_TOUCH = update(_devices).where(_devices.c.id == bindparam("device_id")).values(last_seen_at=bindparam("seen_at"))


def poll(token: str | None):
    if not token or len(token) > 200:
        return None
    return db.session.execute(_POLL, {"token_hash": _digest(token)}).first()


def _due(last_seen_at) -> bool:
    return last_seen_at is None or now_utc() - last_seen_at >= SEEN_EVERY


def _touch(device_id: int, last_seen_at) -> None:
    if not _due(last_seen_at):
        return
    # Best effort: on SQLite a GET's read transaction cannot always become a writer (another process wrote
    # since it began); the next poll tries again.
    try:
        db.session.execute(_TOUCH, {"device_id": device_id, "seen_at": now_utc()})
        db.session.commit()
    except OperationalError:
        db.session.rollback()


def touch_after(response, row) -> None:
    if row is None or not _due(row.last_seen_at):
        return
    app, device_id = current_app._get_current_object(), row.id

    def write() -> None:
        # Waiting at most a second for SQLite's writer lock: a missed refresh is retried by the next poll.
        with bounded_wait(1000):
            try:
                begin_serialised_write()
                db.session.execute(_TOUCH, {"device_id": device_id, "seen_at": now_utc()})
                db.session.commit()
            except SQLAlchemyError as error:
                db.session.rollback()
                log.info("last seen of tablet %s not refreshed: %s", device_id, error)

    def touch() -> None:
        # After the answer went out. A server closes the response once the request's app context is gone: the
        # write gets a context (and a transaction) of its own. Flask's test client may close it inside the
        # test's own context, whose session the request shared: the write goes there, as it would have inline.
        if has_app_context() and current_app._get_current_object() is app:
            write()
        else:
            with app.app_context():
                write()

    response.call_on_close(touch)


def revoke(device: Device, actor) -> None:
    if device.revoked_at is not None:
        return
    device.revoked_at = now_utc()
    audit.record("kiosk.revoked", subject=f"device:{device.id}", detail=f"Tablet \u201c{device.name}\u201d revoked",
                 venue_id=device.venue_id, actor_id=actor.id if actor is not None else None)
    db.session.commit()


def devices(venue) -> list[Device]:
    return list(db.session.scalars(
        select(Device).where(Device.venue_id == venue.id)
        .order_by(Device.revoked_at.is_not(None), Device.name, Device.id)
    ))


def pending_codes(venue, now=None) -> list[EnrolmentCode]:
    now = now or now_utc()
    return list(db.session.scalars(
        select(EnrolmentCode).where(EnrolmentCode.venue_id == venue.id, EnrolmentCode.used_at.is_(None),
                                    EnrolmentCode.expires_at > now)
        .order_by(EnrolmentCode.expires_at)
    ))
