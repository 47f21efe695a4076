"""The initial sync benchmark works: a tiny run (`--quick`: 30 events and 10 bookings to restore in one room,
then 3 pairs at once run by real `worker.py` processes and the cron process) seeds the sandbox and Roomsync,
runs the real job, and prints and writes its tables — and both runs end with both sides agreeing.

No timing is asserted (a loaded machine says nothing about the code, and at this size the fixed requests —
paging, the parity audit — outweigh the events, so requests per event are high); bench/initial_sync_bench.py
at full size is where the targets are read. On PostgreSQL the benchmark gets a database of its own (the test
database's name + `_initial_bench`), since it drops and rebuilds the schema of the database it runs on. On
SQLite one worker runs the pairs: concurrent initial syncs on SQLite can fail with "database is locked"
and wait for the sweeper (the benchmark measures and reports that; this test only keeps the script working).
"""

from __future__ import annotations

import re

from bench_runs import bench_database_url, run_bench, written_report


def _table(report: str, header: str) -> list[list[str]]:
    """The rows (cells stripped) of the Markdown table whose header line starts with `header`."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_quick_run_prints_the_tables_and_both_sides_agree(tmp_path, redis_url):
    bench_url = bench_database_url("_initial_bench")
    done = run_bench("initial_sync_bench.py", tmp_path,
                     "--lease-seconds", "20", "--sweep-seconds", "2", "--workers", "2" if bench_url else "1",
                     database_url=bench_url, database_url_option=True,
                     redis_url=redis_url,  # the session's valkey (or CI's Redis): workers and limiter share it
                     timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    expected_db = "postgresql" if bench_url else "sqlite"
    report = written_report(done, tmp_path, f"initial-sync-{expected_db}-*.md")
    assert re.search(r"load average \d+\.\d+ before the run", report)

    # Part 1: one room, 30 events (25 single + one weekly series of 5), 10 bookings to restore.
    assert "## One room: 30 upcoming events and 10 bookings to restore" in report
    summary = {row[0]: row[1:] for row in _table(report, "| measurement | value | target | result |")}
    seconds = float(re.match(r"([\d.]+) s", summary["total time of `run_initial_sync`"][0])[1])
    assert seconds > 0
    requests_row = next(value for name, value in summary.items() if name.startswith("Graph requests (HTTP)"))
    assert int(re.match(r"(\d+)", requests_row[0])[1]) > 0
    per_event = next(value for name, value in summary.items() if name.startswith("Graph requests per imported event"))
    assert "(30 instances)" in next(n for n in summary if n.startswith("Graph requests per imported event"))
    assert float(per_event[0]) > 0
    final = summary["final state"]
    assert final[0].startswith("done: 26 imported") and "both sides agree" in final[0], final
    assert final[2] == "pass"
    steps = _table(report, "| step | wall (s) |")
    assert [row[0].split(".")[0] for row in steps[:7]] == [str(n) for n in range(1, 8)]
    assert sum(int(row[3]) for row in steps if row[3]) == int(re.match(r"(\d+)", requests_row[0])[1])
    outcomes = {row[0]: row[1] for row in _table(report, "| outcome | count |")}
    assert outcomes["imported (a series counts once)"] == "26"
    assert outcomes["adjusted to the grid"] == "3"
    assert (outcomes["restored"], outcomes["not restored"]) == ("10", "0")
    assert outcomes["parity audit"].startswith("Both sides agree")
    kinds = {row[0]: row[1:] for row in _table(report, "| Graph request kind |")}
    assert int(kinds["POST $batch"][0]) > 0 and int(kinds["GET calendarView"][0]) > 0
    assert kinds["POST events"][1] == "10"  # the restored bookings, created through $batch

    # Part 2: 3 pairs at once, every one done, nothing about throttling shown, every audit agreeing.
    assert "## 3 pairs at once: 20 events and 4 bookings to restore each" in report
    [row] = _table(report, "| workers | total (s) |")
    assert row[0] == ("2" if bench_url else "1")
    assert float(row[1]) > 0
    assert row[7] == "3 of 3" and row[8] == "none" and row[9] == "3 of 3" and row[10] == "pass", row
