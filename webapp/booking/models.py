"""The booking domain's tables.

Public API:
- `Venue`: zone, grid, window, maximum duration, opening hours, overnight and privacy settings, the
  pricing/payment flags that two-way sync checks, the tablets' settings (`kiosk_*`, `checkin_*`).
  `Venue.tz`, `Venue.hours_for(weekday)`.
- `CustomField`: venue-defined text/choice fields whose values bookings carry.
- `Space`: a bookable room or desk; `depends_on` / `dependants` (space-sharing, e.g. "Board A+B" depends on A
  and B).
- `SpacePhoto`: a space's photo (`PHOTO_SOURCES`: uploaded by an admin, removed by one, or its Microsoft 365
  room's; what it may be: `PHOTO_TYPES`, `PHOTO_MAX_BYTES`, `PHOTO_MAX_PIXELS`); `shown` → whether there are
  bytes to show. The bytes are deferred: pages read `etag` (the version in the photo's URL) without them;
  `SpacePhoto.with_bytes(space_id)` → the row with its bytes (to serve them), or None.
- `Booking`: one booking or one series (RRULE subset, `rrule` is None for a single booking); times of the
  first occurrence in UTC; `spaces`, `holder`, `exceptions`.
- `OccurrenceException`: one occurrence of a series cancelled or moved (keyed by its original start).
- `Occurrence`: materialised occurrences, one row per (occurrence, space), rebuilt on every change of its
  booking. The conflict check, day view and API read these rows, never expand rules on the fly.

Times are `UTCDateTime` columns: naive datetimes are refused at this boundary.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Column, ForeignKey, Index, LargeBinary, String, Table, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship, undefer

from ..auth.models import User
from ..extensions import db
from ..timeutil import UTCDateTime, now_utc

GRANULARITIES = (15, 20, 30, 60)
SPACE_KINDS = ("room", "desk")
BOOKING_KINDS = ("regular", "internal", "unavailable")
ORIGINS = ("roomsync", "microsoft")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def new_uid() -> str:
    return str(uuid.uuid4())


class Venue(db.Model):
    __tablename__ = "venues"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    granularity_minutes: Mapped[int] = mapped_column(default=15)
    booking_window_days: Mapped[int] = mapped_column(default=180)
    max_duration_minutes: Mapped[int] = mapped_column(default=8 * 60)
    # {"mon": ["08:00", "19:00"], ..., "sun": null}; a missing or null day is closed.
    opening_hours: Mapped[dict] = mapped_column(JSON, default=dict)
    allow_overnight: Mapped[bool] = mapped_column(default=False)
    admins_see_private: Mapped[bool] = mapped_column(default=False)
    has_pricing_rules: Mapped[bool] = mapped_column(default=False)
    online_payments_enabled: Mapped[bool] = mapped_column(default=False)
    # Meeting-room tablets (webapp/kiosk): "starting soon" threshold, polling interval, who holds a walk-in
    # booking ("device": the venue, as an internal booking; "email" / "badge": the person who identifies),
    # the optional PIN for tablet actions (hashed), and check-in with auto-release of no-shows.
    kiosk_soon_minutes: Mapped[int] = mapped_column(default=10, server_default="10")
    kiosk_poll_seconds: Mapped[int] = mapped_column(default=10, server_default="10")
    kiosk_identify: Mapped[str] = mapped_column(String(10), default="device", server_default="device")
    kiosk_pin_hash: Mapped[str | None] = mapped_column(String(255))
    checkin_required: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    checkin_opens_minutes: Mapped[int] = mapped_column(default=10, server_default="10")
    checkin_release_minutes: Mapped[int] = mapped_column(default=10, server_default="10")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    spaces: Mapped[list[Space]] = relationship(back_populates="venue", order_by="Space.position, Space.id")
    custom_fields: Mapped[list[CustomField]] = relationship(
        back_populates="venue", order_by="CustomField.position, CustomField.id", cascade="all, delete-orphan"
    )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def hours_for(self, weekday: int) -> tuple[time, time] | None:
        """Opening hours of a weekday (0 = Monday) as (opens, closes); closes may be 24:00 → time.max."""
        entry = (self.opening_hours or {}).get(WEEKDAYS[weekday])
        if not entry:
            return None
        opens, closes = entry
        return parse_hhmm(opens), parse_hhmm(closes)


def parse_hhmm(text: str) -> time:
    if text in ("24:00", "23:59:59"):
        return time.max
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


class CustomField(db.Model):
    __tablename__ = "custom_fields"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(10), default="text")  # text | choice
    choices: Mapped[list] = mapped_column(JSON, default=list)
    required: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)

    venue: Mapped[Venue] = relationship(back_populates="custom_fields")

    __table_args__ = (UniqueConstraint("venue_id", "key"),)


space_dependencies = Table(
    "space_dependencies",
    db.Model.metadata,
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True),
    Column("depends_on_id", ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True),
)


class Space(db.Model):
    __tablename__ = "spaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(10), default="room")
    capacity: Mapped[int] = mapped_column(default=1)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)

    venue: Mapped[Venue] = relationship(back_populates="spaces")
    depends_on: Mapped[list[Space]] = relationship(
        secondary=space_dependencies,
        primaryjoin=lambda: Space.id == space_dependencies.c.space_id,
        secondaryjoin=lambda: Space.id == space_dependencies.c.depends_on_id,
        back_populates="dependants",
        order_by="Space.name",
    )
    dependants: Mapped[list[Space]] = relationship(
        secondary=space_dependencies,
        primaryjoin=lambda: Space.id == space_dependencies.c.depends_on_id,
        secondaryjoin=lambda: Space.id == space_dependencies.c.space_id,
        back_populates="depends_on",
        order_by="Space.name",
    )

    __table_args__ = (UniqueConstraint("venue_id", "name"),)

    def __repr__(self) -> str:
        return f"<Space {self.id} {self.name}>"


# Who chose a space's photo. "upload": an admin's file. "removed": an admin removed it, and wants none (not even
# the Microsoft 365 room's). "microsoft365": the paired room mailbox's photo, fetched in the background and
# refreshed (a row without bytes records that the room has none, so the job does not ask on every run — as
# `integration.models.UserPhoto` does for people).
PHOTO_SOURCES = ("upload", "removed", "microsoft365")
# What a space's photo may be, whoever sends it: judged by its bytes (`images.inspect`), never by its name.
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
PHOTO_MAX_BYTES = 5_000_000
PHOTO_MAX_PIXELS = 24_000_000  # a 6,000 × 4,000 camera photo; decoded, about 100 MB of a tablet's memory


class SpacePhoto(db.Model):
    __tablename__ = "space_photos"

    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    content_type: Mapped[str | None] = mapped_column(String(100))
    # Deferred: a page only needs `etag` to link the photo; the bytes load when the photo itself is served.
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    etag: Mapped[str | None] = mapped_column(String(80))  # digest of the bytes: the ETag and the URL's version
    width: Mapped[int | None] = mapped_column()
    height: Mapped[int | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    @property
    def shown(self) -> bool:
        return self.etag is not None

    @classmethod
    def with_bytes(cls, space_id: int) -> SpacePhoto | None:
        """The space's photo with its bytes loaded, or None when it has none to show."""
        photo = db.session.get(cls, space_id, options=[undefer(cls.data)])
        return photo if photo is not None and photo.shown else None


