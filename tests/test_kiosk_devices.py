"""Tablet enrolment (`webapp.kiosk.devices`) and the admin's Tablets page (/admin/devices): short one-time
codes that expire, tokens stored hashed, last-seen throttled, stale tablets marked, revocation sending the
panel back to the enrolment page."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from webapp.audit import AuditEntry
from webapp.extensions import db
from webapp.kiosk import devices
from webapp.kiosk.models import Device, EnrolmentCode
from webapp.kiosk.views import COOKIE


@pytest.fixture
def scene(make_venue, make_space, make_user):
    venue = make_venue()
    room = make_space(venue, "Orchid", capacity=8)
    admin = make_user("admin@roomsync.test", role="admin")
    member = make_user("member@roomsync.test")
    return venue, room, admin, member


def test_a_code_enrols_one_tablet_once_and_only_its_hash_is_stored(clock, scene):
    venue, room, admin, _ = scene
    code = devices.start_enrolment(venue, name="Orchid door", space=room, actor=admin)
    assert re.fullmatch(f"[{devices.CODE_ALPHABET}]{{6}}", code)
    stored = db.session.scalar(select(EnrolmentCode))
    assert stored.code_hash == hashlib.sha256(code.encode()).hexdigest() and code not in stored.code_hash
    # Typed on a touch keyboard: lower case, a space and a dash are fine.
    device, token = devices.enrol(f" {code[:3].lower()}-{code[3:]} ")
    assert (device.kind, device.space_id, device.name, device.venue_id) == ("panel", room.id, "Orchid door", venue.id)
    assert device.token_hash == hashlib.sha256(token.encode()).hexdigest() and len(token) >= 40
    assert devices.device_for_token(token).id == device.id
    with pytest.raises(devices.EnrolmentError, match="already been used"):
        devices.enrol(code)
    assert db.session.scalar(select(EnrolmentCode)).device_id == device.id
    actions = [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["kiosk.enrolment_started", "kiosk.enrolled"]


def test_codes_expire_after_15_minutes_and_unknown_codes_are_refused(clock, scene):
    venue, room, admin, _ = scene
    code = devices.start_enrolment(venue, name="", space=room, actor=admin)
    assert db.session.scalar(select(EnrolmentCode)).name == "Orchid"  # the space's name by default
    with pytest.raises(devices.EnrolmentError, match="not valid"):
        devices.enrol("ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY")
    with pytest.raises(devices.EnrolmentError, match="Type the code"):
        devices.enrol("  - ")
    clock.tick(timedelta(minutes=15))
    with pytest.raises(devices.EnrolmentError, match="expired"):
        devices.enrol(code)
    assert db.session.scalar(select(Device)) is None


def test_a_lobby_code_makes_a_lobby_board(clock, scene):
    venue, _, admin, _ = scene
    device, _ = devices.enrol(devices.start_enrolment(venue, name="", space=None, actor=admin))
    assert (device.kind, device.space_id, device.name) == ("lobby", None, "Lobby board")


def test_last_seen_is_refreshed_at_most_once_a_minute_and_revocation_is_immediate(clock, scene):
    venue, room, admin, _ = scene
    device, token = devices.enrol(devices.start_enrolment(venue, name="", space=room, actor=admin))
    enrolled_at = device.last_seen_at
    clock.tick(timedelta(seconds=30))
    assert devices.device_for_token(token).last_seen_at == enrolled_at
    clock.tick(timedelta(seconds=31))
    db.session.expire_all()
    assert devices.device_for_token(token).last_seen_at == enrolled_at + timedelta(seconds=61)
    assert not device.is_stale(enrolled_at + timedelta(seconds=61 + 299))
    assert device.is_stale(enrolled_at + timedelta(seconds=61 + 301))
    devices.revoke(device, admin)
    assert devices.device_for_token(token) is None
    assert devices.device_for_token("") is None and devices.device_for_token("x" * 500) is None


# ---------------------------------------------------------------------------------------------- pages


def _enrol_with(client, code):
    return client.post("/kiosk", data={"code": code})


def test_admin_page_makes_codes_lists_tablets_marks_stale_ones_and_revokes(app, clock, scene, login):
    venue, room, admin, _ = scene
    client = login(admin)
    page = client.get("/admin/devices/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "No tablets yet" in html and 'href="/admin/devices/"' in html and "Tablets" in html
    made = client.post("/admin/devices/", data={"target": str(room.id), "name": "Orchid door"})
    assert made.status_code == 200
    code = re.search(r'data-testid="enrolment-code">([A-Z0-9]{6})<', made.get_data(as_text=True)).group(1)
    assert "Codes waiting for a tablet" in made.get_data(as_text=True)

    tablet = app.test_client()
    enrolled = _enrol_with(tablet, code.lower())
    assert enrolled.status_code == 303 and enrolled.headers["Location"].endswith("/kiosk/panel")
    cookie = enrolled.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Max-Age=" in cookie
    assert tablet.get("/kiosk/panel").status_code == 200
    assert tablet.get("/kiosk").headers["Location"].endswith("/kiosk/panel")  # already enrolled

    row = lambda: re.search(r'<tr id="device-\d+" data-state="(\w+)">(.*?)</tr>',  # noqa: E731
                            client.get("/admin/devices/").get_data(as_text=True), re.S)
    assert row().group(1) == "ok" and "Orchid door" in row().group(2) and "Online" in row().group(2)
    clock.tick(timedelta(minutes=6))
    assert row().group(1) == "stale" and "Stale" in row().group(2)
    tablet.get("/kiosk/panel/status").close()  # a poll: seen again, once its answer is out (a server closes it)
    assert row().group(1) == "ok"

    device = db.session.scalar(select(Device))
    revoked = client.post(f"/admin/devices/{device.id}/revoke")
    assert revoked.status_code == 303
    assert row().group(1) == "revoked"
    back = tablet.get("/kiosk/panel")
    assert back.status_code == 303 and back.headers["Location"].endswith("/kiosk")
    assert f"{COOKIE}=;" in back.headers["Set-Cookie"]  # cleared
    poll = tablet.get("/kiosk/panel/status", headers={"HX-Request": "true"})
    assert poll.status_code == 200 and poll.headers["HX-Redirect"].endswith("/kiosk")


def test_admin_page_is_for_admins_and_checks_its_input(clock, scene, login, client):
    venue, room, admin, member = scene
    assert client.get("/admin/devices/").status_code in (302, 303)  # sign in first
    login(member)
    assert client.get("/admin/devices/").status_code == 403
    client.post("/logout")
    login(admin)
    assert client.post("/admin/devices/", data={"target": "999999"}).status_code == 422
    assert client.post("/admin/devices/", data={"target": str(room.id), "name": "x" * 200}).status_code == 422
    assert client.post("/admin/devices/99999999999/revoke").status_code == 404
    assert db.session.scalar(select(EnrolmentCode)) is None
    lobby = client.post("/admin/devices/", data={"target": "lobby", "name": ""})
    assert lobby.status_code == 200 and "the lobby board" in lobby.get_data(as_text=True)


def test_enrolment_page_explains_a_bad_code_and_a_lobby_tablet_goes_to_the_lobby(app, clock, scene):
    venue, _, admin, _ = scene
    tablet = app.test_client()
    page = tablet.get("/kiosk")
    assert page.status_code == 200 and "Enrolment code" in page.get_data(as_text=True)
    bad = _enrol_with(tablet, "NOPE99")
    assert bad.status_code == 422 and "not valid" in bad.get_data(as_text=True)
    assert COOKIE not in (bad.headers.get("Set-Cookie") or "")
    assert tablet.get("/kiosk/panel").headers["Location"].endswith("/kiosk")  # not enrolled
    code = devices.start_enrolment(venue, name="Lobby", space=None, actor=admin)
    enrolled = _enrol_with(tablet, code)
    assert enrolled.headers["Location"].endswith("/kiosk/lobby")
    assert tablet.get("/kiosk/panel").headers["Location"].endswith("/kiosk/lobby")
