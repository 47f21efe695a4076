"""Integration operations: the only code that writes integration settings, provider identities and photos.

Public API:
- `SettingsInput`, `settings_for(venue)` → IntegrationSettings | None, `active_settings()` → the enabled
  settings of the installation's venue or None, `default_public_base_url()` (`PUBLIC_BASE_URL`),
  `public_base_url(settings_or_input)`, `normalise_base_url(text)` (raises ValueError with the message).
- `save_settings(venue, data, *, validate=run_validation)` → `SaveOutcome(saved, prerequisites, results,
  settings)`. Refuses bad fields with `ValidationError` (keys: the form's field names). Saves (and enables
  the integration) only when every prerequisite holds and every live validation passes; otherwise nothing is
  written. Commits on success.
- Provider users: `user_for_provider_identity(email, *, provider_user_id=None, display_name=None)` → User:
  the Roomsync user of a provider user who appears as an organizer, created from the directory the first
  time ("Unknown" names when the directory may not be read), its `ProviderIdentity` kept and refreshed when
  older than `IDENTITY_MAX_AGE`. Flushes; the caller (a sync job) commits.
  `refresh_identity(user)` → ProviderIdentity (reads the directory; flushes).
- Active calendar: `has_active_calendar(user)` → bool (mailbox present and account enabled), reusing a cached
  answer until it expires (`CALENDAR_TTL`; a provider failure is cached `CALENDAR_FAILURE_TTL` and answers
  the last known value, else False); `cached_active_calendar(user)` → bool | None without calling the
  provider (for requests: provider calls belong in jobs).
- Photos: `sync_photo(user)` → bool (has a photo; commits), `photo_for(user_id)` → UserPhoto with bytes | None,
  `photos_enabled()`. Which people have a photo to show, and their initials: `photos`.
- Rooms' photos: `sync_room_photo(space_id, room_email)` → bool (the space now shows the room's photo; commits):
  the room mailbox's photo into `booking.models.SpacePhoto`, judged like an upload (`images.inspect`); a room
  without one (or with one Roomsync would refuse) is recorded as having none. Never over an admin's choice (an
  uploaded or removed photo): it is re-read under the space's lock, which the admin's form takes too.
- Attendee lookup: `search_people(user, query)` → `PeopleResults(query, items: [Suggestion], note)`: active
  Roomsync users, then (integration on) the holder's contacts and relevant people (read once per
  `LISTS_TTL`, filtered locally), then the directory when allowed. Answers are cached `RESULTS_TTL` per user
  and query; provider calls are limited to `RATE_LIMIT_CALLS` per `RATE_WINDOW` seconds per user — over it
  the answer has no provider part, a note says so, and it is not cached. These calls run in the request (a
  typeahead cannot wait for a job) through `provider`'s short-deadline client.

Operations never touch `request` or `flash`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import func, or_, select

from .. import images
from ..auth.models import User, normalise_email
from ..booking.errors import ValidationError
from ..booking.locking import lock_spaces
from ..booking.models import PHOTO_MAX_BYTES, PHOTO_MAX_PIXELS, PHOTO_TYPES, Space, SpacePhoto, Venue
from ..extensions import db
from ..graph.errors import GraphError, InvalidUser, MailboxNotEnabled, NotFound
from ..timeutil import now_utc
from . import cache, photos, provider
from .models import PROVIDERS, SYNC_TYPES, IntegrationSettings, ProviderIdentity, UserPhoto
from .prerequisites import Prerequisite, all_met, check_venue
from .validation import CheckResult, ValidationInput, all_passed, run_validation

log = logging.getLogger(__name__)

UNKNOWN_NAME = "Unknown"
IDENTITY_MAX_AGE = timedelta(days=1)
CALENDAR_TTL = timedelta(hours=1)
CALENDAR_FAILURE_TTL = timedelta(minutes=2)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# ---------------------------------------------------------------------------------------------- settings


@dataclass
class SettingsInput:
    butler_email: str
    provider: str = "microsoft365"
    sync_type: str = "two_way"
    allow_directory_search: bool = False
    sync_photos: bool = False
    public_base_url: str = ""  # empty: PUBLIC_BASE_URL


@dataclass
class SaveOutcome:
    saved: bool
    prerequisites: list[Prerequisite]
    results: list[CheckResult] = field(default_factory=list)
    settings: IntegrationSettings | None = None


def settings_for(venue: Venue) -> IntegrationSettings | None:
    return db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.venue_id == venue.id))


def active_settings() -> IntegrationSettings | None:
    venue = db.session.scalar(select(Venue).order_by(Venue.id).limit(1))
    settings = settings_for(venue) if venue is not None else None
    return settings if settings is not None and settings.enabled else None


def default_public_base_url() -> str:
    return (current_app.config.get("PUBLIC_BASE_URL") or "").strip()


def normalise_base_url(text: str) -> str:
    """An absolute http(s) URL without query or fragment, no trailing slash; ValueError says what is wrong."""
    text = (text or "").strip()
    if not text:
        raise ValueError("Enter the public base URL (or set PUBLIC_BASE_URL).")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("Enter an absolute http:// or https:// URL, e.g. https://rooms.example.org.")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("The base URL cannot carry a query, a fragment or credentials.")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("The port of the base URL is not a number.") from None
    return text.rstrip("/")


def public_base_url(settings) -> str:
    return (settings.public_base_url or "").strip() or default_public_base_url()


def _check_fields(data: SettingsInput) -> dict[str, str]:
    errors = {}
    if data.provider not in PROVIDERS:
        errors["provider"] = "Choose Microsoft 365."
    if data.sync_type not in SYNC_TYPES:
        errors["sync_type"] = "Choose two-way sync."
    data.butler_email = normalise_email(data.butler_email)
    if not _EMAIL.match(data.butler_email) or len(data.butler_email) > 254:
        errors["butler_email"] = "Enter the butler's email address."
    try:
        base = normalise_base_url(data.public_base_url or default_public_base_url())
        data.public_base_url = base if (data.public_base_url or "").strip() else ""
    except ValueError as error:
        errors["public_base_url"] = str(error)
    return errors


def save_settings(venue: Venue, data: SettingsInput, *, validate=run_validation) -> SaveOutcome:
    errors = _check_fields(data)
    if errors:
        raise ValidationError(errors)
    prerequisites = check_venue(venue)
    if not all_met(prerequisites):
        return SaveOutcome(False, prerequisites)
    base = normalise_base_url(data.public_base_url or default_public_base_url())
    from .views import LIFECYCLE_PATH, WEBHOOK_PATH  # the paths the webhook blueprint really serves

    db.session.commit()  # the checks call Microsoft 365 for seconds: no transaction stays open meanwhile
    results = validate(ValidationInput(data.butler_email, base, WEBHOOK_PATH, LIFECYCLE_PATH))
    if not all_passed(results):
        db.session.rollback()
        return SaveOutcome(False, prerequisites, results)
    settings = settings_for(venue) or IntegrationSettings(venue_id=venue.id)
    directory_turned_on = data.allow_directory_search and not settings.allow_directory_search
    settings.provider, settings.sync_type = data.provider, data.sync_type
    settings.butler_email = data.butler_email
    settings.allow_directory_search, settings.sync_photos = data.allow_directory_search, data.sync_photos
    settings.public_base_url = data.public_base_url or None
    settings.enabled = True
    settings.last_validated_at = now_utc()
    settings.last_validation = [r.to_json() for r in results]
    db.session.add(settings)
    db.session.commit()
    if directory_turned_on or data.sync_photos:
        # Names and photos follow the new settings: refresh every linked user in the background.
        from .jobs import enqueue, refresh_all_identities

        enqueue(refresh_all_identities)
    return SaveOutcome(True, prerequisites, results, settings)


# ---------------------------------------------------------------------------------------------- users


def _directory_allowed() -> bool:
    settings = active_settings()
    return bool(settings and settings.allow_directory_search)


def _identity_of(user: User) -> ProviderIdentity | None:
    return db.session.scalar(select(ProviderIdentity).where(ProviderIdentity.user_id == user.id))


def _apply_directory(identity: ProviderIdentity, user: User, entry: provider.DirectoryUser, names: bool) -> None:
    previous = (identity.given_name or "", identity.surname or "")
    identity.provider_user_id = entry.id
    identity.upn, identity.display_name = entry.upn, entry.display_name
    identity.given_name, identity.surname = entry.given_name, entry.surname
    identity.has_mailbox, identity.account_enabled = entry.has_mailbox, entry.account_enabled
    identity.checked_at = now_utc()
    identity.calendar_active = bool(entry.has_mailbox) and entry.account_enabled is not False
    identity.calendar_expires_at = identity.checked_at + CALENDAR_TTL
    identity.calendar_error = None
    if names:
        current = (user.first_name or "", user.last_name or "")
        # Names follow the directory unless someone changed them in Roomsync since the last reading.
        if current in (previous, (UNKNOWN_NAME, UNKNOWN_NAME), ("", "")):
            first, last = _names_from(entry)
            user.first_name, user.last_name = first[:100], last[:100]


def _names_from(entry: provider.DirectoryUser) -> tuple[str, str]:
    if entry.given_name or entry.surname:
        return entry.given_name or "", entry.surname or ""
    display = (entry.display_name or "").strip()
    if " " in display:
        first, last = display.split(" ", 1)
        return first, last
    return display or UNKNOWN_NAME, UNKNOWN_NAME if not display else ""


def user_for_provider_identity(email: str, *, provider_user_id: str | None = None,
                               display_name: str | None = None) -> User:
    email = normalise_email(email)
    identity = None
    if provider_user_id:
        identity = db.session.scalar(select(ProviderIdentity).where(
            ProviderIdentity.provider == "microsoft365", ProviderIdentity.provider_user_id == provider_user_id))
    user = identity.user if identity is not None else db.session.scalar(
        select(User).where(func.lower(User.email) == email))
    directory = _directory_allowed()
    if user is None:
        user = User(email=email, first_name=UNKNOWN_NAME, last_name=UNKNOWN_NAME, role="member", active=True)
        db.session.add(user)
        db.session.flush()
    if identity is None:
        identity = _identity_of(user) or ProviderIdentity(user_id=user.id, provider="microsoft365")
        if provider_user_id and identity.provider_user_id is None:
            identity.provider_user_id = provider_user_id
        if display_name and not identity.display_name:
            identity.display_name = display_name[:200]
        db.session.add(identity)
    stale = identity.checked_at is None or identity.checked_at < now_utc() - IDENTITY_MAX_AGE
    if directory and stale:
        try:
            entry = provider.get_user(identity.provider_user_id or email)
        except (InvalidUser, NotFound):
            identity.checked_at, identity.account_enabled, identity.has_mailbox = now_utc(), False, False
        else:
            _apply_directory(identity, user, entry, names=True)
    db.session.flush()
    return user


def refresh_identity(user: User) -> ProviderIdentity:
    identity = _identity_of(user) or ProviderIdentity(user_id=user.id, provider="microsoft365")
    db.session.add(identity)
    try:
        entry = provider.get_user(identity.provider_user_id or user.email)
    except (InvalidUser, NotFound):
        identity.checked_at = now_utc()
        identity.account_enabled, identity.has_mailbox, identity.calendar_active = False, False, False
        identity.calendar_expires_at = identity.checked_at + CALENDAR_TTL
    else:
        _apply_directory(identity, user, entry, names=_directory_allowed())
    db.session.flush()
    return identity


# ---------------------------------------------------------------------------------------------- calendar


def cached_active_calendar(user: User) -> bool | None:
    identity = _identity_of(user)
    if identity is None or identity.calendar_expires_at is None or identity.calendar_expires_at <= now_utc():
        return None
    return identity.calendar_active


def has_active_calendar(user: User, *, commit: bool = True) -> bool:
    """Whether the user has an enabled account with a mailbox (cached `CALENDAR_TTL`). `commit=False` leaves
    the cache row for the caller's transaction (a booking being written: nothing may commit halfway)."""
    cached = cached_active_calendar(user)
    if cached is not None:
        return cached
    identity = _identity_of(user) or ProviderIdentity(user_id=user.id, provider="microsoft365")
    db.session.add(identity)
    now = now_utc()
    try:
        entry = provider.get_user(identity.provider_user_id or user.email)
    except (InvalidUser, NotFound, MailboxNotEnabled):
        identity.calendar_active, identity.calendar_error = False, None
        identity.calendar_expires_at = now + CALENDAR_TTL
    except GraphError as error:
        log.warning("active-calendar check for user %s failed: %s", user.id, error)
        identity.calendar_active = bool(identity.calendar_active)  # the last known answer, else no
        identity.calendar_error = str(error)[:200]
        identity.calendar_expires_at = now + CALENDAR_FAILURE_TTL
    else:
        _apply_directory(identity, user, entry, names=False)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return bool(identity.calendar_active)


