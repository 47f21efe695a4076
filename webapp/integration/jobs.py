"""RQ jobs of the integration. They take ids, are idempotent, and let provider errors raise so RQ retries.

Public API:
- `refresh_user_identity(user_id)`: reads the user's directory entry (link, names when allowed, mailbox,
  enabled) and, when photos are synced, their photo.
- `refresh_all_identities()`: enqueues `refresh_user_identity` for every linked user (after the settings
  change the directory or photo toggles).
- `enqueue(func, *args)`: queue a job now (inline with `SYNC_JOBS`); a Redis outage is logged, not raised,
  because the callers have already committed and the periodic refresh catches up.

Why not `jobs.enqueue_after_commit` here: with `SYNC_JOBS` it runs the job inside the session's
`after_commit` event, where the session cannot emit SQL, and these jobs read and write the database.
"""

from __future__ import annotations

import logging

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select

from ..auth.models import User
from ..extensions import db
from ..jobs import queue
from . import operations
from .models import ProviderIdentity

log = logging.getLogger(__name__)


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
