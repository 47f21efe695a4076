"""Tables of the two-way sync.

Public API:
- `Pair`: one Roomsync space paired with one provider room (at most one pair per space and one per room):
  `venue_id`, `space_id` (unique; ON DELETE CASCADE, so deleting a space removes its pair in the database
  itself), `room_email` (unique, lower-cased), `room_id` (the provider's room id), `room_display_name`,
  `state` (one of `PAIR_STATES`), `state_detail` (while running: the step and its counts; when failed or
  broken: why), `created_at`, `updated_at`, `created_by_id` (the admin who paired; kept None if that user
  goes).
- `PAIR_STATES`, `ACTIVE_STATES` (the states in which a page keeps polling), `STATE_LABELS`.
- Live sync (issue 6): `Subscription` (the pair's Graph subscription), `InboundNotification` (a change or
  lifecycle notification as received, persisted before anything else), `OutboundState` (per booking: the
  push to Outlook it still owes — "pending sync" — or the permanent failure), `SyncIncident` (recent errors
  per pair with their cause, for the health page). Pair columns for live sync: `delta_link`,
  `delta_window_start`, `last_notification_at`, `last_reconciled_at`, `last_parity` (JSON of the last audit).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..booking.models import Space
from ..extensions import db
from ..timeutil import UTCDateTime, now_utc

PAIR_STATES = ("queued", "running", "done", "failed", "live", "broken")
SYNCING_STATES = frozenset({"done", "live"})  # initial sync finished: changes flow both ways
ACTIVE_STATES = frozenset({"queued", "running"})
STATE_LABELS = {
    "queued": "Initial sync queued",
    "running": "Initial sync running",
    "done": "Initial sync done",
    "failed": "Initial sync failed",
    "live": "Live",
    "broken": "Broken",
}


class Pair(db.Model):
    __tablename__ = "sync_pairs"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), unique=True)
    room_email: Mapped[str] = mapped_column(String(254), unique=True)
    room_id: Mapped[str] = mapped_column(String(200))
    room_display_name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(20), default="queued")
    state_detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Live sync: the room's calendarView delta round (its link encodes the window it started with).
    delta_link: Mapped[str | None] = mapped_column(Text)
    delta_window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_notification_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_parity: Mapped[dict | None] = mapped_column(JSON)

    # No backref on Space: the ORM must not try to null out space_id when a space is deleted; the
    # database's cascade removes the pair.
    space: Mapped[Space] = relationship()

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)

    def __repr__(self) -> str:
        return f"<Pair {self.id} space={self.space_id} room={self.room_email} {self.state}>"


# ---------------------------------------------------------------------------------------------- initial sync

RUN_STEPS = {
    1: "Noting upcoming bookings",
    2: "Removing one-way sync events",
    3: "Clearing the space",
    4: "Importing the room's events",
    5: "Restoring noted bookings",
    6: "Catching up with changes made meanwhile",
    7: "Checking both sides agree",
}
LAST_STEP = max(RUN_STEPS)
REPORT_KINDS = ("imported", "adjusted", "shortened", "refused", "removed", "skipped", "restored", "not_restored")
REPORT_LABELS = {
    "imported": "Imported", "adjusted": "Adjusted", "shortened": "Series shortened", "refused": "Refused",
    "removed": "Removed in Outlook", "skipped": "Skipped", "restored": "Restored", "not_restored": "Not restored",
}


class InitialSync(db.Model):
    """The initial sync of one pair: where it stands (`step`, 1…7 as in `RUN_STEPS`; 8 = finished) and what
    it found. Every step commits its progress together with its effects, so a worker that dies anywhere
    resumes from here. `lease_until`/`lease_owner`: the worker running it now (a second worker leaves it
    alone until the lease lapses). `window_start`: midnight today in the venue's zone when step 1 ran (what
    "upcoming" means for the whole run). `counts`: per report kind plus `noted`, `butler_removed`,
    `deleted`. `parity`: the audit of step 7 (see `sync.parity`)."""

    __tablename__ = "sync_initial_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("sync_pairs.id", ondelete="CASCADE"), unique=True)
    step: Mapped[int] = mapped_column(default=1)
    attempts: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    parity: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text, default="")

    pair: Mapped[Pair] = relationship()

    @property
    def step_name(self) -> str:
        return RUN_STEPS.get(self.step, "Finished")

    @property
    def finished(self) -> bool:
        return self.step > LAST_STEP


class NotedBooking(db.Model):
    """A booking noted in step 1 for the best-effort restore of step 5: a snapshot of what it was (only
    this space; only the upcoming occurrences of a series), kept until the pair is live whatever happens
    to the original. `state`: noted | restored | not_restored. `restored_uid`: the uid the restored booking
    gets (chosen before it is made, so a retried restore finds it instead of making a second one).
    `butler_event_id`: its one-way sync event on the butler's calendar (step 2 removes it)."""

    __tablename__ = "sync_noted_bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_initial_runs.id", ondelete="CASCADE"), index=True)
    source_booking_id: Mapped[int] = mapped_column()
    source_uid: Mapped[str] = mapped_column(String(64))
    snapshot: Mapped[dict] = mapped_column(JSON)
    first_start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    holder_email: Mapped[str | None] = mapped_column(String(254))
    butler_event_id: Mapped[str | None] = mapped_column(String(400))
    butler_removed: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(20), default="noted")
    reason: Mapped[str] = mapped_column(Text, default="")
    restored_uid: Mapped[str | None] = mapped_column(String(64))
    outlook_event_id: Mapped[str | None] = mapped_column(String(400))


