"""JSON API v1: authentication, every endpoint's happy path and error codes, privacy, series, DST, conflicts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from webapp.api import schemas
from webapp.auth.models import ApiToken, issue_api_token
from webapp.booking.models import Booking
from webapp.booking.operations import occurrence_times
from webapp.extensions import db
from webapp.sync.models import Pair
from webapp.timeutil import now_utc

LIST_MARCH = {"start": "2026-03-01T00:00:00+00:00", "end": "2026-04-01T00:00:00+01:00"}


@pytest.fixture
def venue(make_venue):
    return make_venue()


@pytest.fixture
def alice(make_user):
    return make_user("alice@roomsync.test", first_name="Alice", last_name="Archer")


@pytest.fixture
def bob(make_user):
    return make_user("bob@roomsync.test", first_name="Bob", last_name="Baker")


@pytest.fixture
def admin(make_user):
    return make_user("admin@roomsync.test", first_name="Ada", role="admin")


@pytest.fixture
def api(client):
    """api(method, path, user, **client_kwargs): a request under /api/v1 with `user`'s bearer token."""
    tokens: dict[int, str] = {}

    def call(method, path, user=None, *, headers=None, **kwargs):
        headers = dict(headers or {})
        if user is not None:
            if user.id not in tokens:
                _, tokens[user.id] = issue_api_token(user, "tests")
                db.session.commit()
            headers["Authorization"] = f"Bearer {tokens[user.id]}"
        return client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    return call


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    return error


def booking_body(space_ids, start="2026-03-03T10:00:00+00:00", end="2026-03-03T11:00:00+00:00", **fields):
    return {"space_ids": space_ids, "start": start, "end": end, "title": "Planning", **fields}


# ---------------------------------------------------------------------------------------------- auth


