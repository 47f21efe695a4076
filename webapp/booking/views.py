"""Staff booking pages (blueprint `booking`): server-rendered, enhanced with htmx.

Public API: `bp` with these endpoints (all need a signed-in user):
- `GET /` (`booking.day_view`, `?date=YYYY-MM-DD&tag=TAG`): the venue's spaces as columns on one day. An htmx
  request targeting `#booking-grid` gets the grid fragment alone (it refreshes itself on `booking-changed`).
- `GET /spaces/<id>/week` (`booking.week_view`, `?date=`): one space, Monday to Sunday, with its photo.
- `GET /spaces/<id>/photo` (`booking.space_photo`, `?v=<etag>`): the space's photo (`SpacePhoto`) or 404. Pages
  link it with `v` = its current ETag, which makes the URL's content immutable: cached for a year; any other
  `v` (or none) is revalidated on every use (ETag, 304).
- `GET /bookings/mine` (`booking.my_bookings`, `?past=1`): occurrences the user holds or attends.
- `GET /bookings/new` (`booking.new_booking`, `?space=ID&start=ISO`): the booking form, prefilled for a slot;
  a fragment for htmx (the day view's dialog), a full page otherwise.
- `POST /bookings` (`booking.create`), `GET /bookings/<id>` (`booking.detail`, `?occurrence=ISO`),
  `GET/POST /bookings/<id>/edit` (`booking.edit`), `POST /bookings/<id>/cancel` (`booking.cancel`).

Writes go through `booking.operations` only. Their errors come back to the user in place: a
`ValidationError` re-renders the form with each message next to its field (422), a `ConflictError` lists
the clashing dates and spaces with titles masked by `booking.privacy` (409). Success answers htmx with an
`HX-Trigger: booking-changed` event on a 204 (the dialog closes, the grid reloads, the message is shown) and plain
requests with a 303 and a flash.

While a space (or one sharing with it) runs its initial sync with Microsoft 365 (`sync.freeze`), the grids
show it with a "Syncing" note and no slot links (one query per page), the form for it says why up front, and
a write refused with `SpaceSyncing` comes back as a message at the top of the form (422).

Outlook sync status (`sync.outbound.pending_state`, one query per page for every booking shown): a booking
whose push to Outlook is pending or failed carries a "Pending sync" / "Not in Outlook" badge on its page, a
marker on the grids and a badge in "My bookings"; the provider's error text only for its holder and admins.
The booking's page shows the Teams join link (`Booking.join_url`, http(s) only) to whoever may see its
details (`privacy.can_see_details`); the form's "Online meeting (Teams)" box sets `BookingInput.online_meeting`.

Holders appear with their avatar (`people/_avatar.html`: the synced photo when the venue syncs photos, else
initials) on the grids, "My bookings" and a booking's page; which holders have a photo is read once per page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import (Blueprint, abort, flash, get_template_attribute, make_response, redirect, render_template, request,
                   url_for)
from flask_login import current_user, login_required
from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from .. import htmx, images
from ..auth.models import User
from ..auth.views import safe_next
from ..extensions import db
from ..integration.photos import holders_with_photos, initials
from ..sync.freeze import refuse_if_syncing, syncing_space_ids, syncing_spaces_of
from ..sync.outbound import pending_state
from ..timeutil import NaiveDatetimeError, local_day_bounds, now_utc, parse_iso, to_local
from ..venue import current_venue
from . import display
from .errors import ConflictError, NotFound, PermissionDenied, SpaceSyncing, ValidationError
from .forms import EARLIEST_DAY, LATEST_DAY, booking_form, initial_for_slot, initial_from_input
from .models import Booking, Occurrence, OccurrenceException, Space, SpacePhoto
from .operations import (
    DependencyGraph,
    OccurrenceTime,
    cancel_booking,
    create_booking,
    find_occurrence,
    input_from_booking,
    occurrences_between,
    space_closure,
    update_booking,
)
from .privacy import can_edit, can_see_details, visible_title
from .recurrence import Recurrence

bp = Blueprint("booking", __name__)

GRID_ID = "booking-grid"
CHANGED_EVENT = "booking-changed"
MAX_ID = 2**31 - 1  # larger ids cannot exist; refusing them early keeps the database driver from overflowing
CONFLICTS_SHOWN = 12
MY_BOOKINGS_SHOWN = 100
AVATAR_SIZE = "1.25rem"  # next to a holder's name in grids and lists (20 px)


# ---------------------------------------------------------------------------------------------- input parsing


def _parse_day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        abort(400, f"“{text}” is not a date: use the form YYYY-MM-DD, e.g. 2026-03-02.")
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        abort(400, f"{day} is out of the range Roomsync shows.")
    return day


def _parse_instant(text: str, name: str) -> datetime:
    try:
        value = parse_iso(text, name)
    except (ValueError, NaiveDatetimeError, OverflowError):
        abort(400, f"“{text}” is not a valid {name}: use ISO 8601 with an offset, e.g. 2026-03-02T09:00:00Z.")
    if not EARLIEST_DAY <= value.date() <= LATEST_DAY:
        abort(400, f"{value.date()} is out of the range Roomsync shows.")
    return value


def _parse_id(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_ID:
        abort(400, f"“{text}” is not a valid {name} id.")
    return int(text)


def _booking_or_404(booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id) if booking_id <= MAX_ID else None
    if booking is None or booking.venue_id != current_venue().id:
        abort(404)
    return booking


def _occurrence_of(booking: Booking) -> OccurrenceTime | None:
    """The occurrence named by `?occurrence=` (or the form's hidden field); 404 when the series has none."""
    text = request.values.get("occurrence")
    if not text:
        return None
    try:
        return find_occurrence(booking, _parse_instant(text, "occurrence"))
    except NotFound as exc:
        abort(404, exc.message)


def _user() -> User:
    """The signed-in user itself, not flask-login's proxy (operations keep it; hot loops read it)."""
    return current_user._get_current_object()


def _today(venue) -> date:
    return to_local(now_utc(), venue.tz).date()


# ---------------------------------------------------------------------------------------------- reading helpers


def _title_overrides(bookings) -> dict[tuple[int, datetime], str]:
    series_ids = [b.id for b in bookings if b.rrule]
    if not series_ids:
        return {}
    rows = db.session.execute(
        select(OccurrenceException.booking_id, OccurrenceException.original_start_utc, OccurrenceException.title).where(
            OccurrenceException.booking_id.in_(series_ids), OccurrenceException.title.is_not(None)
        )
    )
    return {(booking_id, start): title for booking_id, start, title in rows}


def _prepare(bookings, venue) -> dict[tuple[int, datetime], str]:
    """Attach holders (one query) and the venue to the bookings so rendering runs no per-booking query;
    return the per-occurrence title overrides."""
    holder_ids = {b.holder_id for b in bookings if b.holder_id is not None}
    holders = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(holder_ids)))} if holder_ids else {}
    for booking in bookings:
        set_committed_value(booking, "holder", holders.get(booking.holder_id))
        set_committed_value(booking, "venue", venue)
    return _title_overrides(bookings)


