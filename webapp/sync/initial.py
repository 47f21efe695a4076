"""The initial sync of a new pair: one resumable background job per pair, and its dry run.

Public API:
- `run_initial_sync(pair_id)`: the job (`pairs.enqueue_initial_sync` queues it after the pair's commit;
  `schedule.sweep` queues it again for a run whose worker died). Safe to run any number of times, at once
  or after a crash: a lease on the run lets one worker at a time work on it, and every step commits its
  effects together with its progress, so a re-run continues where the last one stopped.
- `run_preview(preview_id)`: the dry run (job): fills a `SyncPreview` with what the initial sync would do,
  reading both sides and changing neither.
- `LEASE_SECONDS` (config `SYNC_LEASE_SECONDS`): how long a worker's claim on a run lasts without renewal.

The steps (the reference guide's five, plus our catch-up and audit; `models.RUN_STEPS`):
1. note the space's upcoming eligible bookings (`NotedBooking` snapshots: only this space, only the upcoming
   occurrences of a series; regular bookings with a holder and internal ones; not those already linked to
   an event of this room) — one transaction with the step change;
2. delete their one-way sync events from the butler's calendar (`$batch`; a missing event counts as deleted);
3. delete every booking of the space, past ones included; a multi-space booking only loses this space; no
   notifications — one transaction;
4. import the room's upcoming events (calendarView from midnight today to the 1,080-day horizon; the
   organizers' copies read by iCalUId through `$batch`): each decided by `plan.decide`, written as one
   booking (a series as a series with its exceptions) whose report line and `EventLink` commit with it;
   adjusted times and shortened series are written back to the organizer's event (`$batch` PATCH, owed
   writes kept in the report line's `pending` until done); refused events are declined as the room with a
   reason and their organizers emailed; events booking more than 10 synced rooms are cancelled;
5. restore the noted bookings, each under a uid chosen before it is made (a retry finds it) and created on
   its holder's calendar (the butler's for internal ones) with `transactionId` = that uid, so a retried
   create never makes two events; a conflict with an imported event, a holder missing from the directory or
   an event Outlook refuses leaves it out, with the reason in the report;
6. catch up with what changed in the room meanwhile (the space took no bookings, Outlook did): new events are
   imported as in step 4, events deleted meanwhile lose their booking, restored events get their room copy's
   id;
7. the parity audit (`parity.audit_pair`): room calendar vs space bookings from today on, stored on the run.

Idempotency keys: the run's report lines (unique per run, kind and key: the room event id or the noted
booking id), deterministic booking uids (`_uid`), `transactionId` on every create. Failures raise (the
job's worker logs them; `schedule.sweep` retries after the lease lapses) until `MAX_ATTEMPTS`, then the pair
shows "failed" with the reason. Every action writes an audit entry (subject `pair:<id>`).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Iterable

from flask import current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..auth.models import User, normalise_email
from ..booking.errors import BookingError, ConflictError, ValidationError
from ..booking.models import Booking, Occurrence, OccurrenceException, Space, Venue, booking_spaces
from ..booking.operations import (BookingInput, ExceptionInput, create_booking, occurrence_times,
                                  space_closure)
from ..db_engine import serialised_writes
from ..extensions import db
from ..graph.errors import GraphError, NotFound
from ..graph.types import Attendee, EventDraft, Location
from ..timeutil import localize, now_utc, to_local
from .models import LAST_STEP, RUN_STEPS, EventLink, InitialSync, NotedBooking, Pair, SyncPreview, SyncReportItem
from .plan import HORIZON_DAYS, Decision, DecisionContext, RoomItem, decide, holder_email

log = logging.getLogger(__name__)

LEASE_SECONDS = 120
MAX_ATTEMPTS = 5
CHUNK = 50
BATCH = 20
VIEW_PAGE = 500
_NAMESPACE = uuid.UUID("5b0c8a59-6a43-4a38-9b3f-1f3c6f1d2e11")


# ---------------------------------------------------------------------------------------------- context


@dataclass
class _Run:
    """Everything one pass of the job works with (re-read from the database at each pass)."""

    run: InitialSync
    pair: Pair
    venue: Venue
    space: Space
    graph: object
    owner: str
    butler: str
    lease: timedelta
    holders: dict[str, User | None] = field(default_factory=dict)
    in_directory: dict[str, bool] = field(default_factory=dict)

    @property
    def tz(self):
        return self.venue.tz

    @property
    def room(self) -> str:
        return self.pair.room_email

    @property
    def window_start(self) -> datetime:
        return self.run.window_start

    @property
    def horizon(self) -> datetime:
        return self.window_start + timedelta(days=HORIZON_DAYS + 1)

    @property
    def horizon_date(self) -> date:
        return to_local(self.window_start, self.tz).date() + timedelta(days=HORIZON_DAYS)


def _uid(run_id: int, what: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{run_id}:{what}"))


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _lease_seconds() -> timedelta:
    return timedelta(seconds=float(current_app.config.get("SYNC_LEASE_SECONDS", LEASE_SECONDS)))


def _claim(pair_id: int, owner: str, lease: timedelta) -> InitialSync | None:
    """The run of `pair_id`, leased to `owner` — or None when another worker holds a live lease."""
    run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair_id))
    if run is None:
        db.session.add(InitialSync(pair_id=pair_id, step=1, counts={}))
        try:
            db.session.commit()
        except IntegrityError:  # another worker created it first
            db.session.rollback()
    now = now_utc()
    claimed = db.session.execute(
        update(InitialSync)
        .where(InitialSync.pair_id == pair_id,
               or_(InitialSync.lease_until.is_(None), InitialSync.lease_until < now, InitialSync.lease_owner == owner))
        .values(lease_owner=owner, lease_until=now + lease)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if not claimed:
        return None
    return db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair_id)
                             .execution_options(populate_existing=True))


def _release() -> None:
    """End the current transaction before a Graph call. It has only read: the job's objects stay usable (they
    are not expired on commit, see `_run_initial_sync`), and on SQLite no network call holds the write lock."""
    db.session.commit()


def _renew(ctx: _Run) -> None:
    ctx.run.lease_until = now_utc() + ctx.lease


class LeaseLost(RuntimeError):
    """Another worker took the run over (this one stalled past its lease): stop without writing more."""


def _commit(ctx: _Run) -> None:
    """Commit with a renewed lease — unless the lease was taken over meanwhile, then stop."""
    owner = db.session.scalar(select(InitialSync.lease_owner).where(InitialSync.id == ctx.run.id))
    if owner != ctx.owner:
        db.session.rollback()
        raise LeaseLost(f"run {ctx.run.id} is now leased to {owner}")
    _renew(ctx)
    db.session.commit()


# ---------------------------------------------------------------------------------------------- the job


def run_initial_sync(pair_id: int) -> None:
    # SQLite: a transaction that has read cannot become the writer while another connection holds the write
    # lock — SQLite answers "database is locked" at once, without waiting (its busy handler only runs for a
    # transaction that has not read yet). Every transaction of the job reads before it writes, and requests
    # and other workers write all the time: so each begins as the writer, and none stays open across a Graph
    # call (`_release`).
    from .inbound import inbound_writes

    db.session.commit()  # what the caller's session has open began before this
    with serialised_writes(), inbound_writes():  # its writes come from Outlook: nothing to push back
        _run_initial_sync(pair_id)


def _run_initial_sync(pair_id: int) -> None:
    pair = db.session.get(Pair, pair_id)
    if pair is None:
        log.info("initial sync of pair %s: the pair is gone (unsynced); nothing to do", pair_id)
        return
    if pair.state not in ("queued", "running"):
        log.info("initial sync of pair %s: state %s, nothing to do", pair_id, pair.state)
        return
    owner, lease = _owner(), _lease_seconds()
    run = _claim(pair_id, owner, lease)
    if run is None:
        log.info("initial sync of pair %s: another worker holds it", pair_id)
        return
    pair = db.session.get(Pair, pair_id)
    if pair is None:
        return
    # Each commit would expire every object the run holds (pair, run, venue, space, the chunk's rows) and the
    # next attribute access would reload it: thousands of SELECTs for a large room. What another process may
    # change meanwhile (the lease owner) is read with explicit queries.
    session = db.session()
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        _run_claimed(pair_id, run, pair, owner, lease)
    finally:
        session.expire_on_commit = expire_on_commit


def _run_claimed(pair_id: int, run: InitialSync, pair: Pair, owner: str, lease: timedelta) -> None:
    try:
        ctx = _context(run, pair, owner, lease)
        if run.started_at is None:
            run.started_at = now_utc()
            audit.record("sync.started", subject=f"pair:{pair.id}", venue_id=ctx.venue.id,
                         detail=f"Initial sync of {ctx.space.name} with {pair.room_display_name} started.")
        pair.state = "running"
        _set_detail(ctx)
        _commit(ctx)
        while run.step <= LAST_STEP:
            STEPS[run.step](ctx)
    except LeaseLost as error:
        log.warning("initial sync of pair %s: %s; stopping this pass", pair_id, error)
        return
    except Exception as error:
        db.session.rollback()
        _record_failure(pair_id, owner, error)
        raise
    _finish(ctx)


def _context(run: InitialSync, pair: Pair, owner: str, lease: timedelta) -> _Run:
    from ..graph import graph_client
    from ..integration.operations import settings_for

    venue = db.session.get(Venue, pair.venue_id)
    settings = settings_for(venue)
    return _Run(run=run, pair=pair, venue=venue, space=pair.space, graph=graph_client(), owner=owner,
                butler=normalise_email(settings.butler_email if settings else ""), lease=lease)


def _record_failure(pair_id: int, owner: str, error: Exception) -> None:
    run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair_id))
    pair = db.session.get(Pair, pair_id)
    if run is None or pair is None or run.lease_owner != owner:
        return
    why = _describe(error)
    # Failures count, not claims: a worker killed mid-run (a deploy, the OOM killer) is no reason to give up.
    run.attempts += 1
    run.error = why
    run.lease_until = now_utc()  # let the sweeper retry at once
    if run.attempts >= MAX_ATTEMPTS:
        pair.state = "failed"
        pair.state_detail = f"Stopped at step {run.step} ({run.step_name.lower()}) after {run.attempts} attempts: {why}"
        audit.record("sync.failed", subject=f"pair:{pair.id}", venue_id=pair.venue_id, detail=pair.state_detail)
    else:
        pair.state_detail = (f"Step {run.step} of {LAST_STEP}: {run.step_name} — interrupted ({why}); "
                             "it will be retried shortly.")
    db.session.commit()


def _describe(error: Exception) -> str:
    if isinstance(error, GraphError):
        return f"Microsoft 365 answered: {error}"
    return f"{type(error).__name__}: {error}"[:500]


def _finish(ctx: _Run) -> None:
    run, pair = ctx.run, ctx.pair
    run.finished_at = now_utc()
    run.lease_until = None
    run.error = ""
    pair.state = "done"
    pair.state_detail = _summary(ctx)
    audit.record("sync.finished", subject=f"pair:{pair.id}", venue_id=ctx.venue.id, detail=pair.state_detail)
    from ..jobs import enqueue_after_commit
    from .subscriptions import ensure_subscription

    enqueue_after_commit(ensure_subscription, pair.id)  # then the pair goes live
    db.session.commit()
    log.info("initial sync of pair %s done: %s", pair.id, pair.state_detail)


def _counts(ctx: _Run) -> dict:
    counts = dict(ctx.run.counts or {})
    for kind, number in db.session.execute(
            select(SyncReportItem.kind, func.count()).where(SyncReportItem.run_id == ctx.run.id)
            .group_by(SyncReportItem.kind)):
        counts[kind] = number
    return counts


def _set_detail(ctx: _Run) -> None:
    counts = _counts(ctx)
    ctx.run.counts = counts
    shown = [f"{counts[k]} {label}" for k, label in (("noted", "noted"), ("deleted", "cleared"),
                                                   ("imported", "imported"), ("adjusted", "adjusted"),
                                                   ("refused", "refused"), ("restored", "restored"),
                                                   ("not_restored", "not restored")) if counts.get(k)]
    text = f"Step {ctx.run.step} of {LAST_STEP}: {RUN_STEPS.get(ctx.run.step, 'Finishing')}"
    ctx.pair.state_detail = text + (" — " + ", ".join(shown) if shown else "")


def _summary(ctx: _Run) -> str:
    counts = _counts(ctx)
    ctx.run.counts = counts
    parts = [f"{counts.get('imported', 0)} imported", f"{counts.get('adjusted', 0)} adjusted",
             f"{counts.get('refused', 0) + counts.get('removed', 0)} refused",
             f"{counts.get('restored', 0)} restored", f"{counts.get('not_restored', 0)} not restored"]
    parity = ctx.run.parity or {}
    tail = ""
    if parity:
        tail = " — both sides agree" if parity.get("agrees") else " — differences found, see the report"
    return ", ".join(parts) + tail


def _next_step(ctx: _Run, **counts) -> None:
    ctx.run.counts = {**(ctx.run.counts or {}), **counts}
    ctx.run.step += 1
    _set_detail(ctx)
    _commit(ctx)


def _audit(ctx: _Run, action: str, detail: str) -> None:
    audit.record(action, subject=f"pair:{ctx.pair.id}", venue_id=ctx.venue.id, detail=detail)


def _when(ctx: _Run, start: datetime | None, end: datetime | None = None) -> str:
    if start is None:
        return ""
    local = to_local(start, ctx.tz)
    text = f"{local:%a %d %b %Y %H:%M}"
    if end is not None:
        text += f"–{to_local(end, ctx.tz):%H:%M}"
    return text


# ---------------------------------------------------------------------------------------------- step 1


def _space_bookings(space_id: int):
    return select(Booking).join(booking_spaces, booking_spaces.c.booking_id == Booking.id).where(
        booking_spaces.c.space_id == space_id)


def _linked_here(ctx: _Run) -> set[str]:
    return set(db.session.scalars(select(EventLink.booking_uid).where(
        EventLink.room_email == ctx.room, EventLink.kind == "two_way")))


def _noteworthy(booking: Booking, linked: set[str]) -> bool:
    if booking.cancelled_at is not None or booking.uid in linked:
        return False
    if booking.kind == "internal":
        return True
    return booking.kind == "regular" and booking.holder_id is not None


def snapshot_upcoming(booking: Booking, space_id: int, window_start: datetime) -> tuple[dict, datetime] | None:
    """What to restore of `booking` on `space_id`: its upcoming part only (a series restarts at its first
    occurrence from `window_start` on, keeping its later exceptions), or None when nothing is upcoming."""
    times = occurrence_times(booking)
    upcoming = [t for t in times if t.original_start >= window_start or (not t.cancelled and t.start >= window_start)]
    live = [t for t in upcoming if not t.cancelled]
    if not live:
        return None
    data = {"space_ids": [space_id], "title": booking.title, "description": booking.description,
            "private": booking.private, "kind": booking.kind, "attendees": list(booking.attendees or []),
            "holder_id": booking.holder_id, "rrule": None, "exceptions": []}
    if not booking.rrule:
        data.update(start=booking.start_utc.isoformat(), end=booking.end_utc.isoformat())
        return data, booking.start_utc
    from ..booking.recurrence import Recurrence

    first = upcoming[0]
    length = booking.end_utc - booking.start_utc
    rule = Recurrence.parse(booking.rrule)
    skipped = len(times) - len(upcoming)
    if rule.count is not None:
        rule = rule.with_count(rule.count - skipped)
    data.update(start=first.original_start.isoformat(), end=(first.original_start + length).isoformat(),
                rrule=rule.to_rrule())
    for t in upcoming:
        if t.cancelled:
            data["exceptions"].append({"original_start": t.original_start.isoformat(), "cancelled": True})
        elif (t.start, t.end) != (t.original_start, t.original_start + length) or t.title is not None:
            data["exceptions"].append({"original_start": t.original_start.isoformat(), "cancelled": False,
                                       "start": t.start.isoformat(), "end": t.end.isoformat(), "title": t.title})
    return data, live[0].start


def _note(ctx: _Run) -> list[NotedBooking]:
    """Step 1's choice, without writing (the dry run uses it too)."""
    linked = _linked_here(ctx)
    noted = []
    one_way = {link.booking_uid: link for link in db.session.scalars(
        select(EventLink).where(EventLink.kind == "one_way", EventLink.room_email == ctx.room))}
    for booking in db.session.scalars(_space_bookings(ctx.space.id).order_by(Booking.start_utc, Booking.id)):
        if not _noteworthy(booking, linked):
            continue
        snap = snapshot_upcoming(booking, ctx.space.id, ctx.window_start)
        if snap is None:
            continue
        data, first_start = snap
        link = one_way.get(booking.uid)
        noted.append(NotedBooking(
            run_id=ctx.run.id, source_booking_id=booking.id, source_uid=booking.uid, snapshot=data,
            first_start_utc=first_start, holder_email=booking.holder.email.lower() if booking.holder else None,
            butler_event_id=link.organizer_event_id if link else None, state="noted"))
    return noted


