"""Property-based test of the live two-way sync (issue 6, "Tests"): a Hypothesis state machine makes random
edits on both sides — Outlook (Priya and Tom create, move and cancel meetings in Board room A, some off the
grid, some private) and Roomsync (bookings created, moved and cancelled through `booking.operations`) —
while the sandbox drops, duplicates and reorders change notifications and answers a share of Graph calls
with 503/429. After every step the worker catches up (`_settle`); conflicts may happen (one side refuses:
fine).

Invariants:
- always (even under faults): a Roomsync booking the model believes alive (created, not refused, not
  cancelled by the model) is alive in the database at the times the model last set; no two live bookings of
  the space share an Outlook event (room event id or iCalUId);
- at a checkpoint (a rule) and at the end of each example: faults off, the due pushes run (what the sweeper
  does), `reconcile.reconcile_pair` twice with the worker settling in between, then: the parity audit finds
  no difference; every Roomsync booking the model believes alive is on the room's calendar exactly once, at
  its times; every Outlook meeting of the model that the room did not decline is exactly one live booking;
  the space holds nothing else; the room holds no two events for one booking.

Each example starts from scratch: database wiped, sandbox tenant restored (its fault draws seeded), the
pair synced and live again. Real time, as in `test_live_sync.py`: events are placed one and two days ahead.
About 45 s when every example passes; a failure is shrunk (minutes). The plain tests at the end replay, step
by step, the minimal failures the machine found.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes, invariant, multiple, precondition, rule,
                                 run_state_machine_as_test)
from sqlalchemy import select, text

from test_initial_sync import PRIYA, ROOM, TOM, book, day, meeting, setup  # noqa: F401 (setup: fixture)
from test_live_sync import go_live, live_bookings, settle, tenant_state
from webapp.booking.errors import ConflictError
from webapp.booking.models import Booking
from webapp.booking.operations import BookingInput, cancel_booking, create_booking, input_from_booking, update_booking
from webapp.extensions import db
from webapp.graph import graph_client
from webapp.graph.errors import GraphError
from webapp.graph.types import Attendee, EventDraft, Location
from webapp.integration.models import IntegrationSettings
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL
from webapp.sync import inbound, outbound, reconcile
from webapp.sync.models import EventLink, InboundNotification, OutboundState, Pair
from webapp.timeutil import now_utc

FAULT_SEED = 20260302  # the sandbox's fault draws, reseeded per example: the same example, the same faults
GRAPH_PATHS = "^/v1.0/users/"  # error faults hit mailbox calls, never the token endpoint or the admin API

# Slots that collide often: two days, 10:00/10:30/11:00/11:30 starts, 30 or 60 minutes.
days = st.sampled_from([1, 2])
starts = st.sampled_from([(10, 0), (10, 30), (11, 0), (11, 30)])
lengths = st.sampled_from([30, 60])
shares = st.sampled_from([0.0, 0.5, 1.0])


def slot(offset: int, start: tuple[int, int], minutes: int, off_grid: bool = False):
    begin = day(offset, *start)
    if off_grid:  # 7 minutes late: the grid rule moves it back to the quarter (written back to Outlook)
        begin += timedelta(minutes=7)
    return begin, begin + timedelta(minutes=minutes)


def adjusted(begin, end):
    """What the grid adjustment makes of our slots (FAQ rule; ours are at most 7 minutes off a quarter)."""
    minute = begin.minute % 15
    return (begin - timedelta(minutes=minute), end - timedelta(minutes=minute)) if minute else (begin, end)


def _wipe_database(app) -> None:
    """conftest's per-test clean, run between examples."""
    db.session.remove()
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
    db.session.remove()


