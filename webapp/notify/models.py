"""The outbox: every email Roomsync sends, kept whether or not a mail server is configured.

Public API:
- `OutboxMessage`: one email. `to` (a JSON list of addresses), `subject`, `text`, `html` (optional),
  `kind` (one of `KINDS`, or "" for others), `venue_id` (None for installation-wide mail), `created_at`,
  `sent_at` (None until an SMTP server accepted it), `attempts` (SMTP attempts so far), `last_error` (the
  last SMTP failure, or the recipients a server refused), `dedup_key` (unique when set: the same event
  never makes two messages), `rfc_message_id` (the `Message-ID` header, fixed at creation so a retried
  delivery sends the very same message), `confidential` (the body concerns someone's private event: the
  outbox page shows it to its recipients only, and to admins where the venue lets them see private titles),
  `sending_until` (a delivery's claim on the message: another delivery leaves it alone until then).
- `KINDS`, `KIND_LABELS`; `OutboxMessage.status(mail_configured)` → "sent" | "failed" | "queued" | "outbox".
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..timeutil import UTCDateTime, now_utc

KINDS = ("pair_broken", "event_refused", "event_removed")
KIND_LABELS = {
    "pair_broken": "Pair broken",
    "event_refused": "Room booking declined",
    "event_removed": "Event removed",
}
STATUS_LABELS = {
    "sent": "Sent",
    "failed": "Failed",
    "queued": "Queued",
    "outbox": "Outbox only",
}


class OutboxMessage(db.Model):
    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40), default="")
    to: Mapped[list] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(String(255), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    confidential: Mapped[bool] = mapped_column(default=False)
    dedup_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    rfc_message_id: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    sending_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def status(self, mail_configured: bool) -> str:
        if self.sent_at is not None:
            return "sent"
        if self.last_error:
            return "failed"
        return "queued" if mail_configured else "outbox"

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind or "Other")

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.kind} to={len(self.to or [])} sent={self.sent_at is not None}>"
