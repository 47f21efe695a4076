"""Outlook series ↔ Roomsync repeat rules (webapp/sync/recurrence_map.py): every Graph pattern, the 1,080-day cap,
what is refused and why, round trips, and — generated with Hypothesis — that the occurrences the sandbox's own
Graph expansion (webapp/sandbox/recurrence.py) gives are exactly those `Recurrence.starts` gives for the mapped
rule, in Europe/London across DST changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from webapp.booking.recurrence import Recurrence, RecurrenceError
from webapp.graph.types import PatternedRecurrence, RecurrencePattern, RecurrenceRange
from webapp.sandbox import recurrence as sandbox_recurrence
from webapp.sync.recurrence_map import (GRAPH_DAYS, MappedRule, UnsupportedRecurrence, graph_from_rrule,
                                        rrule_from_graph, shortened_graph_range)

LONDON = "Europe/London"
HORIZON = date(2029, 2, 14)  # FROZEN_NOW (2026-03-02) + 1,080 days


@pytest.fixture(autouse=True)
def _app_context():
    """Overrides the root conftest's fixture: the mapping is pure and needs no app or database."""
    yield


def series(kind="weekly", *, interval=1, days=(), first_day=None, index=None, month=None, day=None,
           range_type="noEnd", start=date(2026, 3, 2), end=None, count=None, zone=LONDON) -> PatternedRecurrence:
    return PatternedRecurrence(
        RecurrencePattern(kind, interval, tuple(days), first_day, index, month, day),
        RecurrenceRange(range_type, start, end, count, zone))


def starts_of(mapped: MappedRule) -> list[datetime]:
    return Recurrence.parse(mapped.rrule).starts(mapped.first_start)


def sandbox_starts(recurrence: PatternedRecurrence, first_local: datetime, horizon: date,
                   zone: str = LONDON) -> list[datetime]:
    """The sandbox's expansion of the series (what Outlook shows), as naive London times up to the horizon."""
    tz = ZoneInfo(zone)
    aware = first_local.replace(tzinfo=tz)
    normalized = sandbox_recurrence.normalize(recurrence.to_graph(), aware, zone)
    result = []
    for start in sandbox_recurrence.occurrence_starts(normalized, aware):
        local = start.astimezone(tz).replace(tzinfo=None)
        if local.date() > horizon:
            break
        result.append(local)
    return result


# ---------------------------------------------------------------- ranges and the 1,080-day cap

def test_no_end_is_capped_at_the_horizon():
    mapped = rrule_from_graph(series(days=("monday", "wednesday")), datetime(2026, 3, 2, 9), horizon_date=HORIZON)
    assert mapped == MappedRule("FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20290214", True, None, datetime(2026, 3, 2, 9))
    assert starts_of(mapped)[-1] == datetime(2029, 2, 14, 9)  # a Wednesday: UNTIL is inclusive


def test_an_end_date_within_the_horizon_is_kept():
    mapped = rrule_from_graph(series(days=("tuesday",), range_type="endDate", end=date(2026, 6, 30)),
                              datetime(2026, 3, 3, 14, 30), horizon_date=HORIZON)
    assert (mapped.rrule, mapped.shortened, mapped.original_end) == ("FREQ=WEEKLY;BYDAY=TU;UNTIL=20260630", False,
                                                                     date(2026, 6, 30))
    assert starts_of(mapped)[-1] == datetime(2026, 6, 30, 14, 30)


def test_an_end_date_beyond_the_horizon_is_shortened_to_it():
    mapped = rrule_from_graph(series("daily", range_type="endDate", end=date(2031, 1, 1)), datetime(2026, 3, 2, 8),
                              horizon_date=HORIZON)
    assert (mapped.rrule, mapped.shortened) == ("FREQ=DAILY;UNTIL=20290214", True)
    assert mapped.original_end == date(2031, 1, 1)