def step_note(ctx: _Run) -> None:
    if ctx.run.window_start is None:
        ctx.run.window_start = localize(datetime.combine(to_local(now_utc(), ctx.tz).date(), datetime.min.time()),
                                        ctx.tz)
    db.session.execute(delete(NotedBooking).where(NotedBooking.run_id == ctx.run.id))  # a half-done pass
    noted = _note(ctx)
    db.session.add_all(noted)
    _audit(ctx, "sync.noted", f"Noted {len(noted)} upcoming bookings of {ctx.space.name} to restore after the import.")
    _next_step(ctx, noted=len(noted))


# ---------------------------------------------------------------------------------------------- step 2


def step_remove_butler_events(ctx: _Run) -> None:
    pending = list(db.session.scalars(select(NotedBooking).where(
        NotedBooking.run_id == ctx.run.id, NotedBooking.butler_event_id.is_not(None),
        NotedBooking.butler_removed.is_(False))))
    removed = int((ctx.run.counts or {}).get("butler_removed", 0))
    _release()
    for chunk in _chunks(pending, BATCH):
        if not ctx.butler:
            raise GraphError("No butler is configured, so its one-way sync events cannot be removed.",
                             code="noButler")
        requests = [ctx.graph.delete_event_request(f"d{n.id}", ctx.butler, n.butler_event_id) for n in chunk]
        for noted, result in zip(chunk, ctx.graph.batch(requests)):
            if result.error is not None and not isinstance(result.error, NotFound):
                raise result.error
            noted.butler_removed = True
            removed += 1
        ctx.run.counts = {**(ctx.run.counts or {}), "butler_removed": removed}
        _commit(ctx)
    if removed:
        _audit(ctx, "sync.butler_events_removed", f"Removed {removed} one-way sync events from the butler's calendar.")
    _next_step(ctx, butler_removed=removed)


