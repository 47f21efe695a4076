"""Live two-way sync end to end: the sandbox tenant over HTTPS sends real change notifications to a real
webhook server (a second Roomsync app on the suite's database), which persists them; the tests then run
the processing job as a worker would (`settle`). Pushes to Outlook run as jobs right after the booking's
commit (the suite's SYNC_JOBS). Times are real (the sandbox's rooms judge "upcoming" by the wall clock).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from test_initial_sync import (GHOST, PRIYA, ROOM, ROOM_AB, TOM, book, bookings_of, day, meeting,  # noqa: F401
                               pair_of, room_view, setup)
from webapp.booking.errors import ValidationError
from webapp.audit import AuditEntry
from webapp.booking.models import Booking
from webapp.booking.operations import cancel_booking, input_from_booking, update_booking
from webapp.extensions import db
from webapp.graph import graph_client
from webapp.graph.types import EventDraft, PatternedRecurrence, RecurrencePattern, RecurrenceRange
from webapp.notify.models import OutboxMessage
from webapp.sandbox import sandbox_state
from webapp.sync import inbound, initial, outbound, reconcile, schedule
from webapp.sync.models import EventLink, InboundNotification, OutboundState, Pair, Subscription, SyncIncident

LONDON = "Europe/London"


# ---------------------------------------------------------------------------------------------- helpers


def tenant_state(connected):
    return sandbox_state(connected.server.app)


def settle(connected, *pairs, rounds=8) -> int:
    """Deliver every notification the sandbox owes, then process them as a worker would, until quiet."""
    state = tenant_state(connected)
    total = 0
    for _ in range(rounds):
        state.delivery.flush(timeout=10)
        done = sum(inbound.process_notifications(p.id) for p in pairs)
        total += done
        db.session.expire_all()
        if done == 0:
            state.delivery.flush(timeout=10)
            if not db.session.scalar(select(func.count()).select_from(InboundNotification)
                                     .where(InboundNotification.state == "new")):
                break
    return total


def go_live(space, room=ROOM) -> Pair:
    pair = pair_of(space, room)
    initial.run_initial_sync(pair.id)
    db.session.expire_all()
    pair = db.session.get(Pair, pair.id)
    assert pair.state == "live", pair.state_detail
    return pair


def room_events(room=ROOM, days=30):
    return [e for e in room_view(room, days) if not e.is_cancelled]


def live_bookings(space):
    db.session.expire_all()
    return bookings_of(space)


def outbox(kind):
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))


@pytest.fixture
def live(setup, connected):
    pair = go_live(setup["a"])
    return dict(setup, pair=pair, connected=connected)


# ---------------------------------------------------------------------------------------------- subscription


def test_a_finished_initial_sync_subscribes_and_goes_live(live):
    sub = db.session.scalar(select(Subscription).where(Subscription.pair_id == live["pair"].id))
    assert sub.state == "active" and sub.graph_id and len(sub.client_state_hash) == 64
    assert sub.expires_at > day(0, 0) + timedelta(days=2)
    assert graph_client()._send("GET", f"/subscriptions/{sub.graph_id}").json()["resource"].lower() \
        == f"users/{ROOM}/events"


# ---------------------------------------------------------------------------------------------- inbound


def test_an_outlook_event_becomes_a_booking_adjusted_and_written_back(live):
    event = meeting(TOM, "Quick sync", day(1, 13, 53), day(1, 14, 7), attendees=[PRIYA])
    settle(live["connected"], live["pair"])
    [booking] = live_bookings(live["a"])
    assert (booking.start_utc, booking.end_utc) == (day(1, 13, 45), day(1, 14))
    assert booking.title == "Quick sync" and booking.origin == "microsoft"
    assert booking.holder.email == TOM and booking.attendees == [PRIYA]
    organizer_copy = graph_client().get_event(TOM, event.id)
    assert (organizer_copy.start, organizer_copy.end) == (day(1, 13, 45), day(1, 14))  # written back
    sequence = booking.sequence
    settle(live["connected"], live["pair"])  # the write-back's echo changes nothing
    [again] = live_bookings(live["a"])
    assert again.sequence == sequence and (again.start_utc, again.end_utc) == (day(1, 13, 45), day(1, 14))


def test_private_outlook_events_stay_private_and_moves_and_deletes_follow(live):
    event = meeting(PRIYA, "Salary talks", day(2, 9), day(2, 9, 30), private=True)
    settle(live["connected"], live["pair"])
    [booking] = live_bookings(live["a"])
    assert booking.private and booking.title == "Salary talks"
    graph_client().update_event(PRIYA, event.id, EventDraft(start=day(2, 11), end=day(2, 12)))
    settle(live["connected"], live["pair"])
    [moved] = live_bookings(live["a"])
    assert moved.uid == booking.uid and (moved.start_utc, moved.end_utc) == (day(2, 11), day(2, 12))
    graph_client().cancel_event(PRIYA, event.id)
    settle(live["connected"], live["pair"])
    assert live_bookings(live["a"]) == []
    assert db.session.scalar(select(Booking).where(Booking.uid == booking.uid)).cancelled_at is not None


def test_an_outlook_series_with_a_cancelled_occurrence(live):
    monday = day(7, 10) - timedelta(days=day(7, 10).weekday())
    recurrence = PatternedRecurrence(
        pattern=RecurrencePattern(type="weekly", interval=1, days_of_week=(monday.strftime("%A").lower(),)),
        range=RecurrenceRange(type="numbered", start_date=monday.date(), number_of_occurrences=4))
    series = meeting(TOM, "Weekly", monday, monday + timedelta(hours=1), recurrence=recurrence)
    instances = list(graph_client().iter_instances(TOM, series.id, monday - timedelta(days=1),
                                                   monday + timedelta(days=30)))
    graph_client().delete_event(TOM, instances[1].id)
    settle(live["connected"], live["pair"])
    [booking] = live_bookings(live["a"])
    assert booking.rrule and [e.cancelled for e in booking.exceptions] == [True]
    assert booking.exceptions[0].original_start_utc == instances[1].start


def test_a_conflict_with_a_space_sharing_booking_is_declined_and_the_organizer_told(live):
    setup_ = live
    ours = book(setup_["venue"], setup_["ab"], day(3, 10), day(3, 11), setup_["priya"], title="Board meeting")
    event = meeting(TOM, "Clashing", day(3, 10, 30), day(3, 11, 30))
    settle(live["connected"], live["pair"])
    assert live_bookings(live["a"]) == [] or all(b.uid == ours.uid for b in live_bookings(live["a"]))
    assert all(e.id != event.id for e in room_events())
    organizer_copy = graph_client().get_event(TOM, event.id)
    assert [a.response for a in organizer_copy.room_attendees] == ["declined"]
    [mail] = outbox("event_refused")
    assert mail.to == [TOM] and "Board room A+B" in mail.text
    assert db.session.scalar(select(SyncIncident).where(SyncIncident.cause == "refused")) is not None


def test_echoes_and_duplicates_change_nothing(live):
    meeting(TOM, "Design review", day(1, 10), day(1, 11))
    settle(live["connected"], live["pair"])
    [booking] = live_bookings(live["a"])
    before = (booking.sequence, booking.updated_at)
    # Replay every notification received so far, twice, in reverse order.
    rows = list(db.session.scalars(select(InboundNotification).order_by(InboundNotification.id.desc())))
    for row in rows * 2:
        db.session.add(InboundNotification(pair_id=row.pair_id, subscription_graph_id=row.subscription_graph_id,
                                           kind=row.kind, change_type=row.change_type, event_id=row.event_id))
    db.session.commit()
    settle(live["connected"], live["pair"])
    [after] = live_bookings(live["a"])
    assert (after.sequence, after.updated_at) == before


# ---------------------------------------------------------------------------------------------- outbound


def test_a_roomsync_booking_becomes_an_event_the_room_accepts(live):
    booking = book(live["venue"], live["a"], day(1, 15), day(1, 16), live["priya"], title="Planning",
                   attendees=[TOM])
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking.uid))
    assert state.state == "done"
    link = db.session.scalar(select(EventLink).where(EventLink.booking_uid == booking.uid))
    event = graph_client().get_event(PRIYA, link.organizer_event_id)
    assert event.subject == "Planning" and event.transaction_id == booking.uid
    assert {a.email for a in event.attendees} == {TOM, ROOM}
    settle(live["connected"], live["pair"])
    [room_copy] = [e for e in room_events() if e.start == day(1, 15)]
    db.session.expire_all()
    link = db.session.scalar(select(EventLink).where(EventLink.booking_uid == booking.uid))
    assert link.room_event_id == room_copy.id
    [again] = live_bookings(live["a"])
    assert again.sequence == booking.sequence and again.title == "Planning"  # the echo changed nothing


def test_roomsync_edits_and_cancellation_reach_outlook(live):
    booking = book(live["venue"], live["a"], day(1, 15), day(1, 16), live["priya"], title="Planning")
    settle(live["connected"], live["pair"])
    data = input_from_booking(booking)
    data.start, data.end, data.title, data.private = day(1, 16), day(1, 17), "Planning (moved)", True
    update_booking(booking, data, actor=live["boss"], bypass_rules=True)
    link = db.session.scalar(select(EventLink).where(EventLink.booking_uid == booking.uid))
    event = graph_client().get_event(PRIYA, link.organizer_event_id)
    assert (event.start, event.end, event.subject, event.is_private) == (day(1, 16), day(1, 17),
                                                                        "Planning (moved)", True)
    settle(live["connected"], live["pair"])
    assert [(e.start, e.end) for e in room_events()] == [(day(1, 16), day(1, 17))]
    [still] = live_bookings(live["a"])
    assert still.title == "Planning (moved)" and still.private
    cancel_booking(db.session.get(Booking, booking.id), actor=live["boss"])
    settle(live["connected"], live["pair"])
    assert room_events() == []
    assert db.session.scalar(select(func.count()).select_from(EventLink)
                             .where(EventLink.booking_uid == booking.uid)) == 0


def test_a_holder_without_a_calendar_cannot_book_a_synced_space(live):
    with pytest.raises(ValidationError) as refused:
        book(live["venue"], live["a"], day(1, 9), day(1, 10), live["ghost"])
    assert "Microsoft 365 calendar" in refused.value.fields["holder_id"]
    assert live_bookings(live["a"]) == []


def test_moving_a_booking_to_an_unsynced_space_takes_the_room_off_the_event(live):
    booking = book(live["venue"], live["a"], day(1, 15), day(1, 16), live["priya"], title="Planning")
    settle(live["connected"], live["pair"])
    data = input_from_booking(booking)
    data.space_ids = [live["b"].id]
    update_booking(booking, data, actor=live["boss"], bypass_rules=True)
    settle(live["connected"], live["pair"])
    assert room_events() == []
    db.session.expire_all()
    assert [s.name for s in db.session.get(Booking, booking.id).spaces] == ["Board room B"]


def test_the_race_roomsync_wins_and_the_outlook_booking_is_declined(live):
    # Outlook books the slot; before its notification is processed, Roomsync books the same slot.
    theirs = meeting(TOM, "Outlook first", day(4, 10), day(4, 11))
    tenant_state(live["connected"]).delivery.flush(timeout=10)  # stored, not processed yet
    ours = book(live["venue"], live["a"], day(4, 10), day(4, 11), live["priya"], title="Roomsync wins")
    settle(live["connected"], live["pair"])
    assert [b.uid for b in live_bookings(live["a"])] == [ours.uid]
    [room_copy] = room_events()
    assert room_copy.ical_uid == db.session.scalar(select(EventLink.ical_uid).where(EventLink.booking_uid == ours.uid))
    assert [a.response for a in graph_client().get_event(TOM, theirs.id).room_attendees] == ["declined"]
    assert len(outbox("event_refused")) == 1


def test_provider_failures_keep_the_push_pending_then_it_lands(live):
    live_admin = live["admin"]
    live_admin.faults({"errors": [{"status": 503, "share": 1.0, "path": "/events"}]})
    booking = book(live["venue"], live["a"], day(1, 15), day(1, 16), live["priya"], title="Stormy")
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking.uid))
    assert state.state == "pending" and state.attempts == 1 and state.next_attempt_at is not None
    assert db.session.scalar(select(Booking).where(Booking.uid == booking.uid)).cancelled_at is None  # never lost
    live_admin.clear_faults()
    state.next_attempt_at = day(0, 0)
    db.session.commit()
    queued = []
    schedule_queue = type("Q", (), {"enqueue": lambda self, f, *a, **k: queued.append((f, a))})()
    import webapp.jobs as jobs

    original = jobs.queue
    jobs.queue = lambda: schedule_queue
    try:
        schedule.sweep_live_sync()
    finally:
        jobs.queue = original
    assert (outbound.push_booking, (booking.uid,)) in queued
    outbound.push_booking(booking.uid)
    db.session.expire_all()
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking.uid))
    assert state.state == "done" and state.attempts == 0
    settle(live["connected"], live["pair"])
    assert [e.start for e in room_events()] == [day(1, 15)]


# ---------------------------------------------------------------------------------------------- webhook


def test_the_webhook_refuses_a_wrong_client_state_and_bad_bodies(live, client):
    sub = db.session.scalar(select(Subscription).where(Subscription.pair_id == live["pair"].id))
    body = {"value": [{"subscriptionId": sub.graph_id, "clientState": "not-the-secret", "changeType": "created",
                       "resource": f"Users/x/Events/abc", "resourceData": {"id": "abc"}}]}
    assert client.post("/webhooks/graph", json=body).status_code == 202
    assert db.session.scalar(select(func.count()).select_from(InboundNotification)) == 0
    bad = client.post("/webhooks/graph", data="not json", content_type="application/json")
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_json"
    shape = client.post("/webhooks/graph", json={"value": "nope"})
    assert shape.status_code == 400 and shape.get_json()["error"]["code"] == "bad_notification"
    token = "Validation: Testing client application reachability for subscription Request-Id: 1"
    handshake = client.post("/webhooks/graph", query_string={"validationToken": token})
    assert handshake.status_code == 200 and handshake.get_data(as_text=True) == token


def test_dropped_notifications_are_repaired_by_the_reconcile(live):
    live["admin"].faults({"notifications": {"drop": 1.0}})
    event = meeting(TOM, "Lost in transit", day(2, 14), day(2, 15))
    settle(live["connected"], live["pair"])
    assert live_bookings(live["a"]) == []
    live["admin"].clear_faults()
    result = reconcile.reconcile_pair(live["pair"].id)
    assert result.full and result.outcomes.get("created") == 1 and result.differences == 0
    [booking] = live_bookings(live["a"])
    assert booking.title == "Lost in transit"
    # Deleted while notifications are lost: the next (incremental) round sees it gone.
    live["admin"].faults({"notifications": {"drop": 1.0}})
    graph_client().cancel_event(TOM, event.id)
    live["admin"].clear_faults()
    again = reconcile.reconcile_pair(live["pair"].id)
    assert not again.full and again.differences == 0
    assert live_bookings(live["a"]) == []


def test_subscription_removed_is_recreated_and_reconciled(live):
    sub = db.session.scalar(select(Subscription).where(Subscription.pair_id == live["pair"].id))
    old = sub.graph_id
    requests_session = live["admin"].http
    response = requests_session.post(live["admin"].url + f"/subscriptions/{old}/remove", timeout=10)
    assert response.status_code < 300
    settle(live["connected"], live["pair"])
    db.session.expire_all()
    sub = db.session.scalar(select(Subscription).where(Subscription.pair_id == live["pair"].id))
    assert sub.graph_id != old and sub.state == "active"
    meeting(TOM, "After the removal", day(2, 10), day(2, 11))
    settle(live["connected"], live["pair"])
    assert [b.title for b in live_bookings(live["a"])] == ["After the removal"]


# ---------------------------------------------------------------------------------------------- more outbound

ROOM_B = "board-room-b@roomsync.test"


def _weekly(venue, space, holder, start, count=4, title="Weekly"):
    return book(venue, space, start, start + timedelta(hours=1), holder, title=title,
                rrule=f"FREQ=WEEKLY;COUNT={count}")


def test_series_edits_reach_outlook_one_occurrence_following_and_all(live):
    from webapp.booking.operations import occurrence_times

    start = day(2, 9)
    series = _weekly(live["venue"], live["a"], live["priya"], start)
    settle(live["connected"], live["pair"])
    assert len(room_events(days=40)) == 4
    second = occurrence_times(series)[1]
    cancel_booking(series, actor=live["boss"], scope="this", occurrence_start=second.original_start)
    settle(live["connected"], live["pair"])
    assert [e.start for e in room_events(days=40)] == [start, start + timedelta(days=14), start + timedelta(days=21)]
    # "This and following" from the third: the series splits in Roomsync and in Outlook.
    series = db.session.get(Booking, series.id)
    third = occurrence_times(series)[2]
    data = input_from_booking(series, third.original_start)
    data.start, data.end = third.start + timedelta(hours=2), third.end + timedelta(hours=2)
    newer = update_booking(series, data, actor=live["boss"], scope="following", occurrence_start=third.original_start,
                           bypass_rules=True)
    settle(live["connected"], live["pair"])
    assert [e.start for e in room_events(days=40)] == [start, start + timedelta(days=14, hours=2),
                                                      start + timedelta(days=21, hours=2)]
    assert len(live_bookings(live["a"])) == 2 and newer.uid != series.uid
    assert reconcile.audit_now(live["pair"].id) == 0


def test_internal_blocks_are_placed_by_the_butler(live):
    from webapp.sandbox.seed import DEMO_BUTLER_EMAIL

    block = book(live["venue"], live["a"], day(1, 12), day(1, 13), None, title="Maintenance", kind="internal")
    link = db.session.scalar(select(EventLink).where(EventLink.booking_uid == block.uid))
    assert link.organizer_email == DEMO_BUTLER_EMAIL
    settle(live["connected"], live["pair"])
    assert [e.start for e in room_events()] == [day(1, 12)]
    [again] = live_bookings(live["a"])
    assert again.kind == "internal" and again.holder_id is None and again.title == "Maintenance"
    cancel_booking(again, actor=live["boss"])
    settle(live["connected"], live["pair"])
    assert room_events() == []


def test_moving_between_synced_rooms_moves_the_room_attendee(live):
    pair_b = go_live(live["b"], ROOM_B)
    booking = book(live["venue"], live["a"], day(1, 15), day(1, 16), live["priya"], title="Planning")
    settle(live["connected"], live["pair"], pair_b)
    data = input_from_booking(booking)
    data.space_ids = [live["b"].id]
    update_booking(booking, data, actor=live["boss"], bypass_rules=True)
    settle(live["connected"], live["pair"], pair_b)
    assert room_events(ROOM) == [] and [e.start for e in room_events(ROOM_B)] == [day(1, 15)]
    [moved] = live_bookings(live["b"])
    assert moved.uid == booking.uid and live_bookings(live["a"]) == []
    assert reconcile.audit_now(live["pair"].id) == 0 and reconcile.audit_now(pair_b.id) == 0


def test_an_outlook_organizer_removing_the_room_cancels_the_booking(live):
    event = meeting(TOM, "Room not needed", day(3, 14), day(3, 15), attendees=[PRIYA])
    settle(live["connected"], live["pair"])
    assert len(live_bookings(live["a"])) == 1
    from webapp.graph.types import Attendee

    graph_client().update_event(TOM, event.id, EventDraft(attendees=(Attendee(email=PRIYA, type="required"),)))
    settle(live["connected"], live["pair"])
    assert live_bookings(live["a"]) == []


# ---------------------------------------------------------------------------------------------- slow database


@contextmanager
def locked_notifications():
    """Another connection holds the write lock on the notifications table (SQLite: the whole database)."""
    from sqlalchemy import text

    from webapp.db_engine import IMMEDIATE

    engine = db.engine
    conn = engine.connect().execution_options(**{IMMEDIATE: True})
    conn.begin()  # SQLite: BEGIN IMMEDIATE — the writer lock
    if engine.dialect.name != "sqlite":
        conn.execute(text("LOCK TABLE sync_notifications IN ACCESS EXCLUSIVE MODE"))
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


def _change_for(pair) -> tuple[dict, str]:
    """A notification the webhook accepts: a real subscription's id and clientState (a fresh one we set)."""
    import secrets

    from webapp.sync.subscriptions import _digest

    secret = secrets.token_urlsafe(16)
    sub = db.session.scalar(select(Subscription).where(Subscription.pair_id == pair.id))
    sub.client_state_hash = _digest(secret)
    db.session.commit()
    return {"value": [{"subscriptionId": sub.graph_id, "clientState": secret, "changeType": "updated",
                       "resource": "Users/r/Events/ev-1", "resourceData": {"id": "ev-1"}}]}, sub.graph_id


