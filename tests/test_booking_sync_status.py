"""A booking's Outlook sync status and its Teams meeting, as its users see them: the form's "Online meeting
(Teams)" box, the "Pending sync" / "Not in Outlook" badges (the error text for the holder and admins only),
the grid markers read with one query per page, the join link's privacy, and the JSON API's `online_meeting`,
`join_url` and `sync` fields.

Time is frozen at Monday 2 March 2026, 09:00 in London (GMT, so UTC = London). No space is paired: the badges
depend on `OutboundState` rows only, made here directly."""

from __future__ import annotations

import re
import pytest
from sqlalchemy import event, select

from webapp.auth.models import issue_api_token
from webapp.booking.display import safe_link, sync_badge
from webapp.booking.models import Booking
from webapp.extensions import db
from webapp.sync.models import OutboundState

DAY = "2026-03-02"
HTMX = {"HX-Request": "true"}
TEAMS = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=x"
THROTTLED = "Outlook is throttling requests for this mailbox (429)."
GONE = "The mailbox of the holder no longer exists in Microsoft 365."


@pytest.fixture
def venue(make_venue):
    return make_venue()


@pytest.fixture
def room(venue, make_space):
    return make_space(venue, "Orchid")


@pytest.fixture
def ana(make_user):
    return make_user("ana@roomsync.test", first_name="Ana", last_name="Lee")


@pytest.fixture
def bo(make_user):
    return make_user("bo@roomsync.test", first_name="Bo", last_name="Kim")


@pytest.fixture
def admin(make_user):
    return make_user("admin@roomsync.test", first_name="Ada", last_name="Min", role="admin")


@pytest.fixture
def as_user(client, login):
    """as_user(user) → the test client signed in as `user` (signing out whoever was signed in)."""

    def switch(user):
        client.post("/logout")
        return login(user)

    return switch


@pytest.fixture
def api(client):
    tokens: dict[int, str] = {}

    def call(method, path, user, **kwargs):
        if user.id not in tokens:
            _, tokens[user.id] = issue_api_token(user, "tests")
            db.session.commit()
        return client.open("/api/v1" + path, method=method, headers={"Authorization": f"Bearer {tokens[user.id]}"}, **kwargs)

    return call


def text(response) -> str:
    return response.get_data(as_text=True)


def owe(booking, state="pending", **fields) -> OutboundState:
    row = OutboundState(booking_uid=booking.uid, state=state, **fields)
    db.session.add(row)
    db.session.commit()
    return row


def form(space, start="10:00", end="11:00", **extra):
    data = {"spaces": [str(space.id)], "date": DAY, "start_time": start, "end_time": end, "title": "Planning"}
    data.update(extra)
    return data


def checkbox(html: str) -> str:
    match = re.search(r'<input[^>]*name="online_meeting"[^>]*>', html)
    assert match, "no online meeting checkbox"
    return match.group(0)


# ---------------------------------------------------------------------------------------------- the form


def test_online_meeting_checkbox_round_trips_through_create_and_edit(clock, client, login, venue, room, ana):
    login(ana)
    new = text(client.get("/bookings/new", query_string={"space": room.id}, headers=HTMX))
    assert "Online meeting (Teams)" in new and "checked" not in checkbox(new)

    response = client.post("/bookings", data=form(room, online_meeting="y"), headers=HTMX)
    assert response.status_code == 204, text(response)[:500]
    booking = db.session.scalar(select(Booking))
    assert booking.online_meeting is True

    edit = text(client.get(f"/bookings/{booking.id}/edit"))
    assert "checked" in checkbox(edit)

    # An unticked box is absent from the post: the edit turns the meeting off, and back on.
    response = client.post(f"/bookings/{booking.id}/edit", data=form(room, title="Planning 2"))
    assert response.status_code == 303, text(response)[:500]
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).online_meeting is False
    assert "checked" not in checkbox(text(client.get(f"/bookings/{booking.id}/edit")))
    client.post(f"/bookings/{booking.id}/edit", data=form(room, online_meeting="y"))
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).online_meeting is True


def test_a_refused_form_keeps_the_box_ticked(clock, client, login, venue, room, ana):
    login(ana)
    response = client.post("/bookings", data=form(room, start="11:00", end="10:00", online_meeting="y"), headers=HTMX)
    assert response.status_code == 422
    assert "checked" in checkbox(text(response))
    assert db.session.scalar(select(Booking)) is None


# ---------------------------------------------------------------------------------------------- badges


