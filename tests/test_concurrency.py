"""Two requests for one slot at the same moment give exactly one booking — on SQLite and PostgreSQL,
from threads sharing a process and from separate processes."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from webapp.booking.errors import ConflictError
from webapp.booking.models import Booking, Occurrence
from webapp.booking.operations import BookingInput, create_booking
from webapp.extensions import db

from concurrency_worker import attempt_booking

CONTENDERS = 50
OPEN_ALL_DAY = {d: ["00:00", "24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def contested(make_venue, make_space, make_user):
    """A venue open around the clock and a slot two days ahead (real time: other processes are not frozen)."""
    venue = make_venue(opening_hours=OPEN_ALL_DAY)
    a = make_space(venue, "Board room A")
    b = make_space(venue, "Board room B")
    ab = make_space(venue, "Board room A+B", depends_on=[a, b])
    users = [make_user() for _ in range(5)]
    start = (datetime.now(timezone.utc) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    return venue, (a, b, ab), users, start


def _count_bookings() -> int:
    db.session.rollback()  # end this thread's snapshot so the other writers' commits are visible
    return db.session.scalar(select(func.count(Booking.id)))


@pytest.mark.slow
def test_threads_racing_for_one_slot_and_its_dependants_give_one_winner(app, contested):
    venue, (a, b, ab), users, start = contested
    # Plain ids: the fixture's objects belong to this thread's session, which threads must not share.
    venue_id, a_id, ab_id, user_ids = venue.id, a.id, ab.id, [u.id for u in users]
    Venue, User = type(venue), type(users[0])
    barrier = threading.Barrier(CONTENDERS)  # all threads start the write at the same moment
    outcomes: list[str] = []
    lock = threading.Lock()

    def contend(index: int) -> None:
        # Half ask for A, half for A+B: either one blocks the other through the dependency.
        space_id = a_id if index % 2 else ab_id
        with app.app_context():
            try:
                v = db.session.get(Venue, venue_id)
                user = db.session.get(User, user_ids[index % len(user_ids)])
                data = BookingInput(space_ids=[space_id], start=start, end=start + timedelta(minutes=30), title=f"t{index}")
                v.spaces, v.custom_fields  # loaded before the race
                db.session.commit()  # hand the connection back: the pool is smaller than the crowd
                barrier.wait(timeout=60)
                create_booking(v, data, actor=user)
                outcome = "won"
            except ConflictError:
                outcome = "conflict"
            except Exception as exc:  # noqa: BLE001 — surfaced by the assertion below
                outcome = f"error: {exc!r}"
            finally:
                db.session.remove()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(CONTENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(set(outcomes)) == ["conflict", "won"], outcomes
    assert outcomes.count("won") == 1
    assert _count_bookings() == 1
    # B stays bookable unless A+B won.
    occupied = db.session.scalars(select(Occurrence.space_id)).all()
    assert len(occupied) == 1 and occupied[0] in (a_id, ab_id)


@pytest.mark.slow
def test_processes_racing_for_one_slot_give_one_winner(app, contested):
    venue, (a, _b, _ab), users, start = contested
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    processes = [
        ctx.Process(
            target=attempt_booking,
            args=(
                app.config["SQLALCHEMY_DATABASE_URI"], app.instance_path, venue.id, a.id, users[i % len(users)].id,
                start.isoformat(), (start + timedelta(hours=1)).isoformat(), ready, go, results,
            ),
        )
        for i in range(CONTENDERS)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=120)
        go.set()
        outcomes = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
    assert outcomes.count("won") == 1, outcomes
    assert outcomes.count("conflict") == CONTENDERS - 1, outcomes
    assert _count_bookings() == 1
