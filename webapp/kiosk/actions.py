"""What people do at a meeting-room tablet: book now, extend, end early, check in; the tablets' PIN.

Public API (every action raises `KioskError(message, code)` with a message for the person at the tablet,
and writes an audit entry naming the tablet in the same transaction as its change; `now` defaults to
`timeutil.now_utc()` — the booking operations themselves always judge by that clock):
- `BOOK_NOW_MINUTES` (15, 30, 45, 60), `IDENTIFY_CHOICES`, `WALK_IN_TITLE`.
- `book_now_options(space, now=None, *, booked=None)` → the lengths of `BOOK_NOW_MINUTES` the space can be
  booked for now: whole grid steps only, ending before the next booking (on the space or one it shares with),
  within the opening hours and the maximum duration (the venue rules the booking itself will be checked
  against). `booked`: the (start, end) of the bookings on the space and the spaces it shares with, when the
  caller has read them already (the panel: the items it shows) — they must cover the next
  `max(BOOK_NOW_MINUTES)` minutes and a grid step; None: read (`find_conflicts`).
- `book_now(device, minutes, *, identity=None, now=None)` → Booking. The walk-in booking starts at the grid
  step in progress and lasts at least `minutes` from now, rounded up to the grid (10:07 + 30 → 10:00–10:45).
  Who holds it is the venue's `kiosk_identify`: "device" → an internal booking of the venue (no holder; in
  Outlook the butler's event); "email" / "badge" → the person whose email / badge number `identity` is, as a
  regular booking (in Outlook on their calendar: a person without an active Microsoft 365 calendar cannot
  book a synced room — `KioskError` code "no_calendar"). The walk-in is checked in at once.
- `current_occurrence(space, now=None, *, related=None)` → the `Occurrence` in progress on the space or on a
  space it shares with (a booking of "A+B" occupies A), the space's own first; None when free. `related`: those
  spaces' ids when the caller has them (the panel: `board.related_ids`); None: `space_closure`, read afresh.
- `extend(device, now=None)` → Booking: the meeting in progress ends one grid step later, if that step is
  free and the venue's rules allow it.
- `end_early(device, now=None)` → when the room is free again: the meeting in progress ends at the grid
  boundary at or after now, freeing the rest; when that is its start (ended in its first second) the
  occurrence is cancelled.
- `check_in(device, now=None)`: checks in to the occurrence whose check-in window is open (see
  `checkin_window`); checking in twice is harmless.
- `checkin_window(venue, occurrence)` → (opens, closes): opens `checkin_opens_minutes` before the start
  (inclusive), closes `checkin_release_minutes` after it (after the booking was made, for one made after its
  start) or at its end, whichever is first (exclusive) — when `kiosk.release` releases it if the venue
  requires check-in. `occurrence`: an `Occurrence` row, or anything
  with `start`/`end`.
- `is_checked_in(booking, occurrence_start)`: `occurrence_start` is the occurrence's ORIGINAL start.
- `verify_kiosk_pin(venue, pin)` → bool (True when the venue has no PIN); `set_kiosk_pin(venue, pin)` (None
  or "" clears; 4–8 digits, stored hashed with werkzeug; not committed); `pin_problem(pin)` → message or None.
- `acting_user(booking)`: whose rights a tablet (or the release job) uses to change a booking.

Series: every action changes one occurrence ("this"), never the series. Changes go through
`booking.operations`, so they are checked, locked and synced to Outlook like any other: the operation's
`booking_changed` signal reaches the outbound sync, and `_rows_with_change` puts our audit entry (and
check-in) into the same transaction through the same signal.

Who acts: a tablet is not a user. The operations check rights, so a change is made with the rights of the
booking's holder (their own booking) or, for internal bookings and walk-ins held by the venue, of the first
active admin — the people who could have made it (as the initial sync restores bookings). The audit entry
names the tablet; `updated_by` is that user.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Callable, Iterable

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from .. import audit
from ..auth.models import User, normalise_email
from ..booking.errors import BookingError, ConflictError, PermissionDenied, SpaceSyncing, ValidationError
from ..booking.models import Booking, Occurrence, Space, Venue
from ..booking.operations import (BookingInput, cancel_booking, create_booking, find_conflicts, input_from_booking,
                                  occurrences_between, space_closure, update_booking)
from ..booking.rules import check_venue_rules
from ..extensions import db
from ..signals import booking_changed
from ..timeutil import ensure_aware, now_utc, to_local
from .checkins import CheckIn

BOOK_NOW_MINUTES = (15, 30, 45, 60)
IDENTIFY_CHOICES = ("device", "email", "badge")
WALK_IN_TITLE = "Walk-in"
_PIN = re.compile(r"^\d{4,8}$")


class KioskError(Exception):
    """An action the tablet cannot do now; `message` is for the person at the tablet, `code` for the view."""

    def __init__(self, message: str, code: str = "kiosk_error"):
        super().__init__(message)
        self.message = message
        self.code = code


# ---------------------------------------------------------------------------------------------- time


def _now(now: datetime | None) -> datetime:
    return ensure_aware(now, "now") if now is not None else now_utc()


def floor_to_grid(venue: Venue, at: datetime) -> datetime:
    """The venue's grid boundary at or before `at`, on the venue's wall clock. Every grid (15/20/30/60)
    divides an hour, so the local minute alone says how far back it is (DST changes happen on the hour)."""
    local = to_local(at, venue.tz)
    return at - timedelta(minutes=local.minute % venue.granularity_minutes, seconds=local.second,
                          microseconds=local.microsecond)


def ceil_to_grid(venue: Venue, at: datetime) -> datetime:
    floor = floor_to_grid(venue, at)
    return floor if floor == at else floor + timedelta(minutes=venue.granularity_minutes)


def _hhmm(venue: Venue, at: datetime) -> str:
    return f"{to_local(at, venue.tz):%H:%M}"


# ---------------------------------------------------------------------------------------------- reading


def _panel_space(device) -> Space:
    if device is None or getattr(device, "revoked_at", None) is not None:
        raise KioskError("This tablet is no longer enrolled. Ask an admin to enrol it again.", "revoked")
    if device.space_id is None:
        raise KioskError("This tablet shows the lobby board; actions are made at a room's tablet.", "not_a_panel")
    space = db.session.get(Space, device.space_id)
    if space is None:
        raise KioskError("This tablet's space no longer exists.", "not_a_panel")
    return space


def current_occurrence(space: Space, now: datetime | None = None, *, related=None) -> Occurrence | None:
    now = _now(now)
    related = space_closure([space.id]) if related is None else related
    rows = [o for o in occurrences_between(related, now, now + timedelta(microseconds=1))
            if o.start_utc <= now < o.end_utc and o.booking.cancelled_at is None]
    rows.sort(key=lambda o: (o.space_id != space.id, o.start_utc, o.id))
    return rows[0] if rows else None


def book_now_options(space: Space, now: datetime | None = None, *,
                     booked: Iterable[tuple[datetime, datetime]] | None = None) -> list[int]:
    now = _now(now)
    venue = space.venue
    if not space.active:
        return []
    grid = venue.granularity_minutes
    lengths = [m for m in BOOK_NOW_MINUTES if m % grid == 0]
    if not lengths:
        return []
    start = floor_to_grid(venue, now)
    ends = {m: ceil_to_grid(venue, now + timedelta(minutes=m)) for m in lengths}
    latest = max(ends.values())
    if booked is None:
        booked = [(c.start_utc, c.end_utc) for c in find_conflicts([space.id], [(start, latest)])]
    # What `find_conflicts` reports for [start, latest): anything overlapping it.
    taken_from = min((max(s, start) for s, e in booked if s < latest and e > start), default=None)
    return [m for m in lengths
            if (taken_from is None or ends[m] <= taken_from) and not check_venue_rules(venue, [(start, ends[m])], now)]


def _why_not(space: Space, minutes: int, now: datetime) -> str:
    venue = space.venue
    start = floor_to_grid(venue, now)
    end = ceil_to_grid(venue, now + timedelta(minutes=minutes))
    if minutes % venue.granularity_minutes:
        return f"Bookings here are in steps of {venue.granularity_minutes} minutes."
    conflicts = find_conflicts([space.id], [(start, end)])
    if conflicts:
        first = min(max(c.start_utc, start) for c in conflicts)
        if first <= start:
            return f"{space.name} is booked now."
        return f"{space.name} is booked from {_hhmm(venue, first)}: choose a shorter time."
    errors = check_venue_rules(venue, [(start, end)], now)
    if errors:
        return next(iter(errors.values()))
    return f"{space.name} cannot be booked for {minutes} minutes now."


def checkin_window(venue: Venue, occurrence) -> tuple[datetime, datetime]:
    start = getattr(occurrence, "start_utc", None) or occurrence.start
    end = getattr(occurrence, "end_utc", None) or occurrence.end
    opens = start - timedelta(minutes=venue.checkin_opens_minutes)
    # A booking made after its start gets its grace from when it was made, as `kiosk.release` gives it: the
    # window must stay open for as long as the booking cannot be released.
    booked_at = getattr(getattr(occurrence, "booking", None), "created_at", None)
    deadline = max(start, booked_at) if booked_at is not None else start
    closes = min(deadline + timedelta(minutes=venue.checkin_release_minutes), end)
    return opens, closes


def is_checked_in(booking: Booking, occurrence_start: datetime) -> bool:
    return bool(db.session.scalar(select(exists().where(CheckIn.booking_id == booking.id,
                                                        CheckIn.occurrence_start == occurrence_start))))


# ---------------------------------------------------------------------------------------------- PIN


def pin_problem(pin: str | None) -> str | None:
    if not _PIN.match(pin or ""):
        return "A PIN is 4 to 8 digits."
    return None


def set_kiosk_pin(venue: Venue, pin: str | None) -> None:
    if not pin:
        venue.kiosk_pin_hash = None
        return
    problem = pin_problem(pin)
    if problem:
        raise KioskError(problem, "invalid_pin")
    venue.kiosk_pin_hash = generate_password_hash(pin)


def verify_kiosk_pin(venue: Venue, pin: str | None) -> bool:
    if not venue.kiosk_pin_hash:
        return True
    return bool(pin) and check_password_hash(venue.kiosk_pin_hash, str(pin).strip())


# ---------------------------------------------------------------------------------------------- who acts


def _venue_admin() -> User | None:
    return db.session.scalar(select(User).where(User.role == "admin", User.active.is_(True)).order_by(User.id))


def acting_user(booking: Booking) -> User:
    if booking.kind == "regular" and booking.holder is not None and booking.holder.active:
        return booking.holder
    admin = _venue_admin()
    if admin is None:
        raise KioskError("Roomsync has no active admin, so a tablet cannot change this booking.", "no_admin")
    return admin


def _person(venue: Venue, identity: str | None) -> User:
    how = venue.kiosk_identify
    text = (identity or "").strip()
    if "\x00" in text:  # nobody's email or badge has one, and PostgreSQL cannot even compare such text
        raise KioskError("That is not an email address or badge number known here.", "unknown_person")
    if how == "badge":
        if not text:
            raise KioskError("Scan or type your badge number.", "identity_required")
        user = db.session.scalar(select(User).where(User.badge_number == text))
        if user is None or not user.active:
            raise KioskError("That badge number is not known here. Ask an admin to add it to your account.",
                             "unknown_person")
        return user
    if not text:
        raise KioskError("Type your email address.", "identity_required")
    user = db.session.scalar(select(User).where(User.email == normalise_email(text)))
    if user is None or not user.active:
        raise KioskError(f"{text[:100]} is not known here. Check the spelling, or book on the website.",
                         "unknown_person")
    return user


# ---------------------------------------------------------------------------------------------- writing

_ROWS_KEY = "roomsync_kiosk_rows"


def _on_booking_changed(session, booking_id: int, change: str, scope: str = "all", **_) -> None:
    """Inside an operation's transaction: add the rows that must commit with the change (see `_with_rows`)."""
    rows = session.info.pop(_ROWS_KEY, None)
    if rows is not None:
        rows(session.get(Booking, booking_id))