def _block_sources(occurrences: list[Occurrence], venue) -> list[display.BlockSource]:
    bookings = list({o.booking_id: o.booking for o in occurrences}.values())
    overrides = _prepare(bookings, venue)
    viewer = _user()
    return [
        display.BlockSource(
            o.space_id,
            o.booking,
            o.start_utc,
            o.end_utc,
            o.original_start_utc,
            visible_title(o.booking, viewer, overrides.get((o.booking_id, o.original_start_utc))),
        )
        for o in occurrences
    ]


def _url_pattern(endpoint: str, **values) -> str:
    """`url_for` once with a sentinel id, as a format string: a grid has thousands of links and url_for per
    link was 40% of the time of a 200-space day view. Occurrence ISO strings (digits, "-", ":", "T", "Z")
    need no quoting in a query string."""
    return url_for(endpoint, **values).replace(str(MAX_ID), "{}")


def _detail_href_maker():
    pattern = _url_pattern("booking.detail", booking_id=MAX_ID) + "?occurrence={}"
    return lambda booking_id, occurrence_iso: pattern.format(booking_id, occurrence_iso)


def _avatar_maker(venue, holder_ids, size: str = AVATAR_SIZE):
    """holder (User) → their avatar's HTML (the `people/_avatar.html` macro), for a whole page: which holders
    have a photo to show is read once (`holders_with_photos`, one query), the photo URL is a pattern, and each
    holder's avatar is rendered once however many bookings they hold (a 200-space day view has about 700
    blocks but a few dozen holders; the macro per block was 5% of its time)."""
    with_photo = holders_with_photos(venue, holder_ids)
    pattern = _url_pattern("people.photo", user_id=MAX_ID) if with_photo else ""
    macro = get_template_attribute("people/_avatar.html", "avatar")
    rendered: dict[int, str] = {}

    def avatar(holder: User) -> str:
        html = rendered.get(holder.id)
        if html is None:
            photo = pattern.format(holder.id) if holder.id in with_photo else None
            html = rendered[holder.id] = macro(initials(holder.display_name), photo, size)
        return html

    return avatar


