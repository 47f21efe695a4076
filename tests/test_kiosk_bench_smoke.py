"""The tablet benchmark works: a tiny run (`--quick`: 20 tablets, 2-second runs through 4 connections) seeds,
enrols, starts gunicorn, drives it with wrk and prints and writes its table — and each run got the answers it
was meant to get (the trivial endpoint 200s, the conditional polls 304s, flat out and paced, the plain polls
whole fragments).

No timing is asserted (a loaded machine says nothing about the code); bench/kiosk_bench.py at full size is where
the targets are read. wrk comes from Debian: the benchmark installs it when it runs as root (CI does); elsewhere
without wrk the test is skipped (failed in CI). The benchmark always uses a SQLite file of its own, whatever
DATABASE_URL says.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from bench_runs import run_bench, table_rows, written_report

ROW = re.compile(r"^\| (?P<name>[^|]+) \| (?P<rps>[\d,]+) \| (?P<p50>[\d.]+) \| (?P<p90>[\d.]+) \| (?P<p99>[\d.]+) \| "
                 r"(?P<max>[\d.]+) \| (?P<answers>[^|]+) \| (?P<cpu>[\d.]+|nan) \|$")


def test_quick_run_measures_the_three_endpoints_with_the_answers_each_should_get(tmp_path):
    if shutil.which("wrk") is None and os.geteuid() != 0:
        message = "wrk is not installed and the benchmark can only install it as root (apt-get install wrk)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = run_bench("kiosk_bench.py", tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    report = written_report(done, tmp_path, "kiosk-sqlite-*.md")
    [json_file] = tmp_path.glob("kiosk-sqlite-*.json")
    assert re.search(r"load average \d+\.\d+ before the run", report)
    assert "20 tablets enrolled" in report and "gunicorn: " in report

    rows = table_rows(report, ROW)
    assert len(rows) == 4, report
    for name, row in rows.items():
        assert int(row["rps"].replace(",", "")) > 0, name
        assert 0 < float(row["p50"]) <= float(row["p90"]) <= float(row["p99"]) <= float(row["max"]), name
    trivial, fast, paced, full = (next(r for n, r in rows.items() if n.startswith(prefix)) for prefix in (
        "trivial", "status fragment, 304 path (", "status fragment, 304 path, paced", "status fragment, full"))
    assert re.fullmatch(r"[\d,]+ × 200", trivial["answers"]), trivial["answers"]
    for conditional in (fast, paced):  # every poll: nothing changed
        assert re.fullmatch(r"[\d,]+ × 304", conditional["answers"]), conditional["answers"]
    # Paced (200 requests/s in --quick) is slower than flat out.
    assert int(paced["rps"].replace(",", "")) < int(fast["rps"].replace(",", ""))
    assert re.fullmatch(r"[\d,]+ × 200", full["answers"]), full["answers"]
    for target in ("≥ 1,000 requests/s", "p99 < 20 ms", "within 3x of the trivial endpoint"):
        assert re.search(rf"^\| {re.escape(target)} \| .+ \| (pass|FAIL) \|$", report, re.M), target

    figures = json.loads(json_file.read_text())
    assert figures["about"]["rooms"] == 20 and figures["args"]["tablets"] == 20
    runs = figures["runs"]
    assert runs["304"]["status"]["304"] == runs["304"]["requests"] > 0
    assert runs["304-paced"]["status"]["304"] == runs["304-paced"]["requests"] > 0
    assert runs["304-paced"]["connections"] == 50 and runs["304"]["connections"] == 4
    assert runs["full"]["status"]["200"] == runs["full"]["requests"] > 0
    assert runs["full"]["bytes_per_response"] > 10 * runs["304"]["bytes_per_response"]  # a whole fragment
    assert all(run["errors"] == {} for run in runs.values()), {k: r["errors"] for k, r in runs.items()}
    assert set(figures["verdicts"]) == {"throughput", "p99", "ratio", "all_304"}
