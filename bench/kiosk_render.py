"""CPU per full render of the tablet status fragment, in one process: `python bench/kiosk_render.py [options]`.

What it measures: `GET /kiosk/panel/status` without If-None-Match (the 200 path: the fragment rendered), through
Flask's test client, rotating through `--tablets` enrolled panels (one per room) so each render is another
room's, as when a change reaches many tablets at once. It reports, per render: the CPU time of this process
(`time.process_time`: on SQLite the database works in this process too, so this is nearly all the work, and
other load on a shared machine moves it far less than wall time), the wall time, and the SQL statements run.
`bench/kiosk_bench.py` measures the same path under gunicorn with wrk; this one is for profiling it:
`--profile FILE` writes a cProfile of the timed renders (`python -m pstats FILE`) and prints the top functions,
and `py-spy record -o out.svg -- .venv/bin/python bench/kiosk_render.py --renders 5000` works on it as it is.

Data: the tablet benchmark's (`kiosk_bench.seed_and_enrol`: `bench/seed.py`'s density, one space in ten a
combined room that depends on the two before it, bookings over 4 days around today) in a fresh SQLite file.
Exit status 0; 2 when it could not run.
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.kiosk_bench import SECRET_KEY, STATUS_PATH, seed_and_enrol  # noqa: E402
from bench.report import ms, percentile, profile_report  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tablets", type=int, default=1000, help="enrolled panels, one per room (default 1,000)")
    parser.add_argument("--renders", type=int, default=2000, help="timed renders (default 2,000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed renders first (default 200)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the timed renders to this file")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data set (default 1)")
    args = parser.parse_args(argv)
    if min(args.tablets, args.renders) < 1 or args.warmup < 0:
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from sqlalchemy import event

    from webapp import create_app
    from webapp.extensions import db

    with tempfile.TemporaryDirectory(prefix="kiosk-render-") as folder:
        folder = Path(folder)
        app = create_app({"INSTANCE_PATH": str(folder / "instance"), "SECRET_KEY": SECRET_KEY,
                          "DATABASE_URL": f"sqlite:///{folder / 'kiosk-render.sqlite3'}", "SYNC_JOBS": True})
        print(f"seeding and enrolling {args.tablets} tablets…", file=sys.stderr)
        world = seed_and_enrol(app, args.tablets, args.seed)
        tokens = world["tokens"]
        client = app.test_client()
        statements = 0

        def count(*_):
            nonlocal statements
            statements += 1

        def render(i: int) -> None:
            client.set_cookie("roomsync_device", tokens[i % len(tokens)])
            response = client.get(STATUS_PATH, headers={"HX-Request": "true"})
            if response.status_code != 200:
                raise SystemExit(f"the fragment answered {response.status_code}")

        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", count)
        for i in range(args.warmup):
            render(i)
        profiler = cProfile.Profile() if args.profile else None
        cpu, wall = [], []
        statements = 0
        for i in range(args.renders):
            started_cpu, started_wall = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            render(args.warmup + i)
            if profiler is not None:
                profiler.disable()
            cpu.append((time.process_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started_wall) * 1000)
        about = world["about"]
        print(f"{about['database']}, {about['spaces']:,} spaces, {about['bookings']:,} bookings, {args.tablets:,} "
              f"tablets; {args.renders:,} renders of {STATUS_PATH} (200){' under cProfile' if profiler else ''}")
        print(f"CPU per render: mean {statistics.fmean(cpu):.2f} ms, p50 {percentile(cpu, 50):.2f} ms, "
              f"p99 {percentile(cpu, 99):.2f} ms; wall mean {ms(statistics.fmean(wall))} ms; "
              f"{statements / args.renders:.1f} SQL statements per render")
        if profiler is not None:
            print(profile_report(profiler, args.profile, top=40), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