def test_pending_badge_shows_the_retry_time_and_attempts_to_everyone_and_the_error_to_the_holder(
        clock, client, as_user, venue, room, ana, bo, admin, make_booking, london_time):
    booking = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana, title="Standup")
    owe(booking, attempts=2, next_attempt_at=london_time(2026, 3, 2, 9, 5), error=THROTTLED)

    for user, sees_error in ((ana, True), (admin, True), (bo, False)):
        as_user(user)
        html = text(client.get(f"/bookings/{booking.id}"))
        assert "Pending sync" in html, user.email
        assert "next try at 09:05" in html and "2 attempts so far" in html
        assert (THROTTLED in html) is sees_error, user.email
        assert "Not in Outlook" not in html


def test_queued_push_says_it_is_queued(clock, client, login, venue, room, ana, make_booking, london_time):
    booking = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana)
    owe(booking)
    login(ana)
    html = text(client.get(f"/bookings/{booking.id}", headers=HTMX))
    assert "Pending sync" in html and "Queued to update Outlook" in html


def test_failed_badge_shows_its_error_to_the_holder_and_admins_only(
        clock, client, as_user, venue, room, ana, bo, admin, make_booking, london_time):
    booking = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana, title="Review")
    owe(booking, state="failed", attempts=8, error=GONE)

    for user, sees_error in ((ana, True), (admin, True), (bo, False)):
        as_user(user)
        html = text(client.get(f"/bookings/{booking.id}"))
        assert "Not in Outlook" in html and "Pending sync" not in html, user.email
        assert (GONE in html) is sees_error, user.email
        if not sees_error:
            assert "its holder and the admins have been told why" in html


def test_no_badge_when_outlook_is_up_to_date(clock, client, login, venue, room, ana, make_booking, london_time):
    done = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana, title="Synced")
    never = make_booking(venue, room, london_time(2026, 3, 2, 12, 0), holder=ana, title="Unpaired")
    owe(done, state="done")
    login(ana)
    for booking in (done, never):
        html = text(client.get(f"/bookings/{booking.id}"))
        assert "Pending sync" not in html and "Not in Outlook" not in html and "sync-mark" not in html
    day = text(client.get("/", query_string={"date": DAY}))
    assert "Synced" in day and "sync-mark" not in day


def _outbound_queries():
    """Count the statements that read the outbound state while the block runs."""
    seen = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if "sync_outbound" in statement:
            seen.append(statement)

    return seen, before


def test_day_view_marks_blocks_with_one_query_and_keeps_errors_from_other_members(
        clock, client, as_user, venue, room, make_space, ana, bo, make_booking, london_time):
    lotus = make_space(venue, "Lotus")
    pending = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana, title="Waiting one")
    failed = make_booking(venue, lotus, london_time(2026, 3, 2, 11, 0), holder=ana, title="Broken one")
    fine = make_booking(venue, room, london_time(2026, 3, 2, 14, 0), holder=ana, title="Fine one")
    for n in range(5):  # more bookings in sync, still one query
        owe(make_booking(venue, lotus, london_time(2026, 3, 2, 15 + n, 0), holder=bo, title=f"Other {n}"), state="done")
    owe(pending, attempts=1, next_attempt_at=london_time(2026, 3, 2, 9, 15), error=THROTTLED)
    owe(failed, state="failed", error=GONE)
    assert fine

    as_user(bo)
    seen, before = _outbound_queries()
    event.listen(db.engine, "before_cursor_execute", before)
    try:
        html = text(client.get("/", query_string={"date": DAY}))
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    assert len(seen) == 1, seen

    blocks = {m.group(2): m.group(1) for m in re.finditer(r'<a class="b ([^"]*)"[^>]*><strong>(.*?)</strong>', html)}
    waiting = next(v for k, v in blocks.items() if "Waiting one" in k)
    broken = next(v for k, v in blocks.items() if "Broken one" in k)
    assert "sync-pending" in waiting and "sync-failed" in broken
    assert not any("sync-" in v for k, v in blocks.items() if "Fine one" in k or "Other" in k)
    assert html.count('class="sync-mark') == 2
    assert "next try at 09:15" in html
    assert GONE not in html and THROTTLED not in html  # bo holds none of them

    as_user(ana)
    html = text(client.get("/", query_string={"date": DAY}, headers={**HTMX, "HX-Target": "booking-grid"}))
    assert GONE in html and THROTTLED in html

    week = text(client.get(f"/spaces/{lotus.id}/week", query_string={"date": DAY}))
    assert "sync-failed" in week and week.count('class="sync-mark') == 1