def test_an_end_date_past_the_horizon_with_no_occurrence_after_it_is_not_shortened():
    yearly = series("absoluteYearly", month=3, day=2, range_type="endDate", end=date(2029, 3, 1))
    mapped = rrule_from_graph(yearly, datetime(2026, 3, 2, 8), horizon_date=HORIZON)
    assert mapped.shortened is False and mapped.rrule == "FREQ=YEARLY;UNTIL=20290214"
    assert [s.year for s in starts_of(mapped)] == [2026, 2027, 2028]


def test_numbered_is_a_count_while_it_ends_before_the_horizon():
    mapped = rrule_from_graph(series(days=("friday",), range_type="numbered", count=10, start=date(2026, 3, 6)),
                              datetime(2026, 3, 6, 16), horizon_date=HORIZON)
    assert (mapped.rrule, mapped.shortened, mapped.original_end) == ("FREQ=WEEKLY;BYDAY=FR;COUNT=10", False,
                                                                     date(2026, 5, 8))


def test_numbered_past_the_horizon_becomes_until_the_horizon():
    mapped = rrule_from_graph(series("daily", interval=2, range_type="numbered", count=999), datetime(2026, 3, 2, 9),
                              horizon_date=HORIZON)
    assert (mapped.rrule, mapped.shortened) == ("FREQ=DAILY;INTERVAL=2;UNTIL=20290214", True)
    assert mapped.original_end == date(2026, 3, 2) + timedelta(days=2 * 998)
    assert len(starts_of(mapped)) == 541


def test_not_before_keeps_only_the_upcoming_part_and_reduces_the_count():
    weekly = series(days=("monday",), range_type="numbered", count=10, start=date(2026, 2, 2))
    mapped = rrule_from_graph(weekly, datetime(2026, 2, 2, 9), horizon_date=HORIZON, not_before=date(2026, 3, 1))
    assert mapped.first_start == datetime(2026, 3, 2, 9) and mapped.rrule == "FREQ=WEEKLY;BYDAY=MO;COUNT=6"
    assert starts_of(mapped) == sandbox_starts(weekly, datetime(2026, 2, 2, 9), HORIZON)[4:]


def test_a_master_start_off_its_pattern_starts_the_rule_on_the_first_occurrence():
    # Graph: the first occurrence is the first pattern day on or after range.startDate (a Sunday here).
    weekly = series(days=("monday", "wednesday"), range_type="numbered", count=4, start=date(2026, 3, 1))
    mapped = rrule_from_graph(weekly, datetime(2026, 3, 1, 9), horizon_date=HORIZON)
    assert mapped.first_start == datetime(2026, 3, 2, 9)
    assert starts_of(mapped) == sandbox_starts(weekly, datetime(2026, 3, 1, 9), HORIZON) == [
        datetime(2026, 3, 2, 9), datetime(2026, 3, 4, 9), datetime(2026, 3, 9, 9), datetime(2026, 3, 11, 9)]


def test_a_series_with_nothing_left_is_unsupported():
    ended = series("daily", range_type="endDate", end=date(2026, 2, 20), start=date(2026, 2, 1))
    with pytest.raises(UnsupportedRecurrence, match="no occurrence"):
        rrule_from_graph(ended, datetime(2026, 2, 1, 9), horizon_date=HORIZON, not_before=date(2026, 3, 2))
    with pytest.raises(UnsupportedRecurrence, match="horizon"):
        rrule_from_graph(series("daily", start=date(2030, 1, 1)), datetime(2030, 1, 1, 9), horizon_date=HORIZON)


def test_more_occurrences_than_a_series_may_have_is_unsupported():
    with pytest.raises(UnsupportedRecurrence, match="1500"):
        rrule_from_graph(series("daily"), datetime(2026, 3, 2, 9), horizon_date=date(2031, 1, 1))


def test_first_start_must_be_naive():
    with pytest.raises(ValueError):
        rrule_from_graph(series("daily"), datetime(2026, 3, 2, 9, tzinfo=ZoneInfo(LONDON)), horizon_date=HORIZON)


# ---------------------------------------------------------------- every pattern

