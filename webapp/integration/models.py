"""Tables of the provider integration.

Public API:
- `IntegrationSettings`: one row per venue: provider (`PROVIDERS`), sync type (`SYNC_TYPES`; one provider, one
  tenant and one sync type at a time, so a single row holds them), butler email, the directory and photo
  toggles, the public base URL of the webhooks (None → the `PUBLIC_BASE_URL` setting), whether the
  integration is enabled, and the last validation (when, and its results as JSON). No secret is stored here:
  the client secret comes from the environment (or the sandbox's sandbox.env).
- `ProviderIdentity`: the link between a Roomsync user and a provider user (`provider_user_id` is the
  directory object id, None until the directory has been read), with what the directory said about the
  account (UPN, names, mailbox, enabled) and when, and the cached "active calendar" answer with its expiry.
- `UserPhoto`: a user's synced photo (bytes, content type, etag); a row without bytes records "no photo"
  so the sync does not ask again on every run.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..auth.models import User
from ..extensions import db
from ..timeutil import UTCDateTime, now_utc

PROVIDERS = ("microsoft365",)
SYNC_TYPES = ("two_way",)  # "one_way" comes later; the column holds exactly one of them
PROVIDER_LABELS = {"microsoft365": "Microsoft 365"}
SYNC_TYPE_LABELS = {"two_way": "Two-way sync"}


class IntegrationSettings(db.Model):
    __tablename__ = "integration_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(String(40), default="microsoft365")
    sync_type: Mapped[str] = mapped_column(String(20), default="two_way")
    butler_email: Mapped[str] = mapped_column(String(254), default="")
    allow_directory_search: Mapped[bool] = mapped_column(default=False)
    sync_photos: Mapped[bool] = mapped_column(default=False)
    public_base_url: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(default=False)
    last_validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_validation: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)


class ProviderIdentity(db.Model):
    __tablename__ = "provider_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(String(40), default="microsoft365")
    provider_user_id: Mapped[str | None] = mapped_column(String(100))
    upn: Mapped[str | None] = mapped_column(String(254))
    display_name: Mapped[str | None] = mapped_column(String(200))
    given_name: Mapped[str | None] = mapped_column(String(100))
    surname: Mapped[str | None] = mapped_column(String(100))
    has_mailbox: Mapped[bool | None] = mapped_column()
    account_enabled: Mapped[bool | None] = mapped_column()
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The "active calendar" answer (mailbox present and account enabled) and until when it may be reused.
    calendar_active: Mapped[bool | None] = mapped_column()
    calendar_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    calendar_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    user: Mapped[User] = relationship()

    __table_args__ = (UniqueConstraint("provider", "provider_user_id", name="uq_provider_identities_provider_user_id"),)


class UserPhoto(db.Model):
    __tablename__ = "user_photos"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    content_type: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    etag: Mapped[str | None] = mapped_column(String(80))  # digest of the bytes: the HTTP ETag we serve
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
