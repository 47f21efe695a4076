"""Roomsync's background worker: `python worker.py [--burst]` (`make worker`; `make run` starts one).

An RQ worker on the application's queue (config `RQ_QUEUE` on `REDIS_URL`) with RQ's scheduler enabled, so
jobs enqueued with `enqueue_at` / `enqueue_in` and periodic work run too. Run as many as you like, on as many
hosts: RQ's scheduler lock makes one of them the scheduler.

`python worker.py --cron` runs the cron process instead (`webapp.sync.schedule.build_cron`): it queues the
periodic jobs (the stalled-sync sweep, the rooms check, the tablets' auto-release of no-shows:
`webapp.kiosk.release`, the paired rooms' photos: `webapp.integration.jobs.refresh_room_photos`); `make run`
starts one.

Public API: `AppWorker` (an RQ `Worker` that runs every job inside an app context), `build_worker(app)`,
`main(argv)`.

Each job runs in a work horse that RQ forks from the worker. The worker itself never connects to the
database (DESIGN "Examples to follow" #6): a connection inherited through a fork would be shared by two
processes. The horse drops any pooled connection it inherited without closing it (closing would also close
the parent's socket; SQLAlchemy's "Using Connection Pools with Multiprocessing" recipe), opens its own, and
closes them before it exits.
"""

from __future__ import annotations

import argparse
import sys

from flask import Flask
from rq import Worker

from webapp import create_app, jobs
from webapp.extensions import db


class AppWorker(Worker):
    def __init__(self, *args, app: Flask, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app

    def perform_job(self, *args, **kwargs) -> bool:  # (job, queue, execution); runs in the work horse
        with self.app.app_context():
            db.engine.dispose(close=False)
            try:
                return super().perform_job(*args, **kwargs)
            finally:
                db.session.remove()
                # The horse ends with os._exit, which skips finalisers: say goodbye to the database now.
                db.engine.dispose()


# Imported once here rather than by each work horse (a module first imported inside a job is imported again
# by every horse, since the horse's memory dies with it): the live sync's jobs are short and frequent.
PRELOADED = ("webapp.sync.initial", "webapp.sync.inbound", "webapp.sync.outbound", "webapp.sync.reconcile",
             "webapp.sync.subscriptions", "webapp.sync.webhook", "webapp.notify.messages", "webapp.kiosk.release",
             "webapp.integration.operations")


def build_worker(app: Flask) -> AppWorker:
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)
    with app.app_context():
        queue = jobs.queue()
    return AppWorker([queue], connection=queue.connection, app=app)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="run the jobs that are due, then exit")
    parser.add_argument("--cron", action="store_true",
                        help="run the cron process instead: queue the periodic sync jobs (webapp.sync.schedule)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING… (default INFO)")
    args = parser.parse_args(argv)
    if args.cron:
        from webapp.integration.jobs import register_cron as register_room_photos
        from webapp.kiosk.release import register_cron
        from webapp.sync.schedule import build_cron

        app = create_app()
        cron = build_cron(app)
        register_cron(cron, app)  # the tablets' auto-release of no-shows, every minute
        register_room_photos(cron, app)  # the paired rooms' photos from Microsoft 365, hourly
        cron.start()
        return 0
    worker = build_worker(create_app())
    worker.work(burst=args.burst, with_scheduler=True, logging_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
