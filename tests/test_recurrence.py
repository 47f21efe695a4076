"""The RRULE subset: parsing, normalising, refusing what we do not support, and expanding."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from webapp.booking.recurrence import MAX_OCCURRENCES, Recurrence, RecurrenceError


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("FREQ=DAILY;COUNT=5", "FREQ=DAILY;COUNT=5"),
        ("rrule:freq=weekly;byday=we,mo;until=20261231", "FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20261231"),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;COUNT=4", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;COUNT=4"),
        ("FREQ=MONTHLY;BYMONTHDAY=15;COUNT=3", "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=3"),
        ("FREQ=MONTHLY;BYDAY=-1FR;COUNT=3", "FREQ=MONTHLY;BYDAY=-1FR;COUNT=3"),
        ("FREQ=YEARLY;UNTIL=20300101T000000Z", "FREQ=YEARLY;UNTIL=20300101"),
    ],
)
def test_parse_and_normalise(text, normalised):
    assert Recurrence.parse(text).to_rrule() == normalised


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("FREQ=HOURLY;COUNT=2", "FREQ must be"),
        ("FREQ=DAILY", "needs an end"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20261231", "not both"),
        ("FREQ=DAILY;COUNT=0", "between"),
        ("FREQ=DAILY;COUNT=abc", "whole number"),
        (f"FREQ=DAILY;COUNT={MAX_OCCURRENCES + 1}", "between"),
        ("FREQ=WEEKLY;BYDAY=XX;COUNT=2", "weekdays"),
        ("FREQ=MONTHLY;BYDAY=MO,TU;COUNT=2", "ordinal"),
        ("FREQ=MONTHLY;BYDAY=2TU;BYMONTHDAY=3;COUNT=2", "not both"),
        ("FREQ=DAILY;BYHOUR=9;COUNT=2", "Unsupported"),
        ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL"),
        ("FREQ=DAILY;COUNT=2;COUNT=3", "twice"),
        ("FREQ", "NAME=VALUE"),
    ],
)
def test_refusals_say_what_is_wrong(text, words):
    with pytest.raises(RecurrenceError) as caught:
        Recurrence.parse(text)
    assert words in str(caught.value)


def test_weekly_on_several_days_with_a_start_off_the_pattern_keeps_the_first_occurrence():
    rule = Recurrence.parse("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4")
    starts = rule.starts(datetime(2026, 3, 3, 9, 0))  # a Tuesday
    assert starts == [datetime(2026, 3, d, 9, 0) for d in (3, 4, 9, 11)]


def test_monthly_by_weekday_and_by_day():
    assert Recurrence.parse("FREQ=MONTHLY;BYDAY=-1FR;COUNT=3").starts(datetime(2026, 1, 30, 10)) == [
        datetime(2026, 1, 30, 10), datetime(2026, 2, 27, 10), datetime(2026, 3, 27, 10)
    ]
    # The 31st only exists in some months: RFC 5545 skips the others.
    assert Recurrence.parse("FREQ=MONTHLY;BYMONTHDAY=31;COUNT=3").starts(datetime(2026, 1, 31, 10)) == [
        datetime(2026, 1, 31, 10), datetime(2026, 3, 31, 10), datetime(2026, 5, 31, 10)
    ]


def test_until_is_an_inclusive_date():
    starts = Recurrence.parse("FREQ=DAILY;UNTIL=20260305").starts(datetime(2026, 3, 3, 23, 0))
    assert [s.date() for s in starts] == [date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5)]


def test_too_many_occurrences_are_refused():
    with pytest.raises(RecurrenceError):
        Recurrence.parse("FREQ=DAILY;UNTIL=20351231").starts(datetime(2026, 1, 1, 9))


def test_describe_reads_like_a_sentence():
    assert Recurrence.parse("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4").describe() == "Every week on Monday, Wednesday, 4 times"
    assert Recurrence.parse("FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR;UNTIL=20261231").describe() == (
        "Every 2 months on the last Friday, until 31 Dec 2026"
    )
