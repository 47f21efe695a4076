"""The benchmark script works: a tiny run (3 spaces × 14 days) seeds, measures and writes its table.

No timing is asserted here (a loaded CI machine says nothing about the code); `make bench` on a quiet machine
is where the targets are judged. On PostgreSQL the benchmark gets a database of its own (the test database's
name + `_bench`), since it drops and rebuilds the schema of the database it runs on.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bench_runs import MEASUREMENT_ROW, bench_database_url, run_bench, table_rows, written_report

BENCH_DATABASE_URL = bench_database_url("_bench")  # None on SQLite


def _run(results: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_bench("run.py", results, *extra, database_url=BENCH_DATABASE_URL)


def test_quick_run_prints_and_writes_the_result_table(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    expected_db = "postgresql" if BENCH_DATABASE_URL else "sqlite"
    report = written_report(done, tmp_path, f"{expected_db}-*.md")

    assert "| measurement | samples | p50 | p95 | p99 | max | target | result |" in report
    rows = table_rows(report, MEASUREMENT_ROW)
    assert len(rows) == 3, report

    create = next(row for name, row in rows.items() if name.startswith("create_booking with conflict check"))
    assert int(create["samples"]) == 20
    p50, p95, p99, worst = (float(v) for v in create["stats"].split("|"))
    assert 0 < p50 <= p95 <= p99 <= worst
    assert create["target"] == "p99 < 20 ms"
    assert create["result"] in ("pass", "FAIL")
    created, conflicts = (int(n) for n in re.findall(r"(\d+) (?:created|conflicts)", create["name"]))
    assert created > 0 and conflicts > 0 and created + conflicts == 20

    for name, row in rows.items():
        if name.startswith(("day view, 3 spaces", "GET /api/v1/bookings")):
            # Either measured (numbers, a verdict) or explicitly not there yet; never an error.
            if row["result"].startswith("not available"):
                assert row["samples"] == "0"
            else:
                assert row["result"] in ("pass", "FAIL"), row  # "FAIL: HTTP …" means the endpoint failed
                assert int(row["samples"]) == 4, row
                assert all(float(v) > 0 for v in row["stats"].split("|")), row

    data = re.search(r"(\d+) bookings \((\d+) series\), (\d+) occurrences", report)
    bookings, series, occurrences = (int(g) for g in data.groups())
    assert 0 < series < bookings <= occurrences
    assert "sampled bookings match occurrence_times" in report


def test_reuse_keeps_the_seeded_data_and_removes_what_a_run_created(tmp_path):
    first = _run(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _run(tmp_path, "--reuse")
    assert second.returncode == 0, second.stderr[-3000:]

    assert "Seeding" in first.stderr and "Seeding" not in second.stderr
    assert "reused from an earlier run" in second.stdout
    counts = [re.search(r"(\d+) bookings \(\d+ series\), (\d+) occurrences", out).groups() for out in (first.stdout, second.stdout)]
    assert counts[0] == counts[1]
