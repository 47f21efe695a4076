"""Inbound live sync (Outlook → Roomsync): one room event at a time, made true in Roomsync.

Public API:
- `process_notifications(pair_id)`: job, queued by the webhook after it persisted a pair's notifications
  (and by `schedule.sweep` for rows left behind). Takes the pair's unprocessed `InboundNotification` rows in
  arrival order, de-duplicates them by event, runs `sync_room_event` once per event and lifecycle handling
  once per kind, and marks the rows done — each event's rows commit with its effects. One worker at a time
  per pair (a Redis lock; a second worker leaves, the first re-checks before it lets go). Transient trouble
  (throttling, 5xx, a revoked permission) records an incident and raises with the rows still new (retried);
  an event that fails otherwise is recorded and its rows marked "failed" so it cannot hold up the pair (the
  reconcile repairs it); a room whose mailbox is gone breaks the pair (admins emailed). While a job works on its
  pair, up to `SYNC_THREADS` - 1 threads take other pairs' new notifications (each under its pair's lock):
  the work waits on Graph most of the time, and the other pairs' jobs would wait in the queue meanwhile.
- `sync_room_event(pair_id, event_id, *, deleted=False, event=None)` → what happened ("created", "updated",
  "unchanged", "refused", "removed", "gone", "kept", "skipped"): reads the room's copy (unless `event` is given or the
  notification said deleted), its series master for an occurrence, the organizer's copy (by iCalUId: the room's
  copy has its subject and private flag stripped), a series' instances; decides with `plan.decide` (the same
  table as the initial sync: >10 paired rooms → removed, overnight → refused, otherwise imported and adjusted
  to the grid); then creates, replaces or cancels the booking. Reconcile (`reconcile.py`) calls it too.
- `prefetch(ctx, event_ids, gone_ids)`: reads a batch's room events, masters, organizers' copies (and, for
  the events gone from the room, their organizers' events) with `$batch`
  (what `process_notifications` does before syncing a batch one event at a time).
- `LiveContext` / `live_context(pair_id)`.

Rules (issue 6, DESIGN "The sync, in one page"):
- Idempotent: the booking an event makes has a uid derived from (room, event id), so two workers or a replay
  cannot make two; a room copy whose changeKey is the one last seen changes nothing (echoes of our own writes
  and duplicated notifications stop there, after one Graph call); otherwise the decision is compared with the
  booking field by field and occurrence by occurrence, and an equal one changes nothing.
- A booking Roomsync pushed is found by its link (the room's event id once known, else the meeting's
  iCalUId on this room) and is updated like any other: the organizer changed it in Outlook.
- Roomsync's newer edit wins: a booking whose push to Outlook is pending, or landed after the event was read,
  is left alone ("kept": `RoomsyncIsNewer`, checked inside the write's locked transaction) — the push brings
  Outlook in line and its echo is synced then. Without this a user's edit made while a notification was
  being processed was silently undone (found by the live-sync benchmark).
- Venue rules are not applied; overlaps and space-sharing are. A conflict refuses the Outlook event: the
  room declines it with the reason, the organizer is emailed, an existing booking it would have changed is
  cancelled (nothing half-applied stays behind), and Roomsync's conflicting bookings are pushed again so the
  room (which declined them while the Outlook event held the slot: the race) accepts them now.
- Adjusted times and shortened series are written back to the organizer's event (its next notification
  is then an echo). Deleted/cancelled events, and rooms removed from an event, cancel the booking or drop
  this space from it. Writes made here never queue outbound pushes of the same change (`INBOUND_FLAG`).
"""

from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..auth.models import User
from ..booking.errors import BookingError, ConflictError
from ..booking.models import Booking, Space, Venue
from ..booking.operations import (BookingInput, ExceptionInput, cancel_booking, create_booking, expand,
                                  occurrence_times, replace_booking)
from ..extensions import db
from ..graph.errors import (AuthFailed, ConnectionFailed, GraphError, NotFound, PermissionMissing,
                            ServiceUnavailable, Throttled)
from ..graph.types import EventDraft
from ..timeutil import localize, now_utc, to_local
from .models import SYNCING_STATES, EventLink, InboundNotification, Pair
from .plan import HORIZON_DAYS, Decision, DecisionContext, RoomItem, decide, holder_email

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (Throttled, ServiceUnavailable, ConnectionFailed, PermissionMissing, AuthFailed)
INBOUND_FLAG = "roomsync_sync_inbound"  # session.info key: writes made by the inbound sync
_NAMESPACE = uuid.UUID("0d6a3c4e-8f7b-4c3e-9a51-6f0e2b7d9c13")
DEFAULT_SUBJECTS = ("Booking", "Internal booking")  # what outbound writes for an untitled booking


@dataclass
class LiveContext:
    pair: Pair
    venue: Venue
    space: Space
    graph: object
    butler: str | None
    paired: frozenset[str]
    holders: dict = field(default_factory=dict)
    read_at: datetime | None = None  # when the event being synced was read from Outlook
    # `prefetch`: room events and organizers' copies of a batch of notifications, read with `$batch`
    prefetched_at: datetime | None = None
    prefetched_events: dict = field(default_factory=dict)
    prefetched_copies: dict = field(default_factory=dict)
    prefetched_organizer_events: dict = field(default_factory=dict)  # (mailbox, event id) → Event or None

    @property
    def room(self) -> str:
        return self.pair.room_email

    @property
    def tz(self) -> ZoneInfo:
        return self.venue.tz

    @property
    def today_start(self) -> datetime:
        local_today = to_local(now_utc(), self.tz).date()
        return localize(datetime.combine(local_today, datetime.min.time()), self.tz)

    @property
    def horizon_date(self) -> date:
        return to_local(now_utc(), self.tz).date() + timedelta(days=HORIZON_DAYS)

    @property
    def horizon(self) -> datetime:
        return localize(datetime.combine(self.horizon_date, datetime.min.time()), self.tz)


