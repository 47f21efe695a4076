"""Outbound live sync (Roomsync → Outlook): a booking on a paired space becomes its holder's event.

Public API:
- `on_booking_changed(session, booking_id, change, scope)`: the `signals.booking_changed` receiver
  (connected by `init_app`). Inside the booking's own transaction: refuses (ValidationError on
  `holder_id`) a booking of a paired space whose holder has no active Microsoft 365 calendar, then records
  that the booking owes Outlook a push (`OutboundState` "pending": the booking shows "pending sync") and
  queues `push_booking` after the commit. Writes of the inbound and initial syncs (`inbound.INBOUND_FLAG`)
  are left alone: they come from Outlook.
- `request_push(booking, reason="")`: the same record-and-queue for callers outside an operation.
- `push_booking(booking_uid)`: job. Makes Outlook match the booking as it is now (state, not operations, so
  a retried or duplicated push is harmless and coalesces any number of edits):
  | booking                                  | event       | action                                    |
  |------------------------------------------|-------------|-------------------------------------------|
  | live, on paired spaces                   | none        | create on the holder's (butler's) calendar |
  |                                          |             | with `transactionId` = uid, rooms as       |
  |                                          |             | resource attendees                         |
  | live, on paired spaces                   | exists      | PATCH everything; series exceptions        |
  | live, no paired space left               | exists      | PATCH: the rooms leave the attendees       |
  | cancelled                                | exists      | cancel it (organizer) — or delete (butler) |
  | holder changed                           | exists      | cancel the old one, create on the new      |
  Series are written with their pattern in the venue's zone, then their cancelled and moved occurrences
  (`initial._apply_exceptions`). Links (`EventLink`, one per room) are added and removed to match.
  A create whose answer never came (timeout, connection lost, 5xx) may have made its event: where it asked is
  noted before it is sent (`OutboundState.create_*`), and the next push looks there for an event carrying
  its transactionId and adopts it (then updates it, or ends it for a booking cancelled meanwhile) — a retried
  create alone would answer the old event unchanged, and a cancelled booking would leave it in the room.
  Transient failures (throttling, 5xx, connection) keep the push pending with a back-off (`BACKOFF`) and
  raise; after `MAX_ATTEMPTS`, or at once for a permanent refusal (the mailbox is gone, Outlook rejects the
  request), the state becomes "failed": the holder and the admins are emailed and the health page shows it.
- `mark_push_failed(booking, why)`: a permanent failure found elsewhere (the room declined the booking for
  reasons of its own).
- `push_pending()`: job: every pending push, oldest first, 20 at a time: the simple ones (a create, a PATCH
  of a single booking, a cancel) share one `$batch` round trip. `request_push` queues it
  after the commit unless one is already waiting (`QUEUED_KEY`); with inline jobs (SYNC_JOBS) it pushes the
  one booking instead (`push_booking`).
- `due_pushes()` → uids whose retry time has come (the sweeper re-queues them); `pending_state(uids)` →
  {uid: OutboundState} for pages.
- `init_app(app)`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update

from .. import audit
from ..auth.models import User
from ..booking.errors import ValidationError
from ..booking.models import Booking, Space
from ..extensions import db
from ..graph.errors import (AuthFailed, BadRequest, ConnectionFailed, GraphError, InvalidUser, MailboxNotEnabled,
                            NotFound, PermissionMissing, ServiceUnavailable, Throttled)
from ..graph.types import Attendee, EventDraft, Location
from ..timeutil import now_utc, to_local
from .models import SYNCING_STATES, EventLink, OutboundState, Pair

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF = (5, 15, 45, 120, 300, 600, 1200, 2400)  # seconds before attempt n+1
TRANSIENT = (Throttled, ServiceUnavailable, ConnectionFailed, PermissionMissing, AuthFailed)


def init_app(app) -> None:
    from ..signals import booking_changed

    booking_changed.connect(on_booking_changed)


# ---------------------------------------------------------------------------------------------- recording


def _pairs_of(booking: Booking) -> list[tuple[Space, Pair]]:
    from .freeze import CLOSURE_PAIRS

    space_ids = [s.id for s in booking.spaces]
    if not space_ids:
        return []
    checked, known = db.session().info.get(CLOSURE_PAIRS) or (frozenset(), {})
    if set(space_ids) <= checked:  # the freeze check read these spaces' pairs in this transaction
        pairs = [p for p in known.values() if p.state in SYNCING_STATES]
    else:
        pairs = db.session.scalars(select(Pair).where(Pair.space_id.in_(space_ids),
                                                      Pair.state.in_(tuple(SYNCING_STATES))))
    by_space = {p.space_id: p for p in pairs}
    return [(s, by_space[s.id]) for s in booking.spaces if s.id in by_space]


def _linked(booking_uid: str) -> list[EventLink]:
    return list(db.session.scalars(select(EventLink).where(EventLink.booking_uid == booking_uid,
                                                           EventLink.kind == "two_way").order_by(EventLink.id)))


def on_booking_changed(session, booking_id: int, change: str, scope: str = "all", **_) -> None:
    from .inbound import INBOUND_FLAG

    if session.info.get(INBOUND_FLAG):
        return
    booking = session.get(Booking, booking_id)
    if booking is None:
        return
    paired = _pairs_of(booking)
    if not paired and not _linked(booking.uid):
        return
    if paired and change != "cancelled" and booking.cancelled_at is None:
        _require_calendar(booking)
    request_push(booking, reason=change)


def _require_calendar(booking: Booking) -> None:
    """A holder without an active calendar cannot book a paired space (the event would have no organizer)."""
    from ..graph import GraphSettingsError
    from ..integration.models import ProviderIdentity
    from ..integration.operations import has_active_calendar

    if booking.kind != "regular" or booking.holder is None:
        return  # placed by the butler
    try:
        active = has_active_calendar(booking.holder, commit=False)
    except (GraphError, GraphSettingsError):
        return  # the directory cannot be asked now: the push reports it if Outlook refuses
    if not active:
        identity = db.session.scalar(select(ProviderIdentity).where(ProviderIdentity.user_id == booking.holder.id))
        if identity is not None and identity.calendar_error:
            return  # the last check failed (Microsoft 365 unavailable): not a known "no", the push will tell
        raise ValidationError({"holder_id": (
            f"{booking.holder.display_name} has no active Microsoft 365 calendar, and this space is synced with "
            "Outlook: its bookings become events on the holder's calendar. Choose a holder with a Microsoft 365 "
            "mailbox, or ask an admin to book it as an internal booking.")})


def request_push(booking: Booking, reason: str = "") -> None:
    from ..jobs import call_after_commit

    wanted = dict(state="pending", wanted_sequence=booking.sequence or 0, queued_at=now_utc(), next_attempt_at=None,
                  error="", attempts=0)
    # One UPDATE naming every column, never the ORM's "write what changed since I read it": a push finishing
    # between our read and our write sets the row "done", and a state we read as "pending" would not be
    # written again — the change would be recorded as asked for and never pushed (a lost update the
    # benchmark found: 1 change in 2,000).
    updated = db.session.execute(update(OutboundState).where(OutboundState.booking_uid == booking.uid)
                                 .values(**wanted).execution_options(synchronize_session="fetch")).rowcount
    if not updated:
        db.session.add(OutboundState(booking_uid=booking.uid, **wanted))
    call_after_commit(_queue_push, booking.uid)


QUEUED_KEY = "roomsync:push:queued"  # set while a push_pending job waits in the queue
QUEUED_TTL = 60


def _queue_push(booking_uid: str) -> None:
    """After the booking's commit: inline jobs (tests, scripts) push this booking now; otherwise one waiting
    `push_pending` job serves every booking changed meanwhile (a burst of edits is one job, not one per
    edit, each paying a worker's fork)."""
    from flask import current_app

    from ..jobs import queue, redis_connection, run_inline

    if current_app.config.get("SYNC_JOBS"):
        run_inline(push_booking, booking_uid)
        return
    if not current_app.config.get("REDIS_URL"):
        return  # no queue: the sweeper pushes it
    if redis_connection().set(QUEUED_KEY, "1", nx=True, ex=QUEUED_TTL):
        queue().enqueue(push_pending, job_timeout=900)


def mark_push_failed(booking: Booking, why: str) -> None:
    """Record a permanent failure of the booking's push found by someone else than the push (the room declined
    it in Outlook for its own reasons): failed with why, incident, holder and admins told."""
    from .health import record_incident

    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking.uid))
    if state is None:
        state = OutboundState(booking_uid=booking.uid, attempts=0)
        db.session.add(state)
    state.state, state.error, state.next_attempt_at = "failed", why[:500], None
    pair = next((p for _, p in _pairs_of(booking)), None)
    record_incident(pair.id if pair else None, f"A booking is not in Outlook: {why}", cause="outbound")
    _tell_failed(booking, why)


