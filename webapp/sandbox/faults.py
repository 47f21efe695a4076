"""Faults on demand: the thread-safe registry the admin API fills and the Graph surface consults.

Everything is off by default and after `reset()`.

Public API — `Faults(seed=None)` (`seed` makes the random shares reproducible in tests):
- `configure(spec)` replaces the whole configuration with `spec` (the JSON of `PUT /_sandbox/faults`);
  sections left out are off. Raises `ValueError` on a malformed spec (the admin API answers 400).
- `snapshot()` → the current configuration in the same JSON shape, plus `expireDeltaTokensBefore`.
- `reset()` → everything off, delta tokens valid again.
- `latency_seconds(path, mailbox_names)` → seconds to sleep before answering this request (0.0 when off).
- `injected_error(path, mailbox_names)` → `(status, retry_after_seconds)` for a request that must fail, or
  `None`. Each rule fails its `share` of the matching calls, drawn independently per call.
- `notification_plan()` → `NotificationPlan(drop, duplicate, delay, delay_seconds, reorder)`: the shares
  (0.0–1.0) the notifications engineer applies to outgoing change notifications.
- `notification_fate()` → `NotificationFate(drop, duplicate, delay_seconds, reorder)`: one draw of that
  plan for one notification: drop it; send it twice; hold it `delay_seconds` before sending (0.0 = no
  delay); let a later notification overtake it (send it after the next one in the same queue).
- `access_denied(mailbox_names)` → True when an application access policy shuts the app out of that
  mailbox: Graph answers 403 ErrorAccessDenied "Access to OData is disabled." (graph-facts §5.3).
- `expire_delta_tokens()` → every delta token issued up to now answers `syncStateNotFound` from now on;
  `is_delta_token_expired(issued_at)` (aware datetime) says whether one has; `delta_tokens_expired_before`.

`mailbox_names` is the set of lower-cased names of the mailbox a request addresses (its user id, mail and
userPrincipalName, as the traffic layer resolves them), empty for requests without one; a rule's `mailbox`
(id or address) matches when it is in that set. A rule's `path` is a regular expression searched in the
request path (e.g. "calendarView", "^/v1.0/users/[^/]+/events$").

Spec (all keys optional):
    {"latency": {"ms": 250, "path": null, "mailbox": null},
     "errors": [{"status": 429 | 503 | 504, "share": 0.5, "retryAfter": 2, "path": null, "mailbox": null}],
     "notifications": {"drop": 0.1, "duplicate": 0.1, "delay": 0.2, "delaySeconds": 5, "reorder": 0.1},
     "accessPolicy": {"mailboxes": ["roomsync.butler@roomsync.test"]}}

Why: the issue's fault list (latency; 429/503/504 for a share of calls; drop, duplicate, delay or reorder
notifications; expire a delta token), with Retry-After as Graph sends it for throttling and 503
(graph-facts §5.1).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from datetime import datetime

from .clock import iso_z, now

ERROR_STATUSES = (429, 503, 504)


@dataclass(frozen=True)
class NotificationPlan:
    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 0.0
    reorder: float = 0.0


@dataclass(frozen=True)
class NotificationFate:
    drop: bool = False
    duplicate: bool = False
    delay_seconds: float = 0.0
    reorder: bool = False


@dataclass(frozen=True)
class _Scope:
    path: re.Pattern | None
    mailbox: str | None

    def matches(self, path: str, mailbox_names: frozenset[str] | set[str]) -> bool:
        if self.path is not None and not self.path.search(path):
            return False
        return self.mailbox is None or self.mailbox in mailbox_names

    def to_json(self) -> dict:
        return {"path": self.path.pattern if self.path else None, "mailbox": self.mailbox}


@dataclass(frozen=True)
class _ErrorRule:
    status: int
    share: float
    retry_after: int
    scope: _Scope


def _share(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number between 0 and 1")
    return float(value)


def _non_negative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return value


def _scope(spec: dict) -> _Scope:
    path, mailbox = spec.get("path"), spec.get("mailbox")
    try:
        pattern = re.compile(path) if path else None
    except (re.error, TypeError) as error:
        raise ValueError(f"path is not a valid regular expression: {error}") from None
    if mailbox is not None and not isinstance(mailbox, str):
        raise ValueError("mailbox must be a string")
    return _Scope(pattern, mailbox.lower() if mailbox else None)


class Faults:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._clear()

    def _clear(self) -> None:
        self._latency_ms = 0.0
        self._latency_scope = _Scope(None, None)
        self._errors: list[_ErrorRule] = []
        self._notifications = NotificationPlan()
        self._delta_cutoff: datetime | None = None
        self._policy_mailboxes: frozenset[str] = frozenset()

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def configure(self, spec: dict) -> None:
        if not isinstance(spec, dict):
            raise ValueError("the fault spec must be a JSON object")
        unknown = set(spec) - {"latency", "errors", "notifications", "accessPolicy"}
        if unknown:
            raise ValueError(f"unknown fault sections: {sorted(unknown)}")
        latency = spec.get("latency") or {}
        latency_ms = _non_negative(latency.get("ms", 0), "latency.ms")
        latency_scope = _scope(latency)
        errors = []
        for rule in spec.get("errors") or []:
            if rule.get("status") not in ERROR_STATUSES:
                raise ValueError(f"errors[].status must be one of {ERROR_STATUSES}")
            errors.append(_ErrorRule(rule["status"], _share(rule.get("share", 1.0), "errors[].share"),
                                     int(_non_negative(rule.get("retryAfter", 2), "errors[].retryAfter")),
                                     _scope(rule)))
        notes = spec.get("notifications") or {}
        plan = NotificationPlan(
            drop=_share(notes.get("drop", 0.0), "notifications.drop"),
            duplicate=_share(notes.get("duplicate", 0.0), "notifications.duplicate"),
            delay=_share(notes.get("delay", 0.0), "notifications.delay"),
            delay_seconds=float(_non_negative(notes.get("delaySeconds", 0.0), "notifications.delaySeconds")),
            reorder=_share(notes.get("reorder", 0.0), "notifications.reorder"),
        )
        policy = spec.get("accessPolicy") or {}
        mailboxes = policy.get("mailboxes") or []
        if not isinstance(mailboxes, list) or not all(isinstance(m, str) and m for m in mailboxes):
            raise ValueError("accessPolicy.mailboxes must be a list of mailbox ids or addresses")
        with self._lock:
            self._policy_mailboxes = frozenset(m.lower() for m in mailboxes)
            self._latency_ms, self._latency_scope = latency_ms, latency_scope
            self._errors = errors
            self._notifications = plan

    def snapshot(self) -> dict:
        with self._lock:
            plan = self._notifications
            return {
                "latency": {"ms": self._latency_ms, **self._latency_scope.to_json()},
                "errors": [{"status": r.status, "share": r.share, "retryAfter": r.retry_after, **r.scope.to_json()}
                           for r in self._errors],
                "notifications": {"drop": plan.drop, "duplicate": plan.duplicate, "delay": plan.delay,
                                  "delaySeconds": plan.delay_seconds, "reorder": plan.reorder},
                "accessPolicy": {"mailboxes": sorted(self._policy_mailboxes)},
                "expireDeltaTokensBefore": iso_z(self._delta_cutoff) if self._delta_cutoff else None,
            }

    def latency_seconds(self, path: str, mailbox_names: frozenset[str] | set[str] = frozenset()) -> float:
        with self._lock:
            if self._latency_ms and self._latency_scope.matches(path, mailbox_names):
                return self._latency_ms / 1000.0
            return 0.0

    def injected_error(self, path: str, mailbox_names: frozenset[str] | set[str] = frozenset()) -> tuple[int, int] | None:
        with self._lock:
            for rule in self._errors:
                if rule.scope.matches(path, mailbox_names) and self._random.random() < rule.share:
                    return rule.status, rule.retry_after
            return None

    def access_denied(self, mailbox_names: frozenset[str] | set[str]) -> bool:
        with self._lock:
            return bool(self._policy_mailboxes & set(mailbox_names))

    def notification_plan(self) -> NotificationPlan:
        with self._lock:
            return self._notifications

    def notification_fate(self) -> NotificationFate:
        with self._lock:
            plan, draw = self._notifications, self._random.random
            return NotificationFate(
                drop=draw() < plan.drop,
                duplicate=draw() < plan.duplicate,
                delay_seconds=plan.delay_seconds if draw() < plan.delay else 0.0,
                reorder=draw() < plan.reorder,
            )

    def expire_delta_tokens(self) -> None:
        with self._lock:
            self._delta_cutoff = now()

    @property
    def delta_tokens_expired_before(self) -> datetime | None:
        with self._lock:
            return self._delta_cutoff

    def is_delta_token_expired(self, issued_at: datetime) -> bool:
        with self._lock:
            return self._delta_cutoff is not None and issued_at <= self._delta_cutoff