@pytest.mark.parametrize("recurrence, first, rrule", [
    (series("daily", interval=3, range_type="numbered", count=5), datetime(2026, 3, 2, 9),
     "FREQ=DAILY;INTERVAL=3;COUNT=5"),
    (series(days=("friday", "monday"), interval=2, first_day="monday", range_type="numbered", count=6),
     datetime(2026, 3, 2, 9), "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;COUNT=6"),
    # Weeks counted from Sunday but every day on the same side of Monday: grouped alike.
    (series(days=("monday", "wednesday"), interval=2, first_day="sunday", range_type="numbered", count=6),
     datetime(2026, 3, 2, 9), "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=6"),
    (series("absoluteMonthly", day=15, start=date(2026, 3, 15), range_type="numbered", count=12),
     datetime(2026, 3, 15, 10), "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=12"),
    (series("absoluteMonthly", interval=12, day=31, start=date(2026, 1, 31), range_type="numbered", count=3),
     datetime(2026, 1, 31, 10), "FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31;COUNT=3"),
    *[(series("relativeMonthly", days=("tuesday",), index=index, start=date(2026, 3, 1), range_type="numbered",
              count=12), datetime(2026, 3, 1, 11), f"FREQ=MONTHLY;BYDAY={number}TU;COUNT=12")
      for index, number in (("first", 1), ("second", 2), ("third", 3), ("fourth", 4), ("last", -1))],
    (series("absoluteYearly", month=3, day=2, range_type="numbered", count=3), datetime(2026, 3, 2, 9),
     "FREQ=YEARLY;COUNT=3"),
])
def test_every_supported_pattern_maps_and_expands_as_outlook_does(recurrence, first, rrule):
    mapped = rrule_from_graph(recurrence, first, horizon_date=HORIZON)
    assert mapped.rrule == rrule
    assert starts_of(mapped) == sandbox_starts(recurrence, first, HORIZON)


@pytest.mark.parametrize("recurrence, first, reason", [
    (series("relativeYearly", days=("tuesday",), index="second", month=3, start=date(2026, 3, 10)),
     datetime(2026, 3, 10, 9), "yearly on an ordinal weekday"),
    (series("relativeMonthly", days=("monday", "tuesday"), index="first"), datetime(2026, 3, 2, 9),
     "several weekdays"),
    (series("absoluteMonthly", day=31, start=date(2026, 1, 31)), datetime(2026, 1, 31, 9),
     "last day of shorter months"),
    (series("absoluteMonthly", day=30, start=date(2026, 1, 30), range_type="numbered", count=3),
     datetime(2026, 1, 30, 9), "last day of shorter months"),
    (series("absoluteYearly", month=2, day=29, start=date(2024, 2, 29)), datetime(2024, 2, 29, 9),
     "last day of shorter months"),
    (series("absoluteYearly", month=2, day=30, start=date(2026, 2, 1)), datetime(2026, 2, 1, 9), "short month"),
    (series(days=("sunday", "monday"), interval=2, first_day="sunday", start=date(2026, 3, 1)),
     datetime(2026, 3, 1, 9), "counts weeks from Monday"),
    (series("daily", interval=120), datetime(2026, 3, 2, 9), "limit of 99"),
    (series(days=()), datetime(2026, 3, 2, 9), "no day of the week"),
    (series("hourly"), datetime(2026, 3, 2, 9), "unknown"),
])
def test_outside_the_subset_is_unsupported_with_a_reason(recurrence, first, reason):
    with pytest.raises(UnsupportedRecurrence) as raised:
        rrule_from_graph(recurrence, first, horizon_date=HORIZON)
    assert reason in raised.value.reason and str(raised.value) == raised.value.reason


def test_the_unsupported_week_grouping_really_differs():
    """Why straddling weeks are refused: a Monday-based rule would put the Monday in the other week."""
    recurrence = series(days=("sunday", "monday"), interval=2, first_day="sunday", start=date(2026, 3, 1),
                        range_type="numbered", count=4)
    naive = Recurrence.parse("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;COUNT=4").starts(datetime(2026, 3, 1, 9))
    assert naive != sandbox_starts(recurrence, datetime(2026, 3, 1, 9), HORIZON)


