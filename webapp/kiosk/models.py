"""Tablets and their enrolment codes.

Public API:
- `Device`: an enrolled tablet. `kind` is "panel" (bound to one space, `space_id`) or "lobby" (the venue's
  lobby board, `space_id` None). Only the SHA-256 of its token is stored (`token_hash`); `revoked_at` set →
  the token no longer works. `last_seen_at` is refreshed by the panel's polls (throttled), `is_stale(now)`.
- `EnrolmentCode`: a short one-time code an admin makes for a space (or for the lobby: `space_id` None);
  only its hash is stored; valid until `expires_at`, used once (`used_at`, `device_id`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..booking.models import Space, Venue
from ..extensions import db
from ..timeutil import UTCDateTime, now_utc

DEVICE_KINDS = ("panel", "lobby")
STALE_AFTER = timedelta(minutes=5)  # a tablet polls every few seconds: five silent minutes means trouble


class Device(db.Model):
    __tablename__ = "kiosk_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[int | None] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(10), default="panel")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    venue: Mapped[Venue] = relationship()
    space: Mapped[Space | None] = relationship()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_stale(self, now: datetime) -> bool:
        return self.last_seen_at is None or now - self.last_seen_at > STALE_AFTER

    def __repr__(self) -> str:
        return f"<Device {self.id} {self.kind} {self.name!r}>"


class EnrolmentCode(db.Model):
    __tablename__ = "kiosk_enrolment_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[int | None] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("kiosk_devices.id", ondelete="SET NULL"))

    venue: Mapped[Venue] = relationship()
    space: Mapped[Space | None] = relationship()

    def is_usable(self, now: datetime) -> bool:
        return self.used_at is None and now < self.expires_at
