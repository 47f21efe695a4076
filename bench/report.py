"""What the benchmark scripts share: their database, their size options, the processes they start, and their reports.

Public API:

- The database: `database_url(choice, default_postgresql_url, sqlite_path, database_url_by_default=False)` →
  the URL a benchmark runs on, from its `--db` choice and DATABASE_URL; `is_postgresql(url)`;
  `database_server(session)` → "SQLite 3.46.1" or "PostgreSQL 16.4", for a report's header.
- Options: `fill_size_defaults(args, quick, full)` gives each size option nobody set its `--quick` or
  full-scale default.
- Processes: `free_port()` → a free TCP port on loopback; `stop_processes(processes)` ends the processes a
  benchmark started (SIGTERM, then SIGKILL after 15 s).
- Numbers: `percentile(samples, p)`, `ms(value)`, `cpu_table(measured, about)` → Markdown lines.
- Reports: `write_results(stem, report, figures, also)` writes `<stem>.md` (and `<stem>.json`), prints the
  report and says where it went; `profile_report(profiler, path, top)` → the top functions by cumulative time
  (the profile is also saved); `Profiles(enabled)` holds a run's profiles by key and prints them all.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

# ---------------------------------------------------------------------------------------------- database


def is_postgresql(url: str | None) -> bool:
    return bool(url) and url.startswith(("postgres://", "postgresql"))


def database_url(choice: str | None, default_postgresql_url: str, sqlite_path: Path, *,
                 database_url_by_default: bool = False) -> str:
    """The database a benchmark runs on, from its `--db` choice:

    - "postgresql": DATABASE_URL if it is a PostgreSQL URL, else `default_postgresql_url` (the benchmark's own
      database; `bench.run.ensure_postgresql_database` creates it);
    - a URL: that database;
    - "sqlite": the SQLite file at `sqlite_path`;
    - none: DATABASE_URL (whatever it names) when `database_url_by_default` and it is set, else `sqlite_path`.

    Every benchmark drops the schema of the database it runs on, so DATABASE_URL alone is followed only by the
    ones documented to follow it (bench/run.py and bench/feeds_bench.py, which keep a seeded data set for
    `--reuse`); the others run on PostgreSQL only when `--db` asks for it.
    """
    env = os.environ.get("DATABASE_URL")
    if choice == "postgresql":
        return env if is_postgresql(env) else default_postgresql_url
    if choice and "://" in choice:
        return choice
    if choice is None and database_url_by_default and env:
        return env
    return f"sqlite:///{sqlite_path}"


def database_server(session) -> str:
    """The server behind a SQLAlchemy session, as a report's header names it: "SQLite 3.46.1", "PostgreSQL 16.4"."""
    if session.get_bind().dialect.name == "sqlite":
        return f"SQLite {session.execute(text('SELECT sqlite_version()')).scalar()}"
    return f"PostgreSQL {session.execute(text('SHOW server_version')).scalar()}"


# ---------------------------------------------------------------------------------------------- options


def fill_size_defaults(args, quick: dict, full: dict) -> None:
    """Each size option left unset (None) takes its default: from `quick` with `--quick`, else from `full`."""
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)


# ---------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each process we started (RQ's warm shutdown, gunicorn's graceful one), then SIGKILL to any
    still there after 15 s."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------------------------- numbers


def percentile(samples: list[float], p: int) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def ms(value: float) -> str:
    return f"{value:.1f}" if value >= 0.1 else f"{value:.3f}"


def cpu_table(measured, about: str) -> list[str]:
    """CPU time per sample of measurements that have it; `about` says whose CPU time that is."""
    if not measured:
        return []
    lines = ["", f"CPU time of {about}: less sensitive than wall time to other work on the machine.", "",
             "| measurement | CPU p50 | CPU p99 |", "|---|---:|---:|"]
    lines += [f"| {m.name} | {ms(m.percentile(50, cpu=True))} | {ms(m.percentile(99, cpu=True))} |" for m in measured]
    return lines


# ---------------------------------------------------------------------------------------------- reports


def write_results(stem: Path, report: str, figures: dict | None = None, also: str = "") -> None:
    """Write `report` to `<stem>.md` and `figures`, if any, to `<stem>.json`; print the report on stdout and
    where it went on stderr, with `also` (what else the run left, e.g. its logs) in brackets."""
    markdown = stem.with_name(f"{stem.name}.md")  # not with_suffix: a stem may hold a dot
    markdown.write_text(report)
    if figures is not None:
        stem.with_name(f"{stem.name}.json").write_text(json.dumps(figures, indent=2, default=str))
    print(report)
    written = markdown if figures is None else f"{stem}.md and .json"
    print(f"Written to {written}" + (f" ({also})" if also else ""), file=sys.stderr)


def profile_report(profiler: cProfile.Profile, path: Path, top: int = 25) -> str:
    profiler.dump_stats(path)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


class Profiles:
    """The cProfile profiles of one run, by key. `new(key)` starts one, or gives None when `--profile` is off
    (the measurement then runs unprofiled); `add(key, profiler)` keeps one made elsewhere; `print_reports(stem)`
    saves each that recorded something as `<stem>-<key>.prof` and prints its top functions on stderr."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.taken: list[tuple[str, cProfile.Profile]] = []

    def new(self, key: str) -> cProfile.Profile | None:
        if not self.enabled:
            return None
        self.taken.append((key, cProfile.Profile()))
        return self.taken[-1][1]

    def add(self, key: str, profiler: cProfile.Profile) -> None:
        self.taken.append((key, profiler))

    def print_reports(self, stem: Path, top: int = 25) -> None:
        for key, profiler in self.taken:
            if profiler.getstats():  # a measurement that never ran has nothing to show (and pstats would refuse it)
                path = stem.with_name(f"{stem.name}-{key}.prof")
                print(f"\n## Profile: {key} ({path})\n\n{profile_report(profiler, path, top)}", file=sys.stderr)
