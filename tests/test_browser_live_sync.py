"""Issue 6's "done when", in a real Chromium: in the demo, an event created in the sandbox's Outlook page
appears in Roomsync within seconds (adjusted to the grid), a booking made in Roomsync appears in the room's
calendar, conflicts are refused (by the room, and by Roomsync with an email to the organizer), and the sync
health page is green.

The scene is the demo: Roomsync seeded by `webapp.demo.seed_demo()` and connected to the sandbox tenant, whose
room calendars hold the sandbox's demo meetings; "Board room A" is paired with its room (the pairing and its
initial sync are issue 5's and `test_browser_sync`'s subject: here they run in the test process, before the
browser starts). Everything the test adds is on the Monday three weeks ahead, where neither demo has anything
in Board room A, B or A+B:

1. Tom, in the sandbox's Outlook page, books Board room A for "Quick sync" 13:53–14:07 → within seconds
   Priya's Roomsync day view shows it at 13:45–14:00, and Tom's Outlook event has moved to 13:45–14:00.
2. Priya, in Roomsync's booking dialog, books Board room A 10:00–11:00 → the room's Outlook calendar holds it
   within seconds, her own Outlook event shows the room accepted, and the booking loses its "Pending sync".
3. Daniel, in Outlook, books Board room A over Priya's booking → the room itself declines (its calendar has
   her event); then Priya books "Board room A+B" (unpaired, it shares Board room A) 16:00–17:00 in Roomsync
   and Daniel books Board room A 16:00–17:00 in Outlook → the room accepts, Roomsync refuses it (space
   sharing), declines it as the room, and emails Daniel: the admin reads that email in the outbox.
4. The admin's sync health page shows the pair "Healthy", with the refusal among its recent events; an
   audit run from it finds both sides in agreement, and the pair stays "Healthy".

Processes (the fixtures of tests/processes.py): Roomsync served by werkzeug (threaded, CSRF on) and a real
`worker.py` subprocess on a Redis queue of their own; the pair's subscription points at the served Roomsync
(the integration's public base URL), so the sandbox's change notifications reach its webhook, which queues
`inbound.process_notifications` for the worker; booking saves queue `outbound.push_booking`. Pages are
reloaded until the change shows (Roomsync's day view only polls once a minute, the Outlook page not at all),
with deadlines; the seconds each change took are printed (`-s` shows them). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import time as clock

import pytest
from sqlalchemy import select

from processes import ARTIFACTS, PAIRED_SPACE as SPACE, outlook_book, signed_in_page, until
from processes import browser, connected_demo, job_queue, live_demo, served, worker  # noqa: F401
from webapp.booking.models import Booking
from webapp.demo import DEMO_ADMIN_EMAIL, DEMO_MEMBER_EMAIL
from webapp.extensions import db
from webapp.notify.models import OutboxMessage
from webapp.sync.models import OutboundState

pytestmark = pytest.mark.browser

SPACE_AB = "Board room A+B"
PRIYA, TOM, DANIEL = DEMO_MEMBER_EMAIL, "tom.baker@roomsync.test", "daniel.okafor@roomsync.test"
WAIT = 20_000  # ms, for ordinary page interactions


# ---------------------------------------------------------------------------------------------- pages


def outlook_page(browser, sandbox_url: str, mailbox: str, monday):
    """The sandbox's Outlook page, opened on `mailbox` (a display name) from its "Whose calendar?" list, at the
    scene's week (three clicks on "Next →")."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(WAIT)
    page.goto(f"{sandbox_url.rstrip('/')}/outlook/")
    page.locator(".mailboxes").get_by_role("link", name=mailbox, exact=True).click()
    for _ in range(3):
        page.get_by_role("link", name="Next →").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"week of {monday:%d %B %Y}")
    return page


def card(page, subject: str):
    return page.locator("a.event").filter(has_text=subject)


def book_in_roomsync(page, base: str, monday, space: str, title: str, start: str, end: str) -> float:
    """Priya's booking through the day view's dialog; returns when "Book" was clicked (time.monotonic())."""
    from playwright.sync_api import expect

    page.goto(f"{base}/?date={monday.isoformat()}")
    slot = page.get_by_role("link", name=f"Book {space} at {start}", exact=True)
    slot.scroll_into_view_if_needed()
    slot.click()
    dialog = page.locator("dialog#booking-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Start", exact=True)).to_have_value(start)
    dialog.get_by_label("Title").fill(title)
    dialog.get_by_label("End", exact=True).select_option(end)
    clicked = clock.monotonic()
    dialog.get_by_role("button", name="Book", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".flash")).to_contain_text(f"Booked {space}")
    return clicked


# ---------------------------------------------------------------------------------------------- the test


