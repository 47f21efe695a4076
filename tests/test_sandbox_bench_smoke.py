"""The sandbox benchmark works: a tiny run (`--quick`) seeds a room, reads calendarView over real HTTPS, fans
notifications out to a local receiver, and prints and writes its table with numbers.

No timing is asserted here (a loaded CI machine says nothing about the code); bench/sandbox_bench.py at full
scale on a quiet machine is where the numbers are read.
"""

from __future__ import annotations

import re

from bench_runs import run_bench, table_rows, written_report

ROW = re.compile(r"^\| (?P<name>.+?) \| (?P<samples>\d+) \| (?P<stats>[^|]+\|[^|]+\|[^|]+\|[^|]+) \|$")


def _row(rows: dict[str, dict], prefix: str) -> dict:
    found = [row for name, row in rows.items() if name.startswith(prefix)]
    assert len(found) == 1, (prefix, list(rows))
    return found[0]


def test_quick_run_prints_and_writes_the_sandbox_table(tmp_path):
    done = run_bench("sandbox_bench.py", tmp_path, "--changes", "24", "--samples", "3")
    assert done.returncode == 0, done.stderr[-3000:]

    report = written_report(done, tmp_path, "sandbox-*.md")
    assert "| measurement | samples | p50 | p95 | p99 | max |" in report
    assert re.search(r"load average \d+\.\d+ before the run", report)

    rows = table_rows(report, ROW)
    assert len(rows) == 7, report
    for name, row in rows.items():
        p50, p95, p99, worst = (float(v) for v in row["stats"].split("|"))
        assert 0 < p50 <= p95 <= p99 <= worst, (name, row)

    for window in ("one week", "one month"):
        row = _row(rows, f"calendarView, {window}, every page")
        assert int(row["samples"]) == 3
        assert re.search(r"\d+ instances \(\d+–\d+\) in \d+\.\d pages on average", row["name"]), row
    assert int(_row(rows, "calendarView, one request")["samples"]) >= 3

    writes = _row(rows, "engine write per change")
    assert int(writes["samples"]) == 24
    kinds = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (created|updated|deleted)", writes["name"]))
    assert sum(kinds.values()) == 24 and all(kinds.get(k) for k in ("created", "updated", "deleted")), kinds
    assert int(_row(rows, "publish overhead per change")["samples"]) == 24
    assert int(_row(rows, "notification latency")["samples"]) == 24  # every notification arrived, once
    fan_out = _row(rows, "fan-out: first change → all 24 notifications received")
    assert int(fan_out["samples"]) == 1
    assert re.search(r"\d+ POSTs", fan_out["name"]), fan_out

    seeded = re.search(r"holds (\d+) events .*?\((\d+) series masters.*?: ([\d,]+) instances in that span", report)
    events, series, instances = int(seeded[1]), int(seeded[2]), int(seeded[3].replace(",", ""))
    assert events == 60 and series == 12 and instances > events
    assert "24 notifications received" in report
