"""Forms of the sync pairs page: they parse what was chosen; the rules live in `sync.pairs`.

Public API: `PairForm` (space id, room email; choices are set by the view), `UnsyncForm` (CSRF only).
"""

from __future__ import annotations

from wtforms import SelectField

from ..admin.forms import StorableForm


class PairForm(StorableForm):
    # validate_choice off: the operation refuses an unknown space or room with its own message.
    space_id = SelectField("Space", coerce=str, validate_choice=False,
                           description="Active spaces that are not synced yet.")
    room_email = SelectField("Microsoft 365 room", validate_choice=False,
                             description="Rooms not synced yet; type in the filter box to narrow the list.")


class UnsyncForm(StorableForm):
    """Only the CSRF token: unsyncing takes no input."""