def test_my_bookings_shows_the_badge(clock, client, login, venue, room, ana, make_booking, london_time):
    booking = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), holder=ana, title="Tomorrow")
    owe(booking, state="failed", error=GONE)
    login(ana)
    html = text(client.get("/bookings/mine"))
    assert "Tomorrow" in html and "Not in Outlook" in html and GONE in html


def test_a_private_booking_keeps_its_title_out_of_the_badge(clock, client, login, venue, room, ana, bo, make_booking, london_time):
    booking = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana, title="Salary talk", private=True)
    owe(booking, state="failed", error=f"Outlook refused “Salary talk”: {GONE}")
    login(bo)
    for html in (text(client.get(f"/bookings/{booking.id}")), text(client.get("/", query_string={"date": DAY}))):
        assert "Not in Outlook" in html
        assert "Salary talk" not in html


# ---------------------------------------------------------------------------------------------- the join link


def _join_link(html: str) -> str | None:
    match = re.search(r'<a [^>]*href="(https://teams[^"]*)"[^>]*>', html)
    return match.group(0) if match else None


def test_join_link_is_a_safe_link_for_those_who_may_see_the_details(
        clock, client, as_user, venue, room, make_space, ana, bo, admin, make_booking, london_time):
    public = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana, online_meeting=True)
    secret = make_booking(venue, room, london_time(2026, 3, 2, 12, 0), holder=ana, online_meeting=True, private=True)
    for booking in (public, secret):
        booking.join_url = TEAMS
    db.session.commit()
    escaped = TEAMS.replace("&", "&amp;")

    as_user(bo)
    link = _join_link(text(client.get(f"/bookings/{public.id}")))
    assert link and escaped in link and re.search(r'rel="[^"]*\bnoopener\b', link)
    html = text(client.get(f"/bookings/{secret.id}"))
    assert "teams.microsoft.com" not in html and "Online meeting" in html

    as_user(ana)
    assert _join_link(text(client.get(f"/bookings/{secret.id}")))

    as_user(admin)
    assert "teams.microsoft.com" not in text(client.get(f"/bookings/{secret.id}"))
    venue.admins_see_private = True
    db.session.commit()
    assert _join_link(text(client.get(f"/bookings/{secret.id}")))


def test_a_requested_meeting_without_a_link_yet_says_so(clock, client, login, venue, room, ana, make_booking, london_time):
    booking = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana, online_meeting=True)
    login(ana)
    html = text(client.get(f"/bookings/{booking.id}"))
    assert "the join link appears here once Outlook has made it" in html


def test_a_join_url_that_is_not_a_web_link_is_never_rendered_as_one(clock, client, login, venue, room, ana, make_booking, london_time):
    booking = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana, online_meeting=True)
    booking.join_url = "javascript:alert(1)"
    db.session.commit()
    login(ana)
    html = text(client.get(f"/bookings/{booking.id}"))
    assert "javascript:" not in html and "Online meeting" in html
    assert safe_link(TEAMS) == TEAMS
    assert [safe_link(v) for v in ("javascript:alert(1)", "data:text/html,x", "https://", None, 42)] == [None] * 5


def test_sync_badge_wording(london_time):
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/London")
    now = london_time(2026, 3, 2, 9, 0)
    state = OutboundState(booking_uid="x", state="pending", attempts=1, next_attempt_at=london_time(2026, 3, 3, 8, 0), error="boom")
    badge = sync_badge(state, tz, show_error=False, now=now)
    assert badge.label == "Pending sync" and "Tue 03 Mar, 08:00" in badge.detail and "1 attempt so far" in badge.detail
    assert "boom" not in badge.detail and badge.error == ""
    assert "Last error: boom" in sync_badge(state, tz, show_error=True, now=now).detail
    assert sync_badge(None, tz, show_error=True) is None
    assert sync_badge(OutboundState(booking_uid="x", state="done"), tz, show_error=True) is None


# ---------------------------------------------------------------------------------------------- the JSON API


def body(space, **fields):
    return {"space_ids": [space.id], "start": "2026-03-03T10:00:00+00:00", "end": "2026-03-03T11:00:00+00:00",
            "title": "Planning", **fields}


