"""Admin operations: the only code that changes venue settings, spaces, users and custom fields.

Public API:
- `VenueSettings`, `save_venue(venue_or_none, settings)` → Venue. Refuses a time zone or grid that upcoming
  bookings would not fit (`off_grid_bookings(venue, zone_name, granularity)` counts them). The tablets'
  settings (`KIOSK_LIMITS`, who holds a walk-in, check-in, the PIN — set or cleared, stored hashed) too.
- `SpaceInput`, `create_space(venue, data)`, `update_space(space, data)`, `delete_space(space)`,
  `set_space_active(space, active)`, `normalise_tags(text)`. Dependencies never form a cycle, and a new
  dependency is refused when upcoming bookings would then double-book a space.
- Space photos, through `SpaceInput` (`photo`: a new file's bytes; `remove_photo`; `use_room_photo`): a photo is
  judged by its bytes (`images.inspect` with `booking.models.PHOTO_TYPES` and the size limits; key `photo`) and
  stored in `SpacePhoto` with the space's other changes, in one commit. Removing records "no photo" (even the
  Microsoft 365 room's is then not shown); `use_room_photo` (a space paired with a Microsoft 365 room only) drops
  the admin's choice and queues `integration.jobs.refresh_room_photo`. `space_photo(space)` → the `SpacePhoto`
  row or None (its bytes not loaded); `room_email_of(space)` → the paired room's address or None.
- `UserInput`, `create_user(data)`, `update_user(user, data, actor)`, `set_user_active(user, active, actor)`.
  A badge number (for the tablets) belongs to one user at most.
  Nobody can deactivate or demote themselves, and the last active admin always remains.
- `CustomFieldInput`, `create_custom_field(venue, data)`, `update_custom_field(field, data)`,
  `delete_custom_field(field)`, `parse_choices(text)`.
- `MIN_PASSWORD_LENGTH`.

Domain failures raise `booking.errors.ValidationError(fields)` whose keys are the names of the admin forms'
fields (a message for the whole form uses the key `form`). Operations commit on success and roll back on
failure; they never touch `request` or `flash`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import images
from ..auth.models import ROLES, User, normalise_email
from ..booking.errors import ValidationError
from ..booking.locking import lock_spaces
from ..booking.models import (
    GRANULARITIES,
    SPACE_KINDS,
    WEEKDAYS,
    Booking,
    CustomField,
    Occurrence,
    PHOTO_MAX_BYTES,
    PHOTO_MAX_PIXELS,
    PHOTO_TYPES,
    Space,
    SpacePhoto,
    Venue,
    space_dependencies,
)
from ..booking.operations import find_conflicts, space_closure
from ..booking.rules import HARD_MAX_DURATION, on_grid
from ..extensions import db
from ..timeutil import is_valid_zone, now_utc, to_local, zone

MIN_PASSWORD_LENGTH = 8
MAX_WINDOW_DAYS = 1080  # the cap the provider sync applies to series, so both sides agree
DAY_MINUTES = 24 * 60
FIELD_KINDS = ("text", "choice")
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FIELD_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _refuse_if(errors: dict[str, str]) -> None:
    if errors:
        db.session.rollback()
        raise ValidationError(errors)


# ---------------------------------------------------------------------------------------------- venue


@dataclass
class VenueSettings:
    name: str
    timezone: str
    granularity_minutes: int
    booking_window_days: int
    max_duration_minutes: int
    # weekday key ("mon" … "sun") → ("HH:MM", "HH:MM") or None when closed; closing may be "24:00".
    opening_hours: dict[str, tuple[str, str] | None]
    allow_overnight: bool = False
    admins_see_private: bool = False
    has_pricing_rules: bool = False
    online_payments_enabled: bool = False
    # Tablets (webapp/kiosk). None keeps what the venue has (the model's defaults for a new venue).
    kiosk_soon_minutes: int | None = None
    kiosk_poll_seconds: int | None = None
    kiosk_identify: str | None = None
    checkin_required: bool | None = None
    checkin_opens_minutes: int | None = None
    checkin_release_minutes: int | None = None
    kiosk_pin: str | None = None  # a new PIN; None or "" keeps the current one
    kiosk_pin_clear: bool = False  # the tablets' actions need no PIN any more


# (field, lowest, highest, unit) of the tablets' numeric settings.
KIOSK_LIMITS = (
    ("kiosk_soon_minutes", 1, 240, "minutes"),
    ("kiosk_poll_seconds", 2, 300, "seconds"),
    ("checkin_opens_minutes", 0, 120, "minutes"),
    ("checkin_release_minutes", 1, 240, "minutes"),
)


def _validate_kiosk(settings: VenueSettings, errors: dict[str, str]) -> None:
    from ..kiosk.actions import IDENTIFY_CHOICES, pin_problem

    for name, lowest, highest, unit in KIOSK_LIMITS:
        value = getattr(settings, name)
        if value is not None and not lowest <= value <= highest:
            errors[name] = f"Between {lowest} and {highest} {unit}."
    if settings.kiosk_identify is not None and settings.kiosk_identify not in IDENTIFY_CHOICES:
        errors["kiosk_identify"] = "Choose the tablet, email or badge number."
    if settings.kiosk_pin and not settings.kiosk_pin_clear:
        problem = pin_problem(settings.kiosk_pin)
        if problem:
            errors["kiosk_pin"] = problem


def _apply_kiosk(venue: Venue, settings: VenueSettings) -> None:
    from ..kiosk.actions import set_kiosk_pin

    for name, *_ in KIOSK_LIMITS:
        if getattr(settings, name) is not None:
            setattr(venue, name, getattr(settings, name))
    if settings.kiosk_identify is not None:
        venue.kiosk_identify = settings.kiosk_identify
    if settings.checkin_required is not None:
        venue.checkin_required = bool(settings.checkin_required)
    if settings.kiosk_pin_clear:
        set_kiosk_pin(venue, None)
    elif settings.kiosk_pin:
        set_kiosk_pin(venue, settings.kiosk_pin)


def _minutes_of(text: str) -> int | None:
    """ "HH:MM" → minutes after midnight (24:00 → 1440); None when it is not a time of day."""
    match = _HHMM.match((text or "").strip())
    if not match:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _validate_hours(hours: dict, granularity: int | None, errors: dict[str, str]) -> dict:
    stored: dict[str, list[str] | None] = {}
    for day in WEEKDAYS:
        entry = hours.get(day)
        if not entry:
            stored[day] = None
            continue
        opens, closes = (_minutes_of(text) for text in entry)
        if opens is None or opens == DAY_MINUTES:
            errors[f"{day}_opens"] = "Enter a time such as 08:00."
        if closes is None:
            errors[f"{day}_closes"] = "Enter a time such as 18:30 (24:00 for midnight)."
        if opens is None or closes is None or f"{day}_opens" in errors:
            continue
        if closes <= opens:
            errors[f"{day}_closes"] = "Closing must be after opening."
        elif granularity and (opens % granularity or closes % granularity):
            errors[f"{day}_opens"] = f"Opening hours must be on the {granularity}-minute grid."
        stored[day] = [_hhmm(opens), _hhmm(closes)]
    return stored


def off_grid_bookings(venue: Venue, zone_name: str, granularity: int) -> list[tuple[Booking, Occurrence]]:
    """Upcoming occurrences (one per booking, the first) that do not start and end on `granularity` in the
    zone `zone_name`."""
    tz = zone(zone_name)
    now = now_utc()
    rows = db.session.execute(
        select(Booking, Occurrence)
        .join(Occurrence, Occurrence.booking_id == Booking.id)
        .where(Booking.venue_id == venue.id, Booking.cancelled_at.is_(None), Occurrence.end_utc > now)
        .order_by(Occurrence.start_utc, Occurrence.id)
    ).all()
    found: dict[int, tuple[Booking, Occurrence]] = {}
    for booking, occurrence in rows:
        if booking.id in found:
            continue
        if not (on_grid(to_local(occurrence.start_utc, tz), granularity) and on_grid(to_local(occurrence.end_utc, tz), granularity)):
            found[booking.id] = (booking, occurrence)
    return list(found.values())


def save_venue(venue: Venue | None, settings: VenueSettings) -> Venue:
    """Create the venue (when `venue` is None) or change its settings."""
    errors: dict[str, str] = {}
    name = (settings.name or "").strip()
    if not name:
        errors["name"] = "Give the venue a name."
    elif len(name) > 120:
        errors["name"] = "At most 120 characters."
    zone_name = (settings.timezone or "").strip()
    if not is_valid_zone(zone_name):
        errors["timezone"] = "Choose a time zone such as Europe/London."
    granularity = settings.granularity_minutes
    if granularity not in GRANULARITIES:
        errors["granularity_minutes"] = f"Choose one of {', '.join(map(str, GRANULARITIES))} minutes."
        granularity = None
    if not 1 <= settings.booking_window_days <= MAX_WINDOW_DAYS:
        errors["booking_window_days"] = f"Between 1 and {MAX_WINDOW_DAYS} days."
    longest = int(HARD_MAX_DURATION.total_seconds() // 60) if settings.allow_overnight else DAY_MINUTES
    maximum = settings.max_duration_minutes
    if maximum < (granularity or 1) or maximum > longest:
        errors["max_duration_minutes"] = (
            f"Between {granularity or 1} and {longest} minutes"
            + ("." if settings.allow_overnight else " (allow overnight bookings for longer ones).")
        )
    elif granularity and maximum % granularity:
        errors["max_duration_minutes"] = f"A whole number of {granularity}-minute steps."
    hours = _validate_hours(settings.opening_hours, granularity, errors)
    _validate_kiosk(settings, errors)

    grid_changed = venue is None or (zone_name, granularity) != (venue.timezone, venue.granularity_minutes)
    if venue is not None and grid_changed and "timezone" not in errors and granularity:
        # Every space of the venue: no booking may slip in between this check and the commit.
        lock_spaces([s.id for s in venue.spaces])
        misfits = off_grid_bookings(venue, zone_name, granularity)
        if misfits:
            booking, occurrence = misfits[0]
            first = to_local(occurrence.start_utc, zone(zone_name))
            key = "granularity_minutes" if granularity != venue.granularity_minutes else "timezone"
            errors[key] = (
                f"{len(misfits)} upcoming booking{'s do' if len(misfits) > 1 else ' does'} not fit a "
                f"{granularity}-minute grid in {zone_name} (the first on {occurrence.space.name}, "
                f"{first:%a %d %b %Y %H:%M}). Move or cancel {'them' if len(misfits) > 1 else 'it'} first."
            )
    _refuse_if(errors)

    if venue is None:
        venue = Venue()
        db.session.add(venue)
    venue.name = name
    venue.timezone = zone_name
    venue.granularity_minutes = granularity
    venue.booking_window_days = settings.booking_window_days
    venue.max_duration_minutes = maximum
    venue.opening_hours = hours
    venue.allow_overnight = bool(settings.allow_overnight)
    venue.admins_see_private = bool(settings.admins_see_private)
    venue.has_pricing_rules = bool(settings.has_pricing_rules)
    venue.online_payments_enabled = bool(settings.online_payments_enabled)
    _apply_kiosk(venue, settings)
    db.session.commit()
    return venue


# ---------------------------------------------------------------------------------------------- spaces


@dataclass
class SpaceInput:
    name: str
    kind: str = "room"
    capacity: int = 1
    tags: list[str] = field(default_factory=list)
    description: str = ""
    position: int = 0
    active: bool = True
    depends_on_ids: list[int] = field(default_factory=list)
    photo: bytes | None = None  # a new photo, as uploaded (None: keep what there is)
    remove_photo: bool = False
    use_room_photo: bool = False


def normalise_tags(text: str) -> list[str]:
    """ "Screen,  whiteboard ,screen" → ["screen", "whiteboard"]: lower case, single spaces, no repeats."""
    tags = (" ".join(part.split()).lower() for part in (text or "").split(","))
    return list(dict.fromkeys(tag for tag in tags if tag))


def _dependency_path(edges: dict[int, set[int]], start: int, goal: int) -> list[int] | None:
    """A path start → … → goal following `edges` (space → what it depends on), or None."""
    previous: dict[int, int | None] = {start: None}
    stack = [start]
    while stack:
        node = stack.pop()
        if node == goal:
            path = [node]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])
            return path[::-1]
        for nxt in edges[node]:
            if nxt not in previous:
                previous[nxt] = node
                stack.append(nxt)
    return None


def _check_dependencies(space: Space | None, venue: Venue, ids: list[int], errors: dict[str, str]) -> list[Space]:
    """The spaces `space` should depend on, refusing unknown ones, itself and cycles."""
    if not ids:
        return []
    found = {s.id: s for s in db.session.scalars(select(Space).where(Space.id.in_(ids), Space.venue_id == venue.id))}
    if any(i not in found for i in ids):
        errors["depends_on"] = "Choose spaces of this venue."
        return []
    if space is None or space.id is None:
        return [found[i] for i in ids]  # a new space has no dependants yet: no cycle is possible
    if space.id in found:
        errors["depends_on"] = f"{space.name} cannot depend on itself."
        return []
    edges: dict[int, set[int]] = defaultdict(set)
    for source, target in db.session.execute(select(space_dependencies.c.space_id, space_dependencies.c.depends_on_id)):
        if source != space.id:  # this space's own edges are being replaced
            edges[source].add(target)
    names = dict(db.session.execute(select(Space.id, Space.name).where(Space.venue_id == venue.id)).all())
    for dep_id in ids:
        path = _dependency_path(edges, dep_id, space.id)
        if path:
            chain = " → ".join(names[i] for i in [space.id, *path])
            errors["depends_on"] = (
                f"{space.name} cannot depend on {found[dep_id].name}, which already depends on {space.name}: "
                f"that would make a cycle ({chain})."
            )
            return []
    return [found[i] for i in ids]


def _double_bookings_message(space_ids: set[int]) -> str | None:
    """After a dependency change: the first pair of upcoming bookings that now block each other."""
    now = now_utc()
    for space_id in sorted(space_ids):
        rows = db.session.execute(
            select(Occurrence.booking_id, Occurrence.start_utc, Occurrence.end_utc)
            .where(Occurrence.space_id == space_id, Occurrence.end_utc > now)
            .order_by(Occurrence.start_utc)
        ).all()
        if not rows:
            continue
        conflicts = find_conflicts([space_id], [(r.start_utc, r.end_utc) for r in rows], {r.booking_id for r in rows})
        if conflicts:
            first = conflicts[0]
            space = db.session.get(Space, space_id)
            when = to_local(first.start_utc, space.venue.tz)
            return (
                f"{space.name} and {first.space_name} are both booked on {when:%a %d %b %Y %H:%M}; with this "
                f"dependency that would be a double booking. Move or cancel one of them first."
            )
    return None


def _apply_space(space: Space | None, venue: Venue, data: SpaceInput) -> Space:
    errors: dict[str, str] = {}
    name = " ".join((data.name or "").split())
    if not name:
        errors["name"] = "Give the space a name."
    elif len(name) > 120:
        errors["name"] = "At most 120 characters."
    else:
        same_name = select(Space.id).where(Space.venue_id == venue.id, func.lower(Space.name) == name.lower())
        if space is not None and space.id is not None:
            same_name = same_name.where(Space.id != space.id)
        if db.session.scalar(same_name.limit(1)) is not None:
            errors["name"] = f"There is already a space called {name}."
    if data.kind not in SPACE_KINDS:
        errors["kind"] = "Choose room or desk."
    if not 1 <= data.capacity <= 10_000:
        errors["capacity"] = "At least 1 (and at most 10,000)."
    if any(len(tag) > 40 for tag in data.tags):
        errors["tags"] = "Each tag may have at most 40 characters."
    if len(data.description or "") > 5000:
        errors["description"] = "At most 5,000 characters."
    ids = list(dict.fromkeys(data.depends_on_ids))
    depends_on = _check_dependencies(space, venue, ids, errors)
    image = _check_photo(space, data, errors)
    _refuse_if(errors)

    # A new dependency of an existing space can turn upcoming bookings into double bookings: lock every
    # space whose conflicts could change (before writing: on SQLite taking the lock commits the session).
    # A photo change takes the space's lock too: the job storing the Microsoft 365 room's photo takes it, so
    # it never overwrites an admin's choice made while it was fetching.
    new_dependencies = space is not None and bool(set(ids) - {s.id for s in space.depends_on})
    changes_photo = image is not None or data.remove_photo or data.use_room_photo
    locked = set(space_closure([space.id, *ids])) if new_dependencies else set()
    if space is not None and changes_photo:
        locked.add(space.id)
    if locked:
        lock_spaces(locked)
    if space is None:
        space = Space(venue=venue)
        db.session.add(space)
    space.name = name
    space.kind = data.kind
    space.capacity = data.capacity
    space.tags = list(data.tags)
    space.description = (data.description or "").strip()
    space.position = data.position
    space.active = bool(data.active)
    space.depends_on = depends_on
    if new_dependencies:
        db.session.flush()
        message = _double_bookings_message(space_closure([space.id]))
        _refuse_if({"depends_on": message} if message else {})
    fetch_room_photo = _apply_photo(space, data, image) if changes_photo else False
    db.session.commit()
    if fetch_room_photo:
        from ..integration.jobs import enqueue, refresh_room_photo

        enqueue(refresh_room_photo, space.id)
    return space


def room_email_of(space: Space | None) -> str | None:
    if space is None or space.id is None:
        return None
    from ..sync.models import Pair  # the sync builds on the admin area, not the other way round

    return db.session.scalar(select(Pair.room_email).where(Pair.space_id == space.id))


def space_photo(space: Space | None) -> SpacePhoto | None:
    return db.session.get(SpacePhoto, space.id) if space is not None and space.id is not None else None


def _check_photo(space: Space | None, data: SpaceInput, errors: dict[str, str]) -> images.Image | None:
    """The new photo's type and size, read from its bytes; problems go to `errors` under "photo"."""
    if data.photo is not None and (data.remove_photo or data.use_room_photo):
        errors["photo"] = "Choose a new photo, or remove the photo, not both."
        return None
    if data.remove_photo and data.use_room_photo:
        errors["photo"] = "Remove the photo, or use the Microsoft 365 room's photo, not both."
        return None
    if data.use_room_photo and room_email_of(space) is None:
        errors["photo"] = "This space is not paired with a Microsoft 365 room, so it has no room photo to use."
        return None
    if data.photo is None:
        return None
    try:
        return images.inspect(data.photo, allowed=PHOTO_TYPES, max_bytes=PHOTO_MAX_BYTES, max_pixels=PHOTO_MAX_PIXELS)
    except images.ImageRejected as rejected:
        errors["photo"] = rejected.message
        return None


