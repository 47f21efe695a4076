"""The Microsoft Graph HTTP client: headers, paging, `$batch`, retries, typed results.

Public API:
- `RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=20.0, deadline=60.0)` — attempts per call, the
  full-jitter exponential back-off (`uniform(0, min(max_delay, base_delay * 2**(n-1)))`, AWS Architecture
  Blog "Exponential Backoff And Jitter") and the total time a call may take including waits.
- `GraphClient(settings, *, tokens=None, session=None, limiter=None, retry=None, sleep=time.sleep,
  observer=None)` — `tokens`/`session` default to the process's (`auth.token_provider`/`http_session`),
  `limiter` to `NullLimiter()`. `calls` counts HTTP requests sent to Graph (every attempt); `observer`, if
  given, is called `observer(event, **info)` for "request" (method, url, status, attempt) and "retry"
  (delay, reason) — tests and the benchmark count with it.
  Methods (mailbox-addressed ones take the mailbox's email address or id; see limiter.py on naming):
  - directory: `get_user(key, probe_mailbox=False)`, `iter_users(search=None, page_size=999)`,
    `list_users(...)`, `search_users(prefix, limit=10)`, `has_mailbox(mailbox)`, `get_photo(key)` → bytes
    or None, `list_contacts(mailbox, limit=None)`, `list_people(mailbox, limit=25)`;
  - places: `iter_rooms(room_list_email=None, page_size=100)`, `list_rooms(...)`, `list_room_lists()`;
  - events: `get_event`, `create_event(mailbox, draft)`, `update_event(mailbox, event_id, draft)`,
    `delete_event`, `cancel_event(mailbox, event_id, comment=None)`, `iter_instances(mailbox, event_id, start, end)`, `decline_event(mailbox, event_id,
    comment=None, send_response=True)`, `iter_calendar_view(mailbox, start, end)`, `calendar_view(...)`,
    `calendar_view_delta(mailbox, start=None, end=None, delta_link=None)` → `DeltaPage`,
    `find_events_by_ical_uid(mailbox, ical_uid)` → `[Event]` (single instances and series masters of that
    mailbox whose iCalUId matches: a meeting's copies in the organizer's, attendees' and rooms' calendars
    share it, a master's names its series; `'` is escaped as `''` per OData);
  - subscriptions: `create_subscription(resource, notification_url, expiration, client_state,
    lifecycle_url=None, change_type="created,updated,deleted")`, `renew_subscription(id, expiration)`,
    `get_subscription(id)` (NotFound once Graph removed or expired it), `delete_subscription(id)`;
  - `batch(requests)` → `[BatchResult]` in request order, and the request builders `get_user_request`,
    `get_event_request`, `calendar_view_request` (first page only), `create_event_request`,
    `delete_event_request`, `find_events_by_ical_uid_request` (value: a tuple of `Event`, first page only),
    `update_event_request(request_id, mailbox, event_id, draft)` (PATCH with `draft.to_graph(partial=True)`;
    value: the `Event`), `decline_event_request(request_id, mailbox, event_id, comment, send_response=True)`
    and `cancel_event_request(request_id, mailbox, event_id, comment)` (202, no value; POSTs, so not re-sent
    after a 429/5xx unless built with `idempotent=True`). Every builder takes `**kwargs` for `BatchRequest`
    (`depends_on`, `idempotent`).

Every request sends `Prefer: IdType="ImmutableId", outlook.timezone="UTC"` (immutable ids apply only to the
request that asks, graph-facts §3.6; times come back in UTC, §3.4), `Accept: application/json` and one
`client-request-id` per logical call (kept across its retries, so Microsoft support can trace it).

Paging follows `@odata.nextLink` verbatim to the end ([D:concepts/paging.md]); a link to another origin is
refused (it would carry our token away). `$select` keeps payloads small except where Graph forbids it
(calendarView delta). `$batch` sends at most 20 requests per POST, keeping each request with everything it
`dependsOn` in the same POST, and maps each sub-response to a typed value or a typed error (424 →
`FailedDependency`); sub-requests answered 429/503/504 are re-sent (with those that failed only because of
them) under the same policy.

Retries (graph-facts §5.1): 429/503/504 wait `Retry-After` when given (seconds or an HTTP date), else the
back-off; connection errors and timeouts back off too; a call stops after `max_attempts` or when the next
wait would cross `deadline`, raising the typed error (`Throttled.retry_after` tells a job when to come
back). A 401 invalidates the cached token and retries once with a fresh one. A token endpoint that cannot
be reached (or answers 5xx) is retried like a connection error: nothing went to Graph yet. A TLS
verification failure is never retried. A request that is not idempotent — a POST, unless it says otherwise (an event create that
carries a `transactionId`, which Graph de-duplicates) — is never re-sent after it may have reached the
server: any failure raises at once (the 401 refresh excepted: an unauthenticated request runs nothing).
"""