class LiveSyncMachine(RuleBasedStateMachine):
    env: dict = {}  # set by the test: app, connected, admin, make_venue, make_space, make_user

    rs_bookings = Bundle("rs_bookings")
    ol_events = Bundle("ol_events")

    def __init__(self):
        super().__init__()
        self.counter = 0
        self.spec: dict = {}
        self.rs: dict[str, tuple] = {}  # booking uid → (title, holder email, start, end): alive in Roomsync
        self.ol: dict[tuple[str, str], dict] = {}  # (organizer, event id) → {title, start, end}: alive in Outlook
        self.log: list[str] = []
        self._reset()

    # ------------------------------------------------------------------------------------------ plumbing

    def _reset(self) -> None:
        env = self.env
        self.state = tenant_state(env["connected"])
        self.state.delivery.flush(timeout=10)
        env["admin"].restore()
        # The sandbox's Faults takes a seed only at construction; reseeding its generator makes each example's
        # share draws (which notification is dropped, which call answers 503) repeat on a replay or shrink.
        self.state.faults._random.seed(FAULT_SEED)
        _wipe_database(env["app"])
        venue = env["make_venue"](allow_overnight=False)
        db.session.add(IntegrationSettings(venue_id=venue.id, butler_email=DEMO_BUTLER_EMAIL, enabled=True,
                                           last_validated_at=now_utc()))
        db.session.commit()
        self.space = env["make_space"](venue, "Board room A")
        self.space_id = self.space.id
        env["make_space"](venue, "Board room B")
        self.venue = venue
        self.holders = {PRIYA: env["make_user"](PRIYA, first_name="Priya", last_name="Shah"),
                        TOM: env["make_user"](TOM, first_name="Tom", last_name="Baker")}
        self.boss = env["make_user"]("boss@roomsync.test", role="admin")
        self.pair_id = go_live(self.space).id
        self._settle()

    def _name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def _put_faults(self, spec: dict) -> None:
        if spec:
            self.env["admin"].faults(spec)
        else:
            self.env["admin"].clear_faults()

    def _as_user(self, action):
        """A person's own Outlook: the error faults stand for Microsoft 365 answering Roomsync, so they are
        lifted while the person acts (notification faults stay: they decide the fate of the change)."""
        if self.spec.get("errors"):
            self._put_faults({k: v for k, v in self.spec.items() if k != "errors"})
        try:
            return action()
        finally:
            if self.spec.get("errors"):
                self._put_faults(self.spec)

    def _settle(self, rounds: int = 6) -> None:
        """As `test_live_sync.settle`, but a Graph failure (injected 503/429) is a failed job RQ retries later."""
        for _ in range(rounds):
            self.state.delivery.flush(timeout=10)
            try:
                done = inbound.process_notifications(self.pair_id)
            except GraphError as error:
                db.session.rollback()
                self.log.append(f"  (inbound job failed: {type(error).__name__})")
                continue
            db.session.expire_all()
            if done == 0:
                self.state.delivery.flush(timeout=10)
                if not db.session.scalar(select(InboundNotification.id).where(
                        InboundNotification.state == "new").limit(1)):
                    return

    def _run_pushes(self) -> None:
        """What the sweeper does (`schedule.sweep_live_sync`): run every pending push, whatever its back-off."""
        for uid in outbound.due_pushes(now=now_utc() + timedelta(days=1)):
            outbound.push_booking(uid)
        db.session.expire_all()

    def _live_bookings(self) -> list[Booking]:
        db.session.expire_all()
        return [b for b in db.session.scalars(select(Booking).where(Booking.cancelled_at.is_(None)))
                if self.space_id in {s.id for s in b.spaces}]

    def _booking(self, uid: str) -> Booking:
        db.session.expire_all()
        return db.session.scalar(select(Booking).where(Booking.uid == uid))

    # ------------------------------------------------------------------------------------------ Roomsync side

    @rule(target=rs_bookings, holder=st.sampled_from([PRIYA, TOM]), offset=days, start=starts, minutes=lengths)
    def rs_create(self, holder, offset, start, minutes):
        title = self._name("RS")
        begin, end = slot(offset, start, minutes)
        self.log.append(f"rs_create {title} {holder} {begin:%d %H:%M}-{end:%H:%M} faults={self.spec}")
        try:
            booking = create_booking(self.venue, BookingInput(space_ids=[self.space_id], start=begin, end=end,
                                                              title=title, holder_id=self.holders[holder].id),
                                     actor=self.boss, bypass_rules=True)
        except ConflictError:
            db.session.rollback()
            self.log.append("  refused (conflict)")
            return multiple()
        self.rs[booking.uid] = (title, holder, begin, end)
        self._settle()
        return booking.uid

    @rule(uid=rs_bookings, offset=days, start=starts, minutes=lengths)
    def rs_move(self, uid, offset, start, minutes):
        if uid not in self.rs:
            return
        title, holder, *_ = self.rs[uid]
        begin, end = slot(offset, start, minutes)
        self.log.append(f"rs_move {title} → {begin:%d %H:%M}-{end:%H:%M} faults={self.spec}")
        booking = self._booking(uid)
        data = input_from_booking(booking)
        data.start, data.end = begin, end
        try:
            update_booking(booking, data, actor=self.boss, bypass_rules=True)
        except ConflictError:
            db.session.rollback()
            self.log.append("  refused (conflict)")
        else:
            self.rs[uid] = (title, holder, begin, end)
        self._settle()

    @rule(uid=consumes(rs_bookings))
    def rs_cancel(self, uid):
        if uid not in self.rs:
            return
        self.log.append(f"rs_cancel {self.rs[uid][0]} faults={self.spec}")
        cancel_booking(self._booking(uid), actor=self.boss)
        del self.rs[uid]
        self._settle()

    # ------------------------------------------------------------------------------------------ Outlook side

    @rule(target=ol_events, organizer=st.sampled_from([PRIYA, TOM]), offset=days, start=starts, minutes=lengths,
          off_grid=st.booleans(), private=st.booleans())
    def ol_create(self, organizer, offset, start, minutes, off_grid, private):
        title = self._name("OL")
        begin, end = slot(offset, start, minutes, off_grid)
        self.log.append(f"ol_create {title} {organizer} {begin:%d %H:%M}-{end:%H:%M} private={private} "
                        f"faults={self.spec}")
        event = self._as_user(lambda: graph_client().create_event(organizer, EventDraft(
            subject=title, start=begin, end=end, is_private=private,
            attendees=(Attendee(email=ROOM, type="resource"),), location=Location(display_name=ROOM, email=ROOM))))
        key = (organizer, event.id)
        self.ol[key] = dict(title=title, start=begin, end=end, private=private)
        self._settle()
        return key

    @rule(key=ol_events, offset=days, start=starts, minutes=lengths, off_grid=st.booleans())
    def ol_move(self, key, offset, start, minutes, off_grid):
        if key not in self.ol:
            return
        begin, end = slot(offset, start, minutes, off_grid)
        self.log.append(f"ol_move {self.ol[key]['title']} → {begin:%d %H:%M}-{end:%H:%M} faults={self.spec}")
        self._as_user(lambda: graph_client().update_event(key[0], key[1], EventDraft(start=begin, end=end)))
        self.ol[key].update(start=begin, end=end)
        self._settle()

    @rule(key=consumes(ol_events))
    def ol_cancel(self, key):
        if key not in self.ol:
            return
        self.log.append(f"ol_cancel {self.ol[key]['title']} faults={self.spec}")
        self._as_user(lambda: graph_client().cancel_event(key[0], key[1]))
        del self.ol[key]
        self._settle()

    # ------------------------------------------------------------------------------------------ faults

    @rule(drop=shares, duplicate=shares, reorder=shares)
    def notification_faults(self, drop, duplicate, reorder):
        self.spec["notifications"] = {"drop": drop, "duplicate": duplicate, "reorder": reorder}
        self.log.append(f"notification_faults {self.spec['notifications']}")
        self._put_faults(self.spec)

    @rule(status=st.sampled_from([503, 429]), share=st.sampled_from([0.5, 0.9]))
    def error_burst(self, status, share):
        # Retry-After 0: the client's own retries (5 attempts) are immediate, so a share of 0.9 still gets
        # whole calls failed and the sync's own recovery (pending push, retried job) is what is tested.
        self.spec["errors"] = [{"status": status, "share": share, "retryAfter": 0, "path": GRAPH_PATHS}]
        self.log.append(f"error_burst {self.spec['errors']}")
        self._put_faults(self.spec)

    @precondition(lambda self: bool(self.spec))
    @rule()
    def faults_off(self):
        self.log.append("faults_off")
        self.spec = {}
        self._put_faults(self.spec)

    @rule()
    def checkpoint(self):
        self.log.append("checkpoint")
        self._converge_and_check()

    # ------------------------------------------------------------------------------------------ invariants

    @invariant()
    def roomsync_bookings_are_never_lost(self):
        for uid, (title, holder, begin, end) in self.rs.items():
            booking = self._booking(uid)
            assert booking is not None and booking.cancelled_at is None, (
                f"{title} (booked in Roomsync, never cancelled there) is gone from Roomsync\n" + self._story())
            assert (booking.start_utc, booking.end_utc) == (begin, end), (
                f"{title} moved to {booking.start_utc}–{booking.end_utc}, Roomsync set {begin}–{end}\n"
                + self._story())

    @invariant()
    def no_two_bookings_share_an_event(self):
        live = {b.uid for b in self._live_bookings()}
        links = [l for l in db.session.scalars(select(EventLink).where(EventLink.room_email == ROOM))
                 if l.booking_uid in live]
        for attr in ("room_event_id", "ical_uid"):
            counts = Counter(getattr(l, attr) for l in links if getattr(l, attr))
            doubled = {k: n for k, n in counts.items() if n > 1}
            assert not doubled, f"live bookings sharing one {attr}: {doubled}\n" + self._story()

    def _story(self) -> str:
        return "steps:\n" + "\n".join(self.log)

    def _converge_and_check(self) -> None:
        self.spec = {}
        self.env["admin"].clear_faults()
        self._settle()
        self._run_pushes()
        self._settle()
        reconcile.reconcile_pair(self.pair_id)
        self._settle()
        self._run_pushes()
        self._settle()
        result = reconcile.reconcile_pair(self.pair_id)
        self._settle()
        db.session.expire_all()
        pair = db.session.get(Pair, self.pair_id)
        failed = list(db.session.scalars(select(OutboundState).where(OutboundState.state != "done")))
        assert not failed, f"pushes not done: {[(s.booking_uid, s.state, s.error) for s in failed]}\n" + self._story()
        assert result is not None and result.differences == 0, (
            f"parity: {pair.last_parity and pair.last_parity.get('summary')}\n{pair.last_parity}\n" + self._story())

        room = [e for e in graph_client().calendar_view(ROOM, day(0, 0), day(10, 0)) if not e.is_cancelled]
        by_ical = Counter(e.ical_uid for e in room)
        assert all(n == 1 for n in by_ical.values()), (
            f"the room holds two events for one meeting: {by_ical}\n" + self._story())
        live = {b.uid: b for b in self._live_bookings()}
        links = {l.booking_uid: l for l in db.session.scalars(select(EventLink).where(EventLink.room_email == ROOM))}

        expected: set[str] = set()
        for uid, (title, holder, begin, end) in self.rs.items():
            assert uid in live, f"{title} lost\n" + self._story()
            link = links.get(uid)
            assert link is not None and link.ical_uid, f"{title} has no Outlook event\n" + self._story()
            copies = [e for e in room if e.ical_uid == link.ical_uid]
            assert [(e.start, e.end) for e in copies] == [(begin, end)], (
                f"{title} ({begin}–{end}) on the room's calendar: {[(e.start, e.end) for e in copies]}\n"
                + self._story())
            mine = [e for e in graph_client().calendar_view(holder, day(0, 0), day(10, 0))
                    if not e.is_cancelled and e.transaction_id == uid]
            assert len(mine) == 1, f"{title}: {len(mine)} events on {holder}'s calendar\n" + self._story()
            expected.add(uid)
        for (organizer, event_id), model in self.ol.items():
            event = graph_client().get_event(organizer, event_id)
            [room_answer] = [a.response for a in event.room_attendees]
            holding = [uid for uid, l in links.items() if l.ical_uid == event.ical_uid and uid in live]
            if room_answer == "declined":
                assert not holding, f"{model['title']} was declined by the room yet is booked\n" + self._story()
                continue
            assert len(holding) == 1, (
                f"{model['title']} (room answered {room_answer!r}) is {len(holding)} bookings\n" + self._story())
            booking = live[holding[0]]
            assert (booking.title, booking.private, booking.origin) == (model["title"], model["private"], "microsoft"), (
                f"{model['title']} (private={model['private']}) came in as {booking.title!r} "
                f"(private={booking.private})\n" + self._story())
            assert (booking.start_utc, booking.end_utc) == adjusted(model["start"], model["end"]), (
                f"{model['title']}: booking at {booking.start_utc}–{booking.end_utc}, Outlook at "
                f"{model['start']}–{model['end']}\n" + self._story())
            expected.add(holding[0])
        strays = {uid: live[uid].title for uid in set(live) - expected}
        assert not strays, f"bookings nobody made: {strays}\n" + self._story()

    def teardown(self):
        try:
            self._converge_and_check()
        finally:
            self.env["admin"].clear_faults()


