"""People's avatars as pages show them: their synced photo when the venue syncs photos, their initials otherwise.

Public API:
- `initials(name)` → "PS" for "Priya Shah" (first letters of the first two words; "?" when there are none). Pure.
- `holders_with_photos(venue, user_ids)` → the set of those ids that have a stored photo to show; empty when
  the venue's integration is off or does not sync photos. One query however many ids: a page collects its
  people first and asks once (the day view has hundreds of bookings), never per row.

The photos themselves are served by `people.photo` (`/people/<id>/photo`) and rendered by the
`people/_avatar.html` macro, whose initials stay visible when an image fails to load.
"""

from __future__ import annotations

import re
from typing import Iterable

from sqlalchemy import select

from ..extensions import db
from .models import IntegrationSettings, UserPhoto

_WORD_BREAKS = re.compile(r"[\s.@_-]+")


def initials(name: str | None) -> str:
    words = [w for w in _WORD_BREAKS.split(name or "") if w and w[0].isalnum()]
    return "".join(w[0].upper() for w in words[:2]) or "?"


def holders_with_photos(venue, user_ids: Iterable[int | None]) -> set[int]:
    ids = {i for i in user_ids if i is not None}
    if not ids or venue is None:
        return set()
    # The settings check rides in the same statement (EXISTS) so the page pays one round trip, not three.
    syncs_photos = (
        select(IntegrationSettings.id)
        .where(
            IntegrationSettings.venue_id == venue.id,
            IntegrationSettings.enabled.is_(True),
            IntegrationSettings.sync_photos.is_(True),
        )
        .exists()
    )
    stmt = select(UserPhoto.user_id).where(UserPhoto.user_id.in_(ids), UserPhoto.data.is_not(None), syncs_photos)
    return set(db.session.scalars(stmt))