# ---------------------------------------------------------------------------------------------- step 3


def step_clear_space(ctx: _Run) -> None:
    space_id = ctx.space.id
    rows = db.session.execute(
        select(booking_spaces.c.booking_id, func.count()).where(booking_spaces.c.booking_id.in_(
            select(booking_spaces.c.booking_id).where(booking_spaces.c.space_id == space_id)))
        .group_by(booking_spaces.c.booking_id)).all()
    only_here = [booking_id for booking_id, count in rows if count == 1]
    shared = [booking_id for booking_id, count in rows if count > 1]
    for chunk in _chunks(only_here, 500):
        db.session.execute(delete(Booking).where(Booking.id.in_(chunk)))
    for chunk in _chunks(shared, 500):
        db.session.execute(delete(booking_spaces).where(booking_spaces.c.booking_id.in_(chunk),
                                                        booking_spaces.c.space_id == space_id))
        db.session.execute(delete(Occurrence).where(Occurrence.booking_id.in_(chunk), Occurrence.space_id == space_id))
    # Deleting rows does not go through the ORM cascade on SQLite without the foreign-key pragma in every
    # connection; make sure no orphan occurrence of this space remains either way.
    db.session.execute(delete(Occurrence).where(Occurrence.space_id == space_id,
                                                Occurrence.booking_id.in_(only_here or [-1])))
    db.session.expire_all()
    _audit(ctx, "sync.space_cleared",
           f"Deleted {len(only_here)} bookings of {ctx.space.name}"
           + (f" and removed it from {len(shared)} bookings of several spaces" if shared else "")
           + ", without notifications.")
    _next_step(ctx, deleted=len(only_here) + len(shared))


# ---------------------------------------------------------------------------------------------- step 4


def _list_room(ctx: _Run) -> list:
    return list(ctx.graph.iter_calendar_view(ctx.room, ctx.window_start, ctx.horizon, page_size=VIEW_PAGE))


def _group(events: Iterable) -> dict[str, list]:
    """Room instances by item key: a single event's id, or its series master's id."""
    grouped: dict[str, list] = defaultdict(list)
    for event in events:
        if event.is_cancelled:
            continue
        key = event.series_master_id if event.type in ("occurrence", "exception") and event.series_master_id \
            else event.id
        grouped[key].append(event)
    for instances in grouped.values():
        instances.sort(key=lambda e: (e.start, e.id))
    return grouped


def _hydrate(ctx: _Run, grouped: dict[str, list], keys: list[str]) -> list[RoomItem]:
    """RoomItems for `keys`: series masters read from the room, organizers' copies found by iCalUId — two
    `$batch` rounds for up to 20 items each."""
    masters: dict[str, object] = {}
    series_keys = [k for k in keys if grouped[k][0].type in ("occurrence", "exception")]
    for chunk in _chunks(series_keys, BATCH):
        results = ctx.graph.batch([ctx.graph.get_event_request(f"m{i}", ctx.room, key) for i, key in enumerate(chunk)])
        for key, result in zip(chunk, results):
            if result.error is not None:
                if isinstance(result.error, NotFound):
                    continue  # deleted meanwhile: the catch-up sees it gone
                raise result.error
            masters[key] = result.value
    heads = {}
    for key in keys:
        if key in masters:
            heads[key] = masters[key]
        elif grouped[key][0].type not in ("occurrence", "exception"):
            heads[key] = grouped[key][0]
    lookups = [(key, head) for key, head in heads.items()
               if head.organizer_email and head.organizer_email.lower() != ctx.room and head.ical_uid]
    copies: dict[str, object] = {}
    for chunk in _chunks(lookups, BATCH):
        requests = [ctx.graph.find_events_by_ical_uid_request(f"o{i}", head.organizer_email, head.ical_uid)
                    for i, (key, head) in enumerate(chunk)]
        for (key, head), result in zip(chunk, ctx.graph.batch(requests)):
            if result.error is not None:
                from .inbound import TRANSIENT_ERRORS

                if isinstance(result.error, TRANSIENT_ERRORS):
                    raise result.error  # a moment's trouble must not make a private event public: retried
                continue  # an external organizer or a mailbox we cannot read: the room's copy stands in
            found = [e for e in (result.value or ()) if e.type in ("singleInstance", "seriesMaster")]
            if found:
                copies[key] = found[0]
    return [RoomItem(key=key, room_event=head, instances=tuple(grouped[key]), organizer_copy=copies.get(key))
            for key, head in heads.items()]


