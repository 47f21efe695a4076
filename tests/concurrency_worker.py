"""Child-process side of the concurrency test: one process, one attempt to book the contested slot."""

from __future__ import annotations

from datetime import datetime


def attempt_booking(database_url: str, instance: str, venue_id: int, space_id: int, user_id: int,
                    start_iso: str, end_iso: str, ready, go, results) -> None:
    from webapp import create_app
    from webapp.auth.models import User
    from webapp.booking.errors import ConflictError
    from webapp.booking.models import Venue
    from webapp.booking.operations import BookingInput, create_booking
    from webapp.extensions import db

    app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": instance, "SECRET_KEY": "x", "SYNC_JOBS": True})
    with app.app_context():
        venue = db.session.get(Venue, venue_id)
        user = db.session.get(User, user_id)
        venue.spaces, venue.custom_fields  # load now, so the contested part is only the write
        db.session.commit()
        ready.put(1)
        go.wait(60)
        data = BookingInput(space_ids=[space_id], start=datetime.fromisoformat(start_iso),
                            end=datetime.fromisoformat(end_iso), title="race")
        try:
            create_booking(venue, data, actor=user)
            results.put("won")
        except ConflictError:
            results.put("conflict")
        except Exception as exc:  # reported to the parent, which fails the test with it
            results.put(f"error: {exc!r}")