def live_context(pair_id: int, graph=None) -> LiveContext | None:
    from ..graph import graph_client
    from ..integration.operations import settings_for

    pair = db.session.get(Pair, pair_id, populate_existing=True)  # unsynced meanwhile? (objects outlive commits)
    if pair is None or pair.state not in SYNCING_STATES:
        return None
    venue = db.session.get(Venue, pair.venue_id, populate_existing=True)
    settings = settings_for(venue)
    paired = frozenset(db.session.scalars(select(Pair.room_email).where(Pair.venue_id == venue.id)))
    return LiveContext(pair=pair, venue=venue, space=pair.space, graph=graph or graph_client(),
                       butler=(settings.butler_email or "").lower() or None if settings else None, paired=paired)


@contextmanager
def inbound_writes():
    """Mark the session's writes as the inbound sync's, so the outbound receiver leaves them alone."""
    session = db.session()
    session.info[INBOUND_FLAG] = True
    try:
        yield
    finally:
        session.info.pop(INBOUND_FLAG, None)


def booking_uid_for(room_email: str, event_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{room_email.lower()}\n{event_id}"))


# ---------------------------------------------------------------------------------------------- the job


def process_notifications(pair_id: int) -> int:
    """Job: process the pair's new notifications, and meanwhile other pairs' (`_help_other_pairs`). Returns how
    many events of this pair were synced."""
    from ..db_engine import job_transactions
    from .locks import pair_lock

    _unmark_queued(pair_id)
    helpers = _start_helpers(pair_id)
    try:
        with job_transactions():
            return _process(pair_id, pair_lock)
    finally:
        for helper in helpers:
            helper.join()


HELP_BUDGET_SECONDS = 60  # a helper takes no new pair after this (the job's timeout is 600 s)


def _start_helpers(pair_id: int) -> list:
    """Up to `SYNC_THREADS` - 1 threads that process other pairs' new notifications while this job works on
    its own pair. Syncing an event mostly waits on Microsoft Graph, so one pair at a time would leave the
    worker idle most of the time, while the other pairs' jobs wait in the queue behind it. Each pair is
    taken under its own lock (as its own job would take it), so no two threads or workers ever work on one
    pair; a pair's job that finds its work done by a helper ends at once. None with inline jobs or without
    Redis (tests running jobs in their own thread; no locks to share)."""
    import threading
    import time

    from flask import current_app

    app = current_app._get_current_object()
    threads = int(app.config.get("SYNC_THREADS") or 1)
    if threads < 2 or app.config.get("SYNC_JOBS") or not app.config.get("REDIS_URL"):
        return []
    claimed, guard = {pair_id}, threading.Lock()
    deadline = time.monotonic() + HELP_BUDGET_SECONDS
    helpers = [threading.Thread(target=_help_other_pairs, args=(app, claimed, guard, deadline),
                                name=f"inbound-helper-{n}", daemon=True) for n in range(threads - 1)]
    for helper in helpers:
        helper.start()
    return helpers


def _help_other_pairs(app, claimed: set, guard, deadline: float) -> None:
    """A helper thread: take pairs with new notifications that nobody works on, until none is left or the
    budget is spent. A pair whose processing fails is queued again (its own job retries it)."""
    import time

    from ..db_engine import job_transactions
    from .locks import pair_lock

    with app.app_context():
        try:
            with job_transactions():
                while time.monotonic() < deadline:
                    waiting = list(db.session.scalars(select(InboundNotification.pair_id).where(
                        InboundNotification.state == "new", InboundNotification.pair_id.is_not(None))
                        .distinct()))
                    db.session.commit()
                    took = None
                    with guard:
                        took = next((p for p in waiting if p not in claimed), None)
                        if took is not None:
                            claimed.add(took)
                    if took is None:
                        return
                    try:
                        _process(took, pair_lock)  # 0 at once when another worker holds the pair
                    except Exception:  # noqa: BLE001 — recorded by _process as an incident; its own job retries
                        db.session.rollback()
                        log.info("pair %s: processing failed in a helper thread; queued again", took, exc_info=True)
                        _queue_again(took)
                        return
        finally:
            db.session.remove()


def _queue_again(pair_id: int) -> None:
    from .webhook import queue_processing

    try:
        queue_processing([pair_id])
    except Exception:  # noqa: BLE001 — the sweeper re-queues what is left
        log.warning("pair %s could not be queued again", pair_id, exc_info=True)


def _unmark_queued(pair_id: int) -> None:
    """From now on a new notification queues a new job (this one may already be past reading it)."""
    from flask import current_app

    if not current_app.config.get("REDIS_URL"):
        return
    try:
        from ..jobs import redis_connection
        from .webhook import QUEUED_KEY

        redis_connection().delete(QUEUED_KEY.format(pair_id))
    except Exception:  # noqa: BLE001 — Redis down: the key lapses by itself
        pass


def _process(pair_id: int, pair_lock) -> int:
    done = 0
    while True:
        with pair_lock("inbound", pair_id) as held:
            if not held:
                return done  # another worker holds the pair; it re-checks for new rows before it lets go
            done += _drain(pair_id, held)
        # Rows that arrived while we held the lock and whose own job found it taken: take them now.
        if not _has_new(pair_id):
            return done


def _has_new(pair_id: int) -> bool:
    return db.session.scalar(select(InboundNotification.id).where(
        InboundNotification.pair_id == pair_id, InboundNotification.state == "new").limit(1)) is not None


def _drain(pair_id: int, held) -> int:
    from .subscriptions import handle_lifecycle

    synced = 0
    while True:
        rows = list(db.session.scalars(select(InboundNotification).where(
            InboundNotification.pair_id == pair_id, InboundNotification.state == "new")
            .order_by(InboundNotification.id).limit(200)))
        if not rows:
            return synced
        ctx = live_context(pair_id)
        if ctx is None:  # unsynced or not live: nothing to apply them to
            _mark([r.id for r in rows], "ignored")
            continue
        lifecycle = [r for r in rows if r.kind == "lifecycle"]
        # event id → (its rows' ids, whether the last word is "deleted"), read now: the rows are expired while
        # the events are synced (other processes write the tables they share), and reading them again then
        # costs a query per row.
        changes: dict[str, tuple[list[int], bool]] = {}
        for row in rows:
            if row.kind == "change" and row.event_id:
                ids, _ = changes.get(row.event_id, ([], False))
                changes[row.event_id] = (ids + [row.id], row.change_type == "deleted")
        blank = [row.id for row in rows if row.kind == "change" and not row.event_id]
        lifecycle_events = list(dict.fromkeys(r.lifecycle_event or "" for r in lifecycle))
        lifecycle_ids = [r.id for r in lifecycle]
        if blank:
            _mark(blank, "ignored")
        try:
            prefetch(ctx, [event_id for event_id, (_, deleted) in changes.items() if not deleted],
                     gone_ids=[event_id for event_id, (_, deleted) in changes.items() if deleted])
        except GraphError as error:  # the rows stay new: the job fails and comes back
            if _room_gone(pair_id, error):
                return synced
            _trouble(pair_id, error)
            raise
        done: list[int] = []  # processed rows, marked a batch at a time (one transaction, not one per event;
        # a job killed before marking them makes its successor read those events again: harmless)
        try:
            count, stop = _sync_changes(pair_id, ctx, changes, held, done)
        finally:
            if done:
                db.session.rollback()
                _mark(done, "done")
        synced += count
        if stop:
            return synced
        for event in lifecycle_events:
            handle_lifecycle(pair_id, event)
        if lifecycle_ids:
            _mark(lifecycle_ids, "done")


def _sync_changes(pair_id: int, ctx: LiveContext, changes: dict, held, done: list[int]) -> tuple[int, bool]:
    """Sync each changed event (`changes`: event id → (row ids, deleted)); the ids of the rows done go to `done`. Returns (events synced, whether the
    pair broke: its rows then wait)."""
    synced = 0
    for event_id, (ids, deleted) in changes.items():
        # Graph's notifications say what happened, not in what order: the calendar is the truth, read now.
        # Only a batch whose last word is "deleted" may skip the read.
        try:
            sync_room_event(pair_id, event_id, deleted=deleted, ctx=ctx)
        except TRANSIENT_ERRORS as error:
            # Throttled, unavailable, permission gone: the rows stay new; the job fails and comes back (RQ, the
            # sweeper). What it is shows on the health page.
            _trouble(pair_id, error)
            raise
        except GraphError as error:
            if _room_gone(pair_id, error):
                return synced, True
            _trouble(pair_id, error)
            _mark(ids, "failed")  # one bad event must not hold up the pair: reconcile retries
            continue
        except Exception as error:  # noqa: BLE001 — same: recorded, skipped, repaired by the reconcile
            db.session.rollback()
            log.exception("pair %s: event %s could not be synced", pair_id, event_id)
            _trouble(pair_id, error)
            _mark(ids, "failed")
            continue
        done.extend(ids)
        synced += 1
        held.refresh()
    return synced, False


BATCH = 20


def _batched(ctx: LiveContext, keys: list, build) -> list[tuple]:
    """(key, BatchResult) for every key, 20 sub-requests per `$batch` POST."""
    out = []
    for start in range(0, len(keys), BATCH):
        chunk = keys[start:start + BATCH]
        results = ctx.graph.batch([build(f"r{n}", key) for n, key in enumerate(chunk)])
        out.extend(zip(chunk, results))
    return out


def prefetch(ctx: LiveContext, event_ids: list[str], gone_ids: list[str] = ()) -> None:
    """Read with `$batch` what a batch of notifications will need (a few POSTs for up to 20 events instead of
    one or two requests per event): the room's events (`event_ids`), their series masters, their organizers'
    copies, and for the events that are gone from the room (deleted: `gone_ids`; or found missing or
    cancelled) the organizer's event of their link, which says why (`_why_gone`). What a sub-request could not
    read for a passing reason (throttled, unavailable) is left out: the event's own sync reads it again and
    fails properly."""
    ctx.prefetched_events, ctx.prefetched_copies, ctx.prefetched_organizer_events = {}, {}, {}
    ctx.prefetched_at = None
    if len(event_ids) + len(gone_ids) < 2:
        return
    ctx.prefetched_at = now_utc()
    db.session.commit()
    graph, room = ctx.graph, ctx.room

    def keep(results, into):
        for key, result in results:
            if result.error is None:
                into[key] = result.value
            elif isinstance(result.error, NotFound):
                into[key] = None

    keep(_batched(ctx, list(dict.fromkeys(event_ids)),
                  lambda rid, eid: graph.get_event_request(rid, room, eid)), ctx.prefetched_events)
    masters = [e.series_master_id for e in ctx.prefetched_events.values()
               if e is not None and e.type in ("occurrence", "exception") and e.series_master_id
               and e.series_master_id not in ctx.prefetched_events]
    keep(_batched(ctx, list(dict.fromkeys(masters)),
                  lambda rid, eid: graph.get_event_request(rid, room, eid)), ctx.prefetched_events)
    lookups = list(dict.fromkeys(
        ((e.organizer_email or "").lower(), e.ical_uid) for e in ctx.prefetched_events.values()
        if e is not None and e.type in ("singleInstance", "seriesMaster") and e.ical_uid
        and (e.organizer_email or "").lower() not in ("", room)))
    for key, result in _batched(ctx, lookups, lambda rid, k: graph.find_events_by_ical_uid_request(rid, k[0], k[1])):
        if result.error is None:
            found = [e for e in (result.value or ()) if e.type in ("singleInstance", "seriesMaster")]
            ctx.prefetched_copies[key] = found[0] if found else None
        elif not isinstance(result.error, TRANSIENT_ERRORS):
            ctx.prefetched_copies[key] = None  # an external organizer or a mailbox we cannot read
    gone = list(gone_ids) + [event_id for event_id in event_ids if event_id in ctx.prefetched_events
                             and (ctx.prefetched_events[event_id] is None
                                  or ctx.prefetched_events[event_id].is_cancelled)]
    if gone:
        organizer_events = list(dict.fromkeys(tuple(row) for row in db.session.execute(
            select(EventLink.organizer_email, EventLink.organizer_event_id).where(
                EventLink.room_email == room, EventLink.room_event_id.in_(gone),
                EventLink.organizer_event_id.is_not(None)))))
        db.session.commit()
        keep(_batched(ctx, organizer_events, lambda rid, key: graph.get_event_request(rid, key[0], key[1])),
             ctx.prefetched_organizer_events)


def _trouble(pair_id: int, error: Exception) -> None:
    from .health import record_incident

    db.session.rollback()
    record_incident(pair_id, error)
    db.session.commit()


def _room_gone(pair_id: int, error: GraphError) -> bool:
    """The room's mailbox no longer exists: the pair is broken (admins emailed); its notifications wait."""
    from ..graph.errors import InvalidUser, MailboxNotEnabled
    from .pairs import mark_broken

    if not isinstance(error, (InvalidUser, MailboxNotEnabled)):
        return False
    db.session.rollback()
    pair = db.session.get(Pair, pair_id)
    _trouble(pair_id, error)
    if pair is not None:
        mark_broken(pair, f"The room {pair.room_display_name or pair.room_email} ({pair.room_email}) cannot be read "
                          f"any more in Microsoft 365 ({error}). Unsync it, then pair the space with another room "
                          "if needed.")
    return True


def _mark(ids: list[int], state: str) -> None:
    if ids:
        db.session.execute(update(InboundNotification).where(InboundNotification.id.in_(ids))
                           .values(state=state, processed_at=now_utc()))
    db.session.commit()


# ---------------------------------------------------------------------------------------------- one event


def sync_room_event(pair_id: int, event_id: str, *, deleted: bool = False, event=None,
                    ctx: LiveContext | None = None) -> str:
    ctx = ctx or live_context(pair_id)
    if ctx is None:
        return "skipped"
    _expire_shared_rows()  # other processes write bookings and links between events
    ctx.read_at = now_utc() if ctx.prefetched_at is None else ctx.prefetched_at
    with inbound_writes():
        try:
            return _sync(ctx, event_id, deleted, event)
        except RoomsyncIsNewer:
            db.session.rollback()
            return "kept"


def _expire_shared_rows() -> None:
    """Forget what this session knows of the rows other processes write meanwhile (bookings, their
    exceptions, links, push states); the venue, its spaces and users stay loaded for the whole batch."""
    from ..booking.models import OccurrenceException
    from .models import OutboundState

    session = db.session()
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (Booking, OccurrenceException, EventLink, OutboundState, InboundNotification)):
            session.expire(obj)