class SyncReportItem(db.Model):
    """One line of an initial sync's report, and its idempotency key: (`run_id`, `kind`, `key`) is unique,
    where `key` is the room event id (import side) or the noted booking id (restore side). `title` is empty
    for private events (the report is for admins; see booking.privacy). `before_*`: the times in Outlook
    before an adjustment. `pending`: a write to Outlook this line still owes (an adjusted time or a
    shortened series not yet written back; resumed after a crash)."""

    __tablename__ = "sync_report_items"
    __table_args__ = (UniqueConstraint("run_id", "kind", "key", name="uq_sync_report_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_initial_runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(400))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    title: Mapped[str] = mapped_column(String(255), default="")
    private: Mapped[bool] = mapped_column(default=False)
    organizer_email: Mapped[str | None] = mapped_column(String(254))
    booking_uid: Mapped[str | None] = mapped_column(String(64))
    start_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    before_start_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    before_end_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    series: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    pending: Mapped[dict | None] = mapped_column(JSON)

    @property
    def label(self) -> str:
        return REPORT_LABELS.get(self.kind, self.kind)


class EventLink(db.Model):
    """A booking's event in Microsoft 365 (DESIGN "The sync, in one page", Identity): the room's copy and the
    organizer's copy, the iCalUId and the last changeKey seen per side. `kind`: "two_way" (a paired room's
    event) or "one_way" (an event the one-way sync placed on the butler's calendar; `room_email` is then
    the space's room address and `organizer_email` the butler). One link per (room, room event), and one per
    (booking, room, kind): the push that creates an event and the inbound sync that meets its room copy first
    may both write it, and must meet on one row. Removed with its booking (ON DELETE CASCADE on the booking's
    uid)."""

    __tablename__ = "sync_event_links"
    __table_args__ = (UniqueConstraint("room_email", "room_event_id", name="uq_event_link_room_event"),
                      UniqueConstraint("booking_uid", "room_email", "kind", name="uq_event_link_booking_room"))

    id: Mapped[int] = mapped_column(primary_key=True)
    # Deferred: the initial sync adds a link in the transaction that creates its booking, and the booking
    # operations flush whenever they query; the constraint is checked at the commit instead.
    booking_uid: Mapped[str] = mapped_column(ForeignKey("bookings.uid", ondelete="CASCADE", deferrable=True,
                                                        initially="DEFERRED"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="two_way")
    room_email: Mapped[str] = mapped_column(String(254))
    room_event_id: Mapped[str | None] = mapped_column(String(400))
    organizer_email: Mapped[str | None] = mapped_column(String(254))
    organizer_event_id: Mapped[str | None] = mapped_column(String(400))
    ical_uid: Mapped[str | None] = mapped_column(String(400), index=True)
    room_change_key: Mapped[str | None] = mapped_column(String(200))
    organizer_change_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)



class SyncPreview(db.Model):
    """A dry run of the initial sync for a space and a room not paired yet: what it would do, computed by
    the job `sync.initial.run_preview` without changing anything on either side. `state`: queued |
    running | done | failed (`error` says why). `result` (when done), all times ISO 8601 UTC:
    {"bookings_deleted": int, "noted": int, "events": int, "series": int,
     "adjusted": [{"title", "organizer", "start", "end", "after_start", "after_end"}],
     "refused": [{"title", "organizer", "start", "end", "reason"}],
     "removed": [{"title", "organizer", "start", "end", "reason"}],
     "not_restored": [{"title", "holder", "start", "end", "reason"}],
     "restorable": int}
    Titles of private bookings and events are "" (the preview is shown to admins)."""

    __tablename__ = "sync_previews"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    room_email: Mapped[str] = mapped_column(String(254))
    room_display_name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(20), default="queued")
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    space: Mapped[Space] = relationship()


# ---------------------------------------------------------------------------------------------- live sync


class Subscription(db.Model):
    """The Graph change-notification subscription of one pair on `users/{room}/events`. `graph_id` is
    Graph's id; `client_state_hash` the SHA-256 of the random clientState sent with it (the secret itself is
    only ever in Graph's notifications; we compare digests). `state`: active | failed (creating or renewing
    failed: `error` says why; the scheduler tries again). `expires_at`: Graph's expirationDateTime."""

    __tablename__ = "sync_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("sync_pairs.id", ondelete="CASCADE"), unique=True)
    graph_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    client_state_hash: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(20), default="active")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str] = mapped_column(Text, default="")

    pair: Mapped[Pair] = relationship()