def pending_state(uids) -> dict[str, OutboundState]:
    uids = list(uids)
    if not uids:
        return {}
    return {s.booking_uid: s for s in db.session.scalars(select(OutboundState).where(
        OutboundState.booking_uid.in_(uids), OutboundState.state.in_(("pending", "failed"))))}


def due_pushes(now=None) -> list[str]:
    now = now or now_utc()
    stale = now - timedelta(seconds=60)
    return list(db.session.scalars(select(OutboundState.booking_uid).where(
        OutboundState.state == "pending",
        ((OutboundState.next_attempt_at.is_not(None)) & (OutboundState.next_attempt_at <= now))
        | (OutboundState.next_attempt_at.is_(None) & (OutboundState.queued_at < stale)))))


# ---------------------------------------------------------------------------------------------- the push


def push_booking(booking_uid: str) -> None:
    from .locks import pair_lock

    from ..db_engine import job_transactions

    with job_transactions():
        for _ in range(5):  # a booking edited while we pushed is pushed again, up to a point
            with pair_lock("outbound", booking_uid, ttl=120) as acquired:
                if not acquired:
                    return  # the holder of the lock re-checks the state after it lets go
                if _push_once(booking_uid):
                    continue
            # A change whose own job found the lock taken just before we let go: push it now.
            db.session.expire_all()
            if db.session.scalar(select(OutboundState.state).where(OutboundState.booking_uid == booking_uid)) \
                    != "pending" or _waiting_retry(booking_uid):
                return