def test_a_stuck_database_spills_to_redis_and_the_sweeper_stores_it(live, app, client, redis_url):
    import time

    from webapp.sync import webhook

    body, _ = _change_for(live["pair"])
    app.config["REDIS_URL"] = redis_url
    app.extensions["roomsync_redis"] = None
    try:
        from webapp.jobs import redis_connection

        redis_connection().delete(webhook.SPILL_KEY)
        with locked_notifications():
            started = time.monotonic()
            response = client.post("/webhooks/graph", json=body)
            took = time.monotonic() - started
        assert response.status_code == 202 and took < 3.0
        assert db.session.scalar(select(func.count()).select_from(InboundNotification)) == 0
        assert webhook.drain_spill() == 1
        [row] = db.session.scalars(select(InboundNotification))
        assert (row.pair_id, row.event_id, row.change_type) == (live["pair"].id, "ev-1", "updated")
    finally:
        app.config["REDIS_URL"] = None
        app.extensions["roomsync_redis"] = None


def test_with_neither_database_nor_redis_the_webhook_answers_503_in_time(live, app, client):
    import time

    body, _ = _change_for(live["pair"])
    with locked_notifications():
        started = time.monotonic()
        response = client.post("/webhooks/graph", json=body)
        took = time.monotonic() - started
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "unavailable"
    assert took < 3.0


