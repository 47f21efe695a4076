"""The sync pairs page (blueprint "sync", mounted at /admin/sync; admins only).

Public API: `bp`. Endpoints:
- `GET /admin/sync/` (`sync.pairs`): the "Sync new resource" form (unpaired active spaces; the provider's
  unpaired rooms, read through `sync.rooms` — cached a minute) and the pair list.
- `POST /admin/sync/` (`sync.create`): pair → redirect to the page with a flash; a refused pair re-renders
  the page with the messages (422).
- `GET /admin/sync/pairs` (`sync.pair_list`): the pair list fragment `sync/_pairs.html`; it polls itself every
  2 s while some pair is queued or running, and stops by itself otherwise.
- `GET /admin/sync/rooms?q=` (`sync.room_options`): the room `<option>`s matching the filter
  (`sync/_room_options.html`), for the filter box.
- `POST /admin/sync/<pair_id>/unsync` (`sync.unsync`): remove the pair → redirect with a flash (refused, with
  an error flash, while its initial sync is queued or running).
- `POST /admin/sync/<pair_id>/retry` (`sync.retry`): start a failed initial sync again → the pair's page.
- `GET /admin/sync/<pair_id>` (`sync.pair`): the pair's page: its initial sync (`sync/_run.html`: progress while
  it runs, then the report by kind, the parity audit and the CSV link) and the pair's audit log.
- `GET /admin/sync/<pair_id>/run` (`sync.pair_run`): that fragment alone; it polls itself every 2 s while the
  pair is queued or running and comes back without polling (and with the report) once it is not.
- `GET /admin/sync/<pair_id>/report.csv` (`sync.report_csv`): the report as a CSV attachment.
- `POST /admin/sync/preview` (`sync.preview`): the "Sync new resource" form's "Preview first": queues a dry
  run of the initial sync → redirect to its page; refused like `sync.create` (422, same messages).
- `GET /admin/sync/preview/<preview_id>` (`sync.preview_page`) and `…/result` (`sync.preview_result`, the
  fragment `sync/_preview.html`, polling itself while the dry run is queued or running): what the initial
  sync would do, and a "Pair now" button posting to `sync.create`.
Pair and preview ids are bounded by `MAX_ID`; another venue's or an unknown id is a 404.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, flash, render_template, request, url_for
from flask_login import current_user, login_required

from .. import htmx
from ..admin.forms import show_errors
from ..api.schemas import MAX_ID
from ..booking.errors import ValidationError
from ..booking.models import Space
from ..extensions import db
from ..venue import current_venue
from . import pairs, report, rooms
from .forms import PairForm, PairNowForm, RetryForm, UnsyncForm
from .models import ACTIVE_STATES, Pair, SyncPreview

log = logging.getLogger(__name__)

bp = Blueprint("sync", __name__)


@bp.before_request
@login_required
def require_admin():
    if not current_user.is_admin:
        abort(403)


def _rooms_or_error():
    """(rooms, None) or ([], message): the provider may be unreachable; the page still renders."""
    try:
        return rooms.provider_rooms(), None
    except Exception as error:  # noqa: BLE001 - any provider failure becomes a message, never a 500
        log.warning("listing the provider's rooms failed: %s", error)
        return [], "Microsoft 365's rooms could not be listed just now. Try again in a minute."


def _room_options(venue, query: str):
    all_rooms, rooms_error = _rooms_or_error()
    shown, matched = rooms.filter_rooms(all_rooms, query, exclude=pairs.paired_room_emails(venue))
    return shown, matched, rooms_error


def _page(form: PairForm, status: int = 200):
    venue = current_venue()
    ready = pairs.integration_ready(venue)
    spaces = pairs.unpaired_spaces(venue)
    form.space_id.choices = [("", "Choose a space…")] + [(str(s.id), f"{s.name} ({s.kind})") for s in spaces]
    shown, matched, rooms_error = _room_options(venue, "") if ready else ([], 0, None)
    form.room_email.choices = [("", "Choose a room…")] + [(r.email, f"{r.display_name} — {r.email}") for r in shown]
    return render_template(
        "sync/pairs.html", form=form, ready=ready, rooms_error=rooms_error, room_count=matched,
        shown_count=len(shown), **_list_context(venue)), status


def _list_context(venue) -> dict:
    listed = pairs.pairs_of(venue)
    runs = report.runs_by_pair(venue)
    return dict(pair_list=listed, polling=pairs.any_active(listed), unsync_form=UnsyncForm(), retry_form=RetryForm(),
                progress_by_pair={pair_id: report.progress(run) for pair_id, run in runs.items()},
                errors_by_pair={pair_id: run.error for pair_id, run in runs.items() if run.error})


@bp.get("/", endpoint="pairs")
def page():
    return _page(PairForm(formdata=None))


def _with_choice(operation, on_success):
    """The pairing form's flow, shared by pairing and its dry run: parse the space and room, run
    `operation(venue, space, room, actor)`, and re-render the page with the messages (422) when refused."""
    form = PairForm()
    if not form.validate_on_submit():
        return _page(form, 422)
    space, room, failed = _chosen(form)
    if failed:
        return _page(form, 422)
    try:
        made = operation(current_venue(), space, room, current_user)
    except ValidationError as error:
        _show_refusal(form, error)
        return _page(form, 422)
    return on_success(made)


@bp.post("/")
def create():
    def paired(pair):
        flash(f"{pair.space.name} is now synced with {pair.room_display_name}. The initial sync is queued.",
              "success")
        return htmx.redirect(url_for("sync.pairs"))

    return _with_choice(pairs.create_pair, paired)


def _chosen(form: PairForm):
    """(space or None, room or None, failed): the form's choices; `failed` when the provider's rooms could not
    be read (the form then carries the message)."""
    space_id = form.space_id.data or ""
    space = db.session.get(Space, int(space_id)) if space_id.isdigit() and int(space_id) <= MAX_ID else None
    room = None
    if form.room_email.data:
        try:
            room = rooms.find_room(form.room_email.data)
        except Exception:  # noqa: BLE001
            form.form_errors.append("Microsoft 365's rooms could not be listed just now. Try again in a minute.")
            return space, None, True
    return space, room, False


def _show_refusal(form: PairForm, error: ValidationError) -> None:
    show_errors(form, {("space_id" if k == "space" else "room_email" if k == "room" else k): v
                       for k, v in error.fields.items()})


@bp.get("/pairs")
def pair_list():
    return render_template("sync/_pairs.html", **_list_context(current_venue()))


@bp.get("/rooms")
def room_options():
    venue = current_venue()
    shown, matched, rooms_error = _room_options(venue, request.args.get("q", "")[:200])
    return render_template("sync/_room_options.html", rooms=shown, room_count=matched, rooms_error=rooms_error)


def _pair_or_404(pair_id: int) -> Pair:
    pair = db.session.get(Pair, pair_id) if pair_id <= MAX_ID else None
    if pair is None or pair.venue_id != current_venue().id:
        abort(404)
    return pair


@bp.post("/<int:pair_id>/unsync")
def unsync(pair_id: int):
    pair = _pair_or_404(pair_id)
    if not UnsyncForm().validate_on_submit():
        abort(400)
    name, room = pair.space.name, pair.room_display_name
    try:
        pairs.unsync(pair, current_user)
    except ValidationError as error:
        flash(" ".join(error.fields.values()), "error")
        return htmx.redirect(url_for("sync.pairs"))
    flash(f"{name} is no longer synced with {room}.", "success")
    return htmx.redirect(url_for("sync.pairs"))


@bp.post("/<int:pair_id>/retry")
def retry(pair_id: int):
    pair = _pair_or_404(pair_id)
    if not RetryForm().validate_on_submit():
        abort(400)
    try:
        pairs.retry(pair, current_user)
    except ValidationError as error:
        flash(" ".join(error.fields.values()), "error")
    else:
        flash(f"The initial sync of {pair.space.name} is queued again; it continues where it stopped.", "success")
    return htmx.redirect(url_for("sync.pair", pair_id=pair_id))


# ---------------------------------------------------------------------------------------------- a pair's page


REPORT_ROWS_SHOWN = 200  # per kind; the CSV has every row
AUDIT_ROWS_WHILE_RUNNING = 20
AUDIT_ROWS_SHOWN = 200


def _run_context(pair: Pair) -> dict:
    venue = current_venue()
    run = report.run_for(pair)
    active = pair.state in ACTIVE_STATES
    context = dict(pair=pair, run=run, active=active, tz=venue.tz, progress=report.progress(run) if run else None,
                   sections=[], parity=None, kind_label=report.kind_label, shown_title=report.shown_title,
                   retry_form=RetryForm())
    if run is not None and not active:
        counts = report.counts_by_kind(run)
        context["sections"] = [(kind, count, report.items(run, kind, limit=REPORT_ROWS_SHOWN))
                               for kind, count in counts.items() if count]
        context["parity"] = report.parity_of(run)
    limit = AUDIT_ROWS_WHILE_RUNNING if active else AUDIT_ROWS_SHOWN
    audit = report.audit_for(pair, limit=limit)
    # Only a running sync's log is cut short on purpose (it is re-read every 2 s); say so only when it was.
    context.update(audit=audit, actors=report.actor_names(audit), audit_truncated=active and len(audit) >= limit)
    return context


@bp.get("/<int:pair_id>", endpoint="pair")
def pair_page(pair_id: int):
    pair = _pair_or_404(pair_id)
    return render_template("sync/pair.html", **_run_context(pair))


@bp.get("/<int:pair_id>/run")
def pair_run(pair_id: int):
    return render_template("sync/_run.html", **_run_context(_pair_or_404(pair_id)))


@bp.get("/<int:pair_id>/report.csv")
def report_csv(pair_id: int):
    pair = _pair_or_404(pair_id)
    run = report.run_for(pair)
    if run is None:
        abort(404)
    name = "".join(c if c.isascii() and c.isalnum() else "-" for c in pair.space.name).strip("-").lower()
    filename = f"initial-sync-{name or 'space'}-{pair.id}.csv"
    return Response(report.csv_for(run, current_venue()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# ---------------------------------------------------------------------------------------------- previews


@bp.post("/preview")
def preview():
    return _with_choice(report.start_preview,
                        lambda started: htmx.redirect(url_for("sync.preview_page", preview_id=started.id)))


PREVIEW_ACTIVE_STATES = frozenset({"queued", "running"})


def _preview_or_404(preview_id: int) -> SyncPreview:
    found = db.session.get(SyncPreview, preview_id) if preview_id <= MAX_ID else None
    if found is None or found.venue_id != current_venue().id:
        abort(404)
    return found


def _preview_context(found: SyncPreview) -> dict:
    pair_now = PairNowForm(formdata=None, space_id=str(found.space_id), room_email=found.room_email)
    return dict(preview=found, view=report.preview_view(found, current_venue()), pair_now=pair_now,
                active=found.state in PREVIEW_ACTIVE_STATES)


@bp.get("/preview/<int:preview_id>")
def preview_page(preview_id: int):
    return render_template("sync/preview.html", **_preview_context(_preview_or_404(preview_id)))


@bp.get("/preview/<int:preview_id>/result")
def preview_result(preview_id: int):
    return render_template("sync/_preview.html", **_preview_context(_preview_or_404(preview_id)))


from . import health_views  # noqa: E402,F401  (routes on bp)
