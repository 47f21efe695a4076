"""The admin's side of the initial sync: live progress in the pair list and on the pair's page (polling only
while queued or running), the report by kind with before → after, the parity result, the CSV (headers,
RFC 4180 quoting, formula injection, venue-local times), the pair's audit log, the dry-run preview (refusals
like pairing, the job queued after the commit, its result shown) and access (admins only, 404 for other
venues' and unknown ids). Private titles never reach a page or the CSV.

Rows of the job's tables are made directly: the job itself is tested in its own files.
"""

from __future__ import annotations

import csv
import io
import sys
import types
from datetime import datetime, timedelta, timezone

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from webapp.audit import record
from webapp.extensions import db
from webapp.integration import provider
from webapp.integration.models import IntegrationSettings
from webapp.sync import report
from webapp.sync.models import InitialSync, Pair, SyncPreview, SyncReportItem
from webapp.sync.pairs import RoomChoice
from webapp.sync.parity import Difference, ParityResult
from webapp.timeutil import now_utc

URL = "/admin/sync/"
ROOMS = [RoomChoice(f"id-{n}", f"room{n}@roomsync.test", f"Room {n}") for n in range(1, 6)]
# After the London DST change (29 March 2026): local times are UTC+1, so a wrong zone shows.
APRIL = datetime(2026, 4, 7, 9, 0, tzinfo=timezone.utc)
SECRET = "Secret merger talk"


@pytest.fixture
def venue(make_venue):
    return make_venue()


@pytest.fixture
def admin(make_user):
    return make_user("admin@roomsync.test", role="admin", first_name="Ada", last_name="Admin")


@pytest.fixture
def admin_client(admin, login):
    return login(admin)


@pytest.fixture
def ready(venue):
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email="roomsync.butler@roomsync.test",
                                       enabled=True, last_validated_at=now_utc()))
    db.session.commit()
    return venue


@pytest.fixture
def fake_rooms(app, monkeypatch):
    listed = [provider.ProviderRoom(r.id, r.email, r.display_name) for r in ROOMS]
    monkeypatch.setattr(provider, "room_directory", lambda: list(listed))
    app.config["INTEGRATION_CACHE"] = "memory"
    app.extensions.pop("integration_cache", None)
    yield
    app.extensions.pop("integration_cache", None)


@pytest.fixture
def previews_run(monkeypatch):
    """The preview job replaced by a recorder (whether or not `sync.initial` exists yet)."""
    ran = []

    def run_preview(preview_id):
        ran.append(preview_id)

    try:
        from webapp.sync import initial
    except ImportError:
        monkeypatch.setitem(sys.modules, "webapp.sync.initial",
                            types.SimpleNamespace(run_preview=run_preview))
    else:
        monkeypatch.setattr(initial, "run_preview", run_preview)
    return ran


@pytest.fixture
def make_pair(make_space):
    def make(venue, name="Board A", room=ROOMS[0], state="queued", detail=""):
        pair = Pair(venue_id=venue.id, space_id=make_space(venue, name).id, room_email=room.email,
                    room_id=room.id, room_display_name=room.display_name, state=state, state_detail=detail)
        db.session.add(pair)
        db.session.commit()
        return pair

    return make


def agreeing(matched=214):
    return ParityResult(matched=matched, time_zone="Europe/London").to_json()


def differing():
    """Two differences found, one listed: an Outlook event (a private one: no title is ever kept) at 10:00."""
    listed = Difference("only_in_outlook", outlook_start=APRIL, outlook_end=APRIL + timedelta(hours=1),
                        event_id="ev-x", organizer_email="sam@roomsync.test", time_zone="Europe/London")
    return ParityResult(matched=10, totals={"only_in_outlook": 2, "only_in_roomsync": 0, "time_differs": 0},
                        only_in_outlook=[listed], time_zone="Europe/London").to_json()


