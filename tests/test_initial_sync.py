"""The initial sync of a pair, end to end against the sandbox tenant over HTTPS: every step of the reference
guide and what we add (resume after a failure anywhere, leases, the catch-up, the parity audit, the report,
the dry run).

Times are real (not frozen): the sandbox's rooms judge "upcoming" by the wall clock. Events are placed on
days relative to today in the venue's zone (Europe/London).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from webapp.audit import AuditEntry
from webapp.booking.models import Booking, Occurrence, Space
from webapp.booking.operations import BookingInput, create_booking
from webapp.extensions import db
from webapp.graph import graph_client
from webapp.graph.types import (Attendee, EventDraft, Location, PatternedRecurrence, RecurrencePattern,
                                RecurrenceRange)
from webapp.integration.models import IntegrationSettings
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL
from webapp.sync import initial
from webapp.sync.models import EventLink, InitialSync, NotedBooking, Pair, SyncPreview, SyncReportItem
from webapp.timeutil import localize, now_utc, to_local

LONDON = "Europe/London"
ROOM = "board-room-a@roomsync.test"
ROOM_AB = "board-room-a-b@roomsync.test"
PRIYA = "priya.shah@roomsync.test"
TOM = "tom.baker@roomsync.test"
GHOST = "nobody.here@roomsync.test"  # a Roomsync user the directory does not know


@pytest.fixture
def setup(connected, sandbox_admin, make_venue, make_space, make_user):
    venue = make_venue(allow_overnight=False)
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email=DEMO_BUTLER_EMAIL, enabled=True,
                                       last_validated_at=now_utc()))
    db.session.commit()
    a = make_space(venue, "Board room A")
    b = make_space(venue, "Board room B")
    ab = make_space(venue, "Board room A+B", depends_on=[a, b])
    priya = make_user(PRIYA, first_name="Priya", last_name="Shah")
    tom = make_user(TOM, first_name="Tom", last_name="Baker")
    ghost = make_user(GHOST, first_name="No", last_name="Body")
    boss = make_user("boss@roomsync.test", role="admin")
    return dict(venue=venue, a=a, b=b, ab=ab, priya=priya, tom=tom, ghost=ghost, admin=sandbox_admin, boss=boss)


def day(offset: int, hh: int, mm: int = 0, tz=None) -> datetime:
    from zoneinfo import ZoneInfo

    zone = tz or ZoneInfo(LONDON)
    today = to_local(now_utc(), zone).date()
    return localize(datetime.combine(today + timedelta(days=offset), time(hh, mm)), zone)


def meeting(organizer: str, subject: str, start: datetime, end: datetime, rooms=(ROOM,), *, private=False,
            recurrence=None, attendees=()) -> object:
    people = tuple(Attendee(email=a, type="required") for a in attendees)
    return graph_client().create_event(organizer, EventDraft(
        subject=subject, start=start, end=end, is_private=private, recurrence=recurrence,
        time_zone=LONDON if recurrence else None,
        attendees=people + tuple(Attendee(email=r, type="resource") for r in rooms),
        location=Location(display_name=rooms[0], email=rooms[0])))


def room_view(room=ROOM, days=30):
    start = day(0, 0)
    return graph_client().calendar_view(room, start, start + timedelta(days=days))


def pair_of(space, room=ROOM, state="queued") -> Pair:
    pair = Pair(venue_id=space.venue_id, space_id=space.id, room_email=room, room_id=f"id-{room}",
                room_display_name=room.split("@")[0], state=state)
    db.session.add(pair)
    db.session.commit()
    return pair


def run(pair) -> InitialSync:
    initial.run_initial_sync(pair.id)
    db.session.expire_all()
    return db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair.id))


def report(run_, kind):
    return list(db.session.scalars(select(SyncReportItem).where(SyncReportItem.run_id == run_.id,
                                                                SyncReportItem.kind == kind)
                                   .order_by(SyncReportItem.start_utc)))


def bookings_of(space) -> list[Booking]:
    return [b for b in db.session.scalars(select(Booking).order_by(Booking.start_utc))
            if space.id in {s.id for s in b.spaces} and b.cancelled_at is None]


def book(venue, spaces, start, end, holder, title="Roomsync meeting", **extra) -> Booking:
    from webapp.auth.models import User

    spaces = spaces if isinstance(spaces, list) else [spaces]
    admin = db.session.scalar(select(User).where(User.email == "boss@roomsync.test"))
    return create_booking(venue, BookingInput(space_ids=[s.id for s in spaces], start=start, end=end, title=title,
                                              holder_id=holder.id if holder else None, **extra),
                          actor=admin, bypass_rules=True)


# ---------------------------------------------------------------------------------------------- the whole run


def test_a_full_initial_sync_imports_adjusts_restores_and_both_sides_agree(setup):
    venue, a, b = setup["venue"], setup["a"], setup["b"]
    on_grid = meeting(PRIYA, "Design review", day(1, 10), day(1, 11))
    off_grid = meeting(TOM, "Quick sync", day(1, 13, 53), day(1, 14, 7))
    secret = meeting(PRIYA, "Salary talks", day(2, 9), day(2, 9, 30), private=True)
    # Roomsync side: past (deleted, never restored), upcoming (restored), clashing with an import (not
    # restored), a holder unknown to the directory (not restored), a multi-space booking (A removed from it,
    # restored alone on A).
    past = book(venue, a, day(-3, 10), day(-3, 11), setup["priya"], "Old one")
    keep = book(venue, a, day(3, 15), day(3, 16), setup["tom"], "Roomsync planning")
    clash = book(venue, a, day(1, 10, 30), day(1, 11, 30), setup["tom"], "Clashes with the design review")
    ghost = book(venue, a, day(4, 9), day(4, 10), setup["ghost"], "Ghost's booking")
    both = book(venue, [a, b], day(5, 11), day(5, 12), setup["priya"], "Both rooms")
    past_id, both_id = past.id, both.id
    pair = pair_of(a)

    result = run(pair)

    pair = db.session.get(Pair, pair.id)
    assert pair.state in ("done", "live"), pair.state_detail
    assert result.step == 8 and result.finished_at is not None
    # Imported: three events, the organizers are the holders, the private one stays private.
    imported = {b_.title: b_ for b_ in bookings_of(a) if b_.origin == "microsoft"}
    assert set(imported) == {"Design review", "Quick sync", "Salary talks"}
    assert imported["Design review"].holder.email == PRIYA
    assert imported["Salary talks"].private is True
    # Adjusted to the grid (13:53–14:07 → 13:45–14:00) here and written back to Tom's event in Outlook.
    quick = imported["Quick sync"]
    assert (quick.start_utc, quick.end_utc) == (day(1, 13, 45), day(1, 14))
    toms = graph_client().get_event(TOM, off_grid.id)
    assert (toms.start, toms.end) == (day(1, 13, 45), day(1, 14))
    adjusted = report(result, "adjusted")
    assert [(r.before_start_utc, r.before_end_utc, r.start_utc, r.end_utc) for r in adjusted] == [
        (day(1, 13, 53), day(1, 14, 7), day(1, 13, 45), day(1, 14))]
    assert adjusted[0].pending is None
    # Restored: Tom's planning and the multi-space booking (as a new booking on A alone); both in Outlook.
    restored = {r.booking_uid: r for r in report(result, "restored")}
    assert len(restored) == 2
    titles = {db.session.scalar(select(Booking.title).where(Booking.uid == uid)) for uid in restored}
    assert titles == {"Roomsync planning", "Both rooms"}
    for uid in restored:
        link = db.session.scalar(select(EventLink).where(EventLink.booking_uid == uid))
        event = graph_client().get_event(link.organizer_email, link.organizer_event_id)
        assert any(att.email.lower() == ROOM and att.type == "resource" for att in event.attendees)
        assert link.room_event_id is not None  # the catch-up found the room's copy
    # Not restored, with reasons.
    missing = {r.title: r.reason for r in report(result, "not_restored")}
    assert "conflicts with an event imported from Outlook" in missing["Clashes with the design review"]
    assert "not in the Microsoft 365 directory" in missing["Ghost's booking"]
    # The space was cleared: the past booking is gone; B keeps its part of the multi-space booking.
    assert db.session.get(Booking, past_id) is None
    both_now = db.session.get(Booking, both_id)
    assert [s.id for s in both_now.spaces] == [b.id]
    assert db.session.scalar(select(func.count()).select_from(Occurrence).where(
        Occurrence.booking_id == both_id, Occurrence.space_id == a.id)) == 0
    # Both sides agree, the report counts everything, each action is audited.
    assert result.parity["agrees"] is True, result.parity
    assert result.counts["imported"] == 3 and result.counts["restored"] == 2 and result.counts["not_restored"] == 2
    assert result.counts["noted"] == 4 and result.counts["deleted"] == 5
    actions = {e.action for e in db.session.scalars(select(AuditEntry).where(AuditEntry.subject == f"pair:{pair.id}"))}
    assert {"sync.started", "sync.noted", "sync.space_cleared", "sync.imported", "sync.restored",
            "sync.not_restored", "sync.parity", "sync.finished"} <= actions
    assert "Salary talks" not in " ".join(e.detail for e in db.session.scalars(select(AuditEntry)))
    assert not report(result, "refused")
    del on_grid, secret, keep, clash, ghost


def test_a_series_comes_in_as_a_series_with_its_moved_and_cancelled_occurrences(setup):
    a = setup["a"]
    weekly = PatternedRecurrence(RecurrencePattern(type="weekly", interval=1, days_of_week=(
        day(1, 9).strftime("%A").lower(),), first_day_of_week="monday"),
        RecurrenceRange(type="numbered", start_date=day(1, 9).date(), number_of_occurrences=6,
                        recurrence_time_zone=LONDON))
    master = meeting(PRIYA, "Weekly 1:1", day(1, 9, 5), day(1, 9, 50), recurrence=weekly)
    client = graph_client()
    instances = client.calendar_view(PRIYA, day(0, 0), day(60, 0))
    ours = sorted((e for e in instances if e.series_master_id == master.id), key=lambda e: e.start)
    assert len(ours) == 6
    client.delete_event(PRIYA, ours[2].id)  # the third is cancelled
    client.update_event(PRIYA, ours[3].id, EventDraft(start=ours[3].start + timedelta(hours=3),
                                                       end=ours[3].end + timedelta(hours=3)))  # the fourth moves
    pair = pair_of(a)

    result = run(pair)

    series = [b_ for b_ in bookings_of(a) if b_.origin == "microsoft"]
    assert len(series) == 1 and series[0].rrule, [b_.title for b_ in series]
    booking = series[0]
    # 09:05–09:50 → 09:00–09:45 for every occurrence.
    times = sorted((o.start_utc, o.end_utc) for o in db.session.scalars(
        select(Occurrence).where(Occurrence.booking_id == booking.id)))
    expected_firsts = [day(1 + 7 * n, 9) for n in range(6) if n != 2]
    moved = day(1 + 21, 12)  # 12:05–12:50 adjusted to 12:00–12:45
    assert len(times) == 5
    assert (moved, moved + timedelta(minutes=45)) in times
    assert {t[0] for t in times} == set(expected_firsts[:2] + [moved] + expected_firsts[3:])
    # The series' adjustment was written back to the organizer's master.
    master_now = client.get_event(PRIYA, master.id)
    assert (to_local(master_now.start, day(0, 0).tzinfo).time(), master_now.end - master_now.start) == (
        time(9, 0), timedelta(minutes=45))
    assert result.parity["agrees"] is True, result.parity


def test_overnight_events_are_declined_as_the_room_and_the_organizer_is_told(setup):
    a = setup["a"]
    late = meeting(TOM, "Night deploy", day(2, 22), day(3, 2))
    pair = pair_of(a)

    result = run(pair)

    assert not bookings_of(a)
    refused = report(result, "refused")
    assert len(refused) == 1 and "spans midnight" in refused[0].reason
    # Declined as the room: its copy is gone and the organizer's copy shows the room declined.
    assert not [e for e in room_view() if e.subject and e.start == late.start]
    toms = graph_client().get_event(TOM, late.id)
    assert {a_.email.lower(): a_.response for a_ in toms.attendees}[ROOM] == "declined"
    from webapp.notify.models import OutboxMessage

    mail = db.session.scalars(select(OutboxMessage)).all()
    assert [m.kind for m in mail] == ["event_refused"]
    assert TOM in str(mail[0].to) and "Night deploy" in mail[0].text


def test_an_event_clashing_with_a_space_sharing_booking_is_refused(setup):
    venue, a, ab = setup["venue"], setup["a"], setup["ab"]
    book(venue, ab, day(2, 14), day(2, 16), setup["priya"], "Town hall in A+B")
    meeting(TOM, "Squeezed in", day(2, 15), day(2, 15, 30))
    pair = pair_of(a)

    result = run(pair)

    refused = report(result, "refused")
    assert len(refused) == 1
    assert "Board room A+B" in refused[0].reason and "shares space" in refused[0].reason
    assert not [b_ for b_ in bookings_of(a) if b_.origin == "microsoft"]


def test_an_event_booking_more_than_ten_synced_rooms_is_removed_in_outlook(setup, make_space):
    venue, a = setup["venue"], setup["a"]
    rooms = [r.email.lower() for r in graph_client().list_rooms()]
    assert len(rooms) >= 11
    others = [r for r in rooms if r != ROOM][:10]
    for n, email in enumerate(others):
        pair_of(make_space(venue, f"Extra {n}"), room=email, state="done")
    big = meeting(PRIYA, "All hands everywhere", day(3, 10), day(3, 11), rooms=(ROOM, *others))
    pair = pair_of(a)

    result = run(pair)

    removed = report(result, "removed")
    assert len(removed) == 1 and "11 synced rooms" in removed[0].reason
    assert not bookings_of(a)
    from webapp.graph.errors import NotFound

    try:  # Graph removes a cancelled meeting from the organizer's calendar; a lingering copy must say cancelled
        assert graph_client().get_event(PRIYA, big.id).is_cancelled is True
    except NotFound:
        pass
    assert not [e for e in room_view() if e.start == big.start and not e.is_cancelled]


def test_a_series_running_past_1080_days_is_shortened_both_sides(setup):
    a = setup["a"]
    setup["admin"].set_processing(ROOM, bookingWindowInDays=1080, enforceSchedulingHorizon=False)
    forever = PatternedRecurrence(
        RecurrencePattern(type="absoluteMonthly", interval=1, day_of_month=day(1, 9).day),
        RecurrenceRange(type="noEnd", start_date=day(1, 9).date(), recurrence_time_zone=LONDON))
    master = meeting(PRIYA, "Monthly forever", day(1, 9), day(1, 10), recurrence=forever)
    pair = pair_of(a)

    result = run(pair)

    shortened = report(result, "shortened")
    assert len(shortened) == 1 and "1,080 days" in shortened[0].reason
    booking = [b_ for b_ in bookings_of(a) if b_.origin == "microsoft"][0]
    last = db.session.scalar(select(func.max(Occurrence.start_utc)).where(Occurrence.booking_id == booking.id))
    horizon = day(1080, 23, 59)
    assert last <= horizon and last > horizon - timedelta(days=32)
    master_now = graph_client().get_event(PRIYA, master.id)
    assert master_now.recurrence.range.type == "endDate"
    assert master_now.recurrence.range.end_date == (to_local(now_utc(), day(0, 0).tzinfo).date() + timedelta(days=1080))


def test_one_way_butler_events_of_noted_bookings_are_removed(setup):
    venue, a = setup["venue"], setup["a"]
    booking = book(venue, a, day(2, 10), day(2, 11), setup["tom"], "Placed by one-way sync")
    butler_event = graph_client().create_event(DEMO_BUTLER_EMAIL, EventDraft(
        subject="Board room A: Placed by one-way sync", start=day(2, 10), end=day(2, 11)))
    db.session.add(EventLink(booking_uid=booking.uid, kind="one_way", room_email=ROOM,
                             organizer_email=DEMO_BUTLER_EMAIL, organizer_event_id=butler_event.id))
    db.session.commit()
    pair = pair_of(a)

    result = run(pair)

    assert result.counts["butler_removed"] == 1
    from webapp.graph.errors import NotFound

    with pytest.raises(NotFound):
        graph_client().get_event(DEMO_BUTLER_EMAIL, butler_event.id)
    assert [r.title for r in report(result, "restored")] == ["Placed by one-way sync"]


# ---------------------------------------------------------------------------------------------- resumable


@pytest.mark.parametrize("fail_at", [1, 3, 4, 5, 6, 7])
def test_a_run_that_fails_anywhere_resumes_with_nothing_doubled_or_lost(setup, monkeypatch, fail_at):
    venue, a = setup["venue"], setup["a"]
    meeting(PRIYA, "Design review", day(1, 10), day(1, 11))
    meeting(TOM, "Quick sync", day(1, 13, 53), day(1, 14, 7))
    book(venue, a, day(3, 15), day(3, 16), setup["tom"], "Roomsync planning")
    book(venue, a, day(4, 15), day(4, 16), setup["priya"], "Another plan")
    pair = pair_of(a)
    original = initial.STEPS[fail_at]
    calls = {"n": 0}

    def crashing(ctx):
        calls["n"] += 1
        if calls["n"] == 1:
            original(ctx)  # the step does its work (and its Outlook writes) …
            raise RuntimeError("worker killed")  # … and dies before or after committing the step change
        return original(ctx)

    monkeypatch.setitem(initial.STEPS, fail_at, crashing)
    with pytest.raises(RuntimeError):
        initial.run_initial_sync(pair.id)
    db.session.expire_all()
    assert db.session.get(Pair, pair.id).state == "running"
    assert "retried" in db.session.get(Pair, pair.id).state_detail
    result = run(pair)

    assert db.session.get(Pair, pair.id).state in ("done", "live")
    titles = sorted(b_.title for b_ in bookings_of(a))
    assert titles == ["Another plan", "Design review", "Quick sync", "Roomsync planning"]
    # Each restored booking exists once in Outlook (transactionId) and each import once here.
    for email, subject in ((TOM, "Roomsync planning"), (PRIYA, "Another plan")):
        found = [e for e in graph_client().calendar_view(email, day(0, 0), day(10, 0)) if e.subject == subject]
        assert len(found) == 1
    assert result.parity["agrees"] is True, result.parity


def test_a_second_worker_leaves_a_leased_run_alone(setup, monkeypatch):
    a = setup["a"]
    pair = pair_of(a)
    run_ = InitialSync(pair_id=pair.id, step=1, counts={}, lease_owner="someone-else",
                       lease_until=now_utc() + timedelta(minutes=5))
    db.session.add(run_)
    db.session.commit()
    initial.run_initial_sync(pair.id)
    db.session.expire_all()
    assert db.session.get(InitialSync, run_.id).step == 1
    assert db.session.get(Pair, pair.id).state == "queued"


def test_the_sweeper_requeues_runs_whose_lease_lapsed(setup, monkeypatch, app):
    from webapp.sync import schedule

    a, b = setup["a"], setup["b"]
    stale = pair_of(a, state="running")
    db.session.add(InitialSync(pair_id=stale.id, step=4, counts={}, lease_owner="dead",
                               lease_until=now_utc() - timedelta(seconds=1)))
    fresh = pair_of(b, room="board-room-b@roomsync.test", state="running")
    db.session.add(InitialSync(pair_id=fresh.id, step=4, counts={}, lease_owner="alive",
                               lease_until=now_utc() + timedelta(minutes=1)))
    db.session.commit()
    assert schedule.stalled_pair_ids() == [stale.id]


def test_unsync_is_refused_while_the_initial_sync_runs(setup):
    from webapp.booking.errors import ValidationError
    from webapp.sync import pairs

    pair = pair_of(setup["a"], state="running")
    with pytest.raises(ValidationError) as refused:
        pairs.unsync(pair, None)
    assert "still running" in str(refused.value.fields["form"])
    assert db.session.get(Pair, pair.id) is not None


# ---------------------------------------------------------------------------------------------- catch-up and dry run


def test_events_made_in_outlook_during_the_sync_are_imported_at_the_catch_up(setup, monkeypatch):
    a = setup["a"]
    meeting(PRIYA, "Before", day(1, 10), day(1, 11))
    pair = pair_of(a)
    original = initial.STEPS[5]

    def restore_then_outlook_booking(ctx):
        original(ctx)
        meeting(TOM, "Made meanwhile", day(2, 10), day(2, 11))

    monkeypatch.setitem(initial.STEPS, 5, restore_then_outlook_booking)
    result = run(pair)

    assert sorted(b_.title for b_ in bookings_of(a)) == ["Before", "Made meanwhile"]
    assert result.parity["agrees"] is True


def test_the_dry_run_reports_what_would_happen_and_changes_nothing(setup):
    venue, a = setup["venue"], setup["a"]
    meeting(PRIYA, "Design review", day(1, 10), day(1, 11))
    meeting(TOM, "Quick sync", day(1, 13, 53), day(1, 14, 7))
    meeting(TOM, "Night deploy", day(2, 22), day(3, 2))
    book(venue, a, day(1, 10, 30), day(1, 11, 30), setup["tom"], "Clashes")
    book(venue, a, day(4, 9), day(4, 10), setup["ghost"], "Ghost's booking")
    book(venue, a, day(5, 9), day(5, 10), setup["priya"], "Fine")
    before_bookings = db.session.scalar(select(func.count()).select_from(Booking))
    before_room = [(e.id, e.start, e.end) for e in room_view()]
    preview = SyncPreview(venue_id=venue.id, space_id=a.id, room_email=ROOM, room_display_name="Board room A")
    db.session.add(preview)
    db.session.commit()

    initial.run_preview(preview.id)

    db.session.expire_all()
    preview = db.session.get(SyncPreview, preview.id)
    assert preview.state == "done", preview.error
    result = preview.result
    assert (result["events"], result["noted"], result["bookings_deleted"], result["restorable"]) == (3, 3, 3, 1)
    assert [r["title"] for r in result["adjusted"]] == ["Quick sync"]
    assert [r["title"] for r in result["refused"]] == ["Night deploy"]
    reasons = {r["title"]: r["reason"] for r in result["not_restored"]}
    assert "conflicts" in reasons["Clashes"] and "directory" in reasons["Ghost's booking"]
    assert db.session.scalar(select(func.count()).select_from(Booking)) == before_bookings
    assert [(e.id, e.start, e.end) for e in room_view()] == before_room
    assert db.session.scalar(select(func.count()).select_from(NotedBooking)) == 0


def test_an_event_moved_or_deleted_in_outlook_during_the_sync_is_followed_at_the_catch_up(setup, monkeypatch):
    a = setup["a"]
    moving = meeting(PRIYA, "Moves", day(1, 10), day(1, 11))
    leaving = meeting(TOM, "Leaves", day(2, 10), day(2, 11))
    pair = pair_of(a)
    original = initial.STEPS[5]

    def restore_then_outlook_changes(ctx):
        original(ctx)
        graph_client().update_event(PRIYA, moving.id, EventDraft(start=day(1, 15, 5), end=day(1, 16)))
        graph_client().delete_event(TOM, leaving.id)

    monkeypatch.setitem(initial.STEPS, 5, restore_then_outlook_changes)
    result = run(pair)

    [booking] = bookings_of(a)
    assert (booking.title, booking.start_utc, booking.end_utc) == ("Moves", day(1, 15), day(1, 16))
    assert result.parity["agrees"] is True, result.parity
    actions = [e.action for e in db.session.scalars(select(AuditEntry))]
    assert "sync.moved_meanwhile" in actions and "sync.deleted_meanwhile" in actions


def test_a_series_across_the_dst_change_keeps_its_wall_clock_time(setup):
    """Europe/London moves to summer time on the last Sunday of March: a weekly 09:05 meeting on either side
    of it comes in at 09:00 local, the UTC times shifting by an hour."""
    from zoneinfo import ZoneInfo

    a = setup["a"]
    london = ZoneInfo(LONDON)
    year = to_local(now_utc(), london).year + (1 if to_local(now_utc(), london).month > 3 else 0)
    last_sunday = max(date(year, 3, d) for d in range(25, 32) if date(year, 3, d).weekday() == 6)
    first = last_sunday - timedelta(days=13)  # a Monday two weeks before the change
    setup["admin"].set_processing(ROOM, bookingWindowInDays=400)  # the next change may be up to a year away
    start = localize(datetime.combine(first, time(9, 5)), london)
    weekly = PatternedRecurrence(RecurrencePattern(type="weekly", interval=1, days_of_week=("monday",),
                                                   first_day_of_week="monday"),
                                 RecurrenceRange(type="numbered", start_date=first, number_of_occurrences=4,
                                                 recurrence_time_zone=LONDON))
    meeting(PRIYA, "Across DST", start, start + timedelta(minutes=45), recurrence=weekly)
    pair = pair_of(a)

    result = run(pair)

    [booking] = [b_ for b_ in bookings_of(a) if b_.origin == "microsoft"]
    starts = sorted(o.start_utc for o in db.session.scalars(select(Occurrence).where(Occurrence.booking_id == booking.id)))
    assert [to_local(s, london).time() for s in starts] == [time(9, 0)] * 4
    assert [s.hour for s in starts] == [9, 9, 8, 8]  # GMT, GMT, then BST (UTC+1)
    assert result.parity["agrees"] is True, result.parity


def test_a_restored_series_keeps_the_occurrences_that_clash_with_nothing(setup):
    venue, a = setup["venue"], setup["a"]
    weekly = book(venue, a, day(1, 16), day(1, 17), setup["tom"], "Weekly retro", rrule="FREQ=WEEKLY;COUNT=4")
    meeting(PRIYA, "Takes the second retro slot", day(8, 16), day(8, 17))
    del weekly
    pair = pair_of(a)

    result = run(pair)

    [restored] = report(result, "restored")
    assert "1 of its 4 occurrences clash" in restored.reason
    booking = db.session.scalar(select(Booking).where(Booking.uid == restored.booking_uid))
    starts = sorted(o.start_utc for o in db.session.scalars(select(Occurrence).where(Occurrence.booking_id == booking.id)))
    assert starts == [day(1, 16), day(15, 16), day(22, 16)]
    # In Outlook too: Tom's series without the clashing occurrence, and the room accepted it.
    toms = [e for e in graph_client().calendar_view(TOM, day(0, 0), day(30, 0)) if e.subject == "Weekly retro"]
    assert sorted(e.start for e in toms) == starts
    assert {a_.email.lower(): a_.response for a_ in graph_client().get_event(TOM, toms[0].series_master_id).attendees}[
        ROOM] == "accepted"
    assert result.parity["agrees"] is True, result.parity
