"""The emails Roomsync sends, written for the people who read them. Each builds its text and html from the
templates `notify/email/<kind>.txt` / `.html` and calls `mailer.send_mail` with the caller's `dedup_key`
(a job that runs again passes the same key, so nobody is emailed twice).

Public API:
- `pair_broken(pair, dedup_key)` → OutboxMessage or None (no active admin to tell): to every active admin;
  which space, which room, why (`pair.state_detail`), what to do, a link to the synced rooms page. Carries
  no booking title.
- `event_refused(*, venue, organizer_email, organizer_name, room_name, start_utc, end_utc, subject, reason,
  dedup_key, private=True)` → OutboxMessage: to the organizer only: Roomsync declined the room for their
  event, and why. Times in the venue's zone.
- `event_removed(*, venue, organizer_email, organizer_name, room_names, start_utc, end_utc, subject, reason,
  dedup_key, private=True)` → OutboxMessage: to the organizer only: the event booked more than
  `MAX_SYNCED_ROOMS` synced rooms and was removed; split it.
- `push_failed(booking, why, dedup_key)`: to the holder and to the active admins (private titles masked for
  admins): a booking could not be written to Outlook, why, and what happens next.
- `no_show_released(booking, start_utc, end_utc, *, minutes, dedup_key)` → OutboxMessage or None (no active
  holder): to the holder (their title; `confidential` when private): nobody checked in at the room's tablet
  within `minutes` of the start, so the room (one occurrence of a series) was released.
- `no_shows_reported(booking, count, dedup_key)`: a series whose occurrences were released `count` times: to
  the holder (with the title) and, separately, to the active admins (title masked when private).
- `absolute_url(endpoint, venue=None, **values)` → an absolute link for an email, or "" when no public base
  URL is known. Jobs run outside any request, so the base is the integration's public base URL or the
  `PUBLIC_BASE_URL` setting, never the request's host.
- `when_text(start_utc, end_utc, tz)` → "Tuesday 3 March 2026, 10:00–11:00 (Europe/London)".

Privacy: the organizer is the holder of their event, so the emails to them name its subject; the email's
Subject header never does (the outbox list shows subjects to every admin), and the messages are marked
`confidential` so the outbox page shows their body to the organizer (and to admins only where the venue
lets admins see private titles). Pass `private=False` for an event that is not private, so admins can read
the message in the outbox.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from ..auth.models import User
from ..booking.models import Venue
from ..extensions import db
from ..timeutil import to_local
from .mailer import send_mail
from .models import OutboxMessage

MAX_SYNCED_ROOMS = 10


def _render(name: str, /, **context) -> tuple[str, str]:
    """(text, html) of an email. Straight from the Jinja environment: no request, user or CSRF context
    exists in a job, and none belongs in an email. `.html` autoescapes; `.txt` does not."""
    env = current_app.jinja_env
    text = env.get_template(f"notify/email/{name}.txt").render(**context)
    html = env.get_template(f"notify/email/{name}.html").render(**context)
    return text.strip() + "\n", html


def absolute_url(endpoint: str, venue=None, **values) -> str:
    base = ""
    if venue is not None:
        from ..integration.operations import settings_for

        settings = settings_for(venue)
        base = (settings.public_base_url or "").strip() if settings is not None else ""
    base = base or str(current_app.config.get("PUBLIC_BASE_URL") or "").strip()
    if not base:
        return ""
    path = current_app.url_map.bind("localhost", script_name="/").build(endpoint, values)
    return base.rstrip("/") + path


def when_text(start_utc: datetime, end_utc: datetime, tz: ZoneInfo) -> str:
    start, end = to_local(start_utc, tz), to_local(end_utc, tz)

    def day(value: datetime) -> str:
        return f"{value:%A} {value.day} {value:%B %Y}"

    if start.date() == end.date():
        span = f"{day(start)}, {start:%H:%M}–{end:%H:%M}"
    else:
        span = f"{day(start)} {start:%H:%M} – {day(end)} {end:%H:%M}"
    return f"{span} ({tz.key})"


def _active_admin_emails() -> list[str]:
    return list(db.session.scalars(
        select(User.email).where(User.role == "admin", User.active.is_(True)).order_by(User.id)))


def pair_broken(pair, dedup_key: str) -> OutboxMessage | None:
    admins = _active_admin_emails()
    if not admins:
        current_app.logger.warning("pair %s is broken and no active admin exists to tell", pair.id)
        return None
    space_name = pair.space.name if pair.space is not None else f"space {pair.space_id}"
    room = pair.room_display_name or pair.room_email
    context = dict(space_name=space_name, room_name=room, room_email=pair.room_email,
                   why=pair.state_detail or "Roomsync could not reach the room's calendar.",
                   link=absolute_url("sync.pairs", venue=db.session.get(Venue, pair.venue_id)))
    text, html = _render("pair_broken", **context)
    return send_mail(admins, f"Roomsync: the sync of {space_name} with {room} stopped", text, html=html,
                     kind="pair_broken", venue_id=pair.venue_id, dedup_key=dedup_key)


def event_refused(*, venue, organizer_email: str, organizer_name: str, room_name: str, start_utc: datetime,
                  end_utc: datetime, subject: str, reason: str, dedup_key: str,
                  private: bool = True) -> OutboxMessage:
    context = dict(organizer_name=organizer_name or organizer_email, room_name=room_name,
                   event_subject=subject or "(no subject)", when=when_text(start_utc, end_utc, venue.tz),
                   reason=reason, venue_name=venue.name)
    text, html = _render("event_refused", **context)
    return send_mail(organizer_email, f"Your booking of {room_name} was declined", text, html=html,
                     kind="event_refused", venue_id=venue.id, dedup_key=dedup_key, confidential=private)


def event_removed(*, venue, organizer_email: str, organizer_name: str, room_names, start_utc: datetime,
                  end_utc: datetime, subject: str, reason: str, dedup_key: str,
                  private: bool = True) -> OutboxMessage:
    rooms = list(room_names)
    context = dict(organizer_name=organizer_name or organizer_email, room_names=rooms, room_count=len(rooms),
                   event_subject=subject or "(no subject)", when=when_text(start_utc, end_utc, venue.tz),
                   reason=reason, limit=MAX_SYNCED_ROOMS, venue_name=venue.name)
    text, html = _render("event_removed", **context)
    return send_mail(organizer_email, f"Your event booking {len(rooms)} rooms was removed", text, html=html,
                     kind="event_removed", venue_id=venue.id, dedup_key=dedup_key, confidential=private)



def push_failed(booking, why: str, dedup_key: str) -> OutboxMessage | None:
    """To the holder (with the title: it is theirs) and, separately, to the active admins (without the title
    when the booking is private): Roomsync could not write the booking to Outlook, and why."""
    venue = db.session.get(Venue, booking.venue_id)
    spaces = ", ".join(s.name for s in booking.spaces) or "its space"
    when = when_text(booking.start_utc, booking.end_utc, venue.tz)
    link = absolute_url("sync.health", venue=venue)
    sent = None
    if booking.holder is not None and booking.holder.active:
        text, html = _render("push_failed", name=booking.holder.display_name, title=booking.title or "(no title)",
                             spaces=spaces, when=when, why=why, for_admins=False, link="")
        sent = send_mail(booking.holder.email, f"Roomsync could not put your booking of {spaces} in Outlook", text,
                         html=html, kind="push_failed", venue_id=venue.id, dedup_key=dedup_key + ":holder",
                         confidential=booking.private)
    admins = _active_admin_emails()
    if admins:
        title = "Private booking" if booking.private else (booking.title or "(no title)")
        text, html = _render("push_failed", name="", title=title, spaces=spaces, when=when, why=why,
                             for_admins=True, link=link)
        sent = send_mail(admins, f"Roomsync: a booking of {spaces} could not be written to Outlook", text,
                         html=html, kind="push_failed", venue_id=venue.id, dedup_key=dedup_key + ":admins")
    return sent


def no_show_released(booking, start_utc: datetime, end_utc: datetime, *, minutes: int,
                     dedup_key: str) -> OutboxMessage | None:
    holder = booking.holder
    if holder is None or not holder.active:
        return None
    venue = db.session.get(Venue, booking.venue_id)
    spaces = ", ".join(s.name for s in booking.spaces) or "the space"
    text, html = _render("no_show_released", name=holder.display_name, title=booking.title or "(no title)",
                         spaces=spaces, when=when_text(start_utc, end_utc, venue.tz), minutes=minutes,
                         series=booking.rrule is not None)
    return send_mail(holder.email, f"Your booking of {spaces} was released: nobody checked in", text, html=html,
                     kind="no_show_released", venue_id=venue.id, dedup_key=dedup_key, confidential=booking.private)


def no_shows_reported(booking, count: int, dedup_key: str) -> OutboxMessage | None:
    """To the holder (with the title: it is theirs) and to the active admins (without it when private)."""
    venue = db.session.get(Venue, booking.venue_id)
    spaces = ", ".join(s.name for s in booking.spaces) or "its space"
    link = absolute_url("admin.index", venue=venue)
    sent = None
    holder = booking.holder
    if holder is not None and holder.active:
        text, html = _render("no_shows_reported", name=holder.display_name, title=booking.title or "(no title)",
                             spaces=spaces, count=count, for_admins=False, holder="", link="")
        sent = send_mail(holder.email, f"Your repeating booking of {spaces}: {count} no-shows", text, html=html,
                         kind="no_shows_reported", venue_id=venue.id, dedup_key=dedup_key + ":holder",
                         confidential=booking.private)
    admins = _active_admin_emails()
    if admins:
        title = "Private booking" if booking.private else (booking.title or "(no title)")
        text, html = _render("no_shows_reported", name="", title=title, spaces=spaces, count=count, for_admins=True,
                             holder=holder.display_name if holder is not None else "", link=link)
        sent = send_mail(admins, f"Roomsync: a repeating booking of {spaces} had {count} no-shows", text, html=html,
                         kind="no_shows_reported", venue_id=venue.id, dedup_key=dedup_key + ":admins")
    return sent