# ---------------------------------------------------------------------------------------------- photos


def sync_photo(user: User) -> bool:
    """Fetch the user's photo into `UserPhoto` (or record that there is none). Commits."""
    identity = _identity_of(user)
    data = provider.get_photo(identity.provider_user_id if identity and identity.provider_user_id else user.email)
    photo = db.session.get(UserPhoto, user.id) or UserPhoto(user_id=user.id)
    photo.fetched_at = now_utc()
    content_type = images.sniff(data) if data else None
    if content_type is not None:
        digest = images.digest(data)
        if photo.etag != digest:
            photo.data, photo.content_type, photo.etag = data, content_type, digest
    else:
        photo.data, photo.content_type, photo.etag = None, None, None
    db.session.add(photo)
    db.session.commit()
    return photo.data is not None


def sync_room_photo(space_id: int, room_email: str) -> bool:
    db.session.commit()  # no transaction stays open across the provider call
    data = provider.get_photo(room_email)
    image = None
    if data:
        try:
            image = images.inspect(data, allowed=PHOTO_TYPES, max_bytes=PHOTO_MAX_BYTES, max_pixels=PHOTO_MAX_PIXELS)
        except images.ImageRejected as rejected:
            log.info("the photo of room %s is not used: %s", room_email, rejected.message)
    lock_spaces([space_id])
    photo = db.session.get(SpacePhoto, space_id)
    if (photo is not None and photo.source != "microsoft365") or db.session.get(Space, space_id) is None:
        db.session.commit()  # an admin chose meanwhile (or the space is gone): theirs stands
        return False
    if photo is None:
        photo = SpacePhoto(space_id=space_id, source="microsoft365")
        db.session.add(photo)
    digest = images.digest(data) if image is not None else None
    if photo.etag != digest:
        photo.content_type, photo.data = (image.content_type, data) if image is not None else (None, None)
        photo.width, photo.height = (image.width, image.height) if image is not None else (None, None)
        photo.etag = digest
    photo.updated_at = now_utc()  # when the room was last asked: the refresh is due a day later
    db.session.commit()
    return image is not None


