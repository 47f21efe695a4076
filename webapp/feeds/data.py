"""What a feed holds, read from the database: its window, its version (ETag) and its events.

Public API:
- `Feed(kind, user, venue, space=None)`: which feed, for whom. `Feed.name`.
- `feed_window(venue, past_days, future_days, now=None)` → `Window(start, end, today)`: from local midnight
  `past_days` before today to the end of the day `future_days` after it (venue zone).
- `feed_version(feed, window)` → (etag, last_modified): from one aggregate query (count, latest
  `updated_at`, sum of `sequence` over every booking the feed could show, cancelled ones included) plus the
  names the feed prints and the window's day — never by building the calendar, so a conditional request
  costs one small query.
- `feed_calendar(feed, window, booking_url, last_modified)` → `ical.FeedCalendar`.

Which bookings: those with a live occurrence overlapping the window on the space (space feed), on any space
of the venue (venue feed), or that the user holds or attends (personal feed). Cancelled bookings are gone; a
series is one event with its RRULE, EXDATEs for cancelled occurrences and overrides (RECURRENCE-ID) for
moved or retitled ones, whole even where it reaches beyond the window.

Privacy: a private booking shows in full only in its holder's personal feed. Everywhere else (space and
venue feeds, everyone's, the holder's own included, since such URLs get shared; attendees' personal feeds)
it is CLASS:PRIVATE, titled `booking.privacy.PRIVATE_TITLE`, without description, Teams link or attendees.
Internal and unavailable blocks show as busy events titled by their title or, without one, by their kind.

Why the version covers every change: each booking write bumps `updated_at` and `sequence`
(`booking.operations._touch`), a new booking brings a newer `updated_at`, and a booking leaving the feed's
set lowers the count. Renaming a space or the venue changes the hashed names. Not covered: a holder's or
attendee's name changing (their emails are covered, as part of the booking).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import String, cast, func, or_, select

from ..auth.models import User
from ..booking.models import Booking, Occurrence, OccurrenceException, Space, Venue, booking_spaces
from ..booking.operations import expand
from ..booking.privacy import PRIVATE_TITLE
from ..booking.rules import HARD_MAX_DURATION
from ..extensions import db
from ..timeutil import UTC, local_day_bounds, now_utc, to_local
from . import ical

FORMAT_VERSION = "1"  # part of every ETag: bump when the feed's text changes shape
KIND_TITLES = {"regular": "Booking", "internal": "Internal booking", "unavailable": "Unavailable"}
KIND_CATEGORIES = {"internal": "Internal", "unavailable": "Unavailable"}


@dataclass(frozen=True)
class Feed:
    kind: str  # space | venue | personal
    user: User
    venue: Venue
    space: Space | None = None

    @property
    def name(self) -> str:
        if self.kind == "space":
            return f"{self.space.name} ({self.venue.name})"
        if self.kind == "venue":
            return f"{self.venue.name} (all spaces)"
        return f"My bookings ({self.venue.name})"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    today: date


def feed_window(venue: Venue, past_days: int, future_days: int, now: datetime | None = None) -> Window:
    tz = venue.tz
    today = to_local(now or now_utc(), tz).date()
    start, _ = local_day_bounds(today - timedelta(days=past_days), tz)
    _, end = local_day_bounds(today + timedelta(days=future_days), tz)
    return Window(start, end, today)


def _involves(user: User):
    return or_(
        Booking.holder_id == user.id,
        # Attendees are a JSON list of lower-case emails; its text holds the quoted address on both databases.
        cast(Booking.attendees, String).contains(f'"{user.email}"', autoescape=True),
    )


def _candidates(feed: Feed):
    """Every booking the feed could ever show (cancelled included): the version's scope."""
    stmt = select(func.count(Booking.id), func.max(Booking.updated_at), func.sum(Booking.sequence))
    if feed.kind == "space":
        return stmt.join(booking_spaces, booking_spaces.c.booking_id == Booking.id).where(
            booking_spaces.c.space_id == feed.space.id
        )
    stmt = stmt.where(Booking.venue_id == feed.venue.id)
    if feed.kind == "personal":
        stmt = stmt.where(_involves(feed.user))
    return stmt


def _space_names(venue: Venue) -> list[tuple[int, str]]:
    return list(db.session.execute(select(Space.id, Space.name).where(Space.venue_id == venue.id).order_by(Space.position, Space.id)))


def feed_version(feed: Feed, window: Window) -> tuple[str, datetime]:
    count, latest, sequences = db.session.execute(_candidates(feed)).one()
    if feed.kind == "space":
        names = [(feed.space.id, feed.space.name)]  # a booking's other spaces only appear in LOCATION
        names += _space_names(feed.venue)
    else:
        names = _space_names(feed.venue)
    identity = (
        FORMAT_VERSION, feed.kind, feed.user.id, feed.user.email, feed.space.id if feed.space else None,
        feed.venue.id, feed.venue.name, feed.venue.timezone, window.start.isoformat(), window.end.isoformat(),
        count, latest.isoformat() if latest else None, sequences, names,
    )
    etag = '"' + hashlib.sha256(repr(identity).encode()).hexdigest()[:40] + '"'
    # The content changes when a booking does, and when the window moves (each day).
    day_start = datetime.combine(window.today, datetime.min.time(), tzinfo=UTC)
    last_modified = max(latest, day_start) if latest else day_start
    return etag, ical.http_date_floor(last_modified)


