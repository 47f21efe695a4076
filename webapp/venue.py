"""The venue the staff pages work on.

Public API: `current_venue()` — the installation's venue (the first one; Roomsync installs serve one
organisation). Views call it; aborts with 404 when none exists yet (run `flask --app app seed-demo` or create
one in the admin area).
"""

from __future__ import annotations

from flask import abort, g
from sqlalchemy import select

from .booking.models import Venue
from .extensions import db


def current_venue() -> Venue:
    venue = g.get("_roomsync_venue")
    if venue is None:
        venue = db.session.scalar(select(Venue).order_by(Venue.id).limit(1))
        if venue is None:
            abort(404, "No venue is set up yet.")
        g._roomsync_venue = venue
    return venue
