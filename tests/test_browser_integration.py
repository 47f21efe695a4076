"""End to end in a real Chromium: an admin connects a demo-like venue to the sandbox tenant from the
integration settings page and sees every check pass; after a permission is revoked in the sandbox, saving
again shows that one check failing with its hint, and the attendee typeahead in the booking dialog offers
people with photos or initials.

Roomsync runs in a real HTTP server (werkzeug, threaded, CSRF on) whose PUBLIC_BASE_URL is itself, so the
sandbox's subscription handshake reaches its /webhooks/graph. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from processes import ARTIFACTS, AROUND_THE_CLOCK
from processes import browser  # noqa: F401
from sandbox_server import graph_config, serve_app
from webapp import create_app
from webapp.extensions import db
from webapp.integration.models import IntegrationSettings
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL

pytestmark = pytest.mark.browser


@pytest.fixture
def connected_server(app, tmp_path, sandbox_tenant):
    served = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "browser-test-secret",
                         "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "WTF_CSRF_ENABLED": True,
                         "SYNC_JOBS": True})
    with serve_app(served) as base:
        served.config.update(graph_config(sandbox_tenant, base))  # before the test's first request
        yield base


@pytest.fixture
def demo_like(make_venue, make_space, make_user):
    venue = make_venue(name="Roomsync Demo HQ", timezone="Europe/London", opening_hours=AROUND_THE_CLOCK)
    make_space(venue, "Board room A", capacity=10)
    make_space(venue, "Focus room 1", capacity=2)
    make_user("admin@roomsync.test", first_name="Alex", last_name="Morgan", role="admin", password="correct horse")
    make_user("priya.shah@roomsync.test", first_name="Priya", last_name="Shah")
    return venue


def test_admin_connects_the_venue_and_sees_a_revoked_permission_fail(browser, connected_server, demo_like,
                                                                     sandbox_admin):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(20_000)
    page.goto(f"{connected_server}/login")
    page.get_by_label("Email").fill("admin@roomsync.test")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Sign in").click()

    page.goto(f"{connected_server}/admin/")
    page.locator(".admin-nav").get_by_role("link", name="Integration").click()
    expect(page.get_by_role("heading", name="Microsoft 365 integration")).to_be_visible()
    expect(page.locator("#prerequisites li.pass")).to_have_count(3)
    expect(page.locator("#credential-status")).to_contain_text("configured, from the environment")

    page.get_by_label("Butler").fill(DEMO_BUTLER_EMAIL)
    page.get_by_label("Allow users to search the full organisational directory").check()
    page.get_by_label("Sync and display user photos").check()
    page.get_by_role("button", name="Save and check").click()
    results = page.locator("#validation-results")
    expect(results).to_contain_text("Every check passed")
    expect(results.locator("li.pass")).to_have_count(8)
    expect(results.locator("li.fail")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "integration-connected.png"), full_page=True)
    assert db.session.query(IntegrationSettings).one().enabled

    sandbox_admin.revoke("Calendars.ReadWrite")
    page.get_by_role("button", name="Save and check").click()
    expect(results).to_contain_text("Not saved")
    failed = results.locator('li[data-check="calendar"]')
    expect(failed).to_have_class("fail")
    expect(failed).to_contain_text("lacks the application permission Calendars.ReadWrite")
    expect(results.locator('li[data-check="rooms"]')).to_have_class("pass")
    page.screenshot(path=str(ARTIFACTS / "integration-revoked.png"), full_page=True)

    # The booking dialog's attendee lookup: keyboard to pick a suggestion into the Attendees field.
    tomorrow = datetime.now(ZoneInfo("Europe/London")).date() + timedelta(days=1)
    page.goto(f"{connected_server}/?date={tomorrow.isoformat()}")
    slot = page.get_by_role("link", name="Book Board room A at 10:00", exact=True)
    slot.scroll_into_view_if_needed()
    slot.click()
    dialog = page.locator("dialog#booking-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("summary", has_text="Details and privacy").click()
    search = dialog.get_by_role("combobox", name="Find people to add as attendees")
    search.fill("priya")
    listbox = dialog.get_by_role("listbox", name="Suggested attendees")
    expect(listbox.get_by_role("option").first).to_contain_text("priya.shah@roomsync.test")
    page.screenshot(path=str(ARTIFACTS / "attendee-suggestions.png"))
    search.press("ArrowDown")
    expect(search).to_have_attribute("aria-activedescendant", "attendee-option-1")
    search.press("Enter")
    expect(dialog.get_by_label("Attendees", exact=True)).to_have_value("priya.shah@roomsync.test")
    expect(dialog).to_be_visible()  # Enter picked a person, it did not submit the booking
    page.screenshot(path=str(ARTIFACTS / "attendee-lookup.png"))