def test_requests_without_a_valid_token_get_401_with_a_bearer_challenge(client, api, venue, alice, make_user):
    _, revoked = issue_api_token(alice, "old")
    db.session.scalar(select(ApiToken).where(ApiToken.name == "old")).revoked_at = now_utc()
    inactive = make_user("gone@roomsync.test", active=False)
    _, inactive_token = issue_api_token(inactive, "x")
    db.session.commit()
    attempts = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
        {"Authorization": "Bearer rs_not-a-token"},
        {"Authorization": f"Bearer {revoked}"},
        {"Authorization": f"Bearer {inactive_token}"},
    ]
    for headers in attempts:
        response = client.get("/api/v1/spaces", headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_signed_in_browser_session_is_not_enough(client, login, venue, alice):
    login(alice)
    assert_error(client.get("/api/v1/spaces"), 401, "unauthorized")


def test_token_made_with_the_cli_works(app, client, venue, make_space, alice):
    make_space(venue, "Oak")
    result = app.test_cli_runner().invoke(args=["api-token", "alice@roomsync.test", "--name", "script"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    response = client.get("/api/v1/spaces", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert [s["name"] for s in response.get_json()] == ["Oak"]


def test_last_used_at_is_written_at_most_once_a_minute(clock, client, venue, alice):
    token_row, token = issue_api_token(alice, "script")
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}

    def last_used():
        db.session.expire_all()
        return db.session.get(ApiToken, token_row.id).last_used_at

    assert client.get("/api/v1/spaces", headers=headers).status_code == 200
    first = last_used()
    assert first == now_utc()
    clock.tick(30)
    client.get("/api/v1/spaces", headers=headers)
    assert last_used() == first
    clock.tick(31)
    client.get("/api/v1/spaces", headers=headers)
    assert last_used() == now_utc() != first


def test_api_sets_no_cookie_and_needs_no_csrf_token(app, api, monkeypatch, clock, venue, make_space, alice):
    room = make_space(venue)
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    response = api("POST", "/bookings", alice, json=booking_body([room.id]))
    assert response.status_code == 201, response.get_json()
    assert "Set-Cookie" not in response.headers


# ---------------------------------------------------------------------------------------------- spaces


def test_spaces_lists_active_spaces_with_their_dependencies(api, venue, make_space, alice):
    a = make_space(venue, "Board A", tags=["screen"])
    b = make_space(venue, "Board B")
    both = make_space(venue, "Board A+B", capacity=20, depends_on=[a, b])
    hidden = make_space(venue, "Closed")
    hidden.active = False
    db.session.commit()
    response = api("GET", "/spaces", alice)
    assert response.status_code == 200
    by_name = {s["name"]: s for s in response.get_json()}
    assert set(by_name) == {"Board A", "Board B", "Board A+B"}
    assert by_name["Board A"] == {
        "id": a.id,
        "name": "Board A",
        "kind": "room",
        "capacity": 6,
        "tags": ["screen"],
        "depends_on": [],
        "dependants": [both.id],
        "pair": None,
    }
    assert sorted(by_name["Board A+B"]["depends_on"]) == sorted([a.id, b.id])


def test_spaces_include_their_paired_room_and_pair_state(api, venue, make_space, alice):
    paired = make_space(venue, "Board A")
    make_space(venue, "Board B")
    db.session.add(Pair(venue_id=venue.id, space_id=paired.id, room_email="boarda@roomsync.test", room_id="r-1",
                        room_display_name="Board room A", state="running"))
    db.session.commit()
    by_name = {s["name"]: s for s in api("GET", "/spaces", alice).get_json()}
    assert by_name["Board A"]["pair"] == {"room_email": "boarda@roomsync.test", "state": "running"}
    assert by_name["Board B"]["pair"] is None


def test_spaces_without_a_venue_is_a_json_404(api, alice):
    assert_error(api("GET", "/spaces", alice), 404, "not_found")


# ---------------------------------------------------------------------------------------------- listing


def test_listing_gives_occurrences_in_the_venue_zone_once_per_booking(clock, api, venue, make_space, make_booking, alice, london_time):
    oak, elm = make_space(venue, "Oak"), make_space(venue, "Elm")
    both = make_booking(venue, [oak, elm], london_time(2026, 3, 3, 10, 0), 60, holder=alice, title="Offsite", attendees=["x@y.test"])
    make_booking(venue, elm, london_time(2026, 3, 4, 10, 0), 30, holder=alice, title="Elm only")
    make_booking(venue, oak, london_time(2026, 4, 2, 10, 0), 30, holder=alice, title="Outside the range")

    response = api("GET", "/bookings", alice, query_string=LIST_MARCH)
    assert response.status_code == 200
    items = response.get_json()
    assert [i["title"] for i in items] == ["Offsite", "Elm only"]
    first = items[0]
    assert first == {
        "id": both.id,
        "uid": both.uid,
        "occurrence_start": "2026-03-03T10:00:00+00:00",
        "start": "2026-03-03T10:00:00+00:00",
        "end": "2026-03-03T11:00:00+00:00",
        "title": "Offsite",
        "private": False,
        "kind": "regular",
        "holder": {"id": alice.id, "name": "Alice Archer", "email": "alice@roomsync.test"},
        "space_ids": [oak.id, elm.id],
        "attendees": ["x@y.test"],
        "series": False,
        "rrule": None,
        "origin": "roomsync",
    }

    only_oak = api("GET", "/bookings", alice, query_string={**LIST_MARCH, "space": oak.id}).get_json()
    assert [i["title"] for i in only_oak] == ["Offsite"]


def test_listing_refuses_bad_ranges_with_field_messages(api, venue, make_space, alice):
    room = make_space(venue)
    cases = [
        ({}, {"start", "end"}),
        ({"start": "2026-03-02T10:00:00", "end": "2026-03-03T10:00:00+00:00"}, {"start"}),
        ({"start": "2026-03-03T10:00:00+00:00", "end": "2026-03-02T10:00:00+00:00"}, {"end"}),
        ({"start": "2026-01-01T00:00:00+00:00", "end": "2027-01-03T00:00:00+00:00"}, {"end"}),
        ({"start": "0001-01-01T00:00:00+01:00", "end": "2026-01-01T00:00:00+00:00"}, {"start"}),
        ({"start": "2026-01-01T00:00:00+00:00", "end": "9999-12-31T23:59:59-01:00"}, {"end"}),
        ({**LIST_MARCH, "space": "abc"}, {"space"}),
        ({**LIST_MARCH, "space": str(room.id + 1000)}, {"space"}),
        ({**LIST_MARCH, "colour": "red"}, {"colour"}),
    ]
    for query, fields in cases:
        error = assert_error(api("GET", "/bookings", alice, query_string=query), 422, "validation_error")
        assert set(error["fields"]) == fields, (query, error)
    # A full year (366 days in a leap year) is allowed.
    ok = api("GET", "/bookings", alice, query_string={"start": "2028-01-01T00:00:00+00:00", "end": "2029-01-01T00:00:00+00:00"})
    assert ok.status_code == 200 and ok.get_json() == []


def test_private_booking_shows_its_title_to_its_holder_only(clock, api, venue, make_space, make_booking, alice, bob, admin, london_time):
    room = make_space(venue)
    secret = make_booking(
        venue, room, london_time(2026, 3, 3, 10, 0), holder=alice, title="Secret plan", private=True,
        description="Details", attendees=["carol@roomsync.test"],
    )
    for viewer in (bob, admin):  # the venue does not let admins see private titles
        listed = api("GET", "/bookings", viewer, query_string=LIST_MARCH).get_json()
        assert len(listed) == 1
        assert listed[0]["title"] is None and listed[0]["attendees"] == [] and listed[0]["private"] is True
        single = api("GET", f"/bookings/{secret.id}", viewer).get_json()
        assert single["title"] is None and single["description"] is None and single["attendees"] == []
        assert "Secret plan" not in api("GET", f"/bookings/{secret.id}", viewer).get_data(as_text=True)
    mine = api("GET", "/bookings", alice, query_string=LIST_MARCH).get_json()[0]
    assert mine["title"] == "Secret plan" and mine["attendees"] == ["carol@roomsync.test"]

    venue.admins_see_private = True
    db.session.commit()
    assert api("GET", f"/bookings/{secret.id}", admin).get_json()["title"] == "Secret plan"


def test_weekly_series_lists_each_occurrence_with_one_cancelled_and_one_moved(clock, api, venue, make_space, alice):
    room = make_space(venue)
    created = api("POST", "/bookings", alice, json=booking_body([room.id], title="Weekly", rrule="FREQ=WEEKLY;COUNT=4"))
    assert created.status_code == 201, created.get_json()
    series = created.get_json()
    assert series["series"] is True and series["rrule"] == "FREQ=WEEKLY;COUNT=4" and series["occurrences"] == 4

    cancelled = api(
        "DELETE", f"/bookings/{series['id']}", alice,
        query_string={"scope": "this", "occurrence_start": "2026-03-10T10:00:00+00:00"},
    )
    assert cancelled.status_code == 204 and cancelled.data == b""
    moved = api(
        "PATCH", f"/bookings/{series['id']}", alice,
        json={
            "scope": "this",
            "occurrence_start": "2026-03-17T10:00:00+00:00",
            "start": "2026-03-17T14:00:00+00:00",
            "end": "2026-03-17T15:00:00+00:00",
            "title": "Weekly (afternoon)",
        },
    )
    assert moved.status_code == 200, moved.get_json()

    items = api("GET", "/bookings", alice, query_string=LIST_MARCH).get_json()
    assert [(i["occurrence_start"], i["start"], i["title"]) for i in items] == [
        ("2026-03-03T10:00:00+00:00", "2026-03-03T10:00:00+00:00", "Weekly"),
        ("2026-03-17T10:00:00+00:00", "2026-03-17T14:00:00+00:00", "Weekly (afternoon)"),
        ("2026-03-24T10:00:00+00:00", "2026-03-24T10:00:00+00:00", "Weekly"),
    ]
    assert all(i["id"] == series["id"] and i["series"] for i in items)
    assert api("GET", f"/bookings/{series['id']}", alice).get_json()["occurrences"] == 3


def test_offsets_follow_the_london_dst_change(clock, api, venue, make_space, make_booking, alice, london_time):
    room = make_space(venue)
    make_booking(venue, room, london_time(2026, 3, 23, 10, 0), holder=alice, title="Weekly", rrule="FREQ=WEEKLY;COUNT=2")
    make_booking(venue, room, london_time(2026, 3, 28, 10, 0), holder=alice, title="Saturday")
    make_booking(venue, room, london_time(2026, 3, 29, 10, 0), holder=alice, title="Sunday")
    items = api("GET", "/bookings", alice, query_string={"start": "2026-03-23T00:00:00Z", "end": "2026-04-01T00:00:00+01:00"}).get_json()
    assert [(i["title"], i["start"], i["end"]) for i in items] == [
        ("Weekly", "2026-03-23T10:00:00+00:00", "2026-03-23T11:00:00+00:00"),
        ("Saturday", "2026-03-28T10:00:00+00:00", "2026-03-28T11:00:00+00:00"),
        ("Sunday", "2026-03-29T10:00:00+01:00", "2026-03-29T11:00:00+01:00"),
        ("Weekly", "2026-03-30T10:00:00+01:00", "2026-03-30T11:00:00+01:00"),
    ]


# ---------------------------------------------------------------------------------------------- create


def test_create_answers_201_with_the_booking_and_its_location(clock, api, venue, make_space, alice):
    oak, elm = make_space(venue, "Oak"), make_space(venue, "Elm")
    body = booking_body(
        [oak.id, elm.id], start="2026-03-03T10:00:00Z", end="2026-03-03T11:30:00+00:00",
        description="Quarterly", private=True, attendees=["Bob@Roomsync.test"],
    )
    response = api("POST", "/bookings", alice, json=body)
    assert response.status_code == 201, response.get_json()
    item = response.get_json()
    booking = db.session.get(Booking, item["id"])
    assert booking.holder_id == alice.id and booking.private and booking.title == "Planning"
    assert item["start"] == "2026-03-03T10:00:00+00:00" and item["end"] == "2026-03-03T11:30:00+00:00"
    assert item["space_ids"] == [oak.id, elm.id] and item["attendees"] == ["bob@roomsync.test"]
    assert item["occurrences"] == 1 and item["cancelled"] is False and item["description"] == "Quarterly"
    assert response.headers["Location"].endswith(f"/api/v1/bookings/{booking.id}")
    assert api("GET", response.headers["Location"].split("/api/v1")[1], alice).get_json() == item


def test_create_refusals_carry_field_messages(clock, api, venue, make_space, alice, bob, admin):
    room = make_space(venue)
    cases = [
        (booking_body([room.id], start="2026-03-03T10:05:00+00:00"), {"start"}),  # off the 15-minute grid
        (booking_body([room.id], start="2026-03-03T10:00:00"), {"start"}),  # naive
        (booking_body([room.id], end="2026-03-03T09:00:00+00:00"), {"end"}),
        (booking_body([room.id + 99]), {"space_ids"}),
        (booking_body([room.id], kind="internal"), {"kind"}),  # admins only
        (booking_body([room.id], holder_id=bob.id), {"holder_id"}),  # admins only
        (booking_body([room.id], rrule="FREQ=HOURLY;COUNT=2"), {"rrule"}),
        (booking_body([room.id], rrule="FREQ=DAILY;UNTIL=21001231"), {"rrule"}),  # more than 1,500 occurrences
        ({"space_ids": [room.id]}, {"start", "end", "title"}),
        ({**booking_body([room.id]), "colour": "red"}, {"colour"}),
    ]
    for body, fields in cases:
        error = assert_error(api("POST", "/bookings", alice, json=body), 422, "validation_error")
        assert set(error["fields"]) == fields, (body, error)
    assert db.session.scalar(select(Booking)) is None

    on_behalf = api("POST", "/bookings", admin, json=booking_body([room.id], holder_id=bob.id, kind="internal"))
    assert on_behalf.status_code == 201, on_behalf.get_json()
    assert on_behalf.get_json()["holder"]["id"] == bob.id and on_behalf.get_json()["kind"] == "internal"


def test_conflict_is_409_naming_the_other_booking_without_its_private_title(clock, api, venue, make_space, make_booking, alice, bob, london_time):
    a, b = make_space(venue, "Board A"), make_space(venue, "Board B")
    both = make_space(venue, "Board A+B", depends_on=[a, b])
    secret = make_booking(venue, a, london_time(2026, 3, 3, 10, 0), holder=alice, title="Secret plan", private=True)
    response = api("POST", "/bookings", bob, json=booking_body([both.id], start="2026-03-03T10:30:00+00:00", end="2026-03-03T11:30:00+00:00"))
    error = assert_error(response, 409, "conflict")
    assert error["conflicts"] == [
        {
            "booking_id": secret.id,
            "space_id": a.id,
            "space": "Board A",
            "start": "2026-03-03T10:00:00+00:00",
            "end": "2026-03-03T11:00:00+00:00",
        }
    ]
    assert "Secret plan" not in response.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------- single booking


def test_patch_changes_only_the_given_fields(clock, api, venue, make_space, make_booking, alice, london_time):
    room = make_space(venue)
    booking = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), holder=alice, title="Old", description="Keep me")
    response = api("PATCH", f"/bookings/{booking.id}", alice, json={"title": "New", "end": "2026-03-03T12:00:00+00:00"})
    assert response.status_code == 200, response.get_json()
    item = response.get_json()
    assert item["title"] == "New" and item["description"] == "Keep me"
    assert item["start"] == "2026-03-03T10:00:00+00:00" and item["end"] == "2026-03-03T12:00:00+00:00"

    error = assert_error(api("PATCH", f"/bookings/{booking.id}", alice, json={"end": "2026-03-03T09:00:00+00:00"}), 422, "validation_error")
    assert set(error["fields"]) == {"end"}
    error = assert_error(api("PATCH", f"/bookings/{booking.id}", alice, json={"scope": "this"}), 422, "validation_error")
    assert set(error["fields"]) == {"occurrence_start"}


def test_patch_following_splits_the_series(clock, api, venue, make_space, make_booking, alice, london_time):
    room = make_space(venue)
    series = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), holder=alice, title="Weekly", rrule="FREQ=WEEKLY;COUNT=4")
    response = api(
        "PATCH", f"/bookings/{series.id}", alice,
        json={"scope": "following", "occurrence_start": "2026-03-17T10:00:00+00:00", "title": "Renamed"},
    )
    assert response.status_code == 200, response.get_json()
    tail = response.get_json()
    assert tail["id"] != series.id and tail["title"] == "Renamed" and tail["occurrences"] == 2
    assert api("GET", f"/bookings/{series.id}", alice).get_json()["occurrences"] == 2