def test_api_online_meeting_is_writable_on_create_and_patch(clock, api, venue, room, ana):
    response = api("POST", "/bookings", ana, json=body(room, online_meeting=True))
    assert response.status_code == 201, response.get_json()
    item = response.get_json()
    assert item["online_meeting"] is True and item["join_url"] is None and item["sync"] is None
    booking = db.session.get(Booking, item["id"])
    assert booking.online_meeting is True

    patched = api("PATCH", f"/bookings/{booking.id}", ana, json={"online_meeting": False})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["online_meeting"] is False
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).online_meeting is False

    default = api("POST", "/bookings", ana, json=body(room, start="2026-03-03T12:00:00+00:00", end="2026-03-03T13:00:00+00:00"))
    assert default.status_code == 201 and default.get_json()["online_meeting"] is False


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None, [], {"a": 1}])
def test_api_refuses_a_non_boolean_online_meeting(clock, api, venue, room, ana, make_booking, london_time, value):
    response = api("POST", "/bookings", ana, json=body(room, online_meeting=value))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and set(error["fields"]) == {"online_meeting"}
    assert db.session.scalar(select(Booking)) is None

    booking = make_booking(venue, room, london_time(2026, 3, 4, 10, 0), holder=ana)
    response = api("PATCH", f"/bookings/{booking.id}", ana, json={"online_meeting": value})
    assert response.status_code == 422 and set(response.get_json()["error"]["fields"]) == {"online_meeting"}


def test_api_join_url_and_sync_are_read_only(clock, api, venue, room, ana, make_booking, london_time):
    response = api("POST", "/bookings", ana, json=body(room, join_url=TEAMS, sync=None))
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {"join_url": "Read-only field.", "sync": "Read-only field."}
    booking = make_booking(venue, room, london_time(2026, 3, 4, 10, 0), holder=ana)
    response = api("PATCH", f"/bookings/{booking.id}", ana, json={"join_url": "https://evil.test/"})
    assert response.status_code == 422
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).join_url is None


def test_api_join_url_follows_the_privacy_of_the_details(clock, api, venue, room, ana, bo, admin, make_booking, london_time):
    public = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana, online_meeting=True)
    secret = make_booking(venue, room, london_time(2026, 3, 2, 12, 0), holder=ana, online_meeting=True, private=True)
    for booking in (public, secret):
        booking.join_url = TEAMS
    db.session.commit()

    assert api("GET", f"/bookings/{public.id}", bo).get_json()["join_url"] == TEAMS
    assert api("GET", f"/bookings/{secret.id}", ana).get_json()["join_url"] == TEAMS
    hidden = api("GET", f"/bookings/{secret.id}", bo).get_json()
    assert hidden["join_url"] is None and hidden["online_meeting"] is True and hidden["title"] is None
    assert api("GET", f"/bookings/{secret.id}", admin).get_json()["join_url"] is None
    venue.admins_see_private = True
    db.session.commit()
    assert api("GET", f"/bookings/{secret.id}", admin).get_json()["join_url"] == TEAMS


def test_api_sync_state_with_the_error_for_the_holder_and_admins_only(
        clock, api, venue, room, ana, bo, admin, make_booking, london_time):
    booking = make_booking(venue, room, london_time(2026, 3, 2, 10, 0), holder=ana)
    assert api("GET", f"/bookings/{booking.id}", ana).get_json()["sync"] is None

    row = owe(booking, attempts=3, next_attempt_at=london_time(2026, 3, 2, 9, 20), error=THROTTLED)
    expected = {"state": "pending", "error": THROTTLED, "next_attempt_at": "2026-03-02T09:20:00+00:00"}
    assert api("GET", f"/bookings/{booking.id}", ana).get_json()["sync"] == expected
    assert api("GET", f"/bookings/{booking.id}", admin).get_json()["sync"] == expected
    assert api("GET", f"/bookings/{booking.id}", bo).get_json()["sync"] == {**expected, "error": None}

    row.state, row.error, row.next_attempt_at = "failed", GONE, None
    db.session.commit()
    assert api("GET", f"/bookings/{booking.id}", ana).get_json()["sync"] == {
        "state": "failed", "error": GONE, "next_attempt_at": None}
    assert api("GET", f"/bookings/{booking.id}", bo).get_json()["sync"] == {
        "state": "failed", "error": None, "next_attempt_at": None}

    row.state = "done"
    db.session.commit()
    assert api("GET", f"/bookings/{booking.id}", ana).get_json()["sync"] is None


def test_api_pending_time_is_in_the_venue_zone_after_the_dst_change(clock, api, venue, room, ana, make_booking, london_time):
    booking = make_booking(venue, room, london_time(2026, 4, 2, 10, 0), holder=ana)
    owe(booking, attempts=1, next_attempt_at=london_time(2026, 4, 1, 9, 30))
    assert api("GET", f"/bookings/{booking.id}", ana).get_json()["sync"]["next_attempt_at"] == "2026-04-01T09:30:00+01:00"
