"""Issue 5's "done when", in a real Chromium: an admin pairs a demo space with its sandbox room in the browser,
watches the progress, reads the report, and both sides agree.

The scene is the demo itself: Roomsync seeded by `webapp.demo.seed_demo()` (the HQ venue, its rooms, users and
two weeks of bookings) and connected to the sandbox tenant, whose room calendars hold the sandbox's demo
meetings (`webapp.sandbox.seed.seed_demo_calendars`). Both demos place their items on days relative to today,
so which demo bookings clash changes with the weekday; the test adds its own items three weeks ahead, where
the demos have nothing in Board room A, and asserts exactly on those:

- Outlook (Board room A): "Board pack review" Mon 10:00–11:00 (imported), "Quick sync" Mon 13:53–14:07
  (adjusted to 13:45–14:00 and written back), "Release night" Wed 22:00–Thu 01:00 (refused: it spans midnight);
- Roomsync (Board room A): "Clashing catch-up" Mon 10:30–11:30 (not restored: it conflicts with the board pack
  review) and "Workshop: booking etiquette" Fri 10:00–11:00 (restored, and created in Outlook).

The demo's own items are checked as a whole: every Outlook meeting of Board room A is in the report, and the
parity audit (and the test's own look at both sides) finds them in agreement.

Processes (the fixtures of tests/processes.py): Roomsync served by werkzeug (threaded, CSRF on) with jobs queued on a Redis queue of its own, and a
real `worker.py` subprocess on that queue, so the admin sees the pair go running (with its step) → done by
htmx polling, without reloading (checked).
The sandbox delays `calendarView` while the pair's sync runs, which holds the run in step 4 long enough to
see it and, meanwhile, to watch a member's booking of the space refused with the freeze message.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from processes import ARTIFACTS, signed_in_page
from processes import browser, job_queue, served, worker  # noqa: F401
from webapp.auth.models import User
from webapp.booking.models import Space, Venue
from webapp.booking.operations import BookingInput, create_booking, occurrences_between
from webapp.demo import DEMO_ADMIN_EMAIL, DEMO_MEMBER_EMAIL, seed_demo
from webapp.extensions import db
from webapp.graph import graph_client
from webapp.graph.types import Attendee, EventDraft, Location
from webapp.integration.models import IntegrationSettings
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL, DEMO_MEETINGS, seed_demo_calendars
from webapp.sync.models import Pair
from webapp.timeutil import localize, now_utc, to_local

pytestmark = pytest.mark.browser

LONDON = ZoneInfo("Europe/London")
SPACE = "Board room A"
ROOM = "board-room-a@roomsync.test"
PRIYA, TOM, DANIEL = DEMO_MEMBER_EMAIL, "tom.baker@roomsync.test", "daniel.okafor@roomsync.test"
STEP_LATENCY_MS = 6000  # per calendarView call while the pair's sync runs: step 4 holds at least this long
WAIT = 30_000  # ms: a poll every 2 s, a worker, a few Graph calls


# ---------------------------------------------------------------------------------------------- the scene


def local(day, hh, mm=0) -> datetime:
    return localize(datetime.combine(day, time(hh, mm)), LONDON)


def meeting(organizer: str, subject: str, start: datetime, end: datetime) -> None:
    graph_client().create_event(organizer, EventDraft(
        subject=subject, start=start, end=end, attendees=(Attendee(email=ROOM, type="resource"),),
        location=Location(display_name=SPACE, email=ROOM)))


@pytest.fixture
def demo(connected, sandbox_admin):
    """Both demos, connected (integration settings saved, enabled and validated), plus the test's own items
    three weeks ahead (see the module docstring)."""
    sandbox_admin.reset()
    assert seed_demo()
    assert seed_demo_calendars(connected.server.app) > 0
    venue = db.session.scalar(select(Venue))
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email=DEMO_BUTLER_EMAIL, enabled=True,
                                       last_validated_at=now_utc()))
    db.session.commit()
    space = db.session.scalar(select(Space).where(Space.name == SPACE))
    today = to_local(now_utc(), LONDON).date()
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=3)
    wednesday, friday = monday + timedelta(days=2), monday + timedelta(days=4)

    meeting(TOM, "Board pack review", local(monday, 10), local(monday, 11))
    meeting(PRIYA, "Quick sync", local(monday, 13, 53), local(monday, 14, 7))
    meeting(DANIEL, "Release night", local(wednesday, 22), local(wednesday + timedelta(days=1), 1))

    priya = db.session.scalar(select(User).where(User.email == PRIYA))
    for title, start, end in (("Clashing catch-up", local(monday, 10, 30), local(monday, 11, 30)),
                              ("Workshop: booking etiquette", local(friday, 10), local(friday, 11))):
        create_booking(venue, BookingInput(space_ids=[space.id], start=start, end=end, title=title), actor=priya)
    return dict(venue=venue, space=space, monday=monday, wednesday=wednesday, friday=friday)


def span(start: datetime, end: datetime) -> str:
    return f"{start:%H:%M}–{end:%H:%M}"


# ---------------------------------------------------------------------------------------------- the test


def test_an_admin_pairs_a_demo_room_watches_it_sync_and_both_sides_agree(browser, served, worker, demo,
                                                                         sandbox_admin):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    monday, wednesday, friday = demo["monday"], demo["wednesday"], demo["friday"]
    admin = signed_in_page(browser, served, DEMO_ADMIN_EMAIL, timeout=WAIT, accept_downloads=True)

    # Synced rooms, from the admin area's navigation.
    admin.goto(f"{served}/admin/")
    admin.locator(".admin-nav").get_by_role("link", name="Synced rooms").click()
    expect(admin.get_by_role("heading", name="Synced rooms", level=1)).to_be_visible()
    expect(admin.locator("#pair-list")).to_contain_text("No space is synced yet.")

    # Preview first: the filter box narrows the rooms; the dry run's answer arrives by polling.
    admin.get_by_label("Space", exact=True).select_option(label=f"{SPACE} (room)")
    rooms = admin.get_by_label("Microsoft 365 room")
    expect(rooms.locator("option[value]:not([value=''])")).to_have_count(11)  # the sandbox's 8 + 3 spare rooms
    admin.get_by_label("Filter rooms").fill(ROOM)
    expect(rooms.locator("option[value]:not([value=''])")).to_have_count(1)
    rooms.select_option(ROOM)
    admin.get_by_role("button", name="Preview first").click()
    expect(admin.get_by_role("heading", name=f"Preview: {SPACE} ↔ {SPACE}")).to_be_visible()
    preview = admin.locator("#preview")
    expect(preview).to_have_attribute("data-state", "done", timeout=WAIT)
    expect(preview).to_contain_text(re.compile(r"\d+ upcoming events of the room would be imported\."))  # no series
    expect(preview.locator("#preview-adjusted")).to_contain_text("13:53–14:07 → 13:45–14:00")
    expect(preview.locator("#preview-refused")).to_contain_text("Release night")
    expect(preview.locator("#preview-not_restored")).to_contain_text("Clashing catch-up")
    admin.screenshot(path=str(ARTIFACTS / "sync-preview.png"), full_page=True)
    assert db.session.scalar(select(Pair)) is None  # a preview pairs nothing
    db.session.rollback()  # end the read: on SQLite an open transaction keeps seeing this moment

    # Hold every calendar read of the sync long enough to watch it run.
    sandbox_admin.faults({"latency": {"ms": STEP_LATENCY_MS, "path": "calendarView"}})

    # Pair, from the form of the Synced rooms page.
    admin.get_by_role("link", name="Back to synced rooms").click()
    admin.get_by_label("Space", exact=True).select_option(label=f"{SPACE} (room)")
    admin.get_by_label("Microsoft 365 room").select_option(ROOM)
    admin.get_by_role("button", name="Sync", exact=True).click()
    expect(admin.locator(".flash")).to_contain_text(f"{SPACE} is now synced with {SPACE}")
    admin.evaluate("window.notReloaded = true")  # gone if anything reloads the page
    row = admin.locator("#pair-list tbody tr").filter(has_text=SPACE)
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", re.compile("queued|running"))
    expect(row.locator(".pair-state")).to_contain_text("Initial sync running")
    expect(row.locator(".pair-state")).to_contain_text("Step 4 of 7: Importing the room's events")
    expect(row.get_by_role("button", name="Unsync")).to_have_count(0)  # not while it runs
    admin.screenshot(path=str(ARTIFACTS / "sync-running-list.png"), full_page=True)

    # The pair's page, opened meanwhile: the progress, polling by itself.
    pair_page = admin.context.new_page()
    pair_page.set_default_timeout(WAIT)
    pair_page.goto(served + row.get_by_role("link", name=f"Progress of {SPACE}").get_attribute("href"))
    run = pair_page.locator("#initial-sync")
    expect(run).to_have_attribute("data-state", "running")
    # Step 4 at least (the list saw it); the later steps hold on calendarView too.
    step = run.locator(".run-step")
    expect(step).to_contain_text(re.compile(r"Step [4-7] of 7: "))
    progress = run.get_by_role("progressbar", name=re.compile(r"Step [4-7] of 7"))
    expect(progress).to_have_attribute("value", re.compile(r"^(43|57|71|86)$"))  # 3 to 6 of 7 steps done
    expect(run.locator(".run-counts")).to_contain_text("bookings deleted")
    expect(pair_page.get_by_text("the full log shows when the initial sync ends")).to_have_count(0)  # not cut
    expect(run.get_by_role("link", name="Download CSV")).to_have_count(0)
    pair_page.evaluate("window.notReloaded = true")
    pair_page.screenshot(path=str(ARTIFACTS / "sync-running-pair.png"), full_page=True)

    # Meanwhile a member tries to book the space: refused, and told why.
    member = signed_in_page(browser, served, PRIYA, timeout=WAIT, accept_downloads=True)
    member.goto(f"{served}/?date={monday.isoformat()}")
    grid = member.locator("#booking-grid")
    heading = grid.locator(".col-head").filter(has=member.get_by_role("link", name=SPACE, exact=True))
    expect(heading.locator(".badge.syncing")).to_have_attribute("title", re.compile("^Initial sync with Microsoft 365"))
    expect(member.get_by_role("link", name=f"Book {SPACE} at 09:00", exact=True)).to_have_count(0)
    slot = member.get_by_role("link", name="Book Board room B at 09:00", exact=True)
    slot.scroll_into_view_if_needed()
    slot.click()
    dialog = member.locator("dialog#booking-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Title").fill("Sneaking in")
    dialog.get_by_label("Spaces").select_option(label=SPACE)
    dialog.get_by_role("button", name="Book", exact=True).click()
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text(f"{SPACE} is being synced with Microsoft 365 (initial sync in progress)")
    expect(alert).to_contain_text("Bookings for it open again as soon as the sync finishes")
    member.screenshot(path=str(ARTIFACTS / "sync-freeze.png"))
    assert db.session.scalar(select(Pair)).state in ("queued", "running")  # it was refused while syncing
    db.session.rollback()
    member.keyboard.press("Escape")

    sandbox_admin.clear_faults()  # let the sync finish at full speed

    # The list turns "done" by itself, with the one-line result; polling stops.
    expect(row).to_have_attribute("data-state", re.compile("^(done|live)$"), timeout=60_000)
    expect(row.locator(".pair-result")).to_contain_text("both sides agree")
    expect(row.get_by_role("link", name=f"Report of {SPACE}")).to_be_visible()
    expect(admin.locator("#pair-list")).not_to_have_attribute("hx-trigger", re.compile("."))
    assert admin.evaluate("window.notReloaded") is True
    admin.screenshot(path=str(ARTIFACTS / "sync-done-list.png"), full_page=True)

    # The pair's page turned into the report by itself.
    expect(run).to_have_attribute("data-state", re.compile("^(done|live)$"), timeout=WAIT)
    assert pair_page.evaluate("window.notReloaded") is True
    expect(pair_page.locator(".parity-agrees")).to_contain_text("Both sides agree")
    expect(run.locator(".run-result")).to_contain_text("both sides agree")
    board_pack = (local(monday, 10), local(monday, 11))
    imported = run.locator("#report-imported")
    expect(imported).to_contain_text("Board pack review")
    expect(imported).to_contain_text(span(*board_pack))
    adjusted = run.locator("#report-adjusted")
    quick = adjusted.locator("tr").filter(has_text="Quick sync")
    expect(quick).to_contain_text("13:53–14:07 → 13:45–14:00")
    expect(quick).to_contain_text(PRIYA)
    refused = run.locator("#report-refused tr").filter(has_text="Release night")
    expect(refused).to_contain_text("It spans midnight")
    expect(refused).to_contain_text(DANIEL)
    expect(run.locator("#report-restored")).to_contain_text("Workshop: booking etiquette")
    not_restored = run.locator("#report-not_restored tr").filter(has_text="Clashing catch-up")
    expect(not_restored).to_contain_text("It conflicts with an event imported from Outlook")
    # Every demo meeting of Board room A is accounted for somewhere in the report.
    report_text = run.locator("section").filter(has=pair_page.locator("#report-title")).inner_text()
    for demo_meeting in DEMO_MEETINGS:
        if SPACE in demo_meeting.rooms:
            assert demo_meeting.subject in report_text, demo_meeting.subject
    # The headings' counts are the rows listed.
    for section in run.locator(".report-kind").all():
        heading = section.locator("h3").inner_text()
        count = int(re.search(r"\((\d+)\)$", heading).group(1))
        assert section.locator("tbody tr").count() == count, heading
    expect(pair_page.locator(".audit-log")).to_contain_text("sync.finished")
    pair_page.screenshot(path=str(ARTIFACTS / "sync-report.png"), full_page=True)

    # The CSV.
    with pair_page.expect_download() as download_info:
        run.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert re.fullmatch(r"initial-sync-board-room-a-\d+\.csv", download.suggested_filename)
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["Kind", "Title", "Organizer or holder", "Start", "End", "Before start", "Before end", "Series",
                       "Reason"]
    by_title = {row[1]: row for row in rows[1:]}
    assert by_title["Quick sync"][:7] == [
        "Adjusted", "Quick sync", PRIYA, local(monday, 13, 45).isoformat(), local(monday, 14).isoformat(),
        local(monday, 13, 53).isoformat(), local(monday, 14, 7).isoformat()]
    assert by_title["Release night"][0] == "Refused" and "spans midnight" in by_title["Release night"][8]
    assert by_title["Workshop: booking etiquette"][:3] == ["Restored", "Workshop: booking etiquette", PRIYA]
    assert by_title["Clashing catch-up"][0] == "Not restored"
    assert len(rows) - 1 == sum(int(re.search(r"\((\d+)\)$", s.locator("h3").inner_text()).group(1))
                                for s in run.locator(".report-kind").all())

    # The day view shows what came in, and the space takes bookings again.
    member.goto(f"{served}/?date={monday.isoformat()}")
    grid = member.locator("#booking-grid")
    expect(grid.get_by_role("link", name=re.compile("Board pack review"))).to_contain_text(span(*board_pack))
    expect(grid.get_by_role("link", name=re.compile("Quick sync"))).to_contain_text("13:45–14:00")
    expect(grid).not_to_contain_text("Clashing catch-up")
    expect(grid.locator(".badge.syncing")).to_have_count(0)
    expect(member.get_by_role("link", name=f"Book {SPACE} at 09:00", exact=True)).to_have_count(1)
    member.screenshot(path=str(ARTIFACTS / "sync-day-view.png"))
    member.goto(f"{served}/?date={friday.isoformat()}")
    expect(member.locator("#booking-grid").get_by_role("link", name=re.compile("Workshop: booking etiquette"))
           ).to_contain_text("10:00–11:00")

    # Both sides, looked at directly: from today to the end of that week, the room's calendar and the space's
    # bookings hold the same meetings at the same times.
    start, end = local(to_local(now_utc(), LONDON).date(), 0), local(friday + timedelta(days=1), 0)

    def when(first: datetime, last: datetime) -> str:
        return f"{to_local(first, LONDON):%a %d %b %H:%M}–{to_local(last, LONDON):%H:%M}"

    outlook = sorted(when(e.start, e.end) for e in graph_client().calendar_view(ROOM, start, end)
                     if e.type != "seriesMaster" and not e.is_cancelled)
    db.session.rollback()
    roomsync = sorted(when(o.start_utc, o.end_utc) for o in occurrences_between([demo["space"].id], start, end))
    assert outlook == roomsync
    assert when(local(monday, 13, 45), local(monday, 14)) in outlook  # written back to Outlook
    assert when(local(friday, 10), local(friday, 11)) in outlook  # restored, and created in Outlook
    assert not [w for w in outlook if w.startswith(f"{wednesday:%a %d %b} 22")]  # declined as the room