def test_random_edits_on_both_sides_with_faults_keep_parity_and_lose_or_double_nothing(
        app, connected, sandbox_admin, make_venue, make_space, make_user):
    LiveSyncMachine.env = dict(app=app, connected=connected, admin=sandbox_admin, make_venue=make_venue,
                               make_space=make_space, make_user=make_user)
    try:
        run_state_machine_as_test(LiveSyncMachine, settings=settings(
            max_examples=15, stateful_step_count=12, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck), print_blob=False))
    finally:
        LiveSyncMachine.env = {}


# ---------------------------------------------------------------------------------------------- found by the machine
# The state machine's minimal failures, as plain steps (each fails until the sync handles it).


@pytest.fixture
def live_pair(setup, connected):
    return dict(setup, pair=go_live(setup["a"]), connected=connected)


def _settle(live_pair):
    settle(live_pair["connected"], live_pair["pair"])


def _converge(live_pair):
    live_pair["admin"].clear_faults()
    _settle(live_pair)
    reconcile.reconcile_pair(live_pair["pair"].id)
    _settle(live_pair)
    return reconcile.reconcile_pair(live_pair["pair"].id)


def test_an_adjustment_whose_write_back_failed_is_written_back_later(live_pair):
    event = meeting(TOM, "Off the grid", day(2, 10, 7), day(2, 11, 7))
    # Tom's calendar answers 503 for reads and writes of one event (the write-back's PATCH), not for the
    # organizer-copy lookup by iCalUId (…/events?$filter=…).
    live_pair["admin"].faults({"errors": [{"status": 503, "share": 1.0, "retryAfter": 0,
                                           "path": f"/users/{TOM}/events/"}]})
    try:
        _settle(live_pair)
    except GraphError:
        pass  # the job failed after the booking's commit; RQ would retry it
    result = _converge(live_pair)
    [booking] = live_bookings(live_pair["a"])
    assert (booking.start_utc, booking.end_utc) == (day(2, 10), day(2, 11))
    toms = graph_client().get_event(TOM, event.id)
    assert (toms.start, toms.end) == (day(2, 10), day(2, 11)), "the adjustment never reached Outlook"
    assert result.differences == 0


