"""The tablet pages with a frozen clock (Monday 2 March 2026, 09:00 in London): the panel's status, private
titles masked, the polled fragment's ETag/304 (and what changes it), how cheap the 304 path is, the action
endpoints' answers (messages, 403/409/422, never a 500), the QR code and the lobby board."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from webapp.booking.operations import BookingInput, cancel_booking, update_booking
from webapp.extensions import db
from webapp.kiosk import board, devices
from webapp.kiosk.checkins import CheckIn
from webapp.kiosk.models import Device

HX = {"HX-Request": "true"}


@pytest.fixture
def scene(clock, make_venue, make_space, make_user, make_booking, london_time):
    board.clear_cache()
    venue = make_venue(opening_hours={d: ["08:00", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri")})
    room_a = make_space(venue, "Board room A", capacity=8)
    room_b = make_space(venue, "Board room B", capacity=6)
    both = make_space(venue, "Board room A+B", capacity=14, depends_on=[room_a, room_b])
    ana = make_user("ana@roomsync.test", first_name="Ana", last_name="Lee")
    admin = make_user("admin@roomsync.test", role="admin")
    clock.move_to(london_time(2026, 3, 2, 8, 0))  # bookings made before they start
    secret = make_booking(venue, room_a, london_time(2026, 3, 2, 8, 45), 45, holder=ana, title="Secret merger",
                          private=True)
    planning = make_booking(venue, room_a, london_time(2026, 3, 2, 10, 0), 60, holder=ana, title="Planning")
    clock.move_to(london_time(2026, 3, 2, 9, 0))
    return dict(venue=venue, a=room_a, b=room_b, both=both, ana=ana, admin=admin, secret=secret, planning=planning)


def tablet_for(app, venue, space, admin):
    client = app.test_client()
    code = devices.start_enrolment(venue, name=f"{space.name if space else 'Lobby'} tablet", space=space, actor=admin)
    assert client.post("/kiosk", data={"code": code}).status_code == 303
    return client


def schedule_of(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" class="kiosk-schedule">(.*?)</script>', html, re.S).group(1))


def test_panel_shows_busy_with_the_private_title_masked_and_the_rest_of_the_day(app, scene):
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    page = tablet.get("/kiosk/panel")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-cache, private"
    assert 'data-state="busy"' in html and ">Busy<" in html and "until 09:30" in html
    assert "Private booking" in html and "Ana Lee" in html and "08:45\u201309:30" in html
    assert "Secret merger" not in html  # nowhere: not in the page, not in the embedded schedule
    assert "Planning" in html and "10:00\u201311:00" in html
    assert "Board room A" in html and "8 seats" in html and ">09:00<" in html  # name, capacity, venue clock
    assert "<svg" in html and f"/spaces/{scene['a'].id}/week" in html  # the QR code to the week view
    data = schedule_of(html)
    assert [i["title"] for i in data["items"]] == ["Private booking", "Planning"]
    # A booking in progress: no "Book now", but the current booking can be extended or ended.
    assert 'data-testid="book-15"' not in html
    assert 'data-testid="extend"' in html and 'data-testid="end-early"' in html


def test_states_through_the_morning(app, scene, clock, london_time):
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])

    def state_at(h, m):
        clock.move_to(london_time(2026, 3, 2, h, m))
        html = tablet.get("/kiosk/panel/status").get_data(as_text=True)
        return re.search(r'data-state="(\w+)"', html).group(1), re.search(r'class="kiosk-until">([^<]*)<', html).group(1)

    assert state_at(7, 30) == ("closed", "until 08:00")
    assert state_at(9, 30) == ("free", "until 10:00")
    assert state_at(9, 50) == ("soon", "until 10:00")
    assert state_at(10, 0) == ("busy", "until 11:00")
    assert state_at(11, 0) == ("free", "until 18:00")
    assert state_at(18, 0) == ("closed", "")


def test_free_panel_offers_book_now_buttons_limited_by_the_next_booking(app, scene, clock, london_time):
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    clock.move_to(london_time(2026, 3, 2, 9, 30))
    html = tablet.get("/kiosk/panel/status").get_data(as_text=True)
    assert 'data-testid="book-15"' in html and 'data-testid="book-30"' in html
    assert 'data-testid="book-45"' not in html  # Planning starts at 10:00
    assert 'aria-label="Book 15 min"' in html and 'data-testid="extend"' not in html


def test_status_fragment_answers_304_until_something_on_the_space_changes(app, scene, clock):
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    first = tablet.get("/kiosk/panel/status", headers=HX)
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag.startswith('"') and not tag.startswith('W/')
    assert f"data-etag='{tag}'" in first.get_data(as_text=True)
    same = tablet.get("/kiosk/panel/status", headers={**HX, "If-None-Match": tag})
    assert same.status_code == 304 and same.get_data() == b"" and same.headers["ETag"] == tag

    def poll():
        return tablet.get("/kiosk/panel/status", headers={**HX, "If-None-Match": tag})

    # A change to a booking of the day (here: its title) → a new fragment with the new title.
    update_booking(scene["planning"], BookingInput(space_ids=[scene["a"].id], start=scene["planning"].start_utc,
                                                   end=scene["planning"].end_utc, title="Roadmap"),
                   actor=scene["ana"])
    changed = poll()
    assert changed.status_code == 200 and "Roadmap" in changed.get_data(as_text=True)
    tag = changed.headers["ETag"]
    assert poll().status_code == 304
    # Cancelled: gone from the panel.
    db.session.expire_all()
    cancel_booking(db.session.get(type(scene["planning"]), scene["planning"].id), actor=scene["ana"])
    after_cancel = poll()
    assert after_cancel.status_code == 200 and "Roadmap" not in after_cancel.get_data(as_text=True)
    tag = after_cancel.headers["ETag"]
    assert poll().status_code == 304
    # A booking of another room changes nothing here.
    venue = scene["venue"]
    from webapp.booking.operations import create_booking

    create_booking(venue, BookingInput(space_ids=[scene["b"].id], start=scene["planning"].start_utc,
                                       end=scene["planning"].end_utc, title="Elsewhere"), actor=scene["ana"])
    assert poll().status_code == 304
    # The next minute: a fresh fragment (the "until" texts and the timeline move on).
    clock.tick(timedelta(minutes=1))
    assert poll().status_code == 200


def test_a_booking_of_a_sharing_space_and_a_check_in_change_the_etag(app, scene, clock, london_time):
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    tag = tablet.get("/kiosk/panel/status").headers["ETag"]
    from webapp.booking.operations import create_booking

    create_booking(scene["venue"], BookingInput(space_ids=[scene["both"].id], start=london_time(2026, 3, 2, 12, 0),
                                                end=london_time(2026, 3, 2, 13, 0), title="All hands"),
                   actor=scene["ana"])
    changed = tablet.get("/kiosk/panel/status", headers={"If-None-Match": tag})
    assert changed.status_code == 200
    html = changed.get_data(as_text=True)
    assert "All hands" in html
    tag = changed.headers["ETag"]
    db.session.add(CheckIn(booking_id=scene["secret"].id, occurrence_start=scene["secret"].start_utc,
                           space_id=scene["a"].id, device_name="x"))
    db.session.commit()
    checked = tablet.get("/kiosk/panel/status", headers={"If-None-Match": tag})
    assert checked.status_code == 200 and "Checked in" in checked.get_data(as_text=True)


def test_the_304_path_runs_at_most_two_queries_and_renders_nothing(app, scene):
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    tag = tablet.get("/kiosk/panel/status").headers["ETag"]
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    rendered = []

    def on_render(sender, template, context, **extra):
        rendered.append(template.name)

    from flask import template_rendered

    event.listen(db.engine, "before_cursor_execute", count)
    template_rendered.connect(on_render, app)
    try:
        response = tablet.get("/kiosk/panel/status", headers={"If-None-Match": tag})
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
        template_rendered.disconnect(on_render, app)
    assert response.status_code == 304
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 2, statements
    assert rendered == []


def test_actions_answer_the_fresh_fragment_with_a_message_or_a_clear_refusal(app, scene, clock, london_time):
    from webapp.kiosk.actions import set_kiosk_pin

    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    clock.move_to(london_time(2026, 3, 2, 9, 30))
    bad = tablet.post("/kiosk/panel/book", data={"minutes": "abc"}, headers=HX)
    assert bad.status_code == 422 and "Choose how long" in bad.get_data(as_text=True)
    refused = tablet.post("/kiosk/panel/book", data={"minutes": "60"}, headers=HX)
    assert refused.status_code == 409
    assert 'data-level="error"' in refused.get_data(as_text=True) and 'id="kiosk-status"' in refused.get_data(as_text=True)
    booked = tablet.post("/kiosk/panel/book", data={"minutes": "15"}, headers=HX)
    html = booked.get_data(as_text=True)
    assert booked.status_code == 200 and "Booked until 09:45" in html and 'data-state="busy"' in html
    assert booked.headers["ETag"]
    # With a PIN: a wrong one is refused before anything happens.
    set_kiosk_pin(scene["venue"], "2468")
    db.session.commit()
    html = tablet.get("/kiosk/panel/status").get_data(as_text=True)
    assert "data-pin" in html
    wrong = tablet.post("/kiosk/panel/end", data={"pin": "1111"}, headers=HX)
    assert wrong.status_code == 403 and "Wrong PIN" in wrong.get_data(as_text=True)
    assert 'data-state="busy"' in wrong.get_data(as_text=True)
    ended = tablet.post("/kiosk/panel/end", data={"pin": "2468"}, headers=HX)
    assert ended.status_code == 200 and "Meeting ended" in ended.get_data(as_text=True)
    # Without JavaScript: a redirect to the panel, which shows the message.
    plain = tablet.post("/kiosk/panel/extend", data={"pin": "2468"})
    assert plain.status_code == 303 and plain.headers["Location"].endswith("/kiosk/panel")
    assert 'id="kiosk-toast"' in tablet.get("/kiosk/panel").get_data(as_text=True)


def test_identity_is_asked_for_when_the_venue_wants_it(app, scene, clock, london_time):
    scene["venue"].kiosk_identify = "badge"
    db.session.commit()
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    clock.move_to(london_time(2026, 3, 2, 9, 30))
    html = tablet.get("/kiosk/panel/status").get_data(as_text=True)
    assert 'data-identify="Badge number"' in html
    missing = tablet.post("/kiosk/panel/book", data={"minutes": "15"}, headers=HX)
    assert missing.status_code == 422 and "Type your badge number" in missing.get_data(as_text=True)


def test_lobby_board_lists_the_rooms_with_their_status(app, scene):
    lobby = tablet_for(app, scene["venue"], None, scene["admin"])
    page = lobby.get("/kiosk/lobby")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    cards = dict(re.findall(r'data-state="(\w+)" data-space="([^"]+)"', html)[i][::-1] for i in range(3))
    assert cards == {"Board room A": "busy", "Board room B": "free", "Board room A+B": "busy"}
    assert "Private booking" in html and "Secret merger" not in html
    tag = lobby.get("/kiosk/lobby/status").headers["ETag"]
    assert lobby.get("/kiosk/lobby/status", headers={"If-None-Match": tag}).status_code == 304
    from webapp.booking.operations import create_booking

    create_booking(scene["venue"], BookingInput(space_ids=[scene["b"].id], start=scene["planning"].start_utc,
                                                end=scene["planning"].end_utc, title="Elsewhere"), actor=scene["ana"])
    changed = lobby.get("/kiosk/lobby/status", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and "Elsewhere" in changed.get_data(as_text=True)  # in B's schedule
    assert lobby.get("/kiosk/panel/status", headers=HX).headers.get("HX-Redirect", "").endswith("/kiosk")


def test_revoked_devices_and_strangers_see_the_enrolment_page(app, scene):
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    devices.revoke(db.session.scalar(select(Device)), scene["admin"])
    for url in ("/kiosk/panel", "/kiosk/lobby"):
        assert app.test_client().get(url).headers["Location"].endswith("/kiosk")
        assert tablet.get(url).headers["Location"].endswith("/kiosk")
    assert tablet.post("/kiosk/panel/book", data={"minutes": "15"}, headers=HX).headers["HX-Redirect"].endswith("/kiosk")


def test_end_now_says_when_the_room_is_free_and_is_gone_in_the_meetings_last_grid_step(app, scene, clock,
                                                                                      london_time):
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    clock.move_to(london_time(2026, 3, 2, 9, 7))  # the private 08:45–09:30 is in progress
    ended = tablet.post("/kiosk/panel/end", headers=HX)
    html = ended.get_data(as_text=True)
    assert ended.status_code == 200 and "Meeting ended: the room is free from 09:15." in html
    # Busy until 09:15 (the grid step in progress stays booked), and "End now" would free nothing more.
    assert 'data-state="busy"' in html and "until 09:15" in html
    assert 'data-testid="end-early"' not in html and 'data-testid="extend"' in html


@pytest.mark.parametrize("nasty", ["\x00", "\x00" * 50, "é" * 300, "' OR 1=1 --", "<script>x</script>", "9" * 40])
def test_bad_input_on_every_tablet_endpoint_gets_a_clear_answer_never_a_500(app, scene, clock, london_time,
                                                                           login, nasty):
    clock.move_to(london_time(2026, 3, 2, 9, 30))
    admin_page = login(scene["admin"])
    assert admin_page.post("/admin/devices/", data={"target": nasty, "name": "x"}).status_code == 422
    named = admin_page.post("/admin/devices/", data={"target": str(scene["a"].id), "name": nasty})
    storable = "\x00" not in nasty and len(nasty) <= 120
    assert named.status_code == (200 if storable else 422), named.status_code
    assert "<script>x" not in named.get_data(as_text=True)
    assert admin_page.post(f"/admin/devices/{nasty[:20]}/revoke").status_code in (404, 405)
    assert admin_page.post("/admin/devices/99999999999999999999999/revoke").status_code == 404

    stranger = app.test_client()
    answer = stranger.post("/kiosk", data={"code": nasty})
    assert answer.status_code == 422 and "enrol-error" in answer.get_data(as_text=True)
    assert "<script>x" not in answer.get_data(as_text=True)  # what was typed comes back escaped
    for path in ("/kiosk/panel", "/kiosk/panel/status", "/kiosk/lobby", "/kiosk/lobby/status"):
        answer = stranger.get(path, headers={"Cookie": f"roomsync_device={nasty.encode('unicode_escape').decode()}"})
        assert answer.status_code in (200, 303), (path, answer.status_code)

    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    scene["venue"].kiosk_identify = "email"
    db.session.commit()
    from webapp.kiosk.actions import set_kiosk_pin

    for data in ({"minutes": nasty}, {"minutes": "15", "identity": nasty}, {"minutes": "-15"},
                 {"minutes": "15", "identity": "ana@roomsync.test", "pin": nasty}):
        if "pin" in data:
            set_kiosk_pin(scene["venue"], "2468")
            db.session.commit()
        answer = tablet.post("/kiosk/panel/book", data=data, headers=HX)
        assert answer.status_code in (403, 409, 422), (data, answer.status_code)
        assert 'data-level="error"' in answer.get_data(as_text=True)
    tag = tablet.get("/kiosk/panel/status").headers["ETag"]
    for header in (nasty.encode("unicode_escape").decode(), '"' * 200, f"{tag}, W/{tag}"):
        assert tablet.get("/kiosk/panel/status", headers={"If-None-Match": header}).status_code in (200, 304)


def test_the_page_and_the_poll_compute_the_same_etag(app, scene):
    """The page renders with the ORM's device and venue, a poll reads plain rows (`devices.poll`): kiosk.js sends
    the page's ETag with its first poll, which must get a 304, not a needless fragment."""
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    page_tag = re.search(r"data-etag='(\"[0-9a-f]+\")'", tablet.get("/kiosk/panel").get_data(as_text=True)).group(1)
    first_poll = tablet.get("/kiosk/panel/status", headers={**HX, "If-None-Match": page_tag})
    assert first_poll.status_code == 304 and first_poll.headers["ETag"] == page_tag


