"""The audit log: who (or which sync) did what, for the admins.

Public API: `AuditEntry` (the table), `record(action, *, subject="", detail="", venue_id=None, actor_id=None)`
adds an entry to the current session (it commits with the change it describes), `entries(venue_id,
subject=None, limit=200)` → newest first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .timeutil import UTCDateTime, now_utc


class AuditEntry(db.Model):
    """The audit log: one row per action taken on someone's behalf or by the sync. `action` is a dotted
    name ("sync.imported", "pair.created", …), `subject` what it acted on ("pair:3", "booking:<uid>"),
    `detail` a sentence for people (never a private title)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, index=True)
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


def record(action: str, *, subject: str = "", detail: str = "", venue_id: int | None = None,
           actor_id: int | None = None) -> AuditEntry:
    entry = AuditEntry(action=action[:60], subject=subject[:200], detail=detail, venue_id=venue_id,
                       actor_id=actor_id, at=now_utc())
    db.session.add(entry)
    return entry


def entries(venue_id: int, *, subject: str | None = None, limit: int = 200) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.venue_id == venue_id)
    if subject is not None:
        query = query.where(AuditEntry.subject == subject)
    return list(db.session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)))
