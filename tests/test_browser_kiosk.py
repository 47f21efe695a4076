"""Issue 7 in a real Chromium on a 10-inch tablet (1280×800 landscape; portrait and a phone for the layout): an
admin enrols a tablet, which then shows its room's status and takes walk-in bookings, extensions, early ends
and check-ins; a no-show is released; the panel survives a network cut; an Outlook meeting on a paired room
reaches the panel within one poll of the sync landing it, and a walk-in reaches the room's Outlook calendar.

Time: the served app runs on real time, so the scenes are built relative to now. The venue's zone is chosen so
that it is late morning there whatever the hour the suite runs (`late_morning_zone`: an `Etc/GMT±N` zone, no
DST), so "book now" and "later today" never meet midnight. Assertions on times read what the operation stored
(the walk-in's end depends on the minute it was made) and check that the panel says exactly that.

Processes (tests/processes.py): `live_server` (werkzeug, threaded, CSRF on, jobs inline) for the panel's own
behaviour; `served` + a real `worker.py` + the sandbox tenant for the Outlook part. Panels poll every 2 s (the
venue's setting). The offline part blocks the panel's polls with Playwright's `page.route` and moves the
tablet's own clock with `page.clock`, so the status it shows while offline can only come from kiosk.js's local
computation. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from processes import ARTIFACTS, AROUND_THE_CLOCK, SYNC_DEADLINE, pair_live, signed_in_page, until
from processes import (browser, connected_demo, job_queue, live_server, served,  # noqa: F401
                       worker)
from webapp.audit import AuditEntry
from webapp.booking.models import Booking, Space, Venue
from webapp.extensions import db
from webapp.kiosk import devices
from webapp.kiosk.actions import floor_to_grid
from webapp.timeutil import now_utc, to_local

pytestmark = pytest.mark.browser

TABLET = {"width": 1280, "height": 800}  # a 10-inch tablet in landscape
PORTRAIT = {"width": 800, "height": 1280}
PHONE = {"width": 390, "height": 844}
POLL_SECONDS = 2
WAIT = 15_000  # ms: a few polls


def late_morning_zone() -> str:
    """An Etc/GMT zone in which it is now 10:xx. POSIX signs: "Etc/GMT-3" is UTC+3; they run from -14 to +12."""
    offset = (10 - datetime.now(timezone.utc).hour + 12) % 24 - 12  # hours east of UTC, -12 … +11
    return f"Etc/GMT{-offset:+d}"


def hhmm(value: datetime, venue) -> str:
    return f"{to_local(value, venue.tz):%H:%M}"


def fresh(model, id_):
    """The row as the database has it now. Reads here begin and end their own transaction: on SQLite an open
    read transaction keeps seeing the moment it began, while the served app writes."""
    db.session.rollback()
    row = db.session.get(model, id_)
    db.session.rollback()
    return row


def audit_details(action: str) -> list[str]:
    db.session.rollback()
    details = [e.detail for e in db.session.scalars(select(AuditEntry).where(AuditEntry.action == action))]
    db.session.rollback()
    return details


def rows(statement) -> list:
    db.session.rollback()
    found = list(db.session.scalars(statement))
    db.session.rollback()
    return found


@pytest.fixture
def scene(make_venue, make_space, make_user):
    board_cache_cleared()
    venue = make_venue(name="HQ", timezone=late_morning_zone(), opening_hours=AROUND_THE_CLOCK,
                       kiosk_poll_seconds=POLL_SECONDS)
    cedar = make_space(venue, "Cedar", capacity=8, tags=["video"])
    maple = make_space(venue, "Maple", capacity=4)
    admin = make_user("admin@roomsync.test", first_name="Alex", last_name="Morgan", role="admin")
    ana = make_user("ana@roomsync.test", first_name="Ana", last_name="Lee")
    return dict(venue=venue, cedar=cedar, maple=maple, admin=admin, ana=ana)


def board_cache_cleared():
    from webapp.kiosk import board

    board.clear_cache()  # the dependency graph of an earlier test's spaces


def tablet_page(browser, base: str, venue, space, admin, *, viewport=TABLET, name: str | None = None,
                before=None):
    """A tablet enrolled the way a tablet is: a code made for it (here in-process), typed at /kiosk. `before`
    runs on the fresh page before anything loads (to install a fake clock, say)."""
    from playwright.sync_api import expect

    code = devices.start_enrolment(venue, name=name or f"{space.name} door", space=space, actor=admin)
    page = browser.new_context(viewport=viewport, has_touch=True).new_page()
    page.set_default_timeout(WAIT)
    if before:
        before(page)
    page.goto(f"{base}/kiosk")
    page.get_by_label("Enrolment code").fill(code)
    page.get_by_role("button", name="Enrol this tablet").click()
    expect(page).to_have_url(re.compile(r"/kiosk/panel$"))
    return page


def status(page):
    return page.get_by_test_id("kiosk-status")


def toast(page):
    return page.locator("#kiosk-toast")


# ---------------------------------------------------------------------------------------------- enrolment


def test_an_admin_enrols_a_tablet_that_shows_its_room_and_a_revoked_one_goes_back_to_enrolment(
        browser, live_server, scene, make_booking):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    venue, cedar = scene["venue"], scene["cedar"]
    start = floor_to_grid(venue, now_utc()) + timedelta(hours=1)
    make_booking(venue, cedar, start, 60, holder=scene["ana"], title="Secret merger", private=True)
    make_booking(venue, cedar, start + timedelta(hours=2), 30, holder=scene["ana"], title="Design review")

    # The admin makes a code on the Tablets page (from the admin area's navigation).
    admin = signed_in_page(browser, live_server, "admin@roomsync.test", "password")
    admin.goto(f"{live_server}/admin/")
    admin.locator(".admin-nav").get_by_role("link", name="Tablets").click()
    expect(admin.get_by_role("heading", name="Tablets", level=1)).to_be_visible()
    admin.get_by_label("Shows").select_option(label="Cedar")
    admin.get_by_label("Tablet name").fill("Cedar door")
    admin.get_by_role("button", name="Make a code").click()
    code = admin.get_by_test_id("enrolment-code").inner_text().strip()
    assert re.fullmatch(r"[A-HJKMNP-Z2-9]{6}", code), code
    expect(admin.locator("#pending-codes")).to_contain_text("Cedar door")

    # The tablet: a wrong code is refused with a message; the right one, typed loosely, enrols it.
    tablet = browser.new_context(viewport=TABLET, has_touch=True).new_page()
    tablet.set_default_timeout(WAIT)
    tablet.goto(f"{live_server}/kiosk")
    tablet.get_by_label("Enrolment code").fill("ZZZZZZ")
    tablet.get_by_role("button", name="Enrol this tablet").click()
    expect(tablet.get_by_role("alert")).to_contain_text("That code is not valid")
    tablet.get_by_label("Enrolment code").fill(f"{code[:3].lower()} - {code[3:].lower()}")
    tablet.get_by_role("button", name="Enrol this tablet").click()
    expect(tablet).to_have_url(re.compile(r"/kiosk/panel$"))
    tablet.evaluate("window.notReloaded = true")

    # Its room: name, capacity, the venue's clock, free until the private booking, which keeps its secret.
    expect(tablet.get_by_role("heading", name="Cedar", level=1)).to_be_visible()
    expect(tablet.locator(".kiosk-room-meta")).to_have_text("8 seats · video")
    shown = (hhmm(now_utc(), venue), hhmm(now_utc() + timedelta(minutes=1), venue))
    expect(tablet.locator("#kiosk-clock")).to_have_text(re.compile(f"^({shown[0]}|{shown[1]})$"))
    expect(status(tablet)).to_have_attribute("data-state", "free")
    expect(status(tablet).locator(".kiosk-until")).to_have_text(f"until {hhmm(start, venue)}")
    later = status(tablet).locator(".kiosk-next")
    expect(later).to_contain_text(f"{hhmm(start, venue)}–{hhmm(start + timedelta(hours=1), venue)} Private booking")
    expect(later).to_contain_text("Design review")
    assert "Secret merger" not in tablet.content()  # nowhere: not the page, not the embedded schedule
    expect(tablet.locator(".kiosk-qr svg")).to_be_visible()
    assert tablet.locator(".kiosk-qr a").get_attribute("href").endswith(f"/spaces/{cedar.id}/week")
    for minutes in (15, 30):  # (45 and 60 depend on the minute: "Book now" stops before the private booking)
        expect(tablet.get_by_test_id(f"book-{minutes}")).to_be_enabled()
    tablet.screenshot(path=str(ARTIFACTS / "kiosk-enrolled.png"))

    # The admin sees it online; revoked, the tablet returns to the enrolment page by itself (its next poll).
    admin.reload()
    row = admin.locator("#devices tbody tr").filter(has_text="Cedar door")
    expect(row).to_have_attribute("data-state", "ok")
    expect(row).to_contain_text("Online")
    row.get_by_role("button", name="Revoke Cedar door").click()
    expect(admin.locator(".flash")).to_contain_text("Tablet “Cedar door” revoked")
    expect(tablet).to_have_url(re.compile(r"/kiosk$"), timeout=WAIT)
    expect(tablet.get_by_role("heading", name="Enrol this tablet")).to_be_visible()
    assert [d for d in audit_details("kiosk.revoked") if "Cedar door" in d]


# ---------------------------------------------------------------------------------------------- actions


def test_book_now_extend_and_end_early_at_the_door_with_a_pin(browser, live_server, scene):
    from playwright.sync_api import expect

    from webapp.kiosk.actions import set_kiosk_pin

    ARTIFACTS.mkdir(exist_ok=True)
    venue, cedar = scene["venue"], scene["cedar"]
    set_kiosk_pin(venue, "2468")
    db.session.commit()
    tablet = tablet_page(browser, live_server, venue, cedar, scene["admin"], name="Cedar door")
    dialog = tablet.locator("#kiosk-dialog")
    expect(status(tablet)).to_have_attribute("data-state", "free")

    def act(testid: str, pin: str) -> None:
        tablet.get_by_test_id(testid).click()
        expect(dialog).to_be_visible()
        expect(dialog.get_by_label("PIN")).to_be_focused()
        dialog.get_by_label("PIN").fill(pin)
        dialog.get_by_role("button", name="Confirm").click()
        expect(dialog).to_be_hidden()

    # A wrong PIN: refused, nothing booked.
    act("book-30", "1111")
    expect(toast(tablet)).to_have_text("Wrong PIN. Try again.")
    expect(status(tablet)).to_have_attribute("data-state", "free")
    assert rows(select(Booking)) == []

    # Book now, 30 minutes: from the grid step in progress, for at least 30 minutes from now.
    before = now_utc()
    act("book-30", "2468")
    expect(toast(tablet)).to_contain_text("Booked until")
    [walk_in] = rows(select(Booking))
    booked_until = walk_in.end_utc  # the value, not the row: the session keeps one object per row, reloaded
    assert walk_in.kind == "internal" and walk_in.holder_id is None and walk_in.title == "Walk-in"
    assert walk_in.start_utc == floor_to_grid(venue, before) or walk_in.start_utc == floor_to_grid(venue, now_utc())
    assert timedelta(minutes=30) <= walk_in.end_utc - before <= timedelta(minutes=45, seconds=30)
    expect(toast(tablet)).to_have_text(f"Booked until {hhmm(walk_in.end_utc, venue)}.")
    expect(status(tablet)).to_have_attribute("data-state", "busy")
    expect(status(tablet).locator(".kiosk-until")).to_have_text(f"until {hhmm(walk_in.end_utc, venue)}")
    expect(status(tablet).locator(".kiosk-current-title")).to_have_text("Walk-in")
    expect(status(tablet).locator(".kiosk-checked-in")).to_be_visible()  # a walk-in is checked in at once
    expect(tablet.get_by_test_id("book-15")).to_have_count(0)
    tablet.screenshot(path=str(ARTIFACTS / "kiosk-busy.png"))

    # Extend: one grid step more.
    act("extend", "2468")
    expect(toast(tablet)).to_contain_text("Extended until")
    extended_until = fresh(Booking, walk_in.id).end_utc
    assert extended_until == booked_until + timedelta(minutes=venue.granularity_minutes)
    expect(toast(tablet)).to_have_text(f"Extended until {hhmm(extended_until, venue)}.")
    expect(status(tablet).locator(".kiosk-until")).to_have_text(f"until {hhmm(extended_until, venue)}")

    # End now: the rest is freed; the grid step in progress stays booked unless it is on its boundary.
    act("end-early", "2468")
    expect(toast(tablet)).to_contain_text("Meeting ended: the room is free")
    ended = fresh(Booking, walk_in.id)
    if ended.cancelled_at is None and ended.end_utc > now_utc():
        assert ended.end_utc - now_utc() <= timedelta(minutes=venue.granularity_minutes)
        expect(toast(tablet)).to_have_text(f"Meeting ended: the room is free from {hhmm(ended.end_utc, venue)}.")
        expect(status(tablet).locator(".kiosk-until")).to_have_text(f"until {hhmm(ended.end_utc, venue)}")
        expect(tablet.get_by_test_id("end-early")).to_have_count(0)  # nothing more to free
    else:
        expect(status(tablet)).to_have_attribute("data-state", "free")
    assert ended.cancelled_at is not None or ended.end_utc < extended_until

    # Every action is audited with the tablet's name.
    for action in ("kiosk.book_now", "kiosk.extend", "kiosk.end_early"):
        [detail] = audit_details(action)
        assert "(tablet “Cedar door”)" in detail, (action, detail)


def test_check_in_and_a_no_show_released_by_the_cron_job(browser, live_server, scene, make_booking):
    from playwright.sync_api import expect

    from webapp.kiosk.release import release_no_shows
    from webapp.notify.models import OutboxMessage

    venue, cedar, maple, ana = scene["venue"], scene["cedar"], scene["maple"], scene["ana"]
    venue.checkin_required, venue.checkin_opens_minutes, venue.checkin_release_minutes = True, 10, 10
    db.session.commit()
    step = floor_to_grid(venue, now_utc())
    # Ana's meeting in Cedar, in progress, booked just now: the check-in window is open for ten minutes.
    meeting = make_booking(venue, cedar, step, 60, holder=ana, title="Planning", bypass_rules=True)
    # Her stand-up in Maple began 15 to 30 minutes ago and was booked yesterday: nobody checked in.
    no_show = make_booking(venue, maple, step - timedelta(minutes=15), 60, holder=ana, title="Stand-up",
                           bypass_rules=True)
    no_show.created_at = now_utc() - timedelta(days=1)
    db.session.commit()

    cedar_tablet = tablet_page(browser, live_server, venue, cedar, scene["admin"], name="Cedar door")
    expect(status(cedar_tablet)).to_have_attribute("data-state", "busy")
    expect(status(cedar_tablet).locator(".kiosk-checked-in")).to_have_count(0)
    cedar_tablet.get_by_test_id("check-in").click()
    expect(toast(cedar_tablet)).to_have_text("Checked in. Enjoy your meeting.")
    expect(status(cedar_tablet).locator(".kiosk-checked-in")).to_have_text("Checked in")
    expect(cedar_tablet.get_by_test_id("check-in")).to_have_count(0)
    [detail] = audit_details("kiosk.check_in")
    assert "(tablet “Cedar door”)" in detail

    maple_tablet = tablet_page(browser, live_server, venue, maple, scene["admin"], name="Maple door")
    expect(status(maple_tablet)).to_have_attribute("data-state", "busy")
    expect(status(maple_tablet).locator(".kiosk-current-title")).to_have_text("Stand-up")
    expect(maple_tablet.get_by_test_id("check-in")).to_have_count(0)  # its window closed long ago

    # The cron's job releases the stand-up (not the checked-in meeting); the panel goes free by itself.
    released = release_no_shows()
    assert [uid for uid, _ in released] == [no_show.uid]
    expect(status(maple_tablet)).to_have_attribute("data-state", "free", timeout=WAIT)
    expect(status(maple_tablet)).not_to_contain_text("Stand-up")
    expect(maple_tablet.get_by_test_id("book-15")).to_be_visible()
    assert fresh(Booking, meeting.id).cancelled_at is None
    [mail] = rows(select(OutboxMessage).where(OutboxMessage.kind == "no_show_released"))
    assert mail.to == ["ana@roomsync.test"] and "nobody checked in" in mail.subject
    assert [d for d in audit_details("kiosk.released") if "“Maple door”" in d]
    expect(status(cedar_tablet)).to_have_attribute("data-state", "busy")


# ---------------------------------------------------------------------------------------------- offline


def test_offline_the_panel_keeps_its_schedule_computes_the_status_itself_and_recovers(
        browser, live_server, scene, make_booking):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    venue, cedar = scene["venue"], scene["cedar"]
    step = floor_to_grid(venue, now_utc())
    current = make_booking(venue, cedar, step, 30, holder=scene["ana"], title="Design review", bypass_rules=True)
    retro = make_booking(venue, cedar, step + timedelta(hours=2), 60, holder=scene["ana"], title="Retro")
    polls = []

    # The tablet's own clock is Playwright's (it runs on unless told otherwise): it can be moved forward.
    tablet = tablet_page(browser, live_server, venue, cedar, scene["admin"], before=lambda page: page.clock.install())
    tablet.on("request", lambda request: polls.append(request) if "/kiosk/panel/status" in request.url else None)
    expect(status(tablet)).to_have_attribute("data-state", "busy")
    expect(status(tablet).locator(".kiosk-current-title")).to_have_text("Design review")
    expect(tablet.locator("#kiosk-offline")).to_be_hidden()
    expect(tablet.get_by_test_id("end-early")).to_be_enabled()
    # Polls carry the fragment's ETag and get 304s while nothing changes.
    with tablet.expect_response(lambda r: "/kiosk/panel/status" in r.url) as answered:
        pass
    assert answered.value.status in (200, 304)
    assert polls[-1].headers.get("if-none-match", "").startswith('"')

    # The network goes: every poll fails. Offline badge, actions disabled, the last schedule kept.
    tablet.route("**/kiosk/panel/status*", lambda route: route.abort("internetdisconnected"))
    expect(tablet.locator("#kiosk-offline")).to_be_visible(timeout=WAIT)
    expect(tablet.locator("#kiosk-offline")).to_have_text("Offline · showing the last known schedule")
    expect(tablet.get_by_test_id("end-early")).to_be_disabled()
    expect(tablet.get_by_test_id("extend")).to_be_disabled()
    expect(status(tablet)).to_have_attribute("data-state", "busy")

    # Forty-five minutes later on the tablet's clock, still offline: the meeting has ended and the retro is
    # ahead. Only kiosk.js can know: the server is not reached (and would say busy, on its own clock).
    tablet.clock.fast_forward("45:00")
    expect(status(tablet)).to_have_attribute("data-state", "free")
    expect(status(tablet).locator(".kiosk-state-label")).to_have_text("Free")
    expect(status(tablet).locator(".kiosk-until")).to_have_text(f"until {hhmm(retro.start_utc, venue)}")
    expect(status(tablet).locator(".kiosk-next")).to_contain_text("Retro")
    expect(status(tablet).locator(".kiosk-next")).not_to_contain_text("Design review")
    expect(tablet.locator("#kiosk-offline")).to_be_visible()
    tablet.screenshot(path=str(ARTIFACTS / "kiosk-offline.png"))

    # The network is back: the next poll brings the server's fragment (busy, on the server's clock), the badge
    # goes and the actions come back, without a reload.
    tablet.evaluate("window.notReloaded = true")
    tablet.unroute("**/kiosk/panel/status*")
    expect(tablet.locator("#kiosk-offline")).to_be_hidden(timeout=WAIT)
    expect(status(tablet)).to_have_attribute("data-state", "busy")
    expect(status(tablet).locator(".kiosk-current-title")).to_have_text("Design review")
    expect(tablet.get_by_test_id("end-early")).to_be_enabled()
    assert tablet.evaluate("window.notReloaded") is True
    assert fresh(Booking, current.id).cancelled_at is None


# ---------------------------------------------------------------------------------------------- layout


def fits(page, what: str) -> None:
    """Nothing overflows sideways; every action button is at least 48 px square and can be scrolled to and
    fully seen."""
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{what}: wider than the screen"
    buttons = page.locator("[data-kiosk-action]")
    for i in range(buttons.count()):
        button = buttons.nth(i)
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box["width"] >= 48 and box["height"] >= 48, (what, button.inner_text(), box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (what, button.inner_text(), box)
        assert 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"], (what, box)


def test_the_panel_and_the_lobby_board_fit_a_tablet_both_ways_and_a_phone(browser, live_server, scene,
                                                                           make_booking):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    venue, cedar = scene["venue"], scene["cedar"]
    later = floor_to_grid(venue, now_utc()) + timedelta(hours=2)
    for n, title in enumerate(("Quarterly business review with the regional leadership team", "1:1", "Retro")):
        make_booking(venue, cedar, later + timedelta(hours=n), 30, holder=scene["ana"], title=title)
    tablet = tablet_page(browser, live_server, venue, cedar, scene["admin"])
    expect(status(tablet)).to_have_attribute("data-state", "free")
    views = {"landscape": TABLET, "portrait": PORTRAIT, "phone": PHONE}
    for name, viewport in views.items():
        tablet.set_viewport_size(viewport)
        expect(tablet.get_by_test_id("book-60")).to_be_visible()
        fits(tablet, f"free panel, {name}")
        tablet.screenshot(path=str(ARTIFACTS / f"kiosk-free-{name}.png"), full_page=True)
    tablet.set_viewport_size(TABLET)
    tablet.get_by_test_id("book-15").click()
    expect(status(tablet)).to_have_attribute("data-state", "busy")
    for name, viewport in views.items():
        tablet.set_viewport_size(viewport)
        expect(tablet.get_by_test_id("extend")).to_be_visible()
        fits(tablet, f"busy panel, {name}")
        tablet.screenshot(path=str(ARTIFACTS / f"kiosk-busy-{name}.png"), full_page=True)

    # The lobby board (same enrolment, a code for "the lobby"): every room with its status.
    code = devices.start_enrolment(venue, name="Lobby", space=None, actor=scene["admin"])
    lobby = browser.new_context(viewport=TABLET).new_page()
    lobby.set_default_timeout(WAIT)
    lobby.goto(f"{live_server}/kiosk")
    lobby.get_by_label("Enrolment code").fill(code)
    lobby.get_by_role("button", name="Enrol this tablet").click()
    expect(lobby).to_have_url(re.compile(r"/kiosk/lobby$"))
    cards = lobby.get_by_test_id("kiosk-lobby").locator(".kiosk-card")
    expect(cards.filter(has_text="Cedar")).to_have_attribute("data-state", "busy")
    expect(cards.filter(has_text="Maple")).to_have_attribute("data-state", "free")
    for name, viewport in views.items():
        lobby.set_viewport_size(viewport)
        fits(lobby, f"lobby, {name}")
        lobby.screenshot(path=str(ARTIFACTS / f"kiosk-lobby-{name}.png"), full_page=True)


def test_an_uploaded_photo_reaches_a_tablet_already_showing_the_panel(browser, live_server, scene, tmp_path):
    """Through the real form (CSRF on, multipart from Chromium): the photo is read by its bytes, not its name, and a
    tablet showing the panel already shows it at its next poll (out of band), decoded, in every layout."""
    from playwright.sync_api import expect

    from test_space_photos import png

    venue, cedar = scene["venue"], scene["cedar"]
    tablet = tablet_page(browser, live_server, venue, cedar, scene["admin"])
    expect(status(tablet)).to_have_attribute("data-state", "free")
    expect(tablet.locator("#kiosk-photo")).to_be_hidden()
    admin = signed_in_page(browser, live_server, "admin@roomsync.test", "password")
    admin.goto(f"{live_server}/admin/spaces/{cedar.id}/edit")
    not_an_image = tmp_path / "cedar.png"
    not_an_image.write_text("Minutes of the last meeting")
    admin.locator("#photo").set_input_files(str(not_an_image))
    admin.get_by_role("button", name="Save").click()
    expect(admin.locator("#photo-error")).to_contain_text("not a JPEG, PNG or WebP image")
    photo = tmp_path / "cedar.jpg"  # a PNG, whatever its name says
    photo.write_bytes(png(320, 240, (30, 110, 70)))
    admin.locator("#photo").set_input_files(str(photo))
    admin.get_by_role("button", name="Save").click()
    expect(admin.locator(".flash")).to_contain_text("Cedar saved.")

    image = tablet.get_by_test_id("kiosk-photo")
    expect(image).to_be_visible()  # no reload: the poll brought it
    decoded = "img => img !== null && img.complete && img.naturalWidth === 320"  # the bytes made a picture
    tablet.wait_for_function(f"() => ({decoded})(document.querySelector('[data-testid=kiosk-photo]'))")
    for name, viewport in {"landscape": TABLET, "portrait": PORTRAIT}.items():
        tablet.set_viewport_size(viewport)
        expect(image).to_be_visible()
        fits(tablet, f"panel with a photo, {name}")
        tablet.screenshot(path=str(ARTIFACTS / f"kiosk-photo-{name}.png"), full_page=True)
    admin.goto(f"{live_server}/spaces/{cedar.id}/week")
    admin.wait_for_function(f"() => ({decoded})(document.querySelector('[data-testid=space-photo]'))")


# ---------------------------------------------------------------------------------------------- with Outlook

SPARE_SPACE, SPARE_ROOM = "Garden room", "garden-room@roomsync.test"  # a sandbox room no demo meeting uses


@pytest.fixture
def paired_demo(connected_demo, make_space):
    """The demo, with the sandbox's spare "Garden room" added as a space and paired (live); the venue moved to a
    zone where it is late morning and opened around the clock, its tablets polling every 2 s."""
    venue = db.session.get(Venue, connected_demo)
    venue.timezone, venue.opening_hours, venue.kiosk_poll_seconds = late_morning_zone(), AROUND_THE_CLOCK, 2
    db.session.commit()
    board_cache_cleared()
    space = make_space(venue, SPARE_SPACE, capacity=12)
    pair_live(venue, space, SPARE_ROOM)
    db.session.rollback()
    return dict(venue_id=venue.id, space_id=space.id)


def test_an_outlook_meeting_reaches_the_panel_within_a_poll_and_a_walk_in_reaches_outlook(
        browser, served, worker, paired_demo, sandbox_tenant):
    from playwright.sync_api import expect

    from processes import outlook_book
    from webapp.auth.models import User
    from webapp.demo import DEMO_ADMIN_EMAIL

    ARTIFACTS.mkdir(exist_ok=True)
    venue = db.session.get(Venue, paired_demo["venue_id"])
    space = db.session.get(Space, paired_demo["space_id"])
    admin = db.session.scalar(select(User).where(User.email == DEMO_ADMIN_EMAIL))
    tablet = tablet_page(browser, served, venue, space, admin)
    db.session.rollback()
    expect(status(tablet)).to_have_attribute("data-state", "free")
    today = to_local(now_utc(), venue.tz).date()
    start = floor_to_grid(venue, now_utc()) + timedelta(hours=1)
    end = start + timedelta(minutes=30)

    tablet.evaluate("""title => document.addEventListener("htmx:afterSwap", () => {
        const later = document.querySelector("#kiosk-status .kiosk-next");
        if (!window.kioskShownAt && later && later.textContent.includes(title)) window.kioskShownAt = Date.now();
    })""", "Kiosk sync check")

    # Tom books the Garden room in the sandbox's Outlook page (shown in the venue's zone).
    outlook = browser.new_context(viewport={"width": 1400, "height": 1000}, ignore_https_errors=True).new_page()
    outlook.set_default_timeout(WAIT)
    outlook.goto(f"{sandbox_tenant.base_url.rstrip('/')}/outlook/")
    outlook.locator(".mailboxes").get_by_role("link", name="Tom Baker", exact=True).click()
    week = urlencode({"week": today.isoformat(), "tz": venue.timezone})  # ("Etc/GMT+10": the "+" needs escaping)
    outlook.goto(f"{outlook.url.split('?')[0]}?{week}")
    outlook_book(outlook, today, "Kiosk sync check", hhmm(start, venue), hhmm(end, venue), room=SPARE_ROOM)
    expect(outlook.locator("a.event").filter(has_text="Kiosk sync check")).to_contain_text("Garden room: accepted")

    # The sync lands it (a notification, the worker); the panel shows it within one poll of that. The moment
    # it shows is taken by the tablet itself (the swap that brought it), the landing is the booking's creation.
    later = status(tablet).locator(".kiosk-next")
    expect(later).to_contain_text(f"{hhmm(start, venue)}–{hhmm(end, venue)} Kiosk sync check",
                                  timeout=SYNC_DEADLINE * 1000)
    [landed] = rows(select(Booking).where(Booking.title == "Kiosk sync check"))
    assert landed.origin == "microsoft" and (landed.start_utc, landed.end_utc) == (start, end)
    delay = tablet.evaluate("window.kioskShownAt") / 1000 - landed.created_at.timestamp()
    print(f"\nlanded in Roomsync → on the panel: {delay:.2f} s (the panel polls every {POLL_SECONDS} s)")
    assert 0 < delay <= POLL_SECONDS + 1.5
    expect(later).to_contain_text("Tom Baker")
    expect(status(tablet).locator(".kiosk-until")).to_have_text(f"until {hhmm(start, venue)}")
    tablet.screenshot(path=str(ARTIFACTS / "kiosk-outlook-meeting.png"))

    # A walk-in on the tablet lands in the room's Outlook calendar (on the butler's calendar, the room invited).
    tablet.get_by_test_id("book-15").click()
    expect(toast(tablet)).to_contain_text("Booked until")
    [walk_in] = rows(select(Booking).where(Booking.title == "Walk-in"))
    span = f"{hhmm(walk_in.start_utc, venue)}–{hhmm(walk_in.end_utc, venue)}"
    outlook.goto(f"{sandbox_tenant.base_url.rstrip('/')}/outlook/")
    outlook.locator(".mailboxes").get_by_role("link", name=SPARE_SPACE, exact=True).click()
    room_url = f"{outlook.url.split('?')[0]}?{week}"
    until(outlook, lambda page: expect(page.locator("a.event").filter(has_text=span)).to_have_count(1, timeout=500),
          "the walk-in in the room's calendar", url=room_url)
    outlook.screenshot(path=str(ARTIFACTS / "kiosk-walk-in-outlook.png"), full_page=True)
