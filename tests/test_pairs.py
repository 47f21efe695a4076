"""Sync pairs: one pair per space and per room, refused without the integration, unsync, cascade on space
deletion, broken pairs when the provider deletes a room (against the sandbox over HTTPS), the pairs page and
its self-stopping polling, and 1,000 pairs with a bounded number of queries.
"""

from __future__ import annotations

import logging

import pytest
from markupsafe import escape
from sqlalchemy import event, func, insert, select

from webapp.admin import operations as admin_operations
from webapp.booking.errors import ValidationError
from webapp.booking.models import Space
from webapp.extensions import db
from webapp.integration import cache, provider
from webapp.integration.models import IntegrationSettings
from webapp.sync import pairs, rooms
from webapp.sync.models import Pair
from webapp.sync.pairs import RoomChoice
from webapp.timeutil import now_utc

URL = "/admin/sync/"
ROOMS = [RoomChoice(f"id-{n}", f"room{n}@roomsync.test", f"Room {n}") for n in range(1, 6)]


@pytest.fixture
def venue(make_venue):
    return make_venue()


@pytest.fixture
def admin(make_user):
    return make_user("admin@roomsync.test", role="admin")


@pytest.fixture
def admin_client(admin, login):
    return login(admin)


def integration_on(venue):
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email="roomsync.butler@roomsync.test",
                                       enabled=True, last_validated_at=now_utc()))
    db.session.commit()


@pytest.fixture
def ready(venue):
    integration_on(venue)
    return venue


@pytest.fixture(autouse=True)
def no_initial_sync(monkeypatch):
    """These tests are about pairs: the initial sync job (tests/test_initial_sync.py) is recorded, not run."""
    started = []
    monkeypatch.setattr(pairs, "start_initial_sync", lambda pair_id: started.append(pair_id))
    return started


def finished(pair):
    """The pair as it is once its initial sync is done (unsync is refused before)."""
    pair.state = "done"
    db.session.commit()
    return pair


@pytest.fixture
def fake_rooms(app, monkeypatch):
    """The provider's room list without a provider; counts how often it is read."""
    calls = []
    listed = [provider.ProviderRoom(r.id, r.email.upper(), r.display_name) for r in ROOMS]

    def room_directory():
        calls.append(1)
        return list(listed)

    monkeypatch.setattr(provider, "room_directory", room_directory)
    app.config["INTEGRATION_CACHE"] = "memory"
    app.extensions.pop("integration_cache", None)
    yield calls
    app.extensions.pop("integration_cache", None)


def pair_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Pair))


class Queries:
    def __init__(self):
        self.count = 0

    def __call__(self, *args):
        self.count += 1

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self)


# ---------------------------------------------------------------------------------------------- operations


def test_a_new_pair_is_queued_and_its_initial_sync_hook_runs_after_commit(ready, make_space, admin,
                                                                         no_initial_sync):
    started = no_initial_sync
    space = make_space(ready, "Board A")
    pair = pairs.create_pair(ready, space, RoomChoice("r1", "BoardA@RoomSync.test", "Board room A"), admin)
    assert (pair.state, pair.room_email, pair.room_id, pair.created_by_id) == (
        "queued", "boarda@roomsync.test", "r1", admin.id)
    assert started == [pair.id]


def test_one_pair_per_space_and_one_per_room(ready, make_space, admin):
    a, b = make_space(ready, "Board A"), make_space(ready, "Board B")
    pairs.create_pair(ready, a, ROOMS[0], admin)
    with pytest.raises(ValidationError) as same_space:
        pairs.create_pair(ready, a, ROOMS[1], admin)
    assert same_space.value.fields == {"space": "Board A is already synced with Room 1."}
    with pytest.raises(ValidationError) as same_room:
        pairs.create_pair(ready, b, RoomChoice("other-id", "ROOM1@roomsync.test", "Room 1"), admin)
    assert same_room.value.fields == {"room": "Room 1 is already synced with Board A."}
    assert pair_count() == 1