class RoomsyncIsNewer(Exception):
    """The booking changed in Roomsync after (or while) its event was read from Outlook: its push, pending or
    just landed, carries the newer version; applying what we read would undo it."""


def _check_not_newer(ctx: LiveContext, booking_uid: str) -> None:
    """Raise `RoomsyncIsNewer` when the booking's own push is pending, or landed after our read. Called inside
    the write's locked transaction (and before a cancellation), so an edit cannot slip in between."""
    from .models import OutboundState

    state, done_at = db.session.execute(select(OutboundState.state, OutboundState.done_at).where(
        OutboundState.booking_uid == booking_uid)).first() or (None, None)
    if state == "pending" or (state == "done" and done_at is not None and ctx.read_at is not None
                              and done_at > ctx.read_at):
        raise RoomsyncIsNewer(booking_uid)


def _read(ctx: LiveContext, event_id: str):
    if event_id in ctx.prefetched_events:
        return ctx.prefetched_events.pop(event_id)
    db.session.commit()  # never hold a transaction (on SQLite: the write lock) across a Graph call
    try:
        return ctx.graph.get_event(ctx.room, event_id)
    except NotFound:
        return None


def _sync(ctx: LiveContext, event_id: str, deleted: bool, event) -> str:
    if event is None and not deleted:
        event = _read(ctx, event_id)
    if event is not None and event.type in ("occurrence", "exception") and event.series_master_id:
        event_id = event.series_master_id
        event = _read(ctx, event_id)
    if event is None or event.is_cancelled:
        return _gone(ctx, event_id if event is None else event.id)
    link = _link_for(ctx, event)
    if link is not None and db.session.is_modified(link):
        db.session.commit()  # a room copy's id just learnt is identity, not content: kept whatever follows
    if link is not None and link.room_change_key and link.room_change_key == event.change_key:
        return "unchanged"
    booking = _booking_of(link)
    if link is not None and booking is None:  # its booking was cancelled in Roomsync meanwhile
        return "unchanged"
    organizer_copy = _organizer_copy(ctx, event)
    if link is None and organizer_copy is not None and _claim_own_event(ctx, event, organizer_copy):
        return "ours"
    if link is None and organizer_copy is None and ctx.prefetched_at is not None:
        # About to import an event nothing links, read with its batch and whose organizer's copy is gone: it
        # may be our own event, cancelled by a push after the batch was read (the push then dropped its
        # links). Read the room's copy again before taking it for a new Outlook booking.
        db.session.commit()
        try:
            event = ctx.graph.get_event(ctx.room, event.id)
        except NotFound:
            event = None
        if event is None or event.is_cancelled:
            return _gone(ctx, event_id if event is None else event.id)
    window_start = ctx.today_start if booking is None else min(ctx.today_start, booking.start_utc)
    if event.type == "seriesMaster":
        db.session.commit()
        instances = tuple(sorted(ctx.graph.iter_instances(ctx.room, event.id, window_start, ctx.horizon),
                                 key=lambda e: (e.start, e.id)))
        instances = tuple(i for i in instances if not i.is_cancelled)
    else:
        if booking is None and event.end <= window_start:
            return "skipped"  # an event already over: history is not imported (as in the initial sync)
        instances = (event,)
    item = RoomItem(key=event.id, room_event=event, instances=instances, organizer_copy=organizer_copy)
    decision = decide(item, DecisionContext(tz=ctx.tz, step_minutes=ctx.venue.granularity_minutes,
                                            allow_overnight=ctx.venue.allow_overnight, paired_rooms=ctx.paired,
                                            room_email=ctx.room, window_start=window_start,
                                            horizon_date=ctx.horizon_date))
    return _apply(ctx, item, decision, link, booking)