def test_a_roomsync_edit_made_while_outlook_news_is_processed_wins(live, monkeypatch, app):
    """The lost-update race the benchmark found: the inbound job reads the event, the user moves the booking
    in Roomsync (its push lands), then the job would apply what it read over the user's move."""
    event = meeting(TOM, "Planning", day(2, 10), day(2, 11))
    settle(live["connected"], live["pair"])
    [booking] = live_bookings(live["a"])
    graph_client().update_event(TOM, event.id, EventDraft(start=day(2, 11), end=day(2, 12)))  # news from Outlook
    tenant_state(live["connected"]).delivery.flush(timeout=10)
    original = inbound._organizer_copy
    moved = []

    def user_moves_it_meanwhile(ctx, room_event):
        copy = original(ctx, room_event)  # what Outlook said when read: 11:00–12:00
        if not moved:  # another person, another process: its own session
            import threading

            def edit():
                with app.app_context():
                    from webapp.auth.models import User

                    mine = db.session.get(Booking, booking.id)
                    data = input_from_booking(mine)
                    data.start, data.end = day(2, 14), day(2, 15)
                    boss = db.session.scalar(select(User).where(User.email == "boss@roomsync.test"))
                    update_booking(mine, data, actor=boss, bypass_rules=True)
                    db.session.remove()

            worker = threading.Thread(target=edit)
            worker.start()
            worker.join()
            moved.append(True)
        return copy

    queued = []  # the user's push waits in the queue while the inbound job finishes
    real_push = outbound.push_booking
    monkeypatch.setattr(outbound, "push_booking", lambda uid: queued.append(uid))
    monkeypatch.setattr(inbound, "_organizer_copy", user_moves_it_meanwhile)
    settle(live["connected"], live["pair"])
    monkeypatch.undo()
    assert queued == [booking.uid]
    real_push(booking.uid)  # now a worker takes the push
    settle(live["connected"], live["pair"])
    [after] = live_bookings(live["a"])
    assert moved and (after.start_utc, after.end_utc) == (day(2, 14), day(2, 15))  # the user's move stands
    organizer_copy = graph_client().get_event(TOM, event.id)
    assert (organizer_copy.start, organizer_copy.end) == (day(2, 14), day(2, 15))
    assert reconcile.audit_now(live["pair"].id) == 0