def test_only_the_holder_or_an_admin_may_change_a_booking(clock, api, venue, make_space, make_booking, alice, bob, admin, london_time):
    room = make_space(venue)
    booking = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), holder=alice)
    assert_error(api("PATCH", f"/bookings/{booking.id}", bob, json={"title": "Mine now"}), 403, "forbidden")
    assert_error(api("DELETE", f"/bookings/{booking.id}", bob), 403, "forbidden")
    assert api("GET", f"/bookings/{booking.id}", bob).status_code == 200
    assert api("PATCH", f"/bookings/{booking.id}", admin, json={"title": "Fixed"}).get_json()["title"] == "Fixed"


def test_delete_cancels_and_the_booking_stays_readable(clock, api, venue, make_space, make_booking, alice, london_time):
    room = make_space(venue)
    booking = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), holder=alice)
    assert api("DELETE", f"/bookings/{booking.id}", alice).status_code == 204
    item = api("GET", f"/bookings/{booking.id}", alice).get_json()
    assert item["cancelled"] is True and item["occurrences"] == 0
    assert api("GET", "/bookings", alice, query_string=LIST_MARCH).get_json() == []
    error = assert_error(api("DELETE", f"/bookings/{booking.id}", alice), 422, "validation_error")
    assert "booking" in error["fields"]
    assert_error(api("PATCH", f"/bookings/{booking.id}", alice, json={"title": "Back"}), 422, "validation_error")


