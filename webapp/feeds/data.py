"""What a feed holds, read from the database: its window, its version (ETag) and its events.

Public API:
- `Feed(kind, user, venue, space=None)`: which feed, for whom (`space`: a `Space` or a `SpaceRef(id, name)`).
  `Feed.name`. `space_names(venue)` → {id: name} in the venue's order.
- `feed_window(venue, past_days, future_days, now=None)` → `Window(start, end, today, day_start)`: from local
  midnight `past_days` before today to the end of the day `future_days` after it (venue zone).
- `feed_version(feed, window, names=None)` → (etag, last_modified): from one aggregate query over every booking the feed
  could show (cancelled ones included) and all their space links, plus the names the feed prints and the
  window — never by building the calendar, so a conditional request costs one small query. The ETag names
  the content only: every subscriber of a space or of the venue gets the same one (a personal feed's names
  its owner), which lets `views` build a body once for all of them.
- `feed_calendar(feed, window, booking_url, last_modified)` → `ical.FeedCalendar`.

Which bookings: those with a live occurrence overlapping the window on the space (space feed), on any space
of the venue (venue feed), or that the user holds or attends (personal feed). Cancelled bookings are gone; a
series is one event with its RRULE, EXDATEs for cancelled occurrences and overrides (RECURRENCE-ID) for
moved or retitled ones (their times from the occurrence rows, as the day view shows them), whole even where
it reaches beyond the window.

Privacy: a private booking shows in full only in its holder's personal feed. Everywhere else (space and
venue feeds, everyone's, the holder's own included, since such URLs get shared; attendees' personal feeds)
it is CLASS:PRIVATE, titled `booking.privacy.PRIVATE_TITLE`, without description, Teams link or attendees.
Internal and unavailable blocks show as busy events titled by their title or, without one, by their kind.

Why the version covers every change: each booking write bumps `updated_at` and `sequence`
(`booking.operations._touch`), a new booking brings a newer `updated_at` and a larger sum of ids, a booking
leaving the feed's set lowers the count, and a space taken out of a booking without a booking write (the
initial sync clearing a space does that) changes the count and sum of its links. Renaming a space or the
venue changes the hashed names; the window moves at the venue's midnight. Not covered: a holder's or
attendee's name changing in their account, which shows from the next day (the window's move) or the next
change to the feed, whichever comes first.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import String, bindparam, case, cast, func, or_, select

from ..auth.models import User
from ..booking.models import Booking, Occurrence, OccurrenceException, Space, Venue, booking_spaces
from ..booking.privacy import PRIVATE_TITLE
from ..booking.rules import HARD_MAX_DURATION
from ..extensions import db
from ..timeutil import local_day_bounds, now_utc, to_local
from . import ical

FORMAT_VERSION = "2"  # part of every ETag: bump when the feed's text changes shape
KIND_TITLES = {"regular": "Booking", "internal": "Internal booking", "unavailable": "Unavailable"}
KIND_CATEGORIES = {"internal": "Internal", "unavailable": "Unavailable"}
ID_CHUNK = 500  # ids per IN list (SQLite and PostgreSQL both take far more; this keeps statements small)


class SpaceRef(NamedTuple):
    """The feed's space as a feed needs it: what `space_names` already read, no ORM object to load."""

    id: int
    name: str


@dataclass(frozen=True)
class Feed:
    kind: str  # space | venue | personal
    user: User
    venue: Venue
    space: Space | SpaceRef | None = None

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
    day_start: datetime  # today's local midnight (UTC): the window last moved then


def feed_window(venue: Venue, past_days: int, future_days: int, now: datetime | None = None) -> Window:
    tz = venue.tz
    today = to_local(now or now_utc(), tz).date()
    start, _ = local_day_bounds(today - timedelta(days=past_days), tz)
    _, end = local_day_bounds(today + timedelta(days=future_days), tz)
    return Window(start, end, today, local_day_bounds(today, tz)[0])


def _attendee_pattern(email: str) -> str:
    """A LIKE pattern finding `email` in the JSON text of a booking's attendees, which holds each address as
    json.dumps wrote it (quoted, non-ASCII as \\u escapes) on both databases; `/` escapes LIKE's wildcards
    (`_` is common in addresses)."""
    quoted = json.dumps(email).replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{quoted}%"