def _apply_photo(space: Space, data: SpaceInput, image: images.Image | None) -> bool:
    """Store the photo change (under the space's lock); True when the room's photo should be fetched now."""
    db.session.flush()  # a new space's id
    photo = db.session.get(SpacePhoto, space.id)
    if data.use_room_photo:
        if photo is not None and photo.source == "microsoft365":
            return False  # shown already; the periodic refresh keeps it current
        if photo is not None:
            db.session.delete(photo)
        return True
    if photo is None:
        photo = SpacePhoto(space_id=space.id)
        db.session.add(photo)
    if image is not None:
        photo.source, photo.content_type, photo.data = "upload", image.content_type, data.photo
        photo.etag, photo.width, photo.height = images.digest(data.photo), image.width, image.height
    else:
        photo.source, photo.content_type, photo.data = "removed", None, None
        photo.etag, photo.width, photo.height = None, None, None
    photo.updated_at = now_utc()
    return False


def create_space(venue: Venue, data: SpaceInput) -> Space:
    return _apply_space(None, venue, data)


def update_space(space: Space, data: SpaceInput) -> Space:
    return _apply_space(space, space.venue, data)


def set_space_active(space: Space, active: bool) -> Space:
    """Inactive spaces keep their bookings but take no new ones."""
    space.active = bool(active)
    db.session.commit()
    return space