MAX_DRAIN = 500


def push_pending() -> int:
    """Job: push every booking whose push is pending (and not waiting for a retry), oldest first, 20 at a
    time (`_push_many`: creates, PATCHes of single bookings and cancels share a `$batch`; a create carries its
    `transactionId`, so a re-sent one makes no second event). Returns how many it pushed."""
    from ..db_engine import job_transactions
    from ..jobs import redis_connection

    try:
        redis_connection().delete(QUEUED_KEY)  # from now on a new change queues a new job
    except Exception:  # noqa: BLE001
        pass
    pushed = 0
    with job_transactions():
        while pushed < MAX_DRAIN:
            now = now_utc()
            uids = list(db.session.scalars(select(OutboundState.booking_uid).where(
                OutboundState.state == "pending",
                OutboundState.next_attempt_at.is_(None) | (OutboundState.next_attempt_at <= now))
                .order_by(OutboundState.queued_at).limit(100)))
            db.session.commit()
            if not uids:
                return pushed
            done = _push_many(uids)
            pushed += done
            if not done:
                return pushed  # every one is held by another worker or failed: they come back by themselves
    return pushed


BATCH = 20  # Graph's limit of requests per $batch


def _push_many(uids: list[str]) -> int:
    """Push these bookings, `BATCH` at a time: each group's simple pushes (a create, a PATCH of a single
    booking, a cancel) share one `$batch` round trip; the rest (series, moves between holders or rooms) go one
    by one. A booking is locked only while its own group is pushed, so a second worker's job (or the push of a
    later edit) waits for seconds, not for the whole drain. Returns how many were handled."""
    handled = 0
    for start in range(0, len(uids), BATCH):
        handled += _push_group(uids[start:start + BATCH])
    return handled


@dataclass
class _Quick:
    """A push that is one Graph request: what to send, and what to record once it succeeded."""
    uid: str
    sequence: int
    kind: str  # create | update | cancel
    request: object
    organizer: str = ""
    rooms: list = field(default_factory=list)