booking_changed.connect(_on_booking_changed)


def _with_rows(rows: Callable[[Booking], None], operation: Callable[[], Booking]) -> Booking:
    """Run a booking operation so that `rows(booking)` runs inside its transaction, after its checks pass and
    before it commits (the operations' `booking_changed` signal): the audit entry commits with the change or
    not at all. Rows added before the operation would not do: on SQLite taking the write lock commits what
    the session holds."""
    db.session.info[_ROWS_KEY] = rows
    try:
        return operation()
    finally:
        db.session.info.pop(_ROWS_KEY, None)


def _run(operation: Callable[[], Booking], *, holder_name: str | None = None) -> Booking:
    """Run a booking operation; its domain errors become `KioskError`s worded for the tablet."""
    try:
        return operation()
    except SpaceSyncing as error:
        raise KioskError(error.message, "space_syncing") from error
    except ConflictError as error:
        raise KioskError(error.message, "conflict") from error
    except ValidationError as error:
        holder_problem = error.fields.get("holder_id", "")
        if "Microsoft 365 calendar" in holder_problem:
            who = holder_name or "The holder"
            raise KioskError(f"{who} has no active Microsoft 365 calendar, and this room is synced with Outlook, "
                             "so it cannot be booked in their name. Book it on the website for someone else, or "
                             "ask an admin.", "no_calendar") from error
        raise KioskError(error.message, "not_allowed") from error
    except PermissionDenied as error:
        raise KioskError(error.message, "not_allowed") from error
    except BookingError as error:
        raise KioskError(error.message, error.code) from error