def make_run(pair, step, counts=None, parity=None, error=""):
    run = InitialSync(pair_id=pair.id, step=step, counts=counts or {}, parity=parity, error=error,
                      started_at=APRIL - timedelta(minutes=5), finished_at=APRIL if step > 7 else None)
    db.session.add(run)
    db.session.commit()
    return run


def item(run, kind, key, start=APRIL, minutes=60, **fields):
    line = SyncReportItem(run_id=run.id, kind=kind, key=key, start_utc=start,
                          end_utc=start + timedelta(minutes=minutes), **fields)
    db.session.add(line)
    return line


DONE_COUNTS = {"noted": 22, "deleted": 30, "imported": 214, "adjusted": 3, "refused": 1, "restored": 20,
               "not_restored": 2}


def finished_run(pair):
    """A finished run with one line of each interesting kind, among them a private one and hostile text."""
    run = make_run(pair, 8, DONE_COUNTS, parity=agreeing())
    item(run, "imported", "ev-1", title="Weekly sync", organizer_email="priya@roomsync.test", series=True)
    item(run, "imported", "ev-2", start=APRIL + timedelta(hours=3), title=SECRET, private=True,
         organizer_email="sam@roomsync.test")
    item(run, "adjusted", "ev-3", start=APRIL + timedelta(days=1), minutes=15, title='Budget, "Q2"',
         organizer_email="lee@roomsync.test", before_start_utc=APRIL + timedelta(days=1, minutes=-7),
         before_end_utc=APRIL + timedelta(days=1, minutes=7))
    item(run, "refused", "ev-4", title="=HYPERLINK(\"http://evil\")", organizer_email="+44 20 7946 0000",
         reason="-It spans midnight")
    item(run, "not_restored", "noted-9", title="@SUM(A1)", organizer_email="gone@roomsync.test",
         reason="Its holder is not in the directory.")
    record("sync.imported", subject=f"pair:{pair.id}", detail="Imported 214 events.", venue_id=pair.venue_id)
    record("sync.other", subject="pair:999", detail="Someone else's pair.", venue_id=pair.venue_id)
    db.session.commit()
    return run


# ---------------------------------------------------------------------------------------------- queries


def test_progress_counts_and_result_line(ready, make_pair):
    pair = make_pair(ready)
    run = make_run(pair, 4, {"noted": 3, "deleted": 5, "imported": 120, "refused": 0})
    progress = report.progress(run)
    assert (progress.headline, progress.percent, progress.finished) == (
        "Step 4 of 7: Importing the room's events", 43, False)
    assert progress.counts == [("noted", 3), ("bookings deleted", 5), ("imported", 120)]
    assert progress.result == ""

    run.step, run.counts = 8, DONE_COUNTS
    run.parity = agreeing()
    assert report.progress(run).result == (
        "214 imported, 3 adjusted, 1 refused, 20 restored, 2 not restored — both sides agree")
    assert report.progress(run).percent == 100
    run.parity = differing()
    assert report.progress(run).result.endswith(
        "2 not restored — 2 differences from today on: 2 only in Outlook")
    run.parity, run.counts = None, {}
    assert report.progress(run).result == "0 imported"


def test_items_come_in_report_order_and_counts_are_per_kind(ready, make_pair):
    run = finished_run(make_pair(ready))
    assert [line.kind for line in report.items(run)] == ["imported", "imported", "adjusted", "refused",
                                                         "not_restored"]
    assert [line.key for line in report.items(run, "imported", limit=1)] == ["ev-1"]
    assert report.counts_by_kind(run) == {"imported": 2, "adjusted": 1, "shortened": 0, "refused": 1,
                                          "removed": 0, "skipped": 0, "restored": 0, "not_restored": 1}
    item(run, "skipped", "ev-5", title="Odd series", reason="Every upcoming occurrence is cancelled.")
    db.session.commit()
    assert report.counts_by_kind(run)["skipped"] == 1
    assert report.kind_label("skipped") == "Skipped" and report.kind_label("not_restored") == "Not restored"


