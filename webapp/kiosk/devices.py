"""Enrolling tablets: no staff login on the wall, a device token instead.

Public API:
- `start_enrolment(venue, *, name, space=None, actor)` → the short code (shown once to the admin; only its
  hash is stored). Valid `CODE_TTL` (15 minutes), once. `space` None makes a lobby board.
- `enrol(code)` → `(Device, token)`: the raw token goes into the tablet's long-lived cookie; only its SHA-256
  is stored. Raises `EnrolmentError` (a message for the tablet) for an unknown, used or expired code.
- `device_for_token(token)` → the active `Device`, or None (unknown or revoked). Refreshes `last_seen_at` at
  most once per `SEEN_EVERY` (one UPDATE, committed), so a thousand tablets polling every 10 s cost a
  thousand small writes a minute, not six thousand.
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

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import joinedload

from .. import audit
from ..extensions import db
from ..timeutil import now_utc
from .models import Device, EnrolmentCode

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
    now = now_utc()
    if touch and (device.last_seen_at is None or now - device.last_seen_at >= SEEN_EVERY):
        # Best effort: on SQLite a GET's read transaction cannot always become a writer (another process wrote
        # since it began); the next poll tries again. The commit expires `device`: it reloads on next access.
        try:
            db.session.execute(update(Device).where(Device.id == device.id).values(last_seen_at=now))
            db.session.commit()
        except OperationalError:
            db.session.rollback()
    return device


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
