"""Fixtures of the Graph client tests: the sandbox tenant served over real HTTPS, its admin API, clients.
The sandbox and its admin API come from tests/sandbox_server.py (`serve_sandbox`, `SandboxAdmin`); Redis from
the root conftest's `redis_url`.

- `sandbox` (session): `serve_sandbox` for the session; yields its `Served(base_url, instance, env, settings,
  server)` (`settings`: the `GraphSettings` Roomsync reads from the sandbox.env, sandbox mode).
- `admin`: `SandboxAdmin` for /_sandbox/* (`faults(spec)`, `access_policy(*mailboxes)`, `clear_faults()`,
  `revoke`, `grant`, `expire_delta()`, `throttle(**)`, `reset()`, …). Any test that uses `sandbox` gets the
  tenant restored (store reseeded, faults off, Outlook's throttle limits) after it.
- `make_client(**overrides)`: a `GraphClient` on the sandbox with its own MSAL app and session (a fresh token
  cache per test), a fast `RetryPolicy` and a `Recorder` as sleep and observer: `client.recorder.requests`
  (method, url, status, attempt), `.sleeps`, `.retries`. Keyword overrides go to `GraphClient`
  (`settings=`, `retry=`, `limiter=`, `sleep=`).

Roomsync's database is not needed: the root conftest's autouse `_app_context` is overridden with a no-op.
"""

from __future__ import annotations

import pytest

from sandbox_server import SandboxAdmin, serve_sandbox
from webapp.graph import GraphClient, RetryPolicy
from webapp.graph.auth import TokenProvider, new_session
from webapp.graph.settings import GraphSettings


@pytest.fixture(autouse=True)
def _app_context():
    """Overrides the root conftest's fixture: these tests need no Roomsync app or database."""
    yield


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    with serve_sandbox(tmp_path_factory.mktemp("graph-instance")) as served:
        yield served


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
        admin.restore()


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
