"""Laying occurrences out on the booking grid: pure functions, no database, no Flask.

Public API:
- `BlockSource(space_id, booking, start, end, original_start, title)`: one occurrence to place (`title` is
  the visible title, already decided by `booking.privacy`).
- `day_grid(venue, day, spaces, sources, *, viewer, now, related, names, new_href, detail_href, week_href,
  avatar, syncing, outbound)` → `Grid`: one column per space on one day.
- `week_grid(venue, space, days, sources, *, viewer, now, names, new_href, detail_href, day_href, avatar,
  syncing, outbound)` → `Grid`: one column per day for one space.
  `outbound` (optional; empty by default): booking uid → its `sync.models.OutboundState` for the bookings
  whose push to Outlook is pending or failed (`sync.outbound.pending_state`, one query per page). Their
  blocks carry a `SyncBadge` (`Block.sync`, a small marker with its explanation as a tooltip).
  `syncing` (optional; none by default): ids of the spaces in their initial sync with Microsoft 365
  (`sync.freeze`). A space that is syncing, or that shares with one ("Board room A" while "Board room A+B"
  syncs), takes no bookings: its slots are not links and its column (`Column.syncing`) or the week
  (`Grid.syncing`) carries a note saying why.
  `avatar(holder)` (optional; none by default) → the holder's avatar as HTML (photo or initials), shown next to
  their name; the caller prepares it for the whole page at once, so laying out a block runs no query and
  renders no template.
- `Grid`, `Column`, `Block`: what the grid template renders (`Column.slots_html()` renders the empty slots).
- `sync_badge(state, tz, *, show_error, now)` → `SyncBadge | None`: how a booking's Outlook sync status is
  shown ("Pending sync" with the retry time and attempts, or "Not in Outlook"); the error text only when
  `show_error` (the holder and admins: `privacy.can_edit`).
- `safe_link(url)` → the url when it is an http(s) link (a Teams join link), else None: a value that came
  from Outlook is never rendered as a `javascript:` or other link.

Rows are the venue's grid steps in wall-clock time, from the opening hours of the days shown (07:00–20:00
for a closed day), widened to whole hours and to any booking outside them, so nothing is ever hidden.
A block's `top`/`height` are in rows (fractions allowed), so the template positions it with one CSS
multiplication. Empty slots are bookable when the day is open at that time, the slot has not passed
(the slot in progress still counts, like the venue rules) and no block covers it; bookings on spaces that
share this one (`related`, e.g. "Board A+B" for "Board A") cover it as "in use" blocks.

Built for 200 spaces × a busy day: the per-row data (labels, UTC start strings, open flags) is computed
once per day and shared by the columns, and a column's slots are joined in one string (`slots_html`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Callable, Iterable, Mapping

from markupsafe import Markup, escape

from ..timeutil import localize, to_local
from .forms import FALLBACK_HOURS, minutes_label
from .privacy import can_edit

HOUR = 60


@dataclass(frozen=True)
class BlockSource:
    space_id: int
    booking: object  # Booking
    start: datetime
    end: datetime
    original_start: datetime
    title: str


@dataclass(frozen=True)
class SyncBadge:
    """A booking's Outlook sync status as shown to one viewer."""

    state: str  # "pending" | "failed"
    label: str  # "Pending sync" | "Not in Outlook"
    detail: str  # one sentence for a tooltip: the retry time and attempts, or why it failed (when allowed)
    error: str = ""  # the provider's error; "" unless the viewer may read it


def _when(value: datetime, tz, now: datetime | None) -> str:
    local = to_local(value, tz)
    if now is not None and to_local(now, tz).date() == local.date():
        return f"{local:%H:%M}"
    return f"{local:%a %d %b, %H:%M}"


def sync_badge(state, tz, *, show_error: bool, now: datetime | None = None) -> SyncBadge | None:
    """`state`: an `OutboundState` (or None: nothing owed to Outlook, no badge)."""
    if state is None or state.state not in ("pending", "failed"):
        return None
    error = (state.error or "").strip() if show_error else ""
    if state.state == "failed":
        if error:
            detail = f"Outlook could not be updated with this booking: {error}"
            detail += "" if detail.endswith((".", "!", "?")) else "."
        elif show_error:
            detail = "Outlook could not be updated with this booking."
        else:
            detail = "Outlook could not be updated with this booking; its holder and the admins have been told why."
        return SyncBadge("failed", "Not in Outlook", detail, error)
    attempts = state.attempts or 0
    if state.next_attempt_at is not None:
        tries = f"{attempts} {'attempt' if attempts == 1 else 'attempts'} so far" if attempts else "not tried yet"
        detail = f"Waiting to update Outlook: next try at {_when(state.next_attempt_at, tz, now)} ({tries})."
    elif attempts:
        detail = f"Updating Outlook (after {attempts} failed {'attempt' if attempts == 1 else 'attempts'})."
    else:
        detail = "Queued to update Outlook: it normally takes a few seconds."
    if error:
        detail += f" Last error: {error}"
    return SyncBadge("pending", "Pending sync", detail, error)


