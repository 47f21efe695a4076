"""What the tablets record about occurrences: check-ins and released no-shows.

Public API:
- `CheckIn`: someone checked in to one occurrence (keyed by the booking and the occurrence's ORIGINAL start,
  like `OccurrenceException`, so a moved occurrence keeps its check-in) at a tablet. `space_id` is the
  tablet's space (the panel's status ETag counts a space's check-ins); `device_id`/`device_name` say which
  tablet (no foreign key: a revoked or deleted tablet leaves the record).
- `NoShow`: one occurrence released by `kiosk.release` because nobody checked in; one row per occurrence
  (a re-run of the job releases nothing twice) and the count behind the repeated no-shows report.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..timeutil import UTCDateTime, now_utc


class CheckIn(db.Model):
    __tablename__ = "kiosk_checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    occurrence_start: Mapped[datetime] = mapped_column(UTCDateTime)  # the occurrence's original start
    space_id: Mapped[int | None] = mapped_column(ForeignKey("spaces.id", ondelete="SET NULL"), index=True)
    device_id: Mapped[int | None] = mapped_column()
    device_name: Mapped[str] = mapped_column(String(120), default="")
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    __table_args__ = (UniqueConstraint("booking_id", "occurrence_start", name="uq_kiosk_checkins_occurrence"),)


class NoShow(db.Model):
    __tablename__ = "kiosk_no_shows"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    occurrence_start: Mapped[datetime] = mapped_column(UTCDateTime)  # the occurrence's original start
    released_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    __table_args__ = (UniqueConstraint("booking_id", "occurrence_start", name="uq_kiosk_no_shows_occurrence"),)