def _audit(action: str, booking: Booking, device, detail: str, actor: User | None = None) -> None:
    audit.record(action, subject=f"booking:{booking.uid}", venue_id=booking.venue_id,
                 actor_id=actor.id if actor is not None else None,
                 detail=f"{detail} (tablet “{device.name}”).")


def book_now(device, minutes, *, identity: str | None = None, now: datetime | None = None) -> Booking:
    space = _panel_space(device)
    venue = space.venue
    now = _now(now)
    try:
        minutes = int(minutes)
    except (TypeError, ValueError):
        minutes = 0
    if minutes not in BOOK_NOW_MINUTES:
        raise KioskError("Choose 15, 30, 45 or 60 minutes.", "invalid_minutes")
    if minutes not in book_now_options(space, now):
        raise KioskError(_why_not(space, minutes, now), "unavailable")
    if venue.kiosk_identify in ("email", "badge"):
        person = _person(venue, identity)
        actor, kind, holder_id = person, "regular", None
    else:
        person = None
        actor, kind, holder_id = _venue_admin(), "internal", None
        if actor is None:
            raise KioskError("Roomsync has no active admin, so walk-in bookings cannot be made.", "no_admin")
    start = floor_to_grid(venue, now)
    end = ceil_to_grid(venue, now + timedelta(minutes=minutes))
    data = BookingInput(space_ids=[space.id], start=start, end=end, title=WALK_IN_TITLE, kind=kind,
                        holder_id=holder_id)
    who = person.display_name if person is not None else "the room's tablet"

    def rows(booking: Booking) -> None:
        if person is None:
            # Held by the venue, not by the admin whose rights made it (the operation sets the actor as holder).
            booking.holder_id, booking.holder = None, None
        db.session.flush()  # the booking's id and uid
        db.session.add(CheckIn(booking_id=booking.id, occurrence_start=booking.start_utc, space_id=space.id,
                               device_id=device.id, device_name=device.name, checked_in_at=now_utc()))
        _audit("kiosk.book_now", booking, device,
               f"Walk-in booking of {space.name} {_hhmm(venue, start)}–{_hhmm(venue, end)} for {who}", person)

    return _run(lambda: create_booking(venue, data, actor=actor, also_write=rows),
                holder_name=person.display_name if person is not None else None)