def _involves(user: User):
    return or_(
        Booking.holder_id == user.id,
        cast(Booking.attendees, String).like(_attendee_pattern(user.email), escape="/"),
    )


@lru_cache(maxsize=None)
def _version_statement(kind: str):
    """The version's aggregate over every booking the feed could show (cancelled ones included), joined to
    all their space links: a link removed without a booking write (the initial sync clearing a space takes it
    out of bookings of several spaces) changes the count and the sum of space ids, as LOCATION changes. Built
    once per kind with bound parameters: a 304 should not pay for building a statement."""
    b, links = Booking.__table__.c, booking_spaces.alias("links")
    stmt = select(
        func.count(), func.max(b.updated_at), func.sum(b.sequence), func.sum(links.c.space_id),
        # A booking deleted while another is written with an older clock would leave the count and the latest
        # write as they were; the sum of ids changes with the set of bookings.
        func.sum(b.id),
    )
    # A single booking that ended before the window can never show (nor can it come back without a write, which
    # brings it in again); a series can reach into the window from any start.
    current = or_(b.rrule.is_not(None), b.end_utc > bindparam("window_start"))
    if kind == "space":
        mine = booking_spaces.alias("mine")
        return (
            stmt.select_from(mine)
            .join(Booking.__table__, b.id == mine.c.booking_id)
            .join(links, links.c.booking_id == b.id)
            .where(mine.c.space_id == bindparam("space_id"), current)
        )
    stmt = stmt.select_from(Booking.__table__).join(links, links.c.booking_id == b.id)
    stmt = stmt.where(b.venue_id == bindparam("venue_id"), current)
    if kind == "personal":
        stmt = stmt.where(or_(b.holder_id == bindparam("user_id"),
                              cast(b.attendees, String).like(bindparam("attendee_pattern"), escape="/")))
    return stmt


def _version_row(feed: Feed, window: Window):
    parameters = {"space_id": feed.space.id} if feed.kind == "space" else {"venue_id": feed.venue.id}
    parameters["window_start"] = window.start
    if feed.kind == "personal":
        parameters.update(user_id=feed.user.id, attendee_pattern=_attendee_pattern(feed.user.email))
    return db.session.connection().execute(_version_statement(feed.kind), parameters).one()


def space_names(venue: Venue) -> dict[int, str]:
    """id → name of every space of the venue, in the venue's order (a booking's LOCATION lists its spaces so)."""
    spaces = Space.__table__.c
    return dict(db.session.connection().execute(
        select(spaces.id, spaces.name).where(spaces.venue_id == venue.id).order_by(spaces.position, spaces.id)).all())


def feed_version(feed: Feed, window: Window, names: dict[int, str] | None = None) -> tuple[str, datetime]:
    """(ETag, Last-Modified) of the feed's content. The ETag names the content alone, so every subscriber of a
    space or the venue gets the same one (each through a URL of their own) and `views` can build the body once
    for all of them; a personal feed's names its user. `names`: `space_names(feed.venue)` if read already."""
    count, latest, sequences, links, id_sum = _version_row(feed, window)
    names = list((names if names is not None else space_names(feed.venue)).items())
    if feed.kind == "space":
        names.append((feed.space.id, feed.space.name))  # the calendar's name
    owner = (feed.user.id, feed.user.email) if feed.kind == "personal" else None
    identity = (
        FORMAT_VERSION, feed.kind, owner, feed.space.id if feed.space else None,
        feed.venue.id, feed.venue.name, feed.venue.timezone, window.start.isoformat(), window.end.isoformat(),
        count, latest.isoformat() if latest else None, sequences, links, id_sum, names,
    )
    etag = '"' + hashlib.sha256(repr(identity).encode()).hexdigest()[:40] + '"'
    # The content changes when a booking does, and when the window moves (at the venue's midnight); never
    # later than now (a Last-Modified in the future is not allowed, RFC 9110 §8.8.2.1).
    changed = max(latest, window.day_start) if latest else window.day_start
    return etag, ical.http_date_floor(min(changed, now_utc()))