def _claim_own_event(ctx: LiveContext, event, organizer_copy) -> bool:
    """True when a room copy nothing links is an event Roomsync made: its organizer's copy carries our
    transactionId (a booking's uid). Never an Outlook booking then — taken for one it would clash with ours
    and be declined. A live booking of this pair's space gets the link its push has not recorded yet (the
    room answered before the push's own answer was committed) or never will (the answer was lost); a link
    the push recorded meanwhile just learns its room copy's id; the booking's pending push then makes the
    event match. A booking cancelled or moved off this space meanwhile gets nothing: the copy is on its way
    out, and its push (or the reconcile) takes care of it."""
    from .models import OutboundState

    uid = organizer_copy.transaction_id
    booking = db.session.scalar(select(Booking).where(Booking.uid == uid)) if uid else None
    if booking is None:
        return False
    if booking.cancelled_at is not None or ctx.space.id not in {s.id for s in booking.spaces}:
        return True
    link = db.session.scalar(select(EventLink).where(EventLink.booking_uid == uid, EventLink.room_email == ctx.room,
                                                     EventLink.kind == "two_way"))
    if link is None:
        db.session.add(EventLink(booking_uid=uid, kind="two_way", room_email=ctx.room, room_event_id=event.id,
                                 organizer_email=(event.organizer_email or "").lower(),
                                 organizer_event_id=organizer_copy.id, ical_uid=event.ical_uid,
                                 organizer_change_key=organizer_copy.change_key, room_change_key=None))
        db.session.execute(update(OutboundState).where(OutboundState.booking_uid == uid)
                           .values(create_mailbox=None, create_start=None, create_end=None))
        _audit(ctx, "sync.inbound.adopted", f"Linked the room's copy of an event Roomsync created (booking {uid}) "
                                            "before its push had recorded it.")
    elif link.room_event_id is None:
        link.room_event_id = event.id
    try:
        db.session.commit()
    except IntegrityError:  # the push recorded its link at this very moment: the next notification uses it
        db.session.rollback()
    return True


