"""End to end in a real Chromium (Playwright, sync API): sign in, book a slot from the day view through the
dialog, see it on the grid, get the conflict message when booking the same time again, cancel, see it gone.

The app runs in a real HTTP server (werkzeug, threaded) on a free local port, against the suite's test
database, with CSRF protection ON (the suite's own app turns it off). Time is not frozen: the venue is open
around the clock and the test books tomorrow, so it passes at any hour. Screenshots of the day view
(desktop and phone width) go to test-artifacts/.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from processes import ARTIFACTS, AROUND_THE_CLOCK
from processes import browser, live_server  # noqa: F401

pytestmark = pytest.mark.browser

TZ = "Europe/London"


@pytest.fixture
def scene(make_venue, make_space, make_user, make_booking):
    """A venue open all week, three rooms, two colleagues' bookings on tomorrow's grid."""
    venue = make_venue(name="HQ", timezone=TZ, opening_hours=AROUND_THE_CLOCK)
    orchid = make_space(venue, "Orchid", tags=["video"], capacity=10)
    lotus = make_space(venue, "Lotus", tags=["quiet"], capacity=4)
    make_space(venue, "Fern", tags=["video"], capacity=6)
    ana = make_user("ana@roomsync.test", first_name="Ana", last_name="Lee", password="correct horse")
    bo = make_user("bo@roomsync.test", first_name="Bo", last_name="Kim")
    tomorrow = datetime.now(ZoneInfo(TZ)).date() + timedelta(days=1)

    def at(hour, minute=0):
        return datetime(tomorrow.year, tomorrow.month, tomorrow.day, hour, minute, tzinfo=ZoneInfo(TZ))

    make_booking(venue, lotus, at(9, 30), 90, holder=bo, title="Bo's secret", private=True)
    make_booking(venue, orchid, at(13), 60, holder=bo, title="Design review")
    return {"tomorrow": tomorrow, "ana": ana}


def test_book_conflict_and_cancel_in_a_real_browser(browser, live_server, scene):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    day = scene["tomorrow"].isoformat()
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.set_default_timeout(15_000)

    page.goto(f"{live_server}/login")
    page.get_by_label("Email").fill("ana@roomsync.test")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".flash")).to_contain_text("Signed in as Ana Lee")

    page.goto(f"{live_server}/?date={day}")
    grid = page.locator("#booking-grid")
    expect(grid).to_contain_text("Private booking")  # Bo's private title stays hidden
    expect(grid).not_to_contain_text("Bo's secret")

    # Book Orchid at 10:00 from its empty slot.
    slot = page.get_by_role("link", name="Book Orchid at 10:00", exact=True)
    slot.scroll_into_view_if_needed()
    slot.click()
    dialog = page.locator("dialog#booking-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Start", exact=True)).to_have_value("10:00")
    expect(dialog.get_by_label("Title")).to_be_focused()
    dialog.get_by_label("Title").fill("Browser booking")
    dialog.get_by_role("button", name="Book", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".flash")).to_contain_text("Booked Orchid")
    block = grid.get_by_role("link", name="Browser booking")
    expect(block).to_be_visible()
    expect(block).to_contain_text("10:00–11:00")
    expect(page.get_by_role("link", name="Book Orchid at 10:00", exact=True)).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "day-view.png"))

    # The same time again, from the 09:00 slot with the times changed: a conflict, shown in the dialog.
    page.get_by_role("link", name="Book Orchid at 09:00", exact=True).click()
    expect(dialog).to_be_visible()
    dialog.get_by_label("Title").fill("Double booking")
    dialog.get_by_label("Start", exact=True).select_option("10:00")
    dialog.get_by_label("End", exact=True).select_option("10:30")
    dialog.get_by_role("button", name="Book", exact=True).click()
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("Orchid is already booked")
    expect(alert).to_contain_text("10:00–11:00")
    expect(dialog.get_by_label("Title")).to_have_value("Double booking")
    page.screenshot(path=str(ARTIFACTS / "conflict.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Cancel it from its detail in the dialog.
    grid.get_by_role("link", name="Browser booking").click()
    expect(dialog).to_contain_text("Ana Lee")
    dialog.get_by_role("button", name="Cancel booking").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".flash")).to_contain_text("The booking is cancelled.")
    expect(grid).not_to_contain_text("Browser booking")
    expect(page.get_by_role("link", name="Book Orchid at 10:00", exact=True)).to_have_count(1)

    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{live_server}/?date={day}")
    expect(phone.locator("#booking-grid")).to_contain_text("Design review")
    phone.screenshot(path=str(ARTIFACTS / "day-view-phone.png"))
