"""The feeds benchmark works: a tiny run (`--quick`: 150 occurrences over a year) seeds through the booking
operations, checks the feed against the occurrence rows, measures every path, and prints and writes its table.

No timing is asserted (a loaded CI machine says nothing about the code); bench/feeds_bench.py at full size is
where the targets are judged. On PostgreSQL the benchmark gets a database of its own (the test database's
name + `_feeds_bench`), since it drops and rebuilds the schema of the database it runs on.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bench_runs import MEASUREMENT_ROW, bench_database_url, run_bench, table_rows, written_report

BENCH_DATABASE_URL = bench_database_url("_feeds_bench")  # None on SQLite


def _run(results: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_bench("feeds_bench.py", results, *extra, database_url=BENCH_DATABASE_URL)


def test_quick_run_checks_the_feed_and_writes_the_table(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    expected_db = "postgresql" if BENCH_DATABASE_URL else "sqlite"
    report = written_report(done, tmp_path, f"feeds-{expected_db}-*.md")

    assert "| measurement | samples | best | median | p95 | max | target | result |" in report
    rows = table_rows(report, MEASUREMENT_ROW)
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
