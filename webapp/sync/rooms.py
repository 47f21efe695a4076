"""The provider's rooms as the pairing form offers them, read at most once a minute.

Public API: `ROOMS_TTL` (seconds), `provider_rooms()` → [RoomChoice] sorted by name (from the shared cache,
else from the provider — this runs in the request, like the settings page's checks, through `provider`'s
short-deadline client; provider errors propagate for the view to explain), `find_room(email)` → RoomChoice
| None (from the same list), `filter_rooms(rooms, query, exclude=(), limit=ROOM_OPTIONS_LIMIT)` →
(rooms shown, how many matched), `forget_rooms()`.
"""

from __future__ import annotations

from ..auth.models import normalise_email
from ..integration import cache, provider
from .pairs import RoomChoice

ROOMS_TTL = 60
ROOM_OPTIONS_LIMIT = 200  # a select longer than this is unusable: the filter box narrows it
_KEY = "sync:rooms"


def provider_rooms() -> list[RoomChoice]:
    store = cache.store()
    cached = store.get_json(_KEY)
    if cached is None:
        cached = [{"id": r.id, "email": normalise_email(r.email), "display_name": r.display_name}
                  for r in provider.room_directory()]
        cached.sort(key=lambda r: (r["display_name"].casefold(), r["email"]))
        store.set_json(_KEY, cached, ROOMS_TTL)
    return [RoomChoice(**item) for item in cached]


def forget_rooms() -> None:
    cache.store().set_json(_KEY, None, 1)


def find_room(email: str) -> RoomChoice | None:
    email = normalise_email(email or "")
    return next((room for room in provider_rooms() if room.email == email), None) if email else None


def filter_rooms(rooms: list[RoomChoice], query: str = "", exclude=(), limit: int = ROOM_OPTIONS_LIMIT):
    words = (query or "").casefold().split()
    excluded = set(exclude)
    matched = [room for room in rooms if room.email not in excluded
               and all(word in f"{room.display_name} {room.email}".casefold() for word in words)]
    return matched[:limit], len(matched)