def test_the_parity_result_lists_the_differences(ready, make_pair):
    run = make_run(make_pair(ready), 8, parity=differing())
    parity = report.parity_of(run)
    assert (parity.agrees, parity.summary) == (False, "2 differences from today on: 2 only in Outlook.")
    assert parity.differences == [("Only in Outlook", [
        "Tue 7 Apr 2026 10:00–11:00: in Outlook (organizer sam@roomsync.test), not in Roomsync."], 2)]
    run.parity = {"agrees": True, "summary": "Both sides agree.", "time_zone": "Mars/Olympus"}  # unreadable
    assert report.parity_of(run) == report.Parity(True, "Both sides agree.")
    run.parity = None
    assert report.parity_of(run) is None


# ---------------------------------------------------------------------------------------------- the pair list


def test_the_pair_list_shows_each_state(ready, make_pair, admin_client):
    running = make_pair(ready, "Board A", ROOMS[0], "running", "")
    make_run(running, 4, {"noted": 3, "imported": 120})
    done = make_pair(ready, "Board B", ROOMS[1], "done")
    make_run(done, 8, DONE_COUNTS, parity=agreeing())
    failed = make_pair(ready, "Board C", ROOMS[2], "failed", "")
    make_run(failed, 3, error="The room's calendar could not be read.")
    queued = make_pair(ready, "Board D", ROOMS[3], "queued", "Waiting for a worker.")

    html = admin_client.get(URL + "pairs").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in html
    assert str(escape("Step 4 of 7: Importing the room's events")) in html
    assert "— 3 noted, 120 imported" in html
    assert "214 imported, 3 adjusted, 1 refused, 20 restored, 2 not restored — both sides agree" in html
    assert str(escape("The room's calendar could not be read.")) in html
    assert "Waiting for a worker." in html
    for pair in (running, done, failed, queued):
        assert f'href="/admin/sync/{pair.id}"' in html

    for pair in (running, queued):
        pair.state = "done"
    db.session.commit()
    assert 'hx-trigger' not in admin_client.get(URL + "pairs").get_data(as_text=True)


def test_the_pairs_page_offers_a_preview_button(ready, admin_client, fake_rooms):
    html = admin_client.get(URL).get_data(as_text=True)
    assert 'formaction="/admin/sync/preview"' in html and "Preview first" in html


# ---------------------------------------------------------------------------------------------- a pair's page