booking_spaces = Table(
    "booking_spaces",
    db.Model.metadata,
    Column("booking_id", ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Booking(db.Model):
    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stable across systems: the iCalendar UID of feeds and the transactionId of provider creates.
    uid: Mapped[str] = mapped_column(String(64), unique=True, default=new_uid)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(12), default="regular")
    title: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    private: Mapped[bool] = mapped_column(default=False)
    start_utc: Mapped[datetime] = mapped_column(UTCDateTime)  # first occurrence (DTSTART of a series)
    end_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    rrule: Mapped[str | None] = mapped_column(String(255))  # RFC 5545 RRULE value, in venue wall-clock time
    attendees: Mapped[list] = mapped_column(JSON, default=list)
    custom_fields: Mapped[dict] = mapped_column(JSON, default=dict)
    origin: Mapped[str] = mapped_column(String(12), default="roomsync")
    # An online meeting (Teams) with the event; `join_url` is the provider's link once it exists.
    online_meeting: Mapped[bool] = mapped_column(default=False)
    join_url: Mapped[str | None] = mapped_column(String(1000))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sequence: Mapped[int] = mapped_column(default=0)  # grows on every change (iCalendar SEQUENCE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    venue: Mapped[Venue] = relationship()
    holder: Mapped[User | None] = relationship(foreign_keys=[holder_id])
    updated_by: Mapped[User | None] = relationship(foreign_keys=[updated_by_id])
    spaces: Mapped[list[Space]] = relationship(secondary=booking_spaces, order_by="Space.position, Space.id")
    exceptions: Mapped[list[OccurrenceException]] = relationship(
        back_populates="booking", cascade="all, delete-orphan", order_by="OccurrenceException.original_start_utc"
    )

    @property
    def is_series(self) -> bool:
        return self.rrule is not None

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None

    def __repr__(self) -> str:
        return f"<Booking {self.id} {self.start_utc:%Y-%m-%d %H:%M}Z>"


class OccurrenceException(db.Model):
    """One occurrence of a series that was cancelled, moved or retitled (RECURRENCE-ID semantics)."""

    __tablename__ = "occurrence_exceptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    original_start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    cancelled: Mapped[bool] = mapped_column(default=False)
    start_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    title: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    booking: Mapped[Booking] = relationship(back_populates="exceptions")

    __table_args__ = (UniqueConstraint("booking_id", "original_start_utc"),)


class Occurrence(db.Model):
    """A live occurrence on one space. Derived data: `booking.operations.materialise` owns these rows."""

    __tablename__ = "occurrences"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    original_start_utc: Mapped[datetime] = mapped_column(UTCDateTime)

    booking: Mapped[Booking] = relationship()
    space: Mapped[Space] = relationship()

    __table_args__ = (
        # Covering: the overlap test reads end_utc from the index, not from each table row.
        Index("ix_occurrences_space_start_end", "space_id", "start_utc", "end_utc"),
        Index("ix_occurrences_booking", "booking_id", "original_start_utc"),
    )
