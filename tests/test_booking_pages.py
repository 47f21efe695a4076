"""The staff booking pages through the Flask test client: day and week grids, the booking form (new, edit,
cancel, series scopes), privacy on every page, and bad input answered with 4xx and a message.

Time is frozen at Monday 2 March 2026, 09:00 in London (GMT, so UTC = London)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from webapp.booking.models import Booking, CustomField, Occurrence
from webapp.extensions import db

DAY = "2026-03-02"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def venue(make_venue):
    return make_venue()


@pytest.fixture
def rooms(venue, make_space):
    return [
        make_space(venue, "Orchid", tags=["video", "large"], capacity=10),
        make_space(venue, "Lotus", tags=["quiet"], capacity=4),
        make_space(venue, "Fern", tags=["video"], capacity=6),
    ]


@pytest.fixture
def ana(make_user):
    return make_user("ana@roomsync.test", first_name="Ana", last_name="Lee")


@pytest.fixture
def bo(make_user):
    return make_user("bo@roomsync.test", first_name="Bo", last_name="Kim")


def form(spaces, date=DAY, start="10:00", end="11:00", **extra):
    data = {"spaces": [str(s.id) for s in spaces], "date": date, "start_time": start, "end_time": end, "title": "Planning"}
    data.update(extra)
    return data


def text(response) -> str:
    return response.get_data(as_text=True)


def occurrences_of(booking_id):
    return list(db.session.scalars(select(Occurrence).where(Occurrence.booking_id == booking_id).order_by(Occurrence.start_utc)))


# ---------------------------------------------------------------------------------------------- day view


def test_day_view_shows_bookings_and_masks_private_titles(clock, client, login, rooms, venue, ana, bo, make_booking, london_time):
    make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, title="Quarterly review")
    make_booking(venue, rooms[1], london_time(2026, 3, 2, 14, 0), 90, holder=ana, title="Salary talk", private=True)

    login(bo)
    html = text(client.get("/", query_string={"date": DAY}))
    assert "Monday 2 March 2026" in html
    assert "Quarterly review" in html and "10:00–11:00" in html and "Ana Lee" in html
    assert "Salary talk" not in html
    assert "Private booking" in html and "14:00–15:30" in html
    for room in rooms:
        assert room.name in html

    client.post("/logout")
    login(ana)
    html = text(client.get("/"))  # today by default
    assert "Salary talk" in html and "Private booking" not in html
    assert 'class="b regular private mine"' in html


def test_day_view_slots_are_bookable_links_only_when_free_and_not_past(clock, client, login, rooms, venue, ana, make_booking, london_time):
    make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana)
    login(ana)
    html = text(client.get("/"))
    orchid = rooms[0].id
    assert f"/bookings/new?space={orchid}&amp;start=2026-03-02T11:00:00Z" in html
    assert f"/bookings/new?space={orchid}&amp;start=2026-03-02T09:00:00Z" in html  # the slot in progress
    assert f"space={orchid}&amp;start=2026-03-02T10:00:00Z" not in html  # taken
    assert f"space={orchid}&amp;start=2026-03-02T10:45:00Z" not in html
    assert f"space={orchid}&amp;start=2026-03-02T08:00:00Z" not in html  # past
    assert f'aria-label="Book {rooms[1].name} at 11:15"' in html
    assert 'class="now now-all"' in html  # today: the current-time line


def test_day_view_of_a_closed_day_falls_back_to_daytime_hours_without_slots(clock, client, login, make_venue, make_space, ana):
    weekdays_only = {d: ["08:00", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    venue = make_venue(opening_hours=weekdays_only)
    make_space(venue, "Orchid")
    login(ana)
    html = text(client.get("/", query_string={"date": "2026-03-07"}))  # a Saturday
    assert "is closed on Saturdays" in html
    assert "/bookings/new?space=" not in html
    assert ">07:00<" in html and ">19:00<" in html and ">20:00<" not in html


def test_day_view_widens_the_hours_to_show_a_booking_outside_them(clock, client, login, venue, rooms, ana, make_booking, london_time):
    make_booking(venue, rooms[0], london_time(2026, 3, 3, 5, 0), holder=ana, title="Early call", bypass_rules=True)
    login(ana)
    html = text(client.get("/", query_string={"date": "2026-03-03"}))
    assert "Early call" in html and ">05:00<" in html


def test_day_view_on_the_spring_dst_change_uses_wall_clock_rows(clock, client, login, venue, rooms, ana, make_booking, london_time):
    make_booking(venue, rooms[0], london_time(2026, 3, 29, 10, 0), holder=ana, title="After the change")
    login(ana)
    html = text(client.get("/", query_string={"date": "2026-03-29"}))
    assert "After the change" in html and "10:00–11:00" in html
    # 11:00 in London is 10:00 UTC from that day on (BST).
    assert f"space={rooms[0].id}&amp;start=2026-03-29T10:00:00Z" in html
    assert f'aria-label="Book {rooms[0].name} at 11:00"' in html
    week = text(client.get(f"/spaces/{rooms[0].id}/week", query_string={"date": "2026-03-29"}))
    assert "After the change" in week and "start=2026-03-28T11:00:00Z" in week  # Saturday 11:00 is still GMT


def test_day_view_filters_spaces_by_tag(clock, client, login, rooms, ana):
    login(ana)
    html = text(client.get("/", query_string={"date": DAY, "tag": "video"}))
    heads = re.findall(r'class="col-head[^"]*"><a [^>]*>([^<]+)</a>', html)
    assert heads == ["Orchid", "Fern"]
    for chip in ("All spaces", "video", "quiet", "large"):
        assert f">{chip}</a>" in html
    assert 'aria-current="true">video</a>' in html
    assert "No space has the tag" in text(client.get("/", query_string={"tag": "nope"}))


def test_a_shared_space_shows_as_in_use(clock, client, login, venue, make_space, ana, make_booking, london_time):
    board_a = make_space(venue, "Board A")
    board_b = make_space(venue, "Board B")
    both = make_space(venue, "Board A+B", depends_on=[board_a, board_b])
    make_booking(venue, both, london_time(2026, 3, 2, 13, 0), holder=ana, title="All hands")
    login(ana)
    html = text(client.get("/", query_string={"date": DAY}))
    assert html.count("In use: Board A+B") == 2
    assert f"space={board_a.id}&amp;start=2026-03-02T13:00:00Z" not in html
    assert f"space={board_a.id}&amp;start=2026-03-02T14:00:00Z" in html


def test_shared_spaces_follow_what_each_booking_occupies():
    from webapp.booking.operations import DependencyGraph

    # 3 = "A+B" depends on 1 and 2; 4 = "A+B+C" depends on 3 and on 5 (C); 7 = "A+D" depends on 1 and 6.
    related = DependencyGraph([(3, 1), (3, 2), (4, 3), (4, 5)]).blockers()
    assert related[1] == {3, 4}  # A is blocked by A+B and A+B+C, never by B
    assert related[3] == {1, 2, 4}
    assert related[4] == {1, 2, 3, 5}
    assert related[5] == {4}
    assert 6 not in related
    # Two combined rooms that share a room block each other.
    shared = DependencyGraph([(3, 1), (3, 2), (7, 1), (7, 6)]).blockers()
    assert 7 in shared[3] and 3 in shared[7] and 6 not in shared[2]


def test_grid_fragment_for_htmx_refresh(clock, client, login, rooms, ana):
    login(ana)
    response = client.get("/", query_string={"date": DAY}, headers={**HTMX, "HX-Target": "booking-grid"})
    html = text(response)
    assert response.status_code == 200
    assert html.startswith('<div id="booking-grid"') and "<html" not in html
    assert 'hx-trigger="booking-changed from:body, every 60s"' in html


@pytest.mark.parametrize("bad", ["yesterday", "2026-02-30", "2026-13-01", "0001-01-01", "99999-01-01"])
def test_day_view_refuses_bad_dates_with_a_message(clock, client, login, rooms, ana, bad):
    login(ana)
    response = client.get("/", query_string={"date": bad})
    assert response.status_code == 400
    assert "YYYY-MM-DD" in text(response) or "out of the range" in text(response)


def test_week_view_shows_one_space_across_the_week(clock, client, login, rooms, venue, ana, bo, make_booking, london_time):
    make_booking(venue, rooms[1], london_time(2026, 3, 3, 9, 0), holder=ana, title="Tuesday sync")
    make_booking(venue, rooms[1], london_time(2026, 3, 6, 15, 0), holder=bo, title="Friday secret", private=True)
    make_booking(venue, rooms[0], london_time(2026, 3, 4, 9, 0), holder=ana, title="Elsewhere")
    login(ana)
    response = client.get(f"/spaces/{rooms[1].id}/week", query_string={"date": "2026-03-05"})
    html = text(response)
    assert response.status_code == 200
    assert "Lotus" in html and "week of 2 March 2026" in html
    assert "Tuesday sync" in html and "Private booking" in html
    assert "Friday secret" not in html and "Elsewhere" not in html
    assert [f"{d} Mar" for d in range(2, 9)] == re.findall(r"<small>(\d Mar)</small>", html)
    assert f"/spaces/{rooms[1].id}/week?date=2026-02-23" in html  # previous week


def test_week_view_of_unknown_space_is_404(clock, client, login, rooms, ana):
    login(ana)
    assert client.get("/spaces/9999/week").status_code == 404
    assert client.get("/spaces/abc/week").status_code == 404
    assert client.get("/spaces/99999999999999999999/week").status_code == 404
    assert client.get(f"/spaces/{rooms[0].id}/week", query_string={"date": "soon"}).status_code == 400


# ---------------------------------------------------------------------------------------------- the form


def test_new_booking_form_is_prefilled_from_the_slot(clock, client, login, rooms, ana):
    login(ana)
    response = client.get("/bookings/new", query_string={"space": rooms[1].id, "start": "2026-03-02T10:30:00Z"}, headers=HTMX)
    html = text(response)
    assert response.status_code == 200
    assert "<html" not in html and 'hx-post="/bookings"' in html
    assert f'<option selected value="{rooms[1].id}">Lotus</option>' in html
    assert 'value="2026-03-02"' in html
    assert '<option selected value="10:30">' in html
    assert re.search(r'name="end_time".*?<option selected value="11:30">', html, re.S)
    assert 'name="kind"' not in html and 'name="holder"' not in html  # admins only

    page = client.get("/bookings/new", query_string={"space": rooms[1].id, "start": "2026-03-02T10:30:00Z"})
    assert "<html" in text(page) and "hx-post" not in text(page)


def test_admins_get_kind_and_holder(clock, client, login, rooms, make_user):
    login(make_user(role="admin"))
    html = text(client.get("/bookings/new"))
    assert 'name="kind"' in html and 'name="holder"' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"space": "abc"}, "not a valid space id"),
        ({"space": "-1"}, "not a valid space id"),
        ({"space": "99999999999999999999"}, "not a valid space id"),
        ({"space": "9999"}, "no bookable space with id 9999"),
        ({"start": "tomorrow"}, "not a valid start"),
        ({"start": "2026-03-02T10:00"}, "not a valid start"),  # no offset
        ({"start": "9999-12-31T23:00:00Z"}, "out of the range"),
        ({"start": "0001-01-01T00:00:00+05:00"}, "not a valid start"),
        ({"space": "²"}, "not a valid space id"),
    ],
)
def test_new_booking_refuses_garbage(clock, client, login, rooms, ana, query, message):
    login(ana)
    response = client.get("/bookings/new", query_string=query)
    assert response.status_code == 400
    assert message in text(response)


def test_create_booking_redirects_with_a_flash(clock, client, login, rooms, ana, london_time):
    login(ana)
    response = client.post("/bookings", data=form([rooms[0]], title="Design review", attendees="li@example.org\nmo@example.org"))
    assert response.status_code == 303
    assert response.headers["Location"] == f"/?date={DAY}"
    booking = db.session.scalars(select(Booking)).one()
    assert (booking.title, booking.holder_id) == ("Design review", ana.id)
    assert (booking.start_utc, booking.end_utc) == (london_time(2026, 3, 2, 10, 0), london_time(2026, 3, 2, 11, 0))
    assert booking.attendees == ["li@example.org", "mo@example.org"]
    assert "Booked Orchid, Mon 02 Mar 10:00–11:00." in text(client.get(response.headers["Location"]))


def test_create_booking_from_the_dialog_closes_it_through_an_event(clock, client, login, rooms, ana):
    login(ana)
    response = client.post("/bookings", data=form(rooms[:2], start="16:00", end="17:30", private="y"), headers=HTMX)
    assert response.status_code == 204
    assert '"booking-changed"' in response.headers["HX-Trigger"]
    assert "Booked Orchid, Lotus, Mon 02 Mar 16:00" in response.headers["HX-Trigger"]
    booking = db.session.scalars(select(Booking)).one()
    assert booking.private and [s.name for s in booking.spaces] == ["Orchid", "Lotus"]


def test_a_booking_can_end_at_midnight_in_a_venue_open_until_then(clock, client, login, make_venue, make_space, ana, london_time):
    venue = make_venue(opening_hours={d: ["00:00", "24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
    late = make_space(venue, "Night desk", kind="desk")
    login(ana)
    html = text(client.get("/bookings/new"))
    assert '<option value="00:00">' in html and '<option value="24:00">' in html
    response = client.post("/bookings", data=form([late], start="22:00", end="24:00"))
    assert response.status_code == 303, text(response)
    booking = db.session.scalars(select(Booking)).one()
    assert booking.end_utc == london_time(2026, 3, 3, 0, 0)


def test_validation_error_re_renders_the_form_with_typed_values(clock, client, login, rooms, ana):
    login(ana)
    response = client.post(
        "/bookings", data=form([rooms[0]], start="11:00", end="10:00", title="Kept title", description="Kept text"), headers=HTMX
    )
    html = text(response)
    assert response.status_code == 422
    assert 'id="booking-form"' in html and "<html" not in html
    assert "The end must be after the start." in html
    assert 'value="Kept title"' in html and "Kept text" in html
    assert '<option selected value="11:00">' in html
    assert db.session.scalars(select(Booking)).first() is None


def test_venue_rule_errors_land_next_to_their_field(clock, client, login, rooms, ana):
    login(ana)
    response = client.post("/bookings", data=form([rooms[0]], date="2026-03-01"))
    assert response.status_code == 422
    assert re.search(r'id="start_time-error">[^<]*is in the past', text(response))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"spaces": "abc"}, "could not be coerced"),
        ({"spaces": "9999"}, "is not a valid choice"),
        ({"spaces": []}, "Choose at least one space."),
        ({"date": "2026-02-30"}, "Not a valid date value"),
        ({"date": "9999-12-31"}, "Choose a date between 1971 and 9998."),
        ({"date": ""}, "Enter a date."),
        ({"start_time": "25:99"}, "Not a valid choice"),
        ({"end_time": "<script>"}, "Not a valid choice"),
        ({"repeat": "HOURLY"}, "Not a valid choice"),
        ({"repeat": "DAILY", "ends": "count", "count": "lots"}, "Not a valid integer value"),
        ({"repeat": "DAILY", "ends": "until", "until": ""}, "Enter the last date."),
        ({"repeat": "DAILY", "ends": "until", "until": "2026-03-01"}, "on or after the first one"),
        ({"repeat": "MONTHLY", "monthly_by": "last", "count": "3"}, "is not the last Monday"),
        ({"attendees": "not-an-email"}, "is not an email address"),
        ({"title": "x" * 300}, "Field cannot be longer than 255 characters."),
    ],
)
def test_garbage_input_is_a_422_with_a_message_never_a_500(clock, client, login, rooms, ana, data, message):
    login(ana)
    response = client.post("/bookings", data={**form([rooms[0]]), **data})
    assert response.status_code == 422
    assert message in text(response)
    assert db.session.scalars(select(Booking)).first() is None


def test_typed_values_are_escaped_when_re_rendered(clock, client, login, rooms, ana):
    login(ana)
    response = client.post("/bookings", data=form([rooms[0]], title="<script>alert(1)</script>", end="09:00"))
    assert response.status_code == 422
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in text(response)
    assert "<script>alert(1)" not in text(response)


def test_conflict_is_a_409_listing_the_clash_with_masked_titles(clock, client, login, rooms, venue, ana, bo, make_booking, london_time):
    make_booking(venue, rooms[0], london_time(2026, 3, 4, 10, 30), holder=bo, title="Board secret", private=True)
    login(ana)
    response = client.post(
        "/bookings",
        data=form([rooms[0]], start="10:00", end="11:00", title="Daily standup", repeat="DAILY", ends="count", count="5"),
        headers=HTMX,
    )
    html = text(response)
    assert response.status_code == 409
    assert "Orchid is already booked" in html
    assert "Wed 04 Mar 2026" in html and "10:30–11:30" in html
    assert "Private booking" in html and "Board secret" not in html
    assert 'value="Daily standup"' in html  # what was typed stays
    assert len(db.session.scalars(select(Booking)).all()) == 1


def test_series_rules_are_built_from_the_repeat_section(clock, client, login, rooms, ana):
    login(ana)
    cases = [
        ({"repeat": "WEEKLY", "interval": "2", "weekdays": ["MO", "WE"], "ends": "count", "count": "4"}, "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=4"),
        ({"repeat": "MONTHLY", "monthly_by": "weekday", "ends": "until", "until": "2026-12-31"}, "FREQ=MONTHLY;BYDAY=1MO;UNTIL=20261231"),
        ({"repeat": "MONTHLY", "monthly_by": "monthday", "ends": "count", "count": "3"}, "FREQ=MONTHLY;COUNT=3"),
        ({"repeat": "DAILY", "ends": "count", "count": "3"}, "FREQ=DAILY;COUNT=3"),
    ]
    for hour, (fields, expected) in zip(range(10, 20, 2), cases):
        response = client.post("/bookings", data=form([rooms[1]], start=f"{hour}:00", end=f"{hour}:30", **fields))
        assert response.status_code == 303, text(response)
    assert sorted(b.rrule for b in db.session.scalars(select(Booking))) == sorted(expected for _, expected in cases)


def test_custom_fields_are_asked_and_checked(clock, client, login, rooms, venue, ana):
    venue.custom_fields.append(CustomField(key="cost_centre", label="Cost centre", kind="choice", choices=["Sales", "R&D"], required=True))
    venue.custom_fields.append(CustomField(key="catering", label="Catering", kind="text"))
    db.session.commit()
    login(ana)
    html = text(client.get("/bookings/new"))
    assert 'name="cf_cost_centre"' in html and "R&amp;D" in html and 'name="cf_catering"' in html

    missing = client.post("/bookings", data=form([rooms[0]]))
    assert missing.status_code == 422
    assert re.search(r'id="cf_cost_centre-error">[^<]*Cost centre is required', text(missing))

    done = client.post("/bookings", data=form([rooms[0]], cf_cost_centre="R&D", cf_catering="Tea for 6"))
    assert done.status_code == 303
    assert db.session.scalars(select(Booking)).one().custom_fields == {"cost_centre": "R&D", "catering": "Tea for 6"}


def test_admin_books_for_someone_else(clock, client, login, rooms, ana, make_user):
    login(make_user(role="admin"))
    unknown = client.post("/bookings", data=form([rooms[0]], holder="ghost@roomsync.test", kind="regular"))
    assert unknown.status_code == 422 and "No active user has that email address." in text(unknown)
    done = client.post("/bookings", data=form([rooms[0]], holder="ANA@roomsync.test", kind="internal"))
    assert done.status_code == 303
    booking = db.session.scalars(select(Booking)).one()
    assert (booking.holder_id, booking.kind) == (ana.id, "internal")


# ---------------------------------------------------------------------------------------------- one booking


def test_detail_is_read_only_and_masked_for_others(clock, client, login, rooms, venue, ana, bo, make_booking, london_time):
    booking = make_booking(
        venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, title="Offsite plan", private=True,
        description="Budget numbers", attendees=["li@example.org"],
    )
    login(bo)
    html = text(client.get(f"/bookings/{booking.id}"))
    assert "Private booking" in html and "Ana Lee" in html and "Orchid" in html
    assert "Offsite plan" not in html and "Budget numbers" not in html and "li@example.org" not in html
    assert "/edit" not in html and "/cancel" not in html
    assert client.get(f"/bookings/{booking.id}/edit").status_code == 403
    assert client.post(f"/bookings/{booking.id}/edit", data=form([rooms[0]])).status_code == 403
    assert client.post(f"/bookings/{booking.id}/cancel").status_code == 403
    assert occurrences_of(booking.id)

    client.post("/logout")
    login(ana)
    html = text(client.get(f"/bookings/{booking.id}", headers=HTMX))
    assert "<html" not in html
    assert "Offsite plan" in html and "Budget numbers" in html and "li@example.org" in html
    assert f'hx-get="/bookings/{booking.id}/edit' in html


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/bookings/9999", 404),
        ("get", "/bookings/9999/edit", 404),
        ("post", "/bookings/9999/edit", 404),
        ("post", "/bookings/9999/cancel", 404),
        ("get", "/bookings/abc", 404),
        ("get", "/bookings/99999999999999999999", 404),
        ("get", "/bookings/1/cancel", 405),
    ],
)
def test_unknown_bookings_are_404_never_500(clock, client, login, rooms, ana, method, path, status):
    login(ana)
    assert getattr(client, method)(path).status_code == status


def test_occurrence_parameter_is_checked(clock, client, login, rooms, venue, ana, make_booking, london_time):
    booking = make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, rrule="FREQ=DAILY;COUNT=3")
    login(ana)
    assert client.get(f"/bookings/{booking.id}", query_string={"occurrence": "2026-03-03T10:00:00Z"}).status_code == 200
    assert client.get(f"/bookings/{booking.id}", query_string={"occurrence": "2026-03-09T10:00:00Z"}).status_code == 404
    assert client.get(f"/bookings/{booking.id}", query_string={"occurrence": "someday"}).status_code == 400


def test_edit_a_single_booking(clock, client, login, rooms, venue, ana, make_booking, london_time):
    booking = make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, title="Old title")
    login(ana)
    html = text(client.get(f"/bookings/{booking.id}/edit"))
    assert 'value="Old title"' in html and '<option selected value="10:00">' in html and 'name="scope"' not in html
    response = client.post(f"/bookings/{booking.id}/edit", data=form([rooms[1]], start="15:00", end="16:30", title="New title"))
    assert response.status_code == 303
    db.session.refresh(booking)
    assert (booking.title, [s.name for s in booking.spaces]) == ("New title", ["Lotus"])
    assert booking.start_utc == london_time(2026, 3, 2, 15, 0) and booking.end_utc == london_time(2026, 3, 2, 16, 30)


def test_edit_series_with_each_scope(clock, client, login, rooms, venue, ana, make_booking, london_time):
    series = make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, title="Standup", rrule="FREQ=DAILY;COUNT=5")
    login(ana)
    third = "2026-03-04T10:00:00Z"
    html = text(client.get(f"/bookings/{series.id}/edit", query_string={"occurrence": third}, headers=HTMX))
    assert 'name="scope"' in html and f'value="{third}"' in html and 'value="2026-03-04"' in html
    assert '<option selected value="DAILY">' in html

    # "this": move only the third one; the unchanged repeat section must not count as a change of pattern.
    fields = form([rooms[0]], date="2026-03-04", start="14:00", end="15:00", title="Standup", repeat="DAILY", ends="count", count="5")
    response = client.post(f"/bookings/{series.id}/edit", data={**fields, "scope": "this", "occurrence": third}, headers=HTMX)
    assert response.status_code == 204, text(response)
    starts = [o.start_utc for o in occurrences_of(series.id)]
    assert london_time(2026, 3, 4, 14, 0) in starts and london_time(2026, 3, 4, 10, 0) not in starts

    # "this" cannot change what belongs to the series: the message sits next to the field.
    refused = client.post(
        f"/bookings/{series.id}/edit",
        data={**fields, "spaces": str(rooms[1].id), "scope": "this", "occurrence": third},
        headers=HTMX,
    )
    assert refused.status_code == 422
    assert "applies to a whole series" in text(refused)

    # "following": from the fourth on, a new series with a new title.
    fourth = "2026-03-05T10:00:00Z"
    fields = form([rooms[0]], date="2026-03-05", start="10:00", end="11:00", title="Standup v2", repeat="DAILY", ends="count", count="5")
    response = client.post(f"/bookings/{series.id}/edit", data={**fields, "scope": "following", "occurrence": fourth})
    assert response.status_code == 303
    newer = db.session.scalars(select(Booking).where(Booking.id != series.id)).one()
    assert newer.title == "Standup v2" and len(occurrences_of(newer.id)) == 2
    assert len(occurrences_of(series.id)) == 3

    # "all": rename the remaining first part.
    fields = form([rooms[0]], date="2026-03-02", start="10:00", end="11:00", title="Morning standup", repeat="DAILY", ends="until", until="2026-03-04")
    response = client.post(f"/bookings/{series.id}/edit", data={**fields, "scope": "all", "occurrence": "2026-03-02T10:00:00Z"})
    assert response.status_code == 303, text(response)
    db.session.refresh(series)
    assert series.title == "Morning standup"


def test_cancel_series_with_each_scope(clock, client, login, rooms, venue, ana, make_booking, london_time):
    series = make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, title="Standup", rrule="FREQ=DAILY;COUNT=5")
    login(ana)
    detail = text(client.get(f"/bookings/{series.id}", query_string={"occurrence": "2026-03-03T10:00:00Z"}))
    assert 'name="scope" value="this" checked' in detail and "Every day, 5 times" in detail

    response = client.post(f"/bookings/{series.id}/cancel", query_string={"occurrence": "2026-03-03T10:00:00Z"}, data={"scope": "this"}, headers=HTMX)
    assert response.status_code == 204 and "That occurrence is cancelled." in response.headers["HX-Trigger"]
    assert "Standup" not in text(client.get("/", query_string={"date": "2026-03-03"}))
    assert "Standup" in text(client.get("/", query_string={"date": "2026-03-04"}))

    response = client.post(f"/bookings/{series.id}/cancel", query_string={"occurrence": "2026-03-05T10:00:00Z"}, data={"scope": "following"})
    assert response.status_code == 303 and response.headers["Location"] == "/?date=2026-03-05"
    assert [o.start_utc.day for o in occurrences_of(series.id)] == [2, 4]

    response = client.post(
        f"/bookings/{series.id}/cancel",
        query_string={"occurrence": "2026-03-02T10:00:00Z"},
        data={"scope": "all", "next": "/bookings/mine"},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/bookings/mine"
    assert occurrences_of(series.id) == []
    gone = text(client.get(f"/bookings/{series.id}"))
    assert "This booking is cancelled." in gone and "/cancel" not in gone
    assert client.get(f"/bookings/{series.id}/edit").status_code == 409


def test_bad_scope_is_a_422(clock, client, login, rooms, venue, ana, make_booking, london_time):
    series = make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, rrule="FREQ=DAILY;COUNT=2")
    login(ana)
    response = client.post(f"/bookings/{series.id}/cancel", query_string={"occurrence": "2026-03-03T10:00:00Z"}, data={"scope": "everything"})
    assert response.status_code == 422
    assert "Scope must be" in text(response)
    assert len(occurrences_of(series.id)) == 2


def test_admin_can_edit_and_cancel_anyones_booking(clock, client, login, rooms, venue, ana, make_user, make_booking, london_time):
    booking = make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, title="Ana's")
    login(make_user(role="admin"))
    html = text(client.get(f"/bookings/{booking.id}/edit"))
    assert 'value="ana@roomsync.test"' in html
    assert client.post(f"/bookings/{booking.id}/cancel").status_code == 303
    assert occurrences_of(booking.id) == []


# ---------------------------------------------------------------------------------------------- my bookings


def test_my_bookings_lists_what_i_hold_or_attend(clock, client, login, rooms, venue, ana, bo, make_booking, london_time):
    make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, title="Mine upcoming")
    make_booking(venue, rooms[1], london_time(2026, 3, 3, 11, 0), holder=bo, title="Bo invites Ana", attendees=["ana@roomsync.test"])
    make_booking(venue, rooms[2], london_time(2026, 3, 3, 12, 0), holder=bo, title="Bo private", private=True, attendees=["ana@roomsync.test"])
    make_booking(venue, rooms[2], london_time(2026, 3, 4, 12, 0), holder=bo, title="Not mine", attendees=["anna@roomsync.test"])
    make_booking(venue, rooms[0], london_time(2026, 3, 2, 14, 0), holder=ana, title="Weekly", rrule="FREQ=WEEKLY;COUNT=3")
    clock.move_to("2026-03-02T12:00:00Z")
    past_one = london_time(2026, 3, 2, 10, 0)  # ended at 11:00, before "now"

    login(ana)
    html = text(client.get("/bookings/mine"))
    assert "Bo invites Ana" in html and "Attending · Bo Kim" in html
    assert "Private booking" in html and "Bo private" not in html  # attendees do not see private titles
    assert "Not mine" not in html and "Mine upcoming" not in html
    assert html.count(">Weekly<") == 3
    assert "Monday 9 March 2026" in html
    assert "/edit?occurrence=2026-03-09T14:00:00Z" in html and "#cancel" in html

    past = text(client.get("/bookings/mine", query_string={"past": "1"}))
    assert "Mine upcoming" in past and "Bo invites Ana" not in past
    assert past_one.strftime("%H:%M") in past


def test_my_bookings_when_empty(clock, client, login, rooms, ana):
    login(ana)
    assert "Nothing booked yet." in text(client.get("/bookings/mine"))


def test_pages_keep_the_user_on_the_same_day_after_a_change(clock, client, login, rooms, venue, ana, make_booking, london_time):
    booking = make_booking(venue, rooms[0], london_time(2026, 3, 5, 10, 0), holder=ana)
    login(ana)
    response = client.post(f"/bookings/{booking.id}/cancel")
    assert response.headers["Location"] == "/?date=2026-03-05"
    assert response.status_code == 303
    assert "The booking is cancelled." in text(client.get(response.headers["Location"]))


# ---------------------------------------------------------------------------------------------- holders' avatars

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture
def photos(venue):
    """Integration settings for the venue (photo sync on) and a setter for the photos people have."""
    from webapp.integration.models import IntegrationSettings, UserPhoto

    settings = IntegrationSettings(venue_id=venue.id, butler_email="butler@roomsync.test", enabled=True, sync_photos=True)
    db.session.add(settings)
    db.session.commit()

    def give(*users, data=PNG):
        for user in users:
            db.session.merge(UserPhoto(user_id=user.id, content_type="image/png", data=data, etag=f"e{user.id}"))
        db.session.commit()

    give.settings = settings
    return give


def avatar_of(html: str, initials: str) -> str:
    """The avatar markup that shows `initials` (it ends with the closing tag of the avatar span)."""
    match = re.search(rf'<span class="avatar"[^>]*><span class="avatar-initials">{initials}</span>(<img [^>]*>)?</span>', html)
    assert match, f"no avatar with initials {initials}"
    return match.group(0)


def test_holders_show_their_photo_when_synced_and_initials_otherwise(
    clock, client, login, rooms, venue, ana, bo, photos, make_booking, make_space, london_time
):
    photos(ana)  # Bo has none (or the sync recorded "no photo": a row without bytes)
    photos(bo, data=None)
    board = make_space(venue, "Board", depends_on=[rooms[2]])
    mine = make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana, title="Review")
    theirs = make_booking(venue, rooms[1], london_time(2026, 3, 2, 14, 0), holder=bo, title="Secret", private=True,
                          attendees=["ana@roomsync.test"])
    make_booking(venue, board, london_time(2026, 3, 2, 16, 0), holder=bo, title="Board meeting")
    photo = f'<img src="/people/{ana.id}/photo" alt="" loading="lazy"'

    login(ana)
    html = text(client.get("/", query_string={"date": DAY}))
    # Day view: a small avatar next to the holder's name, the private booking's holder as before (title masked).
    assert photo in avatar_of(html, "AL") and '--avatar-size: 1.25rem' in avatar_of(html, "AL")
    assert re.search(r'<span class="who"><span class="avatar"[^>]*><span class="avatar-initials">AL</span><img [^>]*></span>Ana Lee</span>', html)
    assert "<img" not in avatar_of(html, "BK") and "Private booking" in html and "Secret" not in html
    assert html.count('class="avatar"') == 3  # Review, Secret, Board meeting; the "in use" block shows no one
    assert "In use: Board" in html
    assert f"/people/{bo.id}/photo" not in html

    # A booking's page, in the dialog and as a page.
    for headers in ({}, HTMX):
        assert photo in avatar_of(text(client.get(f"/bookings/{mine.id}", headers=headers)), "AL")
        assert "<img" not in avatar_of(text(client.get(f"/bookings/{theirs.id}", headers=headers)), "BK")

    # My bookings: what Ana holds and what she attends, each with its holder.
    html = text(client.get("/bookings/mine"))
    assert photo in avatar_of(html, "AL") and "<img" not in avatar_of(html, "BK")
    assert "Attending · Bo Kim" in html

    # The week view shares the grid.
    assert photo in text(client.get(f"/spaces/{rooms[0].id}/week", query_string={"date": DAY}))


@pytest.mark.parametrize("setting", ["sync_photos", "enabled"])
def test_no_photo_is_shown_when_photo_sync_is_off(clock, client, login, rooms, venue, ana, photos, make_booking, london_time, setting):
    photos(ana)
    booking = make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana)
    setattr(photos.settings, setting, False)
    db.session.commit()
    login(ana)
    for path in ("/", f"/bookings/{booking.id}", "/bookings/mine"):
        html = text(client.get(path, query_string={"date": DAY} if path == "/" else None))
        assert "/photo" not in html and "<img" not in avatar_of(html, "AL"), path
    assert client.get(f"/people/{ana.id}/photo").status_code == 404


def test_without_any_integration_holders_show_initials(clock, client, login, rooms, venue, ana, make_booking, london_time):
    make_booking(venue, rooms[0], london_time(2026, 3, 2, 10, 0), holder=ana)
    login(ana)
    html = text(client.get("/", query_string={"date": DAY}))
    assert "<img" not in avatar_of(html, "AL") and "/photo" not in html


def test_day_view_queries_do_not_grow_with_the_number_of_bookings(
    clock, app, client, login, venue, make_space, make_user, photos, make_booking, london_time
):
    from sqlalchemy import event

    from webapp.auth.models import User

    spaces = [make_space(venue) for _ in range(10)]
    viewer = make_user()
    login(viewer)

    def statements_for_a_day(bookings: int, day: int) -> tuple[int, str]:
        for n in range(bookings):  # each with its own holder (no password: hashing 55 would be slow), half with photos
            holder = User(email=f"h{day}-{n}@roomsync.test", first_name=f"H{n}", last_name="Holder", role="member", active=True)
            db.session.add(holder)
            db.session.commit()
            if n % 2:
                photos(holder)
            make_booking(venue, spaces[n % 10], london_time(2026, 3, day, 8 + n // 10, 0), 30, holder=holder, title=f"B{n}")
        seen: list[str] = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            with app.app_context():  # its own session, as in production: nothing already loaded to lean on
                html = text(client.get("/", query_string={"date": f"2026-03-{day:02d}"}))
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(seen), html

    few, few_html = statements_for_a_day(5, 3)
    many, many_html = statements_for_a_day(50, 4)
    assert few_html.count('class="avatar"') == 5 and many_html.count('class="avatar"') == 50
    assert many_html.count('/photo" alt="" loading="lazy"') == 25
    assert many == few, f"{few} statements for 5 bookings, {many} for 50"