def test_a_queued_pair_page_polls_until_the_run_ends(ready, make_pair, admin_client):
    pair = make_pair(ready, state="queued", detail="Waiting for a worker.")
    page = admin_client.get(f"{URL}{pair.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'hx-get="/admin/sync/{pair.id}/run" hx-trigger="every 2s"' in html
    assert "has not started yet: Waiting for a worker." in html
    assert "Download CSV" not in html

    pair.state, pair.state_detail = "running", ""
    make_run(pair, 3, {"noted": 4, "deleted": 3})
    fragment = admin_client.get(f"{URL}{pair.id}/run").get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="initial-sync"')
    assert 'hx-trigger="every 2s"' in fragment
    assert "Step 3 of 7: Clearing the space" in fragment
    assert 'value="29"' in fragment  # two of seven steps done
    assert "<strong>4</strong> noted" in fragment and "Download CSV" not in fragment
    # The job's own line, when it wrote one, says more (here: an interrupted step that will be retried).
    pair.state_detail = "Step 3 of 7: Clearing the space — interrupted (timeout); it will be retried shortly."
    db.session.commit()
    fragment = admin_client.get(f"{URL}{pair.id}/run").get_data(as_text=True)
    assert "interrupted (timeout); it will be retried shortly." in fragment


def test_a_finished_pair_page_shows_the_report_parity_and_audit(ready, make_pair, admin_client):
    pair = make_pair(ready, state="done")
    run = finished_run(pair)
    item(run, "skipped", "ev-5", title="Odd series", reason="Imported as single events.")  # a kind of its own
    db.session.commit()
    fragment = admin_client.get(f"{URL}{pair.id}/run").get_data(as_text=True)
    assert "hx-trigger" not in fragment
    html = admin_client.get(f"{URL}{pair.id}").get_data(as_text=True)
    assert "hx-trigger" not in html
    assert "214 imported, 3 adjusted, 1 refused, 20 restored, 2 not restored — both sides agree" in html
    assert "Both sides agree: 214 bookings from today on." in html
    for heading in ("Imported (2)", "Adjusted (1)", "Refused (1)", "Not restored (1)"):
        assert heading in html
    assert "Series shortened" not in html
    assert "Skipped (1)" in html and "Imported as single events." in html
    # Before → after in London summer time (UTC+1).
    assert "Wed 8 Apr 2026, 09:53–10:07 → 10:00–10:15" in html
    assert "Tue 7 Apr 2026, 10:00–11:00" in html
    assert "-It spans midnight" in html and "Its holder is not in the directory." in html
    assert str(escape('Budget, "Q2"')) in html
    assert SECRET not in html and "Private" in html
    assert f'href="/admin/sync/{pair.id}/report.csv"' in html
    assert "Imported 214 events." in html and "Someone else&#39;s pair." not in html


def test_a_failed_pair_page_says_where_and_why(ready, make_pair, admin_client):
    pair = make_pair(ready, state="failed", detail="")
    make_run(pair, 4, {"imported": 10}, error="Microsoft 365 refused the calendar read (403).")
    html = admin_client.get(f"{URL}{pair.id}").get_data(as_text=True)
    assert "hx-trigger" not in html
    assert "stopped at step 4 of 7 (Importing the room&#39;s events)" in html
    assert "Microsoft 365 refused the calendar read (403)." in html
    assert "did not get that far" in html  # no parity yet
    assert f'action="/admin/sync/{pair.id}/retry"' in html
    pair.state_detail = "Stopped at step 4 (importing) after 5 attempts: boom"
    db.session.commit()
    html = admin_client.get(f"{URL}{pair.id}").get_data(as_text=True)
    assert "Stopped at step 4 (importing) after 5 attempts: boom" in html


def test_retry_and_unsync_through_the_pages(ready, make_pair, admin_client, monkeypatch):
    from webapp.sync import pairs

    started = []
    monkeypatch.setattr(pairs, "start_initial_sync", lambda pair_id: started.append(pair_id))
    pair = make_pair(ready, state="failed", detail="boom")
    make_run(pair, 4, error="boom")
    listed = admin_client.get(URL + "pairs").get_data(as_text=True)
    assert f'action="/admin/sync/{pair.id}/retry"' in listed and "Unsync" in listed
    response = admin_client.post(f"{URL}{pair.id}/retry")
    assert response.status_code == 303 and response.headers["Location"] == f"/admin/sync/{pair.id}"
    db.session.expire_all()
    assert db.session.get(Pair, pair.id).state == "queued" and started == [pair.id]
    # While its initial sync is under way a pair offers no Unsync, and the endpoint refuses it with a message.
    listed = admin_client.get(URL + "pairs").get_data(as_text=True)
    assert "Unsync" not in listed and "/retry" not in listed
    response = admin_client.post(f"{URL}{pair.id}/unsync", follow_redirects=True)
    assert "initial sync is still running" in response.get_data(as_text=True)
    assert db.session.get(Pair, pair.id) is not None
    again = admin_client.post(f"{URL}{pair.id}/retry", follow_redirects=True)
    assert "Only a failed initial sync can be retried." in again.get_data(as_text=True)


def test_the_audit_log_names_the_admin_and_the_sync(ready, make_pair, admin, admin_client):
    pair = make_pair(ready, state="done")
    make_run(pair, 8)
    record("pair.created", subject=f"pair:{pair.id}", detail="Paired.", venue_id=ready.id, actor_id=admin.id)
    record("sync.finished", subject=f"pair:{pair.id}", detail="Finished.", venue_id=ready.id)
    db.session.commit()
    html = admin_client.get(f"{URL}{pair.id}").get_data(as_text=True)
    assert html.index("sync.finished") < html.index("pair.created")  # newest first
    assert "Ada Admin" in html and "Roomsync" in html


# ---------------------------------------------------------------------------------------------- the CSV


def test_the_csv_report(ready, make_pair, admin_client):
    pair = make_pair(ready, state="done")
    finished_run(pair)
    response = admin_client.get(f"{URL}{pair.id}/report.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == f'attachment; filename="initial-sync-board-a-{pair.id}.csv"'
    body = response.get_data(as_text=True)
    assert SECRET not in body
    assert body.endswith("\r\n") and "\r\n" in body.split("\n")[0] + "\n"
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert rows[0] == list(report.CSV_COLUMNS)
    assert rows[1] == ["Imported", "Weekly sync", "priya@roomsync.test", "2026-04-07T10:00:00+01:00",
                       "2026-04-07T11:00:00+01:00", "", "", "yes", ""]
    assert rows[2][:3] == ["Imported", "Private", "sam@roomsync.test"]
    assert rows[3] == ["Adjusted", 'Budget, "Q2"', "lee@roomsync.test", "2026-04-08T10:00:00+01:00",
                       "2026-04-08T10:15:00+01:00", "2026-04-08T09:53:00+01:00", "2026-04-08T10:07:00+01:00", "", ""]
    assert '"Budget, ""Q2"""' in body  # RFC 4180 quoting
    # Formula injection: cells a spreadsheet would evaluate start with an apostrophe.
    assert rows[4][1:3] == ["'=HYPERLINK(\"http://evil\")", "'+44 20 7946 0000"]
    assert rows[4][8] == "'-It spans midnight"
    assert rows[5][1] == "'@SUM(A1)"
    assert len(rows) == 6


def test_the_csv_of_a_pair_without_a_run_is_a_404(ready, make_pair, admin_client):
    pair = make_pair(ready)
    assert admin_client.get(f"{URL}{pair.id}/report.csv").status_code == 404


# ---------------------------------------------------------------------------------------------- previews


def test_a_preview_is_queued_and_its_job_runs_after_the_commit(ready, make_space, admin, admin_client,
                                                               fake_rooms, previews_run):
    space = make_space(ready, "Board A")
    response = admin_client.post(URL + "preview", data={"space_id": str(space.id), "room_email": "ROOM2@roomsync.test"})
    preview = db.session.scalar(select(SyncPreview))
    assert response.status_code == 303 and response.headers["Location"] == f"/admin/sync/preview/{preview.id}"
    assert (preview.space_id, preview.room_email, preview.room_display_name, preview.state,
            preview.created_by_id) == (space.id, "room2@roomsync.test", "Room 2", "queued", admin.id)
    assert previews_run == [preview.id]
    assert db.session.scalar(select(func.count()).select_from(Pair)) == 0  # a preview pairs nothing


def test_a_refused_preview_comes_back_with_the_pairing_messages(venue, make_space, make_pair, admin_client,
                                                                fake_rooms, previews_run):
    space = make_space(venue, "Board B")
    data = {"space_id": str(space.id), "room_email": ROOMS[1].email}
    response = admin_client.post(URL + "preview", data=data)
    assert response.status_code == 422 and "Connect Microsoft 365 first" in response.get_data(as_text=True)

    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email="b@roomsync.test", enabled=True,
                                       last_validated_at=now_utc()))
    db.session.commit()
    make_pair(venue, "Board A", ROOMS[0], "live")
    for data, message in [
        ({"space_id": str(space.id), "room_email": ROOMS[0].email}, "Room 1 is already synced with Board A."),
        ({"space_id": "abc", "room_email": ROOMS[1].email}, "Choose a space of this venue."),
        ({"space_id": "99999999999", "room_email": ROOMS[1].email}, "Choose a space of this venue."),
        ({"space_id": str(space.id), "room_email": "nobody@roomsync.test"}, "Choose a Microsoft 365 room."),
        ({"space_id": str(space.id), "room_email": ""}, "Choose a Microsoft 365 room."),
    ]:
        response = admin_client.post(URL + "preview", data=data)
        assert response.status_code == 422, data
        assert message in response.get_data(as_text=True), data
    paired = db.session.scalar(select(Pair))
    response = admin_client.post(URL + "preview", data={"space_id": str(paired.space_id),
                                                        "room_email": ROOMS[1].email})
    assert "Board A is already synced with Room 1." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(SyncPreview)) == 0 and previews_run == []