def safe_link(url) -> str | None:
    if not isinstance(url, str):
        return None
    url = url.strip()
    return url if url.lower().startswith(("https://", "http://")) and len(url) > 8 else None


@dataclass
class Block:
    top: float
    height: float
    title: str
    when: str
    holder: str
    href: str | None
    classes: str
    avatar: str = ""  # the holder's avatar (HTML); empty: no person to show (internal blocks, "in use")
    sync: SyncBadge | None = None  # the booking's push to Outlook is pending or failed


@dataclass
class Column:
    label: str
    sublabel: str
    href: str | None  # the column heading's link (a space's week, a day)
    slot_prefix: str  # accessible name of its slots: "Book Room 1 at" + time
    new_href: str  # "…/bookings/new?space=1&start=" — the slot's UTC start is appended
    starts: list[str]  # UTC start of each row (shared between columns of one day)
    times: list[str]  # wall-clock time of each row (shared by every column)
    bookable: list[bool]
    blocks: list[Block] = field(default_factory=list)
    is_today: bool = False
    closed: bool = False
    syncing: str = ""  # why the space takes no bookings now (its or a sharing space's initial sync); "" if it does

    def slots_html(self) -> Markup:
        """The column's slots, one tag per row. Built here rather than in a template loop: a 200-space day has
        over 10,000 slots and Jinja's per-value escaping made that loop most of the page's time. The two
        column values are escaped once; row values are ISO instants and HH:MM times (nothing to escape)."""
        href, prefix = escape(self.new_href), escape(self.slot_prefix)
        return Markup(
            "".join(
                f'<a class="s" href="{href}{start}" aria-label="{prefix} {time}"></a>' if free else '<span class="s x"></span>'
                for free, start, time in zip(self.bookable, self.starts, self.times)
            )
        )


@dataclass
class Grid:
    granularity: int
    row_labels: list[str]  # "09:00" on the hour, "" between
    row_times: list[str]  # every row's time, for accessible names
    columns: list[Column]
    now_top: float | None = None  # rows from the top; None when today is not shown
    now_column: int | None = None  # None: the line crosses every column
    syncing: str = ""  # week view: why its space takes no bookings now (see Column.syncing)

    @property
    def any_syncing(self) -> bool:
        """A space shown is frozen by an initial sync: the grid polls until it is over."""
        return bool(self.syncing) or any(column.syncing for column in self.columns)

    @property
    def focus_row(self) -> float:
        """Where the page first scrolls to: the current time, else the first booking or 08:00, whichever is
        earlier (a venue open around the clock would otherwise open on midnight)."""
        if self.now_top is not None:
            return self.now_top
        candidates = [b.top for column in self.columns for b in column.blocks]
        if "08:00" in self.row_times:
            candidates.append(self.row_times.index("08:00"))
        return min(candidates, default=0)


def iso_z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _open_minutes(venue, day: date) -> tuple[int, int] | None:
    hours = venue.hours_for(day.weekday())
    if hours is None:
        return None
    opens, closes = hours
    return opens.hour * HOUR + opens.minute, 1440 if closes == time.max else closes.hour * HOUR + closes.minute


def _minutes_into(day: date, local: datetime) -> float:
    """Wall-clock minutes of a naive local time from the start of `day` (negative before, beyond 1440 after)."""
    return (local - datetime.combine(day, time.min)).total_seconds() / 60


@dataclass(frozen=True)
class _Local:
    """A source with its wall-clock start and end (naive, venue zone), converted once."""

    source: BlockSource
    start: datetime
    end: datetime


def _localise(venue, sources: Iterable[BlockSource]) -> list[_Local]:
    tz = venue.tz
    return [_Local(s, to_local(s.start, tz).replace(tzinfo=None), to_local(s.end, tz).replace(tzinfo=None)) for s in sources]