def test_a_poll_refreshes_last_seen_once_a_minute_after_its_answer_is_sent(app, scene, clock):
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    device = db.session.scalar(select(Device))
    enrolled_at = device.last_seen_at

    def seen_after_poll():
        response = tablet.get("/kiosk/panel/status", headers=HX)
        response.close()  # as a server does once the answer is out: the refresh runs then
        db.session.expire_all()
        return db.session.get(Device, device.id).last_seen_at

    clock.tick(timedelta(seconds=59))
    assert seen_after_poll() == enrolled_at  # throttled: no write
    clock.tick(timedelta(seconds=2))
    assert seen_after_poll() == enrolled_at + timedelta(seconds=61)


def test_a_full_render_reads_the_dependency_graph_from_the_cache_only(app, scene, clock, london_time):
    """The 200 path (busy: the meeting to extend or end; free: "Book now") takes the spaces that share with the
    room from `board`'s cache: no read of space_dependencies per render, as there was one per render before."""
    tablet = tablet_for(app, scene["venue"], scene["a"], scene["admin"])
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    for hour, minute, state in ((9, 0, "busy"), (9, 30, "free")):
        clock.move_to(london_time(2026, 3, 2, hour, minute))
        tablet.get("/kiosk/panel/status")  # the cache is fresh from here on (it lasts `DEPENDENCY_TTL` seconds)
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            html = tablet.get("/kiosk/panel/status", headers=HX).get_data(as_text=True)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert f'data-state="{state}"' in html
        assert ('data-testid="extend"' in html) == (state == "busy")
        assert ('data-testid="book-15"' in html) == (state == "free")
    assert statements and not [s for s in statements if "space_dependencies" in s]