def upcoming_booking_count(space: Space) -> int:
    return db.session.scalar(
        select(func.count(func.distinct(Occurrence.booking_id))).where(
            Occurrence.space_id == space.id, Occurrence.end_utc > now_utc()
        )
    )


def delete_space(space: Space) -> None:
    """Remove a space and its past bookings' links to it; refused while upcoming bookings use it."""
    lock_spaces([space.id])
    count = upcoming_booking_count(space)
    if count:
        db.session.rollback()
        raise ValidationError(
            {
                "form": f"{space.name} has {count} upcoming booking{'s' if count > 1 else ''}: cancel "
                f"{'them' if count > 1 else 'it'} first, or deactivate the space so it takes no new bookings."
            }
        )
    db.session.delete(space)
    db.session.commit()


# ---------------------------------------------------------------------------------------------- users


@dataclass
class UserInput:
    email: str
    first_name: str = ""
    last_name: str = ""
    role: str = "member"
    active: bool = True
    password: str = ""  # required on create; on update an empty one keeps the current password
    badge_number: str = ""  # for the tablets; "" means none


def _other_active_admins(user: User) -> int:
    return db.session.scalar(
        select(func.count(User.id)).where(User.role == "admin", User.active.is_(True), User.id != user.id)
    )


def _guard_admin_loss(user: User, *, role: str, active: bool, actor: User | None, errors: dict[str, str]) -> None:
    """Refuse changes that would lock the actor out or leave the venue without an active admin."""
    loses_admin = user.is_admin and user.active and (role != "admin" or not active)
    if not loses_admin:
        return
    field_name = "role" if role != "admin" else "active"
    if actor is not None and actor.id == user.id:
        errors[field_name] = "You cannot deactivate or demote yourself; ask another admin."
    elif _other_active_admins(user) == 0:
        errors[field_name] = f"{user.display_name} is the last active admin."