def _decision_context(ctx: _Run, paired: frozenset[str] | None = None) -> DecisionContext:
    if paired is None:
        paired = frozenset(db.session.scalars(select(Pair.room_email).where(Pair.venue_id == ctx.venue.id)))
    return DecisionContext(tz=ctx.tz, step_minutes=ctx.venue.granularity_minutes,
                           allow_overnight=ctx.venue.allow_overnight, paired_rooms=paired, room_email=ctx.room,
                           window_start=ctx.window_start, horizon_date=ctx.horizon_date)


def _processed_keys(ctx: _Run) -> set[str]:
    return set(db.session.scalars(select(SyncReportItem.key).where(
        SyncReportItem.run_id == ctx.run.id, SyncReportItem.kind.in_(("imported", "refused", "removed", "skipped")))))


def _holder(ctx: _Run, item: RoomItem) -> User | None:
    email = holder_email(item, ctx.room)
    if email is None or email == ctx.butler:
        return None
    if email not in ctx.holders:
        from ..integration.operations import user_for_provider_identity

        ctx.holders[email] = user_for_provider_identity(email, display_name=item.organizer_name)
        db.session.commit()
    return ctx.holders[email]


def _people(item: RoomItem) -> list[str]:
    source = item.organizer_copy or item.room_event
    return [a.email.lower() for a in source.attendees if a.type != "resource" and a.email][:200]


def import_items(ctx: _Run, grouped: dict[str, list], keys: list[str], decision_ctx: DecisionContext) -> None:
    for chunk in _chunks(keys, CHUNK):
        _release()
        for item in _hydrate(ctx, grouped, chunk):
            _import_one(ctx, item, decide(item, decision_ctx))
        _write_back(ctx)
        _set_detail(ctx)
        _commit(ctx)


def _report(ctx: _Run, kind: str, key: str, item: RoomItem | None = None, **values) -> SyncReportItem:
    line = SyncReportItem(run_id=ctx.run.id, kind=kind, key=key, at=now_utc(), **values)
    if item is not None:
        line.private = item.private
        line.title = "" if item.private else item.title
        line.organizer_email = item.organizer_email
        line.series = item.is_series
    db.session.add(line)
    return line


def _import_one(ctx: _Run, item: RoomItem, decision: Decision) -> None:
    if decision.action == "remove":
        _remove_in_outlook(ctx, item, decision)
        return
    if decision.action == "refuse":
        slot = decision.slot
        _refuse(ctx, item, decision.reason, slot.start if slot else item.first.start, slot.end if slot else item.first.end)
        return
    if decision.action == "skip":
        _report(ctx, "skipped", item.key, item, reason=decision.reason)
        db.session.commit()
        return
    holder = _holder(ctx, item)
    if decision.singles:
        done = _processed_keys(ctx)
        for slot in decision.singles:
            if slot.key in done:
                continue
            _import_booking(ctx, item, slot.key, slot.start, slot.end, None, (), holder, slot=slot)
        if not any(s.key == item.key for s in decision.singles):
            _report(ctx, "skipped", item.key, item, reason=decision.reason)
            db.session.commit()
        return
    _import_booking(ctx, item, item.key, decision.slot.start, decision.slot.end, decision.rrule, decision.exceptions,
                    holder, slot=decision.slot, decision=decision)


def _import_booking(ctx: _Run, item: RoomItem, key: str, start, end, rrule, exceptions, holder, *, slot,
                    decision: Decision | None = None) -> None:
    uid = _uid(ctx.run.id, f"import:{key}")
    data = BookingInput(space_ids=[ctx.space.id], start=start, end=end, title=item.title, private=item.private,
                        kind="regular" if holder is not None else "internal", attendees=_people(item),
                        rrule=rrule, holder_id=holder.id if holder is not None else None)
    organizer = item.organizer_copy
    pending = _write_back_plan(ctx, item, key, slot, decision)
    shortened = decision is not None and decision.shortened
    detail = (f"Imported {'a series' if rrule else 'an event'} of {item.organizer_name or 'the room'} at "
              f"{_when(ctx, start, end)}" + (" (adjusted to the grid)" if slot.adjusted else "") + ".")
    db.session.commit()  # nothing else may ride along with the booking's transaction

    def rows(booking: Booking) -> None:
        db.session.add(EventLink(booking_uid=uid, kind="two_way", room_email=ctx.room, room_event_id=key,
                                 organizer_email=item.organizer_email,
                                 organizer_event_id=organizer.id if organizer else None,
                                 ical_uid=(organizer or item.room_event).ical_uid,
                                 room_change_key=item.room_event.change_key,
                                 organizer_change_key=organizer.change_key if organizer else None))
        _report(ctx, "imported", key, item, booking_uid=uid, start_utc=start, end_utc=end)
        if slot.adjusted:
            _report(ctx, "adjusted", key, item, booking_uid=uid, start_utc=start, end_utc=end,
                    before_start_utc=slot.before_start, before_end_utc=slot.before_end, pending=pending or None)
        if shortened:
            _report(ctx, "shortened", key, item, booking_uid=uid, start_utc=start, end_utc=end,
                    reason=f"Shortened to end on {decision.shortened_until:%d %b %Y} (1,080 days ahead).",
                    pending=None if slot.adjusted else (pending or None))
        _audit(ctx, "sync.imported", detail)

    try:
        create_booking(ctx.venue, data, actor=None, origin="microsoft", bypass_rules=True, uid=uid,
                       exceptions=tuple(exceptions), ignore_sync_freeze=True, also_write=rows)
    except ConflictError as error:
        _refuse(ctx, item, _conflict_reason(ctx, error), start, end, key=key)
    except BookingError as error:
        _refuse(ctx, item, f"Roomsync cannot hold it: {error}", start, end, key=key)


def _conflict_reason(ctx: _Run, error: ConflictError) -> str:
    others = sorted({c.space_name for c in error.conflicts if c.space_name != ctx.space.name})
    when = _when(ctx, error.conflicts[0].start_utc, error.conflicts[0].end_utc) if error.conflicts else ""
    if others:
        return (f"It would overlap a booking of {', '.join(others)}, which shares space with {ctx.space.name} "
                f"({when}).")
    return f"It overlaps another booking of {ctx.space.name} ({when})."