def _push_group(uids: list[str]) -> int:
    from contextlib import ExitStack

    from .locks import pair_lock

    with ExitStack() as stack:
        mine = [uid for uid in uids if stack.enter_context(pair_lock("outbound", uid, ttl=120))]
        db.session.expire_all()
        graph = _graph()
        quick: list[_Quick] = []
        slow: list[str] = []
        for uid in mine:
            try:
                plan = _quick_plan(graph, uid, f"r{len(quick)}")
            except GraphError as error:  # no organizer: recorded as failed
                db.session.rollback()
                _failed(uid, error)
                continue
            if plan is None:
                slow.append(uid)
            elif plan is not False:
                quick.append(plan)
        db.session.commit()  # (creates noted, see `_note_create`) no transaction stays open across Graph calls
        if quick:
            _send_quick(graph, quick)
        for uid in slow:
            try:
                while _push_once(uid):
                    pass
            except GraphError:
                pass  # recorded by _push_once (pending with back-off, or failed)
        return len(mine)


def _quick_plan(graph, uid: str, request_id: str):
    """The one-request push of this booking, None when it needs the full `_make_outlook_match`, False when
    there is nothing to push (done meanwhile)."""
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == uid))
    booking = db.session.scalar(select(Booking).where(Booking.uid == uid))
    if state is None or booking is None or state.state != "pending":
        return False
    if state.create_mailbox:
        return None  # a create went unanswered: the full path looks for its event first
    sequence = booking.sequence or 0
    links = _linked(uid)
    event = next(((l.organizer_email, l.organizer_event_id) for l in links if l.organizer_event_id), None)
    if booking.cancelled_at is not None:
        if event is None:
            return None
        mailbox, event_id = event
        if mailbox == _butler(booking.venue_id):
            request = graph.delete_event_request(request_id, mailbox, event_id)
        else:
            request = graph.cancel_event_request(request_id, mailbox, event_id, comment="Cancelled in Roomsync.")
        return _Quick(uid, sequence, "cancel", request)
    if booking.rrule:
        return None
    rooms = _pairs_of(booking)
    if not rooms:
        return None
    organizer = _organizer(booking)
    if organizer is None:
        raise BadRequest("No organizer for this booking: it has no holder and no butler is configured.", status=400)
    if event is None:
        state.create_mailbox, state.create_start, state.create_end = organizer, booking.start_utc, booking.end_utc
        return _Quick(uid, sequence, "create",
                      graph.create_event_request(request_id, organizer,
                                                 draft_for(booking, rooms, organizer, create=True)),
                      organizer, rooms)
    mailbox, event_id = event
    if mailbox != organizer or {l.room_email for l in links} != {p.room_email for _, p in rooms}:
        return None  # a new holder or other rooms: links change, the full path handles it
    return _Quick(uid, sequence, "update",
                  graph.update_event_request(request_id, mailbox, event_id,
                                             draft_for(booking, rooms, mailbox, create=False)),
                  mailbox, rooms)


def _send_quick(graph, quick: list[_Quick]) -> None:
    try:
        results = graph.batch([plan.request for plan in quick])
    except GraphError as error:
        for plan in quick:
            _failed(plan.uid, error)
        return
    for plan, result in zip(quick, results):
        if result.error is not None and not (isinstance(result.error, NotFound) and plan.kind != "create"):
            if plan.kind == "create" and isinstance(result.error, (BadRequest, NotFound, InvalidUser,
                                                                   MailboxNotEnabled)):
                _note_create(plan.uid, None)  # refused: nothing was made
            _failed(plan.uid, result.error)
            continue
        booking = db.session.scalar(select(Booking).where(Booking.uid == plan.uid))
        links = _linked(plan.uid)
        if plan.kind == "cancel" or result.error is not None:
            # Cancelled; or deleted in Outlook meanwhile (404), whose own notification tells us.
            for link in links:
                db.session.delete(link)
            if plan.kind == "cancel":
                _audit(booking, "sync.outbound.removed", "Removed from Outlook.")
        elif plan.kind == "create":
            created = result.value
            _note_create(plan.uid, None)
            _record_links(plan.uid, [pair.room_email for _, pair in plan.rooms], links, plan.organizer, created)
            _audit(booking, "sync.outbound.created", f"Created on {plan.organizer}'s calendar.")
        else:
            updated = result.value
            for link in links:
                link.ical_uid, link.organizer_change_key = updated.ical_uid, updated.change_key
            _audit(booking, "sync.outbound.updated", f"Updated on {plan.organizer}'s calendar.")
        if not _finish(plan.uid, plan.sequence):
            try:
                while _push_once(plan.uid):  # changed while we pushed it: push the newer version now
                    pass
            except GraphError:
                pass  # recorded by _push_once