def _validate_user(user: User | None, data: UserInput, errors: dict[str, str]) -> str:
    email = normalise_email(data.email)
    if not _EMAIL.match(email) or len(email) > 254:
        errors["email"] = "Enter an email address."
    else:
        taken = select(User.id).where(User.email == email)
        if user is not None:
            taken = taken.where(User.id != user.id)
        if db.session.scalar(taken.limit(1)) is not None:
            errors["email"] = f"{email} already has an account."
    for key in ("first_name", "last_name"):
        if len((getattr(data, key) or "").strip()) > 100:
            errors[key] = "At most 100 characters."
    if data.role not in ROLES:
        errors["role"] = "Choose admin or member."
    if (user is None or data.password) and len(data.password or "") < MIN_PASSWORD_LENGTH:
        errors["password"] = f"At least {MIN_PASSWORD_LENGTH} characters."
    badge = _badge(data)
    if badge is not None:
        if len(badge) > 64:
            errors["badge_number"] = "At most 64 characters."
        else:
            taken = select(User.email).where(User.badge_number == badge)
            if user is not None:
                taken = taken.where(User.id != user.id)
            holder = db.session.scalar(taken.limit(1))
            if holder is not None:
                errors["badge_number"] = f"Badge number {badge} already belongs to {holder}."
    return email