def _link_for(ctx: LiveContext, event) -> EventLink | None:
    link = db.session.scalar(select(EventLink).where(EventLink.room_email == ctx.room,
                                                     EventLink.room_event_id == event.id))
    if link is None and event.ical_uid:
        # A booking Roomsync pushed: its room copy's id is learnt from this first notification.
        link = db.session.scalar(select(EventLink).where(EventLink.room_email == ctx.room,
                                                         EventLink.room_event_id.is_(None),
                                                         EventLink.ical_uid == event.ical_uid))
        if link is not None:
            link.room_event_id = event.id
    return link


def _booking_of(link: EventLink | None) -> Booking | None:
    if link is None:
        return None
    booking = db.session.scalar(select(Booking).where(Booking.uid == link.booking_uid))
    return booking if booking is not None and booking.cancelled_at is None else None


def _organizer_copy(ctx: LiveContext, event):
    organizer = (event.organizer_email or "").lower()
    if not organizer or organizer == ctx.room or not event.ical_uid:
        return None
    if (organizer, event.ical_uid) in ctx.prefetched_copies:
        return ctx.prefetched_copies.pop((organizer, event.ical_uid))
    db.session.commit()
    try:
        found = ctx.graph.find_events_by_ical_uid(organizer, event.ical_uid)
    except TRANSIENT_ERRORS:
        raise  # a moment's trouble must not turn a private event public: retried with its notification
    except GraphError:
        return None  # an external organizer or a mailbox we cannot read: the room's copy stands in
    found = [e for e in found if e.type in ("singleInstance", "seriesMaster")]
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------- applying


def _holder(ctx: LiveContext, item: RoomItem) -> User | None:
    email = holder_email(item, ctx.room)
    if email is None or email == ctx.butler:
        return None
    if email not in ctx.holders:
        from ..integration.operations import user_for_provider_identity

        ctx.holders[email] = user_for_provider_identity(email, display_name=item.organizer_name)
        db.session.commit()
    return ctx.holders[email]


def _people(item: RoomItem, holder: User | None) -> list[str]:
    source = item.organizer_copy or item.room_event
    skip = {holder.email.lower()} if holder is not None else set()
    return [a.email.lower() for a in source.attendees
            if a.type != "resource" and a.email and a.email.lower() not in skip][:200]


def _title(item: RoomItem, booking: Booking | None) -> str:
    title = item.title
    if booking is not None and not booking.title and title in DEFAULT_SUBJECTS:
        return ""  # our own placeholder for an untitled booking, echoed back
    return title


def _input(ctx: LiveContext, item: RoomItem, decision: Decision, booking: Booking | None,
           holder: User | None) -> BookingInput:
    source = item.organizer_copy or item.room_event
    space_ids = [s.id for s in booking.spaces] if booking is not None else []
    if ctx.space.id not in space_ids:
        space_ids.append(ctx.space.id)
    kind = "regular" if holder is not None else (booking.kind if booking is not None and booking.kind != "regular"
                                                 else "internal")
    return BookingInput(space_ids=space_ids, start=decision.slot.start, end=decision.slot.end,
                        title=_title(item, booking), private=item.private, kind=kind,
                        description=booking.description if booking is not None else "",
                        attendees=_people(item, holder), rrule=decision.rrule,
                        custom_fields=dict(booking.custom_fields or {}) if booking is not None else {},
                        holder_id=holder.id if holder is not None else None,
                        online_meeting=bool(source.is_online_meeting))


@dataclass
class _Exc:
    source: ExceptionInput

    original_start_utc = property(lambda self: self.source.original_start)
    cancelled = property(lambda self: self.source.cancelled)
    start_utc = property(lambda self: self.source.start)
    end_utc = property(lambda self: self.source.end)
    title = property(lambda self: self.source.title)


def _same(ctx: LiveContext, booking: Booking, data: BookingInput, exceptions, join_url) -> bool:
    if (booking.title, booking.private, booking.kind, booking.holder_id, bool(booking.online_meeting)) != (
            data.title, bool(data.private), data.kind, data.holder_id, bool(data.online_meeting)):
        return False
    if sorted(booking.attendees or []) != sorted(data.attendees) or (join_url and booking.join_url != join_url):
        return False
    if sorted(s.id for s in booking.spaces) != sorted(data.space_ids):
        return False
    wanted = [(o.start, o.end) for o in expand(ctx.tz, data.start, data.end, data.rrule,
                                                [_Exc(e) for e in exceptions]) if not o.cancelled]
    have = [(o.start, o.end) for o in occurrence_times(booking) if not o.cancelled]
    return wanted == have and bool(booking.rrule) == bool(data.rrule)


