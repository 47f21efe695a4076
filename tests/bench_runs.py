"""Running a benchmark script from its smoke test, and reading the Markdown table it prints. pytest puts tests/ on
sys.path; a smoke test imports what it uses (`from bench_runs import bench_database_url, run_bench`).

- `bench_database_url(suffix)` → on PostgreSQL (DATABASE_URL is a PostgreSQL URL), the URL of a database of the
  benchmark's own: the test database's name + `suffix` (e.g. `_feeds_bench`), since a benchmark drops and
  rebuilds the schema of the database it runs on; None on SQLite (the benchmark then uses a file of its own).
- `run_bench(script, results, *options, database_url, database_url_option, redis_url, timeout)` →
  the `subprocess.CompletedProcess` of `bench/<script> --quick --results <results> <options>`, run from the
  repository's root without the suite's DATABASE_URL.
- `written_report(done, results, pattern)` → the text of the one report file in `results` matching the glob
  `pattern`, checked to be what the run printed.
- `MEASUREMENT_ROW`: a row of the latency table of bench/run.py and bench/feeds_bench.py
  (`| name | samples | 4 statistics | target | result |`); `table_rows(report, row_pattern)` → the rows of
  `report` that match, by name, each the match's groups.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
MEASUREMENT_ROW = re.compile(r"^\| (?P<name>[^|]+) \| (?P<samples>\d+) \| (?P<stats>[^|]+\|[^|]+\|[^|]+\|[^|]+) \| "
                             r"(?P<target>[^|]+) \| (?P<result>[^|]+) \|$")


def bench_database_url(suffix: str) -> str | None:
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith(("postgres://", "postgresql")):
        return None
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}{suffix}").render_as_string(hide_password=False)


def run_bench(script: str, results: Path, *options: str, database_url: str | None = None,
              database_url_option: bool = False, redis_url: str | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `bench/<script>` at its `--quick` size, writing into `results`.

    The suite's DATABASE_URL is never passed on: the benchmark would drop the test database's schema. With
    `database_url`, the benchmark runs there instead, given as DATABASE_URL (bench/run.py and feeds_bench.py,
    whose `--db` takes only sqlite|postgresql) or, with `database_url_option`, as `--db <URL>` (the sync
    benchmarks, which follow DATABASE_URL only when `--db` asks). `redis_url` is passed as REDIS_URL.
    """
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url and database_url_option:
        options += ("--db", database_url)
    elif database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--quick", "--results", str(results), *options],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def written_report(done: subprocess.CompletedProcess, results: Path, pattern: str) -> str:
    written = list(results.glob(pattern))
    assert len(written) == 1, sorted(p.name for p in results.iterdir())
    report = written[0].read_text()
    # Not a test module, so pytest does not rewrite this assert to show its operands: the message says what failed.
    assert report in done.stdout, f"{written[0].name} is not what the run printed"
    return report


def table_rows(report: str, row_pattern: re.Pattern) -> dict[str, dict]:
    rows = {}
    for line in report.splitlines():
        match = row_pattern.match(line)
        if match:
            rows[match["name"]] = match.groupdict()
    return rows