def _booking_ids(feed: Feed, window: Window):
    stmt = select(Occurrence.booking_id).where(
        Occurrence.start_utc < window.end,
        Occurrence.start_utc >= window.start - HARD_MAX_DURATION,  # lets the (space, start, end) index bound the scan
        Occurrence.end_utc > window.start,
    )
    if feed.kind == "space":
        stmt = stmt.where(Occurrence.space_id == feed.space.id)
    else:
        stmt = stmt.where(Occurrence.space_id.in_(select(Space.id).where(Space.venue_id == feed.venue.id)))
        if feed.kind == "personal":
            stmt = stmt.join(Booking, Booking.id == Occurrence.booking_id).where(_involves(feed.user))
    return stmt.distinct().scalar_subquery()


def _name(first: str, last: str, email: str) -> str:
    return f"{first or ''} {last or ''}".strip() or email


def feed_calendar(feed: Feed, window: Window, booking_url, last_modified: datetime) -> ical.FeedCalendar:
    """`booking_url(id)` → the booking's page."""
    venue = feed.venue
    tz = venue.tz
    ids = _booking_ids(feed, window)
    rows = db.session.execute(
        select(
            Booking.id, Booking.uid, Booking.kind, Booking.title, Booking.description, Booking.private,
            Booking.start_utc, Booking.end_utc, Booking.rrule, Booking.attendees, Booking.join_url, Booking.sequence,
            Booking.created_at, Booking.updated_at, Booking.holder_id,
        )
        .where(Booking.id.in_(ids), Booking.cancelled_at.is_(None), Booking.venue_id == venue.id)
        .order_by(Booking.start_utc, Booking.id)
    ).all()
    if not rows:
        return ical.FeedCalendar(feed.name, venue.timezone, [], dtstamp=last_modified)

    names = dict(_space_names(venue))
    positions = {space_id: i for i, space_id in enumerate(names)}
    spaces_of: dict[int, list[int]] = defaultdict(list)
    for booking_id, space_id in db.session.execute(
        select(booking_spaces.c.booking_id, booking_spaces.c.space_id).where(booking_spaces.c.booking_id.in_(ids))
    ):
        spaces_of[booking_id].append(space_id)
    exceptions_of: dict[int, list] = defaultdict(list)
    if any(row.rrule for row in rows):
        for exc in db.session.execute(
            select(
                OccurrenceException.booking_id, OccurrenceException.original_start_utc, OccurrenceException.cancelled,
                OccurrenceException.start_utc, OccurrenceException.end_utc, OccurrenceException.title,
            ).where(OccurrenceException.booking_id.in_(ids))
        ):
            exceptions_of[exc.booking_id].append(exc)
    holder_ids = {row.holder_id for row in rows if row.holder_id is not None}
    people: dict[int, ical.Person] = {}
    if holder_ids:
        for user_id, email, first, last in db.session.execute(
            select(User.id, User.email, User.first_name, User.last_name).where(User.id.in_(holder_ids))
        ):
            people[user_id] = ical.Person(email, _name(first, last, email))
    attendee_emails = {email for row in rows if not row.private for email in (row.attendees or ())}
    attendee_names: dict[str, str] = {}
    if attendee_emails:
        for email, first, last in db.session.execute(
            select(User.email, User.first_name, User.last_name).where(User.email.in_(attendee_emails))
        ):
            attendee_names[email] = _name(first, last, "")

    owner_id = feed.user.id if feed.kind == "personal" else None
    events = []
    for row in rows:
        masked = row.private and (owner_id is None or row.holder_id != owner_id)
        space_ids = sorted(spaces_of.get(row.id, ()), key=lambda s: positions.get(s, 1 << 30))
        location = ", ".join(names.get(s, "") for s in space_ids)
        if masked:
            summary, description, attendees = PRIVATE_TITLE, "", ()
        else:
            summary = row.title or KIND_TITLES.get(row.kind, "Booking")
            parts = [row.description.strip()] if row.description and row.description.strip() else []
            if row.join_url:
                parts.append(f"Join the Microsoft Teams meeting: {row.join_url}")
            description = "\n\n".join(parts)
            attendees = tuple(ical.Person(email, attendee_names.get(email, "")) for email in (row.attendees or ()))
        exdates: tuple = ()
        overrides: tuple = ()
        last_end = None
        if row.rrule:
            exceptions = exceptions_of.get(row.id, ())
            times = expand(tz, row.start_utc, row.end_utc, row.rrule, exceptions)
            by_original = {exc.original_start_utc: exc for exc in exceptions if not exc.cancelled}
            exdates = tuple(o.original_start for o in times if o.cancelled)
            overrides = tuple(
                ical.Override(o.original_start, o.start, o.end, None if masked else o.title)
                for o in times
                if not o.cancelled and o.original_start in by_original
            )
            last_end = max(o.end for o in times)
        events.append(
            ical.FeedEvent(
                uid=row.uid,
                start=row.start_utc,
                end=row.end_utc,
                summary=summary,
                sequence=row.sequence or 0,
                created=row.created_at,
                last_modified=row.updated_at,
                rrule=row.rrule,
                exdates=exdates,
                overrides=overrides,
                location=location,
                description=description,
                organizer=people.get(row.holder_id),
                attendees=attendees,
                url=booking_url(row.id),
                private=bool(row.private),
                categories=(KIND_CATEGORIES[row.kind],) if row.kind in KIND_CATEGORIES else (),
                last_end=last_end,
            )
        )
    return ical.FeedCalendar(feed.name, venue.timezone, events, dtstamp=last_modified)