def _link_rows(ctx: LiveContext, item: RoomItem, uid: str, link: EventLink | None, *, owes_write_back=False):
    """Rows written with the booking: its link. The room copy's changeKey is kept only when nothing is owed
    to Outlook: while a write-back is owed, the next notification or reconcile must not stop at "unchanged"
    (a write-back that failed is retried then)."""
    organizer = item.organizer_copy

    def rows(booking: Booking) -> None:
        if link is not None:
            _check_not_newer(ctx, booking.uid)
        target = link
        if target is None:
            target = EventLink(booking_uid=uid, kind="two_way", room_email=ctx.room, room_event_id=item.key)
            db.session.add(target)
        target.room_event_id = item.key
        target.organizer_email = item.organizer_email
        if organizer is not None:
            target.organizer_event_id = organizer.id
            target.organizer_change_key = organizer.change_key
        target.ical_uid = (organizer or item.room_event).ical_uid
        target.room_change_key = None if owes_write_back else item.room_event.change_key
        source = organizer or item.room_event
        if source.join_url:
            booking.join_url = source.join_url

    return rows


def _apply(ctx: LiveContext, item: RoomItem, decision: Decision, link: EventLink | None,
           booking: Booking | None) -> str:
    if decision.action == "remove":
        return _remove(ctx, item, decision, booking, link)
    if decision.action == "refuse":
        slot = decision.slot
        return _refuse(ctx, item, decision.reason, slot.start if slot else item.first.start,
                       slot.end if slot else item.first.end, booking, link)
    if decision.action == "skip":
        if booking is not None:
            _cancel(ctx, booking, link, "Every upcoming occurrence was cancelled in Outlook.")
        return "skipped"
    if decision.singles:
        return _apply_singles(ctx, item, decision)
    holder = _holder(ctx, item)
    data = _input(ctx, item, decision, booking, holder)
    exceptions = tuple(decision.exceptions)
    source = item.organizer_copy or item.room_event
    owes = _owes_write_back(ctx, item, decision)
    if booking is None:
        uid = booking_uid_for(ctx.room, item.key)
        if db.session.scalar(select(Booking.id).where(Booking.uid == uid)) is not None:
            return "unchanged"  # made by a concurrent run, or cancelled in Roomsync: not brought back
        try:
            create_booking(ctx.venue, data, actor=None, origin="microsoft", bypass_rules=True, uid=uid,
                           exceptions=exceptions, ignore_sync_freeze=True,
                           also_write=_audited(_link_rows(ctx, item, uid, None, owes_write_back=owes), ctx,
                                               "sync.inbound.created",
                                               f"Booked from Outlook: {_who(item)} at {_when(ctx, data.start, data.end)}."))
        except ConflictError as error:
            return _refuse(ctx, item, _conflict_reason(ctx, error), data.start, data.end, None, None,
                           conflicts=error.conflicts)
        except IntegrityError:
            db.session.rollback()
            return "unchanged"
        except BookingError as error:
            return _refuse(ctx, item, f"Roomsync cannot hold it: {error}", data.start, data.end, None, None)
        _write_back(ctx, item, decision)
        return "created"
    if _same(ctx, booking, data, exceptions, source.join_url):
        _link_rows(ctx, item, booking.uid, link, owes_write_back=owes)(booking)
        db.session.commit()
        _write_back(ctx, item, decision)
        return "unchanged"
    try:
        replace_booking(booking, data, exceptions=exceptions, actor=None, origin="microsoft",
                        also_write=_audited(_link_rows(ctx, item, booking.uid, link, owes_write_back=owes), ctx,
                                            "sync.inbound.updated",
                                            f"Changed in Outlook: {_who(item)} now at {_when(ctx, data.start, data.end)}."))
    except ConflictError as error:
        return _refuse(ctx, item, _conflict_reason(ctx, error), data.start, data.end, booking, link,
                       conflicts=error.conflicts)
    except BookingError as error:
        uid = booking.uid
        db.session.rollback()
        if db.session.scalar(select(Booking.cancelled_at).where(Booking.uid == uid)) is not None:
            return "kept"  # cancelled in Roomsync meanwhile: its push removes the event; never decline our own
        return _refuse(ctx, item, f"Roomsync cannot hold it: {error}", data.start, data.end, booking, link)
    _write_back(ctx, item, decision)
    return "updated"


def _audited(rows, ctx: LiveContext, action: str, detail: str):
    """`rows` plus the audit entry, in the booking's own transaction (no second one just for the log)."""
    def write(booking: Booking) -> None:
        rows(booking)
        _audit(ctx, action, detail)

    return write


def _apply_singles(ctx: LiveContext, item: RoomItem, decision: Decision) -> str:
    """A series whose pattern Roomsync cannot express: one booking per upcoming instance, each linked by the
    instance's id; instances gone from the series lose their booking."""
    holder = _holder(ctx, item)
    wanted = {slot.key: slot for slot in decision.singles}
    ical = (item.organizer_copy or item.room_event).ical_uid
    existing = {l.room_event_id: l for l in db.session.scalars(select(EventLink).where(
        EventLink.room_email == ctx.room, EventLink.ical_uid == ical))} if ical else {}
    for key, link in existing.items():
        if key not in wanted and key != item.key:
            booking = _booking_of(link)
            if booking is not None:
                _cancel(ctx, booking, link, "The occurrence was removed in Outlook.")
    for key, slot in wanted.items():
        link = existing.get(key)
        booking = _booking_of(link)
        one = Decision("import", slot=slot)
        data = _input(ctx, item, one, booking, holder)
        single_item = RoomItem(key=key, room_event=item.room_event, instances=(), organizer_copy=item.organizer_copy)
        if booking is None:
            uid = booking_uid_for(ctx.room, key)
            if db.session.scalar(select(Booking.id).where(Booking.uid == uid)) is not None:
                continue
            try:
                create_booking(ctx.venue, data, actor=None, origin="microsoft", bypass_rules=True, uid=uid,
                               ignore_sync_freeze=True, also_write=_link_rows(ctx, single_item, uid, None))
            except ConflictError as error:
                _refuse(ctx, single_item, _conflict_reason(ctx, error), slot.start, slot.end, None, None,
                        conflicts=error.conflicts, decline_id=key)
        elif not _same(ctx, booking, data, (), None):
            try:
                replace_booking(booking, data, also_write=_link_rows(ctx, single_item, booking.uid, link))
            except ConflictError as error:
                _refuse(ctx, single_item, _conflict_reason(ctx, error), slot.start, slot.end, booking, link,
                        conflicts=error.conflicts, decline_id=key)
    db.session.commit()
    return "updated"