def photo_for(user_id: int) -> UserPhoto | None:
    photo = db.session.get(UserPhoto, user_id)
    return photo if photo is not None and photo.data else None


def photos_enabled() -> bool:
    settings = active_settings()
    return bool(settings and settings.sync_photos)


# ---------------------------------------------------------------------------------------------- attendees

SEARCH_MIN_CHARS = 2
SEARCH_SHOWN = 8
RESULTS_TTL = 60  # seconds a (user, query) answer is reused
LISTS_TTL = 300  # seconds a holder's contacts and relevant people are reused
RATE_LIMIT_CALLS = 4  # provider calls per user …
RATE_WINDOW = 1  # … per second


@dataclass
class Suggestion:
    name: str
    email: str
    source: str  # "roomsync" | "contacts" | "people" | "directory"
    user_id: int | None = None

    @property
    def initials(self) -> str:
        return photos.initials(self.name)


@dataclass
class PeopleResults:
    query: str
    items: list[Suggestion]
    note: str = ""


def _matches(query: str, *texts: str | None) -> bool:
    words = query.lower().split()
    haystack = " ".join(t.lower() for t in texts if t)
    return all(w in haystack for w in words)


def _local_users(query: str) -> list[Suggestion]:
    stmt = select(User).where(User.active.is_(True)).order_by(User.first_name, User.last_name).limit(SEARCH_SHOWN)
    for word in query.lower().split():
        stmt = stmt.where(or_(*(func.lower(c).contains(word, autoescape=True)
                                for c in (User.email, User.first_name, User.last_name))))
    return [Suggestion(u.display_name, u.email, "roomsync", u.id) for u in db.session.scalars(stmt)]