def _write_back_plan(ctx: _Run, item: RoomItem, key: str, slot, decision: Decision | None) -> dict:
    """The PATCH owed to the organizer's event (or the room's own, for events the room organizes)."""
    if not slot.adjusted and not (decision is not None and decision.shortened):
        return {}
    organizer = item.organizer_copy
    if organizer is not None:
        mailbox, event_id = item.organizer_email, organizer.id
        target = organizer
    elif item.organizer_email == ctx.room:
        mailbox, event_id, target = ctx.room, item.room_event.id, item.room_event
    else:
        return {}  # an organizer outside the tenant: nothing we may write; the report says adjusted here only
    plan = {"mailbox": mailbox, "event_id": event_id}
    if decision is not None and item.is_series:
        if slot.adjusted and decision.master_shift is not None:
            new_start = localize(to_local(target.start, ctx.tz).replace(tzinfo=None) + decision.master_shift, ctx.tz)
            plan.update(start=new_start.isoformat(), end=(new_start + decision.master_length).isoformat())
        if decision.shortened and target.recurrence is not None:
            plan["until"] = decision.shortened_until.isoformat()
    elif slot.adjusted:
        if item.is_series:  # one instance of a series imported as singles: its own instance id
            plan["event_id"] = key if mailbox == ctx.room else None
            if plan["event_id"] is None:
                return {}
        plan.update(start=slot.start.isoformat(), end=slot.end.isoformat())
    return plan if len(plan) > 2 else {}


def _write_back(ctx: _Run) -> None:
    """Send the PATCHes owed by this run's report lines (`$batch`), then mark them done."""
    from .recurrence_map import shortened_graph_range

    owed = [line for line in db.session.scalars(select(SyncReportItem).where(
        SyncReportItem.run_id == ctx.run.id, SyncReportItem.kind.in_(("adjusted", "shortened"))))
        if line.pending]  # JSON null and SQL NULL both mean nothing owed
    _release()
    for chunk in _chunks(owed, BATCH):
        requests = []
        for n, line in enumerate(chunk):
            plan = line.pending
            recurrence = None
            if plan.get("until"):
                master = ctx.graph.get_event(plan["mailbox"], plan["event_id"])
                if master.recurrence is not None:
                    recurrence = shortened_graph_range(master.recurrence, date.fromisoformat(plan["until"]))
            draft = EventDraft(start=datetime.fromisoformat(plan["start"]) if plan.get("start") else None,
                               end=datetime.fromisoformat(plan["end"]) if plan.get("end") else None,
                               recurrence=recurrence, time_zone=ctx.venue.timezone if line.series else None)
            requests.append(ctx.graph.update_event_request(f"w{n}", plan["mailbox"], plan["event_id"], draft))
        for line, result in zip(chunk, ctx.graph.batch(requests)):
            if result.error is not None and not isinstance(result.error, NotFound):
                raise result.error
            if result.error is not None:
                line.reason = "The event was deleted in Outlook meanwhile."
            elif line.series:
                _apply_exceptions(ctx, line.booking_uid, line.pending["mailbox"], line.pending["event_id"])
            line.pending = None
        _commit(ctx)


def _apply_exceptions(ctx: _Run, booking_uid: str, mailbox: str, event_id: str) -> None:
    """Make the Outlook series `event_id` cancel and move the occurrences its booking cancels and moves.
    Needed after a write-back (Outlook drops a series' exceptions when its time or pattern changes, as Outlook
    itself warns) and after creating a restored series (an event is created without exceptions)."""
    booking = db.session.scalar(select(Booking).where(Booking.uid == booking_uid))
    if booking is None or not booking.exceptions:
        return
    plan = {"mailbox": mailbox, "event_id": event_id}
    wanted = {e.original_start_utc: e for e in booking.exceptions}
    first = min(wanted)
    instances = ctx.graph.iter_instances(plan["mailbox"], plan["event_id"], first - timedelta(days=1),
                                         max(wanted) + timedelta(days=1))
    requests = []
    for n, instance in enumerate(instances):
        exception = wanted.get(instance.original_start or instance.start)
        if exception is None:
            continue
        if exception.cancelled:
            requests.append(ctx.graph.delete_event_request(f"x{n}", plan["mailbox"], instance.id))
        elif exception.start_utc and (instance.start, instance.end) != (exception.start_utc, exception.end_utc):
            requests.append(ctx.graph.update_event_request(
                f"x{n}", plan["mailbox"], instance.id, EventDraft(start=exception.start_utc, end=exception.end_utc)))
    for result in ctx.graph.batch(requests) if requests else ():
        if result.error is not None and not isinstance(result.error, NotFound):
            raise result.error


def _refuse(ctx: _Run, item: RoomItem, reason: str, start, end, *, key: str | None = None) -> None:
    """Decline as the room, tell the organizer, report. Recorded first, with the decline owed in the line's
    `pending`, then declined: the room's copy is gone once declined, so a worker killed between the two must
    leave the decline owed (`_send_owed_refusals` sends it on the next pass), not a refusal nobody recorded."""
    key = key or item.key
    db.session.rollback()
    event_id = key if key != item.key or not item.is_series else item.room_event.id
    line = _report(ctx, "refused", key, item, start_utc=start, end_utc=end, reason=reason,
                   pending={"decline": event_id})
    _audit(ctx, "sync.refused", f"Declined an event of {item.organizer_name or 'an organizer'} at "
                                f"{_when(ctx, start, end)}: {reason}")
    _email_organizer(ctx, item, "refused", reason, start, end, key)
    db.session.commit()
    _send_owed_refusal(ctx, line)


def _remove_in_outlook(ctx: _Run, item: RoomItem, decision: Decision) -> None:
    organizer = item.organizer_copy
    owed = ({"cancel": organizer.id, "mailbox": item.organizer_email} if organizer is not None
            else {"decline": item.room_event.id})
    first = item.first
    line = _report(ctx, "removed", item.key, item, start_utc=first.start, end_utc=first.end, reason=decision.reason,
                   pending=owed)
    _audit(ctx, "sync.removed", f"Removed an event of {item.organizer_name or 'an organizer'} booking "
                                f"{len(decision.paired_rooms)} synced rooms.")
    _email_organizer(ctx, item, "removed", decision.reason, first.start, first.end, item.key,
                     rooms=decision.paired_rooms)
    db.session.commit()
    _send_owed_refusal(ctx, line)


def _send_owed_refusal(ctx: _Run, line: SyncReportItem) -> None:
    """Send the decline (as the room) or cancellation (as the organizer) a refused or removed line owes, then
    mark it sent. Idempotent: an event already declined or cancelled answers NotFound."""
    owed = line.pending or {}
    try:
        if owed.get("cancel"):
            ctx.graph.cancel_event(owed["mailbox"], owed["cancel"], comment=f"Cancelled by Roomsync: {line.reason}")
        elif owed.get("decline"):
            ctx.graph.decline_event(ctx.room, owed["decline"], comment=f"Declined by Roomsync: {line.reason}",
                                    send_response=True)
    except NotFound:
        pass
    line.pending = None
    db.session.commit()


def _send_owed_refusals(ctx: _Run) -> None:
    """The declines and cancellations a killed pass recorded but may not have sent."""
    lines = list(db.session.scalars(select(SyncReportItem).where(
        SyncReportItem.run_id == ctx.run.id, SyncReportItem.kind.in_(("refused", "removed")))))
    _release()
    for line in lines:
        if line.pending:  # JSON null and SQL NULL both mean nothing owed
            _send_owed_refusal(ctx, line)


def _email_organizer(ctx: _Run, item: RoomItem, what: str, reason: str, start, end, key: str, rooms=()) -> None:
    email = holder_email(item, ctx.room)
    if not email:
        return
    try:
        from ..notify import messages
    except ImportError:  # the mailer is optional in a stripped-down install
        log.warning("no mailer: %s would be told: %s", email, reason)
        return
    common = dict(venue=ctx.venue, organizer_email=email, organizer_name=item.organizer_name, start_utc=start,
                  end_utc=end, subject=item.title, reason=reason, dedup_key=f"initial:{ctx.run.id}:{what}:{key}")
    if what == "removed":
        messages.event_removed(room_names=list(rooms), **common)
    else:
        messages.event_refused(room_name=ctx.pair.room_display_name or ctx.room, **common)