def test_live_sync_in_the_demo_both_ways_with_conflicts_refused_and_a_green_health_page(
        browser, served, worker, live_demo, sandbox_tenant):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    monday = live_demo["monday"]
    day_url = f"{served}/?date={monday.isoformat()}"
    timings: dict[str, float] = {}
    member = signed_in_page(browser, served, PRIYA)
    member.goto(day_url)
    grid = member.locator("#booking-grid")
    expect(grid.locator(".col-head").filter(has=member.get_by_role("link", name=SPACE, exact=True))).to_be_visible()
    expect(grid).not_to_contain_text("Quick sync")

    # 1. Outlook → Roomsync: Tom books the room off the grid; Roomsync has it adjusted, and so has Outlook.
    tom = outlook_page(browser, sandbox_tenant.base_url, "Tom Baker", monday)
    sent = outlook_book(tom, monday, "Quick sync", "13:53", "14:07")
    expect(card(tom, "Quick sync")).to_contain_text("Board room A: accepted")

    def quick_sync_in_roomsync(page):
        block = page.locator("#booking-grid").get_by_role("link", name=re.compile("Quick sync"))
        expect(block).to_contain_text("13:45–14:00", timeout=500)
        expect(block).to_contain_text("Tom Baker", timeout=500)

    until(member, quick_sync_in_roomsync, "Tom's Outlook meeting in Roomsync", url=day_url)
    timings["Outlook save → Roomsync day view shows the booking (13:45–14:00)"] = clock.monotonic() - sent
    member.screenshot(path=str(ARTIFACTS / "live-sync-inbound-day-view.png"))
    quick_sync = db.session.scalar(select(Booking).where(Booking.title == "Quick sync"))
    assert quick_sync.origin == "microsoft" and quick_sync.holder.email == TOM
    db.session.rollback()
    until(tom, lambda page: expect(card(page, "Quick sync")).to_contain_text("13:45–14:00", timeout=500),
          "Tom's Outlook meeting adjusted to the grid")
    timings["Outlook save → Tom's Outlook event moved to 13:45–14:00"] = clock.monotonic() - sent
    expect(card(tom, "Quick sync")).not_to_contain_text("13:53")
    expect(card(tom, "Quick sync")).to_contain_text("Board room A: accepted")
    tom.screenshot(path=str(ARTIFACTS / "live-sync-inbound-outlook.png"), full_page=True)

    # 2. Roomsync → Outlook: Priya books the room in the dialog; the room's calendar has it, accepted.
    room = outlook_page(browser, sandbox_tenant.base_url, SPACE, monday)
    expect(room.locator("a.event").filter(has_text="10:00–11:00")).to_have_count(0)
    clicked = book_in_roomsync(member, served, monday, SPACE, "Sync roadmap", "10:00", "11:00")
    block = grid.get_by_role("link", name=re.compile("Sync roadmap"))
    expect(block).to_contain_text("10:00–11:00")
    detail_url = served + block.get_attribute("href")
    until(room, lambda page: expect(page.locator("a.event").filter(has_text="10:00–11:00")).to_contain_text(
        "Priya Shah", timeout=500), "Priya's booking in the room's calendar")
    timings["Roomsync booking → the room's Outlook calendar holds it"] = clock.monotonic() - clicked
    room.screenshot(path=str(ARTIFACTS / "live-sync-outbound-room.png"), full_page=True)
    priya_outlook = outlook_page(browser, sandbox_tenant.base_url, "Priya Shah", monday)
    expect(card(priya_outlook, "Sync roadmap")).to_contain_text("10:00–11:00")
    expect(card(priya_outlook, "Sync roadmap")).to_contain_text("Board room A: accepted")
    # Landed: the booking's detail shows no "Pending sync" (nor a failure) any more.
    member.goto(detail_url)
    detail = member.locator("#booking-detail")
    expect(detail).to_contain_text("Sync roadmap")
    until(member, lambda page: expect(page.locator("#booking-detail .badge.sync-pending")).to_have_count(
        0, timeout=500), "the Pending sync badge gone", url=detail_url)
    expect(detail.locator(".badge.sync-failed")).to_have_count(0)
    expect(detail.locator(".sync-status")).to_have_count(0)
    booking = db.session.scalar(select(Booking).where(Booking.title == "Sync roadmap"))
    state = db.session.scalar(select(OutboundState).where(OutboundState.booking_uid == booking.uid))
    assert state is None or state.state not in ("pending", "failed"), state.state
    db.session.rollback()
    member.screenshot(path=str(ARTIFACTS / "live-sync-outbound-detail.png"))

    # 3a. Daniel books the room over Priya's booking in Outlook: the room declines it by itself.
    daniel = outlook_page(browser, sandbox_tenant.base_url, "Daniel Okafor", monday)
    outlook_book(daniel, monday, "Standing in", "10:30", "11:30")
    expect(card(daniel, "Standing in")).to_contain_text("Board room A: declined")

    # 3b. Priya books Board room A+B (unpaired; it shares Board room A) in Roomsync; Daniel then books Board
    # room A at that time in Outlook: the room accepts (its calendar is free), Roomsync refuses it.
    book_in_roomsync(member, served, monday, SPACE_AB, "Leadership offsite prep", "16:00", "17:00")
    expect(grid.get_by_role("link", name=re.compile("Leadership offsite prep"))).to_contain_text("16:00–17:00")
    sent = outlook_book(daniel, monday, "Grab room A", "16:00", "17:00")
    until(daniel, lambda page: expect(card(page, "Grab room A")).to_contain_text("Board room A: declined",
                                                                                  timeout=500),
          "Roomsync declining Daniel's meeting as the room")
    timings["Outlook save → Roomsync declined it as the room"] = clock.monotonic() - sent
    expect(card(daniel, "Standing in")).to_contain_text("Board room A: declined")
    daniel.screenshot(path=str(ARTIFACTS / "live-sync-declined-outlook.png"), full_page=True)
    member.goto(day_url)
    expect(grid.get_by_role("link", name=re.compile("Leadership offsite prep"))).to_contain_text("16:00–17:00")
    expect(grid).not_to_contain_text("Grab room A")
    expect(grid).not_to_contain_text("Standing in")
    expect(grid.get_by_role("link", name=re.compile("Sync roadmap"))).to_contain_text("10:00–11:00")

    # The admin reads the email Daniel got, in the outbox.
    admin = signed_in_page(browser, served, DEMO_ADMIN_EMAIL)
    admin.goto(f"{served}/admin/outbox/")
    row = admin.locator("#outbox tbody tr").filter(has_text=DANIEL)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Room booking declined")
    expect(row).to_contain_text(f"Your booking of {SPACE} was declined")
    admin.screenshot(path=str(ARTIFACTS / "live-sync-outbox.png"), full_page=True)
    row.get_by_role("link", name=f"Your booking of {SPACE} was declined").click()
    expect(admin.locator("body")).to_contain_text("Grab room A")
    expect(admin.locator("body")).to_contain_text(f"It would overlap a booking of {SPACE_AB}, which shares space "
                                                  f"with {SPACE}")
    # One email to Daniel, about that event only: the room's own decline of "Standing in" is not Roomsync's.
    mails = [m for m in db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "event_refused"))
             if DANIEL in m.to]
    assert len(mails) == 1 and mails[0].to == [DANIEL], [m.to for m in mails]
    assert "Grab room A" in mails[0].text and "Standing in" not in mails[0].text
    db.session.rollback()

    # 4. The sync health page: the pair is healthy (green), the refusal among its recent events.
    health_url = f"{served}/admin/sync/health"
    section = admin.locator(f"#health-{live_demo['pair_id']}")

    def healthy(page):
        expect(section).to_have_attribute("data-status", "ok", timeout=500)

    until(admin, healthy, "the pair healthy", url=health_url)
    # An audit on demand (a worker job) compares both sides after all of the above: they agree.
    # The initial sync's own audit is shown until then.
    before = section.locator(".health-audit").inner_text()
    assert "Both sides agree" in before
    section.get_by_role("button", name=f"Audit now {SPACE}").click()
    expect(admin.locator(".flash")).to_contain_text(f"An audit of {SPACE} is queued")
    until(admin, lambda page: expect(section.locator(".health-audit")).not_to_have_text(before, timeout=500),
          "the audit's result", url=health_url)
    expect(section.locator(".health-audit")).to_contain_text("Both sides agree")
    expect(section.locator("h2 .health-status")).to_have_text("Healthy")
    expect(section.locator("h2 .health-status")).to_have_class(re.compile(r"\bstatus-ok\b"))
    expect(section.locator("h2 .badge")).to_have_text("Live")
    expect(section.locator(".health-subscription")).to_contain_text("Active")
    expect(section.locator(".health-pending")).to_have_text("0")
    expect(section.locator(".health-failed")).to_have_text("0")
    expect(section.locator(".health-unprocessed")).to_have_text("0")
    expect(section.locator(".health-problems")).to_have_count(0)
    expect(section.locator(".health-warnings")).to_have_count(0)
    expect(section.locator(".health-incidents tr[data-cause='refused']")).to_contain_text("Daniel")
    expect(admin.locator(".health-summary li").first).to_contain_text("Healthy 1")
    admin.screenshot(path=str(ARTIFACTS / "live-sync-health.png"), full_page=True)

    print("\n".join(f"{seconds:5.1f} s  {what}" for what, seconds in timings.items()))