# ---------------------------------------------------------------------------------------------- grids


@bp.get("/")
@login_required
def day_view():
    venue = current_venue()
    today = _today(venue)
    day = _parse_day(request.args.get("date")) or today
    tag = (request.args.get("tag") or "").strip()
    active = [s for s in venue.spaces if s.active]
    tags = sorted({t for s in active for t in (s.tags or [])}, key=str.casefold)
    shown = [s for s in active if not tag or tag in (s.tags or [])]
    start, end = local_day_bounds(day, venue.tz)
    # Every active space, not only the shown ones: a hidden "Board A+B" still blocks a shown "Board A".
    occurrences = occurrences_between([s.id for s in active], start, end)
    new_base = url_for("booking.new_booking")
    week_pattern = _url_pattern("booking.week_view", space_id=MAX_ID, date=day.isoformat())
    sources = _block_sources(occurrences, venue)
    grid = display.day_grid(
        venue,
        day,
        shown,
        sources,
        viewer=_user(),
        now=now_utc(),
        related=DependencyGraph.load().blockers(),
        names={s.id: s.name for s in venue.spaces},
        new_href=lambda space_id: f"{new_base}?space={space_id}&start=",
        detail_href=_detail_href_maker(),
        week_href=week_pattern.format,
        avatar=_avatar_maker(venue, {s.booking.holder_id for s in sources}),
        syncing=syncing_spaces_of(venue),
        outbound=pending_state({s.booking.uid for s in sources}),
    )
    context = dict(
        venue=venue,
        day=day,
        prev_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
        today=today,
        tag=tag,
        tags=tags,
        grid=grid,
        grid_id=GRID_ID,
        grid_url=url_for("booking.day_view", date=day.isoformat(), tag=tag or None),
        poll=day == today,
        closed=venue.hours_for(day.weekday()) is None,
    )
    if htmx.is_htmx() and htmx.hx_target() == GRID_ID:
        return render_template("booking/_grid.html", **context)
    return render_template("booking/day.html", **context)


@bp.get("/spaces/<int:space_id>/week")
@login_required
def week_view(space_id: int):
    venue = current_venue()
    space = db.session.get(Space, space_id) if space_id <= MAX_ID else None
    if space is None or space.venue_id != venue.id:
        abort(404)
    today = _today(venue)
    day = _parse_day(request.args.get("date")) or today
    monday = day - timedelta(days=day.weekday())
    days = [monday + timedelta(days=i) for i in range(7)]
    start, end = local_day_bounds(days[0], venue.tz)[0], local_day_bounds(days[-1], venue.tz)[1]
    closure = space_closure([space.id])
    occurrences = occurrences_between(closure, start, end)
    new_base = url_for("booking.new_booking")
    sources = _block_sources(occurrences, venue)
    grid = display.week_grid(
        venue,
        space,
        days,
        sources,
        viewer=_user(),
        now=now_utc(),
        names={s.id: s.name for s in venue.spaces},
        new_href=lambda sid: f"{new_base}?space={sid}&start=",
        detail_href=_detail_href_maker(),
        day_href=lambda d: url_for("booking.day_view", date=d.isoformat()),
        avatar=_avatar_maker(venue, {s.booking.holder_id for s in sources}),
        syncing=syncing_space_ids(closure),
        outbound=pending_state({s.booking.uid for s in sources}),
    )
    context = dict(
        venue=venue,
        space=space,
        day=day,
        days=days,
        prev_week=monday - timedelta(days=7),
        next_week=monday + timedelta(days=7),
        today=today,
        grid=grid,
        grid_id=GRID_ID,
        grid_url=url_for("booking.week_view", space_id=space.id, date=monday.isoformat()),
        poll=monday <= today <= days[-1],
    )
    if htmx.is_htmx() and htmx.hx_target() == GRID_ID:
        return render_template("booking/_grid.html", **context)
    return render_template("booking/week.html", photo=db.session.get(SpacePhoto, space.id), **context)


