"""Pure parts of the Graph client: error mapping, Retry-After, back-off, batch splitting, JSON ↔ types."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from webapp.graph import (AccessPolicyDenied, AuthFailed, BadRequest, BatchRequest, Conflict, EventDraft,
                          FailedDependency, GraphError, InvalidUser, MailboxNotEnabled, NotFound, PermissionMissing,
                          RetryPolicy, ServiceUnavailable, SyncStateExpired, Throttled)
from webapp.graph.client import _chunks
from webapp.graph.errors import from_response, parse_retry_after
from webapp.graph.types import Event, PatternedRecurrence, Room, parse_graph_datetime


def _body(code, message="whatever the message says", request_id="rid-1"):
    return {"error": {"code": code, "message": message, "innerError": {"request-id": request_id}}}


@pytest.mark.parametrize("status, code, message, expected", [
    (404, "ErrorItemNotFound", "The specified object was not found in the store.", NotFound),
    (404, "Request_ResourceNotFound", "x", NotFound),
    (404, "ErrorInvalidUser", "x", InvalidUser),
    (404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive", MailboxNotEnabled),
    (403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.", PermissionMissing),
    (403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", PermissionMissing),
    (403, "ErrorAccessDenied", "Access to OData is disabled.", AccessPolicyDenied),
    (401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.", AuthFailed),
    (410, "syncStateNotFound", "x", SyncStateExpired),
    (400, "syncStateNotFound", "x", SyncStateExpired),
    (400, "resyncRequired", "x", SyncStateExpired),
    (429, "TooManyRequests", "x", Throttled),
    (429, "UnknownError", "x", Throttled),  # trigger on the status, not the code (graph-facts §5.1)
    (503, "serviceNotAvailable", "x", ServiceUnavailable),
    (504, "GatewayTimeout", "x", ServiceUnavailable),
    (400, "ErrorCalendarEndDateIsEarlierThanStartDate", "x", BadRequest),
    (424, "FailedDependency", "x", FailedDependency),
    (409, "ErrorIrresolvableConflict", "x", Conflict),
    (500, "generalException", "x", GraphError),
])
def test_errors_map_on_status_and_code(status, code, message, expected):
    error = from_response(status, _body(code, message), {"Retry-After": "3"})
    assert type(error) is expected
    assert (error.status, error.code, error.request_id) == (status, code, "rid-1")


def test_only_the_access_policy_case_reads_the_message():
    # A message that merely mentions OData elsewhere is still a missing permission.
    assert type(from_response(403, _body("ErrorAccessDenied", "Denied. Access to OData is disabled."))) \
        is PermissionMissing
    assert type(from_response(404, _body("ErrorItemNotFound", "MailboxNotEnabledForRESTAPI"))) is NotFound


def test_an_error_without_a_graph_body_still_types_and_keeps_the_header_request_id():
    error = from_response(503, None, {"request-id": "hdr-9", "Retry-After": "7"})
    assert type(error) is ServiceUnavailable and error.request_id == "hdr-9" and error.retry_after == 7.0
    assert from_response(404, {"error": {"code": "itemNotFound", "message": "x", "innererror": {}}}).code == \
        "itemNotFound"  # both spellings of innerError


def test_retry_after_in_seconds_or_as_an_http_date():
    now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    assert parse_retry_after("5") == 5.0 and parse_retry_after("0") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("") is None


def test_backoff_is_full_jitter_under_a_ceiling():
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    for attempt in range(1, 12):
        bound = min(4.0, 0.5 * 2 ** (attempt - 1))
        delays = [policy.backoff(attempt) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # jitter spreads over the whole range
    assert max(policy.backoff(30) for _ in range(200)) <= 4.0


def test_batches_split_at_20_and_keep_dependencies_together():
    requests = [BatchRequest(str(i), "GET", f"/users/{i}") for i in range(45)]
    assert [len(c) for c in _chunks(requests)] == [20, 20, 5]
    chain = [BatchRequest("a", "GET", "/a"), BatchRequest("b", "GET", "/b", depends_on=("a",)),
             BatchRequest("c", "GET", "/c", depends_on=("b",))]
    chunks = _chunks([BatchRequest(f"x{i}", "GET", "/x") for i in range(19)] + chain)
    assert [len(c) for c in chunks] == [19, 3] and [r.id for r in chunks[1]] == ["a", "b", "c"]
    too_long = [BatchRequest("0", "GET", "/0")] + [BatchRequest(str(i), "GET", "/", depends_on=(str(i - 1),))
                                                   for i in range(1, 21)]
    with pytest.raises(ValueError):
        _chunks(too_long)


def test_retry_safety_follows_the_method_unless_told():
    assert BatchRequest("1", "GET", "/x").retry_safe and BatchRequest("1", "DELETE", "/x").retry_safe
    assert not BatchRequest("1", "POST", "/x").retry_safe
    assert BatchRequest("1", "POST", "/x", idempotent=True).retry_safe


def test_graph_times_with_seven_digits_come_back_as_aware_utc():
    assert parse_graph_datetime({"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "UTC"}) == \
        datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    assert parse_graph_datetime({"dateTime": "2026-07-01T10:00:00.0000000", "timeZone": "Europe/London"}) == \
        datetime(2026, 7, 1, 9, 0, tzinfo=timezone.utc)
    with pytest.raises(GraphError):
        parse_graph_datetime({"dateTime": "2026-07-01T10:00:00", "timeZone": "Pacific Standard Time"})


def test_drafts_write_utc_and_only_the_recurrence_fields_a_pattern_needs():
    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    recurrence = PatternedRecurrence.from_graph({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday",
                    "index": "first", "month": 0, "dayOfMonth": 0},
        "range": {"type": "endDate", "startDate": "2026-03-02", "endDate": "2026-06-01",
                  "recurrenceTimeZone": "UTC", "numberOfOccurrences": 0}})
    body = EventDraft(subject="S", start=start, end=start + timedelta(hours=1), is_private=True,
                      recurrence=recurrence, transaction_id="t-1").to_graph()
    assert body["start"] == {"dateTime": "2026-03-02T08:00:00.0000000", "timeZone": "UTC"}
    assert body["sensitivity"] == "private" and body["transactionId"] == "t-1" and body["responseRequested"]
    assert body["recurrence"]["pattern"] == {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"],
                                             "firstDayOfWeek": "sunday"}
    assert body["recurrence"]["range"]["endDate"] == "2026-06-01" and recurrence.range.end_date == date(2026, 6, 1)
    assert EventDraft(subject="New title").to_graph(partial=True) == {"subject": "New title"}
    with pytest.raises(ValueError):
        EventDraft(subject="S").to_graph()
    with pytest.raises(ValueError):
        EventDraft(subject="S", start=datetime(2026, 3, 2, 9), end=datetime(2026, 3, 2, 10)).to_graph()


def test_rooms_tolerate_nulls_and_string_capacities():
    room = Room.from_graph({"id": "r", "emailAddress": "r@x", "displayName": "R", "capacity": "50",
                            "building": None, "floorNumber": None, "bookingType": None})
    assert (room.capacity, room.building, room.floor, room.booking_type) == (50, None, None, "standard")


def test_private_and_confidential_events_are_private():
    base = {"id": "e", "start": {"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": "UTC"}}
    assert Event.from_graph({**base, "sensitivity": "private"}).is_private
    assert Event.from_graph({**base, "sensitivity": "confidential"}).is_private
    assert not Event.from_graph({**base, "sensitivity": "personal"}).is_private