def step_import(ctx: _Run) -> None:
    _send_owed_refusals(ctx)
    grouped = _group(_list_room(ctx))
    done = _processed_keys(ctx)
    keys = [k for k in grouped if k not in done]
    import_items(ctx, grouped, keys, _decision_context(ctx))
    _write_back(ctx)
    _next_step(ctx)


# ---------------------------------------------------------------------------------------------- step 5


def _restore_input(ctx: _Run, noted: NotedBooking) -> tuple[BookingInput, list[ExceptionInput]]:
    snap = noted.snapshot
    data = BookingInput(space_ids=[ctx.space.id], start=datetime.fromisoformat(snap["start"]),
                        end=datetime.fromisoformat(snap["end"]), title=snap.get("title") or "",
                        description=snap.get("description") or "", private=bool(snap.get("private")),
                        kind=snap.get("kind") or "regular", attendees=list(snap.get("attendees") or []),
                        rrule=snap.get("rrule"), holder_id=snap.get("holder_id"))
    exceptions = [ExceptionInput(original_start=datetime.fromisoformat(e["original_start"]),
                                 cancelled=bool(e.get("cancelled")),
                                 start=datetime.fromisoformat(e["start"]) if e.get("start") else None,
                                 end=datetime.fromisoformat(e["end"]) if e.get("end") else None,
                                 title=e.get("title")) for e in snap.get("exceptions") or []]
    return data, exceptions


def _check_directory(ctx: _Run, emails: set[str]) -> None:
    unknown = sorted(e for e in emails if e and e not in ctx.in_directory)
    for chunk in _chunks(unknown, BATCH):
        results = ctx.graph.batch([ctx.graph.get_user_request(f"u{i}", email) for i, email in enumerate(chunk)])
        for email, result in zip(chunk, results):
            if result.error is None:
                ctx.in_directory[email] = True
            elif isinstance(result.error, NotFound) or getattr(result.error, "code", "") in (
                    "Request_ResourceNotFound", "ResourceNotFound", "ErrorInvalidUser"):
                ctx.in_directory[email] = False
            else:
                raise result.error


def _not_restored(ctx: _Run, noted: NotedBooking, reason: str) -> None:
    noted.state, noted.reason = "not_restored", reason
    snap = noted.snapshot
    start, end = datetime.fromisoformat(snap["start"]), datetime.fromisoformat(snap["end"])
    _report(ctx, "not_restored", str(noted.id), None, title="" if snap.get("private") else (snap.get("title") or ""),
            private=bool(snap.get("private")), organizer_email=noted.holder_email,
            start_utc=start, end_utc=end, series=bool(snap.get("rrule")), reason=reason)
    _audit(ctx, "sync.not_restored", f"The {'series' if snap.get('rrule') else 'booking'} of "
                                     f"{noted.holder_email or 'the venue'} at {_when(ctx, start, end)} was not "
                                     f"restored: {reason}")


def _restore_one(ctx: _Run, noted: NotedBooking) -> None:
    snap = noted.snapshot
    if noted.holder_email and snap.get("kind") != "internal" and not ctx.in_directory.get(noted.holder_email):
        _not_restored(ctx, noted, f"Its holder {noted.holder_email} is not in the Microsoft 365 directory.")
        db.session.commit()
        return
    noted_id = noted.id
    uid = noted.restored_uid or _uid(ctx.run.id, f"restore:{noted_id}")
    data, exceptions = _restore_input(ctx, noted)
    line = dict(title="" if snap.get("private") else (snap.get("title") or ""), private=bool(snap.get("private")),
                organizer_email=noted.holder_email, booking_uid=uid, start_utc=data.start, end_utc=data.end,
                series=bool(snap.get("rrule")))
    detail = (f"Restored the {'series' if data.rrule else 'booking'} of {noted.holder_email or 'the venue'} "
              f"at {_when(ctx, data.start, data.end)}.")
    db.session.commit()

    def rows(booking: Booking) -> None:
        row = db.session.get(NotedBooking, noted_id)
        row.restored_uid, row.state = uid, "restored"
        _report(ctx, "restored", str(noted_id), None, **line)
        _audit(ctx, "sync.restored", detail)

    actor = _restoring_actor(ctx, data)
    try:
        try:
            create_booking(ctx.venue, data, actor=actor, origin="roomsync", bypass_rules=True, uid=uid,
                           exceptions=tuple(exceptions), ignore_sync_freeze=True, also_write=rows)
        except ConflictError as error:
            # Best effort, done better: a series keeps its occurrences that clash with nothing; the clashing
            # ones are left out (cancelled), and the report says how many.
            left_out = _clashing_originals(ctx, data, exceptions, error)
            live = [o for o in _expand_input(ctx, data, exceptions) if not o.cancelled]
            if not data.rrule or not left_out or len(left_out) >= len(live):
                raise
            exceptions = [e for e in exceptions if e.original_start not in left_out] + [
                ExceptionInput(original_start=original, cancelled=True) for original in sorted(left_out)]
            line["reason"] = (f"{len(left_out)} of its {len(live)} occurrences clash with events imported from "
                              "Outlook and were left out.")
            create_booking(ctx.venue, data, actor=actor, origin="roomsync", bypass_rules=True, uid=uid,
                           exceptions=tuple(exceptions), ignore_sync_freeze=True, also_write=rows)
    except ConflictError as error:
        first = error.conflicts[0] if error.conflicts else None
        _not_restored(ctx, db.session.get(NotedBooking, noted_id),
                      "It conflicts with an event imported from Outlook"
                      + (f" ({_when(ctx, first.start_utc, first.end_utc)})." if first else "."))
        db.session.commit()
    except BookingError as error:
        _not_restored(ctx, db.session.get(NotedBooking, noted_id), f"Roomsync refused it: {error}")
        db.session.commit()


def _expand_input(ctx: _Run, data: BookingInput, exceptions) -> list:
    from ..booking.operations import expand

    return expand(ctx.tz, data.start, data.end, data.rrule, [_AsException(e) for e in exceptions])


def _clashing_originals(ctx: _Run, data: BookingInput, exceptions, error: ConflictError) -> set:
    """The original starts of the occurrences the conflicts name (they name the requested start)."""
    clashing = {c.requested_start_utc for c in error.conflicts}
    return {o.original_start for o in _expand_input(ctx, data, exceptions) if not o.cancelled and o.start in clashing}


def _restoring_actor(ctx: _Run, data: BookingInput) -> User | None:
    """Who restores: the holder, for their own booking; for an internal one, the admin who paired (else any
    active admin of the venue) — the same people who could have made it."""
    if data.holder_id is not None and data.kind == "regular":
        return db.session.get(User, data.holder_id)
    admin = db.session.get(User, ctx.pair.created_by_id) if ctx.pair.created_by_id else None
    if admin is None or not admin.is_admin or not admin.active:
        admin = db.session.scalar(select(User).where(User.role == "admin", User.active.is_(True)).order_by(User.id))
    return admin


