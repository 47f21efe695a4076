"""Booking operations: creation, rules, overlaps with dependent spaces, series edits and cancellations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from webapp.booking.errors import ConflictError, PermissionDenied, ValidationError
from webapp.booking.models import Booking, Occurrence
from webapp.booking.operations import (
    BookingInput,
    cancel_booking,
    create_booking,
    input_from_booking,
    occurrence_times,
    occurrences_between,
    space_closure,
    update_booking,
)
from webapp.extensions import db


@pytest.fixture
def venue(make_venue):
    return make_venue()


@pytest.fixture
def alice(make_user):
    return make_user("alice@roomsync.test", first_name="Alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob@roomsync.test", first_name="Bob")


def _input(spaces, start, minutes=60, **fields):
    return BookingInput(space_ids=[s.id for s in spaces], start=start, end=start + timedelta(minutes=minutes), **fields)


def _live_rows(booking):
    return db.session.scalars(select(Occurrence).where(Occurrence.booking_id == booking.id).order_by(Occurrence.start_utc)).all()


def test_create_single_booking_materialises_one_row_per_space(clock, venue, make_space, alice, london_time):
    a, b = make_space(venue), make_space(venue)
    booking = create_booking(venue, _input([a, b], london_time(2026, 3, 3, 10, 0), title="Plan"), actor=alice)
    assert booking.holder_id == alice.id and booking.origin == "roomsync"
    rows = _live_rows(booking)
    assert sorted(r.space_id for r in rows) == sorted([a.id, b.id])
    assert all(r.start_utc == datetime(2026, 3, 3, 10, 0, tzinfo=timezone.utc) for r in rows)


def test_overlap_on_same_space_is_refused_and_touching_is_fine(clock, venue, make_space, make_booking, alice, bob, london_time):
    room = make_space(venue)
    make_booking(venue, room, london_time(2026, 3, 3, 10, 0), 60, holder=alice)
    with pytest.raises(ConflictError) as caught:
        create_booking(venue, _input([room], london_time(2026, 3, 3, 10, 30)), actor=bob)
    assert caught.value.conflicts[0].space_id == room.id
    assert "already booked" in caught.value.message
    # Back-to-back bookings share an instant, not a minute.
    create_booking(venue, _input([room], london_time(2026, 3, 3, 11, 0)), actor=bob)
    create_booking(venue, _input([room], london_time(2026, 3, 3, 9, 0)), actor=bob)
    assert db.session.scalar(select(func.count(Booking.id))) == 3


def test_dependencies_block_both_directions_but_not_siblings(clock, venue, make_space, make_booking, alice, london_time):
    a = make_space(venue, "Board room A")
    b = make_space(venue, "Board room B")
    ab = make_space(venue, "Board room A+B", depends_on=[a, b])
    start = london_time(2026, 3, 3, 10, 0)
    make_booking(venue, a, start, holder=alice)
    # A is taken: A+B cannot be booked, B can.
    with pytest.raises(ConflictError) as caught:
        make_booking(venue, ab, start, holder=alice)
    assert caught.value.conflicts[0].space_name == "Board room A"
    make_booking(venue, b, start, holder=alice)
    # A+B taken later: A and B are blocked for that time.
    later = london_time(2026, 3, 3, 14, 0)
    make_booking(venue, ab, later, holder=alice)
    for space in (a, b):
        with pytest.raises(ConflictError):
            make_booking(venue, space, later, holder=alice)


def test_closure_follows_what_each_booking_occupies(venue, make_space):
    a = make_space(venue, "A")
    b = make_space(venue, "B")
    c = make_space(venue, "C")
    ab = make_space(venue, "A+B", depends_on=[a, b])
    ac = make_space(venue, "A+C", depends_on=[a, c])
    floor = make_space(venue, "Whole floor", depends_on=[ab])
    assert space_closure([a.id]) == {a.id, ab.id, ac.id, floor.id}
    assert space_closure([b.id]) == {b.id, ab.id, floor.id}
    assert space_closure([floor.id]) == {floor.id, ab.id, a.id, b.id, ac.id}
    # A+B and A+C both occupy A, so they exclude each other; C and B never meet.
    assert ac.id in space_closure([ab.id]) and ab.id in space_closure([ac.id])
    assert b.id not in space_closure([c.id])


@pytest.mark.parametrize(
    ("start", "minutes", "field", "words"),
    [
        ((2026, 3, 3, 10, 5), 60, "start", "grid"),
        ((2026, 3, 3, 10, 0), 50, "end", "grid"),
        ((2026, 3, 3, 6, 0), 60, "start", "opens at 07:00"),
        ((2026, 3, 3, 21, 30), 60, "end", "closes at 22:00"),
        ((2026, 3, 3, 21, 0), 240, "end", "overnight"),
        ((2026, 3, 3, 8, 0), 13 * 60, "end", "at most 12 h"),
        ((2026, 3, 2, 7, 0), 60, "start", "in the past"),
        ((2027, 4, 1, 10, 0), 60, "start", "365 days ahead"),
    ],
)
def test_venue_rules_each_have_their_own_message(clock, venue, make_space, alice, london_time, start, minutes, field, words):
    room = make_space(venue)
    with pytest.raises(ValidationError) as caught:
        create_booking(venue, _input([room], london_time(*start), minutes), actor=alice)
    assert words in caught.value.fields[field], caught.value.fields


def test_closing_time_and_closed_days(clock, make_venue, make_space, alice, london_time):
    venue = make_venue(opening_hours={"mon": ["08:00", "18:00"], "tue": ["08:00", "18:00"]})
    room = make_space(venue)
    with pytest.raises(ValidationError) as caught:
        create_booking(venue, _input([room], london_time(2026, 3, 3, 17, 30), 60), actor=alice)
    assert "closes at 18:00" in caught.value.fields["end"]
    with pytest.raises(ValidationError) as caught:
        create_booking(venue, _input([room], london_time(2026, 3, 4, 10, 0)), actor=alice)
    assert "closed on Wednesdays" in caught.value.fields["start"]


def test_overnight_allowed_when_the_venue_says_so(clock, make_venue, make_space, alice, london_time):
    venue = make_venue(allow_overnight=True, opening_hours={d: ["00:00", "24:00"] for d in ("mon", "tue", "wed")})
    room = make_space(venue)
    booking = create_booking(venue, _input([room], london_time(2026, 3, 3, 22, 0), 180), actor=alice)
    assert booking.end_utc == london_time(2026, 3, 4, 1, 0)


def test_provider_bookings_bypass_venue_rules_but_not_overlaps(clock, venue, make_space, alice, bob, london_time):
    room = make_space(venue)
    odd = _input([room], london_time(2026, 3, 3, 6, 5), 50, holder_id=alice.id)  # before opening, off the grid
    booking = create_booking(venue, odd, actor=None, origin="microsoft", bypass_rules=True)
    assert (booking.holder_id, booking.origin) == (alice.id, "microsoft")
    with pytest.raises(ConflictError):
        create_booking(venue, _input([room], london_time(2026, 3, 3, 6, 30), 30, holder_id=bob.id), actor=None, origin="microsoft", bypass_rules=True)


def test_bad_input_gets_field_errors(clock, venue, make_space, alice, london_time):
    room = make_space(venue)
    start = london_time(2026, 3, 3, 10, 0)
    cases = [
        (BookingInput(space_ids=[], start=start, end=start + timedelta(hours=1)), "space_ids"),
        (BookingInput(space_ids=[999_999], start=start, end=start + timedelta(hours=1)), "space_ids"),
        (BookingInput(space_ids=[room.id], start=datetime(2026, 3, 3, 10), end=start), "start"),
        (BookingInput(space_ids=[room.id], start=start, end=start - timedelta(hours=1)), "end"),
        (BookingInput(space_ids=[room.id], start=start, end=start + timedelta(hours=1), title="x" * 300), "title"),
        (BookingInput(space_ids=[room.id], start=start, end=start + timedelta(hours=1), attendees=["not-an-email"]), "attendees"),
        (BookingInput(space_ids=[room.id], start=start, end=start + timedelta(hours=1), rrule="FREQ=HOURLY;COUNT=3"), "rrule"),
        (BookingInput(space_ids=[room.id], start=start, end=start + timedelta(hours=1), rrule="FREQ=DAILY"), "rrule"),
        (BookingInput(space_ids=[room.id], start=start, end=start + timedelta(hours=1), kind="internal"), "kind"),
        (BookingInput(space_ids=[room.id], start=start, end=start + timedelta(hours=1), custom_fields={"nope": 1}), "custom_fields.nope"),
    ]
    for data, field in cases:
        with pytest.raises(ValidationError) as caught:
            create_booking(venue, data, actor=alice)
        assert field in caught.value.fields, (field, caught.value.fields)
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_members_cannot_book_for_others_but_admins_can(clock, venue, make_space, make_user, alice, bob, london_time):
    room = make_space(venue)
    with pytest.raises(ValidationError) as caught:
        create_booking(venue, _input([room], london_time(2026, 3, 3, 10, 0), holder_id=bob.id), actor=alice)
    assert "holder_id" in caught.value.fields
    admin = make_user(role="admin")
    booking = create_booking(venue, _input([room], london_time(2026, 3, 3, 10, 0), holder_id=bob.id), actor=admin)
    assert booking.holder_id == bob.id and booking.updated_by_id == admin.id


def test_weekly_series_keeps_wall_clock_time_across_dst(clock, venue, make_space, alice, london_time):
    room = make_space(venue)
    booking = create_booking(
        venue, _input([room], london_time(2026, 3, 23, 9, 0), 60, rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=3"), actor=alice
    )
    starts = [o.start for o in occurrence_times(booking)]
    # 23 Mar is GMT (09:00Z), 30 Mar and 6 Apr are BST (08:00Z): still 09:00 in London.
    assert starts == [
        datetime(2026, 3, 23, 9, 0, tzinfo=timezone.utc),
        datetime(2026, 3, 30, 8, 0, tzinfo=timezone.utc),
        datetime(2026, 4, 6, 8, 0, tzinfo=timezone.utc),
    ]
    assert len(_live_rows(booking)) == 3


def test_series_conflict_lists_every_clashing_date(clock, venue, make_space, make_booking, alice, bob, london_time):
    room = make_space(venue)
    make_booking(venue, room, london_time(2026, 3, 10, 9, 30), 30, holder=bob)
    make_booking(venue, room, london_time(2026, 3, 24, 9, 0), 30, holder=bob)
    with pytest.raises(ConflictError) as caught:
        create_booking(venue, _input([room], london_time(2026, 3, 3, 9, 0), 60, rrule="FREQ=WEEKLY;COUNT=5"), actor=alice)
    dates = sorted({c.requested_start_utc.date() for c in caught.value.conflicts})
    assert [d.isoformat() for d in dates] == ["2026-03-10", "2026-03-24"]
    assert "2 of these dates" in caught.value.message
    assert db.session.scalar(select(func.count(Booking.id))) == 2  # nothing half-created


def test_series_edit_this_occurrence_moves_only_it(clock, venue, make_space, alice, london_time):
    room = make_space(venue)
    series = create_booking(venue, _input([room], london_time(2026, 3, 3, 9, 0), 60, title="Stand-up", rrule="FREQ=DAILY;COUNT=5"), actor=alice)
    second = occurrence_times(series)[1]
    data = input_from_booking(series, second.original_start)
    data.start, data.end, data.title = london_time(2026, 3, 4, 11, 0), london_time(2026, 3, 4, 11, 30), "Moved stand-up"
    update_booking(series, data, actor=alice, scope="this", occurrence_start=second.original_start)
    times = occurrence_times(series)
    assert [(o.start, o.title) for o in times][1] == (london_time(2026, 3, 4, 11, 0), "Moved stand-up")
    assert [o.start for o in times if o is not times[1]] == [london_time(2026, 3, d, 9, 0) for d in (3, 5, 6, 7)]
    rows = occurrences_between([room.id], london_time(2026, 3, 4, 0, 0), london_time(2026, 3, 5, 0, 0))
    assert [(r.start_utc, r.end_utc) for r in rows] == [(london_time(2026, 3, 4, 11, 0), london_time(2026, 3, 4, 11, 30))]


def test_series_edit_this_refuses_series_wide_fields(clock, venue, make_space, alice, london_time):
    room, other = make_space(venue), make_space(venue)
    series = create_booking(venue, _input([room], london_time(2026, 3, 3, 9, 0), 60, rrule="FREQ=DAILY;COUNT=3"), actor=alice)
    occ = occurrence_times(series)[1]
    data = input_from_booking(series, occ.original_start)
    data.space_ids = [other.id]
    with pytest.raises(ValidationError) as caught:
        update_booking(series, data, actor=alice, scope="this", occurrence_start=occ.original_start)
    assert "space_ids" in caught.value.fields


def test_series_edit_this_and_following_splits_the_series(clock, venue, make_space, alice, london_time):
    room = make_space(venue)
    series = create_booking(venue, _input([room], london_time(2026, 3, 2, 14, 0), 60, title="Weekly", rrule="FREQ=WEEKLY;COUNT=6"), actor=alice)
    third = occurrence_times(series)[2]
    data = input_from_booking(series, third.original_start)
    data.start, data.end, data.title = london_time(2026, 3, 16, 15, 0), london_time(2026, 3, 16, 16, 0), "Weekly (later)"
    new = update_booking(series, data, actor=alice, scope="following", occurrence_start=third.original_start)
    assert new.id != series.id
    assert [o.start for o in occurrence_times(series)] == [london_time(2026, 3, 2, 14, 0), london_time(2026, 3, 9, 14, 0)]
    # The new series keeps the remaining count (4) and its own time; 29 Mar crosses DST in wall-clock time.
    assert [o.start for o in occurrence_times(new)] == [london_time(2026, 3, d, 15, 0) for d in (16, 23, 30)] + [london_time(2026, 4, 6, 15, 0)]
    assert new.title == "Weekly (later)" and series.title == "Weekly"


def test_series_edit_all_shifts_every_occurrence_and_keeps_cancellations(clock, venue, make_space, alice, london_time):
    room = make_space(venue)
    series = create_booking(venue, _input([room], london_time(2026, 3, 3, 9, 0), 60, rrule="FREQ=DAILY;COUNT=4"), actor=alice)
    third = occurrence_times(series)[2]
    cancel_booking(series, actor=alice, scope="this", occurrence_start=third.original_start)
    second = occurrence_times(series)[1]
    data = input_from_booking(series, second.original_start)
    data.start, data.end = london_time(2026, 3, 4, 10, 0), london_time(2026, 3, 4, 11, 30)
    update_booking(series, data, actor=alice, scope="all", occurrence_start=second.original_start)
    live = [(o.start, o.end) for o in occurrence_times(series) if not o.cancelled]
    assert live == [(london_time(2026, 3, d, 10, 0), london_time(2026, 3, d, 11, 30)) for d in (3, 4, 6)]


def test_cancel_scopes(clock, venue, make_space, alice, london_time):
    room = make_space(venue)
    series = create_booking(venue, _input([room], london_time(2026, 3, 3, 9, 0), 60, rrule="FREQ=DAILY;COUNT=5"), actor=alice)
    times = occurrence_times(series)
    cancel_booking(series, actor=alice, scope="this", occurrence_start=times[1].original_start)
    assert len(_live_rows(series)) == 4
    cancel_booking(series, actor=alice, scope="following", occurrence_start=times[3].original_start)
    assert [r.start_utc for r in _live_rows(series)] == [times[0].start, times[2].start]
    cancel_booking(series, actor=alice)
    assert series.cancelled_at is not None and _live_rows(series) == []
    # The slot is free again.
    create_booking(venue, _input([room], times[0].start), actor=alice)


def test_only_holder_or_admin_may_change(clock, venue, make_space, make_booking, alice, bob, make_user, london_time):
    room = make_space(venue)
    booking = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), holder=alice)
    with pytest.raises(PermissionDenied):
        cancel_booking(booking, actor=bob)
    with pytest.raises(PermissionDenied):
        update_booking(booking, input_from_booking(booking), actor=bob)
    cancel_booking(booking, actor=make_user(role="admin"))
    assert booking.is_cancelled


def test_update_moving_onto_a_busy_slot_changes_nothing(clock, venue, make_space, make_booking, alice, london_time):
    room = make_space(venue)
    first = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), holder=alice, title="First")
    make_booking(venue, room, london_time(2026, 3, 3, 12, 0), holder=alice)
    data = input_from_booking(first)
    data.start, data.end, data.title = london_time(2026, 3, 3, 11, 30), london_time(2026, 3, 3, 12, 30), "Changed"
    with pytest.raises(ConflictError):
        update_booking(first, data, actor=alice)
    db.session.expire_all()
    fresh = db.session.get(Booking, first.id)
    assert (fresh.title, fresh.start_utc, fresh.sequence) == ("First", london_time(2026, 3, 3, 10, 0), 0)
    assert [r.start_utc for r in _live_rows(fresh)] == [london_time(2026, 3, 3, 10, 0)]


def test_updating_a_booking_may_overlap_its_own_old_time(clock, venue, make_space, make_booking, alice, london_time):
    room = make_space(venue)
    booking = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), 60, holder=alice)
    data = input_from_booking(booking)
    data.start, data.end = london_time(2026, 3, 3, 10, 30), london_time(2026, 3, 3, 11, 30)
    update_booking(booking, data, actor=alice)
    assert booking.sequence == 1
    assert [r.start_utc for r in _live_rows(booking)] == [london_time(2026, 3, 3, 10, 30)]


def test_naive_datetimes_are_refused_at_the_model_boundary(venue, make_space, alice):
    booking = Booking(venue_id=venue.id, start_utc=datetime(2026, 3, 3, 10), end_utc=datetime(2026, 3, 3, 11))
    db.session.add(booking)
    with pytest.raises(Exception) as caught:
        db.session.flush()
    assert "UTC offset" in str(caught.value)
    db.session.rollback()


def test_a_meeting_in_progress_can_be_extended_but_not_moved_into_the_past(clock, venue, make_space, make_booking, alice, london_time):
    room = make_space(venue)
    booking = make_booking(venue, room, london_time(2026, 3, 2, 9, 0), 60, holder=alice)
    clock.move_to(london_time(2026, 3, 2, 9, 40))
    data = input_from_booking(booking)
    data.end = london_time(2026, 3, 2, 10, 30)
    update_booking(booking, data, actor=alice)
    assert booking.end_utc == london_time(2026, 3, 2, 10, 30)
    data = input_from_booking(booking)
    data.start, data.end = london_time(2026, 3, 2, 8, 0), london_time(2026, 3, 2, 8, 30)
    with pytest.raises(ValidationError) as caught:
        update_booking(booking, data, actor=alice)
    assert "in the past" in caught.value.fields["start"]


# ---------------------------------------------------------------------------------------------- a series created with its exceptions


def _exc(**fields):
    from webapp.booking.operations import ExceptionInput

    return ExceptionInput(**fields)


def test_a_series_is_created_with_its_cancelled_and_moved_occurrences(clock, venue, make_space, make_booking, alice, bob, london_time):
    from webapp.booking.models import OccurrenceException

    room = make_space(venue)
    series = create_booking(
        venue,
        _input([room], london_time(2026, 3, 3, 10, 0), title="Standup", rrule="FREQ=DAILY;COUNT=5"),
        actor=alice,
        exceptions=[
            _exc(original_start=london_time(2026, 3, 4, 10, 0), cancelled=True),
            _exc(original_start=london_time(2026, 3, 5, 10, 0), start=london_time(2026, 3, 5, 14, 0),
                 end=london_time(2026, 3, 5, 15, 30), title="Standup (afternoon)"),
            _exc(original_start=london_time(2026, 3, 6, 10, 0), title="Standup"),  # same title: no override
        ],
    )
    db.session.expire_all()
    stored = {e.original_start_utc: e for e in series.exceptions}
    assert len(stored) == 3 and stored[london_time(2026, 3, 4, 10, 0)].cancelled
    assert stored[london_time(2026, 3, 5, 10, 0)].title == "Standup (afternoon)"
    assert stored[london_time(2026, 3, 6, 10, 0)].title is None
    assert [(r.start_utc, r.end_utc) for r in _live_rows(series)] == [
        (london_time(2026, 3, 3, 10, 0), london_time(2026, 3, 3, 11, 0)),
        (london_time(2026, 3, 5, 14, 0), london_time(2026, 3, 5, 15, 30)),
        (london_time(2026, 3, 6, 10, 0), london_time(2026, 3, 6, 11, 0)),
        (london_time(2026, 3, 7, 10, 0), london_time(2026, 3, 7, 11, 0)),
    ]
    # The moved occurrence occupies its new slot; its original slot and the cancelled one are free.
    with pytest.raises(ConflictError):
        make_booking(venue, room, london_time(2026, 3, 5, 15, 0), holder=bob)
    make_booking(venue, room, london_time(2026, 3, 5, 10, 0), holder=bob)
    make_booking(venue, room, london_time(2026, 3, 4, 10, 0), holder=bob)
    assert db.session.scalar(select(func.count(OccurrenceException.id))) == 3


def test_conflicts_of_a_new_series_are_computed_on_its_moved_times(clock, venue, make_space, make_booking, alice, bob, london_time):
    from webapp.booking.models import OccurrenceException

    room = make_space(venue)
    make_booking(venue, room, london_time(2026, 3, 4, 10, 0), holder=bob, title="Taken at ten")
    make_booking(venue, room, london_time(2026, 3, 5, 14, 0), holder=bob, title="Taken at two")
    rule = "FREQ=DAILY;COUNT=3"
    # Moving the 4 March occurrence away from the taken slot, onto another taken slot: refused on the moved times.
    with pytest.raises(ConflictError) as caught:
        create_booking(
            venue, _input([room], london_time(2026, 3, 3, 10, 0), rrule=rule), actor=alice,
            exceptions=[_exc(original_start=london_time(2026, 3, 4, 10, 0), start=london_time(2026, 3, 5, 13, 30),
                             end=london_time(2026, 3, 5, 14, 30))],
        )
    assert [c.requested_start_utc for c in caught.value.conflicts] == [london_time(2026, 3, 5, 13, 30)]
    # Nothing of the refused series remains: the booking and its exception rows went in one transaction.
    assert db.session.scalar(select(func.count(Booking.id))) == 2
    assert db.session.scalar(select(func.count(OccurrenceException.id))) == 0
    # Moved to a free slot, or cancelled, the clash is gone.
    moved = create_booking(
        venue, _input([room], london_time(2026, 3, 3, 10, 0), rrule=rule), actor=alice,
        exceptions=[_exc(original_start=london_time(2026, 3, 4, 10, 0), start=london_time(2026, 3, 4, 11, 0),
                         end=london_time(2026, 3, 4, 12, 0))],
    )
    assert london_time(2026, 3, 4, 11, 0) in [r.start_utc for r in _live_rows(moved)]
    cancel_booking(moved, actor=alice)
    cancelled = create_booking(
        venue, _input([room], london_time(2026, 3, 3, 10, 0), rrule=rule), actor=alice,
        exceptions=[_exc(original_start=london_time(2026, 3, 4, 10, 0), cancelled=True)],
    )
    assert len(_live_rows(cancelled)) == 2


def test_exceptions_across_the_dst_change_are_keyed_by_their_utc_original_start(clock, venue, make_space, alice, london_time):
    room = make_space(venue)
    series = create_booking(
        venue, _input([room], london_time(2026, 3, 27, 10, 0), rrule="FREQ=DAILY;COUNT=5"), actor=alice,
        # 30 March 10:00 in London is 09:00 UTC (BST).
        exceptions=[_exc(original_start=datetime(2026, 3, 30, 9, 0, tzinfo=timezone.utc), cancelled=True)],
    )
    starts = [r.start_utc for r in _live_rows(series)]
    assert london_time(2026, 3, 30, 10, 0) not in starts and london_time(2026, 3, 31, 10, 0) in starts
    with pytest.raises(ValidationError) as caught:  # 10:00 UTC that day is 11:00 in London: not an occurrence
        create_booking(
            venue, _input([room], london_time(2026, 4, 6, 10, 0), rrule="FREQ=DAILY;COUNT=2"), actor=alice,
            exceptions=[_exc(original_start=datetime(2026, 4, 6, 10, 0, tzinfo=timezone.utc), cancelled=True)],
        )
    assert "Mon 06 Apr 2026 11:00 is not an occurrence" in caught.value.fields["exceptions"]


@pytest.mark.parametrize(
    "exception, message",
    [
        (dict(original_start=(2026, 3, 4, 10, 30), cancelled=True), "is not an occurrence of this series"),
        (dict(original_start=(2026, 3, 9, 10, 0), cancelled=True), "is not an occurrence of this series"),
        (dict(original_start=(2026, 3, 4, 10, 0), start=(2026, 3, 4, 12, 0), end=(2026, 3, 4, 12, 0)), "must end after it starts"),
        (dict(original_start=(2026, 3, 4, 10, 0), start=(2026, 3, 4, 12, 0)), "must end after it starts"),  # ends 11:00
        (dict(original_start=(2026, 3, 4, 10, 0), end=(2026, 3, 4, 9, 0)), "must end after it starts"),
        (dict(original_start=datetime(2026, 3, 4, 10, 0), cancelled=True), "UTC offset"),
    ],
)
def test_exceptions_that_do_not_fit_the_rule_are_refused(clock, venue, make_space, alice, london_time, exception, message):
    room = make_space(venue)
    values = {k: london_time(*v) if isinstance(v, tuple) else v for k, v in exception.items()}
    with pytest.raises(ValidationError) as caught:
        create_booking(venue, _input([room], london_time(2026, 3, 3, 10, 0), rrule="FREQ=DAILY;COUNT=3"), actor=alice,
                       exceptions=[_exc(**values)])
    assert message in caught.value.fields["exceptions"]
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_exceptions_need_a_series_and_one_entry_per_occurrence(clock, venue, make_space, alice, london_time):
    room = make_space(venue)
    first = london_time(2026, 3, 3, 10, 0)
    with pytest.raises(ValidationError) as caught:
        create_booking(venue, _input([room], first), actor=alice, exceptions=[_exc(original_start=first, cancelled=True)])
    assert "Only a repeating booking" in caught.value.fields["exceptions"]
    twice = [_exc(original_start=first, cancelled=True), _exc(original_start=first, title="Again")]
    with pytest.raises(ValidationError) as caught:
        create_booking(venue, _input([room], first, rrule="FREQ=DAILY;COUNT=2"), actor=alice, exceptions=twice)
    assert "given twice" in caught.value.fields["exceptions"]
    every = [_exc(original_start=first, cancelled=True), _exc(original_start=first + timedelta(days=1), cancelled=True)]
    with pytest.raises(ValidationError) as caught:
        create_booking(venue, _input([room], first, rrule="FREQ=DAILY;COUNT=2"), actor=alice, exceptions=every)
    assert "nothing to book" in caught.value.fields["exceptions"]
    # A moved occurrence may not land on another occurrence of its own series.
    onto_next = [_exc(original_start=first, start=first + timedelta(days=1), end=first + timedelta(days=1, hours=1))]
    with pytest.raises(ValidationError) as caught:
        create_booking(venue, _input([room], first, rrule="FREQ=DAILY;COUNT=2"), actor=alice, exceptions=onto_next)
    assert "overlap each other" in caught.value.fields["start"]
    assert db.session.scalar(select(func.count(Booking.id))) == 0