def test_a_preview_is_refused_exactly_as_pairing_would_be(venue, make_space, make_pair, admin, monkeypatch):
    """`report.preview_refusals` repeats `pairs.create_pair`'s checks: they must never drift apart."""
    from webapp.admin import operations as admin_operations
    from webapp.booking.errors import ValidationError
    from webapp.sync import pairs

    monkeypatch.setattr(pairs, "start_initial_sync", lambda pair_id: None)
    free, closed = make_space(venue, "Board B"), make_space(venue, "Closed")
    admin_operations.set_space_active(closed, False)

    def both(space, room):
        expected = report.preview_refusals(venue, space, room)
        try:
            pairs.create_pair(venue, space, room, admin)
        except ValidationError as error:
            return expected, error.fields
        return expected, {}

    assert both(free, ROOMS[1])[0] == both(free, ROOMS[1])[1] != {}  # integration off
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email="b@roomsync.test", enabled=True,
                                       last_validated_at=now_utc()))
    db.session.commit()
    taken = make_pair(venue, "Board A", ROOMS[0], "live")
    for space, room in [(free, ROOMS[0]), (taken.space, ROOMS[1]), (taken.space, ROOMS[0]), (closed, ROOMS[1]),
                        (None, None), (free, RoomChoice("x", "", ""))]:
        expected, actual = both(space, room)
        assert expected == actual and actual, (space, room)
    assert both(free, ROOMS[1]) == ({}, {})  # and what previews can be paired


