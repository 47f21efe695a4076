"""Auto-release of no-shows: a booked room nobody checked in to is given back.

Public API:
- `release_no_shows(now=None)` → list of (booking uid, occurrence original start) released. Job, queued every
  `RELEASE_SECONDS` by the cron process (`register_cron`). For every venue with `checkin_required`: the
  occurrences in progress on a space watched by an active panel tablet (the tablet's space and the spaces it
  shares with — a booking of "A+B" shows on A's panel), of regular bookings (internal blocks and
  unavailability have nobody to check in), not checked in, whose check-in deadline has passed:
  `checkin_release_minutes` after the start — or after the booking was made, for one made after its start.
  Each is cancelled through `booking.operations.cancel_booking` (a series loses only that occurrence, scope
  "this"), so the outbound sync takes it out of Outlook (the holder's event, or that occurrence of it, is
  cancelled and the room freed for paired spaces); in the same transaction: a `NoShow` row, an audit entry
  naming the tablet(s), the email to the holder (`notify.messages.no_show_released`) and, for a series
  reaching a `REPORT_AT` count of released occurrences, the report to the holder and the admins
  (`notify.messages.no_shows_reported`).
- `register_cron(cron, app)`: adds the job to the cron process (`worker.py --cron`).

Idempotent: a released occurrence is cancelled, so it is not found again; its `NoShow` row is unique (a
second run racing the first fails its transaction and changes nothing), emails carry dedup keys, and a
check-in that arrives while the job runs is re-read under the operation's locks (then nothing is released).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..booking.errors import BookingError
from ..booking.models import Booking, Occurrence, Venue
from ..booking.operations import DependencyGraph, cancel_booking
from ..booking.rules import HARD_MAX_DURATION
from ..extensions import db
from ..timeutil import now_utc, to_local
from .actions import KioskError, _with_rows, acting_user, is_checked_in
from .checkins import NoShow
from .models import Device

log = logging.getLogger(__name__)

RELEASE_SECONDS = 60
REPORT_AT = (2, 3, 5, 10, 20)  # released occurrences of one series that trigger a report (once each)


class _CheckedInMeanwhile(Exception):
    """Raised inside the cancel's transaction to roll it back: someone checked in after we looked."""


def _watched_spaces(venue: Venue) -> dict[int, list[str]]:
    """Space id → names of the active panel tablets that show it."""
    panels = db.session.execute(select(Device.space_id, Device.name).where(
        Device.venue_id == venue.id, Device.kind == "panel", Device.revoked_at.is_(None),
        Device.space_id.is_not(None)).order_by(Device.id)).all()
    if not panels:
        return {}
    graph = DependencyGraph.load()
    watched: dict[int, list[str]] = {}
    for space_id, name in panels:
        for shown in graph.closure([space_id]):
            watched.setdefault(shown, []).append(name)
    return watched


def release_no_shows(now: datetime | None = None) -> list[tuple[str, datetime]]:
    now = now or now_utc()
    released: list[tuple[str, datetime]] = []
    for venue in db.session.scalars(select(Venue).where(Venue.checkin_required.is_(True)).order_by(Venue.id)):
        released += _release_venue(venue, now)
    return released


def _release_venue(venue: Venue, now: datetime) -> list[tuple[str, datetime]]:
    watched = _watched_spaces(venue)
    if not watched:
        return []
    grace = timedelta(minutes=venue.checkin_release_minutes)
    rows = db.session.execute(
        select(Occurrence.booking_id, Occurrence.space_id, Occurrence.original_start_utc, Occurrence.start_utc,
               Occurrence.end_utc, Booking.created_at)
        .join(Booking, Booking.id == Occurrence.booking_id)
        .where(Occurrence.space_id.in_(list(watched)), Occurrence.start_utc <= now - grace,
               Occurrence.start_utc >= now - HARD_MAX_DURATION, Occurrence.end_utc > now,
               Booking.venue_id == venue.id, Booking.kind == "regular", Booking.cancelled_at.is_(None))
        .order_by(Occurrence.start_utc, Occurrence.booking_id)).all()
    due: dict[tuple[int, datetime], tuple[datetime, datetime, list[str]]] = {}
    for booking_id, space_id, original, start, end, created_at in rows:
        if max(start, created_at) + grace > now:
            continue  # booked after its start: it gets its full grace from when it was made
        key = (booking_id, original)
        names = due.setdefault(key, (start, end, []))[2]
        names += [n for n in watched.get(space_id, []) if n not in names]
    released = []
    for (booking_id, original), (start, end, tablets) in due.items():
        booking = db.session.get(Booking, booking_id)
        if booking is None or is_checked_in(booking, original):
            continue
        try:
            if _release(venue, booking, original, start, end, tablets):
                released.append((booking.uid, original))
        except (BookingError, KioskError, IntegrityError, _CheckedInMeanwhile) as error:
            # Cancelled meanwhile, checked in meanwhile, a space in its initial sync, another run first: the
            # next run looks again.
            log.info("no-show of booking %s at %s not released: %s", booking_id, original, error)
            db.session.rollback()
    return released


def _release(venue: Venue, booking: Booking, original: datetime, start: datetime, end: datetime,
             tablets: list[str]) -> bool:
    from ..notify import messages

    series = booking.rrule is not None
    actor = acting_user(booking)
    minutes = venue.checkin_release_minutes
    local = to_local(start, venue.tz)
    stamp = f"{original:%Y%m%dT%H%M%SZ}"

    def rows(changed: Booking) -> None:
        if is_checked_in(changed, original):
            raise _CheckedInMeanwhile(changed.uid)
        db.session.add(NoShow(venue_id=venue.id, booking_id=changed.id, occurrence_start=original,
                              released_at=now_utc()))
        db.session.flush()  # the unique row: a second run racing this one fails here
        names = ", ".join(f"“{n}”" for n in tablets)
        audit.record("kiosk.released", subject=f"booking:{changed.uid}", venue_id=venue.id,
                     detail=(f"Released {'one occurrence' if series else 'the booking'} of {local:%a %d %b %H:%M}: "
                             f"nobody checked in within {minutes} minutes of its start (tablet {names})."))
        messages.no_show_released(changed, start, end, minutes=minutes, dedup_key=f"no-show:{changed.uid}:{stamp}")
        if series:
            count = db.session.scalar(select(func.count(NoShow.id)).where(NoShow.booking_id == changed.id))
            if count in REPORT_AT:
                messages.no_shows_reported(changed, count, dedup_key=f"no-show-report:{changed.uid}:{count}")

    _with_rows(rows, lambda: cancel_booking(booking, actor=actor, scope="this" if series else "all",
                                            occurrence_start=original if series else None))
    return True


def register_cron(cron, app) -> None:
    from ..jobs import queue

    with app.app_context():
        name = queue().name
    cron.register(release_no_shows, name, interval=int(app.config.get("KIOSK_RELEASE_SECONDS", RELEASE_SECONDS)))
