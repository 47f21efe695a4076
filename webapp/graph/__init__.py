"""Roomsync's Microsoft Graph client (Microsoft 365 or the sandbox tenant, by configuration).

Public API:
- `graph_client(app=None, *, limited=True)` → the process's `GraphClient` for the app's current Graph
  configuration (`settings.load_settings`): built on first use and cached per process id and settings, so
  nothing connects before a worker forks and a changed configuration (a restarted sandbox) gets a new
  client. `limited=True` shares the per-mailbox limiter through the app's `REDIS_URL`; `limited=False` (the
  settings page's short validation tests, which run in a web request) uses no limiter. With Redis the app
  token is shared by every process (`auth.SharedTokens`), so each short-lived job does not sign in again. Raises
  `GraphSettingsError` when no tenant is configured or a setting is unusable.
- `configured(app=None)` → whether a tenant is configured.
- `reset_graph_clients()` — forget every cached client, session and token (tests).
- Re-exported: `GraphClient`, `RetryPolicy`, `GraphSettings`, `load_settings`, the errors of `errors` and the
  types of `types`.

Package map: settings.py (configuration), auth.py (MSAL and the shared HTTP session), client.py (HTTP,
paging, $batch, retries, every Graph operation as a method), limiter.py (Redis per-mailbox limiter),
errors.py (typed errors), types.py (typed values; the only place Graph JSON is parsed). Every Graph call
runs in an RQ job, except the settings page's validation tests (DESIGN "Processes").
"""

from __future__ import annotations

import os
import threading

from .auth import reset_caches
from .client import GraphClient, RetryPolicy
from .errors import (AccessPolicyDenied, AuthFailed, BadRequest, Conflict, ConnectionFailed, FailedDependency,
                     GraphError, InvalidUser, MailboxNotEnabled, NotFound, PermissionMissing, ServiceUnavailable,
                     SyncStateExpired, Throttled)
from .limiter import NullLimiter, RedisMailboxLimiter
from .settings import GraphSettings, GraphSettingsError, load_settings
from .types import (Attendee, BatchRequest, BatchResult, Contact, DeltaPage, Event, EventDraft, Location,
                    PatternedRecurrence, Person, RecurrencePattern, RecurrenceRange, Room, RoomList, Subscription,
                    User)

__all__ = [
    "graph_client", "configured", "reset_graph_clients", "GraphClient", "RetryPolicy", "GraphSettings",
    "GraphSettingsError", "load_settings", "NullLimiter", "RedisMailboxLimiter",
    "GraphError", "NotFound", "InvalidUser", "MailboxNotEnabled", "PermissionMissing", "AccessPolicyDenied",
    "AuthFailed", "Throttled", "ServiceUnavailable", "ConnectionFailed", "SyncStateExpired", "BadRequest",
    "FailedDependency", "Conflict",
    "User", "Room", "RoomList", "Contact", "Person", "Attendee", "Location", "RecurrencePattern",
    "RecurrenceRange", "PatternedRecurrence", "Event", "EventDraft", "DeltaPage", "Subscription", "BatchRequest",
    "BatchResult",
]

_lock = threading.Lock()
_clients: dict[tuple, GraphClient] = {}
_LEASE_MARGIN = 10.0  # seconds a limiter lease outlives the longest request (connect + read timeout)


def _app(app):
    if app is not None:
        return app
    from flask import current_app

    return current_app._get_current_object()


def configured(app=None) -> bool:
    return load_settings(_app(app)).configured()


def graph_client(app=None, *, limited: bool = True) -> GraphClient:
    app = _app(app)
    settings = load_settings(app)
    settings.check()
    redis_url = app.config.get("REDIS_URL") if limited else None
    key = (os.getpid(), settings.cache_key(), redis_url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            limiter, tokens = NullLimiter(), None
            if redis_url:
                import hashlib

                from redis import Redis  # connects lazily, on the first limited request

                from .auth import SharedTokens, TokenProvider, http_session

                redis = Redis.from_url(redis_url)
                limiter = RedisMailboxLimiter(redis, lease_seconds=settings.connect_timeout + settings.read_timeout
                                              + _LEASE_MARGIN)
                digest = hashlib.sha256(repr(settings.cache_key()).encode()).hexdigest()[:32]
                tokens = TokenProvider(settings, http_session(settings),
                                       shared=SharedTokens(redis, f"roomsync:graph:token:{digest}"))
            client = _clients[key] = GraphClient(settings, limiter=limiter, tokens=tokens)
        return client


def reset_graph_clients() -> None:
    with _lock:
        _clients.clear()
    reset_caches()