def make_preview(venue, space, state="queued", result=None, error=""):
    preview = SyncPreview(venue_id=venue.id, space_id=space.id, room_email=ROOMS[1].email,
                          room_display_name="Room 2", state=state, result=result, error=error)
    db.session.add(preview)
    db.session.commit()
    return preview


RESULT = {
    "bookings_deleted": 12, "noted": 9, "events": 40, "series": 3, "restorable": 7,
    "adjusted": [{"title": "Stand-up", "organizer": "priya@roomsync.test", "start": "2026-04-07T08:53:00Z",
                  "end": "2026-04-07T09:07:00Z", "after_start": "2026-04-07T08:45:00Z",
                  "after_end": "2026-04-07T09:00:00Z"}],
    "refused": [{"title": "", "organizer": "sam@roomsync.test", "start": "2026-04-07T21:00:00Z",
                 "end": "2026-04-08T01:00:00Z", "reason": "It spans midnight."}],
    "removed": [{"title": "All hands", "organizer": "ceo@roomsync.test", "start": "2026-04-09T09:00:00Z",
                 "end": "2026-04-09T10:00:00Z", "reason": "It books 12 paired rooms."}],
    "not_restored": [{"title": "Review", "holder": "lee@roomsync.test", "start": "2026-04-10T09:00:00Z",
                      "end": "2026-04-10T10:00:00Z", "reason": "It conflicts with an imported event."},
                     {"title": "", "holder": "kim@roomsync.test", "start": "not a time", "end": None,
                      "reason": "Its holder is not in the directory."}],
}