def _finish(booking_uid: str, sequence: int) -> bool:
    """Mark the push done unless a newer change was asked for meanwhile (one conditional UPDATE: a request
    committed between our read and this write cannot be overwritten). True when done."""
    finished = db.session.execute(
        update(OutboundState).where(OutboundState.booking_uid == booking_uid,
                                    OutboundState.wanted_sequence <= sequence)
        .values(state="done", pushed_sequence=sequence, done_at=now_utc(), attempts=0, error="",
                next_attempt_at=None)).rowcount
    if not finished:
        db.session.execute(update(OutboundState).where(OutboundState.booking_uid == booking_uid)
                           .values(pushed_sequence=sequence))
    db.session.commit()
    return bool(finished)


def _push_once(booking_uid: str) -> bool:
    """One push. True when the booking changed meanwhile and must be pushed again."""
    db.session.expire_all()
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking_uid))
    booking = db.session.scalar(select(Booking).where(Booking.uid == booking_uid))
    if state is None or booking is None or state.state == "done":
        return False
    sequence = booking.sequence or 0
    try:
        _make_outlook_match(booking)
    except GraphError as error:
        db.session.rollback()
        _failed(booking_uid, error)
        raise
    return not _finish(booking_uid, sequence)  # the bookkeeping race the benchmark found: see `_finish`


def _waiting_retry(booking_uid: str) -> bool:
    next_at = db.session.scalar(select(OutboundState.next_attempt_at).where(OutboundState.booking_uid == booking_uid))
    return next_at is not None and next_at > now_utc()


def _failed(booking_uid: str, error: GraphError) -> None:
    from ..jobs import queue
    from .health import cause_of, record_incident

    # Locked and read afresh: a change recorded meanwhile (`request_push`) reset the attempts; counting on a
    # stale copy would write them back.
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking_uid)
                              .with_for_update().execution_options(populate_existing=True))
    booking = db.session.scalar(select(Booking).where(Booking.uid == booking_uid))
    if state is None or booking is None:
        return
    state.attempts += 1
    permanent = not isinstance(error, TRANSIENT) or state.attempts >= MAX_ATTEMPTS
    state.error = _describe(error)
    pair = next((p for _, p in _pairs_of(booking)), None)
    if permanent:
        state.state, state.next_attempt_at = "failed", None
        record_incident(pair.id if pair else None, f"A booking could not be written to Outlook: {state.error}",
                        cause="outbound")
        _tell_failed(booking, state.error)
    else:
        delay = BACKOFF[min(state.attempts - 1, len(BACKOFF) - 1)]
        if isinstance(error, Throttled) and getattr(error, "retry_after", None):
            delay = max(delay, float(error.retry_after))
        state.next_attempt_at = now_utc() + timedelta(seconds=delay)
        record_incident(pair.id if pair else None, error, cause=cause_of(error))
    db.session.commit()
    if not permanent:
        try:  # the RQ scheduler brings it back; the sweeper does if this is lost
            queue().enqueue_in(timedelta(seconds=BACKOFF[min(state.attempts - 1, len(BACKOFF) - 1)]),
                               push_booking, booking_uid)
        except Exception:  # noqa: BLE001 — Redis down: the sweeper re-queues due pushes
            log.info("retry of push %s left to the sweeper", booking_uid)


def _describe(error: GraphError) -> str:
    if isinstance(error, (InvalidUser, MailboxNotEnabled)):
        return f"The organizer's mailbox cannot be used: {error}"
    if isinstance(error, Throttled):
        return "Microsoft 365 is throttling requests; retrying."
    return f"Microsoft 365 answered: {error}"[:500]


def _tell_failed(booking: Booking, why: str) -> None:
    from ..notify import messages

    try:
        messages.push_failed(booking, why, dedup_key=f"push-failed:{booking.uid}:{booking.sequence}")
    except Exception:  # noqa: BLE001 — the failure is recorded and shown; a mail problem must not hide it
        log.warning("could not email about failed push of %s", booking.uid, exc_info=True)


# ---------------------------------------------------------------------------------------------- Outlook side


def _graph():
    from ..graph import graph_client

    return graph_client()


class _Ctx:
    """What `initial._apply_exceptions` needs: a Graph client."""

    def __init__(self, graph):
        self.graph = graph


