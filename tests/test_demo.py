"""The demo seed: once only, the promised venue, spaces and people, and bookings that obey the booking rules."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from webapp.auth.models import User
from webapp.booking.models import Booking, Occurrence, Space, Venue, space_dependencies
from webapp.demo import DEMO_ADMIN_EMAIL, DEMO_MEMBER_EMAIL, DEMO_PASSWORD, seed_demo
from webapp.extensions import db
from webapp.timeutil import now_utc, to_local


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_seeding_twice_seeds_once(clock):
    assert seed_demo() is True
    counts = (_count(Venue), _count(Space), _count(User), _count(Booking), _count(Occurrence))

    assert seed_demo() is False
    assert (_count(Venue), _count(Space), _count(User), _count(Booking), _count(Occurrence)) == counts
    assert counts[3] > 40  # meetings and desk days, not an empty calendar


def test_seed_does_nothing_when_a_venue_exists(clock, make_venue):
    make_venue(name="Somewhere else")
    assert seed_demo() is False
    assert _count(Venue) == 1
    assert _count(Space) == 0


def test_venue_spaces_and_people(clock):
    seed_demo()
    venue = db.session.scalar(select(Venue))
    assert (venue.name, venue.timezone, venue.granularity_minutes) == ("HQ", "Europe/London", 15)
    assert (venue.booking_window_days, venue.max_duration_minutes) == (180, 480)
    assert venue.hours_for(0) is not None and venue.hours_for(5) is not None and venue.hours_for(6) is None
    assert [(f.label, f.kind, f.required) for f in venue.custom_fields] == [("Cost centre", "choice", False)]

    rooms = db.session.scalars(select(Space).where(Space.kind == "room")).all()
    desks = db.session.scalars(select(Space).where(Space.kind == "desk")).all()
    assert len(rooms) == 8 and len(desks) == 12
    assert sorted(d.name for d in desks) == sorted(f"Desk {n}" for n in range(1, 13))
    assert all(space.tags for space in rooms + desks)
    combined = next(r for r in rooms if r.name == "Board room A+B")
    assert [s.name for s in combined.depends_on] == ["Board room A", "Board room B"]

    users = db.session.scalars(select(User)).all()
    assert len(users) == 20
    admin = next(u for u in users if u.email == DEMO_ADMIN_EMAIL)
    assert admin.is_admin and admin.check_password(DEMO_PASSWORD)
    members = [u for u in users if u is not admin]
    assert not any(u.is_admin for u in members)
    assert DEMO_MEMBER_EMAIL in {u.email for u in members}
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+@roomsync\.test", u.email) for u in members)
    assert all(u.check_password(DEMO_PASSWORD) for u in members[:3])


def test_bookings_cover_this_week_and_next_with_series_private_and_internal(clock):
    seed_demo()
    bookings = db.session.scalars(select(Booking)).all()
    assert any(b.rrule and "BYDAY=MO,TU,WE,TH,FR" in b.rrule for b in bookings)  # the stand-ups
    assert any(b.rrule and "BYDAY" not in b.rrule for b in bookings)  # a weekly meeting
    assert any(b.private for b in bookings)
    assert any(b.kind == "internal" for b in bookings)
    assert any(s.kind == "desk" for b in bookings for s in b.spaces)
    assert any(b.custom_fields.get("cost_centre") for b in bookings)

    venue = db.session.scalar(select(Venue))
    monday = to_local(now_utc(), venue.tz).date()  # the frozen clock is a Monday
    days = {to_local(o.start_utc, venue.tz).date() for o in db.session.scalars(select(Occurrence))}
    assert monday in days and monday + timedelta(days=7) in days and monday + timedelta(days=11) in days


def test_no_two_occurrences_overlap_on_a_space_or_on_spaces_that_depend_on_each_other(clock):
    seed_demo()
    by_space: dict[int, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for occ in db.session.scalars(select(Occurrence)):
        by_space[occ.space_id].append((occ.start_utc, occ.end_utc, occ.booking_id))
    pairs = [(space_id, space_id) for space_id in by_space]
    pairs += db.session.execute(select(space_dependencies.c.space_id, space_dependencies.c.depends_on_id)).all()
    for one, other in pairs:
        for start, end, booking_id in by_space.get(one, []):
            clashes = [b for s, e, b in by_space.get(other, []) if b != booking_id and s < end and start < e]
            assert not clashes, (one, other, start, booking_id, clashes)


def test_seeding_midweek_keeps_this_weeks_history(clock):
    clock.move_to(datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc))  # Wednesday afternoon
    assert seed_demo() is True
    venue = db.session.scalar(select(Venue))
    standup = db.session.scalar(select(Booking).where(Booking.title == "Engineering stand-up"))
    assert to_local(standup.start_utc, venue.tz).date().isoformat() == "2026-03-02"  # Monday, in the past
    now = now_utc()
    past = db.session.scalar(select(func.count()).select_from(Occurrence).where(Occurrence.end_utc < now))
    future = db.session.scalar(select(func.count()).select_from(Occurrence).where(Occurrence.start_utc > now))
    assert past > 10 and future > 10