def _booking_ids(feed: Feed, window: Window):
    stmt = select(Occurrence.booking_id).where(
        Occurrence.start_utc < window.end,
        Occurrence.start_utc >= window.start - HARD_MAX_DURATION,  # lets the (space, start, end) index bound the scan
        Occurrence.end_utc > window.start,
    )
    if feed.kind == "space":
        stmt = stmt.where(Occurrence.space_id == feed.space.id)
    elif feed.kind == "venue":
        stmt = stmt.where(Occurrence.space_id.in_(select(Space.id).where(Space.venue_id == feed.venue.id)))
    else:
        # The user's bookings first (one pass over the venue's bookings), then their occurrences by booking id:
        # joining every occurrence of the window to its booking costs ten times more in a large venue.
        involved = select(Booking.id).where(
            Booking.venue_id == feed.venue.id, or_(Booking.rrule.is_not(None), Booking.end_utc > window.start),
            _involves(feed.user),
        )
        stmt = stmt.where(Occurrence.booking_id.in_(involved))
    return stmt.distinct().scalar_subquery()


def _name(first: str, last: str, email: str) -> str:
    return f"{first or ''} {last or ''}".strip() or email


def _overrides_and_exdates(series_ids: list[int]) -> tuple[dict[int, list], dict[int, list]]:
    """Each series' moved or retitled occurrences (original start, start, end, title) and cancelled ones
    (original start), by booking id. A moved one's times come from its materialised occurrence row, the truth
    the day view shows too; an exception the rule no longer produces has no such row and is left out, since its
    RECURRENCE-ID would show as an extra occurrence (a stale EXDATE matches nothing and does no harm)."""
    exc, occ = OccurrenceException.__table__.c, Occurrence.__table__.c
    overrides: dict[int, list] = defaultdict(list)
    exdates: dict[int, list] = defaultdict(list)
    seen = set()
    for first in range(0, len(series_ids), ID_CHUNK):
        rows = db.session.connection().execute(
            select(exc.booking_id, exc.original_start_utc, exc.cancelled, exc.title, occ.start_utc, occ.end_utc)
            .select_from(
                OccurrenceException.__table__.outerjoin(
                    Occurrence.__table__,
                    (occ.booking_id == exc.booking_id) & (occ.original_start_utc == exc.original_start_utc),
                )
            )
            .where(exc.booking_id.in_(series_ids[first : first + ID_CHUNK]))
            .order_by(exc.booking_id, exc.original_start_utc)
        )
        for booking_id, original, cancelled, title, start, end in rows:
            if (booking_id, original) in seen:  # one occurrence row per space of the booking
                continue
            seen.add((booking_id, original))
            if cancelled:
                exdates[booking_id].append(original)
            elif start is not None:
                overrides[booking_id].append((original, start, end, title))
    return overrides, exdates


def _rows(feed: Feed, window: Window) -> list[tuple]:
    """The feed's live bookings, one row per (booking, space) in booking order, a series with the end of its
    last occurrence (how far the VTIMEZONE must reach). SQLAlchemy Core: plain rows, no ORM loading."""
    b, links, occ = Booking.__table__.c, booking_spaces.c, Occurrence.__table__.c
    last_end = select(func.max(occ.end_utc)).where(occ.booking_id == b.id).scalar_subquery()
    return db.session.connection().execute(
        select(
            b.id, b.uid, b.kind, b.title, b.description, b.private, b.start_utc, b.end_utc, b.rrule,
            # The JSON text, decoded only when not empty (most bookings have no attendees).
            cast(b.attendees, String), b.join_url, b.sequence, b.updated_at, b.holder_id, links.space_id,
            case((b.rrule.is_not(None), last_end)),
        )
        .select_from(Booking.__table__.join(booking_spaces, links.booking_id == b.id))
        .where(b.id.in_(_booking_ids(feed, window)), b.cancelled_at.is_(None), b.venue_id == feed.venue.id)
        .order_by(b.start_utc, b.id)
    ).all()


