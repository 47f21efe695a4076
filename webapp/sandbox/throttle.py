"""Outlook-style throttling per (app id, mailbox): 4 concurrent requests and 10,000 requests per 10 minutes.

Source: [D:includes/throttling-outlook.md] via graph-facts §5.1 — the limits apply per app ID and mailbox
pair, and exceeding them for one mailbox does not affect other mailboxes. Over a limit the request gets
429 with `Retry-After` (seconds).

Public API:
- `Throttle(budget=10_000, window_seconds=600, concurrency=4)`; `configure(...)` with the same keywords
  changes the limits (tests use a small budget); `reset()` forgets all counters.
- `acquire(app_id, mailbox)` → a `Lease` (a context manager; call `release()` when the request ends), or
  raises `Throttled(retry_after, reason)` when the pair is at its concurrency limit or has spent its
  budget for the current window. A refused request does not count against the budget (it never reached
  the mailbox).
- `Throttled.retry_after` (int seconds ≥ 1) and `.reason` ("MailboxConcurrency" or "RequestBudget").
- `in_flight(app_id, mailbox)` → the pair's requests currently holding a lease.

Windows are fixed: a pair's window starts with its first request and lasts `window_seconds`; the
Retry-After of a budget refusal is the time left in it (the documented limit says "in a 10-minute period",
not how the period is aligned — a fixed window lets a client burst twice at a boundary, but tells it
exactly when to come back). Time comes from `clock.now()`, so freezegun moves the windows.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .clock import now


class Throttled(Exception):
    def __init__(self, retry_after: int, reason: str):
        super().__init__(f"throttled ({reason}); retry after {retry_after}s")
        self.retry_after, self.reason = retry_after, reason


@dataclass
class _Counter:
    window_start: datetime
    requests: int = 0
    in_flight: int = 0


@dataclass
class Lease:
    throttle: Throttle
    key: tuple[str, str]
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.throttle._release(self.key)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


class Throttle:
    def __init__(self, budget: int = 10_000, window_seconds: float = 600, concurrency: int = 4):
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], _Counter] = {}
        self.budget, self.window_seconds, self.concurrency = budget, window_seconds, concurrency

    def configure(self, budget: int | None = None, window_seconds: float | None = None,
                  concurrency: int | None = None) -> None:
        with self._lock:
            self.budget = budget if budget is not None else self.budget
            self.window_seconds = window_seconds if window_seconds is not None else self.window_seconds
            self.concurrency = concurrency if concurrency is not None else self.concurrency

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()

    def acquire(self, app_id: str, mailbox: str) -> Lease:
        key = (app_id, mailbox)
        current = now()
        window = timedelta(seconds=self.window_seconds)
        with self._lock:
            counter = self._counters.get(key)
            if counter is None or current - counter.window_start >= window:
                in_flight = counter.in_flight if counter else 0
                counter = self._counters[key] = _Counter(current, 0, in_flight)
            if counter.in_flight >= self.concurrency:
                raise Throttled(1, "MailboxConcurrency")
            if counter.requests >= self.budget:
                left = (counter.window_start + window - current).total_seconds()
                raise Throttled(max(1, math.ceil(left)), "RequestBudget")
            counter.requests += 1
            counter.in_flight += 1
        return Lease(self, key)

    def _release(self, key: tuple[str, str]) -> None:
        with self._lock:
            counter = self._counters.get(key)
            if counter is not None and counter.in_flight > 0:
                counter.in_flight -= 1

    def in_flight(self, app_id: str, mailbox: str) -> int:
        with self._lock:
            counter = self._counters.get((app_id, mailbox))
            return counter.in_flight if counter else 0