def test_a_transient_failure_reading_the_organizers_copy_keeps_title_and_privacy(live_pair):
    meeting(TOM, "Secret plans", day(2, 10), day(2, 11), private=True)
    # The lookup of the organizer's copy by iCalUId answers 503 (the room's copy reads fine).
    live_pair["admin"].faults({"errors": [{"status": 503, "share": 1.0, "retryAfter": 0,
                                           "path": f"/users/{TOM}/events$"}]})
    try:
        _settle(live_pair)
    except GraphError:
        pass
    result = _converge(live_pair)
    [booking] = live_bookings(live_pair["a"])
    assert (booking.title, booking.private) == ("Secret plans", True)
    assert result.differences == 0


def test_a_roomsync_move_onto_a_slot_the_room_holds_keeps_the_booking(live_pair):
    ours = book(live_pair["venue"], live_pair["a"], day(1, 9), day(1, 10), live_pair["priya"], title="Ours")
    _settle(live_pair)
    live_pair["admin"].faults({"notifications": {"drop": 1.0}})
    theirs = meeting(TOM, "Not heard of yet", day(1, 11), day(1, 12))  # its notification is lost
    _settle(live_pair)
    live_pair["admin"].clear_faults()
    data = input_from_booking(ours)
    data.start, data.end = day(1, 11), day(1, 12)
    update_booking(ours, data, actor=live_pair["boss"], bypass_rules=True)  # Roomsync sees no conflict
    _settle(live_pair)
    result = _converge(live_pair)
    db.session.expire_all()
    ours = db.session.scalar(select(Booking).where(Booking.uid == ours.uid))
    from webapp.audit import AuditEntry

    assert ours.cancelled_at is None, "a booking accepted in Roomsync vanished: " + "; ".join(
        f"{e.action}: {e.detail}" for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [b.title for b in live_bookings(live_pair["a"])] == ["Ours"]  # Roomsync wins
    assert [a.response for a in graph_client().get_event(TOM, theirs.id).room_attendees] == ["declined"]
    assert result.differences == 0
