"""The sync health page (issue 6): per pair a green/amber/red status with its word, the subscription and its
expiry in the venue's zone, last notification and reconcile, pending and failed pushes, unprocessed
notifications, the last audit, problems, warnings and recent incidents with their causes; the panel polls
itself; the four buttons queue the right job (audited, CSRF-protected, refused for pairs not syncing);
access (admins only; 404 for other venues' and unknown pairs). Private titles never reach the page.

Rows are made directly (pairs without the sandbox); the jobs are replaced by recorders in their modules and
run inline after the commit (the test app's SYNC_JOBS).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from markupsafe import escape
from sqlalchemy import select

from webapp.audit import AuditEntry
from webapp.extensions import db
from webapp.sync import outbound, reconcile, subscriptions
from webapp.sync.models import InboundNotification, OutboundState, Pair, Subscription, SyncIncident
from webapp.sync.parity import Difference, ParityResult
from webapp.timeutil import now_utc

URL = "/admin/sync/health"
PANEL = URL + "/panel"
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
def april(clock):
    clock.move_to(APRIL)
    return clock


@pytest.fixture
def make_pair(make_space):
    counter = iter(range(1, 1000))

    def make(venue, name=None, state="live", *, subscription="active", expires_in=timedelta(days=2), space=None,
             detail=""):
        n = next(counter)
        space = space or make_space(venue, name or f"Board {n}")
        pair = Pair(venue_id=venue.id, space_id=space.id, room_email=f"room{n}@roomsync.test", room_id=f"id-{n}",
                    room_display_name=f"Outlook room {n}", state=state, state_detail=detail)
        db.session.add(pair)
        db.session.flush()
        if subscription is not None:
            db.session.add(Subscription(pair_id=pair.id, graph_id=f"sub-{n}", client_state_hash="x" * 64,
                                        state=subscription, expires_at=now_utc() + expires_in,
                                        error="" if subscription == "active" else "Graph said no (403)"))
        db.session.commit()
        return pair

    return make


@pytest.fixture
def booked(make_booking, make_user):
    """A booking of `space` (made before its pair exists, so no push is queued), with an outbound state."""
    holder = make_user("sam@roomsync.test", first_name="Sam", last_name="Holder")

    def make(venue, space, state="failed", *, title="Planning", private=False, hours=2, error="Microsoft 365 "
             "answered: the organizer's mailbox is full"):
        booking = make_booking(venue, space, now_utc().replace(minute=0) + timedelta(hours=hours), holder=holder,
                               title=title, private=private)
        db.session.add(OutboundState(booking_uid=booking.uid, state=state, error=error if state == "failed" else "",
                                     wanted_sequence=booking.sequence))
        db.session.commit()
        return booking

    return make


def incident(pair, cause, detail, at=None):
    db.session.add(SyncIncident(pair_id=pair.id, cause=cause, detail=detail, at=at or now_utc()))
    db.session.commit()


def section(html: str, pair) -> str:
    start = html.index(f'id="health-{pair.id}"')
    end = html.find("</section>", start)
    return html[start:end]


# ---------------------------------------------------------------------------------------------- statuses


def test_a_healthy_live_pair_is_green_with_its_figures_in_the_venue_zone(venue, april, make_pair, admin_client):
    pair = make_pair(venue, "Board A", expires_in=timedelta(days=1, hours=2))
    pair.last_notification_at = now_utc() - timedelta(minutes=5)
    pair.last_reconciled_at = now_utc() - timedelta(hours=3)
    pair.last_parity = ParityResult(matched=12, time_zone="Europe/London", checked_at=now_utc() - timedelta(hours=3),
                                    ).to_json()
    db.session.commit()
    response = admin_client.get(URL)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Sync health</h1>" in html
    card = section(html, pair)
    assert 'data-status="ok"' in card and "Healthy" in card
    assert "Board A ↔ Outlook room" in card
    # 09:00 UTC in April is 10:00 in London.
    assert "Active, expires Wed 8 Apr 2026, 12:00 (in 1 day)" in card
    assert "Tue 7 Apr 2026, 09:55 (5 minutes ago)" in card
    assert "Tue 7 Apr 2026, 07:00 (3 hours ago)" in card
    assert "Both sides agree: 12 bookings" in card
    assert "None recorded." in card
    for label in ("Resync now", "Audit now", "Renew subscription"):
        assert label in card
    assert "Retry" not in card  # nothing failed: nothing to retry


def test_pending_work_and_an_expiring_subscription_are_amber(venue, clock, make_pair, make_space, booked,
                                                             admin_client):
    space = make_space(venue, "Board B")
    booked(venue, space, "pending")
    booked(venue, space, "done", hours=4)  # done pushes are not work
    pending = make_pair(venue, space=space)
    expiring = make_pair(venue, "Board C", expires_in=timedelta(hours=3))
    waiting = make_pair(venue, "Board D")
    for _ in range(2):
        db.session.add(InboundNotification(pair_id=waiting.id, subscription_graph_id="sub", event_id="ev", state="new"))
    db.session.add(InboundNotification(pair_id=waiting.id, subscription_graph_id="sub", event_id="ev", state="done"))
    db.session.commit()
    html = admin_client.get(URL).get_data(as_text=True)
    card = section(html, pending)
    assert 'data-status="warning"' in card and "Needs attention" in card
    assert "1 booking(s) waiting to be written to Outlook." in card
    assert '<dd class="health-pending">1</dd>' in card and '<dd class="health-failed">0</dd>' in card
    card = section(html, expiring)
    assert 'data-status="warning"' in card and "expires within 6 hours" in card
    card = section(html, waiting)
    assert 'data-status="warning"' in card and '<dd class="health-unprocessed">2</dd>' in card
    assert "2 notification(s) waiting to be processed." in card


def test_recent_transient_errors_are_amber_with_their_causes(venue, clock, make_pair, admin_client):
    pair = make_pair(venue, "Board A")
    incident(pair, "unavailable", "ServiceUnavailable: 503", now_utc() - timedelta(hours=2))
    incident(pair, "throttled", "Throttled: too many requests", now_utc() - timedelta(minutes=3))
    card = section(admin_client.get(URL).get_data(as_text=True), pair)
    assert 'data-status="warning"' in card
    assert "1 error(s) in the last 30 minutes" in card
    assert 'data-cause="throttled"' in card and "<td>Throttled</td>" in card
    assert "<td>Microsoft 365 unavailable</td>" in card
    assert "Mon 2 Mar 2026, 08:57 (3 minutes ago)" in card  # March: London is on UTC
    assert card.index("Throttled: too many") < card.index("ServiceUnavailable: 503")  # newest first


def test_failures_are_red_with_why(venue, clock, make_pair, make_space, booked, admin_client):
    space = make_space(venue, "Board A")
    booked(venue, space, "failed")
    failing_pushes = make_pair(venue, space=space)
    sub_failed = make_pair(venue, "Board B", subscription="failed")
    no_sub = make_pair(venue, "Board C", subscription=None)
    broken = make_pair(venue, "Board D", "broken", detail="The room no longer exists in Microsoft 365.")
    incident(broken, "room_deleted", "InvalidUser: the mailbox is gone")
    revoked = make_pair(venue, "Board E")
    incident(revoked, "permission", "PermissionMissing: Calendars.ReadWrite was revoked")

    html = admin_client.get(URL).get_data(as_text=True)
    card = section(html, failing_pushes)
    assert 'data-status="error"' in card and "Failing" in card
    assert "1 booking(s) could not be written to Outlook." in card
    assert "held by Sam Holder: Microsoft 365 answered: the organizer&#39;s mailbox is full" in card
    assert "Retry 1 failed push" in card
    card = section(html, sub_failed)
    assert 'data-status="error"' in card and "The subscription failed: Graph said no (403)" in card
    assert "Failed, expires" in card
    card = section(html, no_sub)
    assert 'data-status="error"' in card and "No change-notification subscription" in card
    card = section(html, broken)
    assert 'data-status="error"' in card and "The room no longer exists in Microsoft 365." in card
    assert "<td>Room deleted</td>" in card
    assert "Resync now" not in card and "a broken pair must be unsynced" in card
    card = section(html, revoked)
    assert "<td>Permission revoked</td>" in card and "Calendars.ReadWrite was revoked" in card
    # A revoked permission does not heal by retrying: someone must grant it again, so it is red.
    assert 'data-status="error"' in card and "Permission revoked: PermissionMissing" in card
    # The summary counts every status.
    assert 'status-error">Failing</span> 5' in html and 'status-warning">Needs attention</span> 0' in html
    assert 'status-ok">Healthy</span> 0' in html


def _differing(pair):
    listed = Difference("only_in_outlook", outlook_start=now_utc() + timedelta(days=1),
                        outlook_end=now_utc() + timedelta(days=1, hours=1), event_id="ev-x",
                        organizer_email="kim@roomsync.test", time_zone="Europe/London")
    pair.last_parity = ParityResult(matched=3, totals={"only_in_outlook": 2, "only_in_roomsync": 0, "time_differs": 0},
                                    only_in_outlook=[listed], time_zone="Europe/London",
                                    checked_at=now_utc() - timedelta(minutes=20)).to_json()
    db.session.commit()


def test_the_last_audits_differences_are_listed(venue, clock, make_pair, admin_client):
    pair = make_pair(venue, "Board F")
    _differing(pair)
    card = section(admin_client.get(URL).get_data(as_text=True), pair)
    assert "2 differences from today on: 2 only in Outlook" in card
    assert "(Mon 2 Mar 2026, 08:40 (20 minutes ago))" in card
    assert "Only in Outlook (2)" in card and "1 of 2 listed." in card
    assert "kim@roomsync.test" in card and "Tue 3 Mar 2026" in card


def test_differences_found_by_the_last_audit_are_red(venue, clock, make_pair, admin_client):
    pair = make_pair(venue, "Board F")
    _differing(pair)
    card = section(admin_client.get(URL).get_data(as_text=True), pair)
    assert 'data-status="error"' in card and "The last audit found 2 difference(s)." in card


def test_private_titles_never_reach_the_page(venue, clock, make_pair, make_space, booked, admin_client):
    space = make_space(venue, "Board A")
    booked(venue, space, "failed", title=SECRET, private=True)
    booked(venue, space, "pending", title=SECRET + " 2", private=True, hours=5)
    pair = make_pair(venue, space=space)
    incident(pair, "outbound", "A booking could not be written to Outlook: Microsoft 365 answered: 400")
    for url in (URL, PANEL):
        html = admin_client.get(url).get_data(as_text=True)
        assert "Board A ↔" in html
        assert SECRET not in html and str(escape(SECRET)) not in html, url


def test_no_pairs_says_so(venue, admin_client):
    html = admin_client.get(URL).get_data(as_text=True)
    assert "No space is synced yet." in html


def test_a_pair_still_in_its_initial_sync_has_no_actions(venue, clock, make_pair, admin_client):
    pair = make_pair(venue, "Board A", "running", subscription=None)
    card = section(admin_client.get(URL).get_data(as_text=True), pair)
    assert 'data-status="warning"' in card and "The initial sync is still running." in card
    assert "Resync now" not in card and "once the initial sync is done" in card


# ---------------------------------------------------------------------------------------------- polling


def test_the_panel_polls_itself_every_10_seconds(venue, clock, make_pair, admin_client):
    pair = make_pair(venue, "Board A")
    page = admin_client.get(URL).get_data(as_text=True)
    panel = admin_client.get(PANEL)
    assert panel.status_code == 200
    fragment = panel.get_data(as_text=True)
    assert "<html" not in fragment and "<h1>" not in fragment
    for html in (page, fragment):
        assert 'id="sync-health"' in html
        assert f'hx-get="{PANEL}"' in html.replace("http://roomsync.localhost", "")
        assert 'hx-trigger="every 10s"' in html and 'hx-swap="outerHTML"' in html
    assert f'id="health-{pair.id}"' in fragment
    # The poll shows what changed meanwhile.
    incident(pair, "throttled", "Throttled: slow down")
    assert "Throttled: slow down" in admin_client.get(PANEL).get_data(as_text=True)


# ---------------------------------------------------------------------------------------------- actions


@pytest.fixture
def jobs(monkeypatch):
    ran = []
    monkeypatch.setattr(reconcile, "reconcile_pair", lambda pair_id: ran.append(("reconcile", pair_id)))
    monkeypatch.setattr(reconcile, "audit_now", lambda pair_id: ran.append(("audit", pair_id)))
    monkeypatch.setattr(subscriptions, "ensure_subscription",
                        lambda pair_id, **kw: ran.append(("subscription", pair_id, kw)))
    monkeypatch.setattr(outbound, "push_booking", lambda uid: ran.append(("push", uid)))
    return ran


def _audit_actions(pair) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.subject == f"pair:{pair.id}")
                                   .order_by(AuditEntry.id)))


@pytest.mark.parametrize("action, expected, action_name, message", [
    ("resync", ("reconcile",), "pair.resync_requested", "A resync of Board A is queued"),
    ("audit", ("audit",), "pair.audit_requested", "An audit of Board A is queued"),
    ("renew", ("subscription", {"force_renew": True}), "pair.renew_requested",
     "The subscription of Board A is being renewed."),
])
def test_buttons_queue_their_job(venue, clock, make_pair, admin, admin_client, jobs, action, expected, action_name,
                                 message):
    pair = make_pair(venue, "Board A")
    other = make_pair(venue, "Board B")
    response = admin_client.post(f"/admin/sync/{pair.id}/{action}")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(URL)
    name, *rest = expected
    assert jobs == [(name, pair.id, *rest)]
    assert _audit_actions(pair) == [action_name] and _audit_actions(other) == []
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == action_name))
    assert entry.actor_id == admin.id and entry.venue_id == venue.id
    assert message in admin_client.get(URL).get_data(as_text=True)


def test_retry_pushes_requeues_only_the_pairs_failed_pushes(venue, clock, make_pair, make_space, booked,
                                                            admin_client, jobs):
    space, elsewhere = make_space(venue, "Board A"), make_space(venue, "Board B")
    failed = [booked(venue, space, "failed"), booked(venue, space, "failed", hours=4)]
    pending = booked(venue, space, "pending", hours=6)
    done = booked(venue, space, "done", hours=8)
    theirs = booked(venue, elsewhere, "failed")
    pair = make_pair(venue, space=space)
    make_pair(venue, space=elsewhere)

    response = admin_client.post(f"/admin/sync/{pair.id}/retry-pushes")
    assert response.status_code == 303 and response.headers["Location"].endswith(URL)
    assert sorted(jobs) == sorted(("push", b.uid) for b in failed)
    states = {s.booking_uid: s for s in db.session.scalars(select(OutboundState))}
    assert all(states[b.uid].state == "pending" and states[b.uid].error == "" for b in failed)
    assert states[pending.uid].state == "pending" and states[done.uid].state == "done"
    assert states[theirs.uid].state == "failed"
    assert _audit_actions(pair) == ["pair.pushes_retried"]
    assert "2 failed pushes of Board A queued again." in admin_client.get(URL).get_data(as_text=True)

    jobs.clear()  # nothing left to retry: said so, nothing queued, nothing audited
    admin_client.post(f"/admin/sync/{pair.id}/retry-pushes")
    assert jobs == [] and _audit_actions(pair) == ["pair.pushes_retried"]
    assert "Board A has no failed pushes to retry." in admin_client.get(URL).get_data(as_text=True)


@pytest.mark.parametrize("state", ["broken", "running", "failed"])
def test_actions_on_a_pair_not_syncing_are_refused(venue, clock, make_pair, admin_client, jobs, state):
    pair = make_pair(venue, "Board A", state, subscription=None)
    for action in ("resync", "audit", "renew", "retry-pushes"):
        response = admin_client.post(f"/admin/sync/{pair.id}/{action}")
        assert response.status_code == 303, action
    assert jobs == [] and _audit_actions(pair) == []
    assert "Board A is not syncing" in admin_client.get(URL).get_data(as_text=True)


def test_htmx_posts_get_an_hx_redirect(venue, clock, make_pair, admin_client, jobs):
    pair = make_pair(venue, "Board A")
    response = admin_client.post(f"/admin/sync/{pair.id}/audit", headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.headers["HX-Redirect"].endswith(URL)
    assert jobs == [("audit", pair.id)]


def test_actions_need_a_csrf_token_and_every_form_has_one(app, venue, clock, make_pair, make_space, booked,
                                                         admin_client, jobs):
    space = make_space(venue, "Board A")
    booked(venue, space, "failed")
    pair = make_pair(venue, space=space)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        card = section(admin_client.get(URL).get_data(as_text=True), pair)
        forms = card.count('method="post"')
        assert forms == 4 and card.count('name="csrf_token"') == forms
        for action in ("resync", "audit", "renew", "retry-pushes"):
            assert admin_client.post(f"/admin/sync/{pair.id}/{action}").status_code == 400, action
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert jobs == [] and _audit_actions(pair) == []


# ---------------------------------------------------------------------------------------------- access


def test_anonymous_visitors_are_sent_to_sign_in(venue, client):
    for url in (URL, PANEL):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_members_get_403(venue, make_pair, make_user, login, jobs):
    pair = make_pair(venue, "Board A")
    client = login(make_user())
    for url in (URL, PANEL):
        assert client.get(url).status_code == 403, url
    for action in ("resync", "audit", "renew", "retry-pushes"):
        assert client.post(f"/admin/sync/{pair.id}/{action}").status_code == 403, action
    assert jobs == []


def test_unknown_and_other_venues_pairs_are_404(venue, make_venue, make_pair, admin_client, jobs):
    mine = make_pair(venue, "Board A")
    other = make_venue(name="Elsewhere")
    theirs = make_pair(other, "Their room")
    html = admin_client.get(URL).get_data(as_text=True)
    assert f'id="health-{mine.id}"' in html and "Their room" not in html
    for action in ("resync", "audit", "renew", "retry-pushes"):
        for pair_id in (theirs.id, 4242, 99999999999):
            assert admin_client.post(f"/admin/sync/{pair_id}/{action}").status_code == 404, (action, pair_id)
    assert jobs == []


def test_an_unreadable_stored_audit_shows_its_summary_not_a_500(venue, clock, make_pair, admin_client):
    pair = make_pair(venue, "Board A")
    pair.last_parity = {"agrees": False, "summary": "3 differences from today on.", "time_zone": "Nowhere/Zone"}
    db.session.commit()
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert "3 differences from today on." in section(response.get_data(as_text=True), pair)