def _provider_lists(user: User, store) -> tuple[list[dict], bool]:
    """The holder's contacts and relevant people (cached `LISTS_TTL`); bool: complete (not rate-limited)."""
    key = f"people-lists:{user.id}"
    cached = store.get_json(key)
    if cached is not None:
        return cached, True
    if not store.allow(f"people-rate:{user.id}", 2, RATE_LIMIT_CALLS, RATE_WINDOW):
        return [], False
    identity = _identity_of(user)
    mailbox = identity.provider_user_id if identity and identity.provider_user_id else user.email
    entries: list[dict] = []
    for source, read in (("contacts", provider.list_contacts), ("people", provider.list_people)):
        try:
            entries += [{"name": p.display_name, "email": p.email, "source": source} for p in read(mailbox, top=100)]
        except (MailboxNotEnabled, InvalidUser, NotFound):
            pass  # no mailbox: nothing of theirs to suggest
        except GraphError as error:
            log.info("attendee lookup: %s of user %s unavailable: %s", source, user.id, error)
            return entries, False
    store.set_json(key, entries, LISTS_TTL)
    return entries, True


def search_people(user: User, query: str) -> PeopleResults:
    query = " ".join((query or "").replace("\x00", "").split())[:100]
    if len(query) < SEARCH_MIN_CHARS:
        return PeopleResults(query, [])
    store = cache.store()
    result_key = f"people-search:{user.id}:{query.lower()}"
    cached = store.get_json(result_key)
    if cached is not None:
        return PeopleResults(query, [Suggestion(**item) for item in cached["items"]], cached.get("note", ""))

    found: dict[str, Suggestion] = {}

    def add(name: str, email: str, source: str, user_id: int | None = None) -> None:
        email = normalise_email(email)
        if email and email not in found:
            found[email] = Suggestion(name or email, email, source, user_id)

    for item in _local_users(query):
        add(item.name, item.email, item.source, item.user_id)
    note, complete = "", True
    settings = active_settings()
    if settings is not None:
        entries, complete = _provider_lists(user, store)
        for entry in entries:
            if _matches(query, entry["name"], entry["email"]):
                add(entry["name"], entry["email"], entry["source"])
        if settings.allow_directory_search and complete:
            if store.allow(f"people-rate:{user.id}", 1, RATE_LIMIT_CALLS, RATE_WINDOW):
                try:
                    for entry in provider.search_users(query, top=SEARCH_SHOWN):
                        if entry.email and entry.account_enabled is not False:
                            add(entry.display_name or entry.email, entry.email, "directory")
                except GraphError as error:
                    log.info("attendee lookup: directory search failed: %s", error)
                    complete = False
            else:
                complete = False
        if not complete:
            note = "Searching too quickly for Microsoft 365: showing what is known so far. Keep typing."
    # Link suggestions to Roomsync users (their photos) without a query per row.
    unknown = [s.email for s in found.values() if s.user_id is None]
    if unknown:
        ids = dict(db.session.execute(select(func.lower(User.email), User.id).where(func.lower(User.email).in_(unknown))).all())
        for suggestion in found.values():
            suggestion.user_id = suggestion.user_id or ids.get(suggestion.email)
    items = list(found.values())[:SEARCH_SHOWN]
    if complete:  # a partial answer is not reused: the next keystroke may complete it
        store.set_json(result_key, {"items": [vars(s) for s in items], "note": note}, RESULTS_TTL)
    return PeopleResults(query, items, note)
