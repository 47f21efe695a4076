"""Domain errors raised by booking operations; views turn them into form errors, flashes or JSON.

Public API:
- `BookingError(message, code)`: base class; `code` is the stable machine-readable string of the JSON API.
- `ValidationError(fields)`: input or venue-rule failures, `fields` maps a field name to its message
  (HTTP 422).
- `ConflictError(conflicts)`: overlap with other bookings, `conflicts` is a list of `Conflict` (HTTP 409).
- `SpaceSyncing(space_ids, message)`: a space the write would touch, or one sharing with it, is in its
  initial sync with Microsoft 365 (see `sync.freeze`). A `ValidationError` (field `space_ids`), so every
  page that shows validation errors shows it; the JSON API answers it 409 `space_syncing`.
- `PermissionDenied` (403), `NotFound` (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class BookingError(Exception):
    code = "booking_error"
    status = 400

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class ValidationError(BookingError):
    code = "validation_error"
    status = 422

    def __init__(self, fields: dict[str, str], message: str | None = None):
        self.fields = dict(fields)
        super().__init__(message or "; ".join(self.fields.values()) or "Invalid booking.")


@dataclass(frozen=True)
class Conflict:
    """Another booking's occurrence that overlaps the requested one on a space they share or depend on."""

    booking_id: int
    space_id: int
    space_name: str
    start_utc: datetime
    end_utc: datetime
    requested_start_utc: datetime  # the requested occurrence it collides with


class ConflictError(BookingError):
    code = "conflict"
    status = 409

    def __init__(self, conflicts: list[Conflict], message: str | None = None):
        self.conflicts = conflicts
        super().__init__(message or "That time is already booked.")


class SpaceSyncing(ValidationError):
    """Nothing is wrong with the request; the space is frozen while its initial sync runs. `space_ids`: the
    syncing spaces that block the write (the booked ones or spaces that share with them)."""

    code = "space_syncing"
    status = 409

    def __init__(self, space_ids: list[int], message: str):
        self.space_ids = list(space_ids)
        super().__init__({"space_ids": message}, message)


class PermissionDenied(BookingError):
    code = "forbidden"
    status = 403


class NotFound(BookingError):
    code = "not_found"
    status = 404
