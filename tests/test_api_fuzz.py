"""Garbage in, a 4xx JSON error out: tables of bad input for every endpoint of the JSON API, and a property
test that random JSON bodies and query strings never produce a 5xx."""

from __future__ import annotations

import json
from datetime import timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.auth.models import issue_api_token
from webapp.extensions import db

# A free slot (the series of `world` is on Tuesdays), so a value that slipped through would answer 201.
VALID = {"space_ids": None, "start": "2026-03-04T10:00:00+00:00", "end": "2026-03-04T11:00:00+00:00", "title": "Fuzz"}

SQLISH = "'; DROP TABLE bookings; --"
HUGE = 10**30
# Values that are wrong for every field they are tried in.
ANY_FIELD = [1.5, {"nested": {"deeper": [1, 2]}}, [[[]]], HUGE, -HUGE]
BAD_VALUES = {
    "space_ids": [None, "1", 1, True, [], ["1"], [True], [1.5], [HUGE], [-1], [0], [None], [99999], [SQLISH], list(range(1, 500))],
    "start": [None, 1, True, "", "tomorrow", "2026-03-04T10:00:00", "2026-03-04", "0001-01-01T00:00:00+01:00",
              "9999-12-31T23:59:59-01:00", "2026-13-01T10:00:00+00:00", "2026-03-04T10:00:00+25:00",
              "2026-03-04T10:00:00\x00+00:00", "2026-03-04T10:00:00x+00:00", "2026-W10-3T10:00+00:00",
              "2026-03-04T10:00:00+00:00:30", "\ud800", SQLISH, "2" * 10_000],
    "end": [None, 1, "2026-03-04T09:00:00+00:00", "2026-03-04T11:00:00", "9999-12-31T23:59:59+00:00", SQLISH],
    "title": [None, 7, True, [], ["a"], "x" * 256, "bad\x00title", "lone \ud800 surrogate"],
    "description": [None, 7, False, [], "x" * 10_001, "nul\x00"],
    "private": [None, "yes", 1, 0, [], "true"],
    "attendees": [None, "a@b.test", 1, [1], [None], [[]], ["not-an-email"], [SQLISH], ["a@b.test\x00"], {"a": "b"}],
    "rrule": [1, True, [], "garbage", "FREQ=SECONDLY;COUNT=2", "FREQ=DAILY", "FREQ=DAILY;UNTIL=99991231",
              "FREQ=DAILY;COUNT=100000", "FREQ=YEARLY;INTERVAL=99;COUNT=1500", "FREQ=DAILY;COUNT=1500", "FREQ=\x00"],
    "custom_fields": [None, [], "x", 1, {"unknown": "x"}, {"a": [1]}, {"a": {"b": 1}}, {"a\x00": "x"}],
    "kind": [None, 1, [], "internal", "unavailable", "galactic", SQLISH],
    "holder_id": ["1", 1.5, True, [], HUGE, -1, 0, 99999, SQLISH],
}
PATCH_ONLY_BAD = {
    "scope": [None, 1, "sometimes", ["all"], "this", "following"],
    "occurrence_start": [None, 1, "2026-03-03T10:00:00", "2026-03-04T10:00:00+00:00", "0001-01-01T00:00:00+01:00"],
}
GARBAGE_BODIES = [
    (b"", "application/json"),
    (b"not json", "application/json"),
    (b"{", "application/json"),
    (b"[]", "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b'"a string"', "application/json"),
    (b"null", "application/json"),
    (b"42", "application/json"),
    (b"true", "application/json"),
    (b'{"title": NaN}', "application/json"),
    (b'{"title": Infinity}', "application/json"),
    (b"\xff\xfe\x00{", "application/json"),
    ('{"title": "x"}'.encode("utf-16"), "application/json"),
    (b"[" * 100_000, "application/json"),
    (b'{"space_ids": [' + b"9" * 5000 + b"]}", "application/json"),
    (b'{"a": 1}', "text/plain"),
    (b"space_ids=1&start=x", "application/x-www-form-urlencoded"),
    (b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    (b'{"a": 1}', ""),
]
BAD_QUERIES = [
    {},
    {"start": "2026-03-01T00:00:00+00:00"},
    {"start": "2026-03-01T00:00:00", "end": "2026-03-02T00:00:00"},
    {"start": "2026-03-01T00:00:00 00:00", "end": "2026-03-02T00:00:00 00:00"},  # an unencoded + in a URL
    {"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
    {"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    {"start": "0001-01-01T00:00:00+01:00", "end": "0001-01-02T00:00:00+01:00"},
    {"start": "9999-12-30T00:00:00Z", "end": "9999-12-31T23:59:59-01:00"},
    {"start": SQLISH, "end": SQLISH},
    {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "space": "abc"},
    {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "space": "-1"},
    {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "space": str(HUGE)},
    {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "space": "99999"},
    {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "space": "１"},
    {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "space": "1 OR 1=1"},
    {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "unexpected": "1"},
    [("start", "2026-03-01T00:00:00Z"), ("start", "2026-03-01T00:00:00Z"), ("end", "2026-03-02T00:00:00Z")],
]
BAD_CANCEL_QUERIES = [
    {"scope": "sometimes"},
    {"scope": "this"},
    {"scope": "following", "occurrence_start": "2026-03-03T10:00:00"},
    {"scope": "this", "occurrence_start": "2026-03-04T10:00:00+00:00"},
    {"scope": "this", "occurrence_start": "0001-01-01T00:00:00+01:00"},
    {"occurrence_start": SQLISH},
    {"bogus": "1"},
]
BAD_IDS = ["0", "-1", "abc", "1.5", str(HUGE), "99999", "1%20OR%201=1", "%00", "💥"]


@pytest.fixture
def world(clock, make_venue, make_space, make_user, make_booking, london_time):
    """A venue with a room, a member with a token, and a weekly series of theirs."""
    venue = make_venue()
    room = make_space(venue)
    member = make_user("member@roomsync.test")
    series = make_booking(venue, room, london_time(2026, 3, 3, 10, 0), holder=member, title="Weekly", rrule="FREQ=WEEKLY;COUNT=3")
    _, token = issue_api_token(member, "fuzz")
    db.session.commit()
    return {"room": room, "series_id": series.id, "headers": {"Authorization": f"Bearer {token}"}}


def assert_client_error(response, context=None):
    assert 400 <= response.status_code < 500, (context, response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json, context
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and error["code"], context
    assert isinstance(error["message"], str) and error["message"], context
    assert isinstance(error["fields"], dict), context


def send_json(client, method, path, headers, body):
    # json.dumps keeps lone surrogates as \ud800 escapes, which is what a hostile client would send.
    return client.open(path, method=method, headers=headers, data=json.dumps(body), content_type="application/json")


def test_wrong_values_for_every_field_of_a_new_booking(client, world):
    valid = {**VALID, "space_ids": [world["room"].id]}
    for field, values in BAD_VALUES.items():
        for value in [*values, *ANY_FIELD]:
            response = send_json(client, "POST", "/api/v1/bookings", world["headers"], {**valid, field: value})
            assert_client_error(response, (field, value))
    for extra in ({"bogus": 1}, {"id": 5}, {"__proto__": {}}, {"": ""}, {SQLISH: SQLISH}):
        assert_client_error(send_json(client, "POST", "/api/v1/bookings", world["headers"], {**valid, **extra}), extra)
    # The baseline itself is fine: each refusal above came from the one bad value.
    assert send_json(client, "POST", "/api/v1/bookings", world["headers"], valid).status_code == 201


def test_wrong_values_for_every_field_of_a_patch(client, world):
    path = f"/api/v1/bookings/{world['series_id']}"
    for field, values in {**BAD_VALUES, **PATCH_ONLY_BAD}.items():
        for value in [*values, *ANY_FIELD]:
            assert_client_error(send_json(client, "PATCH", path, world["headers"], {field: value}), (field, value))
    # The series is untouched by all of that.
    listed = client.get(
        "/api/v1/bookings",
        headers=world["headers"],
        query_string={"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"},
    ).get_json()
    assert [(i["title"], i["start"]) for i in listed] == [
        ("Weekly", "2026-03-03T10:00:00+00:00"),
        ("Weekly", "2026-03-10T10:00:00+00:00"),
        ("Weekly", "2026-03-17T10:00:00+00:00"),
    ]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_garbage_bodies(client, world, method):
    path = "/api/v1/bookings" if method == "POST" else f"/api/v1/bookings/{world['series_id']}"
    for data, content_type in GARBAGE_BODIES:
        response = client.open(path, method=method, headers=world["headers"], data=data, content_type=content_type)
        assert_client_error(response, (data[:40], content_type))


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_10_mb_body_is_a_json_413(client, world, method):
    path = "/api/v1/bookings" if method == "POST" else f"/api/v1/bookings/{world['series_id']}"
    body = b'{"title": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    response = client.open(path, method=method, headers=world["headers"], data=body, content_type="application/json")
    assert response.status_code == 413
    assert_client_error(response)


def test_bad_listing_queries(client, world):
    for query in BAD_QUERIES:
        assert_client_error(client.get("/api/v1/bookings", headers=world["headers"], query_string=query), query)


def test_bad_cancel_queries_leave_the_series_alone(client, world):
    path = f"/api/v1/bookings/{world['series_id']}"
    for query in BAD_CANCEL_QUERIES:
        assert_client_error(client.delete(path, headers=world["headers"], query_string=query), query)
    assert client.get(path, headers=world["headers"]).get_json()["occurrences"] == 3


def test_bad_ids_on_every_booking_method(client, world):
    for booking_id in BAD_IDS:
        for method in ("GET", "PATCH", "DELETE"):
            response = client.open(f"/api/v1/bookings/{booking_id}", method=method, headers=world["headers"], json={})
            assert_client_error(response, (method, booking_id))
            assert response.status_code == 404


def test_garbage_credentials(client, world):
    for value in ("Bearer", "Bearer ", "bearer x", "Token abc", "Bearer " + "x" * 10_000, f"Bearer {SQLISH}", "Bearer rs_💥".encode().decode("latin-1")):
        for method, path in (("GET", "/api/v1/spaces"), ("GET", "/api/v1/bookings"), ("POST", "/api/v1/bookings"), ("DELETE", f"/api/v1/bookings/{world['series_id']}")):
            response = client.open(path, method=method, headers={"Authorization": value}, json={})
            assert response.status_code == 401
            assert_client_error(response, (value[:20], path))


def test_unknown_routes_and_methods(client, world):
    for method, path in (
        ("GET", "/api/v1/"),
        ("GET", "/api/v1/bookings/1/edit"),
        ("POST", "/api/v1/spaces"),
        ("PUT", f"/api/v1/bookings/{world['series_id']}"),
        ("GET", "/api/v1/" + "a/" * 500),
        ("GET", "/api/v1/%00"),
    ):
        assert_client_error(client.open(path, method=method, headers=world["headers"]), (method, path))


def test_a_repeat_rule_reaching_past_the_year_9999_is_a_422(clock, client, make_venue, make_space, make_user):
    venue = make_venue(timezone="America/New_York")  # behind UTC: 9999-12-31 20:00 local is in the year 10000 UTC
    room = make_space(venue)
    _, token = issue_api_token(make_user(), "fuzz")
    db.session.commit()
    body = {
        "space_ids": [room.id],
        "start": "2043-12-31T20:00:00-05:00",
        "end": "2043-12-31T21:00:00-05:00",
        "title": "Every 78 years",
        "rrule": "FREQ=YEARLY;INTERVAL=78;COUNT=103",
    }
    response = send_json(client, "POST", "/api/v1/bookings", {"Authorization": f"Bearer {token}"}, body)
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"rrule"}


# ---------------------------------------------------------------------------------------------- properties

ZONES = st.sampled_from([timezone.utc, ZoneInfo("Europe/London"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")])
DATETIME_TEXT = (
    st.datetimes(timezones=ZONES).map(lambda d: d.isoformat())
    | st.datetimes().map(lambda d: d.isoformat())
    | st.sampled_from(["2026-03-03T10:00:00+00:00", "2026-03-10T10:00:00+00:00", "2026-03-04T11:00:00Z"])
    | st.text(max_size=40)
)
RRULE_PARTS = ["FREQ=DAILY", "FREQ=WEEKLY", "FREQ=MONTHLY", "FREQ=YEARLY", "COUNT=3", "COUNT=1500", "UNTIL=20261231",
               "UNTIL=99991231", "UNTIL=00010101", "INTERVAL=99", "BYDAY=MO,TU", "BYDAY=-1FR", "BYMONTHDAY=31", "WKST=MO"]
RRULES = st.lists(st.sampled_from(RRULE_PARTS), max_size=4).map(";".join)
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12
)
FIELD_VALUES = JSON_VALUES | DATETIME_TEXT | RRULES | st.lists(st.integers(min_value=-2, max_value=5), max_size=3)
FIELD_NAMES = st.sampled_from([*VALID, *BAD_VALUES, *PATCH_ONLY_BAD])
BODIES = st.dictionaries(FIELD_NAMES | st.text(max_size=8), FIELD_VALUES, max_size=6) | JSON_VALUES
QUERIES = st.dictionaries(
    st.sampled_from(["space", "start", "end", "scope", "occurrence_start"]) | st.text(max_size=5),
    DATETIME_TEXT | st.integers().map(str) | st.sampled_from(["all", "this", "following"]),
    max_size=4,
)
PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis folder in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(body=BODIES, on_top_of_valid=st.booleans(), method=st.sampled_from(["POST", "PATCH"]))
def test_random_json_bodies_never_give_a_5xx(client, world, body, on_top_of_valid, method):
    path = "/api/v1/bookings" if method == "POST" else f"/api/v1/bookings/{world['series_id']}"
    if on_top_of_valid and isinstance(body, dict):  # get past the required fields to the deeper checks
        body = {**VALID, "space_ids": [world["room"].id], **body}
    response = send_json(client, method, path, world["headers"], body)
    assert response.status_code < 500, (body, response.get_data(as_text=True)[:300])
    assert response.is_json
    if response.status_code >= 400:
        assert_client_error(response, body)


@PROPERTY_SETTINGS
@given(query=QUERIES, method=st.sampled_from(["GET", "DELETE"]))
def test_random_query_strings_never_give_a_5xx(client, world, query, method):
    path = "/api/v1/bookings" if method == "GET" else f"/api/v1/bookings/{world['series_id']}"
    response = client.open(path, method=method, headers=world["headers"], query_string=query)
    assert response.status_code < 500, (query, response.get_data(as_text=True)[:300])
    if response.status_code >= 400:
        assert_client_error(response, query)