def _badge(data: UserInput) -> str | None:
    return (data.badge_number or "").strip() or None


def _commit_user(badge: str | None) -> None:
    """Commit; a badge number taken by a concurrent save is a field error, not a 500."""
    try:
        db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        if badge is not None and db.session.scalar(select(User.id).where(User.badge_number == badge)) is not None:
            raise ValidationError({"badge_number": f"Badge number {badge} already belongs to someone else."}) from error
        raise


def create_user(data: UserInput) -> User:
    errors: dict[str, str] = {}
    email = _validate_user(None, data, errors)
    _refuse_if(errors)
    user = User(
        email=email,
        first_name=data.first_name.strip(),
        last_name=data.last_name.strip(),
        role=data.role,
        active=bool(data.active),
        badge_number=_badge(data),
    )
    user.set_password(data.password)
    db.session.add(user)
    _commit_user(user.badge_number)
    return user


def update_user(user: User, data: UserInput, actor: User | None) -> User:
    errors: dict[str, str] = {}
    email = _validate_user(user, data, errors)
    _guard_admin_loss(user, role=data.role, active=bool(data.active), actor=actor, errors=errors)
    _refuse_if(errors)
    user.email = email
    user.first_name = data.first_name.strip()
    user.last_name = data.last_name.strip()
    user.role = data.role
    user.active = bool(data.active)
    user.badge_number = _badge(data)
    if data.password:
        user.set_password(data.password)
    _commit_user(user.badge_number)
    return user


