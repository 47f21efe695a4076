"""Feed tokens: one per (user, feed), the secret part of a feed's URL.

Public API: `FeedToken`, `FEED_KINDS` ("space", "venue", "personal").

`target_id` is the space's id for a space feed, the venue's for the venue feed and the user's own for the
personal feed, so (user, kind, target) is unique on both databases (no NULLs). Only the token's public half
(`selector`) is stored; the other half is an HMAC of it under the app's SECRET_KEY (see `feeds.tokens`), so
the database alone gives no working feed URL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..auth.models import User
from ..extensions import db
from ..timeutil import UTCDateTime, now_utc

FEED_KINDS = ("space", "venue", "personal")


class FeedToken(db.Model):
    __tablename__ = "feed_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    target_id: Mapped[int] = mapped_column()
    selector: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    __table_args__ = (UniqueConstraint("user_id", "kind", "target_id"),)