def _owes_write_back(ctx: LiveContext, item: RoomItem, decision: Decision) -> bool:
    from .initial import _write_back_plan

    return decision.slot is not None and bool(_write_back_plan(ctx, item, item.key, decision.slot, decision))


def _write_back(ctx: LiveContext, item: RoomItem, decision: Decision) -> None:
    """PATCH the organizer's event to the adjusted times (or the shortened series), as the initial sync does."""
    from .initial import _apply_exceptions, _write_back_plan
    from .recurrence_map import shortened_graph_range

    if decision.slot is None:
        return
    plan = _write_back_plan(ctx, item, item.key, decision.slot, decision)
    if not plan:
        return
    recurrence = None
    if plan.get("until"):
        master = ctx.graph.get_event(plan["mailbox"], plan["event_id"])
        if master.recurrence is not None:
            recurrence = shortened_graph_range(master.recurrence, date.fromisoformat(plan["until"]))
    draft = EventDraft(start=datetime.fromisoformat(plan["start"]) if plan.get("start") else None,
                       end=datetime.fromisoformat(plan["end"]) if plan.get("end") else None,
                       recurrence=recurrence, time_zone=ctx.venue.timezone if item.is_series else None)
    try:
        ctx.graph.update_event(plan["mailbox"], plan["event_id"], draft)
    except NotFound:
        return
    if item.is_series:
        _apply_exceptions(ctx, booking_uid_for(ctx.room, item.key) if not _linked_uid(ctx, item) else
                          _linked_uid(ctx, item), plan["mailbox"], plan["event_id"])


def _linked_uid(ctx: LiveContext, item: RoomItem) -> str | None:
    return db.session.scalar(select(EventLink.booking_uid).where(EventLink.room_email == ctx.room,
                                                                 EventLink.room_event_id == item.key))


# ---------------------------------------------------------------------------------------------- refusals


def _conflict_reason(ctx: LiveContext, error: ConflictError) -> str:
    from .initial import _conflict_reason as reason

    return reason(ctx, error)


def _refuse(ctx: LiveContext, item: RoomItem, reason: str, start, end, booking: Booking | None,
            link: EventLink | None, *, conflicts=(), decline_id: str | None = None) -> str:
    """Decline as the room with the reason, email the organizer, cancel what this event had made; then push
    the Roomsync bookings it collided with again (the room may have declined them while it held the slot)."""
    from .health import record_incident

    db.session.rollback()
    if booking is not None:
        booking = db.session.scalar(select(Booking).where(Booking.uid == booking.uid))
        _cancel(ctx, booking, link and db.session.get(EventLink, link.id), f"Refused: {reason}")
    record_incident(ctx.pair.id, f"Declined an event of {_who(item)} at {_when(ctx, start, end)}: {reason}",
                    cause="refused")
    _audit(ctx, "sync.inbound.refused", f"Declined an event of {_who(item)} at {_when(ctx, start, end)}: {reason}")
    _email(ctx, item, "refused", reason, start, end)
    db.session.commit()
    try:
        ctx.graph.decline_event(ctx.room, decline_id or item.key, comment=f"Declined by Roomsync: {reason}",
                                send_response=True)
    except NotFound:
        pass
    _repush(ctx, conflicts)
    return "refused"


def _repush(ctx: LiveContext, conflicts) -> None:
    from .outbound import request_push

    ids = {getattr(c, "booking_id", None) for c in conflicts} - {None}
    for booking in db.session.scalars(select(Booking).where(Booking.id.in_(ids))) if ids else ():
        if booking.origin == "roomsync" or booking.kind != "regular":
            request_push(booking, reason="race")
    db.session.commit()


def _remove(ctx: LiveContext, item: RoomItem, decision: Decision, booking: Booking | None,
            link: EventLink | None) -> str:
    first = item.first
    if booking is not None:
        _cancel(ctx, booking, link, decision.reason)
    _audit(ctx, "sync.inbound.removed", f"Removed an event of {_who(item)} booking {len(decision.paired_rooms)} "
                                        "synced rooms.")
    _email(ctx, item, "removed", decision.reason, first.start, first.end, rooms=decision.paired_rooms)
    db.session.commit()
    try:
        if item.organizer_copy is not None:
            ctx.graph.cancel_event(item.organizer_email, item.organizer_copy.id,
                                   comment=f"Cancelled by Roomsync: {decision.reason}")
        else:
            ctx.graph.decline_event(ctx.room, item.key, comment=f"Declined by Roomsync: {decision.reason}")
    except NotFound:
        pass
    return "removed"


def _email(ctx: LiveContext, item: RoomItem, what: str, reason: str, start, end, rooms=()) -> None:
    from ..notify import messages

    email = holder_email(item, ctx.room)
    if not email or email == ctx.butler:
        return
    key = f"live:{ctx.room}:{item.key}:{item.room_event.change_key}:{what}"
    common = dict(venue=ctx.venue, organizer_email=email, organizer_name=item.organizer_name, start_utc=start,
                  end_utc=end, subject=item.title, reason=reason, dedup_key=key, private=item.private)
    if what == "removed":
        messages.event_removed(room_names=list(rooms), **common)
    else:
        messages.event_refused(room_name=ctx.pair.room_display_name or ctx.room, **common)