from __future__ import annotations

import random
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlencode, urlsplit

import requests

from .auth import TokenProvider, http_session, token_provider
from .errors import (ConnectionFailed, GraphError, MailboxNotEnabled, NotFound, ServiceUnavailable,
                     SyncStateExpired, Throttled, from_response)
from .limiter import NullLimiter, mailbox_key
from .settings import GraphSettings
from .types import (BatchRequest, BatchResult, Contact, DeltaPage, Event, EventDraft, Person, Room, RoomList,
                    Subscription, User)

RETRY_STATUSES = frozenset({429, 503, 504})
MAX_BATCH = 20
PREFER = 'IdType="ImmutableId", outlook.timezone="UTC"'

USER_SELECT = "id,userPrincipalName,mail,displayName,givenName,surname,accountEnabled"
ROOM_SELECT = "id,emailAddress,displayName,capacity,building,floorNumber,floorLabel,bookingType"
ROOM_LIST_SELECT = "id,emailAddress,displayName"
CONTACT_SELECT = "id,displayName,givenName,surname,emailAddresses,companyName"
PERSON_SELECT = ("id,displayName,givenName,surname,scoredEmailAddresses,userPrincipalName,personType,department,"
                 "jobTitle")
_EVENT_FIELDS = ("id,iCalUId,changeKey,subject,bodyPreview,start,end,isAllDay,sensitivity,organizer,attendees,"
                 "location,isCancelled,type,seriesMasterId,recurrence,isOnlineMeeting,onlineMeeting,transactionId,"
                 "showAs,responseStatus,originalStart")
EVENT_SELECT = _EVENT_FIELDS + ",lastModifiedDateTime"
CALENDAR_VIEW_SELECT = _EVENT_FIELDS  # Graph refuses createdDateTime/lastModifiedDateTime in $select here


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    deadline: float = 60.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))


def _segment(value: str) -> str:
    return quote(value, safe="@=")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("times must be aware datetimes")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ical_uid_query(events_path: str, ical_uid: str) -> str:
    """`events_path` with `$filter=iCalUId eq '…'` (OData doubles a quote inside a string literal) and
    `$select`; spaces as %20, not '+', which some OData servers read literally."""
    literal = ical_uid.replace("'", "''")
    query = urlencode({"$filter": f"iCalUId eq '{literal}'", "$select": EVENT_SELECT}, quote_via=quote)
    return f"{events_path}?{query}"


def _json_or_none(response: requests.Response):
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


