"""Who may see and change what. The single place that decides whether a private title is shown.

Public API: `PRIVATE_TITLE`, `can_see_details(booking, viewer)`, `visible_title(booking, viewer)`,
`can_edit(booking, user)`.
"""

from __future__ import annotations

PRIVATE_TITLE = "Private booking"


def can_see_details(booking, viewer) -> bool:
    """Title, description, attendees and custom fields of a private booking: its holder only (and admins
    where the venue allows it)."""
    if not booking.private:
        return True
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        return False
    if booking.holder_id is not None and booking.holder_id == viewer.id:
        return True
    return bool(viewer.is_admin and booking.venue.admins_see_private)


def visible_title(booking, viewer, title: str | None = None) -> str:
    """The title `viewer` may read: the booking's (or an occurrence's override) or the private mask."""
    if not can_see_details(booking, viewer):
        return PRIVATE_TITLE
    return title if title is not None else booking.title


def can_edit(booking, user) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return user.is_admin or (booking.holder_id is not None and booking.holder_id == user.id)