@bp.get("/spaces/<int:space_id>/photo")
@login_required
def space_photo(space_id: int):
    space = db.session.get(Space, space_id) if space_id <= MAX_ID else None
    photo = SpacePhoto.with_bytes(space_id) if space is not None and space.venue_id == current_venue().id else None
    if photo is None:
        abort(404)
    return images.image_response(photo.data, photo.content_type, photo.etag,
                                 images.versioned_cache_control(request.args.get("v"), photo.etag))


# ---------------------------------------------------------------------------------------------- my bookings


@dataclass
class MyOccurrence:
    booking: Booking
    start: datetime
    end: datetime
    original_start: datetime
    title: str
    spaces: list[str] = field(default_factory=list)
    avatar: str = ""  # the holder's (HTML); empty when there is none (an internal block)
    sync: display.SyncBadge | None = None  # its push to Outlook is pending or failed

    @property
    def occurrence_iso(self) -> str:
        return display.iso_z(self.original_start)


@bp.get("/bookings/mine")
@login_required
def my_bookings():
    venue = current_venue()
    past = request.args.get("past") == "1"
    now = now_utc()
    involves_me = or_(
        Booking.holder_id == current_user.id,
        # Attendees are a JSON list of lower-case emails; its text holds the quoted address on both databases.
        cast(Booking.attendees, String).contains(f'"{current_user.email}"', autoescape=True),
    )
    stmt = (
        select(Occurrence)
        .join(Occurrence.booking)
        .join(Occurrence.space)
        .options(contains_eager(Occurrence.booking), contains_eager(Occurrence.space))
        .where(Booking.venue_id == venue.id, Booking.cancelled_at.is_(None), involves_me)
    )
    if past:
        stmt = stmt.where(Occurrence.end_utc <= now).order_by(Occurrence.start_utc.desc(), Booking.id, Space.position)
    else:
        stmt = stmt.where(Occurrence.end_utc > now).order_by(Occurrence.start_utc, Booking.id, Space.position)
    rows = list(db.session.scalars(stmt.limit(MY_BOOKINGS_SHOWN * 5)))
    bookings = list({o.booking_id: o.booking for o in rows}.values())
    overrides = _prepare(bookings, venue)
    avatar = _avatar_maker(venue, {b.holder_id for b in bookings})
    outbound = pending_state({b.uid for b in bookings})
    now = now_utc()
    badges = {b.id: display.sync_badge(outbound.get(b.uid), venue.tz, show_error=can_edit(b, current_user), now=now)
              for b in bookings if b.uid in outbound}
    items: dict[tuple[int, datetime], MyOccurrence] = {}
    for row in rows:
        key = (row.booking_id, row.original_start_utc)
        if key not in items:
            if len(items) == MY_BOOKINGS_SHOWN:
                break
            title = visible_title(row.booking, current_user, overrides.get(key))
            holder = row.booking.holder
            items[key] = MyOccurrence(row.booking, row.start_utc, row.end_utc, row.original_start_utc, title,
                                      avatar=avatar(holder) if holder else "", sync=badges.get(row.booking_id))
        items[key].spaces.append(row.space.name)
    return render_template(
        "booking/mine.html",
        venue=venue,
        items=list(items.values()),
        past=past,
        limit=MY_BOOKINGS_SHOWN,
        tz=venue.tz,
        can_edit=can_edit,
    )


# ---------------------------------------------------------------------------------------------- the form


@dataclass
class ConflictRow:
    day: str
    when: str
    space: str
    title: str


def _conflicts(exc: ConflictError, venue) -> dict:
    ids = {c.booking_id for c in exc.conflicts}
    others = {b.id: b for b in db.session.scalars(select(Booking).where(Booking.id.in_(ids)))}
    tz = venue.tz
    rows = []
    for conflict in exc.conflicts[:CONFLICTS_SHOWN]:
        other = others.get(conflict.booking_id)
        start, end = to_local(conflict.start_utc, tz), to_local(conflict.end_utc, tz)
        rows.append(
            ConflictRow(
                f"{start:%a %d %b %Y}",
                f"{start:%H:%M}–{end:%H:%M}",
                conflict.space_name,
                visible_title(other, current_user) if other is not None else "",
            )
        )
    return {"message": exc.message, "rows": rows, "more": max(0, len(exc.conflicts) - CONFLICTS_SHOWN)}