def _visible_minutes(venue, days: list[date], items: list[_Local]) -> tuple[int, int]:
    first, last = 1440, 0
    for day in days:
        opens, closes = _open_minutes(venue, day) or FALLBACK_HOURS
        first, last = min(first, opens), max(last, closes)
    for item in items:
        for day in days:
            start = _minutes_into(day, item.start)
            end = _minutes_into(day, item.end)
            if start < 1440 and end > 0:
                first, last = min(first, max(0, start)), max(last, min(1440, end))
    first = int(first) - int(first) % HOUR
    last = min(1440, math.ceil(last / HOUR) * HOUR)
    return first, last


class _DayRows:
    """Per-day row data shared by every column showing that day."""

    def __init__(self, venue, day: date, minutes: list[int], now: datetime):
        tz = venue.tz
        grid = venue.granularity_minutes
        midnight = datetime.combine(day, time.min)
        utc_starts = [localize(midnight + timedelta(minutes=m), tz) for m in minutes]
        self.starts = [iso_z(s) for s in utc_starts]
        open_span = _open_minutes(venue, day)
        self.closed = open_span is None
        earliest = now - timedelta(minutes=grid)
        self.bookable = [
            open_span is not None and open_span[0] <= m and m + grid <= open_span[1] and start >= earliest
            for m, start in zip(minutes, utc_starts)
        ]


def _no_avatar(holder) -> str:
    return ""


def syncing_note(space_id: int, syncing, blockers, names: dict[int, str]) -> str:
    """Why `space_id` takes no bookings while spaces in `syncing` run their initial sync ("" if it does);
    `blockers`: the spaces whose bookings block it (they freeze it too)."""
    if space_id in syncing:
        return "Initial sync with Microsoft 365 in progress: bookings open again as soon as it finishes."
    shared = sorted((names.get(other, "") for other in blockers if other in syncing), key=str.casefold)
    if shared:
        return (f"{', '.join(shared)} (sharing this space) {'are' if len(shared) > 1 else 'is'} in the initial sync "
                "with Microsoft 365: bookings open again as soon as it finishes.")
    return ""


def _no_sync(booking) -> None:
    return None


def _sync_maker(venue, outbound, viewer, now):
    """booking → its SyncBadge for `viewer`, decided once per booking however many blocks it has."""
    if not outbound:
        return _no_sync
    tz = venue.tz
    decided: dict[str, SyncBadge | None] = {}

    def sync(booking) -> SyncBadge | None:
        uid = booking.uid
        if uid not in decided:
            state = outbound.get(uid)
            decided[uid] = sync_badge(state, tz, show_error=can_edit(booking, viewer), now=now) if state else None
        return decided[uid]

    return sync


def _block(item: _Local, grid: int, day: date, first: int, last: int, viewer_id, detail_href, avatar,
           blocked_by=None, sync=_no_sync) -> Block | None:
    start = max(_minutes_into(day, item.start), first)
    end = min(_minutes_into(day, item.end), last)
    if end <= start:
        return None
    source = item.source
    booking = source.booking
    classes = booking.kind
    if booking.private:
        classes += " private"
    if booking.holder_id is not None and booking.holder_id == viewer_id:
        classes += " mine"
    when = f"{item.start:%H:%M}–{item.end:%H:%M}"
    top, height = (start - first) / grid, (end - start) / grid
    if blocked_by is not None:
        return Block(top, height, f"In use: {blocked_by}", when, "", None, classes + " blocked")
    href = detail_href(booking.id, iso_z(source.original_start))
    badge = sync(booking)
    if badge is not None:
        classes += f" sync-{badge.state}"
    if booking.holder is None:
        return Block(top, height, source.title, when, booking.kind.capitalize(), href, classes, sync=badge)
    return Block(top, height, source.title, when, booking.holder.display_name, href, classes, avatar(booking.holder),
                 sync=badge)


def _cover(column: Column, block: Block) -> None:
    for row in range(max(0, math.floor(block.top + 1e-9)), min(len(column.bookable), math.ceil(block.top + block.height - 1e-9))):
        column.bookable[row] = False


def _rows(venue, first: int, last: int) -> tuple[list[int], list[str], list[str]]:
    grid = venue.granularity_minutes
    minutes = list(range(first, last, grid))
    times = [minutes_label(m) for m in minutes]
    labels = [label if m % HOUR == 0 else "" for m, label in zip(minutes, times)]
    return minutes, labels, times


def _now_top(venue, day: date, first: int, last: int, now: datetime) -> float | None:
    local = to_local(now, venue.tz).replace(tzinfo=None)
    if local.date() != day:
        return None
    minutes = _minutes_into(day, local)
    if not first <= minutes < last:
        return None
    return (minutes - first) / venue.granularity_minutes


