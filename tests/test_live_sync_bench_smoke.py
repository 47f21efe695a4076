"""The live sync benchmark works: a tiny run (`--quick`: 2 paired rooms, 40 changes per side at 20 per second)
starts the real processes (gunicorn or werkzeug serving the web app with PUBLIC_BASE_URL pointing at it, 2
`worker.py` processes, the cron process, the sandbox in the benchmark's process), pairs the rooms until they are
live, makes the changes on both sides and prints and writes its figures — and every change landed on the
other side.

No timing is asserted (a loaded machine says nothing about the code); bench/live_sync_bench.py at full size is
where the targets are read. On PostgreSQL the benchmark gets a database of its own (the test database's name +
`_live_bench`), since it drops and rebuilds the schema of the database it runs on.
"""

from __future__ import annotations

import json
import re

from bench_runs import bench_database_url, run_bench, written_report


def test_quick_run_measures_both_sides_and_every_change_lands(tmp_path, redis_url):
    bench_url = bench_database_url("_live_bench")
    done = run_bench("live_sync_bench.py", tmp_path,
                     "--sweep-seconds", "5", "--quiet-timeout", "30", "--timeout", "240",
                     database_url=bench_url, database_url_option=True,
                     redis_url=redis_url,  # the session's valkey (or CI's Redis)
                     timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    expected_db = "postgresql" if bench_url else "sqlite"
    report = written_report(done, tmp_path, f"live-sync-{expected_db}-*.md")
    [json_file] = tmp_path.glob(f"live-sync-{expected_db}-*.json")
    assert re.search(r"load average \d+\.\d+ before the run", report)
    figures = json.loads(json_file.read_text())
    assert figures["database"].lower().startswith(expected_db)
    outlook, roomsync = figures["parts"]
    assert outlook["name"].startswith("Outlook") and roomsync["name"].startswith("Roomsync")

    for part in (outlook, roomsync):
        # Every change was made and landed on the other side; nothing was left queued or unprocessed.
        assert part["changes"] == 40 and sum(part["by_kind"].values()) == 40, part["by_kind"]
        assert part["landed"] == 40 and part["missing"] == [], (part["missing"], part["missing_detail"])
        assert part["driver_errors"] == [] and part["not_quiet"] == {}, (part["driver_errors"], part["not_quiet"])
        assert part["by_kind"].get("create", 0) >= 20  # the first bursts only create; then the mix
        assert part["latency"]["n"] == 40 and 0 < part["latency"]["p50"] <= part["latency"]["p99"]
        assert set(part["latency_by_kind"]) <= {"create", "update", "delete"} and "create" in part["latency_by_kind"]
        # Graph calls were counted (Roomsync's only) and the webhook was timed by the web app and the sandbox.
        assert part["graph_requests"] > 0 and part["calls_per_change"] == part["graph_requests"] / 40
        assert part["webhook_ms"]["n"] > 0 and part["webhook_ms"]["p99"] > 0
        assert part["delivery"]["posts"] > 0 and part["delivery"]["notifications"] >= part["delivery"]["posts"]
        assert part["jobs"]["inbound.process_notifications"]["n"] > 0
    # The Outlook side's writes are the driver's, counted apart from Roomsync's requests.
    assert outlook["driver_requests"].get("POST events", 0) >= 20
    assert "POST events" not in outlook["roomsync_requests"]
    # The Roomsync side's changes were pushed by the workers.
    assert roomsync["driver_requests"] == {}
    # (creates go 20 to a `$batch` when several wait, one by one otherwise)
    pushed = roomsync["roomsync_requests"]
    assert pushed.get("POST events", 0) + pushed.get("POST $batch", 0) > 0, pushed
    assert roomsync["jobs"]["outbound.push_pending"]["n"] >= 1  # one waiting job serves a burst of edits
    assert "| Graph write → booking in the database (s) | Outlook → Roomsync |" in report
    assert "| commit → room holds the accepted event (s) | Roomsync → Outlook |" in report