def test_push_pending_drains_every_pending_push_creating_in_batches(live, monkeypatch):
    monkeypatch.setattr(outbound, "_queue_push", lambda uid: None)  # as if queued for a worker
    made = [book(live["venue"], live["a"], day(1, 8 + n), day(1, 9 + n), live["priya"], title=f"Batch {n}")
            for n in range(3)]
    weekly = _weekly(live["venue"], live["a"], live["tom"], day(2, 16), count=3, title="Weekly batch")
    moved = made[0]
    data = input_from_booking(moved)
    data.start, data.end = day(1, 18), day(1, 19)
    update_booking(moved, data, actor=live["boss"], bypass_rules=True)  # pending still: one push for both
    states = outbound.pending_state([b.uid for b in made] + [weekly.uid])
    assert len(states) == 4 and all(s.state == "pending" for s in states.values())
    assert outbound.push_pending() == 4
    assert outbound.pending_state([b.uid for b in made] + [weekly.uid]) == {}
    settle(live["connected"], live["pair"])
    starts = sorted(e.start for e in room_events(days=40))
    assert starts == sorted([day(1, 9), day(1, 10), day(1, 18), day(2, 16), day(9, 16), day(16, 16)])
    assert reconcile.audit_now(live["pair"].id) == 0

    # Second round: a move, a cancel and a whole series cancelled are one `$batch` of three requests, no
    # request of their own.
    from webapp.graph.client import GraphClient

    sent = []
    real_batch = GraphClient.batch

    def spying_batch(self, requests_):
        sent.append(sorted(r.method for r in requests_))
        return real_batch(self, requests_)

    for name in ("update_event", "cancel_event", "delete_event", "create_event"):
        monkeypatch.setattr(GraphClient, name, lambda *a, **k: pytest.fail("pushed one by one"))
    monkeypatch.setattr(GraphClient, "batch", spying_batch)
    again = input_from_booking(made[1])
    again.start, again.end = day(1, 20), day(1, 21)
    update_booking(made[1], again, actor=live["boss"], bypass_rules=True)
    cancel_booking(made[2], actor=live["boss"])
    cancel_booking(weekly, actor=live["boss"])
    assert outbound.push_pending() == 3
    assert sent == [["PATCH", "POST", "POST"]]  # the PATCH and two cancels (organizers' events)
    monkeypatch.undo()
    assert outbound.pending_state([b.uid for b in made] + [weekly.uid]) == {}
    settle(live["connected"], live["pair"])
    assert sorted(e.start for e in room_events(days=40)) == sorted([day(1, 18), day(1, 20)])
    assert reconcile.audit_now(live["pair"].id) == 0