def day_grid(
    venue,
    day: date,
    spaces,
    sources: list[BlockSource],
    *,
    viewer,
    now: datetime,
    related: dict[int, set[int]],
    names: dict[int, str],
    new_href: Callable[[int], str],
    detail_href: Callable[[int, str], str],
    week_href: Callable[[int], str],
    avatar: Callable[[object], str] = _no_avatar,
    syncing: set[int] | frozenset[int] = frozenset(),
    outbound: Mapping[str, object] | None = None,
) -> Grid:
    """`related[space_id]`: the other spaces whose bookings block it; `names`: every space's name."""
    items = _localise(venue, sources)
    first, last = _visible_minutes(venue, [day], items)
    minutes, labels, times = _rows(venue, first, last)
    shared = _DayRows(venue, day, minutes, now)
    grid = venue.granularity_minutes
    viewer_id = getattr(viewer, "id", None)
    sync = _sync_maker(venue, outbound, viewer, now)
    columns: dict[int, Column] = {}
    for space in spaces:
        note = syncing_note(space.id, syncing, related.get(space.id, ()), names) if syncing else ""
        columns[space.id] = Column(
            label=space.name,
            sublabel=f"{space.capacity} {'seat' if space.capacity == 1 else 'seats'}" if space.capacity else "",
            href=week_href(space.id),
            slot_prefix=f"Book {space.name} at",
            new_href=new_href(space.id),
            starts=shared.starts,
            times=times,
            bookable=list(shared.bookable) if space.active and not note else [False] * len(minutes),
            closed=shared.closed,
            syncing=note,
        )
    blocked_columns: dict[int, list[int]] = {}
    for space_id, others in related.items():
        for other in others:
            blocked_columns.setdefault(other, []).append(space_id)
    for item in items:
        space_id = item.source.space_id
        own = columns.get(space_id)
        if own is not None:
            block = _block(item, grid, day, first, last, viewer_id, detail_href, avatar, sync=sync)
            if block is not None:
                own.blocks.append(block)
                _cover(own, block)
        for blocked_id in blocked_columns.get(space_id, ()):
            column = columns.get(blocked_id)
            if column is None:
                continue
            block = _block(item, grid, day, first, last, viewer_id, detail_href, avatar,
                           blocked_by=names.get(space_id, ""))
            if block is not None:
                column.blocks.append(block)
                _cover(column, block)
    return Grid(grid, labels, times, list(columns.values()), _now_top(venue, day, first, last, now))


def week_grid(
    venue,
    space,
    days: list[date],
    sources: list[BlockSource],
    *,
    viewer,
    now: datetime,
    names: dict[int, str],
    new_href: Callable[[int], str],
    detail_href: Callable[[int, str], str],
    day_href: Callable[[date], str],
    avatar: Callable[[object], str] = _no_avatar,
    syncing: set[int] | frozenset[int] = frozenset(),
    outbound: Mapping[str, object] | None = None,
) -> Grid:
    """`sources` may include bookings of related spaces (shown as "in use"); `names`: their names;
    `syncing`: the syncing spaces among this space and the spaces it shares with."""
    items = _localise(venue, sources)
    first, last = _visible_minutes(venue, days, items)
    minutes, labels, times = _rows(venue, first, last)
    today = to_local(now, venue.tz).date()
    step = venue.granularity_minutes
    viewer_id = getattr(viewer, "id", None)
    sync = _sync_maker(venue, outbound, viewer, now)
    note = syncing_note(space.id, syncing, set(syncing) - {space.id}, names) if syncing else ""
    grid = Grid(step, labels, times, [], syncing=note)
    slot_href = new_href(space.id)
    for index, day in enumerate(days):
        rows = _DayRows(venue, day, minutes, now)
        column = Column(
            label=f"{day:%a}",
            sublabel=f"{day.day} {day:%b}",
            href=day_href(day),
            slot_prefix=f"Book {space.name} on {day:%A %d %B} at",
            new_href=slot_href,
            starts=rows.starts,
            times=times,
            bookable=list(rows.bookable) if space.active and not note else [False] * len(minutes),
            is_today=day == today,
            closed=rows.closed,
        )
        for item in items:
            blocked_by = None if item.source.space_id == space.id else names.get(item.source.space_id, "")
            block = _block(item, step, day, first, last, viewer_id, detail_href, avatar, blocked_by=blocked_by,
                           sync=sync)
            if block is not None:
                column.blocks.append(block)
                _cover(column, block)
        grid.columns.append(column)
        top = _now_top(venue, day, first, last, now)
        if top is not None:
            grid.now_top, grid.now_column = top, index
    return grid