def test_pairing_is_refused_while_the_integration_is_not_enabled(venue, make_space, admin):
    space = make_space(venue, "Board A")
    with pytest.raises(ValidationError) as error:
        pairs.create_pair(venue, space, ROOMS[0], admin)
    assert "Connect Microsoft 365 first" in error.value.fields["form"]
    db.session.add(IntegrationSettings(venue_id=venue.id, butler_email="b@roomsync.test", enabled=False))
    db.session.commit()
    with pytest.raises(ValidationError):
        pairs.create_pair(venue, space, ROOMS[0], admin)
    assert pair_count() == 0


def test_inactive_spaces_are_refused_and_desks_accepted(ready, make_space, admin):
    closed = make_space(ready, "Closed")
    admin_operations.set_space_active(closed, False)
    with pytest.raises(ValidationError) as error:
        pairs.create_pair(ready, closed, ROOMS[0], admin)
    assert "inactive" in error.value.fields["space"]
    desk = make_space(ready, "Desk 1", kind="desk")
    assert pairs.create_pair(ready, desk, ROOMS[0], admin).space_id == desk.id


def test_unsync_removes_the_pair_and_deletes_its_subscription(ready, make_space, admin, monkeypatch):
    from webapp.sync.models import Subscription

    removed = []
    monkeypatch.setattr(pairs, "remove_subscription", lambda graph_id: removed.append(graph_id))
    pair = pairs.create_pair(ready, make_space(ready, "Board A"), ROOMS[0], admin)
    with pytest.raises(ValidationError) as refused:
        pairs.unsync(pair, admin)  # its initial sync is still queued
    assert "still running" in refused.value.fields["form"] and pair_count() == 1 and removed == []
    db.session.add(Subscription(pair_id=pair.id, graph_id="sub-1", client_state_hash="x" * 64))
    db.session.commit()
    pairs.unsync(finished(pair), admin)
    assert pair_count() == 0 and removed == ["sub-1"]
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0


def test_deleting_a_space_removes_its_pair(ready, make_space, admin, admin_client):
    a, b = make_space(ready, "Board A"), make_space(ready, "Board B")
    pairs.create_pair(ready, a, ROOMS[0], admin)
    pairs.create_pair(ready, b, ROOMS[1], admin)
    admin_operations.delete_space(a)
    assert [p.room_email for p in db.session.scalars(select(Pair))] == ["room2@roomsync.test"]
    b_id = b.id
    response = admin_client.post(f"/admin/spaces/{b_id}/delete")
    assert response.status_code == 303
    db.session.expire_all()
    assert pair_count() == 0 and db.session.get(Space, b_id) is None


def test_mark_broken_keeps_the_reason_and_tells_the_admins_once(ready, make_space, admin, monkeypatch):
    told = []
    monkeypatch.setattr(pairs, "notify_admins_pair_broken", lambda pair_id: told.append(pair_id))
    pair = pairs.create_pair(ready, make_space(ready, "Board A"), ROOMS[0], admin)
    pairs.mark_broken(pair, "The room is gone.")
    pairs.mark_broken(pair, "The room is gone again.")
    db.session.expire_all()
    pair = db.session.get(Pair, pair.id)
    assert (pair.state, pair.state_detail) == ("broken", "The room is gone.")
    assert told == [pair.id]


# ---------------------------------------------------------------------------------------------- the sandbox


def test_a_room_deleted_in_microsoft_365_breaks_its_pair_only(connected, sandbox_admin, make_venue, make_space,
                                                                admin, monkeypatch):
    venue = make_venue()
    integration_on(venue)
    told = []
    monkeypatch.setattr(pairs, "notify_admins_pair_broken", lambda pair_id: told.append(pair_id))
    tenant_rooms = provider.room_directory()
    assert len(tenant_rooms) >= 2
    gone, kept = tenant_rooms[0], tenant_rooms[1]
    p_gone = pairs.create_pair(venue, make_space(venue, "A"), RoomChoice(gone.id, gone.email, gone.display_name), admin)
    p_kept = pairs.create_pair(venue, make_space(venue, "B"), RoomChoice(kept.id, kept.email, kept.display_name), admin)
    pairs.check_rooms(venue.id)  # nothing vanished yet
    db.session.expire_all()
    assert {p.state for p in db.session.scalars(select(Pair))} == {"queued"}

    sandbox_admin.delete_room(gone.email)
    pairs.check_rooms(venue.id)
    db.session.expire_all()
    broken, intact = db.session.get(Pair, p_gone.id), db.session.get(Pair, p_kept.id)
    assert broken.state == "broken" and gone.email.lower() in broken.state_detail
    assert "no longer exists in Microsoft 365" in broken.state_detail
    assert intact.state == "queued"
    assert told == [p_gone.id]