def test_the_preview_page_polls_then_shows_what_would_happen(ready, make_space, admin_client):
    space = make_space(ready, "Board A")
    preview = make_preview(ready, space)
    html = admin_client.get(f"{URL}preview/{preview.id}").get_data(as_text=True)
    assert f'hx-get="/admin/sync/preview/{preview.id}/result" hx-trigger="every 2s"' in html
    assert "waiting for a worker" in html
    # "Pair now" posts the same space and room to the pairing endpoint.
    assert 'action="/admin/sync/"' in html
    assert f'name="space_id" type="hidden" value="{space.id}"' in html
    assert 'name="room_email" type="hidden" value="room2@roomsync.test"' in html

    preview.state = "running"
    db.session.commit()
    fragment = admin_client.get(f"{URL}preview/{preview.id}/result").get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="preview"') and 'hx-trigger="every 2s"' in fragment

    preview.state, preview.result = "done", RESULT
    db.session.commit()
    fragment = admin_client.get(f"{URL}preview/{preview.id}/result").get_data(as_text=True)
    assert "hx-trigger" not in fragment
    assert "12 bookings of Board A would be deleted; 9 of them would be noted for restoring, and 7 restored" in fragment
    assert "40 upcoming events of the room would be imported (3 series)" in fragment
    assert "1 adjusted to the grid, 1 refused, 1 removed in Outlook, 2 not restored" in fragment
    assert "Tue 7 Apr 2026, 09:53–10:07 → 09:45–10:00" in fragment  # London, UTC+1
    assert "Tue 7 Apr 2026, 22:00–Wed 8 Apr 02:00" in fragment
    assert "It books 12 paired rooms." in fragment and "It conflicts with an imported event." in fragment
    assert fragment.count("<td>Private</td>") == 2


def test_a_failed_or_empty_preview_explains_itself(ready, make_space, admin_client):
    space = make_space(ready)
    failed = make_preview(ready, space, "failed", error="The room's calendar could not be read.")
    html = admin_client.get(f"{URL}preview/{failed.id}").get_data(as_text=True)
    assert "hx-trigger" not in html and str(escape("The room's calendar could not be read.")) in html
    broken = make_preview(ready, space, "done", result={"adjusted": "nonsense", "events": "many"})
    response = admin_client.get(f"{URL}preview/{broken.id}/result")
    assert response.status_code == 200 and "0 upcoming events" in response.get_data(as_text=True)
    unfilled = make_preview(ready, space, "done", result=None)
    assert "finished without a result" in admin_client.get(f"{URL}preview/{unfilled.id}").get_data(as_text=True)


def test_pair_now_from_the_preview_pairs(ready, make_space, admin_client, fake_rooms, monkeypatch):
    from webapp.sync import pairs

    monkeypatch.setattr(pairs, "start_initial_sync", lambda pair_id: None)
    space = make_space(ready, "Board A")
    response = admin_client.post(URL, data={"space_id": str(space.id), "room_email": ROOMS[1].email})
    assert response.status_code == 303
    assert db.session.scalar(select(Pair)).room_email == ROOMS[1].email


def test_every_form_carries_a_csrf_token(app, ready, make_space, make_pair, admin_client, fake_rooms):
    preview = make_preview(ready, make_space(ready, "Board B"))
    make_pair(ready, "Board A", state="done")
    failed = make_pair(ready, "Board C", ROOMS[2], state="failed", detail="boom")
    make_run(failed, 3, error="boom")
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        for url in (URL, f"{URL}preview/{preview.id}", f"{URL}{failed.id}"):
            html = admin_client.get(url).get_data(as_text=True)
            forms = html.count('method="post"')
            assert forms and html.count('name="csrf_token"') >= forms, url
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


# ---------------------------------------------------------------------------------------------- access


def test_members_get_403(ready, make_pair, make_user, login, make_space):
    pair = make_pair(ready)
    preview = make_preview(ready, make_space(ready))
    client = login(make_user())
    for url in (f"{URL}{pair.id}", f"{URL}{pair.id}/run", f"{URL}{pair.id}/report.csv",
                f"{URL}preview/{preview.id}", f"{URL}preview/{preview.id}/result"):
        assert client.get(url).status_code == 403, url
    assert client.post(URL + "preview", data={}).status_code == 403
    assert client.post(f"{URL}{pair.id}/retry").status_code == 403