def _draft_for(ctx: _Run, noted: NotedBooking) -> tuple[str, EventDraft]:
    from .recurrence_map import graph_from_rrule

    data, _exceptions = _restore_input(ctx, noted)
    organizer = noted.holder_email if noted.snapshot.get("kind") != "internal" or not ctx.butler else ctx.butler
    organizer = organizer or ctx.butler
    recurrence = None
    if data.rrule:
        recurrence = graph_from_rrule(data.rrule, to_local(data.start, ctx.tz).replace(tzinfo=None), ctx.venue.timezone)
    room_name = ctx.pair.room_display_name or ctx.room
    people = tuple(Attendee(email=e, type="required") for e in data.attendees if e != organizer)
    subject = data.title or ("Internal booking" if data.kind == "internal" else "Booking")
    draft = EventDraft(subject=subject, start=data.start, end=data.end, body_text="Booked in Roomsync.",
                       is_private=data.private, attendees=people + (Attendee(email=ctx.room, name=room_name, type="resource"),),
                       location=Location(display_name=room_name, email=ctx.room), recurrence=recurrence,
                       response_requested=True, transaction_id=noted.restored_uid,
                       time_zone=ctx.venue.timezone if recurrence is not None else None)
    return organizer, draft


def _create_in_outlook(ctx: _Run, chunk: list[NotedBooking]) -> None:
    todo = [n for n in chunk if n.state == "restored" and not n.outlook_event_id]
    if not todo:
        return
    plans = [(n, *_draft_for(ctx, n)) for n in todo]
    requests = [ctx.graph.create_event_request(f"c{n.id}", organizer, draft) for n, organizer, draft in plans]
    for (noted, organizer, draft), result in zip(plans, ctx.graph.batch(requests)):
        if result.error is not None:
            if getattr(result.error, "status", 500) >= 500 or result.status in (429, 503, 504):
                raise result.error
            _undo_restore(ctx, noted, f"Outlook refused to create it on {organizer}'s calendar: {result.error}")
            continue
        event = result.value
        if noted.snapshot.get("rrule"):
            _apply_exceptions(ctx, noted.restored_uid, organizer, event.id)
        noted.outlook_event_id = event.id
        db.session.add(EventLink(booking_uid=noted.restored_uid, kind="two_way", room_email=ctx.room,
                                 room_event_id=None, organizer_email=organizer, organizer_event_id=event.id,
                                 ical_uid=event.ical_uid, organizer_change_key=event.change_key))
    _commit(ctx)


def _undo_restore(ctx: _Run, noted: NotedBooking, reason: str) -> None:
    db.session.execute(delete(Booking).where(Booking.uid == noted.restored_uid))
    db.session.execute(delete(SyncReportItem).where(SyncReportItem.run_id == ctx.run.id,
                                                    SyncReportItem.kind == "restored",
                                                    SyncReportItem.key == str(noted.id)))
    _not_restored(ctx, noted, reason)


def step_restore(ctx: _Run) -> None:
    rows = list(db.session.scalars(select(NotedBooking).where(
        NotedBooking.run_id == ctx.run.id,
        or_(NotedBooking.state == "noted",
            (NotedBooking.state == "restored") & NotedBooking.outlook_event_id.is_(None)))
        .order_by(NotedBooking.first_start_utc, NotedBooking.id)))
    _release()
    _check_directory(ctx, {n.holder_email for n in rows if n.holder_email and n.snapshot.get("kind") != "internal"})
    for chunk in _chunks(rows, BATCH):
        for noted in chunk:
            if noted.state == "noted":
                _restore_one(ctx, noted)
        chunk = [db.session.get(NotedBooking, n.id) for n in chunk]
        _create_in_outlook(ctx, chunk)
        _set_detail(ctx)
        _commit(ctx)
    _next_step(ctx)


# ---------------------------------------------------------------------------------------------- step 6


def step_catch_up(ctx: _Run) -> None:
    _send_owed_refusals(ctx)
    grouped = _group(_list_room(ctx))
    links = list(db.session.scalars(select(EventLink).where(EventLink.room_email == ctx.room,
                                                            EventLink.kind == "two_way")))
    _release()
    by_ical = {link.ical_uid: link for link in links if link.ical_uid and link.room_event_id is None}
    known = {link.room_event_id for link in links if link.room_event_id}
    # Restored events: their room copy shares the organizer's iCalUId (series: the master's).
    unlinked = [k for k in grouped if k not in known]
    masters = {}
    series = [k for k in unlinked if grouped[k][0].type in ("occurrence", "exception")]
    for chunk in _chunks(series, BATCH):
        for key, result in zip(chunk, ctx.graph.batch([ctx.graph.get_event_request(f"m{i}", ctx.room, k)
                                                       for i, k in enumerate(chunk)])):
            if result.error is None:
                masters[key] = result.value
    for key in unlinked:
        head = masters.get(key) or grouped[key][0]
        link = by_ical.get(head.ical_uid)
        if link is not None:
            link.room_event_id, link.room_change_key = key, head.change_key
            known.add(key)
    _commit(ctx)
    linked = [(link.room_event_id, link.booking_uid) for link in links if link.room_event_id]
    # Single events moved in Outlook meanwhile: their bookings go, and they are imported again below.
    for key in _moved_meanwhile(ctx, grouped):
        uid = db.session.scalar(select(SyncReportItem.booking_uid).where(
            SyncReportItem.run_id == ctx.run.id, SyncReportItem.kind == "imported", SyncReportItem.key == key))
        db.session.execute(delete(Booking).where(Booking.uid == uid))
        db.session.execute(delete(SyncReportItem).where(SyncReportItem.run_id == ctx.run.id,
                                                        SyncReportItem.key == key))
        _audit(ctx, "sync.moved_meanwhile", "An imported event was moved in Outlook during the sync; it is imported "
                                            "again at its new time.")
        known.discard(key)
    _commit(ctx)
    # Events that arrived while the space was frozen.
    done = _processed_keys(ctx)
    fresh = [k for k in grouped if k not in known and k not in done]
    if fresh:
        import_items(ctx, grouped, fresh, _decision_context(ctx))
    # Events deleted in Outlook meanwhile: their imported bookings go.
    gone = [uid for event_id, uid in linked if event_id not in grouped and _imported_here(ctx, uid)]
    for uid in gone:
        _audit(ctx, "sync.deleted_meanwhile", f"An imported event was deleted in Outlook during the sync; its "
                                              f"booking {uid} was removed.")
        db.session.execute(delete(Booking).where(Booking.uid == uid))
    _write_back(ctx)
    _next_step(ctx)


def _moved_meanwhile(ctx: _Run, grouped: dict[str, list]) -> list[str]:
    """Keys of single events imported by this run whose time in the room no longer gives their booking's."""
    from .adjust import adjust_to_grid

    imported = dict(db.session.execute(select(SyncReportItem.key, SyncReportItem.booking_uid).where(
        SyncReportItem.run_id == ctx.run.id, SyncReportItem.kind == "imported")).all())
    singles = {key: grouped[key][0] for key in imported if key in grouped and grouped[key][0].type == "singleInstance"}
    if not singles:
        return []
    times = {uid: (start, end) for uid, start, end in db.session.execute(
        select(Booking.uid, Booking.start_utc, Booking.end_utc).where(Booking.uid.in_([imported[k] for k in singles])))}
    step = ctx.venue.granularity_minutes
    return [key for key, event in singles.items() if imported[key] in times
            and times[imported[key]] != adjust_to_grid(event.start, event.end, ctx.tz, step)]


def _imported_here(ctx: _Run, booking_uid: str) -> bool:
    return db.session.scalar(select(func.count()).select_from(SyncReportItem).where(
        SyncReportItem.run_id == ctx.run.id, SyncReportItem.kind == "imported",
        SyncReportItem.booking_uid == booking_uid)) > 0


