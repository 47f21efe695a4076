"""Auto-release of no-shows (webapp/kiosk/release.py): with and without check-in, never twice, only where a
panel tablet watches and the venue requires check-in, one occurrence of a series, the holder's email, the
repeated no-shows report, the cron entry, and a synced space's Outlook event (sandbox, real time).

Frozen time (`clock`): Monday 2 March 2026 in London (UTC+0); bookings are made at 08:00 for 09:00.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from test_kiosk_actions import make_device  # noqa: F401 — the fixture
from webapp.audit import AuditEntry
from webapp.booking.models import Booking
from webapp.booking.operations import occurrence_times
from webapp.extensions import db
from webapp.kiosk import actions, release
from webapp.kiosk.checkins import NoShow
from webapp.notify.models import OutboxMessage


def at(london_time, hh, mm=0, ss=0, day=2):
    return london_time(2026, 3, day, hh, mm, ss)


@pytest.fixture
def venue(clock, london_time, make_venue, make_space, make_user, make_device):
    clock.move_to(at(london_time, 8))
    venue = make_venue(checkin_required=True, checkin_opens_minutes=10, checkin_release_minutes=10)
    space = make_space(venue, "Room 1")
    admin = make_user("admin@roomsync.test", role="admin")
    member = make_user("priya@roomsync.test", first_name="Priya", last_name="Shah")
    return dict(venue=venue, space=space, admin=admin, member=member, device=make_device(venue, space))


def outbox(kind):
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)))


def cancelled(booking) -> bool:
    db.session.expire_all()
    return db.session.get(Booking, booking.id).cancelled_at is not None


def test_a_booking_nobody_checked_in_to_is_released_once(venue, clock, london_time, make_booking):
    booking = make_booking(venue["venue"], venue["space"], at(london_time, 9), 60, holder=venue["member"],
                           title="Budget review")
    clock.move_to(at(london_time, 9, 9, 59))
    assert release.release_no_shows() == []
    assert not cancelled(booking)
    clock.move_to(at(london_time, 9, 10))
    assert release.release_no_shows() == [(booking.uid, at(london_time, 9))]
    assert cancelled(booking)
    [row] = db.session.scalars(select(NoShow)).all()
    assert (row.booking_id, row.occurrence_start) == (booking.id, at(london_time, 9))
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "kiosk.released")).all()
    assert entry.subject == f"booking:{booking.uid}" and "Room 1 door" in entry.detail and "10 minutes" in entry.detail
    [mail] = outbox("no_show_released")
    assert mail.to == ["priya@roomsync.test"] and "Budget review" in mail.text and "10 minutes" in mail.text
    assert "Budget review" not in mail.subject
    # A re-run (or the next minute's) releases nothing and emails nobody again.
    clock.move_to(at(london_time, 9, 11))
    assert release.release_no_shows() == []
    assert len(outbox("no_show_released")) == 1
    assert len(db.session.scalars(select(NoShow)).all()) == 1
    # The room is free for a walk-in.
    assert actions.book_now_options(venue["space"]) == [15, 30, 45, 60]


def test_a_checked_in_booking_is_kept(venue, clock, london_time, make_booking):
    booking = make_booking(venue["venue"], venue["space"], at(london_time, 9), 60, holder=venue["member"])
    clock.move_to(at(london_time, 9, 5))
    actions.check_in(venue["device"])
    clock.move_to(at(london_time, 9, 30))
    assert release.release_no_shows() == []
    assert not cancelled(booking) and outbox("no_show_released") == []


def test_nothing_is_released_without_required_check_in_a_panel_or_for_internal_blocks(
        venue, clock, london_time, make_booking, make_space, make_device):
    unwatched = make_space(venue["venue"], "No tablet")
    lobby = make_device(venue["venue"])  # a lobby board watches no room
    revoked_space = make_space(venue["venue"], "Revoked tablet")
    make_device(venue["venue"], revoked_space, revoked=True)
    bookings = [make_booking(venue["venue"], space, at(london_time, 9), 60, holder=venue["member"])
                for space in (unwatched, revoked_space)]
    block = make_booking(venue["venue"], venue["space"], at(london_time, 9), 60, holder=None, actor=venue["admin"],
                         kind="internal", title="Maintenance")
    clock.move_to(at(london_time, 9, 30))
    assert release.release_no_shows() == []
    assert not any(cancelled(b) for b in bookings + [block]) and lobby.space_id is None
    venue["venue"].checkin_required = False
    db.session.commit()
    other = make_booking(venue["venue"], venue["space"], at(london_time, 10), 60, holder=venue["member"])
    clock.move_to(at(london_time, 10, 30))
    assert release.release_no_shows() == [] and not cancelled(other)


def test_a_booking_made_after_its_start_gets_its_grace_from_when_it_was_made(venue, clock, london_time,
                                                                            make_booking):
    clock.move_to(at(london_time, 9, 5))
    late = make_booking(venue["venue"], venue["space"], at(london_time, 9), 60, holder=venue["member"])
    clock.move_to(at(london_time, 9, 14))
    assert release.release_no_shows() == []
    clock.move_to(at(london_time, 9, 15))
    assert release.release_no_shows() == [(late.uid, at(london_time, 9))]


def test_a_booking_of_a_space_sharing_with_the_panel_space_is_watched(venue, clock, london_time, make_space,
                                                                      make_booking):
    both = make_space(venue["venue"], "Room 1+2", depends_on=[venue["space"]])
    booking = make_booking(venue["venue"], both, at(london_time, 9), 60, holder=venue["member"])
    clock.move_to(at(london_time, 9, 20))
    assert release.release_no_shows() == [(booking.uid, at(london_time, 9))]


def test_a_series_loses_one_occurrence_and_repeated_no_shows_are_reported_once(venue, clock, london_time,
                                                                               make_booking):
    series = make_booking(venue["venue"], venue["space"], at(london_time, 9), 60, holder=venue["member"],
                          rrule="FREQ=WEEKLY;COUNT=5", title="Secret weekly", private=True)
    clock.move_to(at(london_time, 9, 10))
    assert release.release_no_shows() == [(series.uid, at(london_time, 9))]
    db.session.expire_all()
    live = db.session.get(Booking, series.id)
    assert live.cancelled_at is None and [o.cancelled for o in occurrence_times(live)] == [True] + [False] * 4
    assert outbox("no_shows_reported") == []  # one no-show is not a pattern
    [first] = outbox("no_show_released")
    assert first.confidential and "Only this occurrence" in first.text

    clock.move_to(at(london_time, 9, 30, day=9))
    assert release.release_no_shows() == [(series.uid, at(london_time, 9, day=9))]
    reports = outbox("no_shows_reported")
    to_holder = [m for m in reports if m.to == ["priya@roomsync.test"]]
    to_admins = [m for m in reports if m.to == ["admin@roomsync.test"]]
    assert len(to_holder) == 1 and len(to_admins) == 1
    assert "Secret weekly" in to_holder[0].text and "2 of its occurrences" in to_holder[0].text
    assert "Secret weekly" not in to_admins[0].text and "Private booking" in to_admins[0].text
    assert "Priya Shah" in to_admins[0].text
    assert release.release_no_shows() == [] and len(outbox("no_shows_reported")) == 2

    # The third week: a new threshold (3), one more report each; the fourth (4): none.
    clock.move_to(at(london_time, 9, 30, day=16))
    release.release_no_shows()
    assert len(outbox("no_shows_reported")) == 4
    clock.move_to(at(london_time, 9, 30, day=23))
    release.release_no_shows()
    assert len(outbox("no_shows_reported")) == 4
    db.session.expire_all()
    assert [o.cancelled for o in occurrence_times(db.session.get(Booking, series.id))] == [True] * 4 + [False]


def test_a_check_in_made_while_the_job_runs_wins(venue, clock, london_time, make_booking, monkeypatch):
    booking = make_booking(venue["venue"], venue["space"], at(london_time, 9), 60, holder=venue["member"])
    clock.move_to(at(london_time, 9, 10))
    original = release.is_checked_in
    calls = []

    def checked_in_under_our_feet(b, start):
        calls.append(start)
        if len(calls) == 2:  # inside the cancel's transaction: someone checked in meanwhile
            from webapp.kiosk.checkins import CheckIn

            db.session.add(CheckIn(booking_id=b.id, occurrence_start=start, device_name="other"))
            db.session.flush()
        return original(b, start)

    monkeypatch.setattr(release, "is_checked_in", checked_in_under_our_feet)
    assert release.release_no_shows() == []
    assert not cancelled(booking) and db.session.scalars(select(NoShow)).all() == []


def test_the_cron_process_runs_the_release_every_minute(app):
    registered = []

    class Cron:
        def register(self, func, queue_name, **options):
            registered.append((func, queue_name, options))

    release.register_cron(Cron(), app)
    assert registered == [(release.release_no_shows, app.config["RQ_QUEUE"], {"interval": 60})]


def test_a_released_booking_on_a_synced_space_leaves_outlook(synced_release):
    from webapp.graph import graph_client
    from webapp.graph.errors import NotFound
    from webapp.sync.models import EventLink, OutboundState
    from webapp.timeutil import now_utc

    s = synced_release
    now = now_utc()
    start = actions.floor_to_grid(s["venue"], now)
    from test_initial_sync import book

    booking = book(s["venue"], s["space"], start, start + timedelta(hours=2), s["priya"], title="Synced")
    [link] = db.session.scalars(select(EventLink).where(EventLink.booking_uid == booking.uid)).all()
    event_id = link.organizer_event_id

    def room_holds():
        return [e.start for e in graph_client().calendar_view(s["room"], start, start + timedelta(hours=2))
                if not e.is_cancelled]

    assert room_holds() == [start]  # the room accepted the booking
    released = release.release_no_shows(now=now + timedelta(minutes=11))
    assert released == [(booking.uid, start)]
    db.session.expire_all()
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking.uid))
    assert state.state == "done" and state.pushed_sequence == db.session.get(Booking, booking.id).sequence
    assert db.session.scalars(select(EventLink).where(EventLink.booking_uid == booking.uid)).all() == []
    with pytest.raises(NotFound):  # Priya's event was cancelled (Outlook removes the organizer's copy)
        graph_client().get_event(s["priya"].email, event_id)
    assert room_holds() == []  # and the room is free again in Outlook


@pytest.fixture
def synced_release(synced):
    synced["venue"].checkin_required = True
    db.session.commit()
    return synced


from test_kiosk_actions import synced  # noqa: E402,F401 — the fixture
