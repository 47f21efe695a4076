"""Change-notification delivery: the sandbox's side of Graph webhooks.

Public API:
- `Delivery(state)` — built once per tenant by `SandboxState.create`; it subscribes to `state.changes` and
  turns every `changes.Change` into change notifications for the matching subscriptions.
  - `validate_endpoint(url) -> bool` — the validation handshake (used by `subscriptions` on create/renew).
  - `notify_lifecycle(subscription, event)` — queue a lifecycle notification (`reauthorizationRequired`,
    `subscriptionRemoved`, `missed`) to the subscription's `lifecycleNotificationUrl`, if it has one.
  - `remove_subscription(id) -> bool` — delete a subscription and send `subscriptionRemoved` (admin API).
  - `set_transport(send | None)` — route every POST through `send(url, json_body)` instead of HTTP (tests,
    in-process apps); see "Transports" below. `None` restores HTTP.
  - `flush(timeout=5.0) -> bool` — run a maintenance sweep, then wait until nothing is queued or in flight.
  - `close()` — stop the background thread.
- `http_transport(url, json_body)` — the default transport (urllib; no proxies, no redirects).
- `flask_transport(app)` — a transport that delivers into a Flask app through its test client.
- `SUBSCRIPTION_GRANTS` — the application permissions that allow event subscriptions.
- `subscription_expired(doc) -> bool`.

Transports: `send(url, json_body)`. With a dict, POST it as JSON (a change or lifecycle notification
collection) and return the HTTP status (an int, or a tuple whose first item is the status). With `None`, POST
a validation request (empty body, `Content-Type: text/plain; charset=utf-8`; `url` already carries
`?validationToken=`) and return `(status, content_type, body_text)`.

Behaviour and where it comes from (graph-facts §4):
- Payload (§4.4): `{"value": [{"subscriptionId", "subscriptionExpirationDateTime", "changeType", "resource",
  "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id", "@odata.etag", "id"},
  "clientState", "tenantId"}]}`; several notifications, possibly for different subscriptions, share one POST
  when they pile up for the same URL (§4.4 "Batching").
- Handshake (§4.2): `POST {url}?validationToken=<token>`; the endpoint must answer 200, `text/plain`, with
  the URL-decoded token as its body, within 10 s. Our tokens contain spaces and colons (as Graph's do:
  "Validation: Testing client application reachability for subscription Request-Id: …") so an endpoint that
  echoes the still-encoded token fails, as it would against Graph.
- Delivery (§4.5): a 3-second client timeout; anything but a 2xx in time is retried with exponential back-off
  for up to 4 hours, then dropped. When change notifications are dropped and the subscription has a lifecycle
  URL, a `missed` lifecycle notification follows (§4.6). The retry schedule itself is not documented: we use
  15 s doubling up to 30 min between attempts. Retry delays and the 4-hour window are divided by
  `SANDBOX_TIME_FACTOR` (tests use e.g. 3600: 4 h → 4 s); the 3 s and 10 s timeouts are not, since they
  bound real network calls. A transport that answers after more than 3 s counts as failed even in-process
  (the receiver may have processed it: the retry is then a duplicate, as with Graph).
- Lifecycle (§4.6): payload `{"subscriptionId", "subscriptionExpirationDateTime", "tenantId", "clientState",
  "lifecycleEvent"}`. `reauthorizationRequired` goes out once the subscription is within
  `REAUTHORIZE_LEAD` of expiry, and again every `REAUTHORIZE_REPEAT` until it is renewed (PATCH) or
  reauthorized (the docs' illustrative schedule ends with "every 15 mins" in the last hour); also at once when
  the app loses its Calendars permission, and while it lacks it no change notifications are produced (they are
  lost, as documented: "Any notifications about resource changes that happen when the change notification
  delivery pauses … are lost"). Subscriptions past `expirationDateTime` stop delivering and are deleted
  without a lifecycle notification (Graph "deletes the subscription"); the admin API's removal sends
  `subscriptionRemoved`.
- Faults (admin API; `state.faults.notification_fate()` decides per change notification, lifecycle ones are
  never faulted): drop (silently: the client must reconcile), duplicate (the copy arrives in a later POST),
  delay (the fault's `delaySeconds`, real seconds, not scaled), reorder (held until the next notification for
  the same URL has been sent, which then goes first; released after `REORDER_MAX_HOLD` if none comes).

Threading: `Change` callbacks run in the writer's thread and only enqueue; one lazily started daemon thread
sends. Queue timing uses the real monotonic clock, captured before freezegun can patch it, so retries keep
their pace while a test freezes the calendar clock; subscription expiry uses `clock.now()` (freezable).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable
from urllib.parse import quote

from .changes import Change
from .clock import iso_z, now, parse_graph_datetime

_log = logging.getLogger(__name__)

# Held in a tuple so freezegun (which swaps module attributes that *are* time.monotonic) leaves it alone.
_REAL_CLOCK = (time.monotonic,)

DELIVERY_TIMEOUT = 3.0  # seconds, §4.5
VALIDATION_TIMEOUT = 10.0  # seconds, §4.2
RETRY_WINDOW = 4 * 3600.0  # seconds, §4.5 "for up to 4 hours"
FIRST_RETRY = 15.0  # seconds; not documented (see module docstring)
MAX_RETRY_GAP = 1800.0  # seconds
BATCH_WINDOW = 0.05  # seconds the sender lingers after waking, so notifications of one burst share a POST
LATER_POST = 3 * BATCH_WINDOW  # due this much later → not in the same POST
REORDER_MAX_HOLD = 1.0  # seconds a notification waits to be overtaken
MAX_BATCH = 100  # notifications per POST
SWEEP_INTERVAL = 60.0  # seconds between expiry/reauthorization sweeps (divided by the time factor)
REAUTHORIZE_LEAD = timedelta(minutes=60)
REAUTHORIZE_REPEAT = timedelta(minutes=15)
SUBSCRIPTION_GRANTS = ("Calendars.Read", "Calendars.ReadWrite")

Transport = Callable[[str, "dict | None"], object]


def _monotonic() -> float:
    return _REAL_CLOCK[0]()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Graph does not follow redirects from a notification endpoint: a 3xx is a failed delivery."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def http_transport(url: str, json_body: dict | None):
    if json_body is None:
        data, content_type, timeout = b"", "text/plain; charset=utf-8", VALIDATION_TIMEOUT
    else:
        data, content_type, timeout = json.dumps(json_body).encode(), "application/json", DELIVERY_TIMEOUT
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    return status, headers.get("Content-Type", ""), body.decode("utf-8", "replace")


def flask_transport(app) -> Transport:
    """Deliver into a Flask app in-process (path and query of `url` are kept; scheme and host ignored)."""
    from urllib.parse import urlsplit

    client = app.test_client()

    def send(url: str, json_body: dict | None):
        parts = urlsplit(url)
        if json_body is None:
            response = client.post(parts.path, query_string=parts.query, data=b"",
                                   content_type="text/plain; charset=utf-8")
        else:
            response = client.post(parts.path, query_string=parts.query, json=json_body)
        return response.status_code, response.headers.get("Content-Type", ""), response.get_data(as_text=True)

    return send


@dataclass
class _Pending:
    url: str
    payload: dict  # one item of the POSTed "value" array
    subscription_id: str
    is_change: bool  # change notifications stop with their subscription; lifecycle ones do not
    first_attempt: float = 0.0  # monotonic time of the first try (set when first sent)
    attempts: int = 0
    sequence: int = field(default=0)


class Delivery:
    def __init__(self, state) -> None:
        self.state = state
        self._transport: Transport = http_transport
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, _Pending]] = []
        self._sequence = itertools.count()
        self._in_flight = 0
        self._sweeps_requested = 0  # flush() asks for a sweep and waits until one that started later is done
        self._sweeps_done = 0
        self._next_sweep = 0.0
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._held: dict[str, list[tuple[float, _Pending]]] = {}  # url → (deadline, notification) to overtake
        state.changes.subscribe(self._on_change)

    # ----- configuration -------------------------------------------------------------------------------

    def set_transport(self, send: Transport | None) -> None:
        self._transport = send or http_transport

    @property
    def time_factor(self) -> float:
        return float(self.state.config.get("SANDBOX_TIME_FACTOR") or 1.0)

    # ----- handshake -----------------------------------------------------------------------------------

    def validate_endpoint(self, url: str) -> bool:
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        separator = "&" if "?" in url else "?"
        started = _monotonic()
        try:
            reply = self._transport(f"{url}{separator}validationToken={quote(token, safe='')}", None)
            status, content_type, text = reply
        except Exception:  # noqa: BLE001 — any transport failure is a failed validation, as for Graph
            return False
        return (
            _monotonic() - started <= VALIDATION_TIMEOUT
            and status == 200
            and content_type.split(";")[0].strip().lower() == "text/plain"
            and text == token
        )

    # ----- producing notifications ---------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        store = self.state.store
        subscriptions = [s for s in store.all("subscription", change.mailbox, by_owner=True)
                         if change.change_type in s["changeType"].split(",")]
        if not subscriptions:
            return
        resource_data = {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": change.resource}
        etag = _event_etag(store, change.event_id)
        if etag:
            resource_data["@odata.etag"] = etag
        resource_data["id"] = change.event_id
        current = now()
        for subscription in subscriptions:
            if _expires_at(subscription) <= current:
                continue  # expired: stops delivering; the sweep deletes it
            if not self._app_may_read(subscription):
                self._pause_for_reauthorization(subscription)
                continue
            if subscription.get("_reauthorizationRequired"):
                continue  # paused until reauthorized or renewed: this change is lost (graph-facts §4.6)
            self._enqueue(_Pending(subscription["notificationUrl"], {
                "subscriptionId": subscription["id"],
                "subscriptionExpirationDateTime": subscription["expirationDateTime"],
                "changeType": change.change_type,
                "resource": change.resource,
                "resourceData": dict(resource_data),
                "clientState": subscription.get("clientState"),
                "tenantId": self._tenant_id(),
            }, subscription["id"], is_change=True))

    def notify_lifecycle(self, subscription: dict, lifecycle_event: str) -> None:
        url = subscription.get("lifecycleNotificationUrl")
        if not url:
            return
        self._enqueue(_Pending(url, {
            "subscriptionId": subscription["id"],
            "subscriptionExpirationDateTime": subscription["expirationDateTime"],
            "tenantId": self._tenant_id(),
            "clientState": subscription.get("clientState"),
            "lifecycleEvent": lifecycle_event,
        }, subscription["id"], is_change=False))

    def remove_subscription(self, subscription_id: str) -> bool:
        store = self.state.store
        with store.lock:
            subscription = store.get("subscription", subscription_id)
            if subscription is None:
                return False
            store.delete("subscription", subscription_id)
        self.notify_lifecycle(subscription, "subscriptionRemoved")
        return True

    def subscription_created(self) -> None:
        """Start the sender so expiry and reauthorization sweeps run even before the first change."""
        with self._cond:
            self._ensure_thread()

    def _enqueue(self, pending: _Pending) -> None:
        fate = self.state.faults.notification_fate() if pending.is_change else None
        with self._cond:
            if fate and fate.drop:
                return
            clock = _monotonic()
            due = clock + (fate.delay_seconds if fate else 0.0)
            overtaken = self._held.pop(pending.url, [])
            if fate and fate.reorder and not overtaken:
                self._held[pending.url] = [(due + REORDER_MAX_HOLD, pending)]
            else:
                self._push(pending, due)
            # What waited to be overtaken, and a duplicate, go after the batching window: in a later POST.
            for _, held in overtaken:
                self._push(held, due + LATER_POST)
            if fate and fate.duplicate:
                self._push(_Pending(pending.url, pending.payload, pending.subscription_id, True), due + LATER_POST)
            self._ensure_thread()
            self._cond.notify_all()

    def _push(self, pending: _Pending, due: float) -> None:
        pending.sequence = next(self._sequence)
        heapq.heappush(self._queue, (due, pending.sequence, pending))

    # ----- subscriptions' health -----------------------------------------------------------------------

    def _app_may_read(self, subscription: dict) -> bool:
        app_doc = self.state.store.get("app", subscription["applicationId"])
        return bool(app_doc and app_doc.get("enabled", True)
                    and set(app_doc.get("permissions", [])) & set(SUBSCRIPTION_GRANTS))

    def _pause_for_reauthorization(self, subscription: dict) -> None:
        store = self.state.store
        with store.lock:
            current = store.get("subscription", subscription["id"])
            if current is None or current.get("_reauthorizationRequired"):
                return
            current["_reauthorizationRequired"] = True
            current["_reauthorizationSentAt"] = iso_z(now())
            store.put("subscription", current["id"], current, owner=store.owner_of("subscription", current["id"]))
        self.notify_lifecycle(current, "reauthorizationRequired")

    def _sweep(self) -> None:
        """Delete expired subscriptions; challenge those close to expiry or whose app lost its permission."""
        store = self.state.store
        current = now()
        challenges = []
        with store.lock:
            for subscription in store.all("subscription"):
                expires = _expires_at(subscription)
                if expires <= current:
                    store.delete("subscription", subscription["id"])
                    continue
                if not self._app_may_read(subscription):
                    if not subscription.get("_reauthorizationRequired"):
                        challenges.append(subscription)
                    continue
                if expires - current > REAUTHORIZE_LEAD:
                    continue
                last = subscription.get("_reauthorizationSentAt")
                if last and current - parse_graph_datetime(last, "UTC") < REAUTHORIZE_REPEAT:
                    continue
                subscription["_reauthorizationSentAt"] = iso_z(current)
                store.put("subscription", subscription["id"], subscription,
                          owner=store.owner_of("subscription", subscription["id"]))
                self.notify_lifecycle(subscription, "reauthorizationRequired")
        for subscription in challenges:
            self._pause_for_reauthorization(subscription)

    def _tenant_id(self) -> str:
        tenants = self.state.store.all("tenant")
        if tenants:
            return tenants[0].get("id") or tenants[0].get("tenantId")
        from .seed import DEMO_TENANT_ID

        return DEMO_TENANT_ID

    # ----- the sender ----------------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopped = False
            self._thread = threading.Thread(target=self._run, name="sandbox-notifications", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    clock = _monotonic()
                    if self._sweeps_done < self._sweeps_requested or clock >= self._next_sweep:
                        break
                    self._release_held(clock)
                    if self._queue and self._queue[0][0] <= clock:
                        break
                    wakes = [self._next_sweep] + [items[0][0] for items in self._held.values()]
                    if self._queue:
                        wakes.append(self._queue[0][0])
                    wake = min(wakes)
                    self._cond.wait(max(wake - clock, 0.001))
                if self._stopped:
                    return
                sweep = self._sweeps_done < self._sweeps_requested or _monotonic() >= self._next_sweep
                sweep_number = self._sweeps_requested
                self._in_flight += 1
            try:
                if sweep:
                    try:
                        self._sweep()
                    finally:
                        with self._cond:
                            self._sweeps_done = max(self._sweeps_done, sweep_number)
                            self._next_sweep = _monotonic() + max(SWEEP_INTERVAL / self.time_factor, 0.05)
                else:
                    time.sleep(BATCH_WINDOW)  # let a burst pile up into one POST
                    self._send_due()
            except Exception:  # noqa: BLE001 — the sender must outlive any one bad notification or sweep
                _log.exception("notification sender")
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _release_held(self, clock: float) -> None:
        """Notifications held for reordering that nothing overtook in time go out now (caller holds _cond)."""
        for url in [u for u, items in self._held.items() if items[0][0] <= clock]:
            for _, pending in self._held.pop(url):
                self._push(pending, clock)

    def _take_due(self) -> list[_Pending]:
        with self._cond:
            clock = _monotonic()
            due = []
            while self._queue and self._queue[0][0] <= clock:
                due.append(heapq.heappop(self._queue)[2])
            return due

    def _send_due(self) -> None:
        due = self._take_due()
        store = self.state.store
        live = [p for p in due if not p.is_change or _is_live(store.get("subscription", p.subscription_id))]
        by_url: dict[str, list[_Pending]] = {}
        for pending in live:
            by_url.setdefault(pending.url, []).append(pending)
        batches = [group[i:i + MAX_BATCH] for group in by_url.values() for i in range(0, len(group), MAX_BATCH)]
        for batch in batches:
            if not self._post(batch[0].url, {"value": [p.payload for p in batch]}):
                self._retry_or_drop(batch)

    def _post(self, url: str, body: dict) -> bool:
        started = _monotonic()
        try:
            reply = self._transport(url, body)
        except Exception:  # noqa: BLE001 — refused, reset, timed out, TLS: all are failed deliveries
            return False
        status = reply[0] if isinstance(reply, tuple) else reply
        return 200 <= int(status) < 300 and _monotonic() - started <= DELIVERY_TIMEOUT

    def _retry_or_drop(self, batch: list[_Pending]) -> None:
        clock = _monotonic()
        factor = self.time_factor
        dropped: dict[str, None] = {}
        with self._cond:
            for pending in batch:
                if pending.attempts == 0:
                    pending.first_attempt = clock
                pending.attempts += 1
                gap = min(FIRST_RETRY * 2 ** (pending.attempts - 1), MAX_RETRY_GAP) / factor
                if clock + gap - pending.first_attempt > RETRY_WINDOW / factor:
                    if pending.is_change:
                        dropped[pending.subscription_id] = None
                    continue
                heapq.heappush(self._queue, (clock + gap, pending.sequence, pending))
        for subscription_id in dropped:
            subscription = self.state.store.get("subscription", subscription_id)
            if _is_live(subscription):
                self.notify_lifecycle(subscription, "missed")

    # ----- tests and shutdown --------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Sweep, then wait until the queue is empty and nothing is being sent; False on timeout."""
        deadline = _monotonic() + timeout
        with self._cond:
            self._ensure_thread()
            self._sweeps_requested += 1
            wanted = self._sweeps_requested
            self._cond.notify_all()
            while self._queue or self._held or self._in_flight or self._sweeps_done < wanted:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=DELIVERY_TIMEOUT + 1)


def _expires_at(subscription: dict):
    return parse_graph_datetime(subscription["expirationDateTime"], "UTC")


def subscription_expired(subscription: dict) -> bool:
    return _expires_at(subscription) <= now()


def _is_live(subscription: dict | None) -> bool:
    return subscription is not None and not subscription_expired(subscription)


def _event_etag(store, event_id: str) -> str | None:
    """The event's current `@odata.etag`; an occurrence has its exception's changeKey or its master's."""
    from .calendar import parse_event_id  # late: calendar → directory → graph → subscriptions → this module
    from .errors import GraphError

    try:
        master_id, original_start = parse_event_id(event_id)
    except GraphError:
        return None
    master = store.get("event", master_id)
    if master is None:
        return None  # deleted: the notification carries no etag
    change_key = master.get("changeKey")
    if original_start is not None:
        exception = master.get("_exceptions", {}).get(original_start.isoformat()) or {}
        change_key = exception.get("changeKey", change_key)
    return f'W/"{change_key}"' if change_key else None