def _render_form(form, *, status: int = 200, booking: Booking | None = None, occurrence=None, conflicts=None):
    if booking is None:
        action = url_for("booking.create")
    else:
        action = url_for("booking.edit", booking_id=booking.id, occurrence=occurrence and display.iso_z(occurrence.original_start))
    context = dict(
        form=form,
        booking=booking,
        occurrence=occurrence,
        conflicts=conflicts,
        action=action,
        in_dialog=htmx.is_htmx(),
        venue=current_venue(),
    )
    template = "booking/_form.html" if htmx.is_htmx() else "booking/form_page.html"
    return render_template(template, **context), status


def _sync_notice(space_ids: list[int], *, changing: bool = False) -> list[str]:
    """The form's message up front when its spaces cannot be booked now because of an initial sync."""
    try:
        refuse_if_syncing(space_closure(space_ids), space_ids, changing=changing)
    except SpaceSyncing as exc:
        return [exc.message]
    return []


def _done(message: str, day: date, next_url: str | None = None):
    if htmx.is_htmx():
        # 204: nothing to swap; htmx still fires the event, which closes the dialog and reloads the grid.
        return htmx.trigger(make_response("", 204), CHANGED_EVENT, {"message": message})
    flash(message, "success")
    return redirect(next_url or url_for("booking.day_view", date=day.isoformat()), 303)


def _describe(booking: Booking, start: datetime, end: datetime) -> str:
    tz = booking.venue.tz
    local_start, local_end = to_local(start, tz), to_local(end, tz)
    spaces = ", ".join(s.name for s in booking.spaces)
    series = " (repeating)" if booking.rrule else ""
    return f"{spaces}, {local_start:%a %d %b} {local_start:%H:%M}–{local_end:%H:%M}{series}"


def _next_slot(venue) -> datetime:
    now = now_utc()
    grid = venue.granularity_minutes
    into_slot = timedelta(minutes=to_local(now, venue.tz).minute % grid, seconds=now.second, microseconds=now.microsecond)
    return now - into_slot + timedelta(minutes=grid)


@bp.get("/bookings/new")
@login_required
def new_booking():
    venue = current_venue()
    space_id = _parse_id(request.args.get("space"), "space")
    if space_id is not None and not any(s.id == space_id and s.active for s in venue.spaces):
        abort(400, f"There is no bookable space with id {space_id}.")
    start = _parse_instant(request.args["start"], "start") if request.args.get("start") else _next_slot(venue)
    form = booking_form(venue, current_user, initial=initial_for_slot(venue, space_id, start))
    if space_id is not None:
        form.general_errors += _sync_notice([space_id])
    return _render_form(form)


@bp.post("/bookings")
@login_required
def create():
    venue = current_venue()
    form = booking_form(venue, current_user, formdata=request.form)
    if not form.validate():
        return _render_form(form, status=422)
    data = form.to_input(venue)
    try:
        booking = create_booking(venue, data, actor=_user())
    except SpaceSyncing as exc:
        # Nothing to correct in the fields: the message goes on top of the form.
        form.general_errors.append(exc.message)
        return _render_form(form, status=422)
    except ValidationError as exc:
        form.add_errors(exc.fields)
        return _render_form(form, status=422)
    except ConflictError as exc:
        return _render_form(form, status=409, conflicts=_conflicts(exc, venue))
    return _done(f"Booked {_describe(booking, booking.start_utc, booking.end_utc)}.", to_local(booking.start_utc, venue.tz).date())


# ---------------------------------------------------------------------------------------------- one booking


