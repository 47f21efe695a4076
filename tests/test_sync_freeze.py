"""The booking freeze during an initial sync (issue 5): while a space's pair is queued or running, the space
and every space sharing with it take no new bookings, changes or cancellations, from the operations, the
pages and the JSON API; the message says why and for how long; the initial sync job passes
`ignore_sync_freeze`; the grids mark the space and offer no slot links; once the pair is done or live the
space is bookable again.

Time is frozen at Monday 2 March 2026, 09:00 in London (GMT, so UTC = London)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, func, insert, select

from webapp.auth.models import issue_api_token
from webapp.booking.errors import SpaceSyncing, ValidationError
from webapp.booking.models import Booking, Occurrence
from webapp.booking.operations import BookingInput, cancel_booking, create_booking, input_from_booking, update_booking
from webapp.extensions import db
from webapp.sync import freeze
from webapp.sync.models import Pair

DAY = "2026-03-02"
HTMX = {"HX-Request": "true"}
BADGE = "Syncing with Microsoft 365…"


@pytest.fixture
def venue(make_venue):
    return make_venue()


@pytest.fixture
def alice(make_user):
    return make_user("alice@roomsync.test", first_name="Alice", last_name="Archer")


@pytest.fixture
def board(venue, make_space):
    """Board room A, Board room B, Board room A+B (depends on both) and an unrelated Quiet room."""
    a = make_space(venue, "Board room A")
    b = make_space(venue, "Board room B")
    ab = make_space(venue, "Board room A+B", depends_on=[a, b])
    quiet = make_space(venue, "Quiet room")
    return {"A": a, "B": b, "A+B": ab, "C": quiet}


def sync(space, state="running"):
    """Pair `space` with a room in `state` (committed, as an admin's pairing in another request would be)."""
    pair = db.session.scalar(select(Pair).where(Pair.space_id == space.id))
    if pair is None:
        pair = Pair(venue_id=space.venue_id, space_id=space.id, room_email=f"room{space.id}@roomsync.test",
                    room_id=f"room-{space.id}", room_display_name=space.name)
        db.session.add(pair)
    pair.state = state
    db.session.commit()
    return pair


def data(spaces, start, minutes=60, **fields):
    return BookingInput(space_ids=[s.id for s in spaces], start=start, end=start + timedelta(minutes=minutes),
                        title=fields.pop("title", "Planning"), **fields)


def bookings_count():
    return db.session.scalar(select(func.count(Booking.id)))


# ---------------------------------------------------------------------------------------------- queries


def test_syncing_spaces_are_those_whose_pair_is_queued_or_running(venue, board, make_venue, make_space):
    sync(board["A"], "queued")
    sync(board["B"], "running")
    for state, space in zip(("done", "failed", "live", "broken"), [board["A+B"], board["C"], *[
            make_space(venue, f"Spare {n}") for n in range(2)]]):
        sync(space, state)
    other_venue = make_venue(name="Elsewhere")
    elsewhere = sync(make_space(other_venue, "Far room"), "running")
    assert freeze.syncing_space_ids([s.id for s in board.values()]) == {board["A"].id, board["B"].id}
    assert freeze.syncing_space_ids([]) == set()
    assert freeze.syncing_spaces_of(venue) == {board["A"].id, board["B"].id}
    assert freeze.syncing_spaces_of(other_venue) == {elsewhere.space_id}


def test_the_freeze_check_is_one_query_on_sync_pairs(clock, venue, board, alice, london_time):
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        create_booking(venue, data([board["C"]], london_time(2026, 3, 3, 10, 0)), actor=alice)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    on_pairs = [s for s in statements if "sync_pairs" in s]
    assert len(on_pairs) == 1 and "space_id IN" in on_pairs[0]


# ---------------------------------------------------------------------------------------------- operations


@pytest.mark.parametrize("state", ["queued", "running"])
def test_a_syncing_space_takes_no_new_booking_and_says_why(clock, venue, board, alice, london_time, state):
    sync(board["A"], state)
    with pytest.raises(SpaceSyncing) as caught:
        create_booking(venue, data([board["A"]], london_time(2026, 3, 3, 10, 0)), actor=alice)
    error = caught.value
    assert isinstance(error, ValidationError)  # every page showing validation errors shows it
    assert error.code == "space_syncing" and error.space_ids == [board["A"].id]
    assert error.message == (
        "Board room A is being synced with Microsoft 365 (initial sync in progress). Bookings for it open again "
        "as soon as the sync finishes — usually within minutes."
    )
    assert error.fields == {"space_ids": error.message}
    assert bookings_count() == 0 and db.session.scalar(select(func.count(Occurrence.id))) == 0


def test_the_freeze_covers_every_space_sharing_with_a_syncing_one(clock, venue, board, alice, london_time):
    start = london_time(2026, 3, 3, 10, 0)
    sync(board["A+B"])
    # Booking "A" while "A+B" syncs: refused, and the message names the space that syncs.
    with pytest.raises(SpaceSyncing) as caught:
        create_booking(venue, data([board["A"]], start), actor=alice)
    assert caught.value.space_ids == [board["A+B"].id]
    assert caught.value.message.startswith(
        "Board room A+B, which shares space with Board room A, is being synced with Microsoft 365")
    with pytest.raises(SpaceSyncing):
        create_booking(venue, data([board["B"]], start), actor=alice)
    # An unrelated room is fine, and so is a booking of several spaces none of which shares with A+B.
    create_booking(venue, data([board["C"]], start), actor=alice)

    sync(board["A+B"], "live")
    sync(board["A"])
    # "A" syncing blocks "A+B" (it occupies A) but not "B" or "C".
    with pytest.raises(SpaceSyncing) as caught:
        create_booking(venue, data([board["A+B"]], start), actor=alice)
    assert caught.value.space_ids == [board["A"].id]
    with pytest.raises(SpaceSyncing):  # a multi-space booking touching A
        create_booking(venue, data([board["C"], board["A"]], start + timedelta(hours=2)), actor=alice)
    create_booking(venue, data([board["B"]], start), actor=alice)
    assert bookings_count() == 2


def test_changes_and_cancellations_are_refused_too(clock, venue, board, alice, make_booking, london_time):
    start = london_time(2026, 3, 3, 10, 0)
    on_a = make_booking(venue, board["A"], start, holder=alice, title="Review")
    on_c = make_booking(venue, board["C"], start, holder=alice, title="Elsewhere")
    series = make_booking(venue, board["B"], start, holder=alice, title="Standup", rrule="FREQ=DAILY;COUNT=5")
    sync(board["A"])

    change = input_from_booking(on_a)
    change.title = "Renamed"
    with pytest.raises(SpaceSyncing) as caught:
        update_booking(on_a, change, actor=alice)
    assert "Its bookings can be changed again as soon as the sync finishes" in caught.value.message
    # Moving a booking onto a syncing space is refused as well.
    move = input_from_booking(on_c)
    move.space_ids = [board["A"].id]
    with pytest.raises(SpaceSyncing):
        update_booking(on_c, move, actor=alice)
    with pytest.raises(SpaceSyncing):
        cancel_booking(on_a, actor=alice)
    # A series on B is not affected by A syncing: one occurrence is cancelled normally.
    cancel_booking(series, actor=alice, scope="this", occurrence_start=london_time(2026, 3, 4, 10, 0))

    db.session.expire_all()
    assert on_a.title == "Review" and on_a.cancelled_at is None
    assert [s.name for s in on_c.spaces] == ["Quiet room"]
    assert len(series.exceptions) == 1


def test_the_initial_sync_job_passes_the_freeze(clock, venue, board, alice, make_booking, london_time):
    start = london_time(2026, 3, 3, 10, 0)
    existing = make_booking(venue, board["A"], start, holder=alice, title="Noted")
    sync(board["A"])
    imported = create_booking(venue, data([board["A"]], start + timedelta(hours=2), title="From Outlook", holder_id=alice.id),
                              actor=None, origin="microsoft", bypass_rules=True, ignore_sync_freeze=True)
    change = input_from_booking(imported)
    change.title = "From Outlook, renamed"
    update_booking(imported, change, actor=None, origin="microsoft", bypass_rules=True, ignore_sync_freeze=True)
    cancel_booking(existing, actor=None, origin="microsoft", ignore_sync_freeze=True)
    db.session.expire_all()
    assert imported.title == "From Outlook, renamed" and existing.cancelled_at is not None
    # The freeze applies to every origin that does not say it is the initial sync.
    with pytest.raises(SpaceSyncing):
        create_booking(venue, data([board["A"]], start + timedelta(hours=4), holder_id=alice.id), actor=None,
                       origin="microsoft",
                       bypass_rules=True)


@pytest.mark.parametrize("after", ["done", "live", "failed"])
def test_bookings_open_again_once_the_pair_leaves_the_initial_sync(clock, venue, board, alice, london_time, after):
    start = london_time(2026, 3, 3, 10, 0)
    sync(board["A+B"], "queued")
    with pytest.raises(SpaceSyncing):
        create_booking(venue, data([board["A"]], start), actor=alice)
    sync(board["A+B"], "running")
    with pytest.raises(SpaceSyncing):
        create_booking(venue, data([board["A"]], start), actor=alice)
    sync(board["A+B"], after)
    booking = create_booking(venue, data([board["A"]], start), actor=alice)
    assert booking.id is not None and bookings_count() == 1


def test_a_pair_committed_by_another_transaction_is_seen(clock, venue, board, alice, london_time):
    """The pair is read after the space locks are taken: a pair an admin commits in another transaction while
    this session still has an older snapshot open is seen (on SQLite the write begins a new, IMMEDIATE
    transaction; on PostgreSQL each statement reads what is committed)."""
    space_id, venue_id = board["A"].id, venue.id
    assert db.session.scalar(select(func.count(Pair.id))) == 0  # this session's snapshot: no pair
    with db.engine.begin() as other:  # the admin's request, on its own connection
        other.execute(insert(Pair).values(venue_id=venue_id, space_id=space_id, room_email="a@roomsync.test",
                                          room_id="room-a", room_display_name="A", state="queued"))
    with pytest.raises(SpaceSyncing):
        create_booking(venue, data([board["A"]], london_time(2026, 3, 3, 10, 0)), actor=alice)
    assert bookings_count() == 0


def test_a_refused_write_rolls_back_everything(clock, venue, board, alice, make_booking, london_time):
    series = make_booking(venue, board["A"], london_time(2026, 3, 3, 10, 0), holder=alice, rrule="FREQ=DAILY;COUNT=3")
    rows = db.session.scalar(select(func.count(Occurrence.id)))
    sync(board["A"])
    with pytest.raises(SpaceSyncing):
        cancel_booking(series, actor=alice, scope="following", occurrence_start=london_time(2026, 3, 4, 10, 0))
    db.session.expire_all()
    assert series.rrule == "FREQ=DAILY;COUNT=3" and db.session.scalar(select(func.count(Occurrence.id))) == rows


def test_the_message_for_several_syncing_spaces():
    assert freeze.freeze_message(["Board room A", "Board room B"], ["Board room A", "Board room B"]) == (
        "Board room A and Board room B are being synced with Microsoft 365 (initial sync in progress). "
        "Bookings for them open again as soon as the sync finishes — usually within minutes.")
    assert freeze.freeze_message(["Board room A+B"], ["Board room A", "Board room B"], changing=True) == (
        "Board room A and Board room B, which share space with Board room A+B, are being synced with Microsoft 365 "
        "(initial sync in progress). Bookings of Board room A+B can be changed again as soon as the sync "
        "finishes — usually within minutes.")


# ---------------------------------------------------------------------------------------------- pages


def form(spaces, date=DAY, start="10:00", end="11:00", **extra):
    return {"spaces": [str(s.id) for s in spaces], "date": date, "start_time": start, "end_time": end,
            "title": "Planning", **extra}


def text(response) -> str:
    return response.get_data(as_text=True)


def test_the_booking_form_shows_the_message_never_a_500(clock, client, login, venue, board, alice):
    sync(board["A+B"])
    login(alice)
    for headers in ({}, HTMX):
        response = client.post("/bookings", data=form([board["A"]]), headers=headers)
        assert response.status_code == 422, text(response)[:300]
        html = text(response)
        assert 'class="alert alert-error" role="alert"' in html
        assert "Board room A+B, which shares space with Board room A, is being synced with Microsoft 365" in html
        assert "Please correct the marked fields" not in html  # nothing is wrong with what was typed
    assert bookings_count() == 0
    # The form opened on a frozen slot says so up front; an unrelated room's form does not.
    opened = text(client.get("/bookings/new", query_string={"space": board["B"].id, "start": "2026-03-02T10:00:00Z"},
                             headers=HTMX))
    assert "is being synced with Microsoft 365" in opened
    assert "synced" not in text(client.get("/bookings/new", query_string={"space": board["C"].id}, headers=HTMX))
    assert client.post("/bookings", data=form([board["C"]]), headers=HTMX).status_code == 204


def test_editing_and_cancelling_on_the_pages_are_refused_with_the_message(clock, client, login, venue, board, alice,
                                                                          make_booking, london_time):
    booking = make_booking(venue, board["A"], london_time(2026, 3, 2, 10, 0), holder=alice, title="Review")
    sync(board["A"])
    login(alice)
    assert "is being synced with Microsoft 365" in text(client.get(f"/bookings/{booking.id}/edit"))
    response = client.post(f"/bookings/{booking.id}/edit", data=form([board["A"]], title="Renamed"), headers=HTMX)
    assert response.status_code == 422 and "Its bookings can be changed again" in text(response)
    response = client.post(f"/bookings/{booking.id}/cancel", headers=HTMX)
    assert response.status_code == 422 and "is being synced with Microsoft 365" in text(response)
    db.session.expire_all()
    assert booking.title == "Review" and booking.cancelled_at is None

    sync(board["A"], "live")
    assert client.post(f"/bookings/{booking.id}/cancel", headers=HTMX).status_code == 204


def test_the_day_view_marks_frozen_spaces_and_offers_no_slot_links(clock, client, login, venue, board, alice):
    sync(board["A+B"])
    login(alice)
    html = text(client.get("/", query_string={"date": DAY}))
    # A+B itself and both rooms it occupies are frozen; the quiet room is not.
    assert html.count('<span class="badge syncing" title="') == 3
    assert "Initial sync with Microsoft 365 in progress" in html
    assert "Board room A+B (sharing this space) is in the initial sync with Microsoft 365" in html
    for frozen in ("A", "B", "A+B"):
        assert f"/bookings/new?space={board[frozen].id}&amp;" not in html
    assert f"/bookings/new?space={board['C'].id}&amp;start=2026-03-02T11:00:00Z" in html

    # Another day's grid polls too while a space is frozen, so the badge goes away by itself.
    later = text(client.get("/", query_string={"date": "2026-03-05"}, headers={**HTMX, "HX-Target": "booking-grid"}))
    assert BADGE in later and 'hx-trigger="booking-changed from:body, every 60s"' in later

    sync(board["A+B"], "live")
    later = text(client.get("/", query_string={"date": "2026-03-05"}, headers={**HTMX, "HX-Target": "booking-grid"}))
    assert BADGE not in later and 'hx-trigger="booking-changed from:body"' in later
    html = text(client.get("/", query_string={"date": DAY}, headers={**HTMX, "HX-Target": "booking-grid"}))
    assert BADGE not in html
    assert f"/bookings/new?space={board['A'].id}&amp;start=2026-03-02T11:00:00Z" in html


def test_the_day_view_reads_the_pairs_once(clock, client, login, venue, board, alice, make_space):
    for n in range(10):
        sync(make_space(venue, f"Synced {n}"))
    login(alice)
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        html = text(client.get("/", query_string={"date": DAY}))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert html.count('class="badge syncing"') == 10
    assert len([s for s in statements if "sync_pairs" in s]) == 1


def test_the_week_view_of_a_frozen_space_says_why(clock, client, login, venue, board, alice):
    sync(board["A"])
    login(alice)
    html = text(client.get(f"/spaces/{board['A+B'].id}/week", query_string={"date": DAY}))
    assert '<p class="notice syncing" role="status">' in html
    assert "Board room A (sharing this space) is in the initial sync" in html
    assert "/bookings/new?space=" not in html
    free = text(client.get(f"/spaces/{board['B'].id}/week", query_string={"date": DAY}))
    assert "notice syncing" not in free and f"/bookings/new?space={board['B'].id}&amp;" in free


# ---------------------------------------------------------------------------------------------- JSON API


@pytest.fixture
def api(client, alice):
    _, token = issue_api_token(alice, "tests")
    db.session.commit()

    def call(method, path, **kwargs):
        return client.open("/api/v1" + path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    return call


def test_the_api_answers_409_space_syncing(clock, api, venue, board, alice, make_booking, london_time):
    booking = make_booking(venue, board["A"], london_time(2026, 3, 3, 14, 0), holder=alice)
    sync(board["A+B"], "queued")
    body = {"space_ids": [board["B"].id], "start": "2026-03-03T10:00:00+00:00", "end": "2026-03-03T11:00:00+00:00",
            "title": "Planning"}
    attempts = [
        api("POST", "/bookings", json=body),
        api("PATCH", f"/bookings/{booking.id}", json={"title": "Renamed"}),
        api("DELETE", f"/bookings/{booking.id}"),
    ]
    for response in attempts:
        assert response.status_code == 409, response.get_data(as_text=True)[:300]
        error = response.get_json()["error"]
        assert error["code"] == "space_syncing"
        assert "Board room A+B" in error["message"] and "initial sync in progress" in error["message"]
        assert error["fields"] == {"space_ids": error["message"]}
        assert error["spaces"] == [board["A+B"].id]
    assert bookings_count() == 1

    sync(board["A+B"], "done")
    assert api("POST", "/bookings", json=body).status_code == 201
    assert api("DELETE", f"/bookings/{booking.id}").status_code == 204