def test_unknown_and_other_venues_ids_are_404(ready, make_venue, make_pair, make_space, admin_client):
    other = make_venue(name="Elsewhere")
    theirs = make_pair(other, "Their room", ROOMS[4], "done")
    make_run(theirs, 8)
    their_preview = make_preview(other, make_space(other))
    for url in (f"{URL}{theirs.id}", f"{URL}{theirs.id}/run", f"{URL}{theirs.id}/report.csv",
                f"{URL}preview/{their_preview.id}", f"{URL}preview/{their_preview.id}/result",
                f"{URL}4242", f"{URL}99999999999", f"{URL}99999999999/report.csv", f"{URL}99999999999/run",
                f"{URL}preview/99999999999", f"{URL}preview/4242/result"):
        assert admin_client.get(url).status_code == 404, url
    assert admin_client.post(f"{URL}{theirs.id}/retry").status_code == 404


# ---------------------------------------------------------------------------------------------- end to end


def test_preview_then_pair_through_the_pages_against_the_sandbox(connected, sandbox_admin, make_venue, make_space,
                                                                 make_user, login):
    """The issue's "done when": an admin previews, pairs a space with its sandbox room in the browser's
    forms, and reads the progress, the report, the CSV and the parity result (the jobs run inline)."""
    from zoneinfo import ZoneInfo

    from webapp.graph import graph_client
    from webapp.graph.types import Attendee, EventDraft, Location
    from webapp.timeutil import localize, to_local

    venue = make_venue()
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email="roomsync.butler@roomsync.test",
                                       enabled=True, last_validated_at=now_utc()))
    db.session.commit()
    space = make_space(venue, "Board room A")
    client = login(make_user("boss@roomsync.test", role="admin"))
    room = "board-room-a@roomsync.test"
    london = ZoneInfo("Europe/London")
    tomorrow = to_local(now_utc(), london).date() + timedelta(days=1)

    def at(hh, mm):
        return localize(datetime.combine(tomorrow, datetime.min.time()).replace(hour=hh, minute=mm), london)

    for subject, start, end, private in [("Design review", at(10, 0), at(11, 0), False),
                                         ("Quick sync", at(13, 53), at(14, 7), False),
                                         (SECRET, at(16, 0), at(16, 30), True)]:
        graph_client().create_event("priya.shah@roomsync.test", EventDraft(
            subject=subject, start=start, end=end, is_private=private,
            attendees=(Attendee(email=room, type="resource"),), location=Location(display_name=room, email=room)))

    response = client.post(URL + "preview", data={"space_id": str(space.id), "room_email": room})
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    preview_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-state="done"' in preview_page, preview_page[-3000:]
    assert "3 upcoming events of the room would be imported" in preview_page
    assert "13:53–14:07 → 13:45–14:00" in preview_page and SECRET not in preview_page
    assert db.session.scalar(select(func.count()).select_from(Pair)) == 0

    response = client.post(URL, data={"space_id": str(space.id), "room_email": room})
    assert response.status_code == 303
    pair = db.session.scalar(select(Pair))
    listed = client.get(URL + "pairs").get_data(as_text=True)
    assert "3 imported, 1 adjusted — both sides agree" in listed and "hx-trigger" not in listed
    page = client.get(f"{URL}{pair.id}").get_data(as_text=True)
    assert "Imported (3)" in page and "Adjusted (1)" in page and "13:53–14:07 → 13:45–14:00" in page
    assert "Both sides agree" in page and SECRET not in page and "Private" in page
    assert "sync.finished" in page
    body = client.get(f"{URL}{pair.id}/report.csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert sorted(row[0] for row in rows[1:]) == ["Adjusted", "Imported", "Imported", "Imported"]
    assert SECRET not in body