def _render_detail(booking: Booking, occurrence: OccurrenceTime | None, *, status: int = 200, errors=()):
    venue = booking.venue
    shown = occurrence or OccurrenceTime(booking.start_utc, booking.start_utc, booking.end_utc)
    details = can_see_details(booking, current_user)
    labels = {f.key: f.label for f in venue.custom_fields}
    outbound = pending_state([booking.uid]).get(booking.uid)
    holder = booking.holder
    context = dict(
        booking=booking,
        holder_avatar=_avatar_maker(venue, [booking.holder_id], size="1.75rem")(holder) if holder else "",
        occurrence=occurrence,
        occurrence_iso=display.iso_z(occurrence.original_start) if occurrence else None,
        title=visible_title(booking, current_user, shown.title),
        start=to_local(shown.start, venue.tz),
        end=to_local(shown.end, venue.tz),
        cancelled=booking.is_cancelled or shown.cancelled,
        details=details,
        custom_fields=[(labels.get(k, k), v) for k, v in (booking.custom_fields or {}).items()] if details else [],
        pattern=Recurrence.parse(booking.rrule).describe() if booking.rrule else None,
        editable=can_edit(booking, current_user) and not booking.is_cancelled and not shown.cancelled,
        sync=display.sync_badge(outbound, venue.tz, show_error=can_edit(booking, current_user), now=now_utc()),
        join_url=display.safe_link(booking.join_url) if details else None,
        errors=list(errors),
        in_dialog=htmx.is_htmx(),
        next_url=safe_next(request.values.get("next")),
    )
    template = "booking/_detail.html" if htmx.is_htmx() else "booking/detail.html"
    return render_template(template, **context), status


@bp.get("/bookings/<int:booking_id>")
@login_required
def detail(booking_id: int):
    booking = _booking_or_404(booking_id)
    return _render_detail(booking, _occurrence_of(booking))


@bp.route("/bookings/<int:booking_id>/edit", methods=["GET", "POST"])
@login_required
def edit(booking_id: int):
    booking = _booking_or_404(booking_id)
    if not can_edit(booking, current_user):
        abort(403)
    occurrence = _occurrence_of(booking)
    if booking.is_cancelled or (occurrence and occurrence.cancelled):
        return _render_detail(booking, occurrence, status=409, errors=["This booking is cancelled; it cannot be changed."])
    venue = booking.venue
    ask_scope = booking.is_series and occurrence is not None
    keep = [s.id for s in booking.spaces]
    if request.method == "GET":
        data = input_from_booking(booking, occurrence.original_start if occurrence else None)
        initial = initial_from_input(data, venue, booking.holder.email if booking.holder else "")
        initial["occurrence"] = display.iso_z(occurrence.original_start) if occurrence else ""
        form = booking_form(venue, current_user, initial=initial, scope=ask_scope, keep_space_ids=keep)
        form.general_errors += _sync_notice(keep, changing=True)
        return _render_form(form, booking=booking, occurrence=occurrence)

    form = booking_form(venue, current_user, formdata=request.form, scope=ask_scope, keep_space_ids=keep)
    if not form.validate():
        return _render_form(form, status=422, booking=booking, occurrence=occurrence)
    data = form.to_input(venue, default_kind=booking.kind, keep_rrule=booking.rrule)
    try:
        updated = update_booking(
            booking,
            data,
            actor=_user(),
            scope=form.scope.data if ask_scope else "all",
            occurrence_start=occurrence.original_start if occurrence else None,
        )
    except PermissionDenied:
        abort(403)
    except SpaceSyncing as exc:
        form.general_errors.append(exc.message)
        return _render_form(form, status=422, booking=booking, occurrence=occurrence)
    except ValidationError as exc:
        form.add_errors(exc.fields)
        return _render_form(form, status=422, booking=booking, occurrence=occurrence)
    except ConflictError as exc:
        return _render_form(form, status=409, booking=booking, occurrence=occurrence, conflicts=_conflicts(exc, venue))
    return _done(f"Saved {_describe(updated, data.start, data.end)}.", to_local(data.start, venue.tz).date())


CANCELLED_MESSAGES = {
    "this": "That occurrence is cancelled.",
    "following": "That occurrence and the following ones are cancelled.",
    "all": "The booking is cancelled.",
}


@bp.post("/bookings/<int:booking_id>/cancel")
@login_required
def cancel(booking_id: int):
    booking = _booking_or_404(booking_id)
    if not can_edit(booking, current_user):
        abort(403)
    occurrence = _occurrence_of(booking)
    scope = request.form.get("scope", "all") if booking.is_series and occurrence else "all"
    day = to_local(occurrence.start if occurrence else booking.start_utc, booking.venue.tz).date()
    try:
        cancel_booking(booking, actor=_user(), scope=scope, occurrence_start=occurrence.original_start if occurrence else None)
    except PermissionDenied:
        abort(403)
    except ValidationError as exc:
        return _render_detail(booking, occurrence, status=422, errors=exc.fields.values())
    return _done(CANCELLED_MESSAGES.get(scope, CANCELLED_MESSAGES["all"]), day, safe_next(request.form.get("next")))
