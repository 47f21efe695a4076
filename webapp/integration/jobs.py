"""RQ jobs of the integration. They take ids, are idempotent, and let provider errors raise so RQ retries.

Public API:
- `refresh_user_identity(user_id)`: reads the user's directory entry (link, names when allowed, mailbox,
  enabled) and, when photos are synced, their photo.
- `refresh_all_identities()`: enqueues `refresh_user_identity` for every linked user (after the settings
  change the directory or photo toggles).
- `enqueue(func, *args)`: queue a job now (inline with `SYNC_JOBS`); a Redis outage is logged, not raised,
  because the callers have already committed and the periodic refresh catches up.
- `refresh_room_photo(space_id)`: the photo of the Microsoft 365 room paired with the space, into its
  `SpacePhoto` (`operations.sync_room_photo`: never over a photo an admin uploaded or removed). Nothing when the
  integration is off or the space is not paired.
- `refresh_room_photos()`: cron job (`register_cron`, every `ROOM_PHOTOS_SECONDS`): queues `refresh_room_photo`
  for each paired space (pairs not "broken") that has no photo of its own and whose room was never asked or
  was asked more than `ROOM_PHOTO_MAX_AGE` ago — so a new pair shows its room's photo within the hour, and a
  photo changed in Microsoft 365 appears within a day; and drops the rooms' photos of spaces no longer paired.
  Two small queries when nothing is due.

Why not `jobs.enqueue_after_commit` here: with `SYNC_JOBS` it runs the job inside the session's
`after_commit` event, where the session cannot emit SQL, and these jobs read and write the database.
"""

from __future__ import annotations

import logging

from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import and_, delete, or_, select

from ..auth.models import User
from ..booking.locking import lock_spaces
from ..booking.models import SpacePhoto
from ..extensions import db
from ..jobs import queue
from ..timeutil import now_utc
from . import operations
from .models import ProviderIdentity

log = logging.getLogger(__name__)

ROOM_PHOTOS_SECONDS = 3600
ROOM_PHOTO_MAX_AGE = timedelta(days=1)


def enqueue(func, *args) -> None:
    if current_app.config.get("SYNC_JOBS"):
        func(*args)
        return
    try:
        queue().enqueue(func, *args)
    except RedisError as error:
        log.warning("could not queue %s%r: %s", func.__name__, args, error)


def refresh_user_identity(user_id: int) -> None:
    user = db.session.get(User, user_id)
    if user is None or operations.active_settings() is None:
        return  # deleted meanwhile, or the integration is off: nothing to refresh
    operations.refresh_identity(user)
    db.session.commit()
    if operations.photos_enabled():
        operations.sync_photo(user)


def refresh_all_identities() -> None:
    for user_id in list(db.session.scalars(select(ProviderIdentity.user_id))):
        enqueue(refresh_user_identity, user_id)


def refresh_room_photo(space_id: int) -> None:
    from ..sync.models import Pair  # the sync builds on the integration, not the other way round

    room_email = db.session.scalar(select(Pair.room_email).where(Pair.space_id == space_id))
    if room_email is None or operations.active_settings() is None:
        return  # unpaired meanwhile, or the integration is off
    operations.sync_room_photo(space_id, room_email)


def refresh_room_photos() -> None:
    from ..sync.models import Pair

    unpaired = list(db.session.scalars(
        select(SpacePhoto.space_id).where(SpacePhoto.source == "microsoft365",
                                          SpacePhoto.space_id.not_in(select(Pair.space_id)))
    ))
    if unpaired:
        lock_spaces(unpaired)  # as the admin form does before it changes a photo
        db.session.execute(delete(SpacePhoto).where(SpacePhoto.space_id.in_(unpaired),
                                                    SpacePhoto.source == "microsoft365",
                                                    SpacePhoto.space_id.not_in(select(Pair.space_id))))
        db.session.commit()
    if operations.active_settings() is None:
        return
    asked_before = now_utc() - ROOM_PHOTO_MAX_AGE
    due = list(db.session.scalars(
        select(Pair.space_id)
        .outerjoin(SpacePhoto, SpacePhoto.space_id == Pair.space_id)
        .where(Pair.state != "broken",
               or_(SpacePhoto.space_id.is_(None),
                   and_(SpacePhoto.source == "microsoft365", SpacePhoto.updated_at < asked_before)))
        .order_by(Pair.space_id)
    ))
    db.session.commit()
    for space_id in due:
        enqueue(refresh_room_photo, space_id)


def register_cron(cron, app) -> None:
    with app.app_context():
        name = queue().name
    cron.register(refresh_room_photos, name, interval=ROOM_PHOTOS_SECONDS)
