"""jobs.enqueue_after_commit: a job runs only once the transaction commits, never after a rollback, and (with
SYNC_JOBS, as in tests) in a database session of its own that sees the committed rows; a failure is logged."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from webapp.auth.models import User
from webapp.extensions import db
from webapp.jobs import enqueue_after_commit

seen: list[tuple[str, str | None]] = []


def record_user(email: str) -> None:
    user = db.session.scalar(select(User).where(User.email == email))
    seen.append((email, user.first_name if user else None))


def failing_job() -> None:
    raise RuntimeError("job failed")


@pytest.fixture(autouse=True)
def _forget():
    seen.clear()


def test_a_job_runs_after_commit_and_sees_the_committed_row(make_user):
    db.session.add(User(email="new@roomsync.test", first_name="Nia"))
    enqueue_after_commit(record_user, "new@roomsync.test")
    assert seen == []  # not before the commit
    db.session.commit()
    assert seen == [("new@roomsync.test", "Nia")]


def test_a_rolled_back_transaction_runs_no_job():
    db.session.add(User(email="gone@roomsync.test", first_name="Gus"))
    enqueue_after_commit(record_user, "gone@roomsync.test")
    db.session.rollback()
    db.session.commit()
    assert seen == []


def test_a_failing_job_is_logged_and_the_committed_data_stays(caplog):
    db.session.add(User(email="kept@roomsync.test", first_name="Kim"))
    enqueue_after_commit(failing_job)
    db.session.commit()
    assert "job failing_job failed" in caplog.text and "RuntimeError: job failed" in caplog.text
    assert db.session.scalar(select(User.first_name).where(User.email == "kept@roomsync.test")) == "Kim"
