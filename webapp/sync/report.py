"""What the admin sees of an initial sync: its progress, its report (and the report as CSV), its parity audit,
the audit log of a pair, and dry runs (previews) of the initial sync.

Public API (queries and small operations; no `request`, no `flash`):
- `run_for(pair)` → InitialSync | None; `runs_by_pair(venue)` → {pair_id: InitialSync} in one query (the pair
  list shows 1,000 pairs).
- `progress(run)` → `Progress`: step number and name, `percent` (steps completed of `LAST_STEP`), the
  non-zero counts as (label, n), `headline` ("Step 4 of 7: Importing the room's events"), and once finished
  `result` ("214 imported, 3 adjusted, 1 refused, 20 restored, 2 not restored — both sides agree").
- `items(run, kind=None, limit=None)` → [SyncReportItem], in `REPORT_KINDS` order then by start;
  `counts_by_kind(run)` → {kind: n} for every kind of `REPORT_KINDS` (from the report's rows), followed by
  any other kind the rows hold; `kind_label(kind)`.
- `parity_of(run)` → `Parity` | None: `agrees`, `summary` and the listed differences as sentences (read
  through `sync.parity.ParityResult.from_json`).
- `shown_title(item)`: an item's title, or "Private" (the report never carries a private title; see
  `booking.privacy`).
- `CSV_COLUMNS`, `csv_for(run, venue)` → str: the report as RFC 4180 CSV (CRLF line ends), one row per item,
  times in the venue's zone as ISO 8601 with their offset; cells that a spreadsheet would run as a formula
  (starting with = + - @, tab or CR) get a leading apostrophe (OWASP's CSV injection advice).
- `audit_for(pair, limit=200)` → [AuditEntry] of subject `pair:<id>`, newest first; `actor_names(entries)` →
  {user_id: name} in one query.
- Previews: `preview_refusals(venue, space, room)` → {field: message} (empty when the pair could be made; the
  same checks and messages as `pairs.create_pair`), `start_preview(venue, space, room, actor)` → SyncPreview
  (raises `ValidationError` like `create_pair`; commits, then enqueues the job `sync.initial.run_preview`),
  `preview_view(preview, venue)` → `PreviewView` (counts and rows with local times; tolerant of a partial
  or malformed result: a missing key reads as nothing, never as a 500).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select

from ..audit import AuditEntry, entries
from ..auth.models import User, normalise_email
from ..booking.errors import ValidationError
from ..booking.models import Space, Venue
from ..extensions import db
from ..jobs import enqueue_after_commit
from ..timeutil import parse_iso, to_local
from .models import LAST_STEP, REPORT_KINDS, REPORT_LABELS, RUN_STEPS, InitialSync, Pair, SyncPreview, SyncReportItem

log = logging.getLogger(__name__)

PRIVATE = "Private"
NO_TITLE = "(no title)"

# The counts a run keeps (`InitialSync.counts`), in the order the steps produce them, with their labels.
COUNT_LABELS = {
    "noted": "noted", "butler_removed": "one-way events removed", "deleted": "bookings deleted",
    "imported": "imported", "adjusted": "adjusted", "shortened": "series shortened", "refused": "refused",
    "removed": "removed in Outlook", "restored": "restored", "not_restored": "not restored",
}
# What the one-line result of a finished run names (imported always, the others when they happened).
RESULT_KINDS = ("imported", "adjusted", "shortened", "refused", "removed", "restored", "not_restored")


# ---------------------------------------------------------------------------------------------- progress


def run_for(pair: Pair) -> InitialSync | None:
    return db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair.id))


def runs_by_pair(venue: Venue) -> dict[int, InitialSync]:
    query = select(InitialSync).join(Pair, Pair.id == InitialSync.pair_id).where(Pair.venue_id == venue.id)
    return {run.pair_id: run for run in db.session.scalars(query)}


@dataclass(frozen=True)
class Progress:
    step: int
    step_name: str
    total: int
    finished: bool
    percent: int
    counts: list[tuple[str, int]]
    headline: str
    result: str


def _count(counts, key: str) -> int:
    value = (counts or {}).get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def progress(run: InitialSync) -> Progress:
    step = run.step if isinstance(run.step, int) else 1
    finished = step > LAST_STEP
    done_steps = LAST_STEP if finished else max(step - 1, 0)
    counts = [(label, _count(run.counts, key)) for key, label in COUNT_LABELS.items() if _count(run.counts, key)]
    headline = "Finished" if finished else f"Step {step} of {LAST_STEP}: {RUN_STEPS.get(step, '')}"
    return Progress(step=step, step_name=RUN_STEPS.get(step, "Finished"), total=LAST_STEP, finished=finished,
                    percent=round(100 * done_steps / LAST_STEP), counts=counts, headline=headline,
                    result=_result(run) if finished else "")


def _result(run: InitialSync) -> str:
    parts = [f"{_count(run.counts, kind)} {COUNT_LABELS[kind]}" for kind in RESULT_KINDS
             if kind == "imported" or _count(run.counts, kind)]
    text = ", ".join(parts)
    parity = parity_of(run)
    if parity is not None:
        text += " — both sides agree" if parity.agrees else f" — {parity.summary.rstrip('.') or 'the two sides differ'}"
    return text


# ---------------------------------------------------------------------------------------------- the report


def _kind_order():
    return case({kind: position for position, kind in enumerate(REPORT_KINDS)}, value=SyncReportItem.kind,
                else_=len(REPORT_KINDS))


def items(run: InitialSync, kind: str | None = None, limit: int | None = None) -> list[SyncReportItem]:
    query = select(SyncReportItem).where(SyncReportItem.run_id == run.id)
    if kind is not None:
        query = query.where(SyncReportItem.kind == kind)
    query = query.order_by(_kind_order(), SyncReportItem.start_utc, SyncReportItem.id)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def counts_by_kind(run: InitialSync) -> dict[str, int]:
    counted = dict(db.session.execute(
        select(SyncReportItem.kind, func.count()).where(SyncReportItem.run_id == run.id)
        .group_by(SyncReportItem.kind)).all())
    # Every known kind, then any other the job wrote (shown too: a report never hides a line).
    return {kind: counted.get(kind, 0) for kind in REPORT_KINDS} | {
        kind: n for kind, n in sorted(counted.items()) if kind not in REPORT_KINDS}


def kind_label(kind: str) -> str:
    return REPORT_LABELS.get(kind) or kind.replace("_", " ").capitalize()


def shown_title(item: SyncReportItem) -> str:
    if item.private:
        return PRIVATE
    return item.title or NO_TITLE


# ---------------------------------------------------------------------------------------------- parity


@dataclass(frozen=True)
class Parity:
    agrees: bool
    summary: str
    differences: list[tuple[str, list[str], int]] = field(default_factory=list)  # (heading, sentences, total)


PARITY_LISTS = (("only_in_outlook", "Only in Outlook"), ("only_in_roomsync", "Only in Roomsync"),
                ("time_differs", "At different times"))


def parity_of(run: InitialSync) -> Parity | None:
    """The parity audit of step 7 as `sync.parity` reads it; if it cannot (a malformed or older result), its
    written-out `agrees` and `summary` alone."""
    data = run.parity
    if not isinstance(data, dict):
        return None
    try:
        from .parity import ParityResult

        result = ParityResult.from_json(data)
    except Exception:  # noqa: BLE001 - an unreadable audit is shown from its raw fields, never a 500
        log.warning("parity of run %s could not be read; showing its summary only", run.id, exc_info=True)
        return Parity(agrees=data.get("agrees") is True, summary=str(data.get("summary") or ""))
    differences = []
    for key, heading in PARITY_LISTS:
        listed = getattr(result, key, None) or []
        if listed:
            # describe() names times and addresses, never a title (see sync.parity).
            differences.append((heading, [d.describe() for d in listed], max(result.totals.get(key, 0), len(listed))))
    return Parity(agrees=bool(result.agrees), summary=result.summary(), differences=differences)


# ---------------------------------------------------------------------------------------------- CSV

CSV_COLUMNS = ("Kind", "Title", "Organizer or holder", "Start", "End", "Before start", "Before end", "Series",
               "Reason")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _local_iso(value: datetime | None, tz) -> str:
    return to_local(value, tz).isoformat() if value is not None else ""


def csv_for(run: InitialSync, venue: Venue) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: CRLF, quotes doubled, quoted when needed
    writer.writerow(CSV_COLUMNS)
    tz = venue.tz
    for item in items(run):
        writer.writerow([_cell(v) for v in (
            kind_label(item.kind), shown_title(item), item.organizer_email or "", _local_iso(item.start_utc, tz),
            _local_iso(item.end_utc, tz), _local_iso(item.before_start_utc, tz),
            _local_iso(item.before_end_utc, tz), "yes" if item.series else "", item.reason or "")])
    return out.getvalue()


# ---------------------------------------------------------------------------------------------- audit log


def audit_for(pair: Pair, limit: int = 200) -> list[AuditEntry]:
    return entries(pair.venue_id, subject=f"pair:{pair.id}", limit=limit)


def actor_names(audit: list[AuditEntry]) -> dict[int, str]:
    ids = {entry.actor_id for entry in audit if entry.actor_id is not None}
    if not ids:
        return {}
    return {user.id: user.display_name for user in db.session.scalars(select(User).where(User.id.in_(ids)))}


# ---------------------------------------------------------------------------------------------- previews


def preview_refusals(venue: Venue, space: Space | None, room) -> dict[str, str]:
    """What `pairs.create_pair` would refuse, with its messages; {} when the pair could be made."""
    from .pairs import pair_refusals

    return pair_refusals(venue, space, room)


def start_preview(venue: Venue, space: Space | None, room, actor: User | None) -> SyncPreview:
    errors = preview_refusals(venue, space, room)
    if errors:
        db.session.rollback()
        raise ValidationError(errors)
    # Imported here: the job's module imports the sync machinery, which a page that only lists pairs
    # does not need.
    from .initial import run_preview

    email = normalise_email(room.email)
    preview = SyncPreview(venue_id=venue.id, space_id=space.id, room_email=email,
                          room_display_name=(room.display_name or email)[:200], state="queued",
                          created_by_id=actor.id if actor is not None else None)
    db.session.add(preview)
    db.session.flush()
    enqueue_after_commit(run_preview, preview.id)
    db.session.commit()
    log.info("preview %s queued: space %s ↔ %s by user %s", preview.id, space.id, email, preview.created_by_id)
    return preview


@dataclass(frozen=True)
class PreviewRow:
    title: str
    who: str
    start: datetime | None  # in the venue's zone
    end: datetime | None
    after_start: datetime | None = None
    after_end: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class PreviewView:
    bookings_deleted: int
    noted: int
    restorable: int
    events: int
    series: int
    adjusted: list[PreviewRow]
    refused: list[PreviewRow]
    removed: list[PreviewRow]
    not_restored: list[PreviewRow]


def _local(value, tz) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return to_local(parse_iso(value), tz)
    except (ValueError, TypeError):
        return None


def _rows(result: dict, key: str, who_key: str, tz) -> list[PreviewRow]:
    listed = result.get(key)
    rows = []
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, dict):
            continue
        # Private titles arrive as "": the preview never names them.
        rows.append(PreviewRow(
            title=str(entry.get("title") or PRIVATE), who=str(entry.get(who_key) or ""),
            start=_local(entry.get("start"), tz), end=_local(entry.get("end"), tz),
            after_start=_local(entry.get("after_start"), tz), after_end=_local(entry.get("after_end"), tz),
            reason=str(entry.get("reason") or "")))
    return rows


def preview_view(preview: SyncPreview, venue: Venue) -> PreviewView | None:
    result = preview.result
    if preview.state != "done" or not isinstance(result, dict):
        return None
    tz = venue.tz
    return PreviewView(
        bookings_deleted=_count(result, "bookings_deleted"), noted=_count(result, "noted"),
        restorable=_count(result, "restorable"), events=_count(result, "events"), series=_count(result, "series"),
        adjusted=_rows(result, "adjusted", "organizer", tz), refused=_rows(result, "refused", "organizer", tz),
        removed=_rows(result, "removed", "organizer", tz),
        not_restored=_rows(result, "not_restored", "holder", tz))
