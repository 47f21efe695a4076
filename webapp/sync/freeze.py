"""The booking freeze of a space during its initial sync: while a space's pair is queued or running (the
initial sync clears the space and imports the room's calendar), the space takes no new bookings and no
changes, from any side; Roomsync users are told why and for how long.

Public API:
- `SYNCING_STATES`: the pair states that freeze a space (`models.ACTIVE_STATES`: "queued", "running").
- `syncing_space_ids(space_ids)` → set of those of `space_ids` that are syncing (one query on
  `sync_pairs.space_id`, which is unique and so indexed). The booking operations call it with the conflict
  closure they have locked.
- `syncing_spaces_of(venue)` → set of the venue's syncing space ids (one query), for pages.
- `CLOSURE_PAIRS`: the session.info key where `refuse_if_syncing` leaves the pairs it read (the outbound sync
  reuses them: one query on pairs per booking write).
- `refuse_if_syncing(closure, booked_ids, *, changing=False)`: raises `booking.errors.SpaceSyncing` when a
  space of `closure` is syncing; `booked_ids` are the spaces the write books or changes (for the message).
  One query when nothing syncs; a second one, for names, only when refusing.
- `freeze_message(booked_names, syncing_names, *, changing=False)` → the message people read (pure).

Layering: `webapp.sync` builds on `webapp.booking` (its models import `booking.models`), so
`booking.operations` imports this module inside the function that needs it, never at import time: the
booking package still imports without the sync package, and no import cycle can form. A registry would
decouple more, but it would hide from a reader of `create_booking` which check runs; one lazy import does not.

Why the check sits after `booking.locking.lock_spaces`: the pair is created by an admin in another
transaction. Reading its state once the space locks are held (PostgreSQL: a fresh READ COMMITTED snapshot
per statement; SQLite: inside `BEGIN IMMEDIATE`) sees every pair committed before the lock was granted.
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from ..booking.errors import SpaceSyncing
from ..booking.models import Space, Venue
from ..extensions import db
from .models import ACTIVE_STATES, Pair

SYNCING_STATES = tuple(sorted(ACTIVE_STATES))
PROVIDER = "Microsoft 365"


def syncing_space_ids(space_ids: Iterable[int]) -> set[int]:
    ids = list(space_ids)
    if not ids:
        return set()
    return set(db.session.scalars(
        select(Pair.space_id).where(Pair.space_id.in_(ids), Pair.state.in_(SYNCING_STATES))))


def syncing_spaces_of(venue: Venue) -> set[int]:
    return set(db.session.scalars(
        select(Pair.space_id).where(Pair.venue_id == venue.id, Pair.state.in_(SYNCING_STATES))))


# session.info: (space ids checked, {space_id: Pair}) as read by the last freeze check of this transaction
CLOSURE_PAIRS = "roomsync_closure_pairs"


def refuse_if_syncing(closure: Iterable[int], booked_ids: Iterable[int], *, changing: bool = False) -> None:
    ids = list(closure)
    pairs = list(db.session.scalars(select(Pair).where(Pair.space_id.in_(ids)))) if ids else []
    # The outbound sync needs the same rows once the booking is written (one query on pairs per write).
    db.session().info[CLOSURE_PAIRS] = (frozenset(ids), {p.space_id: p for p in pairs})
    syncing = {p.space_id for p in pairs if p.state in SYNCING_STATES}
    if not syncing:
        return
    booked = list(dict.fromkeys(booked_ids))
    names = dict(db.session.execute(select(Space.id, Space.name).where(Space.id.in_(syncing | set(booked)))).all())
    syncing_names = sorted((names[i] for i in syncing if i in names), key=str.casefold)
    message = freeze_message([names[i] for i in booked if i in names], syncing_names, changing=changing)
    raise SpaceSyncing(sorted(syncing), message)


def _join(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def freeze_message(booked_names: list[str], syncing_names: list[str], *, changing: bool = False) -> str:
    """`booked_names`: the spaces the person books or changes; `syncing_names`: the syncing spaces that
    block them (themselves, or spaces that share with them such as "Board room A+B" for "Board room A")."""
    syncing = _join(syncing_names) or "This space"
    plural = len(syncing_names) > 1
    direct = set(syncing_names) & set(booked_names)
    is_are = "are" if plural else "is"
    when = "as soon as the sync finishes — usually within minutes."
    if direct or not booked_names:
        it = "them" if plural else "it"
        its = "their" if plural else "its"
        what = f"{its.capitalize()} bookings can be changed again" if changing else f"Bookings for {it} open again"
        return f"{syncing} {is_are} being synced with {PROVIDER} (initial sync in progress). {what} {when}"
    booked = _join(booked_names)
    what = f"Bookings of {booked} can be changed again" if changing else f"Bookings for {booked} open again"
    return (f"{syncing}, which {'share' if plural else 'shares'} space with {booked}, {is_are} being synced with "
            f"{PROVIDER} (initial sync in progress). {what} {when}")


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_closure_pairs(session) -> None:
    session.info.pop(CLOSURE_PAIRS, None)