def test_a_provider_failure_leaves_every_pair_as_it_is(connected, sandbox_admin, make_venue, make_space, admin,
                                                       caplog):
    venue = make_venue()
    integration_on(venue)
    room = provider.room_directory()[0]
    pair = pairs.create_pair(venue, make_space(venue, "A"), RoomChoice(room.id, room.email, room.display_name), admin)
    sandbox_admin.delete_room(room.email)
    sandbox_admin.revoke("Place.Read.All")
    with caplog.at_level(logging.WARNING, logger="webapp.sync.pairs"):
        pairs.check_rooms(venue.id)  # must not raise
    db.session.expire_all()
    assert db.session.get(Pair, pair.id).state == "queued"
    assert "could not list the provider's rooms" in caplog.text
    pairs.check_rooms(venue.id + 1000)  # an unknown venue: nothing, no error


def test_pairing_through_the_page_with_the_sandbox_rooms(connected, sandbox_admin, ready, make_space, admin_client):
    space = make_space(ready, "Board A")
    html = admin_client.get(URL).get_data(as_text=True)
    room = provider.room_directory()[0]
    assert f'value="{room.email.lower()}"' in html and f'value="{space.id}"' in html
    response = admin_client.post(URL, data={"space_id": str(space.id), "room_email": room.email})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    pair = db.session.scalar(select(Pair))
    assert (pair.space_id, pair.room_email, pair.room_id) == (space.id, room.email.lower(), room.id)
    # The paired space and room are no longer offered.
    html = admin_client.get(URL).get_data(as_text=True)
    assert f'value="{room.email.lower()}"' not in html and f'<option value="{space.id}"' not in html


# ---------------------------------------------------------------------------------------------- the page


def test_members_cannot_open_the_pairs_page(make_user, login, venue):
    client = login(make_user())
    assert client.get(URL).status_code == 403
    assert client.get(URL + "pairs").status_code == 403
    assert client.post(URL, data={}).status_code == 403


def test_the_page_without_the_integration_says_to_connect_first(venue, admin_client, fake_rooms):
    html = admin_client.get(URL).get_data(as_text=True)
    assert "Connect Microsoft 365 first" in html and fake_rooms == []  # no provider call either


def test_refused_pairs_come_back_with_their_message(ready, make_space, admin, admin_client, fake_rooms):
    a, b = make_space(ready, "Board A"), make_space(ready, "Board B")
    pairs.create_pair(ready, a, ROOMS[0], admin)
    response = admin_client.post(URL, data={"space_id": str(b.id), "room_email": ROOMS[0].email})
    assert response.status_code == 422
    assert "Room 1 is already synced with Board A." in response.get_data(as_text=True)
    for data in ({"space_id": "abc", "room_email": ROOMS[1].email}, {"space_id": "99999999999", "room_email": ""},
                 {"space_id": str(b.id), "room_email": "nobody@roomsync.test"}):
        response = admin_client.post(URL, data=data)
        assert response.status_code == 422
    assert pair_count() == 1


def test_the_room_list_is_cached_for_a_minute_and_filtered(ready, admin_client, fake_rooms):
    admin_client.get(URL)
    admin_client.get(URL)
    options = admin_client.get(URL + "rooms?q=room%203").get_data(as_text=True)
    assert len(fake_rooms) == 1
    assert 'value="room3@roomsync.test"' in options and "room2@" not in options
    assert "No room matches" in admin_client.get(URL + "rooms?q=zzz").get_data(as_text=True)
    cache.store().clear()  # what the minute's expiry does
    admin_client.get(URL)
    assert len(fake_rooms) == 2