def test_a_weekly_series_keeps_its_wall_clock_time_across_the_spring_change():
    weekly = series(days=("thursday",), start=date(2026, 3, 19), range_type="numbered", count=3)
    mapped = rrule_from_graph(weekly, datetime(2026, 3, 19, 9), horizon_date=HORIZON, zone_name=LONDON)
    assert starts_of(mapped) == [datetime(2026, 3, 19, 9), datetime(2026, 3, 26, 9), datetime(2026, 4, 2, 9)]
    normalized = sandbox_recurrence.normalize(weekly.to_graph(), datetime(2026, 3, 19, 9, tzinfo=ZoneInfo(LONDON)),
                                              LONDON)
    utc_hours = [s.hour for s in sandbox_recurrence.occurrence_starts(
        normalized, datetime(2026, 3, 19, 9, tzinfo=ZoneInfo(LONDON)))]
    assert utc_hours == [9, 9, 8]  # Outlook's UTC moves; both sides keep 09:00 London


def test_a_series_in_another_zone_is_refused_when_the_clocks_disagree():
    # New York moves its clocks on 8 March 2026, London on 29 March: 14:00 London is 10:00 then 09:00 New York.
    weekly = series(days=("thursday",), start=date(2026, 3, 5), range_type="numbered", count=4,
                    zone="America/New_York")
    with pytest.raises(UnsupportedRecurrence, match="time zone"):
        rrule_from_graph(weekly, datetime(2026, 3, 5, 14), horizon_date=HORIZON, zone_name=LONDON)
    same_rules = series(days=("thursday",), start=date(2026, 3, 5), range_type="numbered", count=4,
                        zone="Europe/Lisbon")
    mapped = rrule_from_graph(same_rules, datetime(2026, 3, 5, 14), horizon_date=HORIZON, zone_name=LONDON)
    assert [s.hour for s in starts_of(mapped)] == [14, 14, 14, 14]
    # An unknown (Windows) zone name cannot be compared: it is taken as the venue's.
    windows = series(days=("thursday",), start=date(2026, 3, 5), range_type="numbered", count=4,
                     zone="GMT Standard Time")
    assert rrule_from_graph(windows, datetime(2026, 3, 5, 14), horizon_date=HORIZON, zone_name=LONDON).rrule == \
        "FREQ=WEEKLY;BYDAY=TH;COUNT=4"


# ---------------------------------------------------------------- Roomsync → Outlook

@pytest.mark.parametrize("rrule, first, pattern, range_", [
    ("FREQ=DAILY;INTERVAL=2;COUNT=10", datetime(2026, 3, 2, 9), {"type": "daily", "interval": 2},
     {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 10}),
    ("FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20260630", datetime(2026, 3, 2, 9),
     {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "monday"},
     {"type": "endDate", "startDate": "2026-03-02", "endDate": "2026-06-30"}),
    ("FREQ=WEEKLY;INTERVAL=3;COUNT=4", datetime(2026, 3, 4, 9),
     {"type": "weekly", "interval": 3, "daysOfWeek": ["wednesday"], "firstDayOfWeek": "monday"},
     {"type": "numbered", "startDate": "2026-03-04", "numberOfOccurrences": 4}),
    ("FREQ=MONTHLY;BYMONTHDAY=2;COUNT=6", datetime(2026, 3, 2, 9), {"type": "absoluteMonthly", "interval": 1,
                                                                    "dayOfMonth": 2},
     {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 6}),
    ("FREQ=MONTHLY;COUNT=6", datetime(2026, 3, 2, 9), {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 2},
     {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 6}),
    ("FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR;UNTIL=20270101", datetime(2026, 3, 27, 9),
     {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["friday"], "index": "last"},
     {"type": "endDate", "startDate": "2026-03-27", "endDate": "2027-01-01"}),
    ("FREQ=YEARLY;COUNT=3", datetime(2026, 3, 2, 9), {"type": "absoluteYearly", "interval": 1, "dayOfMonth": 2,
                                                      "month": 3},
     {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3}),
])
def test_roomsync_rules_become_graph_recurrences_and_come_back(rrule, first, pattern, range_):
    recurrence = graph_from_rrule(rrule, first, LONDON)
    assert recurrence.to_graph() == {"pattern": pattern, "range": {**range_, "recurrenceTimeZone": LONDON}}
    assert Recurrence.parse(rrule).starts(first) == sandbox_starts(recurrence, first, date(2100, 1, 1))
    back = rrule_from_graph(recurrence, first, horizon_date=date(2100, 1, 1))
    assert starts_of(back) == Recurrence.parse(rrule).starts(first) and back.shortened is False
    assert graph_from_rrule(back.rrule, back.first_start, LONDON) == recurrence