def _current(device, now: datetime) -> tuple[Space, Occurrence]:
    space = _panel_space(device)
    occurrence = current_occurrence(space, now)
    if occurrence is None:
        raise KioskError(f"There is no meeting in {space.name} now.", "nothing_current")
    return space, occurrence


def extend(device, now: datetime | None = None) -> Booking:
    now = _now(now)
    space, occurrence = _current(device, now)
    booking = occurrence.booking
    venue = booking.venue
    original, old_end = occurrence.original_start_utc, occurrence.end_utc
    new_end = old_end + timedelta(minutes=venue.granularity_minutes)
    taken = find_conflicts([s.id for s in booking.spaces], [(old_end, new_end)], [booking.id])
    if taken:
        raise KioskError(f"{space.name} is booked from {_hhmm(venue, taken[0].start_utc)}: the meeting cannot be "
                         "extended.", "conflict")
    actor = acting_user(booking)
    data = input_from_booking(booking, original if booking.rrule else None)
    data.end = new_end

    def rows(changed: Booking) -> None:
        _audit("kiosk.extend", changed, device,
               f"Extended to {_hhmm(venue, new_end)} (was until {_hhmm(venue, old_end)})")

    return _run(lambda: _with_rows(rows, lambda: update_booking(
        booking, data, actor=actor, scope="this" if booking.rrule else "all",
        occurrence_start=original if booking.rrule else None)))


