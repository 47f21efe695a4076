"""scripts/run.py, the process runner behind `make run`: it brings up valkey, the worker and the web server,
and on SIGINT/SIGTERM — or when one of them dies — stops every process it started (Linux: reads /proc)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60
STOP_TIMEOUT = 15

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid → (parent pid, state, command line) of every process on the machine."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        table[int(entry.name)] = (int(ppid), state, cmdline)
    return table


def _descendants(pid: int) -> dict[int, str]:
    table = _processes()
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, state, cmdline) in table.items():
            if ppid == parent and child not in found and state != "Z":
                found[child] = cmdline
                frontier.append(child)
    return found


def _alive(pids) -> list[int]:
    table = _processes()
    return [pid for pid in pids if pid in table and table[pid][1] != "Z"]


def _mentioning(text: str) -> list[int]:
    return [pid for pid, (_, state, cmdline) in _processes().items() if text in cmdline and state != "Z"]


@pytest.fixture
def runner(tmp_path):
    """Start scripts/run.py on a free port with its own instance folder, migrated SQLite database and embedded
    valkey; yields (process, web port, redis port, output file, the pids it started as they are found).
    Whatever happens, nothing it started outlives the test."""
    instance = tmp_path / "instance"
    set_here = ("REDIS_URL", "ROOMSYNC_RQ_QUEUE", "ROOMSYNC_SYNC_JOBS")  # the defaults are under test
    env = {k: v for k, v in os.environ.items() if k not in set_here}
    env.update(
        ROOMSYNC_INSTANCE=str(instance),
        DATABASE_URL=f"sqlite:///{tmp_path / 'roomsync.sqlite3'}",
        PORT=str(_free_port()),
        ROOMSYNC_REDIS_PORT=str(_free_port()),
        SANDBOX_PORT=str(_free_port()),
        SECRET_KEY="test-secret",
    )
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    output = tmp_path / "runner.log"
    with output.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT)
    started: dict[int, str] = {}
    try:
        yield process, int(env["PORT"]), int(env["ROOMSYNC_REDIS_PORT"]), output, started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in _alive(started) + _mentioning(str(instance)):
            os.kill(pid, signal.SIGKILL)


def _wait_until_serving(process, port: int, output: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"runner exited early:\n{output.read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
                if response.status == 200 and "Press Ctrl-C" in output.read_text():
                    return
        except OSError:  # refused, reset or timed out while gunicorn's worker boots
            pass
        time.sleep(0.2)
    pytest.fail(f"no HTTP 200 on /login within {STARTUP_TIMEOUT} s:\n{output.read_text()}")


def _wait_for_worker_processes(process, started: dict[int, str], count: int = 2) -> None:
    # The web server is up last, but the worker may still be importing: wait until it runs its scheduler
    # (count=2), or a work horse too (count=3).
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        started.update(_descendants(process.pid))
        if len(_alive(pid for pid, cmd in started.items() if "worker.py" in cmd and "--cron" not in cmd)) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"expected {count} worker processes: {started}")


def _kinds(started: dict[int, str]) -> dict[str, list[int]]:
    kinds = {
        kind: [pid for pid, cmd in started.items() if marker in cmd]
        for kind, marker in (("valkey", "valkey-server"), ("sandbox", "webapp.sandbox"), ("cron", "worker.py --cron"),
                             ("web", "gunicorn app:app"))
    }
    kinds["worker"] = [pid for pid, cmd in started.items() if "worker.py" in cmd and "--cron" not in cmd]
    return kinds


def _assert_sandbox_serves_https(banner: str) -> None:
    """The sandbox tenant answers its discovery document over HTTPS that its own CA vouches for."""
    import re

    import requests

    env_file = Path(re.search(r"tenant settings in (\S+?)\)", banner).group(1))
    settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify=
    response = session.get(f"{settings['GRAPH_AUTHORITY']}/v2.0/.well-known/openid-configuration",
                           verify=settings["GRAPH_CA_BUNDLE"], timeout=10)
    assert response.status_code == 200
    assert response.json()["token_endpoint"].startswith("https://127.0.0.1:")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_runner_serves_then_stops_every_process_it_started(runner, stop_signal):
    process, port, _, output, started = runner
    _wait_until_serving(process, port, output)
    _wait_for_worker_processes(process, started)
    kinds = _kinds(started)
    assert all(kinds.values()), started
    assert len(kinds["web"]) >= 2  # gunicorn's arbiter and its worker
    text = output.read_text()
    assert f"http://127.0.0.1:{port}/" in text
    assert "admin@roomsync.test" in text and "password: roomsync" in text
    _assert_sandbox_serves_https(text)

    process.send_signal(stop_signal)

    assert process.wait(timeout=STOP_TIMEOUT) == 0, output.read_text()
    assert _alive(started) == [], {pid: started[pid] for pid in _alive(started)}


def test_a_process_that_dies_stops_the_others_and_the_runner_fails(runner):
    process, port, _, output, started = runner
    _wait_until_serving(process, port, output)
    _wait_for_worker_processes(process, started)
    table = _processes()
    [worker] = [pid for pid in _kinds(started)["worker"] if table[pid][0] == process.pid]  # not its scheduler

    os.kill(worker, signal.SIGKILL)

    assert process.wait(timeout=STOP_TIMEOUT) == 1
    assert "worker exited with status -9" in output.read_text()
    assert _alive(started) == [], {pid: started[pid] for pid in _alive(started)}


def test_a_job_still_running_after_the_grace_period_is_killed_with_its_worker(runner):
    from redis import Redis
    from rq import Queue

    process, port, redis_port, output, started = runner
    _wait_until_serving(process, port, output)
    _wait_for_worker_processes(process, started)
    with Redis(port=redis_port) as connection:
        Queue("roomsync", connection=connection).enqueue("time.sleep", 300)
    _wait_for_worker_processes(process, started, count=3)  # the work horse runs the job, in a group of its own

    process.send_signal(signal.SIGINT)

    assert process.wait(timeout=STOP_TIMEOUT + 10) == 0, output.read_text()
    assert "worker did not stop within" in output.read_text()
    assert _alive(started) == [], {pid: started[pid] for pid in _alive(started)}


# ---------------------------------------------------------------------------------------------- the demo's connection


def _load_run_module(monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("roomsync_run", ROOT / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo_runner(tmp_path):
    """scripts/run.py on a migrated and seeded demo database (as `make run` starts it): yields `start(**env)`,
    which starts the runner (again, on the same instance) and waits until it serves, answering (process, output
    file), and `pairs()`, the rows of sync_pairs as {space name: room email}. Nothing outlives the test."""
    import sqlite3

    instance = tmp_path / "instance"
    database = tmp_path / "roomsync.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ROOMSYNC_RQ_QUEUE", "ROOMSYNC_SYNC_JOBS",
                                                            "PUBLIC_BASE_URL", "ROOMSYNC_SANDBOX")}
    env.update(ROOMSYNC_INSTANCE=str(instance), DATABASE_URL=f"sqlite:///{database}", PORT=str(_free_port()),
               ROOMSYNC_REDIS_PORT=str(_free_port()), SANDBOX_PORT=str(_free_port()), SECRET_KEY="test-secret")
    for command in (["db", "upgrade"], ["seed-demo"]):
        subprocess.run([sys.executable, "-m", "flask", "--app", "app", *command], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=120)
    processes: list[subprocess.Popen] = []
    started: dict[int, str] = {}

    def start(**overrides):
        output = tmp_path / f"runner-{len(processes) + 1}.log"
        with output.open("wb") as sink:
            process = subprocess.Popen([sys.executable, "scripts/run.py"], cwd=ROOT, env={**env, **overrides},
                                       stdout=sink, stderr=subprocess.STDOUT)
        processes.append(process)
        _wait_until_serving(process, int(env["PORT"]), output)
        started.update(_descendants(process.pid))
        return process, output

    def pairs() -> dict[str, str]:
        with sqlite3.connect(database) as connection:
            return dict(connection.execute(
                "SELECT spaces.name, sync_pairs.room_email FROM sync_pairs JOIN spaces ON spaces.id = sync_pairs.space_id"))

    try:
        yield start, pairs
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for pid in _alive(started) + _mentioning(str(instance)):
            os.kill(pid, signal.SIGKILL)


def _stop(process, output: Path) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=STOP_TIMEOUT + 10) == 0, output.read_text()


def test_the_first_start_connects_the_demo_and_pairs_its_rooms_and_a_restart_changes_nothing(demo_runner):
    start, pairs = demo_runner
    process, output = start()
    text = output.read_text()
    banner = text[text.index("Roomsync is running at"):]
    assert "Connected HQ to the Microsoft 365 sandbox tenant and paired 8 rooms" in text
    assert "The 8 demo rooms are paired with the sandbox's rooms and their initial syncs are running" in banner
    assert "/admin/sync/" in banner
    paired = pairs()
    assert paired == {"Board room A": "board-room-a@roomsync.test", "Board room B": "board-room-b@roomsync.test",
                      "Board room A+B": "board-room-a-b@roomsync.test", "Focus room 1": "focus-room-1@roomsync.test",
                      "Focus room 2": "focus-room-2@roomsync.test", "Atrium": "atrium@roomsync.test",
                      "Studio": "studio@roomsync.test", "Library": "library@roomsync.test"}
    _stop(process, output)

    process, output = start()
    text = output.read_text()
    assert "HQ has its integration settings already: nothing changed." in text
    assert "demo rooms are paired" not in text and "not connected" not in text
    assert pairs() == paired
    _stop(process, output)


def test_when_the_checks_fail_roomsync_runs_on_unconnected_and_says_where_to_connect(demo_runner):
    start, pairs = demo_runner
    process, output = start(PUBLIC_BASE_URL="http://127.0.0.1:9")  # the webhook handshake cannot succeed
    text = output.read_text()
    assert "Error: The sandbox tenant did not pass the integration checks" in text
    assert "The demo is not connected to the sandbox" in text and "/admin/integration/" in text
    assert pairs() == {}
    assert process.poll() is None  # still serving
    _stop(process, output)


def test_the_demo_step_is_skipped_without_the_sandbox_and_its_banner_line_follows_its_exit_status(tmp_path,
                                                                                                  monkeypatch):
    run = _load_run_module(monkeypatch)
    [step] = [s for s in run.STEPS if s.name == "demo"]
    environ = {"ROOMSYNC_INSTANCE": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1/0", "PORT": "5123"}
    assert step.enabled(run.load_settings(environ))
    assert not step.enabled(run.load_settings({**environ, "ROOMSYNC_SANDBOX": "0"}))
    settings = run.load_settings(environ)
    assert "watch them at http://127.0.0.1:5123/admin/sync/" in step.outcome(settings, 0)
    assert step.outcome(settings, 3) is None  # nothing to do: the command's own line says why
    assert "connect it at http://127.0.0.1:5123/admin/integration/" in step.outcome(settings, 1)
    assert "connect it at" in step.outcome(settings, -1)  # stopped at its time limit