def _butler(venue_id: int) -> str | None:
    from ..booking.models import Venue
    from ..integration.operations import settings_for

    settings = settings_for(db.session.get(Venue, venue_id))
    return (settings.butler_email or "").lower() or None if settings else None


def _organizer(booking: Booking) -> str | None:
    if booking.kind == "regular" and booking.holder is not None:
        return booking.holder.email.lower()
    return _butler(booking.venue_id)


def draft_for(booking: Booking, rooms: list[tuple[Space, Pair]], organizer: str, *, create: bool) -> EventDraft:
    from .recurrence_map import graph_from_rrule

    tz = booking.venue.tz
    recurrence = None
    if booking.rrule:
        recurrence = graph_from_rrule(booking.rrule, to_local(booking.start_utc, tz).replace(tzinfo=None),
                                      booking.venue.timezone)
    people = tuple(Attendee(email=e, type="required") for e in booking.attendees or [] if e.lower() != organizer)
    resources = tuple(Attendee(email=p.room_email, name=p.room_display_name or s.name, type="resource")
                      for s, p in rooms)
    names = ", ".join(p.room_display_name or s.name for s, p in rooms)
    location = Location(display_name=names, email=rooms[0][1].room_email if len(rooms) == 1 else None,
                        location_type="conferenceRoom")
    subject = booking.title or ("Booking" if booking.kind == "regular" else "Internal booking")
    return EventDraft(subject=subject, start=booking.start_utc, end=booking.end_utc,
                      body_text=booking.description or "Booked in Roomsync.", is_private=booking.private,
                      attendees=people + resources, location=location, recurrence=recurrence,
                      is_online_meeting=bool(booking.online_meeting),
                      response_requested=True, transaction_id=booking.uid if create else None,
                      time_zone=booking.venue.timezone if recurrence is not None else None)


def _make_outlook_match(booking: Booking) -> None:
    from .initial import _apply_exceptions

    graph = _graph()
    rooms = _pairs_of(booking) if booking.cancelled_at is None else []
    links = _linked(booking.uid)
    event = next(((l.organizer_email, l.organizer_event_id) for l in links if l.organizer_event_id), None)
    organizer = _organizer(booking)
    unanswered = _unanswered_create(booking.uid) if event is None else None
    if event is not None:
        _note_create(booking.uid, None)  # linked since (by the inbound sync): nothing to look for
    db.session.commit()  # nothing written yet: no transaction stays open across the Graph calls below
    if unanswered is not None:
        found = _find_unanswered_create(graph, booking.uid, *unanswered)
        if found is not None:  # it was made after all: adopt it (then it is updated, moved or ended below)
            event = (unanswered[0], found.id)
            links = links or [EventLink(booking_uid=booking.uid, kind="two_way", room_email=p.room_email,
                                        room_event_id=None, organizer_email=unanswered[0],
                                        organizer_event_id=found.id, ical_uid=found.ical_uid,
                                        organizer_change_key=found.change_key) for _, p in rooms]
            for link in links:
                if link.id is None:
                    db.session.add(link)
            _audit(booking, "sync.outbound.adopted", f"Found on {unanswered[0]}'s calendar the event whose "
                                                     "creation went unanswered.")
        _note_create(booking.uid, None)
        db.session.commit()
    if event is not None and rooms and organizer and event[0] and event[0] != organizer \
            and booking.origin == "roomsync":
        _end_event(graph, booking, event, cancelled=True)  # a new holder: the event moves to their calendar
        for link in links:
            db.session.delete(link)
        db.session.commit()
        links, event = [], None
    if not rooms:
        if event is not None:
            _end_event(graph, booking, event, cancelled=booking.cancelled_at is not None)
        for link in links:
            db.session.delete(link)
        _audit(booking, "sync.outbound.removed", "Removed from Outlook.")
        return
    if organizer is None:
        raise BadRequest("No organizer for this booking: it has no holder and no butler is configured.",
                         status=400)
    if event is None:
        _note_create(booking.uid, (organizer, booking.start_utc, booking.end_utc))
        db.session.commit()  # kept if the answer never comes: the next push looks for the event
        created = graph.create_event(organizer, draft_for(booking, rooms, organizer, create=True))
        _note_create(booking.uid, None)
        mailbox, event_id, ical_uid, change_key = organizer, created.id, created.ical_uid, created.change_key
        _audit(booking, "sync.outbound.created", f"Created on {organizer}'s calendar.")
    else:
        mailbox, event_id = event
        try:
            updated = graph.update_event(mailbox, event_id, draft_for(booking, rooms, mailbox, create=False))
        except NotFound:
            # Deleted in Outlook meanwhile: its deletion reaches us as a notification of its own.
            for link in links:
                db.session.delete(link)
            return
        ical_uid, change_key = updated.ical_uid, updated.change_key
        _audit(booking, "sync.outbound.updated", f"Updated on {mailbox}'s calendar.")
    if booking.rrule and booking.exceptions:
        _apply_exceptions(_Ctx(graph), booking.uid, mailbox, event_id)
    wanted = {p.room_email for _, p in rooms}
    links = _linked(booking.uid)  # read again: the inbound sync may have linked the room's copy meanwhile
    for link in links:
        if link.room_email not in wanted:
            db.session.delete(link)
    _record_links(booking.uid, sorted(wanted), links, mailbox,
                  _Made(id=event_id, ical_uid=ical_uid, change_key=change_key))


