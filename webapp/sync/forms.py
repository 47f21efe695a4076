"""Forms of the sync pairs page: they parse what was chosen; the rules live in `sync.pairs`.

Public API: `PairForm` (space id, room email; choices are set by the view; both "Sync" and "Preview first" post
it), `PairNowForm` (the same two values as hidden fields, for the preview page's "Pair now", which posts to the
pairing endpoint), `UnsyncForm` and `RetryForm` (CSRF only).
"""

from __future__ import annotations

from wtforms import HiddenField, SelectField

from ..admin.forms import StorableForm


class PairForm(StorableForm):
    # validate_choice off: the operation refuses an unknown space or room with its own message.
    space_id = SelectField("Space", coerce=str, validate_choice=False,
                           description="Active spaces that are not synced yet.")
    room_email = SelectField("Microsoft 365 room", validate_choice=False,
                             description="Rooms not synced yet; type in the filter box to narrow the list.")


class UnsyncForm(StorableForm):
    """Only the CSRF token: unsyncing takes no input."""


class PairNowForm(StorableForm):
    """What a preview was made for, posted as is to the pairing endpoint (which parses it with `PairForm`)."""

    space_id = HiddenField()
    room_email = HiddenField()


class RetryForm(StorableForm):
    """Only the CSRF token: retrying a failed initial sync takes no input."""
