"""The feeds benchmark works: a tiny run (`--quick`: 150 occurrences over a year) seeds through the booking
operations, checks the feed against the occurrence rows, measures every path, and prints and writes its table.

No timing is asserted (a loaded CI machine says nothing about the code); bench/feeds_bench.py at full size is
where the targets are judged. On PostgreSQL the benchmark gets a database of its own (the test database's
name + `_feeds_bench`), since it drops and rebuilds the schema of the database it runs on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| (?P<name>[^|]+) \| (?P<samples>\d+) \| (?P<stats>[^|]+\|[^|]+\|[^|]+\|[^|]+) \| (?P<target>[^|]+) \| (?P<result>[^|]+) \|$")


def _bench_database_url() -> str | None:
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith(("postgres://", "postgresql")):
        return None
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_feeds_bench").render_as_string(hide_password=False)


def _run(results: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    bench_url = _bench_database_url()
    if bench_url:
        env["DATABASE_URL"] = bench_url
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "feeds_bench.py"), "--quick", "--results", str(results), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )


def test_quick_run_checks_the_feed_and_writes_the_table(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    expected_db = "postgresql" if _bench_database_url() else "sqlite"
    written = list(tmp_path.glob(f"feeds-{expected_db}-*.md"))
    assert len(written) == 1, sorted(p.name for p in tmp_path.iterdir())
    report = written[0].read_text()
    assert report in done.stdout

    assert "| measurement | samples | best | median | p95 | max | target | result |" in report
    rows = {match["name"]: match.groupdict() for match in map(ROW.match, report.splitlines()) if match}
    assert len(rows) == 10, report
    for name, row in rows.items():
        assert row["result"] in ("pass", "FAIL"), row  # "FAIL: HTTP …" would mean a path answered wrongly
        best, median, p95, worst = (float(v) for v in row["stats"].split("|"))
        assert 0 < best <= median <= p95 <= worst, row
    full = next(row for name, row in rows.items() if name.startswith("`GET` feed, full body built (200)"))
    assert full["target"] == "p95 < 100 ms" and int(full["samples"]) == 4
    conditional = next(row for name, row in rows.items() if name.startswith("`GET` feed, `If-None-Match` → 304"))
    assert conditional["target"] == "p95 < 5 ms" and int(conditional["samples"]) == 8

    data = re.search(r"(\d+) bookings \((\d+) series\), ([\d,]+) occurrences", report)
    bookings, series, occurrences = int(data[1]), int(data[2]), int(data[3].replace(",", ""))
    assert 0 < series < bookings <= occurrences
    checked = re.search(r"equals the space's ([\d,]+) occurrences in the window", report)
    assert checked and int(checked[1].replace(",", "")) == occurrences


def test_reuse_keeps_the_seeded_data(tmp_path):
    first = _run(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _run(tmp_path, "--reuse")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Seeding" in first.stderr and "Seeding" not in second.stderr
    assert "reused from an earlier run" in second.stdout
