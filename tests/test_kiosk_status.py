"""The pure status rule (`webapp.kiosk.status`) at every boundary: an item's start and end, the "soon"
threshold, opening and closing, back-to-back items, midnight, and Europe/London's DST days (spring forward
2026-03-29: 23 hours; fall back 2026-10-25: 25 hours). Time is frozen by name: the function takes `now`, and
the view-level tests freeze the clock."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from webapp.timeutil import localize

from webapp.kiosk.status import (
    Item,
    compute,
    day_bounds,
    day_hours,
    schedule_json,
    span_text,
    until_text,
)

LONDON = ZoneInfo("Europe/London")
UTC = timezone.utc
DAY = date(2026, 3, 2)  # a Monday in winter (UTC+0)
HOURS = (time(8), time(18))


def at(hour, minute=0, day=DAY, fold=0):
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON, fold=fold).astimezone(UTC)


def item(start, end, title="Meeting", holder="Ana Lee", **kw):
    return Item(start, end, title, holder, **kw)


def hours(day=DAY, value=HOURS):
    return day_hours(value, day, LONDON)


MEETING = item(at(10), at(11))


@pytest.mark.parametrize(
    "now, state, until",
    [
        (at(7, 59), "closed", at(8)),  # before opening: closed until it opens
        (at(8), "free", at(10)),  # opening time is open (inclusive)
        (at(9, 49), "free", at(10)),  # one minute before the soon threshold
        (at(9, 50), "soon", at(10)),  # exactly soon_minutes before the start
        (at(9, 59), "soon", at(10)),
        (at(10), "busy", at(11)),  # the start is busy (inclusive)
        (at(10, 59), "busy", at(11)),
        (at(11), "free", at(18)),  # the end is free again (exclusive)
        (at(17, 59), "free", at(18)),
        (at(18), "closed", None),  # closing time is closed; nothing later today
        (at(23, 59), "closed", None),
    ],
)
def test_boundaries_of_one_booking_and_the_opening_hours(now, state, until):
    status = compute(now, [MEETING], hours(), 10)
    assert (status.state, status.until) == (state, until)
    assert (status.current == MEETING) == (state == "busy")
    assert status.upcoming == ([MEETING] if now < at(10) else [])


def test_soon_threshold_zero_means_never_soon_before_the_start():
    assert compute(at(9, 59), [MEETING], hours(), 0).state == "free"
    assert compute(at(10), [MEETING], hours(), 0).state == "busy"


def test_back_to_back_bookings_are_busy_until_the_end_of_the_run():
    items = [item(at(10), at(11)), item(at(11), at(11, 30), "Second"), item(at(12), at(13), "Later")]
    status = compute(at(10, 15), items, hours(), 10)
    assert status.state == "busy" and status.until == at(11, 30)
    assert [i.title for i in status.upcoming] == ["Second", "Later"]
    # In the gap: free until the next one, then soon.
    assert (compute(at(11, 40), items, hours(), 10).state, compute(at(11, 40), items, hours(), 10).until) == ("free", at(12))
    assert compute(at(11, 50), items, hours(), 10).state == "soon"


def test_free_until_closing_when_the_next_booking_is_after_closing():
    late = item(at(19), at(20))  # provider bookings skip the opening hours
    status = compute(at(12), [late], hours(), 10)
    assert (status.state, status.until) == ("free", at(18))
    assert compute(at(18, 30), [late], hours(), 10).state == "closed"
    assert compute(at(18, 50), [late], hours(), 10).state == "soon"  # soon beats closed
    assert compute(at(19), [late], hours(), 10).state == "busy"  # busy beats closed


def test_closed_day_and_empty_day():
    assert day_hours(None, DAY, LONDON) is None
    status = compute(at(12), [], None, 10)
    assert (status.state, status.until, status.current, status.upcoming) == ("closed", None, None, [])
    assert compute(at(12), [], hours(), 10).until == at(18)


def test_items_that_are_empty_or_unsorted():
    items = [item(at(14), at(15), "B"), item(at(9), at(9), "empty"), item(at(12), at(13), "A")]
    status = compute(at(11), items, hours(), 10)
    assert [i.title for i in status.upcoming] == ["A", "B"]
    assert status.until == at(12)


def test_changes_at_is_the_next_instant_anything_can_flip():
    assert compute(at(9), [MEETING], hours(), 10).changes_at == at(9, 50)
    assert compute(at(9, 55), [MEETING], hours(), 10).changes_at == at(10)
    assert compute(at(10, 30), [MEETING], hours(), 10).changes_at == at(11)
    assert compute(at(11), [MEETING], hours(), 10).changes_at == at(18)
    assert compute(at(19), [MEETING], hours(), 10).changes_at is None


# ---------------------------------------------------------------------------------------------- midnight


def test_midnight_open_around_the_clock():
    around = (time(0), time.max)
    opens, closes = day_hours(around, DAY, LONDON)
    assert (opens, closes) == day_bounds(DAY, LONDON) == (at(0), at(0, day=DAY + timedelta(days=1)))
    status = compute(at(23, 30), [], (opens, closes), 10)
    assert (status.state, status.until) == ("free", closes)
    assert until_text(status.until, closes, LONDON) == "until midnight"
    # The first instant of the next day belongs to the next day's hours.
    assert compute(closes, [], (opens, closes), 10).state == "closed"


def test_a_booking_over_midnight_is_busy_until_its_end_tomorrow():
    tomorrow = DAY + timedelta(days=1)
    overnight = item(at(23), at(1, day=tomorrow))
    _, day_end = day_bounds(DAY, LONDON)
    status = compute(at(23, 30), [overnight], hours(), 10)
    assert (status.state, status.until) == ("busy", at(1, day=tomorrow))
    assert until_text(status.until, day_end, LONDON) == "until Tue 01:00"
    # Seen from tomorrow's panel (the item is in tomorrow's list too): busy until 01:00, then closed.
    tomorrow_hours = hours(tomorrow)
    assert compute(at(0, 30, day=tomorrow), [overnight], tomorrow_hours, 10).state == "busy"
    assert compute(at(1, day=tomorrow), [overnight], tomorrow_hours, 10).state == "closed"


# ---------------------------------------------------------------------------------------------- DST

SPRING = date(2026, 3, 29)  # 01:00 GMT → 02:00 BST
AUTUMN = date(2026, 10, 25)  # 02:00 BST → 01:00 GMT


def test_spring_forward_day_is_23_hours_and_local_times_hold():
    start, end = day_bounds(SPRING, LONDON)
    assert end - start == timedelta(hours=23)
    opens, closes = day_hours(HOURS, SPRING, LONDON)
    assert opens == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 08:00 BST
    assert closes == datetime(2026, 3, 29, 17, 0, tzinfo=UTC)
    meeting = item(at(10, day=SPRING), at(11, day=SPRING))
    assert meeting.start == datetime(2026, 3, 29, 9, 0, tzinfo=UTC)
    assert compute(at(9, 50, day=SPRING), [meeting], (opens, closes), 10).state == "soon"
    assert compute(at(9, 49, day=SPRING), [meeting], (opens, closes), 10).state == "free"
    status = compute(at(10, 30, day=SPRING), [meeting], (opens, closes), 10)
    assert status.state == "busy" and until_text(status.until, end, LONDON) == "until 11:00"


def test_spring_forward_gap_opening_time_follows_the_venue_rules_localize():
    # Opening at 01:30 does not exist on that day; the panel opens exactly when the booking rules say the
    # venue opens (`timeutil.localize`, shared with the rules), and it is one instant, not two.
    opens, closes = day_hours((time(1, 30), time(18)), SPRING, LONDON)
    assert opens == localize(datetime(2026, 3, 29, 1, 30), LONDON)
    assert closes == datetime(2026, 3, 29, 17, 0, tzinfo=UTC)
    assert compute(opens - timedelta(minutes=1), [], (opens, closes), 10).state == "closed"
    assert compute(opens, [], (opens, closes), 10).state == "free"


def test_fall_back_day_is_25_hours_and_the_repeated_hour_is_handled():
    start, end = day_bounds(AUTUMN, LONDON)
    assert end - start == timedelta(hours=25)
    around = day_hours((time(0), time.max), AUTUMN, LONDON)
    assert around == (start, end)
    # A booking 01:30 BST–01:30 GMT (one real hour later): busy across the repeated hour.
    first = at(1, 30, day=AUTUMN, fold=0)
    second = at(1, 30, day=AUTUMN, fold=1)
    assert second - first == timedelta(hours=1)
    meeting = item(first, second)
    assert compute(at(1, 59, day=AUTUMN, fold=0), [meeting], around, 10).state == "busy"
    assert compute(at(1, 15, day=AUTUMN, fold=1), [meeting], around, 10).state == "busy"
    assert compute(second, [meeting], around, 10).state == "free"
    assert span_text(meeting, LONDON) == "01:30\u201301:30"
    opens, closes = day_hours(HOURS, AUTUMN, LONDON)
    assert opens == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)  # 08:00 GMT
    assert compute(datetime(2026, 10, 25, 7, 59, tzinfo=UTC), [], (opens, closes), 10).until == opens


def test_until_text_and_schedule_json_carry_what_the_browser_needs():
    _, day_end = day_bounds(DAY, LONDON)
    assert until_text(None, day_end, LONDON) == ""
    assert until_text(at(14, 30), day_end, LONDON) == "until 14:30"
    summer = date(2026, 7, 1)
    _, summer_end = day_bounds(summer, LONDON)
    assert until_text(at(14, 30, day=summer), summer_end, LONDON) == "until 14:30"  # BST shown as local
    data = schedule_json([item(at(12), at(13), "B"), item(at(10), at(11), "A", private=True)], hours(), 10, day_end)
    assert data["soon"] == 10 and data["opens"] == int(at(8).timestamp() * 1000)
    assert data["dayEnd"] == int(day_end.timestamp() * 1000)
    assert [i["title"] for i in data["items"]] == ["A", "B"]
    assert set(data["items"][0]) == {"start", "end", "title", "holder"}
    assert schedule_json([], None, 5, day_end)["opens"] is None