# ---------------------------------------------------------------------------------------------- removals


def _gone(ctx: LiveContext, event_id: str) -> str:
    """The room's event is gone. Why decides (the organizer's event says): cancelled or deleted by its
    organizer, or the room taken off it → the booking (or this space of it) is cancelled; the room declined
    it → for a booking made in Roomsync that is the race (Outlook took the slot before our push landed):
    Roomsync's booking stays and wins the slot (`_win_the_slot`); an Outlook-made booking is cancelled."""
    links = list(db.session.scalars(select(EventLink).where(EventLink.room_email == ctx.room,
                                                            EventLink.room_event_id == event_id)))
    if not links:
        return "gone"
    outcome = "gone"
    for link in links:
        booking = _booking_of(link)
        if booking is None:
            db.session.delete(link)
            continue
        _check_not_newer(ctx, booking.uid)  # our push moved or re-created it: its echo will tell
        why = _why_gone(ctx, link)
        if why in ("declined", "gone_from_room") and (booking.origin == "roomsync" or booking.kind != "regular"):
            link.room_event_id, link.room_change_key = None, None  # its next room copy is linked by iCalUId
            db.session.commit()
            _win_the_slot(ctx, booking)
            outcome = "kept"
            continue
        reasons = {"cancelled": "Cancelled in Outlook.", "removed": "The room was removed from the event in Outlook."}
        _cancel(ctx, booking, link, reasons.get(why, "Declined by the room in Outlook."))
    db.session.commit()
    return outcome


def _why_gone(ctx: LiveContext, link: EventLink) -> str:
    """cancelled | removed | declined | gone_from_room, from the organizer's copy (one read)."""
    if not link.organizer_email or not link.organizer_event_id:
        return "cancelled"
    key = (link.organizer_email, link.organizer_event_id)
    if key in ctx.prefetched_organizer_events:
        event = ctx.prefetched_organizer_events.pop(key)
        if event is None:
            return "cancelled"
    else:
        db.session.commit()
        try:
            event = ctx.graph.get_event(link.organizer_email, link.organizer_event_id)
        except NotFound:
            return "cancelled"
        except GraphError as error:
            if isinstance(error, TRANSIENT_ERRORS):
                raise
            return "cancelled"  # a mailbox we cannot read any more: its room copy is gone, so is the booking
    if event.is_cancelled:
        return "cancelled"
    mine = [a for a in event.room_attendees if a.email.lower() == ctx.room]
    if not mine:
        return "removed"
    # Still on the organizer's event: declined, or its room copy deleted by hand in the room's mailbox.
    return "declined" if mine[0].response == "declined" else "gone_from_room"


def _win_the_slot(ctx: LiveContext, booking: Booking) -> None:
    """Roomsync's booking stays: decline (as the room, organizers told) the Outlook events holding its times,
    then push it again so the room accepts it. When no event holds them, the room declined for reasons of its
    own (its booking window, maximum duration…): the push is marked failed with that reason, and the booking
    stays in Roomsync — shown to its holder and the admins — rather than being thrown away."""
    from ..booking.operations import occurrence_times
    from .outbound import mark_push_failed, request_push

    times = [(o.start, o.end) for o in occurrence_times(booking) if not o.cancelled and o.end > now_utc()]
    if not times:
        return
    uid = booking.uid
    ical = set(db.session.scalars(select(EventLink.ical_uid).where(EventLink.booking_uid == uid)))
    db.session.commit()
    holding = []
    for event in ctx.graph.iter_calendar_view(ctx.room, min(t[0] for t in times), max(t[1] for t in times)):
        if event.is_cancelled or event.ical_uid in ical:
            continue
        if any(event.start < end and start < event.end for start, end in times):
            holding.append(event)
    booking = db.session.scalar(select(Booking).where(Booking.uid == uid))
    if not holding:
        mark_push_failed(booking, f"The room {ctx.pair.room_display_name or ctx.room} declined it in Outlook "
                                  "(its own booking policy: booking window, maximum duration or recurring meetings).")
        db.session.commit()
        return
    for event in holding:
        key = event.series_master_id or event.id
        master = ctx.graph.get_event(ctx.room, key) if event.series_master_id else event
        item = RoomItem(key=key, room_event=master, instances=(event,),
                        organizer_copy=_organizer_copy(ctx, master))
        _refuse(ctx, item, f"{ctx.space.name} was already booked in Roomsync for that time.", event.start,
                event.end, None, None)
    booking = db.session.scalar(select(Booking).where(Booking.uid == uid))
    request_push(booking, reason="race")
    db.session.commit()


def _cancel(ctx: LiveContext, booking: Booking, link: EventLink | None, why: str) -> None:
    """Cancel the booking — or, when it also holds other spaces, take only this space out of it."""
    if link is not None:
        db.session.delete(link)
    if booking is None or booking.cancelled_at is not None:
        db.session.commit()
        return
    others = [s.id for s in booking.spaces if s.id != ctx.space.id]
    if ctx.space.id not in {s.id for s in booking.spaces}:
        db.session.commit()
        return
    if others:
        from ..booking.operations import input_from_booking

        data = input_from_booking(booking)
        data.space_ids = others
        from ..booking.operations import update_booking

        update_booking(booking, data, actor=None, origin="microsoft", bypass_rules=True, ignore_sync_freeze=True)
    else:
        cancel_booking(booking, actor=None, origin="microsoft", ignore_sync_freeze=True)
    _audit(ctx, "sync.inbound.cancelled", f"{why} ({_when(ctx, booking.start_utc, booking.end_utc)})")
    db.session.commit()


# ---------------------------------------------------------------------------------------------- helpers


def _who(item: RoomItem) -> str:
    return item.organizer_name or "an organizer"


def _when(ctx: LiveContext, start, end) -> str:
    a, b = to_local(start, ctx.tz), to_local(end, ctx.tz)
    return f"{a:%a %d %b %Y %H:%M}–{b:%H:%M}"


def _audit(ctx: LiveContext, action: str, detail: str) -> None:
    audit.record(action, subject=f"pair:{ctx.pair.id}", venue_id=ctx.venue.id, detail=detail)
