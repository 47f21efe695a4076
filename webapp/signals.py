"""Application signals (blinker), so the booking core does not import the sync.

Public API: `booking_changed` — sent inside the operation's transaction, just before it commits, with
`booking_id`, `change` ("created" | "updated" | "cancelled") and `scope` details. Receivers that start jobs
use `jobs.enqueue_after_commit`, so nothing runs if the transaction rolls back.
"""

from blinker import Namespace

_signals = Namespace()
booking_changed = _signals.signal("booking-changed")
