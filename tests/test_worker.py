"""worker.py: a real worker process on a real Redis runs queued and scheduled jobs in an app context, each job
with its own database connection, and records failures.

Redis: the root conftest's `redis_url` (`REDIS_URL` when set, CI; otherwise an embedded valkey for the session).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask import current_app, has_app_context
from processes import job_queue  # noqa: F401 — a queue of its own, so a shared Redis (CI) never mixes jobs
from rq import Queue
from rq.job import JobStatus

from webapp.auth.models import User
from webapp.extensions import db

ROOT = Path(__file__).resolve().parents[1]


def rename_user_job(user_id: int, first_name: str) -> dict:
    """The job under test: needs an app context and a database connection of its own."""
    user = db.session.get(User, user_id)
    user.first_name = first_name
    db.session.commit()
    return {"app_context": has_app_context(), "app": current_app.import_name, "pid": os.getpid()}


def failing_job() -> None:
    raise RuntimeError("the provider said no")


def run_worker_burst(app, queue: Queue, redis_url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ROOMSYNC_SYNC_JOBS"}
    env.update(
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        ROOMSYNC_INSTANCE=app.instance_path,
        SECRET_KEY="test-secret",
        REDIS_URL=redis_url,
        ROOMSYNC_RQ_QUEUE=queue.name,
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")]),
    )
    return subprocess.run(
        [sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_worker_runs_queued_and_scheduled_jobs_in_an_app_context_with_the_database(app, make_user, job_queue, redis_url):
    ada, bob = make_user(first_name="Ada"), make_user(first_name="Bob")
    now = job_queue.enqueue(rename_user_job, ada.id, "Ada renamed")
    due = job_queue.enqueue_at(datetime.now(timezone.utc) - timedelta(seconds=1), rename_user_job, bob.id, "Bob renamed")
    assert due.get_status() == JobStatus.SCHEDULED
    db.session.rollback()  # end this test's read transaction; the worker writes these rows

    result = run_worker_burst(app, job_queue, redis_url)

    assert result.returncode == 0, result.stderr
    assert now.get_status() == JobStatus.FINISHED, result.stderr
    assert due.get_status() == JobStatus.FINISHED, result.stderr  # the scheduler moved it onto the queue
    first, second = now.return_value(refresh=True), due.return_value(refresh=True)
    assert first["app_context"] and first["app"] == "webapp"
    assert len({first["pid"], second["pid"], os.getpid()}) == 3  # one forked work horse per job
    db.session.expire_all()
    assert [db.session.get(User, ada.id).first_name, db.session.get(User, bob.id).first_name] == [
        "Ada renamed",
        "Bob renamed",
    ]


def test_a_failing_job_is_recorded_as_failed_and_the_worker_carries_on(app, make_user, job_queue, redis_url):
    ada = make_user(first_name="Ada")
    broken = job_queue.enqueue(failing_job)
    fine = job_queue.enqueue(rename_user_job, ada.id, "Still renamed")
    db.session.rollback()

    result = run_worker_burst(app, job_queue, redis_url)

    assert result.returncode == 0, result.stderr
    assert broken.get_status() == JobStatus.FAILED
    assert "the provider said no" in broken.latest_result().exc_string
    assert fine.get_status() == JobStatus.FINISHED, result.stderr