def test_a_count_beyond_graphs_limit_becomes_its_last_date():
    recurrence = graph_from_rrule("FREQ=DAILY;COUNT=1200", datetime(2026, 3, 2, 9), LONDON)
    assert recurrence.range.type == "endDate" and recurrence.range.end_date == date(2026, 3, 2) + timedelta(days=1199)


@pytest.mark.parametrize("rrule, first, reason", [
    ("FREQ=MONTHLY;BYDAY=5TU;COUNT=4", datetime(2026, 3, 31, 9), "first to fourth, or last"),
    ("FREQ=MONTHLY;BYDAY=-2FR;COUNT=4", datetime(2026, 3, 20, 9), "first to fourth, or last"),
    ("FREQ=WEEKLY;BYDAY=MO;COUNT=4", datetime(2026, 3, 3, 9), "not on its own repeat pattern"),
    ("FREQ=MONTHLY;BYMONTHDAY=31;COUNT=4", datetime(2026, 1, 31, 9), "last day of shorter months"),
    ("FREQ=YEARLY;COUNT=3", datetime(2028, 2, 29, 9), "last day of shorter months"),
    ("FREQ=DAILY;UNTIL=20260101", datetime(2026, 3, 2, 9), "ends before"),
])
def test_roomsync_rules_outlook_would_expand_differently_are_unsupported(rrule, first, reason):
    with pytest.raises(UnsupportedRecurrence, match=reason):
        graph_from_rrule(rrule, first, LONDON)


def test_a_malformed_rule_is_a_recurrence_error():
    with pytest.raises(RecurrenceError):
        graph_from_rrule("FREQ=HOURLY;COUNT=2", datetime(2026, 3, 2, 9), LONDON)


def test_shortened_graph_range_ends_on_the_horizon_and_keeps_the_pattern():
    original = series(days=("monday",), interval=2, first_day="monday")
    capped = shortened_graph_range(original, HORIZON)
    assert capped.pattern == original.pattern
    assert capped.to_graph()["range"] == {"type": "endDate", "startDate": "2026-03-02", "endDate": "2029-02-14",
                                          "recurrenceTimeZone": LONDON}
    assert sandbox_starts(capped, datetime(2026, 3, 2, 9), date(2100, 1, 1)) == \
        starts_of(rrule_from_graph(original, datetime(2026, 3, 2, 9), horizon_date=HORIZON))
    with pytest.raises(ValueError):
        shortened_graph_range(original, date(2026, 1, 1))


# ---------------------------------------------------------------- generated: equivalence of expansions

_first_starts = st.builds(
    lambda day, hour, quarter: datetime.combine(day, datetime.min.time()).replace(hour=hour, minute=15 * quarter),
    st.dates(date(2025, 10, 1), date(2027, 11, 30)),
    # 01:00–01:59 does not exist on the spring change day in London (both sides keep wall time; localising a
    # time that does not exist is timeutil's business, not the mapping's).
    st.integers(0, 23).filter(lambda h: h != 1), st.integers(0, 3))
_days = st.lists(st.sampled_from(GRAPH_DAYS), min_size=1, max_size=7, unique=True)


