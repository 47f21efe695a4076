"""The demo seed: once only, the promised venue, spaces and people, and bookings that obey the booking rules.
Connecting the demo to the sandbox tenant (`connect-demo`, over real HTTPS): the 8 checks pass and the settings
are saved, the 8 rooms (not the desks) are paired with their sandbox rooms, each pair queues its initial sync;
a second run changes nothing; a failing check or a sandbox that is down saves and pairs nothing."""

from __future__ import annotations

import re
import socket
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from webapp.auth.models import User
from webapp.booking.models import Booking, Occurrence, Space, Venue, space_dependencies
from webapp.demo import (
    DEMO_ADMIN_EMAIL,
    DEMO_MEMBER_EMAIL,
    DEMO_PASSWORD,
    DemoConnectError,
    connect_demo_to_sandbox,
    seed_demo,
)
from webapp.extensions import db
from webapp.integration.models import IntegrationSettings
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL
from webapp.sync import pairs
from webapp.sync.models import Pair
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


# ---------------------------------------------------------------------------------------------- connect-demo

DEMO_ROOM_EMAILS = {
    "Board room A": "board-room-a@roomsync.test", "Board room B": "board-room-b@roomsync.test",
    "Board room A+B": "board-room-a-b@roomsync.test", "Focus room 1": "focus-room-1@roomsync.test",
    "Focus room 2": "focus-room-2@roomsync.test", "Atrium": "atrium@roomsync.test", "Studio": "studio@roomsync.test",
    "Library": "library@roomsync.test",
}


@pytest.fixture
def initial_syncs(monkeypatch):
    """The pair ids whose initial sync was queued (the hook itself is the initial sync's business)."""
    queued = []
    monkeypatch.setattr(pairs, "start_initial_sync", queued.append)
    return queued


def test_connect_demo_saves_the_settings_and_pairs_the_eight_rooms_not_the_desks(connected, initial_syncs):
    seed_demo()
    connection = connect_demo_to_sandbox()

    assert connection.connected and connection.unpaired == {}
    assert "paired 8 rooms" in connection.message and "/admin/sync/" in connection.message
    venue = db.session.scalar(select(Venue))
    settings = db.session.scalar(select(IntegrationSettings))
    assert settings.venue_id == venue.id and settings.enabled and settings.butler_email == DEMO_BUTLER_EMAIL
    assert [check["ok"] for check in settings.last_validation] == [True] * 8  # the live checks ran
    assert settings.public_base_url is None  # webhooks at PUBLIC_BASE_URL
    admin = db.session.scalar(select(User).where(User.email == DEMO_ADMIN_EMAIL))
    stored = db.session.scalars(select(Pair)).all()
    assert {pair.space.name: pair.room_email for pair in stored} == DEMO_ROOM_EMAILS
    assert all(pair.space.kind == "room" and pair.room_id and pair.created_by_id == admin.id for pair in stored)
    assert sorted(initial_syncs) == sorted(pair.id for pair in stored)
    desks = db.session.scalars(select(Space).where(Space.kind == "desk")).all()
    assert len(desks) == 12 and not any(pairs.pair_by_space(venue).get(desk.id) for desk in desks)


def test_a_second_run_changes_nothing(app, connected, initial_syncs):
    seed_demo()
    assert connect_demo_to_sandbox().connected
    settings = db.session.scalar(select(IntegrationSettings))
    before = (settings.updated_at, settings.last_validated_at, sorted(p.id for p in db.session.scalars(select(Pair))))
    queued = list(initial_syncs)
    db.session.remove()

    result = app.test_cli_runner().invoke(args=["connect-demo", "--exit-code"])

    assert result.exit_code == 3, result.output
    assert "has its integration settings already: nothing changed" in result.output
    settings = db.session.scalar(select(IntegrationSettings))
    assert (settings.updated_at, settings.last_validated_at,
            sorted(p.id for p in db.session.scalars(select(Pair)))) == before
    assert initial_syncs == queued
    assert app.test_cli_runner().invoke(args=["connect-demo"]).exit_code == 0  # without --exit-code: success


def test_the_cli_connects_and_says_so(app, connected, initial_syncs):
    seed_demo()
    db.session.remove()
    result = app.test_cli_runner().invoke(args=["connect-demo", "--exit-code"])
    assert result.exit_code == 0, result.output
    assert "Connected HQ to the Microsoft 365 sandbox tenant and paired 8 rooms" in result.output
    assert db.session.scalar(select(func.count()).select_from(Pair)) == 8


def test_a_failing_check_saves_and_pairs_nothing(app, connected, sandbox_admin, initial_syncs):
    seed_demo()
    sandbox_admin.revoke("Calendars.ReadWrite")
    with pytest.raises(DemoConnectError) as failure:
        connect_demo_to_sandbox()
    assert "did not pass the integration checks" in str(failure.value)
    assert "Calendars.ReadWrite" in str(failure.value)
    assert _count(IntegrationSettings) == 0 and _count(Pair) == 0 and initial_syncs == []

    db.session.remove()
    result = app.test_cli_runner().invoke(args=["connect-demo"])
    assert result.exit_code == 1 and "Error: The sandbox tenant did not pass" in result.output
    assert _count(IntegrationSettings) == 0 and _count(Pair) == 0


def test_a_sandbox_that_is_down_saves_and_pairs_nothing(app, connected, initial_syncs):
    seed_demo()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{sock.getsockname()[1]}"
    tenant = app.config["GRAPH_TENANT_ID"]
    app.config.update(GRAPH_AUTHORITY=f"{dead}/{tenant}", GRAPH_BASE_URL=f"{dead}/v1.0")
    with pytest.raises(DemoConnectError) as failure:
        connect_demo_to_sandbox()
    assert "did not pass the integration checks" in str(failure.value) and "could not be reached" in str(failure.value)
    assert _count(IntegrationSettings) == 0 and _count(Pair) == 0 and initial_syncs == []


def test_nothing_to_do_without_a_sandbox_tenant_or_without_the_demo(app, make_venue, initial_syncs):
    assert not app.config.get("GRAPH_TENANT_ID")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["connect-demo", "--exit-code"])
    assert result.exit_code == 3 and "No demo venue" in result.output

    seed_demo()
    db.session.remove()
    result = runner.invoke(args=["connect-demo", "--exit-code"])
    assert result.exit_code == 3 and "No sandbox tenant is configured" in result.output
    assert _count(IntegrationSettings) == 0 and _count(Pair) == 0


def test_a_tenant_other_than_the_sandbox_is_left_alone(app, monkeypatch, initial_syncs):
    seed_demo()
    monkeypatch.setitem(app.config, "GRAPH_TENANT_ID", "00000000-0000-4000-8000-000000000001")
    connection = connect_demo_to_sandbox()
    assert not connection.connected and "other than the sandbox" in connection.message
    assert _count(IntegrationSettings) == 0 and _count(Pair) == 0
