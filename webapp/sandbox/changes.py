"""Change feed inside the sandbox: the calendar publishes, change notifications and delta consume.

Public API: `Change` (mailbox user id, resource path as Graph names it in notifications, change type
"created" | "updated" | "deleted", event id), `ChangeFeed.subscribe(callback)`, `ChangeFeed.publish(change)`.
Callbacks run synchronously in the writer's thread and must only enqueue (delivery is asynchronous).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Change:
    mailbox: str  # user id of the mailbox whose calendar changed
    resource: str  # e.g. "Users/{user-id}/Events/{event-id}"
    change_type: str  # created | updated | deleted
    event_id: str


class ChangeFeed:
    def __init__(self) -> None:
        self._listeners: list[Callable[[Change], None]] = []

    def subscribe(self, callback: Callable[[Change], None]) -> None:
        self._listeners.append(callback)

    def publish(self, change: Change) -> None:
        for callback in list(self._listeners):
            callback(change)