@pytest.mark.parametrize("hour, minute", [(7, 50), (9, 0), (9, 20), (9, 50), (11, 10), (11, 50), (17, 30)])
def test_book_now_judged_from_the_panels_items_equals_the_exact_check(app, scene, clock, london_time, make_booking,
                                                                       hour, minute):
    from webapp.kiosk import actions, views
    from webapp.timeutil import now_utc

    venue, a = scene["venue"], scene["a"]
    clock.move_to(london_time(2026, 3, 2, 8, 0))
    make_booking(venue, scene["both"], london_time(2026, 3, 2, 12, 0), 30, holder=scene["ana"], title="Both rooms")
    clock.move_to(london_time(2026, 3, 2, hour, minute))
    now, day = now_utc(), london_time(2026, 3, 2, 12, 0).date()
    items = board.day_items(venue, [a.id], day).get(a.id, [])
    assert views._book_now_options(venue, a, now, items, day) == actions.book_now_options(a, now)


def test_book_now_near_midnight_looks_at_the_next_days_bookings(clock, make_venue, make_space, make_user,
                                                               make_booking, london_time):
    from webapp.kiosk import actions, views
    from webapp.timeutil import now_utc

    board.clear_cache()
    venue = make_venue(allow_overnight=True, opening_hours={d: ["00:00", "24:00"] for d in
                                                            ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
    room = make_space(venue, "Night room")
    ana = make_user("ana@roomsync.test")
    clock.move_to(london_time(2026, 3, 2, 20, 0))
    make_booking(venue, room, london_time(2026, 3, 3, 0, 15), 30, holder=ana, title="Early")
    clock.move_to(london_time(2026, 3, 2, 23, 30))
    now, day = now_utc(), london_time(2026, 3, 2, 12, 0).date()
    items = board.day_items(venue, [room.id], day).get(room.id, [])
    assert items == []  # today's panel shows nothing more…
    assert views._book_now_options(venue, room, now, items, day) == actions.book_now_options(room, now) == [15, 30, 45]
