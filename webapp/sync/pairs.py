"""Sync pairs: the only code that creates, removes and breaks pairs of a Roomsync space and a provider room.

Public API:
- `RoomChoice(id, email, display_name)`: a provider room as the pairing form offers it.
- `integration_ready(venue)` → bool: the integration is saved, enabled and validated for the venue.
- `pair_refusals(venue, space, room)` → {key: message}, what pairing would be refused for ({} when it could).
- `create_pair(venue, space, room, actor)` → Pair, state "queued". Refused with `ValidationError` (keys:
  `form`, `space`, `room`) while the integration is not ready, for a space of another venue or an inactive
  one, and when the space or the room is already paired (one pair per space and one per room; the unique
  constraints settle a race). Desks are accepted as well as rooms: Exchange has resource mailboxes for
  desks and workspaces too, and what matters to the sync is the mailbox's calendar. Commits, then (after the
  commit) queues the job `start_initial_sync(pair.id)` (see `sync.initial`).
- `unsync(pair, actor)`: removes the pair; commits, then runs the hook `remove_subscription(room_email)`.
  Refused (`ValidationError`, key `form`) while the pair's initial sync is queued or running: the bookings
  it noted for restoring would be lost with it (the reference product cannot cancel an initial sync either).
- `retry(pair, actor)`: a failed initial sync starts again where it stopped.
- `mark_broken(pair, why)`: the pair shows "broken" with `why`; logs, commits, then runs the hook
  `notify_admins_pair_broken(pair.id)`. A pair already broken is left as it is (the admins were told).
- `check_rooms(venue_id)`: job. Lists the provider's rooms and marks broken the pairs whose room is gone (a
  room missing from the list is confirmed with a directory lookup before its pair breaks). Never raises:
  a provider failure leaves every state unchanged and is logged.
- `pairs_of(venue)` → [Pair] with their spaces (two queries whatever the number of pairs),
  `unpaired_spaces(venue)` → active spaces without a pair, `paired_room_emails(venue)` → set,
  `pair_by_space(venue)` → {space_id: Pair}, `any_active(pairs)`.
- Jobs, each queued after the commit through `jobs.enqueue_after_commit`: `start_initial_sync(pair_id)`,
  `remove_subscription(room_email)` (a hook until live sync has subscriptions), `notify_admins_pair_broken(pair_id)`.

Operations never touch `request` or `flash`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from ..auth.models import User, normalise_email
from ..booking.errors import ValidationError
from ..booking.models import Space, Venue
from ..extensions import db
from ..jobs import enqueue_after_commit
from .models import ACTIVE_STATES, Pair

log = logging.getLogger(__name__)

# A large room takes minutes (RQ's default job timeout is 3 minutes); a run killed by a timeout would resume,
# but only once its lease lapses.
INITIAL_SYNC_TIMEOUT = 3600


@dataclass(frozen=True)
class RoomChoice:
    id: str
    email: str
    display_name: str


# ---------------------------------------------------------------------------------------------- hooks


def start_initial_sync(pair_id: int) -> None:
    """Job: the initial sync of a new pair (`initial.run_initial_sync`), queued after the commit that made it."""
    from .initial import run_initial_sync

    run_initial_sync(pair_id)


def remove_subscription(graph_id: str) -> None:
    """Job: delete the Graph subscription of an unsynced pair (`subscriptions.delete_subscription`)."""
    from .subscriptions import delete_subscription

    delete_subscription(graph_id)


def notify_admins_pair_broken(pair_id: int) -> None:
    """Job: email the venue's active admins that the pair broke (`notify.messages.pair_broken`). Nothing when
    the pair is gone or no longer broken by the time it runs. The dedup key names this breakage (the pair
    and the moment it broke, which `mark_broken` stamps once), so a job that runs again emails nobody
    twice, while a later breakage of the same pair is news again."""
    from ..notify import messages

    pair = db.session.get(Pair, pair_id)
    if pair is None or pair.state != "broken":
        return
    messages.pair_broken(pair, dedup_key=f"pair-broken:{pair.id}:{pair.updated_at.isoformat()}")
    db.session.commit()


# ---------------------------------------------------------------------------------------------- queries


def integration_ready(venue: Venue) -> bool:
    from ..integration.operations import settings_for

    settings = settings_for(venue)
    return bool(settings and settings.enabled and settings.last_validated_at)


def pairs_of(venue: Venue) -> list[Pair]:
    return list(db.session.scalars(
        select(Pair).where(Pair.venue_id == venue.id).options(joinedload(Pair.space)).order_by(Pair.id)))


def pair_by_space(venue: Venue) -> dict[int, Pair]:
    return {pair.space_id: pair for pair in db.session.scalars(select(Pair).where(Pair.venue_id == venue.id))}


def unpaired_spaces(venue: Venue) -> list[Space]:
    paired = select(Pair.space_id).where(Pair.venue_id == venue.id)
    return list(db.session.scalars(
        select(Space).where(Space.venue_id == venue.id, Space.active.is_(True), Space.id.not_in(paired))
        .order_by(Space.position, Space.name)))


def paired_room_emails(venue: Venue) -> set[str]:
    return set(db.session.scalars(select(Pair.room_email).where(Pair.venue_id == venue.id)))


def any_active(pairs) -> bool:
    return any(pair.state in ACTIVE_STATES for pair in pairs)


# ---------------------------------------------------------------------------------------------- operations


def _refuse(errors: dict[str, str]) -> None:
    db.session.rollback()
    raise ValidationError(errors)


def pair_refusals(venue: Venue, space: Space | None, room: RoomChoice | None) -> dict[str, str]:
    """What pairing `space` with `room` would be refused for (keys `form`, `space`, `room`); {} when it
    could be made. Reads only: `create_pair` and the dry run ask the same questions."""
    if not integration_ready(venue):
        return {"form": "Connect Microsoft 365 first: save the integration settings (every check must pass), "
                        "then pair spaces with rooms."}
    errors = {}
    if space is None or space.venue_id != venue.id:
        errors["space"] = "Choose a space of this venue."
    elif not space.active:
        errors["space"] = f"{space.name} is inactive: activate it before syncing it."
    email = normalise_email(room.email) if room is not None else ""
    if room is None or not email:
        errors["room"] = "Choose a Microsoft 365 room."
    if errors:
        return errors
    existing = db.session.scalar(select(Pair).where(Pair.space_id == space.id))
    if existing is not None:
        errors["space"] = f"{space.name} is already synced with {existing.room_display_name or existing.room_email}."
    taken = db.session.scalar(select(Pair).options(joinedload(Pair.space)).where(Pair.room_email == email))
    if taken is not None:
        errors["room"] = f"{room.display_name or email} is already synced with {taken.space.name}."
    return errors


def create_pair(venue: Venue, space: Space | None, room: RoomChoice | None, actor: User | None) -> Pair:
    errors = pair_refusals(venue, space, room)
    if errors:
        _refuse(errors)
    email = normalise_email(room.email)
    # The freeze starts with this commit: take the booking locks of the space's closure first, so a booking
    # being written now either commits before the pair (and is noted) or sees the pair and is refused.
    from ..booking.locking import lock_spaces
    from ..booking.operations import space_closure

    lock_spaces(space_closure([space.id]))
    pair = Pair(venue_id=venue.id, space_id=space.id, room_email=email, room_id=room.id,
                room_display_name=(room.display_name or email)[:200], state="queued",
                state_detail="Waiting for a worker.", created_by_id=actor.id if actor is not None else None)
    db.session.add(pair)
    try:
        db.session.flush()
    except IntegrityError:
        # Another admin paired the same space or room between our checks and our insert.
        _refuse({"form": "That space or room was just synced by someone else. Reload the page and choose again."})
    from ..audit import record

    record("pair.created", subject=f"pair:{pair.id}", venue_id=venue.id, actor_id=pair.created_by_id,
           detail=f"{space.name} paired with {pair.room_display_name}; initial sync queued.")
    enqueue_after_commit(start_initial_sync, pair.id, job_timeout=INITIAL_SYNC_TIMEOUT)
    db.session.commit()
    log.info("pair %s created: space %s ↔ %s by user %s", pair.id, space.id, email, pair.created_by_id)
    return pair


def unsync(pair: Pair, actor: User | None) -> None:
    if pair.state in ACTIVE_STATES:
        _refuse({"form": f"{pair.space.name}'s initial sync is still running. Unsync it once the sync has finished: "
                         "stopping it halfway would lose the bookings it is about to restore."})
    room_email, pair_id = pair.room_email, pair.id
    from ..audit import record

    record("pair.removed", subject=f"pair:{pair_id}", venue_id=pair.venue_id,
           actor_id=actor.id if actor is not None else None,
           detail=f"{pair.space.name} is no longer synced with {pair.room_display_name or room_email}.")
    from .models import Subscription

    graph_id = db.session.scalar(select(Subscription.graph_id).where(Subscription.pair_id == pair.id))
    db.session.delete(pair)
    if graph_id:
        enqueue_after_commit(remove_subscription, graph_id)
    db.session.commit()
    log.info("pair %s (%s) unsynced by user %s", pair_id, room_email, actor.id if actor is not None else None)


def retry(pair: Pair, actor: User | None) -> None:
    from .models import InitialSync

    if pair.state != "failed":
        _refuse({"form": "Only a failed initial sync can be retried."})
    run = db.session.scalar(select(InitialSync).where(InitialSync.pair_id == pair.id))
    if run is not None:
        run.attempts, run.lease_until, run.error = 0, None, ""
    pair.state, pair.state_detail = "queued", "Retrying: waiting for a worker."
    from ..audit import record

    record("pair.retried", subject=f"pair:{pair.id}", venue_id=pair.venue_id,
           actor_id=actor.id if actor is not None else None, detail="Initial sync retried after a failure.")
    enqueue_after_commit(start_initial_sync, pair.id, job_timeout=INITIAL_SYNC_TIMEOUT)
    db.session.commit()


def mark_broken(pair: Pair, why: str) -> None:
    if pair.state == "broken":
        return
    pair.state = "broken"
    pair.state_detail = why
    enqueue_after_commit(notify_admins_pair_broken, pair.id)
    db.session.commit()
    log.warning("pair %s (%s) marked broken: %s", pair.id, pair.room_email, why)


# ---------------------------------------------------------------------------------------------- jobs


def check_rooms(venue_id: int) -> None:
    """Job: break the pairs whose provider room was deleted. Never raises (see the module docstring)."""
    from ..graph.errors import NotFound
    from ..integration import provider

    try:
        venue = db.session.get(Venue, venue_id)
        if venue is None or not integration_ready(venue):
            log.info("check_rooms(%s): no venue or integration off; nothing to check", venue_id)
            return
        pairs = [pair for pair in pairs_of(venue) if pair.state != "broken"]
        if not pairs:
            return
        try:
            present = {normalise_email(room.email) for room in provider.room_directory()}
        except Exception:  # noqa: BLE001 - a provider failure must leave every pair as it is
            log.warning("check_rooms(%s): could not list the provider's rooms; states unchanged", venue_id,
                        exc_info=True)
            return
        for pair in pairs:
            if pair.room_email in present:
                continue
            # A room missing from Places is only "deleted" once the directory no longer knows its mailbox:
            # a room merely taken off a room list still has a calendar to sync.
            try:
                provider.get_user(pair.room_email, probe_mailbox=False)
            except NotFound:
                mark_broken(pair, f"The room {pair.room_display_name or pair.room_email} ({pair.room_email}) "
                                  "no longer exists in Microsoft 365. Unsync it, then pair the space with "
                                  "another room if needed.")
                continue
            except Exception:  # noqa: BLE001
                log.warning("check_rooms(%s): could not confirm %s; state unchanged", venue_id, pair.room_email,
                            exc_info=True)
                continue
            log.warning("check_rooms(%s): %s is not listed among the rooms but its mailbox exists; state "
                        "unchanged", venue_id, pair.room_email)
    except Exception:  # noqa: BLE001 - a periodic check never takes a worker down
        db.session.rollback()
        log.exception("check_rooms(%s) failed; states unchanged", venue_id)