class InboundNotification(db.Model):
    """One notification from Graph, stored by the webhook before it answers (so an accepted notification is
    never lost, and a job that dies leaves it for the next). `kind`: change | lifecycle. `event_id`: the
    room's event the change names; `lifecycle_event` for lifecycle ones. `state`: new | done | ignored."""

    __tablename__ = "sync_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("sync_pairs.id", ondelete="CASCADE"), index=True)
    subscription_graph_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10), default="change")
    change_type: Mapped[str | None] = mapped_column(String(20))
    event_id: Mapped[str | None] = mapped_column(String(400))
    lifecycle_event: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, index=True)
    state: Mapped[str] = mapped_column(String(10), default="new", index=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboundState(db.Model):
    """What Roomsync still owes Outlook for one booking (one row per booking, reused). `state`: pending
    (a push is queued or waiting for its retry at `next_attempt_at`) | done | failed (permanent: `error`
    says why, shown to the holder and admins). `wanted_sequence`: the booking's `sequence` the last change
    asked for; `pushed_sequence`: the one Outlook matches — a push whose booking changed meanwhile pushes
    again. `attempts` counts failures since the last success. `create_mailbox`/`create_start`/`create_end`: a
    create sent to Outlook whose answer never came (a timeout, a connection lost, a 5xx): the event may exist.
    Where to look for it (the organizer's calendar at the times asked for), so the next push finds it by its
    transactionId instead of forgetting it (a cancelled booking would leave it in the room)."""

    __tablename__ = "sync_outbound"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_uid: Mapped[str] = mapped_column(ForeignKey("bookings.uid", ondelete="CASCADE", deferrable=True,
                                                        initially="DEFERRED"), unique=True)
    state: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    wanted_sequence: Mapped[int] = mapped_column(default=0)
    pushed_sequence: Mapped[int | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str] = mapped_column(Text, default="")
    create_mailbox: Mapped[str | None] = mapped_column(String(320))
    create_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    create_end: Mapped[datetime | None] = mapped_column(UTCDateTime)


INCIDENT_CAUSES = {
    "room_deleted": "Room deleted",
    "permission": "Permission revoked",
    "throttled": "Throttled",
    "unavailable": "Microsoft 365 unavailable",
    "subscription": "Subscription",
    "refused": "Event refused",
    "outbound": "Could not update Outlook",
    "other": "Error",
}


class SyncIncident(db.Model):
    """A recent error of a pair's live sync, with its cause (`INCIDENT_CAUSES`), for the health page."""

    __tablename__ = "sync_incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("sync_pairs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, index=True)
    cause: Mapped[str] = mapped_column(String(20), default="other")
    detail: Mapped[str] = mapped_column(Text, default="")

    @property
    def cause_label(self) -> str:
        return INCIDENT_CAUSES.get(self.cause, self.cause)