def set_user_active(user: User, active: bool, actor: User | None) -> User:
    errors: dict[str, str] = {}
    _guard_admin_loss(user, role=user.role, active=bool(active), actor=actor, errors=errors)
    _refuse_if(errors)
    user.active = bool(active)
    db.session.commit()
    return user


# ---------------------------------------------------------------------------------------------- custom fields


@dataclass
class CustomFieldInput:
    key: str
    label: str
    kind: str = "text"
    choices: list[str] = field(default_factory=list)
    required: bool = False
    position: int = 0


def parse_choices(text: str) -> list[str]:
    """One choice a line; blank lines and repeats dropped."""
    return list(dict.fromkeys(line.strip() for line in (text or "").splitlines() if line.strip()))


def _apply_custom_field(custom_field: CustomField | None, venue: Venue, data: CustomFieldInput) -> CustomField:
    errors: dict[str, str] = {}
    if custom_field is None:
        # The key is what bookings store their values under, so it is fixed once the field exists.
        key = (data.key or "").strip().lower()
        if not _FIELD_KEY.match(key):
            errors["key"] = "Lower-case letters, digits and _ only, starting with a letter (at most 40)."
        elif db.session.scalar(select(CustomField.id).where(CustomField.venue_id == venue.id, CustomField.key == key)):
            errors["key"] = f"There is already a field with the key {key}."
    label = (data.label or "").strip()
    if not label:
        errors["label"] = "Give the field a label."
    elif len(label) > 120:
        errors["label"] = "At most 120 characters."
    if data.kind not in FIELD_KINDS:
        errors["kind"] = "Choose text or choice."
    choices = list(dict.fromkeys(c.strip() for c in data.choices if c.strip())) if data.kind == "choice" else []
    if data.kind == "choice" and not choices:
        errors["choices"] = "A choice field needs at least one choice."
    elif any(len(c) > 100 for c in choices):
        errors["choices"] = "Each choice may have at most 100 characters."
    _refuse_if(errors)
    if custom_field is None:
        custom_field = CustomField(venue=venue, key=key)
        db.session.add(custom_field)
    custom_field.label = label
    custom_field.kind = data.kind
    custom_field.choices = choices
    custom_field.required = bool(data.required)
    custom_field.position = data.position
    db.session.commit()
    return custom_field


def create_custom_field(venue: Venue, data: CustomFieldInput) -> CustomField:
    return _apply_custom_field(None, venue, data)


def update_custom_field(custom_field: CustomField, data: CustomFieldInput) -> CustomField:
    return _apply_custom_field(custom_field, custom_field.venue, data)


def delete_custom_field(custom_field: CustomField) -> None:
    db.session.delete(custom_field)
    db.session.commit()