def end_early(device, now: datetime | None = None) -> datetime:
    now = _now(now)
    space, occurrence = _current(device, now)
    booking = occurrence.booking
    venue = booking.venue
    original, start, old_end = occurrence.original_start_utc, occurrence.start_utc, occurrence.end_utc
    new_end = ceil_to_grid(venue, now)
    if new_end >= old_end:
        raise KioskError(f"The meeting ends at {_hhmm(venue, old_end)} anyway.", "nothing_to_end")
    actor = acting_user(booking)
    series = booking.rrule is not None
    scope = "this" if series else "all"
    occurrence_start = original if series else None

    if new_end <= start:  # ended as it began: nothing of it is left
        def rows(changed: Booking) -> None:
            _audit("kiosk.end_early", changed, device,
                   f"Ended at its start, {_hhmm(venue, start)}: cancelled (was until {_hhmm(venue, old_end)})")

        _run(lambda: _with_rows(rows, lambda: cancel_booking(booking, actor=actor, scope=scope,
                                                             occurrence_start=occurrence_start)))
        return start

    data = input_from_booking(booking, occurrence_start)
    data.end = new_end

    def rows(changed: Booking) -> None:
        _audit("kiosk.end_early", changed, device,
               f"Ended early at {_hhmm(venue, new_end)} (was until {_hhmm(venue, old_end)})")

    # Venue rules are not applied: a shorter occurrence on the grid breaks no rule the booking kept, and one
    # imported from Outlook (which skipped them) must still be endable.
    _run(lambda: _with_rows(rows, lambda: update_booking(booking, data, actor=actor, scope=scope,
                                                         occurrence_start=occurrence_start, bypass_rules=True)))
    return new_end


def check_in(device, now: datetime | None = None) -> None:
    now = _now(now)
    space = _panel_space(device)
    venue = space.venue
    ahead = timedelta(minutes=venue.checkin_opens_minutes)
    candidates = []
    for occurrence in occurrences_between(space_closure([space.id]), now, now + ahead + timedelta(microseconds=1)):
        opens, closes = checkin_window(venue, occurrence)
        if opens <= now < closes and occurrence.booking.cancelled_at is None:
            candidates.append(occurrence)
    if not candidates:
        raise KioskError(f"Check-in opens {venue.checkin_opens_minutes} minutes before a meeting and closes "
                         f"{venue.checkin_release_minutes} minutes after its start.", "not_in_window")
    pending = [o for o in candidates if not is_checked_in(o.booking, o.original_start_utc)]
    if not pending:
        return  # checked in already (a second tap, or another tablet)
    pending.sort(key=lambda o: (o.start_utc, o.space_id != space.id, o.id))
    occurrence = pending[0]
    booking = occurrence.booking
    db.session.add(CheckIn(booking_id=booking.id, occurrence_start=occurrence.original_start_utc,
                           space_id=space.id, device_id=device.id, device_name=device.name, checked_in_at=now_utc()))
    _audit("kiosk.check_in", booking, device,
           f"Checked in to {_hhmm(venue, occurrence.start_utc)}–{_hhmm(venue, occurrence.end_utc)}")
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another tablet checked in at the same moment: that is the same result