def test_delete_of_an_occurrence_that_does_not_exist_is_404(clock, api, venue, make_space, make_booking, alice, london_time):
    room = make_space(venue)
    series = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), holder=alice, rrule="FREQ=WEEKLY;COUNT=2")
    query = {"scope": "this", "occurrence_start": "2026-03-04T10:00:00+00:00"}
    assert_error(api("DELETE", f"/bookings/{series.id}", alice, query_string=query), 404, "not_found")
    assert_error(api("DELETE", f"/bookings/{series.id}", alice, query_string={"scope": "this"}), 422, "validation_error")
    assert len([o for o in occurrence_times(series) if not o.cancelled]) == 2


# ---------------------------------------------------------------------------------------------- protocol errors


def test_unknown_ids_and_routes_are_json_404_and_wrong_methods_json_405(clock, api, venue, make_space, make_booking, alice, london_time):
    booking = make_booking(venue, make_space(venue), london_time(2026, 3, 3, 10, 0), holder=alice)
    for path in ("/bookings/0", f"/bookings/{booking.id + 1}", "/bookings/-1", "/bookings/abc", "/bookings/99999999999999999999", "/nothing", ""):
        for method in ("GET", "PATCH", "DELETE"):
            assert_error(api(method, path, alice, json={}), 404, "not_found")
    assert_error(api("GET", "/nothing"), 404, "not_found")  # no token needed to learn a route does not exist
    response = api("PUT", "/bookings", alice, json={})
    assert_error(response, 405, "method_not_allowed")
    assert {"GET", "POST"} <= set(response.headers["Allow"].replace(" ", "").split(","))
    assert_error(api("POST", f"/bookings/{booking.id}", alice, json={}), 405, "method_not_allowed")
    assert_error(api("DELETE", "/spaces", alice), 405, "method_not_allowed")


