"""Tablet actions (webapp/kiosk/actions.py): book now, extend, end early, check-in, PIN, identity, audit; the
venue's "Tablets" settings and users' badge numbers in the admin area; walk-ins on a space synced with
Outlook (against the sandbox tenant, in real time like tests/test_live_sync.py).

Frozen time (`clock`): Monday 2 March 2026, 09:00 in London (UTC+0); the venue is open 07:00–22:00 on a
15-minute grid.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from webapp.audit import AuditEntry
from webapp.booking.models import Booking, Occurrence
from webapp.booking.operations import occurrence_times
from webapp.extensions import db
from webapp.kiosk import actions
from webapp.kiosk.actions import KioskError
from webapp.kiosk.checkins import CheckIn
from webapp.kiosk.models import Device


@pytest.fixture
def make_device():
    def make(venue, space=None, name=None, *, kind=None, revoked=False):
        device = Device(venue_id=venue.id, space_id=space.id if space is not None else None,
                        name=name or (f"{space.name} door" if space is not None else "Lobby"),
                        kind=kind or ("panel" if space is not None else "lobby"),
                        token_hash=hashlib.sha256(secrets.token_bytes(16)).hexdigest())
        if revoked:
            from webapp.timeutil import now_utc

            device.revoked_at = now_utc()
        db.session.add(device)
        db.session.commit()
        return device

    return make


@pytest.fixture
def room(clock, make_venue, make_space, make_user, make_device):
    venue = make_venue()
    space = make_space(venue, "Room 1")
    admin = make_user("admin@roomsync.test", role="admin")
    member = make_user("priya@roomsync.test", first_name="Priya", last_name="Shah")
    return dict(venue=venue, space=space, admin=admin, member=member, device=make_device(venue, space))


def at(london_time, hh, mm=0, ss=0, day=2):
    return london_time(2026, 3, day, hh, mm, ss)


def entries(action):
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def live_occurrences(space):
    db.session.expire_all()
    return [(o.start_utc, o.end_utc) for o in
            db.session.scalars(select(Occurrence).where(Occurrence.space_id == space.id).order_by(Occurrence.start_utc))]


# ---------------------------------------------------------------------------------------------- book now: options


def test_book_now_options_free_room_every_length(room, clock, london_time):
    clock.move_to(at(london_time, 9, 7))
    assert actions.book_now_options(room["space"]) == [15, 30, 45, 60]


def test_book_now_options_stop_before_the_next_booking(room, clock, london_time, make_booking):
    make_booking(room["venue"], room["space"], at(london_time, 9, 45), 30, holder=room["member"])
    clock.move_to(at(london_time, 9, 7))
    # 09:07 + 15 → until 09:30; + 30 → 09:45 (the next booking's start); + 45 → 10:00 overlaps it.
    assert actions.book_now_options(room["space"]) == [15, 30]


def test_book_now_options_none_while_busy_or_when_a_sharing_space_is_booked(room, clock, london_time, make_space,
                                                                            make_booking):
    both = make_space(room["venue"], "Room 1+2", depends_on=[room["space"]])
    make_booking(room["venue"], both, at(london_time, 9), 60, holder=room["member"])
    clock.move_to(at(london_time, 9, 20))
    assert actions.book_now_options(room["space"]) == []
    clock.move_to(at(london_time, 10))
    assert actions.book_now_options(room["space"]) == [15, 30, 45, 60]


def test_book_now_options_follow_the_grid(clock, london_time, make_venue, make_space):
    venue = make_venue(granularity_minutes=30)
    space = make_space(venue)
    clock.move_to(at(london_time, 9, 7))
    assert actions.book_now_options(space) == [30, 60]
    twenty = make_venue(name="Twenty", granularity_minutes=20)
    assert actions.book_now_options(make_space(twenty)) == [60]


def test_book_now_options_respect_opening_hours_and_maximum_duration(clock, london_time, make_venue, make_space):
    closing = make_venue(opening_hours={"mon": ["07:00", "09:30"]})
    space = make_space(closing)
    clock.move_to(at(london_time, 9, 7))
    assert actions.book_now_options(space) == [15]
    clock.move_to(at(london_time, 6, 50))
    assert actions.book_now_options(space) == []  # not open yet
    short = make_venue(name="Short", max_duration_minutes=30)
    clock.move_to(at(london_time, 9, 7))
    assert actions.book_now_options(make_space(short)) == [15]  # 09:00–09:30; 30 would be 09:00–09:45


# ---------------------------------------------------------------------------------------------- book now


def test_book_now_held_by_the_device_is_an_internal_walk_in_checked_in_and_audited(room, clock, london_time):
    clock.move_to(at(london_time, 9, 7))
    booking = actions.book_now(room["device"], 30)
    assert (booking.start_utc, booking.end_utc) == (at(london_time, 9), at(london_time, 9, 45))
    assert booking.kind == "internal" and booking.holder_id is None and booking.title == "Walk-in"
    assert actions.is_checked_in(booking, booking.start_utc)
    [entry] = entries("kiosk.book_now")
    assert entry.subject == f"booking:{booking.uid}" and "Room 1 door" in entry.detail
    assert live_occurrences(room["space"]) == [(at(london_time, 9), at(london_time, 9, 45))]


def test_book_now_refuses_a_length_that_does_not_fit(room, clock, london_time, make_booking):
    make_booking(room["venue"], room["space"], at(london_time, 9, 45), 30, holder=room["member"])
    clock.move_to(at(london_time, 9, 7))
    with pytest.raises(KioskError) as refused:
        actions.book_now(room["device"], 60)
    assert refused.value.code == "unavailable" and "09:45" in refused.value.message
    with pytest.raises(KioskError) as odd:
        actions.book_now(room["device"], "20")
    assert odd.value.code == "invalid_minutes"
    assert entries("kiosk.book_now") == []


def test_book_now_by_email_holds_it_for_that_person(room, clock, london_time):
    room["venue"].kiosk_identify = "email"
    db.session.commit()
    clock.move_to(at(london_time, 9))
    booking = actions.book_now(room["device"], 15, identity="  Priya@RoomSync.test ")
    assert booking.kind == "regular" and booking.holder_id == room["member"].id
    assert (booking.start_utc, booking.end_utc) == (at(london_time, 9), at(london_time, 9, 15))
    [entry] = entries("kiosk.book_now")
    assert entry.actor_id == room["member"].id and "Priya Shah" in entry.detail
    for identity, code in (("nobody@roomsync.test", "unknown_person"), ("", "identity_required"),
                           (None, "identity_required")):
        with pytest.raises(KioskError) as refused:
            actions.book_now(room["device"], 15, identity=identity, now=at(london_time, 9, 20))
        assert refused.value.code == code


def test_book_now_by_badge_and_inactive_people_are_unknown(room, clock, london_time, make_user):
    room["venue"].kiosk_identify = "badge"
    room["member"].badge_number = "B-1001"
    gone = make_user("gone@roomsync.test", active=False)
    gone.badge_number = "B-2002"
    db.session.commit()
    clock.move_to(at(london_time, 9))
    with pytest.raises(KioskError) as unknown:
        actions.book_now(room["device"], 15, identity="B-9999")
    assert unknown.value.code == "unknown_person"
    with pytest.raises(KioskError) as inactive:
        actions.book_now(room["device"], 15, identity="B-2002")
    assert inactive.value.code == "unknown_person"
    with pytest.raises(KioskError) as by_email:  # the venue asks for badges: an email is not a badge
        actions.book_now(room["device"], 15, identity="priya@roomsync.test")
    assert by_email.value.code == "unknown_person"
    booking = actions.book_now(room["device"], 15, identity=" B-1001 ")
    assert booking.holder_id == room["member"].id


def test_an_identity_with_a_nul_character_is_nobody(room, clock, london_time):
    room["venue"].kiosk_identify = "badge"
    db.session.commit()
    with pytest.raises(KioskError) as refused:
        actions.book_now(room["device"], 15, identity="B-77\x00")
    assert refused.value.code == "unknown_person"


def test_revoked_and_lobby_tablets_cannot_act(room, clock, london_time, make_device):
    revoked = make_device(room["venue"], room["space"], "Old tablet", revoked=True)
    lobby = make_device(room["venue"])
    for device, code in ((revoked, "revoked"), (lobby, "not_a_panel")):
        with pytest.raises(KioskError) as refused:
            actions.book_now(device, 15)
        assert refused.value.code == code
        with pytest.raises(KioskError):
            actions.check_in(device)


# ---------------------------------------------------------------------------------------------- extend


def test_extend_adds_a_grid_step_until_the_next_booking(room, clock, london_time, make_booking):
    current = make_booking(room["venue"], room["space"], at(london_time, 9), 60, holder=room["member"],
                           title="Standup")
    make_booking(room["venue"], room["space"], at(london_time, 10, 15), 45, holder=room["admin"])
    clock.move_to(at(london_time, 9, 40))
    extended = actions.extend(room["device"])
    assert extended.id == current.id and extended.end_utc == at(london_time, 10, 15)
    with pytest.raises(KioskError) as blocked:
        actions.extend(room["device"])
    assert blocked.value.code == "conflict" and "10:15" in blocked.value.message
    db.session.expire_all()
    assert db.session.get(Booking, current.id).end_utc == at(london_time, 10, 15)
    [entry] = entries("kiosk.extend")
    assert "10:15" in entry.detail and "10:00" in entry.detail and "Room 1 door" in entry.detail


def test_extend_respects_closing_time_and_needs_a_meeting(room, clock, london_time, make_booking):
    with pytest.raises(KioskError) as nothing:
        actions.extend(room["device"])
    assert nothing.value.code == "nothing_current"
    make_booking(room["venue"], room["space"], at(london_time, 21), 60, holder=room["member"])
    clock.move_to(at(london_time, 21, 30))
    with pytest.raises(KioskError) as closed:
        actions.extend(room["device"])
    assert closed.value.code == "not_allowed" and "closes at 22:00" in closed.value.message
    assert entries("kiosk.extend") == []


def test_extend_changes_only_the_occurrence_of_a_series(room, clock, london_time, make_booking):
    series = make_booking(room["venue"], room["space"], at(london_time, 9), 60, holder=room["member"],
                          rrule="FREQ=WEEKLY;COUNT=3")
    clock.move_to(at(london_time, 9, 30))
    actions.extend(room["device"])
    db.session.expire_all()
    series = db.session.get(Booking, series.id)
    assert series.rrule == "FREQ=WEEKLY;COUNT=3"
    assert [(o.start, o.end) for o in occurrence_times(series)] == [
        (at(london_time, 9), at(london_time, 10, 15)),
        (at(london_time, 9, day=9), at(london_time, 10, day=9)),
        (at(london_time, 9, day=16), at(london_time, 10, day=16)),
    ]


# ---------------------------------------------------------------------------------------------- end early


def test_end_early_frees_the_rest_of_the_slot(room, clock, london_time, make_booking):
    booking = make_booking(room["venue"], room["space"], at(london_time, 9), 60, holder=room["member"])
    clock.move_to(at(london_time, 9, 7))
    actions.end_early(room["device"])
    assert live_occurrences(room["space"]) == [(at(london_time, 9), at(london_time, 9, 15))]
    assert db.session.get(Booking, booking.id).cancelled_at is None
    [entry] = entries("kiosk.end_early")
    assert entry.subject == f"booking:{booking.uid}" and "09:15" in entry.detail
    assert actions.book_now_options(room["space"], at(london_time, 9, 16)) == [15, 30, 45, 60]


def test_end_early_says_when_the_room_is_free(room, clock, london_time, make_booking):
    make_booking(room["venue"], room["space"], at(london_time, 9), 60, holder=room["member"])
    clock.move_to(at(london_time, 9, 7))
    assert actions.end_early(room["device"]) == at(london_time, 9, 15)  # the grid step in progress stays
    make_booking(room["venue"], room["space"], at(london_time, 10), 60, holder=room["member"])
    clock.move_to(at(london_time, 10, 30))
    assert actions.end_early(room["device"]) == at(london_time, 10, 30)  # on a grid boundary: free at once


def test_end_early_at_the_start_cancels_and_near_the_end_has_nothing_to_free(room, clock, london_time,
                                                                           make_booking):
    first = make_booking(room["venue"], room["space"], at(london_time, 9), 30, holder=room["member"])
    actions.end_early(room["device"])  # 09:00:00 exactly: nothing of it is left
    db.session.expire_all()
    assert db.session.get(Booking, first.id).cancelled_at is not None
    make_booking(room["venue"], room["space"], at(london_time, 10), 60, holder=room["member"])
    clock.move_to(at(london_time, 10, 50))
    with pytest.raises(KioskError) as anyway:
        actions.end_early(room["device"])
    assert anyway.value.code == "nothing_to_end" and "11:00" in anyway.value.message


def test_end_early_on_a_series_changes_that_occurrence_only(room, clock, london_time, make_booking):
    series = make_booking(room["venue"], room["space"], at(london_time, 9), 60, holder=room["member"],
                          rrule="FREQ=WEEKLY;COUNT=3", title="Weekly")
    clock.move_to(at(london_time, 9, 20))
    actions.end_early(room["device"])
    db.session.expire_all()
    series = db.session.get(Booking, series.id)
    assert series.cancelled_at is None and series.rrule == "FREQ=WEEKLY;COUNT=3"
    assert [(o.start, o.end, o.cancelled) for o in occurrence_times(series)] == [
        (at(london_time, 9), at(london_time, 9, 30), False),
        (at(london_time, 9, day=9), at(london_time, 10, day=9), False),
        (at(london_time, 9, day=16), at(london_time, 10, day=16), False),
    ]
    # The next week, ended at its start: only that occurrence is cancelled.
    clock.move_to(at(london_time, 9, day=9))
    actions.end_early(room["device"])
    db.session.expire_all()
    assert [o.cancelled for o in occurrence_times(db.session.get(Booking, series.id))] == [False, True, False]
    assert len(entries("kiosk.end_early")) == 2


def test_a_booking_of_a_space_sharing_with_the_panel_space_can_be_ended_there(room, clock, london_time,
                                                                             make_space, make_booking):
    both = make_space(room["venue"], "Room 1+2", depends_on=[room["space"]])
    booking = make_booking(room["venue"], both, at(london_time, 9), 60, holder=room["member"])
    clock.move_to(at(london_time, 9, 10))
    assert actions.current_occurrence(room["space"]).booking_id == booking.id
    actions.end_early(room["device"])
    assert live_occurrences(both) == [(at(london_time, 9), at(london_time, 9, 15))]


# ---------------------------------------------------------------------------------------------- check-in


def test_checkin_window_boundaries(room, clock, london_time, make_booking):
    venue = room["venue"]
    venue.checkin_opens_minutes, venue.checkin_release_minutes = 10, 10
    db.session.commit()
    booking = make_booking(venue, room["space"], at(london_time, 9, 30), 60, holder=room["member"])
    occurrence = db.session.scalar(select(Occurrence).where(Occurrence.booking_id == booking.id))
    assert actions.checkin_window(venue, occurrence) == (at(london_time, 9, 20), at(london_time, 9, 40))
    clock.move_to(at(london_time, 9, 19, 59))
    with pytest.raises(KioskError) as early:
        actions.check_in(room["device"])
    assert early.value.code == "not_in_window"
    clock.move_to(at(london_time, 9, 40))
    with pytest.raises(KioskError) as late:
        actions.check_in(room["device"])
    assert late.value.code == "not_in_window"
    assert not actions.is_checked_in(booking, booking.start_utc)
    clock.move_to(at(london_time, 9, 39, 59))
    actions.check_in(room["device"])
    assert actions.is_checked_in(booking, booking.start_utc)
    actions.check_in(room["device"])  # a second tap changes nothing
    [row] = db.session.scalars(select(CheckIn)).all()
    assert (row.space_id, row.device_name) == (room["space"].id, "Room 1 door")
    [entry] = entries("kiosk.check_in")
    assert entry.subject == f"booking:{booking.uid}" and "Room 1 door" in entry.detail


def test_checkin_opens_at_the_window_start_and_a_short_booking_closes_at_its_end(room, clock, london_time,
                                                                                make_booking):
    venue = room["venue"]
    venue.checkin_opens_minutes, venue.checkin_release_minutes = 5, 30
    db.session.commit()
    booking = make_booking(venue, room["space"], at(london_time, 10), 15, holder=room["member"])
    occurrence = db.session.scalar(select(Occurrence).where(Occurrence.booking_id == booking.id))
    assert actions.checkin_window(venue, occurrence) == (at(london_time, 9, 55), at(london_time, 10, 15))
    clock.move_to(at(london_time, 9, 55))
    actions.check_in(room["device"])
    assert actions.is_checked_in(booking, booking.start_utc)


def test_a_booking_made_after_its_start_can_be_checked_in_until_it_could_be_released(room, clock, london_time,
                                                                                      make_booking):
    from webapp.kiosk.release import release_no_shows

    venue = room["venue"]
    venue.checkin_required, venue.checkin_opens_minutes, venue.checkin_release_minutes = True, 10, 10
    db.session.commit()
    clock.move_to(at(london_time, 9, 12))  # booked at 09:12 for the grid step in progress, 09:00–10:00
    booking = make_booking(venue, room["space"], at(london_time, 9), 60, holder=room["member"], bypass_rules=True)
    occurrence = db.session.scalar(select(Occurrence).where(Occurrence.booking_id == booking.id))
    assert actions.checkin_window(venue, occurrence) == (at(london_time, 8, 50), at(london_time, 9, 22))
    clock.move_to(at(london_time, 9, 21, 59))
    assert release_no_shows() == []  # not yet: its grace runs from 09:12
    actions.check_in(room["device"])  # so the tablet must still take the check-in
    assert actions.is_checked_in(booking, booking.start_utc)
    clock.move_to(at(london_time, 9, 30))
    assert release_no_shows() == []


def test_checkin_is_per_occurrence_of_a_series(room, clock, london_time, make_booking):
    series = make_booking(room["venue"], room["space"], at(london_time, 9), 60, holder=room["member"],
                          rrule="FREQ=DAILY;COUNT=2")
    clock.move_to(at(london_time, 9, 5))
    actions.check_in(room["device"])
    assert actions.is_checked_in(series, at(london_time, 9))
    assert not actions.is_checked_in(series, at(london_time, 9, day=3))


# ---------------------------------------------------------------------------------------------- PIN


def test_the_pin_is_stored_hashed_and_verified(room):
    venue = room["venue"]
    assert actions.verify_kiosk_pin(venue, None) and actions.verify_kiosk_pin(venue, "anything")  # no PIN set
    actions.set_kiosk_pin(venue, "4821")
    db.session.commit()
    assert venue.kiosk_pin_hash and "4821" not in venue.kiosk_pin_hash
    assert actions.verify_kiosk_pin(venue, "4821") and actions.verify_kiosk_pin(venue, " 4821 ")
    assert not actions.verify_kiosk_pin(venue, "4822")
    assert not actions.verify_kiosk_pin(venue, "") and not actions.verify_kiosk_pin(venue, None)
    for bad in ("12", "12ab", "123456789"):
        with pytest.raises(KioskError):
            actions.set_kiosk_pin(venue, bad)
    actions.set_kiosk_pin(venue, None)
    assert venue.kiosk_pin_hash is None and actions.verify_kiosk_pin(venue, "")


# ---------------------------------------------------------------------------------------------- admin


def _venue_form(venue, **changes):
    data = {"name": venue.name, "timezone": venue.timezone, "granularity_minutes": "15",
            "booking_window_days": "365", "max_duration_minutes": "720"}
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        data.update({f"{day}_open": "y", f"{day}_opens": "07:00", f"{day}_closes": "22:00"})
    data.update(changes)
    return data


def test_the_venue_form_saves_the_tablet_settings_and_the_pin(room, client, login):
    login(room["admin"])
    page = client.get("/admin/venue").get_data(as_text=True)
    assert "Tablets" in page and 'name="kiosk_pin"' in page and "PIN: none" in page
    response = client.post("/admin/venue", data=_venue_form(
        room["venue"], kiosk_soon_minutes="5", kiosk_poll_seconds="20", kiosk_identify="badge", kiosk_pin="2468",
        checkin_required="y", checkin_opens_minutes="15", checkin_release_minutes="7"))
    assert response.status_code in (200, 302, 303), response.get_data(as_text=True)[:2000]
    db.session.expire_all()
    venue = db.session.get(type(room["venue"]), room["venue"].id)
    assert (venue.kiosk_soon_minutes, venue.kiosk_poll_seconds, venue.kiosk_identify, venue.checkin_required,
            venue.checkin_opens_minutes, venue.checkin_release_minutes) == (5, 20, "badge", True, 15, 7)
    assert actions.verify_kiosk_pin(venue, "2468") and not actions.verify_kiosk_pin(venue, "1111")
    assert "PIN: set" in client.get("/admin/venue").get_data(as_text=True)
    # Saving without a new PIN keeps it; "No PIN" clears it.
    client.post("/admin/venue", data=_venue_form(venue, kiosk_identify="badge"))
    db.session.expire_all()
    assert actions.verify_kiosk_pin(db.session.get(type(venue), venue.id), "2468")
    client.post("/admin/venue", data=_venue_form(venue, kiosk_pin_clear="y"))
    db.session.expire_all()
    assert db.session.get(type(venue), venue.id).kiosk_pin_hash is None


def test_the_venue_form_refuses_bad_tablet_settings(room, client, login):
    login(room["admin"])
    for field, value, message in (("kiosk_pin", "12a4", "4 to 8 digits"), ("kiosk_poll_seconds", "0", "Between 2"),
                                  ("checkin_release_minutes", "999", "Between 1 and 240"),
                                  ("kiosk_identify", "face", "Not a valid choice")):
        response = client.post("/admin/venue", data=_venue_form(room["venue"], **{field: value}))
        assert response.status_code == 422 and message in response.get_data(as_text=True), field
    db.session.expire_all()
    venue = db.session.get(type(room["venue"]), room["venue"].id)
    assert venue.kiosk_pin_hash is None and venue.kiosk_poll_seconds == 10


def test_badge_numbers_are_unique_with_a_clear_error(room, client, login):
    login(room["admin"])
    member = room["member"]
    form = {"email": member.email, "first_name": "Priya", "last_name": "Shah", "role": "member", "active": "y"}
    response = client.post(f"/admin/users/{member.id}/edit", data={**form, "badge_number": " B-77 "})
    assert response.status_code in (200, 302, 303)
    db.session.expire_all()
    assert db.session.get(type(member), member.id).badge_number == "B-77"
    response = client.post("/admin/users/new", data={"email": "new@roomsync.test", "role": "member", "active": "y",
                                                     "password": "long enough pw", "badge_number": "B-77"})
    assert response.status_code == 422
    assert "Badge number B-77 already belongs to priya@roomsync.test" in response.get_data(as_text=True)
    page = client.get(f"/admin/users/{member.id}/edit").get_data(as_text=True)
    assert 'value="B-77"' in page
    client.post(f"/admin/users/{member.id}/edit", data={**form, "badge_number": ""})  # cleared: stored as none
    db.session.expire_all()
    assert db.session.get(type(member), member.id).badge_number is None


# ---------------------------------------------------------------------------------------------- synced spaces


@pytest.fixture
def synced(connected, make_venue, make_space, make_user, make_device):
    """A space paired with the sandbox's Board room A, live; real time (the sandbox's rooms judge by it); open
    all day so a walk-in fits whenever the suite runs."""
    from test_initial_sync import GHOST, PRIYA, ROOM, pair_of

    from webapp.integration.models import IntegrationSettings
    from webapp.sandbox.seed import DEMO_BUTLER_EMAIL
    from webapp.timeutil import now_utc

    venue = make_venue(allow_overnight=True, opening_hours={d: ["00:00", "24:00"] for d in
                                                            ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email=DEMO_BUTLER_EMAIL, enabled=True,
                                       last_validated_at=now_utc()))
    db.session.commit()
    space = make_space(venue, "Board room A")
    pair_of(space, ROOM, state="live")
    make_user("boss@roomsync.test", role="admin")
    priya = make_user(PRIYA, first_name="Priya", last_name="Shah")
    ghost = make_user(GHOST, first_name="No", last_name="Body")
    return dict(venue=venue, space=space, device=make_device(venue, space), priya=priya, ghost=ghost,
                butler=DEMO_BUTLER_EMAIL, room=ROOM)


def _pushed(booking):
    from webapp.sync.models import EventLink, OutboundState

    db.session.expire_all()
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking.uid))
    link = db.session.scalar(select(EventLink).where(EventLink.booking_uid == booking.uid))
    return state, link


def test_a_walk_in_on_a_synced_space_is_pushed_on_the_butlers_calendar(synced):
    from webapp.graph import graph_client

    booking = actions.book_now(synced["device"], 15)
    state, link = _pushed(booking)
    assert state.state == "done", state.error
    assert link.organizer_email == synced["butler"] and link.room_email == synced["room"]
    event = graph_client().get_event(synced["butler"], link.organizer_event_id)
    assert event.transaction_id == booking.uid and synced["room"] in {a.email for a in event.attendees}
    actions.end_early(synced["device"])  # the change reaches Outlook too
    state, link = _pushed(db.session.get(Booking, booking.id))
    assert state.state == "done" and state.pushed_sequence == db.session.get(Booking, booking.id).sequence


def test_a_person_held_walk_in_is_on_their_calendar_and_one_without_a_calendar_is_refused(synced):
    synced["venue"].kiosk_identify = "email"
    db.session.commit()
    with pytest.raises(KioskError) as refused:
        actions.book_now(synced["device"], 15, identity=synced["ghost"].email)
    assert refused.value.code == "no_calendar" and "No Body has no active Microsoft 365 calendar" in refused.value.message
    assert db.session.scalars(select(Booking)).all() == [] and entries("kiosk.book_now") == []
    booking = actions.book_now(synced["device"], 15, identity=synced["priya"].email)
    state, link = _pushed(booking)
    assert state.state == "done", state.error
    assert link.organizer_email == synced["priya"].email
