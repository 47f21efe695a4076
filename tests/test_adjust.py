"""Grid adjustment of provider events: the reference guide's FAQ table, exactly, and the edges around it."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from webapp.sync.adjust import adjust_to_grid, needs_adjustment

LONDON = ZoneInfo("Europe/London")


def _at(day, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(*day, hours, minutes, tzinfo=LONDON).astimezone(timezone.utc)


@pytest.mark.parametrize(
    ("original", "adjusted"),
    [  # the FAQ table of the reference guide
        ("13:53-14:07", "13:45-14:00"),
        ("13:55-14:05", "13:45-14:00"),
        ("13:59-14:01", "13:45-14:00"),
        ("13:45-13:46", "13:45-14:00"),
        ("13:52-14:06", "13:45-14:00"),
        ("14:01-14:16", "14:00-14:15"),
        ("14:02-14:18", "14:00-14:30"),
    ],
)
@pytest.mark.parametrize("day", [(2026, 3, 2), (2026, 3, 29), (2026, 10, 25)], ids=["winter", "dst-start", "dst-end"])
def test_the_reference_table_holds_on_ordinary_and_dst_days(original, adjusted, day):
    start, end = (_at(day, t) for t in original.split("-"))
    want = tuple(_at(day, t) for t in adjusted.split("-"))
    assert adjust_to_grid(start, end, LONDON) == want
    assert needs_adjustment(start, end, LONDON)


@pytest.mark.parametrize("times", ["08:00-08:15", "10:00-11:00", "13:00-13:30", "09:45-17:15"])
def test_events_on_the_grid_are_unchanged(times):
    start, end = (_at((2026, 3, 2), t) for t in times.split("-"))
    assert adjust_to_grid(start, end, LONDON) == (start, end)
    assert not needs_adjustment(start, end, LONDON)


def test_seconds_count_and_long_events_round_up():
    start = _at((2026, 3, 2), "10:00").replace(second=30)
    end = _at((2026, 3, 2), "11:00").replace(second=30)
    # 60 minutes off the grid by 30 s: 4 steps still cover it best from 10:00.
    assert adjust_to_grid(start, end, LONDON) == (_at((2026, 3, 2), "10:00"), _at((2026, 3, 2), "11:00"))
    assert adjust_to_grid(_at((2026, 3, 2), "10:10"), _at((2026, 3, 2), "12:20"), LONDON) == (
        _at((2026, 3, 2), "10:00"), _at((2026, 3, 2), "12:15")
    )


def test_a_zero_length_event_takes_one_step():
    moment = _at((2026, 3, 2), "10:07")
    assert adjust_to_grid(moment, moment, LONDON) == (_at((2026, 3, 2), "10:00"), _at((2026, 3, 2), "10:15"))


def test_the_grid_is_the_venues_wall_clock_not_utc():
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: an hour grid is aligned at :00 local, :30 UTC
    start = datetime(2026, 3, 2, 10, 10, tzinfo=kolkata)
    end = datetime(2026, 3, 2, 10, 50, tzinfo=kolkata)
    assert adjust_to_grid(start, end, kolkata, 60) == (
        datetime(2026, 3, 2, 10, 0, tzinfo=kolkata).astimezone(timezone.utc),
        datetime(2026, 3, 2, 11, 0, tzinfo=kolkata).astimezone(timezone.utc),
    )


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        adjust_to_grid(datetime(2026, 3, 2, 10), datetime(2026, 3, 2, 11), LONDON)