@dataclass(frozen=True)
class _Made:
    id: str
    ical_uid: str | None
    change_key: str | None


def _record_links(booking_uid: str, rooms: list[str], links: list[EventLink], organizer: str, event) -> None:
    """One link per room to the organizer's `event`: the existing one updated (the inbound sync may have
    linked the room's copy before this push recorded its answer), or a new one."""
    by_room = {link.room_email: link for link in links}
    for room in rooms:
        link = by_room.get(room)
        if link is None:
            db.session.add(EventLink(booking_uid=booking_uid, kind="two_way", room_email=room, room_event_id=None,
                                     organizer_email=organizer, organizer_event_id=event.id,
                                     ical_uid=event.ical_uid, organizer_change_key=event.change_key))
        else:
            link.organizer_email, link.organizer_event_id = organizer, event.id
            link.ical_uid, link.organizer_change_key = event.ical_uid, event.change_key


def _note_create(booking_uid: str, asked: tuple | None) -> None:
    """Record (organizer, start, end) of a create about to be sent, or clear it once its answer came."""
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking_uid))
    if state is not None:
        state.create_mailbox, state.create_start, state.create_end = asked or (None, None, None)


def _unanswered_create(booking_uid: str) -> tuple | None:
    row = db.session.execute(select(OutboundState.create_mailbox, OutboundState.create_start,
                                    OutboundState.create_end).where(OutboundState.booking_uid == booking_uid)).first()
    return tuple(row) if row is not None and row[0] else None


def _find_unanswered_create(graph, booking_uid: str, mailbox: str, start, end):
    """The event a create whose answer was lost made, if it made one: on the organizer's calendar at the times
    it asked for, carrying our `transactionId` (= the booking's uid; a series' occurrences lead to their
    master). Transient errors raise (the push is retried); a calendar we cannot read has no event of ours."""
    try:
        for found in graph.calendar_view(mailbox, start, end):
            if found.transaction_id == booking_uid:
                return found
            if found.type in ("occurrence", "exception") and found.series_master_id:
                master = graph.get_event(mailbox, found.series_master_id)
                if master.transaction_id == booking_uid:
                    return master
    except (NotFound, InvalidUser, MailboxNotEnabled):
        return None
    return None


def _end_event(graph, booking: Booking, event: tuple[str, str], *, cancelled: bool) -> None:
    mailbox, event_id = event
    try:
        if cancelled:
            if mailbox == _butler(booking.venue_id):
                graph.delete_event(mailbox, event_id)
            else:
                graph.cancel_event(mailbox, event_id, comment="Cancelled in Roomsync.")
        else:  # moved to spaces that are not synced: the rooms leave the meeting, the meeting stays
            current = graph.get_event(mailbox, event_id)
            people = tuple(a for a in current.attendees if a.type != "resource")
            graph.update_event(mailbox, event_id, EventDraft(
                attendees=people, location=Location(display_name=", ".join(s.name for s in booking.spaces))))
    except NotFound:
        pass


def _audit(booking: Booking, action: str, detail: str) -> None:
    audit.record(action, subject=f"booking:{booking.uid}", venue_id=booking.venue_id, detail=detail)
