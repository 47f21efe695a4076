"""Tables of the two-way sync.

Public API:
- `Pair`: one Roomsync space paired with one provider room (at most one pair per space and one per room):
  `venue_id`, `space_id` (unique; ON DELETE CASCADE, so deleting a space removes its pair in the database
  itself), `room_email` (unique, lower-cased), `room_id` (the provider's room id), `room_display_name`,
  `state` (one of `PAIR_STATES`), `state_detail` (while running: the step and its counts; when failed or
  broken: why), `created_at`, `updated_at`, `created_by_id` (the admin who paired; kept None if that user
  goes).
- `PAIR_STATES`, `ACTIVE_STATES` (the states in which a page keeps polling), `STATE_LABELS`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..booking.models import Space
from ..extensions import db
from ..timeutil import UTCDateTime, now_utc

PAIR_STATES = ("queued", "running", "done", "failed", "live", "broken")
ACTIVE_STATES = frozenset({"queued", "running"})
STATE_LABELS = {
    "queued": "Initial sync queued",
    "running": "Initial sync running",
    "done": "Initial sync done",
    "failed": "Initial sync failed",
    "live": "Live",
    "broken": "Broken",
}


class Pair(db.Model):
    __tablename__ = "sync_pairs"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), unique=True)
    room_email: Mapped[str] = mapped_column(String(254), unique=True)
    room_id: Mapped[str] = mapped_column(String(200))
    room_display_name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(20), default="queued")
    state_detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    # No backref on Space: the ORM must not try to null out space_id when a space is deleted; the
    # database's cascade removes the pair.
    space: Mapped[Space] = relationship()

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)

    def __repr__(self) -> str:
        return f"<Pair {self.id} space={self.space_id} room={self.room_email} {self.state}>"