# ---------------------------------------------------------------------------------------------- step 7


def step_audit(ctx: _Run) -> None:
    from .parity import audit_pair

    _release()
    result = audit_pair(ctx.pair.id, start=ctx.window_start, end=ctx.horizon)
    ctx.run.parity = result.to_json()
    ctx.pair.last_parity = ctx.run.parity  # the health page's "last audit" until the first reconcile
    _audit(ctx, "sync.parity", result.summary())
    _next_step(ctx)


STEPS = {1: step_note, 2: step_remove_butler_events, 3: step_clear_space, 4: step_import, 5: step_restore,
         6: step_catch_up, 7: step_audit}


def _chunks(items: list, size: int) -> Iterable[list]:
    items = list(items)
    for index in range(0, len(items), size):
        yield items[index:index + size]


# ---------------------------------------------------------------------------------------------- dry run


def run_preview(preview_id: int) -> None:
    """Job: what the initial sync of (preview.space, preview.room_email) would do; changes nothing."""
    from ..graph import graph_client
    from ..integration.operations import settings_for
    from ..booking.operations import DependencyGraph, occurrences_between

    preview = db.session.get(SyncPreview, preview_id)
    if preview is None or preview.state not in ("queued", "running"):
        return
    _set_preview(preview_id, state="running")
    try:
        venue = db.session.get(Venue, preview.venue_id)
        settings = settings_for(venue)
        fake_pair = Pair(id=0, venue_id=venue.id, space_id=preview.space_id, room_email=preview.room_email.lower(),
                         room_id="", room_display_name=preview.room_display_name, state="queued")
        fake_pair.space = db.session.get(Space, preview.space_id)
        window_start = localize(datetime.combine(to_local(now_utc(), venue.tz).date(), datetime.min.time()), venue.tz)
        fake_run = InitialSync(id=0, pair_id=0, step=1, window_start=window_start, counts={})
        ctx = _Run(run=fake_run, pair=fake_pair, venue=venue, space=fake_pair.space, graph=graph_client(),
                   owner="preview", butler=normalise_email(settings.butler_email if settings else ""),
                   lease=timedelta(0))
        noted = _note(ctx)
        deleted = db.session.scalar(select(func.count()).select_from(booking_spaces).where(
            booking_spaces.c.space_id == preview.space_id)) or 0
        grouped = _group(_list_room(ctx))
        paired = frozenset(db.session.scalars(select(Pair.room_email).where(Pair.venue_id == venue.id))) | {ctx.room}
        decision_ctx = _decision_context(ctx, paired)
        # What the space will still be blocked by after step 3: bookings of the spaces it shares with.
        others = space_closure([ctx.space.id]) - {ctx.space.id}
        busy: list[tuple[datetime, datetime, str]] = []
        if others:
            for occurrence in occurrences_between(others, window_start, ctx.horizon):
                busy.append((occurrence.start_utc, occurrence.end_utc, "shared"))
        result = {"bookings_deleted": int(deleted), "noted": len(noted), "events": 0, "series": 0, "adjusted": [],
                  "refused": [], "removed": [], "not_restored": [], "restorable": 0}

        def row(item: RoomItem, start, end, **extra):
            return {"title": "" if item.private else item.title, "organizer": item.organizer_email or "",
                    "start": start.isoformat(), "end": end.isoformat(), **extra}

        for chunk in _chunks(list(grouped), CHUNK):
            for item in _hydrate(ctx, grouped, chunk):
                decision = decide(item, decision_ctx)
                result["events"] += 1
                result["series"] += int(item.is_series)
                if decision.action == "remove":
                    result["removed"].append(row(item, item.first.start, item.first.end, reason=decision.reason))
                    continue
                slots = list(decision.singles) or ([decision.slot] if decision.slot else [])
                if decision.action == "refuse":
                    first = slots[0] if slots else None
                    result["refused"].append(row(item, first.start if first else item.first.start,
                                                 first.end if first else item.first.end, reason=decision.reason))
                    continue
                intervals = _decision_intervals(ctx, decision)
                clash = next(((s, e) for s, e in intervals for bs, be, _ in busy if s < be and bs < e), None)
                if clash is not None:
                    result["refused"].append(row(item, clash[0], clash[1], reason=(
                        "It would overlap a booking of a space that shares space with this one, or another event "
                        "of this room.")))
                    continue
                busy.extend((s, e, "imported") for s, e in intervals)
                for slot in slots:
                    if slot.adjusted:
                        result["adjusted"].append(row(item, slot.before_start, slot.before_end,
                                                      after_start=slot.start.isoformat(), after_end=slot.end.isoformat()))
        holders = {n.holder_email for n in noted if n.holder_email and n.snapshot.get("kind") != "internal"}
        _check_directory(ctx, holders)
        for noted_booking in noted:
            snap = noted_booking.snapshot
            base = {"title": "" if snap.get("private") else (snap.get("title") or ""),
                    "holder": noted_booking.holder_email or "", "start": snap["start"], "end": snap["end"]}
            if noted_booking.holder_email and snap.get("kind") != "internal" and \
                    not ctx.in_directory.get(noted_booking.holder_email):
                result["not_restored"].append({**base, "reason": "Its holder is not in the Microsoft 365 directory."})
                continue
            data, exceptions = _restore_input(ctx, noted_booking)
            from ..booking.operations import expand

            times = [(o.start, o.end) for o in expand(venue.tz, data.start, data.end, data.rrule,
                                                      [_AsException(e) for e in exceptions]) if not o.cancelled]
            clashing = [(s, e) for s, e in times if any(s < be and bs < e for bs, be, _ in busy)]
            if clashing and (not data.rrule or len(clashing) == len(times)):
                result["not_restored"].append({**base, "reason": "It conflicts with an event imported from Outlook."})
                continue
            busy.extend((s, e, "restored") for s, e in times if (s, e) not in clashing)
            result["restorable"] += 1
        db.session.rollback()  # nothing the preview touched may stay (the noted rows were never added)
        _set_preview(preview_id, result=result, state="done")
    except Exception as error:
        db.session.rollback()
        _set_preview(preview_id, state="failed", error=_describe(error))
        raise


def _set_preview(preview_id: int, **values) -> None:
    """Write the preview's state in a transaction of its own that begins as the writer: on SQLite one that
    has read cannot become the writer once a worker or the webhook has written ("database is locked")."""
    db.session.rollback()
    with serialised_writes():
        preview = db.session.get(SyncPreview, preview_id)
        if preview is None:
            db.session.rollback()
            return
        for name, value in values.items():
            setattr(preview, name, value)
        db.session.commit()


@dataclass
class _AsException:
    """An `ExceptionInput` seen as an OccurrenceException row by `operations.expand`."""

    source: ExceptionInput

    @property
    def original_start_utc(self):
        return self.source.original_start

    @property
    def cancelled(self):
        return self.source.cancelled

    @property
    def start_utc(self):
        return self.source.start

    @property
    def end_utc(self):
        return self.source.end

    @property
    def title(self):
        return self.source.title


def _decision_intervals(ctx: _Run, decision: Decision) -> list[tuple[datetime, datetime]]:
    from ..booking.operations import expand

    if decision.singles:
        return [(s.start, s.end) for s in decision.singles]
    if decision.slot is None:
        return []
    times = expand(ctx.tz, decision.slot.start, decision.slot.end, decision.rrule,
                   [_AsException(e) for e in decision.exceptions])
    return [(o.start, o.end) for o in times if not o.cancelled]
