"""Fault injection and Outlook-style throttling for every Graph request.

Public API: `install(bp)` — registers on the Graph blueprint a `before_request` hook that, in order:
1. answers an injected 429/503/504 with `Retry-After` for the configured share of calls
   (`Faults.injected_error`) — Graph sends Retry-After with 429 and may with 503 (graph-facts §5.1);
2. answers 403 ErrorAccessDenied "Access to OData is disabled." for a mailbox an application access policy
   shuts the app out of (`Faults.access_denied`, graph-facts §5.3);
3. for a request on a mailbox (`/v1.0/users/{id|upn}/…`, the resources the Outlook limits cover: events,
   calendar, photo, contacts, people — graph-facts §5.1), takes a `Throttle` lease for (app id, mailbox id)
   or answers 429 `TooManyRequests` with `Retry-After`;
4. sleeps the configured latency (`Faults.latency_seconds`) while holding that lease, so slow answers use up
   the mailbox's concurrency as they do in Exchange;
and a `teardown_request` hook that gives the lease back however the request ended.

The mailbox is resolved to its user id, so `/users/{id}/…` and `/users/{upn}/…` share one budget as they
do in Exchange. A request whose token is missing or invalid skips throttling: its view answers 401 first.
Injected errors and throttling answer with the Graph error JSON (`errors.graph_error_response`); clients
must trigger on the HTTP status, not the code (graph-facts §5.1).
"""

from __future__ import annotations

import re
import time

from flask import g, request

from . import sandbox_state
from .auth import current_app_doc
from .errors import GraphError, graph_error_response
from .throttle import Throttled

_MAILBOX_PATH = re.compile(r"^/v1\.0/users/([^/]+)/.+")

_INJECTED = {
    429: ("TooManyRequests", "Too many requests. Please retry after the time in the Retry-After header."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry after the time in the "
                                 "Retry-After header."),
    504: ("GatewayTimeout", "The gateway did not receive a timely response from the upstream service."),
}
_THROTTLED = {
    "MailboxConcurrency": "Application is over its MailboxConcurrency limit.",
    "RequestBudget": "Application is over its request limit for this mailbox.",
}


def _mailbox_of_request() -> tuple[str | None, frozenset[str]]:
    """(mailbox user id or None, the names a fault rule may use for it)."""
    # Imported here, not at the top: graph.py imports this module while building its blueprint, and
    # directory.py needs that blueprint, so a top-level import would cycle when traffic is imported first.
    from .directory import find_user, mailbox_names

    match = _MAILBOX_PATH.match(request.path)
    if not match:
        return None, frozenset()
    segment = match.group(1)
    user = find_user(segment)
    if user is None:
        return segment.lower(), frozenset({segment.lower()})
    return user["id"], mailbox_names(user) | {segment.lower()}


def _calling_app_id() -> str | None:
    try:
        return current_app_doc()["appId"]
    except GraphError:
        return None


def install(bp) -> None:
    @bp.before_request
    def apply_traffic_rules():
        state = sandbox_state()
        mailbox, names = _mailbox_of_request()
        injected = state.faults.injected_error(request.path, names)
        if injected:
            status, retry_after = injected
            code, message = _INJECTED[status]
            return graph_error_response(status, code, message, {"Retry-After": str(retry_after)})
        if mailbox is not None and state.faults.access_denied(names):
            return graph_error_response(403, "ErrorAccessDenied", "Access to OData is disabled.")
        app_id = _calling_app_id() if mailbox is not None else None
        if app_id is not None:
            try:
                g.throttle_lease = state.throttle.acquire(app_id, mailbox)
            except Throttled as throttled:
                return graph_error_response(429, "TooManyRequests", _THROTTLED[throttled.reason],
                                            {"Retry-After": str(throttled.retry_after)})
        delay = state.faults.latency_seconds(request.path, names)
        if delay:
            time.sleep(delay)
        return None

    @bp.teardown_request
    def release_throttle_lease(_error=None):
        lease = g.pop("throttle_lease", None)
        if lease is not None:
            lease.release()