def test_a_provider_failure_on_the_page_is_a_message_not_a_500(ready, admin_client, monkeypatch):
    def fail():
        raise provider_error

    from webapp.graph.errors import ServiceUnavailable

    provider_error = ServiceUnavailable("down")
    monkeypatch.setattr(provider, "room_directory", fail)
    rooms.forget_rooms()
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert "could not be listed just now" in response.get_data(as_text=True)


def test_the_list_polls_only_while_a_pair_is_queued_or_running(ready, make_space, admin, admin_client, fake_rooms):
    pair = pairs.create_pair(ready, make_space(ready, "Board A"), ROOMS[0], admin)
    for state, detail, polls in [("queued", "", True), ("running", "Importing events: 120 of 400", True),
                                 ("done", "", False), ("failed", "The room's calendar could not be read.", False),
                                 ("live", "", False), ("broken", "The room was deleted.", False)]:
        pair.state, pair.state_detail = state, detail
        db.session.commit()
        fragment = admin_client.get(URL + "pairs").get_data(as_text=True)
        assert fragment.lstrip().startswith('<div id="pair-list"')
        assert ('hx-trigger="every 2s"' in fragment) is polls, state
        assert f'class="badge state-{state}"' in fragment
        if detail:
            assert str(escape(detail)) in fragment
    page = admin_client.get(URL).get_data(as_text=True)
    assert "Unsync" in page and 'hx-confirm="Unsync Board A from Room 1?' in page


def test_unsync_through_the_page(ready, make_space, admin, admin_client):
    pair = finished(pairs.create_pair(ready, make_space(ready, "Board A"), ROOMS[0], admin))
    response = admin_client.post(f"{URL}{pair.id}/unsync", headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.headers["HX-Redirect"] == URL
    assert pair_count() == 0
    assert admin_client.post(f"{URL}{pair.id}/unsync").status_code == 404
    assert admin_client.post(f"{URL}99999999999/unsync").status_code == 404


def test_the_admin_nav_links_to_the_pairs_page(venue, admin_client):
    assert f'href="{URL}"' in admin_client.get("/admin/spaces").get_data(as_text=True)


# ---------------------------------------------------------------------------------------------- 1,000 pairs


def test_a_thousand_pairs_list_and_create_with_a_bounded_number_of_queries(ready, admin, admin_client,
                                                                          fake_rooms):
    db.session.execute(insert(Space), [{"venue_id": ready.id, "name": f"Space {n:04d}", "kind": "room",
                                        "capacity": 4, "tags": [], "description": "", "position": n,
                                        "active": True} for n in range(1001)])
    ids = db.session.scalars(select(Space.id).order_by(Space.position)).all()
    now = now_utc()
    db.session.execute(insert(Pair), [{"venue_id": ready.id, "space_id": space_id, "room_email": f"r{n}@roomsync.test",
                                       "room_id": f"id-{n}", "room_display_name": f"R {n}", "state": "live",
                                       "state_detail": "", "created_at": now, "updated_at": now}
                                      for n, space_id in enumerate(ids[:1000])])
    db.session.commit()
    assert pair_count() == 1000
    with Queries() as page:
        response = admin_client.get(URL)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.count('data-state="live"') == 1000
    assert 'hx-trigger="every 2s"' not in html
    with Queries() as fragment:
        assert admin_client.get(URL + "pairs").get_data(as_text=True).count("<tr id=\"pair-") == 1000
    assert page.count <= 12 and fragment.count <= 8, (page.count, fragment.count)

    last = db.session.get(Space, ids[1000])
    with Queries() as create:
        pairs.create_pair(ready, last, ROOMS[0], admin)
    assert create.count <= 14, create.count  # checks, the closure lock, the pair, its audit entry
    assert pair_count() == 1001