@st.composite
def _recurrences(draw, *, supported_only: bool):
    first = draw(_first_starts)
    kind = draw(st.sampled_from(["daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly"]))
    interval = draw(st.integers(1, 4 if kind != "daily" else 10))
    days, first_day, index, month, day = (), None, None, None, None
    if kind == "weekly":
        days = tuple(draw(_days))
        first_day = "monday" if supported_only and interval > 1 else draw(st.sampled_from(GRAPH_DAYS))
    elif kind == "absoluteMonthly":
        day = draw(st.integers(1, 28 if supported_only else 31))
    elif kind == "relativeMonthly":
        days = (draw(st.sampled_from(GRAPH_DAYS)),) if supported_only else tuple(draw(_days))
        index = draw(st.sampled_from(["first", "second", "third", "fourth", "last"]))
    elif kind == "absoluteYearly":
        month, day = first.month, first.day  # Graph's UI makes the first occurrence the start date
        if supported_only and (month, day) == (2, 29):
            day = 28
            first = first.replace(day=28)
    range_type = draw(st.sampled_from(["noEnd", "endDate", "numbered"]))
    end = first.date() + timedelta(days=draw(st.integers(0, 1500))) if range_type == "endDate" else None
    count = draw(st.integers(1, 400)) if range_type == "numbered" else None
    horizon = first.date() + timedelta(days=draw(st.integers(30, 1080)))
    return series(kind, interval=interval, days=days, first_day=first_day, index=index, month=month, day=day,
                  range_type=range_type, start=first.date(), end=end, count=count), first, horizon


_SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_recurrences(supported_only=True))
def test_generated_supported_series_expand_exactly_as_outlook_does(case):
    recurrence, first, horizon = case
    outlook = sandbox_starts(recurrence, first, horizon)
    if not outlook:
        with pytest.raises(UnsupportedRecurrence):
            rrule_from_graph(recurrence, first, horizon_date=horizon, zone_name=LONDON)
        return
    mapped = rrule_from_graph(recurrence, first, horizon_date=horizon, zone_name=LONDON)
    assert starts_of(mapped) == outlook
    assert mapped.first_start == outlook[0]
    rule = Recurrence.parse(mapped.rrule)
    assert rule.until is None or rule.until <= horizon
    if recurrence.range.type == "noEnd":
        assert mapped.shortened and mapped.original_end is None
    else:
        assert mapped.shortened == (len(sandbox_starts(recurrence, first, date(2100, 1, 1))) > len(outlook))


@_SETTINGS
@given(_recurrences(supported_only=False))
def test_generated_series_either_map_exactly_or_are_refused(case):
    recurrence, first, horizon = case
    try:
        mapped = rrule_from_graph(recurrence, first, horizon_date=horizon, zone_name=LONDON)
    except UnsupportedRecurrence as refused:
        assert refused.reason
        if "no occurrence" in refused.reason:
            assert sandbox_starts(recurrence, first, horizon) == []
        event(f"refused: {refused.reason[:40]}")
        return
    event(f"mapped {recurrence.pattern.type}")
    assert starts_of(mapped) == sandbox_starts(recurrence, first, horizon)


_rules = st.builds(
    lambda freq, interval, extra, end: f"FREQ={freq}" + (f";INTERVAL={interval}" if interval > 1 else "") + extra + end,
    st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]), st.integers(1, 4),
    st.sampled_from(["", ";BYDAY=MO,WE,FR", ";BYDAY=TU", ";BYMONTHDAY=10", ";BYDAY=2TH", ";BYDAY=-1MO"]),
    st.one_of(st.integers(1, 300).map(lambda n: f";COUNT={n}"),
              st.dates(date(2026, 1, 1), date(2028, 12, 31)).map(lambda d: f";UNTIL={d:%Y%m%d}")))


@_SETTINGS
@given(_rules, _first_starts)
def test_generated_roomsync_rules_written_to_outlook_expand_alike(rrule, first):
    try:
        rule = Recurrence.parse(rrule)
    except RecurrenceError:
        return  # e.g. BYMONTHDAY with WEEKLY: not a Roomsync rule
    try:
        recurrence = graph_from_rrule(rrule, first, LONDON)
    except UnsupportedRecurrence as refused:
        assert refused.reason
        event(f"refused: {refused.reason[:40]}")
        return
    event(f"written {recurrence.pattern.type}")
    assert sandbox_starts(recurrence, first, date(3999, 1, 1)) == rule.starts(first)
