"""The Graph client against the sandbox tenant over real HTTPS: MSAL tokens, paging, $batch, every error
class, retries with the sandbox's fault injection, and typed results."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from webapp.graph import (AccessPolicyDenied, AuthFailed, BadRequest, ConnectionFailed, Contact, DeltaPage, Event, EventDraft,
                          FailedDependency, GraphError, InvalidUser, Location, MailboxNotEnabled, NotFound,
                          PermissionMissing, Person, RetryPolicy, Room, RoomList, ServiceUnavailable, Subscription,
                          SyncStateExpired, Throttled, User)
from webapp.graph.types import Attendee, BatchRequest, PatternedRecurrence, RecurrencePattern, RecurrenceRange

BUTLER = "roomsync.butler@roomsync.test"
ROOM = "board-room-a@roomsync.test"
NO_MAILBOX = "ivy.chen@roomsync.test"  # seeded without an Exchange Online licence


def _slot(days: int = 1, hour: int = 10) -> tuple[datetime, datetime]:
    start = (datetime.now(timezone.utc) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return start, start + timedelta(hours=1)


def _draft(subject: str = "Planning", transaction_id: str | None = None, **extra) -> EventDraft:
    start, end = _slot()
    return EventDraft(subject=subject, start=start, end=end, transaction_id=transaction_id, **extra)


def _no_dicts(value, path="value"):
    """Typed all the way down: no Graph JSON (dicts) inside what the client returns."""
    assert not isinstance(value, dict), f"{path} is a dict"
    if dataclasses.is_dataclass(value):
        for item in dataclasses.fields(value):
            _no_dicts(getattr(value, item.name), f"{path}.{item.name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _no_dicts(item, f"{path}[{index}]")


# ---------------------------------------------------------------- tokens

def test_tokens_come_from_msal_over_https_with_the_sandbox_ca_and_are_cached(make_client, monkeypatch, tmp_path):
    bogus = tmp_path / "empty-ca.pem"
    bogus.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))  # must not override the session's verify
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bogus))
    client = make_client()
    assert client.session.verify == client.settings.ca_bundle and client.session.trust_env is False
    assert [r.email for r in client.list_room_lists()] == ["hq-floor1-rooms@roomsync.test",
                                                          "hq-floor2-rooms@roomsync.test"]
    client.list_rooms()
    assert client.tokens.requests == 1  # the second call was served from MSAL's cache


def test_a_wrong_secret_is_auth_failed_with_the_aadsts_code_and_no_secret(sandbox, make_client):
    settings = dataclasses.replace(sandbox.settings, client_secret="not-the-secret")
    client = make_client(settings=settings)
    with pytest.raises(AuthFailed) as caught:
        client.list_rooms()
    assert caught.value.error == "invalid_client" and caught.value.error_codes == (7000215,)
    assert "not-the-secret" not in str(caught.value) and "not-the-secret" not in repr(caught.value)
    assert client.calls == 0  # Graph was never called without a token


def test_a_401_refreshes_the_token_once_and_succeeds(make_client, admin):
    client = make_client()
    client.get_user(BUTLER)
    admin.reset()  # the tenant forgets every token it issued: our cached token now answers 401
    user = client.get_user(BUTLER)
    assert user.mail == BUTLER
    assert client.recorder.statuses() == [200, 401, 200]
    assert client.tokens.requests == 2


def test_a_401_that_persists_after_the_refresh_is_auth_failed(make_client):
    class StaleTokens:
        invalidated = 0

        def token(self):
            return "a-token-the-tenant-never-issued"

        def invalidate(self):
            self.invalidated += 1

    tokens = StaleTokens()
    client = make_client(tokens=tokens)
    with pytest.raises(AuthFailed) as caught:
        client.get_user(BUTLER)
    assert caught.value.status == 401 and caught.value.code == "InvalidAuthenticationToken"
    assert client.recorder.statuses() == [401, 401] and tokens.invalidated == 1


# ---------------------------------------------------------------- paging

def test_users_are_paged_to_the_end_following_next_links(make_client, admin):
    client = make_client()
    users = client.list_users(page_size=7)
    total = admin.state()["documents"]["user"]
    assert len(users) == total == len({u.id for u in users}) > 7
    assert len(client.recorder.requests) == -(-total // 7)  # ceil: one request per page, none wasted
    assert all(isinstance(u, User) for u in users)


def test_rooms_are_paged_to_the_end_and_per_room_list(make_client):
    client = make_client()
    rooms = client.list_rooms(page_size=4)
    assert len(rooms) == 11 and len(client.recorder.requests) == 3
    assert {r.email for r in rooms} >= {ROOM, "atrium@roomsync.test"}
    board = next(r for r in rooms if r.email == ROOM)
    assert (board.display_name, board.capacity, board.floor, board.building, board.booking_type) == \
        ("Board room A", 10, 2, "HQ", "standard")
    floor1 = client.list_rooms("hq-floor1-rooms@roomsync.test", page_size=2)
    assert floor1 and all(r.floor == 1 for r in floor1)


def test_search_uses_the_advanced_query_and_finds_by_word_prefix(make_client):
    client = make_client()
    assert [u.display_name for u in client.search_users("wil")] == ["Emma Wilson"]
    assert client.search_users('   ') == []
    assert [u.mail for u in client.list_users(search="okafor")] == ["daniel.okafor@roomsync.test"]


def test_a_nextlink_to_another_host_is_refused(make_client):
    client = make_client()
    with pytest.raises(GraphError) as caught:
        client._url("https://evil.example/v1.0/users?$skiptoken=x")
    assert caught.value.code == "foreignLink"


# ---------------------------------------------------------------- $batch

def test_a_batch_of_20_is_one_post_and_45_are_split_in_three(make_client):
    client = make_client()
    users = client.list_users()
    client.recorder.requests.clear()
    results = client.batch([client.get_user_request(f"r{i}", u.id) for i, u in enumerate(users[:20])])
    assert len(client.recorder.requests) == 1
    assert [r.value.id for r in results] == [u.id for u in users[:20]]
    assert all(r.ok and isinstance(r.value, User) for r in results)

    client.recorder.requests.clear()
    many = [client.get_user_request(f"q{i}", users[i % len(users)].id) for i in range(45)]
    results = client.batch(many)
    assert len(client.recorder.requests) == 3 and len(results) == 45
    assert [r.id for r in results] == [m.id for m in many] and all(r.status == 200 for r in results)


def test_a_failed_dependency_is_a_typed_error_and_stays_in_its_batch(make_client):
    client = make_client()
    filler = [client.get_user_request(f"f{i}", BUTLER) for i in range(19)]
    first = client.get_event_request("missing", BUTLER, "AAMkAGno-such-event=")
    second = client.get_user_request("after", BUTLER)
    second = dataclasses.replace(second, depends_on=("missing",))
    results = {r.id: r for r in client.batch(filler + [first, second])}
    assert isinstance(results["missing"].error, NotFound) and results["missing"].status == 404
    assert isinstance(results["after"].error, FailedDependency) and results["after"].status == 424
    assert len(client.recorder.requests) == 2  # 19 + the pair of 2 cannot share one batch of 20


def test_a_throttled_request_inside_a_batch_is_resent_alone(make_client, admin):
    client = make_client()
    admin.faults({"errors": [{"status": 429, "share": 1.0, "retryAfter": 1, "path": "/people"}]})
    client.recorder.on_sleep = lambda _s: admin.clear_faults()
    results = client.batch([client.get_user_request("u", BUTLER),
                            BatchRequest("p", "GET", f"/users/{BUTLER}/people?$top=1", mailbox=BUTLER)])
    assert all(r.ok for r in results)
    assert client.recorder.sleeps == [1.0] and len(client.recorder.requests) == 2


# ---------------------------------------------------------------- error classes

def test_every_error_class(make_client, admin):
    client = make_client()
    with pytest.raises(NotFound):
        client.get_event(BUTLER, "AAMkAGno-such-event=")
    with pytest.raises(InvalidUser):
        client.calendar_view("nobody@roomsync.test", *_slot())
    with pytest.raises(MailboxNotEnabled):
        client.calendar_view(NO_MAILBOX, *_slot())
    assert client.has_mailbox(NO_MAILBOX) is False and client.has_mailbox(BUTLER) is True
    start, end = _slot()
    with pytest.raises(BadRequest):
        client.create_event(BUTLER, EventDraft(subject="Backwards", start=end, end=start, transaction_id="tx-back"))
    admin.revoke("Calendars.ReadWrite")
    with pytest.raises(PermissionMissing) as caught:
        client.calendar_view(BUTLER, *_slot())
    assert caught.value.status == 403 and caught.value.code == "ErrorAccessDenied"
    admin.revoke("Place.Read.All")
    with pytest.raises(PermissionMissing):
        client.list_rooms()
    assert client.get_photo("nobody@roomsync.test") is None


def test_an_application_access_policy_is_access_policy_denied_on_its_mailbox_only(make_client, admin):
    """Exchange's application access policy, as the sandbox's fault plays it: every call on the butler's
    mailbox answers 403 ErrorAccessDenied "Access to OData is disabled." (graph-facts §5.3)."""
    client = make_client()
    butler_id = client.get_user(BUTLER).id
    admin.faults({"accessPolicy": {"mailboxes": [BUTLER]}})
    sent = len(client.recorder.requests)
    with pytest.raises(AccessPolicyDenied) as caught:
        client.calendar_view(BUTLER, *_slot())
    error = caught.value
    assert isinstance(error, PermissionMissing)  # a 403 like a missing permission, told apart by its message
    assert (error.status, error.code, error.message) == (403, "ErrorAccessDenied", "Access to OData is disabled.")
    with pytest.raises(AccessPolicyDenied):
        client.create_event(butler_id, _draft(transaction_id="tx-access-policy"))  # by id: the same mailbox
    with pytest.raises(AccessPolicyDenied):
        client.get_photo(BUTLER)  # not mistaken for "no photo"
    assert client.recorder.statuses()[sent:] == [403, 403, 403] and client.recorder.retries == []  # never retried
    assert isinstance(client.calendar_view(ROOM, *_slot()), list)  # other mailboxes are not covered by the policy
    admin.clear_faults()
    assert isinstance(client.calendar_view(BUTLER, *_slot()), list)


def test_an_unknown_delta_token_is_sync_state_expired(make_client):
    client = make_client()
    first = client.calendar_view_delta(BUTLER, start=_slot(0)[0], end=_slot(7)[1])
    forged = first.delta_link.split("$deltatoken=")[0] + "$deltatoken=bm8tc3VjaC1yb3VuZC4w"
    with pytest.raises(SyncStateExpired) as caught:
        client.calendar_view_delta(BUTLER, delta_link=forged)
    assert caught.value.status == 410 and caught.value.code == "syncStateNotFound"


def test_an_expired_delta_token_is_sync_state_expired(make_client, admin):
    client = make_client()
    first = client.calendar_view_delta(BUTLER, start=_slot(0)[0], end=_slot(7)[1])
    admin.expire_delta()
    with pytest.raises(SyncStateExpired) as caught:
        client.calendar_view_delta(BUTLER, delta_link=first.delta_link)
    assert caught.value.status == 410


# ---------------------------------------------------------------- retries

def test_a_429_storm_honours_retry_after_then_gives_up_with_throttled(make_client, admin):
    client = make_client()
    admin.faults({"errors": [{"status": 429, "share": 1.0, "retryAfter": 1, "path": "places"}]})
    with pytest.raises(Throttled) as caught:
        client.list_rooms()
    assert caught.value.retry_after == 1.0
    assert client.recorder.statuses() == [429] * 4  # max_attempts
    assert client.recorder.sleeps == [1.0, 1.0, 1.0]


def test_a_429_storm_that_ends_is_ridden_out(make_client, admin):
    client = make_client()
    admin.faults({"errors": [{"status": 429, "share": 1.0, "retryAfter": 1, "path": "places"}]})
    client.recorder.on_sleep = lambda _s: len(client.recorder.sleeps) == 2 and admin.clear_faults()
    assert len(client.list_rooms()) == 11
    assert client.recorder.statuses() == [429, 429, 200] and client.recorder.sleeps == [1.0, 1.0]


def test_real_mailbox_throttling_is_waited_out_for_real(make_client, admin):
    client = make_client(real_sleep=True)
    admin.throttle(budget=2, windowSeconds=1)
    start, end = _slot()
    began = time.monotonic()
    for _ in range(3):
        client.calendar_view(ROOM, start, end)
    assert 429 in client.recorder.statuses() and client.recorder.statuses()[-1] == 200
    assert time.monotonic() - began >= client.recorder.sleeps[0] - 0.05


def test_a_retry_after_beyond_the_deadline_raises_at_once(make_client, admin):
    client = make_client(retry=RetryPolicy(max_attempts=5, deadline=3.0))
    admin.faults({"errors": [{"status": 429, "share": 1.0, "retryAfter": 30, "path": "places"}]})
    with pytest.raises(Throttled) as caught:
        client.list_rooms()
    assert caught.value.retry_after == 30.0 and client.recorder.sleeps == []  # a job reschedules instead


@pytest.mark.parametrize("status", [503, 504])
def test_503_and_504_are_retried(make_client, admin, status):
    client = make_client()
    admin.faults({"errors": [{"status": status, "share": 1.0, "retryAfter": 0, "path": "users"}]})
    client.recorder.on_sleep = lambda _s: admin.clear_faults()
    assert client.get_user(BUTLER).mail == BUTLER
    assert client.recorder.statuses() == [status, 200]


def test_a_persistent_503_is_service_unavailable(make_client, admin):
    client = make_client()
    admin.faults({"errors": [{"status": 503, "share": 1.0, "retryAfter": 0, "path": "users"}]})
    with pytest.raises(ServiceUnavailable) as caught:
        client.get_user(BUTLER)
    assert caught.value.status == 503 and len(client.recorder.requests) == 4


def test_latency_within_the_read_timeout_is_fine_and_beyond_it_times_out(sandbox, make_client, admin):
    admin.faults({"latency": {"ms": 300, "path": "calendarView"}})
    client = make_client()
    assert client.calendar_view(ROOM, *_slot()) == []
    slow = make_client(settings=dataclasses.replace(sandbox.settings, read_timeout=0.1),
                       retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02))
    with pytest.raises(ConnectionFailed) as caught:
        slow.calendar_view(ROOM, *_slot())
    assert caught.value.code == "timeout" and slow.recorder.statuses() == [None, None]


def test_connection_refused_is_retried_then_raised(sandbox, make_client):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = dataclasses.replace(sandbox.settings, base_url=f"https://127.0.0.1:{closed_port}/v1.0")
    client = make_client(settings=settings)
    with pytest.raises(ConnectionFailed) as caught:
        client.list_rooms()
    assert caught.value.code == "connectionError"
    assert client.recorder.statuses() == [None] * 4 and len(client.recorder.sleeps) == 3


def _events_with_subject(client, subject: str) -> list[Event]:
    start, end = _slot()
    return [e for e in client.calendar_view(BUTLER, start - timedelta(hours=1), end + timedelta(hours=1))
            if e.subject == subject]


def test_a_create_without_transaction_id_is_never_resent(sandbox, make_client, admin):
    admin.faults({"errors": [{"status": 503, "share": 1.0, "retryAfter": 0, "path": "/events$"}]})
    client = make_client()
    with pytest.raises(ServiceUnavailable):
        client.create_event(BUTLER, _draft("No transaction 503"))
    assert client.recorder.statuses() == [503]

    # A timeout is worse: the server may have made the event after we stopped waiting.
    admin.faults({"latency": {"ms": 800, "path": "/events$"}})
    impatient = make_client(settings=dataclasses.replace(sandbox.settings, read_timeout=0.3))
    with pytest.raises(ConnectionFailed):
        impatient.create_event(BUTLER, _draft("No transaction timeout"))
    assert impatient.recorder.statuses() == [None]  # one attempt only
    time.sleep(1.0)
    admin.clear_faults()
    assert len(_events_with_subject(client, "No transaction timeout")) == 1  # resending would have made two


def test_a_create_with_transaction_id_is_resent_and_graph_deduplicates_it(sandbox, make_client, admin):
    admin.faults({"latency": {"ms": 800, "path": "/events$"}})
    client = make_client(settings=dataclasses.replace(sandbox.settings, read_timeout=0.3))
    client.recorder.on_sleep = lambda _s: admin.clear_faults()  # the retry goes through at once
    event = client.create_event(BUTLER, _draft("With transaction", transaction_id="booking-uid-42"))
    assert client.recorder.statuses() == [None, 201]
    time.sleep(1.0)  # the first, timed-out attempt lands on the server too
    found = _events_with_subject(client, "With transaction")
    assert [e.id for e in found] == [event.id] and found[0].transaction_id == "booking-uid-42"


# ---------------------------------------------------------------- events, delta, subscriptions, types

def test_events_round_trip_as_types(make_client):
    client = make_client()
    start, end = _slot(2, 14)
    recurrence = PatternedRecurrence(RecurrencePattern("weekly", 1, ("monday",), "sunday"),
                                     RecurrenceRange("numbered", start.date(), number_of_occurrences=3))
    draft = EventDraft(subject="Weekly sync", start=start, end=end, is_private=True, body_text="Agenda",
                       attendees=(Attendee(ROOM, "Board room A", "resource"),),
                       location=Location("Board room A", ROOM), recurrence=recurrence, transaction_id="tx-series")
    created = client.create_event(BUTLER, draft)
    assert created.type == "seriesMaster" and created.is_private and created.recurrence.range.number_of_occurrences == 3
    assert created.start == start and created.start.tzinfo is not None and created.organizer_email == BUTLER
    fetched = client.get_event(BUTLER, created.id)
    assert fetched.ical_uid == created.ical_uid and fetched.last_modified is not None
    updated = client.update_event(BUTLER, created.id, EventDraft(subject="Weekly sync (moved)"))
    assert updated.subject == "Weekly sync (moved)" and updated.change_key != created.change_key
    occurrences = client.calendar_view(BUTLER, start - timedelta(days=1), start + timedelta(days=30))
    assert {e.series_master_id for e in occurrences if e.type == "occurrence"} == {created.id}
    client.delete_event(BUTLER, created.id)
    with pytest.raises(NotFound):
        client.get_event(BUTLER, created.id)


def test_cancel_and_decline(make_client):
    client = make_client()
    start, end = _slot(3, 9)
    meeting = client.create_event("priya.shah@roomsync.test", EventDraft(
        subject="Review", start=start, end=end, attendees=(Attendee(ROOM, "Board room A", "resource"),),
        location=Location("Board room A", ROOM), transaction_id="tx-review"))
    room_copy = next(e for e in client.calendar_view(ROOM, start, end) if e.ical_uid == meeting.ical_uid)
    client.decline_event(ROOM, room_copy.id, "The room is closed for works")  # the room declines (DESIGN)
    organizer_copy = client.get_event("priya.shah@roomsync.test", meeting.id)
    assert [a.response for a in organizer_copy.room_attendees] == ["declined"]
    client.cancel_event("priya.shah@roomsync.test", meeting.id, "No longer needed")
    with pytest.raises(NotFound):
        client.get_event("priya.shah@roomsync.test", meeting.id)


def test_calendar_view_delta_rounds(make_client):
    client = make_client()
    window = (_slot(0)[0], _slot(7)[1])
    first = client.calendar_view_delta(BUTLER, start=window[0], end=window[1], page_size=2)
    assert isinstance(first, DeltaPage) and first.delta_link
    created = client.create_event(BUTLER, _draft("Delta me", transaction_id="tx-delta"))
    second = client.calendar_view_delta(BUTLER, delta_link=first.delta_link)
    assert [e.id for e in second.events] == [created.id] and second.removed_ids == ()
    client.delete_event(BUTLER, created.id)
    third = client.calendar_view_delta(BUTLER, delta_link=second.delta_link)
    assert third.removed_ids == (created.id,) and third.events == ()
    with pytest.raises(ValueError):
        client.calendar_view_delta(BUTLER)


@pytest.fixture
def webhook():
    hook = Flask("hook")

    @hook.post("/notify")
    def notify():
        if "validationToken" in request.args:
            return request.args["validationToken"], 200, {"Content-Type": "text/plain; charset=utf-8"}
        return "", 202

    server = make_server("127.0.0.1", 0, hook, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/notify"
    server.shutdown()
    thread.join(timeout=5)


def test_subscriptions_are_created_renewed_and_deleted(make_client, webhook):
    client = make_client()
    expiry = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    subscription = client.create_subscription(f"/users/{ROOM}/events", webhook, expiry, "client-state-secret")
    assert isinstance(subscription, Subscription) and subscription.expiration == expiry
    assert "client-state-secret" not in repr(subscription)
    renewed = client.renew_subscription(subscription.id, expiry + timedelta(hours=1))
    assert renewed.id == subscription.id and renewed.expiration == expiry + timedelta(hours=1)
    client.delete_subscription(subscription.id)
    with pytest.raises(NotFound):
        client.renew_subscription(subscription.id, expiry)


def test_everything_returned_is_typed(make_client):
    client = make_client()
    values = [client.get_user(BUTLER, probe_mailbox=True), client.list_users(page_size=50),
              client.list_rooms(), client.list_room_lists(), client.list_contacts("priya.shah@roomsync.test"),
              client.list_people(BUTLER, limit=3), client.calendar_view(ROOM, *_slot()),
              client.create_event(BUTLER, _draft("Typed", transaction_id="tx-typed"))]
    _no_dicts(values)
    assert isinstance(values[0], User) and values[0].has_mailbox is True
    assert all(isinstance(r, Room) for r in values[2]) and all(isinstance(r, RoomList) for r in values[3])
    assert values[4] and all(isinstance(c, Contact) and c.email for c in values[4])
    assert len(values[5]) == 3 and all(isinstance(p, Person) for p in values[5])


def test_photos_are_bytes_or_none(make_client):
    client = make_client()
    users = [u for u in client.list_users() if u.given_name]
    photos = [client.get_photo(u.id) for u in users[:6]]
    assert any(p is None for p in photos) and any(p for p in photos)
    assert all(p is None or p.startswith(b"\x89PNG") for p in photos)


def test_every_request_asks_for_immutable_ids_and_utc_with_explicit_timeouts(make_client):
    client = make_client()
    seen = []
    original = client.session.request

    def spy(method, url, **kwargs):
        seen.append({**(kwargs.get("headers") or {}), "timeout": kwargs.get("timeout")})
        return original(method, url, **kwargs)

    client.session.request = spy
    client.calendar_view(ROOM, *_slot())
    client.batch([client.get_user_request("a", BUTLER)])
    graph_calls = [h for h in seen if "Authorization" in h]
    assert len(graph_calls) == 2
    for headers in graph_calls:
        assert 'IdType="ImmutableId"' in headers["Prefer"] and 'outlook.timezone="UTC"' in headers["Prefer"]
    assert all(h["timeout"] == client.settings.timeouts == (5.0, 30.0) for h in graph_calls)  # explicit timeouts


def test_an_unreachable_token_endpoint_is_retried_then_connection_failed(sandbox, make_client):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = dataclasses.replace(sandbox.settings,
                                   authority=f"https://127.0.0.1:{closed_port}/{sandbox.settings.tenant_id}")
    client = make_client(settings=settings)
    with pytest.raises(ConnectionFailed):
        client.list_rooms()
    assert client.calls == 0 and len(client.recorder.sleeps) == 3  # retried, and Graph never called


def test_a_delta_link_of_another_endpoint_restarts_the_round(make_client):
    client = make_client()
    with pytest.raises(SyncStateExpired) as caught:
        client.calendar_view_delta(BUTLER, delta_link="https://127.0.0.1:1/v1.0/users/x/calendarView/delta?$deltatoken=a")
    assert caught.value.code == "foreignDeltaLink"
