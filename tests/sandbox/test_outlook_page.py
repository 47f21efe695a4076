"""The sandbox's Outlook-like page: it renders, and its writes go through the calendar engine Graph uses."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest

from webapp.sandbox import calendar
from webapp.sandbox.clock import now, zone
from webapp.sandbox.seed import user_id_for

ORGANIZER = "priya.shah@roomsync.test"
ROOM = "board-room-a@roomsync.test"
LONDON = zone("Europe/London")


@pytest.fixture
def page(sandbox_app):
    return sandbox_app.test_client()


@pytest.fixture
def next_monday() -> date:
    today = now().astimezone(LONDON).date()
    return today + timedelta(days=7 - today.weekday())


def _book(page, day: date, **fields):
    form = {"action": "save", "subject": "Planning", "day": day.isoformat(), "start": "10:00", "end": "11:00",
            "rooms": [ROOM], "tz": "Europe/London", **fields}
    return page.post(f"/outlook/{user_id_for(ORGANIZER)}/new", data=form)


def _organizer_events(sandbox_state, day: date, days: int = 1) -> list[dict]:
    start = datetime.combine(day, datetime.min.time(), LONDON)
    return calendar.calendar_view(sandbox_state, user_id_for(ORGANIZER), start, start + timedelta(days=days))


def test_the_picker_lists_people_and_rooms(page):
    response = page.get("/outlook/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Priya Shah" in html and "Board room A" in html
    assert page.get(f"/outlook/?user={user_id_for(ORGANIZER)}").headers["Location"].endswith(user_id_for(ORGANIZER))


def test_the_week_renders_and_unknown_users_are_404(page, next_monday):
    response = page.get(f"/outlook/{user_id_for(ORGANIZER)}?week={next_monday.isoformat()}")
    assert response.status_code == 200
    assert next_monday.strftime("%a %d %b") in response.get_data(as_text=True)
    assert page.get("/outlook/no-such-user").status_code == 404


def test_booking_a_room_through_the_form_makes_an_accepted_room_copy(page, sandbox_state, next_monday):
    response = _book(page, next_monday, people="tom.baker@roomsync.test", private="on")

    assert response.status_code == 302
    [event] = _organizer_events(sandbox_state, next_monday)
    assert event["subject"] == "Planning" and event["sensitivity"] == "private"
    replies = {a["emailAddress"]["address"]: a["status"]["response"] for a in event["attendees"]}
    assert replies == {"tom.baker@roomsync.test": "none", ROOM: "accepted"}
    start = datetime.combine(next_monday, datetime.min.time(), LONDON)
    [room_copy] = calendar.calendar_view(sandbox_state, user_id_for(ROOM), start, start + timedelta(days=1))
    assert room_copy["iCalUId"] == event["iCalUId"] and room_copy["sensitivity"] == "normal"

    week = page.get(response.headers["Location"]).get_data(as_text=True)
    assert "Board room A: accepted" in week and "private" in week


def test_a_busy_room_declines_and_the_room_finder_shows_it_busy(page, sandbox_state, next_monday):
    _book(page, next_monday)
    finder = page.get(f"/outlook/{user_id_for(ORGANIZER)}/new?day={next_monday.isoformat()}&start=10:30&end=11:30")
    html = finder.get_data(as_text=True)
    assert re.search(r'class="room busy">\s*<input[^>]*value="board-room-a@roomsync.test"', html)
    assert re.search(r'class="room free">\s*<input[^>]*value="atrium@roomsync.test"', html)

    _book(page, next_monday, subject="Clash", start="10:30", end="11:30")
    clash = next(e for e in _organizer_events(sandbox_state, next_monday) if e["subject"] == "Clash")
    assert [a["status"]["response"] for a in clash["attendees"]] == ["declined"]


def test_a_weekly_series_with_a_count(page, sandbox_state, next_monday):
    _book(page, next_monday, repeat="weekly", count="3")
    instances = _organizer_events(sandbox_state, next_monday, days=28)
    assert [datetime.fromisoformat(i["_start"]).astimezone(LONDON).date() for i in instances] == [
        next_monday + timedelta(weeks=n) for n in range(3)]
    assert {i["type"] for i in instances} == {"occurrence"}


def test_a_monthly_series_until_a_date(page, sandbox_state, next_monday):
    _book(page, next_monday, repeat="monthly", until=(next_monday + timedelta(days=70)).isoformat())
    assert len(_organizer_events(sandbox_state, next_monday, days=75)) == 3


@pytest.mark.parametrize("fields, message", [
    ({"start": "11:00", "end": "10:00"}, "The meeting must end after it starts."),
    ({"repeat": "daily"}, "A repeating meeting ends either on a date or after a number of times."),
    ({"repeat": "daily", "count": "0"}, "The number of times must be a whole number of at least 1."),
])
def test_bad_input_is_shown_and_nothing_is_written(page, sandbox_state, next_monday, fields, message):
    response = _book(page, next_monday, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _organizer_events(sandbox_state, next_monday) == []


def test_editing_and_cancelling(page, sandbox_state, next_monday):
    _book(page, next_monday)
    [event] = _organizer_events(sandbox_state, next_monday)
    url = f"/outlook/{user_id_for(ORGANIZER)}/events/{event['id']}"

    form = page.get(url).get_data(as_text=True)
    assert 'value="Planning"' in form and "Board room A (resource): accepted" in form

    edited = page.post(url, data={"action": "save", "subject": "Planning (moved)", "day": next_monday.isoformat(),
                                  "start": "14:00", "end": "15:00", "rooms": [ROOM], "tz": "Europe/London"})
    assert edited.status_code == 302
    [moved] = _organizer_events(sandbox_state, next_monday)
    assert moved["subject"] == "Planning (moved)"
    assert datetime.fromisoformat(moved["_start"]).astimezone(LONDON).hour == 14

    assert page.post(f"{url}/cancel").status_code == 302
    assert _organizer_events(sandbox_state, next_monday) == []
    start = datetime.combine(next_monday, datetime.min.time(), LONDON)
    assert calendar.calendar_view(sandbox_state, user_id_for(ROOM), start, start + timedelta(days=1)) == []


def test_a_booking_on_the_page_notifies_subscribers(page, sandbox_state, receiver, subscribe, next_monday):
    subscribe(ROOM)
    _book(page, next_monday)
    assert sandbox_state.delivery.flush()
    assert [n["changeType"] for n in receiver.notifications("/hook")] == ["created"]