def _answer_lost(monkeypatch, name):
    """`GraphClient.<name>` does its work in Outlook, then the answer is lost (a timeout after the request
    landed): the caller sees a connection failure."""
    from webapp.graph.client import GraphClient
    from webapp.graph.errors import ConnectionFailed

    real = getattr(GraphClient, name)

    def lost(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise ConnectionFailed("The connection was lost before the answer came.")

    monkeypatch.setattr(GraphClient, name, lost)


@pytest.mark.parametrize("order", ["notified_first", "pushed_first"])
@pytest.mark.parametrize("path", ["create_event", "batch"])
def test_a_create_whose_answer_was_lost_is_found_then_cancelled_or_moved(live, monkeypatch, path, order):
    """The create reached Outlook but its answer did not: the push stays pending with nothing linked, and where
    it asked is noted. Either the room's notification comes first: the inbound sync sees our transactionId on
    the organizer's copy and links the event to its booking (it used to take it for an Outlook booking
    clashing with ours, decline it and email the organizer); or the next push comes first and finds the event
    there by its transactionId. Then a booking cancelled meanwhile takes it out of the room (it used to stay,
    a booking of nobody's), a moved one moves it (a retried create answers the old event unchanged), and
    nothing is created twice. `batch`: the push_pending job's path (creates share a `$batch`); `create_event`:
    the one-booking push."""
    if path == "batch":
        monkeypatch.setattr(outbound, "_queue_push", lambda uid: None)  # pushed by push_pending below
    _answer_lost(monkeypatch, path)
    gone = book(live["venue"], live["a"], day(1, 9), day(1, 10), live["priya"], title="Cancelled meanwhile")
    moved = book(live["venue"], live["a"], day(1, 11), day(1, 12), live["priya"], title="Moved meanwhile")
    if path == "batch":
        outbound.push_pending()
    monkeypatch.undo()
    states = outbound.pending_state([gone.uid, moved.uid])
    assert [(s.state, s.create_mailbox) for s in states.values()] == [("pending", PRIYA)] * 2
    links = select(func.count()).select_from(EventLink).where(EventLink.booking_uid.in_([gone.uid, moved.uid]))
    assert db.session.scalar(links) == 0
    if order == "notified_first":
        settle(live["connected"], live["pair"])
        assert sorted(e.start for e in room_events()) == [day(1, 9), day(1, 11)]  # accepted, not declined
        assert db.session.scalar(links) == 2 and outbox("event_refused") == []

    if path == "batch":
        monkeypatch.setattr(outbound, "_queue_push", lambda uid: None)
    cancel_booking(db.session.get(Booking, gone.id), actor=live["boss"])
    data = input_from_booking(db.session.get(Booking, moved.id))
    data.start, data.end = day(1, 14), day(1, 15)
    update_booking(db.session.get(Booking, moved.id), data, actor=live["boss"], bypass_rules=True)
    if path == "batch":
        outbound.push_pending()
    settle(live["connected"], live["pair"])
    assert [(e.start, e.subject) for e in room_events()] == [(day(1, 14), "Priya Shah")]
    organizer_events = [e for e in graph_client().calendar_view(PRIYA, day(0, 0), day(3, 0)) if not e.is_cancelled]
    assert [(e.start, e.transaction_id) for e in organizer_events] == [(day(1, 14), moved.uid)]
    assert outbound.pending_state([gone.uid, moved.uid]) == {}
    assert [b.uid for b in live_bookings(live["a"])] == [moved.uid]
    assert reconcile.audit_now(live["pair"].id) == 0


def test_a_push_finishing_while_a_change_is_recorded_leaves_the_change_pending(live, app, monkeypatch):
    """The lost update the benchmark found (1 change in 2,000 never reached Outlook): the push of version 1
    marks the booking done (`outbound._finish`, another worker) while the user's change to version 2 records
    its push request. Whatever the interleaving, version 2 stays pending and is pushed. On PostgreSQL the push
    commits in the middle of the change's transaction; on SQLite it cannot (the change holds the writer lock),
    so it finishes right after."""
    import threading

    from sqlalchemy import event as sa_event

    from webapp.db_engine import bounded_wait

    monkeypatch.setattr(outbound, "_queue_push", lambda uid: None)  # pushed by hand below
    booking = book(live["venue"], live["a"], day(1, 9), day(1, 10), live["priya"], title="Raced")
    pushed_sequence = booking.sequence
    finished = []

    def finish_first_push():
        with app.app_context():
            try:
                with bounded_wait(200):
                    finished.append(outbound._finish(booking.uid, pushed_sequence))
            except Exception as error:  # noqa: BLE001 — SQLite: the change holds the writer lock
                db.session.rollback()
                finished.append(error)
            finally:
                db.session.remove()

    change_thread, started = threading.current_thread(), []

    def interleave():  # once, in the change's thread, at the latest moment before it writes the push's row
        if threading.current_thread() is change_thread and not started:
            started.append(True)
            other = threading.Thread(target=finish_first_push)
            other.start()
            other.join()

    def before(conn, cursor, statement, params, context, executemany):
        if "sync_outbound" in statement and not statement.lstrip().upper().startswith("SELECT"):
            interleave()

    def after(conn, cursor, statement, params, context, executemany):
        if "sync_outbound" in statement and statement.lstrip().upper().startswith("SELECT"):
            interleave()  # read, not yet written: what a read-then-write would get wrong

    sa_event.listen(db.engine, "before_cursor_execute", before)
    sa_event.listen(db.engine, "after_cursor_execute", after)
    try:
        data = input_from_booking(booking)
        data.start, data.end = day(1, 11), day(1, 12)
        update_booking(booking, data, actor=live["boss"], bypass_rules=True)
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", before)
        sa_event.remove(db.engine, "after_cursor_execute", after)
    if db.engine.dialect.name == "postgresql":
        assert finished == [True]  # it committed in between
    else:
        assert len(finished) == 1 and not isinstance(finished[0], bool)
        assert outbound._finish(booking.uid, pushed_sequence) is False  # right after: too old to finish
    db.session.expire_all()
    state = outbound.pending_state([booking.uid])[booking.uid]
    assert (state.state, state.wanted_sequence) == ("pending", db.session.get(Booking, booking.id).sequence)
    assert outbound.push_pending() == 1
    settle(live["connected"], live["pair"])
    assert [(e.start, e.end) for e in room_events()] == [(day(1, 11), day(1, 12))]


@pytest.mark.parametrize("cancelled_before", ["organizers_copies_read", "room_events_read"])
def test_our_event_cancelled_after_its_batch_was_read_is_never_imported(live, monkeypatch, cancelled_before):
    """A batch of notifications reads the room's events (and then the organizers' copies) first, and syncs
    them one by one afterwards. A Roomsync booking cancelled in between has its event cancelled and its links
    dropped by its push, so the batch holds a stale room copy nothing links: it must not come back as an
    Outlook booking (a ghost that could refuse the next booking of the slot). Either the organizer's copy read
    with the batch still shows our transactionId, or it is gone and the room's copy is read again."""
    made = [book(live["venue"], live["a"], day(1, 9 + 2 * n), day(1, 10 + 2 * n), live["priya"], title=f"Ours {n}")
            for n in range(2)]
    tenant_state(live["connected"]).delivery.flush(timeout=10)  # the room copies' notifications, not processed
    real_batched, rounds = inbound._batched, []

    def cancel_midway(ctx, keys, build):
        results = real_batched(ctx, keys, build)
        if keys:
            rounds.append(len(keys))
        wanted = 2 if cancelled_before == "organizers_copies_read" else 1
        if len(rounds) == wanted and not cancelled:
            cancelled.append(True)
            cancel_booking(db.session.get(Booking, made[0].id), actor=live["boss"])  # pushed inline
        return results

    cancelled = []
    monkeypatch.setattr(inbound, "_batched", cancel_midway)
    inbound.process_notifications(live["pair"].id)
    monkeypatch.undo()
    assert cancelled and rounds[:2] == [2, 2]  # the room's events, then the organizers' copies
    assert [b.uid for b in live_bookings(live["a"])] == [made[1].uid]  # no ghost, not even for a while
    assert not db.session.scalar(select(func.count()).select_from(EventLink)
                                 .where(EventLink.booking_uid == made[0].uid))  # nor a link to the cancelled one
    assert not db.session.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "sync.inbound.created"))
    settle(live["connected"], live["pair"])
    assert [b.uid for b in live_bookings(live["a"])] == [made[1].uid]
    assert [e.start for e in room_events()] == [day(1, 11)]
    assert outbox("event_refused") == [] and reconcile.audit_now(live["pair"].id) == 0