def feed_calendar(feed: Feed, window: Window, booking_url, last_modified: datetime) -> ical.FeedCalendar:
    """`booking_url(id)` → the booking's page. A 3-year space feed holds thousands of events: a few queries
    (bookings with their spaces, space names, exceptions, people), then one loop over the rows
    (bench/feeds_bench.py measures it)."""
    venue = feed.venue
    rows = _rows(feed, window)
    if not rows:
        return ical.FeedCalendar(feed.name, venue.timezone, [], dtstamp=last_modified)
    owner_id = feed.user.id if feed.kind == "personal" else None
    names = space_names(venue)
    positions = {space_id: i for i, space_id in enumerate(names)}

    # One row per space: gather each booking's spaces (rows of a booking are adjacent).
    bookings: list[tuple] = []
    spaces_of: dict[int, tuple] = {}
    previous = None
    for row in rows:
        booking_id = row[0]
        if booking_id == previous:
            spaces_of[booking_id] += (row[14],)
            continue
        previous = booking_id
        spaces_of[booking_id] = (row[14],)
        bookings.append(row)

    series_ids = [row[0] for row in bookings if row[8]]
    overrides_of, exdates_of = _overrides_and_exdates(series_ids) if series_ids else ({}, {})
    # Details show for everything but a private booking, which only its holder's own personal feed shows.
    attendees_of = {
        row[0]: json.loads(row[9]) for row in bookings
        if row[9] and row[9] != "[]" and (not row[5] or (owner_id is not None and row[13] == owner_id))
    }
    connection = db.session.connection()
    people: dict[int, ical.Person] = {}
    holder_ids = {row[13] for row in bookings if row[13] is not None}
    if holder_ids:
        for user_id, email, first, last in connection.execute(
            select(User.id, User.email, User.first_name, User.last_name).where(User.id.in_(holder_ids))
        ):
            people[user_id] = ical.Person(email, _name(first, last, email))
    attendee_emails = {email for emails in attendees_of.values() for email in emails}
    attendees_by_email: dict[str, ical.Person] = {email: ical.Person(email) for email in attendee_emails}
    if attendee_emails:
        for email, first, last in connection.execute(
            select(User.email, User.first_name, User.last_name).where(User.email.in_(attendee_emails))
        ):
            attendees_by_email[email] = ical.Person(email, _name(first, last, ""))

    FeedEvent, Override = ical.FeedEvent, ical.Override
    locations: dict[tuple[int, ...], str] = {}
    events = []
    append = events.append
    for (booking_id, uid, kind, title, description, private, start, end, rrule, _, join_url, sequence, updated,
         holder_id, _, last_end) in bookings:
        masked = private and (owner_id is None or holder_id != owner_id)
        space_ids = spaces_of[booking_id]
        location = locations.get(space_ids)
        if location is None:
            ordered = sorted(space_ids, key=lambda s: positions.get(s, 1 << 30))
            location = locations[space_ids] = ", ".join(names.get(s, "") for s in ordered)
        if masked:
            summary, text, attendees = PRIVATE_TITLE, "", ()
        else:
            summary = title or KIND_TITLES.get(kind, "Booking")
            text = description.strip() if description else ""
            if join_url:
                link = f"Join the Microsoft Teams meeting: {join_url}"
                text = f"{text}\n\n{link}" if text else link
            emails = attendees_of.get(booking_id)
            attendees = tuple(attendees_by_email[email] for email in emails) if emails else ()
        exdates: tuple = ()
        overrides: tuple = ()
        if rrule:
            exdates = tuple(exdates_of.get(booking_id, ()))
            overrides = tuple(
                Override(original, moved_start, moved_end, None if masked else moved_title)
                for original, moved_start, moved_end, moved_title in overrides_of.get(booking_id, ())
            )
        append(FeedEvent(
            uid=uid, start=start, end=end, summary=summary, sequence=sequence or 0, last_modified=updated, rrule=rrule,
            exdates=exdates, overrides=overrides, location=location, description=text, organizer=people.get(holder_id),
            attendees=attendees, url=booking_url(booking_id), private=bool(private),
            categories=(KIND_CATEGORIES[kind],) if kind in KIND_CATEGORIES else (), last_end=last_end,
        ))
    return ical.FeedCalendar(feed.name, venue.timezone, events, dtstamp=last_modified)