class GraphClient:
    def __init__(self, settings: GraphSettings, *, tokens: TokenProvider | None = None,
                 session: requests.Session | None = None, limiter=None, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 observer: Callable[..., None] | None = None):
        self.settings = settings
        self.session = session or http_session(settings)
        self.tokens = tokens or token_provider(settings)
        self.limiter = limiter or NullLimiter()
        self.retry = retry or RetryPolicy()
        self.sleep, self.observer = sleep, observer
        self.base_url = settings.base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._origin = (parts.scheme, parts.netloc.lower())
        self.calls = 0

    @property
    def app_id(self) -> str:
        return self.settings.client_id or ""

    def __repr__(self) -> str:
        return f"GraphClient({self.settings!r})"

    # ------------------------------------------------------------ transport

    def _url(self, path_or_url: str) -> str:
        if "://" in path_or_url:
            parts = urlsplit(path_or_url)
            if (parts.scheme, parts.netloc.lower()) != self._origin:
                raise GraphError(f"Refusing to follow a link to {parts.scheme}://{parts.netloc}: it is not "
                                 "the configured Graph endpoint.", code="foreignLink")
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def _notify(self, event: str, **info) -> None:
        if self.observer is not None:
            self.observer(event, **info)

    def _headers(self, token: str, extra: dict | None, request_id: str, prefer: str | None) -> dict:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                   "Prefer": PREFER + (f", {prefer}" if prefer else ""), "client-request-id": request_id,
                   "return-client-request-id": "true"}
        headers.update(extra or {})
        return headers

    def _wait_or_raise(self, error: GraphError, attempt: int, started: float, delay: float) -> None:
        elapsed = time.monotonic() - started
        if attempt >= self.retry.max_attempts or elapsed + delay > self.retry.deadline:
            if isinstance(error, Throttled) and error.retry_after is None:
                error.retry_after = delay
            raise error
        self._notify("retry", delay=delay, reason=error.code or type(error).__name__, attempt=attempt)
        self.sleep(delay)

    def _send(self, method: str, path_or_url: str, *, params: dict | None = None, json_body: Any = None,
              headers: dict | None = None, prefer: str | None = None, mailboxes: tuple[str, ...] = (),
              retry_safe: bool | None = None) -> requests.Response:
        url = self._url(path_or_url)
        retry_safe = method.upper() != "POST" if retry_safe is None else retry_safe
        request_id = str(uuid.uuid4())
        started, attempt, refreshed = time.monotonic(), 0, False
        slots = sorted({mailbox_key(m) for m in mailboxes if m})  # one order everywhere: no deadlock
        while True:
            attempt += 1
            try:
                token = self.tokens.token()
            except ServiceUnavailable as error:  # the token endpoint is down: nothing was sent to Graph yet
                self._wait_or_raise(error, attempt, started, self.retry.backoff(attempt))
                continue
            sent_headers = self._headers(token, headers, request_id, prefer)
            try:
                with ExitStack() as stack:
                    for mailbox in slots:
                        stack.enter_context(self.limiter.slot(self.app_id, mailbox))
                    self.calls += 1
                    response = self.session.request(method, url, params=params, json=json_body,
                                                    headers=sent_headers, timeout=self.settings.timeouts)
            except requests.exceptions.SSLError:
                raise ConnectionFailed("TLS verification of the Graph endpoint failed (check GRAPH_CA_BUNDLE).",
                                       code="tlsError") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                timed_out = isinstance(exc, requests.Timeout)
                error = ConnectionFailed(f"{'Timed out' if timed_out else 'Could not connect'} calling Graph "
                                         f"({type(exc).__name__}).", code="timeout" if timed_out else "connectionError")
                self._notify("request", method=method, url=url, status=None, attempt=attempt)
                if not retry_safe:
                    raise error from None
                self._wait_or_raise(error, attempt, started, self.retry.backoff(attempt))
                continue
            status = response.status_code
            self._notify("request", method=method, url=url, status=status, attempt=attempt)
            if status < 400:
                return response
            error = from_response(status, _json_or_none(response), response.headers)
            if status == 401 and not refreshed:
                refreshed = True  # the token was revoked or expired early: one fresh token, one more try
                self.tokens.invalidate()
                continue
            if status in RETRY_STATUSES and retry_safe:
                delay = error.retry_after if error.retry_after is not None else self.retry.backoff(attempt)
                self._wait_or_raise(error, attempt, started, delay)
                continue
            raise error

    def _get_json(self, path: str, params: dict | None = None, *, mailbox: str | None = None,
                  headers: dict | None = None, prefer: str | None = None) -> dict:
        response = self._send("GET", path, params=params, headers=headers, prefer=prefer,
                              mailboxes=(mailbox,) if mailbox else ())
        return _json_or_none(response) or {}

    def _pages(self, path: str, params: dict | None = None, *, mailbox: str | None = None,
               headers: dict | None = None, prefer: str | None = None) -> Iterator[dict]:
        url: str | None = path
        seen: set[str] = set()
        while url:
            body = self._get_json(url, params, mailbox=mailbox, headers=headers, prefer=prefer)
            yield body
            params = None  # a nextLink carries every query option already
            url = body.get("@odata.nextLink")
            if url in seen:
                raise GraphError("Graph repeated a nextLink; stopping rather than looping.", code="pagingLoop")
            if url:
                seen.add(url)

    def _values(self, path: str, params: dict | None = None, **kwargs) -> Iterator[dict]:
        for page in self._pages(path, params, **kwargs):
            yield from page.get("value") or []

    # ------------------------------------------------------------ directory

    def get_user(self, key: str, *, probe_mailbox: bool = False) -> User:
        user = User.from_graph(self._get_json(f"/users/{_segment(key)}", {"$select": USER_SELECT}))
        if probe_mailbox:
            from dataclasses import replace

            user = replace(user, has_mailbox=self.has_mailbox(user.mail or user.id))
        return user

    def iter_users(self, search: str | None = None, *, page_size: int = 999) -> Iterator[User]:
        params = {"$select": USER_SELECT, "$top": str(page_size)}
        headers = None
        if search:
            term = search.replace('"', "").strip()
            params["$search"] = f'"displayName:{term}" OR "mail:{term}"'
            headers = {"ConsistencyLevel": "eventual"}  # advanced directory query (graph-facts §2.3)
        for item in self._values("/users", params, headers=headers):
            yield User.from_graph(item)

    def list_users(self, search: str | None = None, *, page_size: int = 999) -> list[User]:
        return list(self.iter_users(search, page_size=page_size))

    def search_users(self, prefix: str, *, limit: int = 10) -> list[User]:
        """The first `limit` directory users whose name or address has a word starting with `prefix`."""
        term = prefix.replace('"', "").strip()
        if not term:
            return []
        params = {"$select": USER_SELECT, "$top": str(limit), "$orderby": "displayName",
                  "$search": f'"displayName:{term}" OR "mail:{term}"', "$count": "true"}
        body = self._get_json("/users", params, headers={"ConsistencyLevel": "eventual"})
        return [User.from_graph(item) for item in (body.get("value") or [])[:limit]]

    def has_mailbox(self, mailbox: str) -> bool:
        """Whether `mailbox` has an Exchange Online mailbox Graph can reach (False: none, or no such user)."""
        try:
            self._get_json(f"/users/{_segment(mailbox)}/events", {"$top": "1", "$select": "id"}, mailbox=mailbox)
        except (MailboxNotEnabled, NotFound):
            return False
        return True

    def get_photo(self, key: str) -> bytes | None:
        try:
            response = self._send("GET", f"/users/{_segment(key)}/photo/$value", mailboxes=(key,))
        except NotFound:  # no photo (or no such user): the caller shows initials
            return None
        return response.content or None

    def list_contacts(self, mailbox: str, *, limit: int | None = None, page_size: int = 100) -> list[Contact]:
        found = []
        for item in self._values(f"/users/{_segment(mailbox)}/contacts",
                                 {"$select": CONTACT_SELECT, "$top": str(page_size)}, mailbox=mailbox):
            found.append(Contact.from_graph(item))
            if limit is not None and len(found) >= limit:
                break
        return found

    def list_people(self, mailbox: str, *, limit: int = 25) -> list[Person]:
        """The mailbox's most relevant people (relevance order; the first `limit`, not the whole list)."""
        found = []
        for item in self._values(f"/users/{_segment(mailbox)}/people",
                                 {"$select": PERSON_SELECT, "$top": str(min(limit, 100))}, mailbox=mailbox):
            found.append(Person.from_graph(item))
            if len(found) >= limit:
                break
        return found

    # ------------------------------------------------------------ places

    def iter_rooms(self, room_list_email: str | None = None, *, page_size: int = 100) -> Iterator[Room]:
        path = (f"/places/{_segment(room_list_email)}/microsoft.graph.roomlist/rooms" if room_list_email
                else "/places/microsoft.graph.room")
        for item in self._values(path, {"$select": ROOM_SELECT, "$top": str(page_size)}):
            yield Room.from_graph(item)

    def list_rooms(self, room_list_email: str | None = None, *, page_size: int = 100) -> list[Room]:
        return list(self.iter_rooms(room_list_email, page_size=page_size))

    def list_room_lists(self) -> list[RoomList]:
        return [RoomList.from_graph(item) for item in
                self._values("/places/microsoft.graph.roomlist", {"$select": ROOM_LIST_SELECT, "$top": "100"})]

    # ------------------------------------------------------------ events

    def _event_path(self, mailbox: str, event_id: str | None = None, action: str | None = None) -> str:
        path = f"/users/{_segment(mailbox)}/events"
        if event_id is not None:
            path += f"/{_segment(event_id)}"
        if action:
            path += f"/{action}"
        return path

    def get_event(self, mailbox: str, event_id: str) -> Event:
        return Event.from_graph(self._get_json(self._event_path(mailbox, event_id), {"$select": EVENT_SELECT},
                                               mailbox=mailbox))

    def create_event(self, mailbox: str, draft: EventDraft) -> Event:
        """POST the event. Re-sent after a timeout or 5xx only when `draft.transaction_id` is set: Graph then
        answers a repeat with the event it already made instead of making a second one."""
        response = self._send("POST", self._event_path(mailbox), json_body=draft.to_graph(),
                              mailboxes=(mailbox,), retry_safe=bool(draft.transaction_id))
        return Event.from_graph(_json_or_none(response) or {})

    def update_event(self, mailbox: str, event_id: str, draft: EventDraft) -> Event:
        response = self._send("PATCH", self._event_path(mailbox, event_id), json_body=draft.to_graph(partial=True),
                              mailboxes=(mailbox,))
        return Event.from_graph(_json_or_none(response) or {})

    def delete_event(self, mailbox: str, event_id: str) -> None:
        """Delete; a retried delete whose first attempt went through answers `NotFound` — callers deleting
        for good may treat `NotFound` as done."""
        self._send("DELETE", self._event_path(mailbox, event_id), mailboxes=(mailbox,))

    def cancel_event(self, mailbox: str, event_id: str, comment: str | None = None) -> None:
        self._send("POST", self._event_path(mailbox, event_id, "cancel"), json_body={"comment": comment or ""},
                   mailboxes=(mailbox,))

    def decline_event(self, mailbox: str, event_id: str, comment: str | None = None, *,
                      send_response: bool = True) -> None:
        self._send("POST", self._event_path(mailbox, event_id, "decline"),
                   json_body={"comment": comment or "", "sendResponse": send_response}, mailboxes=(mailbox,))

    def find_events_by_ical_uid(self, mailbox: str, ical_uid: str) -> list[Event]:
        """Events (single instances and series masters) of `mailbox` with this iCalUId, every page."""
        return [Event.from_graph(item) for item in self._values(_ical_uid_query(self._event_path(mailbox), ical_uid),
                                                                 mailbox=mailbox)]

    def iter_calendar_view(self, mailbox: str, start: datetime, end: datetime, *,
                           page_size: int = 100) -> Iterator[Event]:
        params = {"startDateTime": _iso(start), "endDateTime": _iso(end), "$select": CALENDAR_VIEW_SELECT,
                  "$top": str(page_size)}
        for item in self._values(f"/users/{_segment(mailbox)}/calendarView", params, mailbox=mailbox):
            yield Event.from_graph(item)

    def iter_instances(self, mailbox: str, event_id: str, start: datetime, end: datetime, *,
                       page_size: int = 500) -> Iterator[Event]:
        """The occurrences and exceptions of the series `event_id` in [start, end)."""
        params = {"startDateTime": _iso(start), "endDateTime": _iso(end), "$select": CALENDAR_VIEW_SELECT,
                  "$top": str(page_size)}
        for item in self._values(f"{self._event_path(mailbox, event_id)}/instances", params, mailbox=mailbox):
            yield Event.from_graph(item)

    def calendar_view(self, mailbox: str, start: datetime, end: datetime, *, page_size: int = 100) -> list[Event]:
        return list(self.iter_calendar_view(mailbox, start, end, page_size=page_size))

    def calendar_view_delta(self, mailbox: str, *, start: datetime | None = None, end: datetime | None = None,
                            delta_link: str | None = None, page_size: int = 100) -> DeltaPage:
        """One whole delta round: the first with a window (`start`, `end`), later ones from the stored
        `delta_link` (its token encodes the window; graph-facts §3.5). Replayed items are kept once (the last
        copy). An expired token raises `SyncStateExpired`: start again with a window."""
        if delta_link:
            parts = urlsplit(delta_link)
            if (parts.scheme, parts.netloc.lower()) != self._origin:  # e.g. the tenant endpoint moved
                raise SyncStateExpired("The deltaLink belongs to another Graph endpoint; start a new round.",
                                       code="foreignDeltaLink")
            path, params = delta_link, None
        elif start is not None and end is not None:
            path = f"/users/{_segment(mailbox)}/calendarView/delta"
            params = {"startDateTime": _iso(start), "endDateTime": _iso(end)}
        else:
            raise ValueError("give a window (start and end) for the first round, then the delta_link")
        events: dict[str, Event] = {}
        removed: dict[str, None] = {}
        last_link = None
        for page in self._pages(path, params, mailbox=mailbox, prefer=f"odata.maxpagesize={page_size}"):
            for item in page.get("value") or []:
                if "@removed" in item:
                    events.pop(item["id"], None)
                    removed[item["id"]] = None
                else:
                    removed.pop(item["id"], None)
                    events[item["id"]] = Event.from_graph(item)
            last_link = page.get("@odata.deltaLink") or last_link
        if not last_link:
            raise SyncStateExpired("The delta round ended without a deltaLink.", code="missingDeltaLink")
        return DeltaPage(events=tuple(events.values()), removed_ids=tuple(removed), delta_link=last_link)

    # ------------------------------------------------------------ subscriptions

    def create_subscription(self, resource: str, notification_url: str, expiration: datetime, client_state: str,
                            *, lifecycle_url: str | None = None,
                            change_type: str = "created,updated,deleted") -> Subscription:
        body = {"changeType": change_type, "notificationUrl": notification_url, "resource": resource,
                "expirationDateTime": _iso(expiration), "clientState": client_state,
                "latestSupportedTlsVersion": "v1_2"}
        if lifecycle_url:
            body["lifecycleNotificationUrl"] = lifecycle_url
        response = self._send("POST", "/subscriptions", json_body=body)  # a repeat would subscribe twice
        return Subscription.from_graph(_json_or_none(response) or {})

    def renew_subscription(self, subscription_id: str, expiration: datetime) -> Subscription:
        response = self._send("PATCH", f"/subscriptions/{_segment(subscription_id)}",
                              json_body={"expirationDateTime": _iso(expiration)})
        return Subscription.from_graph(_json_or_none(response) or {})

    def delete_subscription(self, subscription_id: str) -> None:
        self._send("DELETE", f"/subscriptions/{_segment(subscription_id)}")

    def get_subscription(self, subscription_id: str) -> Subscription:
        response = self._send("GET", f"/subscriptions/{_segment(subscription_id)}")
        return Subscription.from_graph(_json_or_none(response) or {})

    # ------------------------------------------------------------ $batch

    def get_user_request(self, request_id: str, key: str) -> BatchRequest:
        return BatchRequest(request_id, "GET", f"/users/{_segment(key)}?{urlencode({'$select': USER_SELECT})}",
                            parse=User.from_graph)

    def get_event_request(self, request_id: str, mailbox: str, event_id: str, **kwargs) -> BatchRequest:
        return BatchRequest(request_id, "GET",
                            f"{self._event_path(mailbox, event_id)}?{urlencode({'$select': EVENT_SELECT})}",
                            mailbox=mailbox, parse=Event.from_graph, **kwargs)

    def calendar_view_request(self, request_id: str, mailbox: str, start: datetime, end: datetime, *,
                              top: int = 100, **kwargs) -> BatchRequest:
        """The first page only (up to `top` events): a batch cannot follow nextLinks."""
        query = urlencode({"startDateTime": _iso(start), "endDateTime": _iso(end), "$select": CALENDAR_VIEW_SELECT,
                           "$top": str(top)})
        return BatchRequest(request_id, "GET", f"/users/{_segment(mailbox)}/calendarView?{query}", mailbox=mailbox,
                            parse=lambda body: tuple(Event.from_graph(v) for v in body.get("value") or []),
                            **kwargs)

    def create_event_request(self, request_id: str, mailbox: str, draft: EventDraft, **kwargs) -> BatchRequest:
        return BatchRequest(request_id, "POST", self._event_path(mailbox), body=draft.to_graph(),
                            headers={"Content-Type": "application/json"}, mailbox=mailbox,
                            idempotent=bool(draft.transaction_id), parse=Event.from_graph, **kwargs)

    def delete_event_request(self, request_id: str, mailbox: str, event_id: str, **kwargs) -> BatchRequest:
        return BatchRequest(request_id, "DELETE", self._event_path(mailbox, event_id), mailbox=mailbox, **kwargs)

    def find_events_by_ical_uid_request(self, request_id: str, mailbox: str, ical_uid: str,
                                        **kwargs) -> BatchRequest:
        """The first page only (a batch cannot follow nextLinks; a meeting has one copy per calendar)."""
        return BatchRequest(request_id, "GET", _ical_uid_query(self._event_path(mailbox), ical_uid), mailbox=mailbox,
                            parse=lambda body: tuple(Event.from_graph(v) for v in body.get("value") or []),
                            **kwargs)

    def update_event_request(self, request_id: str, mailbox: str, event_id: str, draft: EventDraft,
                             **kwargs) -> BatchRequest:
        return BatchRequest(request_id, "PATCH", self._event_path(mailbox, event_id),
                            body=draft.to_graph(partial=True), headers={"Content-Type": "application/json"},
                            mailbox=mailbox, parse=Event.from_graph, **kwargs)

    def decline_event_request(self, request_id: str, mailbox: str, event_id: str, comment: str | None = None,
                              send_response: bool = True, **kwargs) -> BatchRequest:
        return BatchRequest(request_id, "POST", self._event_path(mailbox, event_id, "decline"),
                            body={"comment": comment or "", "sendResponse": send_response},
                            headers={"Content-Type": "application/json"}, mailbox=mailbox, **kwargs)

    def cancel_event_request(self, request_id: str, mailbox: str, event_id: str, comment: str | None = None,
                             **kwargs) -> BatchRequest:
        return BatchRequest(request_id, "POST", self._event_path(mailbox, event_id, "cancel"),
                            body={"comment": comment or ""}, headers={"Content-Type": "application/json"},
                            mailbox=mailbox, **kwargs)

    def batch(self, batch_requests: list[BatchRequest]) -> list[BatchResult]:
        by_id: dict[str, BatchRequest] = {}
        for item in batch_requests:
            if item.id.lower() in by_id:
                raise ValueError(f"batch request id {item.id!r} is used twice")
            by_id[item.id.lower()] = item
        for item in batch_requests:
            for dependency in item.depends_on:
                if dependency.lower() not in by_id or dependency.lower() == item.id.lower():
                    raise ValueError(f"{item.id!r} depends on {dependency!r}, which is not another request here")
        results: dict[str, BatchResult] = {}
        for chunk in _chunks(batch_requests):
            results.update(self._batch_chunk(chunk))
        return [results[item.id] for item in batch_requests]

    def _batch_item(self, item: BatchRequest, pending_ids: set[str]) -> dict:
        headers = {"Prefer": PREFER, **(item.headers or {})}
        entry: dict[str, Any] = {"id": item.id, "method": item.method.upper(), "url": item.url, "headers": headers}
        if item.body is not None:
            entry["body"] = item.body
            headers.setdefault("Content-Type", "application/json")
        depends = [d for d in item.depends_on if d.lower() in pending_ids]  # others succeeded in an earlier round
        if depends:
            entry["dependsOn"] = depends
        return entry

    def _batch_chunk(self, chunk: list[BatchRequest]) -> dict[str, BatchResult]:
        results: dict[str, BatchResult] = {}
        pending = list(chunk)
        started, attempt = time.monotonic(), 0
        while pending:
            attempt += 1
            pending_ids = {item.id.lower() for item in pending}
            payload = {"requests": [self._batch_item(item, pending_ids) for item in pending]}
            response = self._send("POST", "/$batch", json_body=payload,
                                  mailboxes=tuple(item.mailbox for item in pending if item.mailbox),
                                  retry_safe=all(item.retry_safe for item in pending))
            answers = {str(a.get("id")).lower(): a for a in (_json_or_none(response) or {}).get("responses") or []}
            retry: list[BatchRequest] = []
            delays: list[float] = []
            for item in pending:
                answer = answers.get(item.id.lower())
                if answer is None:
                    results[item.id] = BatchResult(item.id, 0, error=GraphError(
                        "The batch response has no answer for this request.", code="missingBatchResponse"))
                    continue
                status = int(answer.get("status") or 0)
                headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
                body = answer.get("body")
                if status < 400:
                    value = item.parse(body) if item.parse is not None and isinstance(body, dict) else None
                    results[item.id] = BatchResult(item.id, status, value=value)
                    continue
                error = from_response(status, body if isinstance(body, dict) else None, headers)
                results[item.id] = BatchResult(item.id, status, error=error)
                if status in RETRY_STATUSES and item.retry_safe:
                    retry.append(item)
                    delays.append(error.retry_after if error.retry_after is not None else self.retry.backoff(attempt))
            if not retry:
                break
            retry_ids = {item.id.lower() for item in retry}
            for item in pending:  # those that failed (424) only because a request being re-sent failed
                if results[item.id].status == 424 and item.retry_safe and item.id.lower() not in retry_ids and \
                        any(d.lower() in retry_ids for d in item.depends_on):
                    retry.append(item)
                    retry_ids.add(item.id.lower())
            delay = max(delays)
            if attempt >= self.retry.max_attempts or time.monotonic() - started + delay > self.retry.deadline:
                break
            self._notify("retry", delay=delay, reason="batch", attempt=attempt)
            self.sleep(delay)
            pending = [item for item in pending if item.id.lower() in retry_ids]
        return results


def _chunks(batch_requests: list[BatchRequest]) -> list[list[BatchRequest]]:
    """Groups of at most 20, each request together with everything it depends on (transitively)."""
    parent = {item.id.lower(): item.id.lower() for item in batch_requests}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for item in batch_requests:
        for dependency in item.depends_on:
            parent[root(dependency.lower())] = root(item.id.lower())
    groups: dict[str, list[BatchRequest]] = {}
    for item in batch_requests:
        groups.setdefault(root(item.id.lower()), []).append(item)
    chunks: list[list[BatchRequest]] = []
    for group in groups.values():
        if len(group) > MAX_BATCH:
            raise ValueError(f"{len(group)} requests depend on each other; a batch holds at most {MAX_BATCH}")
        target = next((c for c in chunks if len(c) + len(group) <= MAX_BATCH), None)
        if target is None:
            chunks.append(list(group))
        else:
            target.extend(group)
    return chunks