def test_a_booking_of_another_venue_is_not_found(clock, api, venue, make_venue, make_space, make_booking, alice, london_time):
    other = make_venue(name="Elsewhere")
    booking = make_booking(other, make_space(other), london_time(2026, 3, 3, 10, 0), holder=alice)
    assert_error(api("GET", f"/bookings/{booking.id}", alice), 404, "not_found")


def test_bodies_that_are_not_json_objects(clock, api, venue, make_space, alice):
    room = make_space(venue)
    assert_error(api("POST", "/bookings", alice, data="space_ids=1", content_type="application/x-www-form-urlencoded"), 415, "invalid_json")
    assert_error(api("POST", "/bookings", alice, data="{}", content_type="text/plain"), 415, "invalid_json")
    for raw in ("", "{", "[]", '"text"', "null", '{"space_ids": NaN}', "\ufeff{}"):
        assert_error(api("POST", "/bookings", alice, data=raw, content_type="application/json"), 400, "invalid_json")
    ok = api("POST", "/bookings", alice, json=booking_body([room.id]), headers={"Content-Type": "application/merge-patch+json"})
    assert ok.status_code == 201


def test_an_unexpected_error_inside_the_api_is_a_json_500(api, monkeypatch, venue, make_space, alice):
    make_space(venue)

    def broken(space, pair=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(schemas, "space_item", broken)
    error = assert_error(api("GET", "/spaces", alice), 500, "internal_error")
    assert "boom" not in error["message"]


def test_html_pages_keep_their_html_errors(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and not response.is_json

