"""The sandbox tenant for tests: started over real HTTPS on a free port, its admin API, and the fixtures that
connect Roomsync to it. pytest puts tests/ on sys.path, so test modules and conftests import from here
(its fixtures reach every test through `pytest_plugins` in tests/conftest.py).

Helpers (no pytest needed):
- `serve_sandbox(instance)`: a context manager that runs the sandbox from `make_sandbox_server` on a free port of
  127.0.0.1 (HTTPS with its own CA, store in memory) in a thread, state in `instance`, and yields
  `Served(base_url, instance, env, settings, server)`: `env` is the sandbox.env it wrote, `settings` the
  `GraphSettings` Roomsync reads from it (sandbox mode). Shut down on exit.
- `SandboxAdmin(served)`: the admin API /_sandbox/* with the key from sandbox.env: `faults(spec)`,
  `clear_faults()`, `access_policy(*mailboxes)` (Exchange's application access policy: every call on those
  mailboxes answers 403 "Access to OData is disabled."), `revoke(permission)`, `grant(permission)`,
  `delete_room(email)`, `set_processing(email, **calendar_processing)`,
  `expire_delta()`, `throttle(**limits)`, `state()`, `reset()` (store reseeded, faults off, throttle counters
  cleared but not its limits) and `restore()` (reset, and Outlook's limits back).
- `graph_config(served, base_url)`: the config overrides that point an app at the sandbox (GRAPH_* from
  sandbox.env, PUBLIC_BASE_URL, no Redis: `REDIS_URL` None and `INTEGRATION_CACHE` "memory").

Fixtures for Roomsync's integration tests (tests/graph/conftest.py has the Graph client's own, on the same
helpers):
- `sandbox_tenant` (module): `serve_sandbox` for the module; yields its `Served`.
- `sandbox_admin`: `SandboxAdmin` on it; the tenant is restored after each test that used it.
- `webhook_server` (module): a second Roomsync app on the suite's database served on a free port (werkzeug,
  threaded), so the sandbox's subscription handshake and notifications reach /webhooks/graph (stored, not
  queued: it has no Redis); yields its base URL.
- `connected`: points the suite's app at the tenant (`graph_config` with the webhook server); restores
  everything afterwards.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from webapp import create_app
from webapp.extensions import db
from webapp.graph import reset_graph_clients
from webapp.graph.settings import GraphSettings, read_env_file, settings_from_values
from webapp.sandbox.serve import make_sandbox_server

GRAPH_KEYS = ("GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET", "GRAPH_AUTHORITY", "GRAPH_BASE_URL",
              "GRAPH_CA_BUNDLE")
OUTLOOK_LIMITS = {"budget": 10_000, "windowSeconds": 600, "concurrency": 4}  # per app and mailbox (graph-facts §5.1)


# ---------------------------------------------------------------------------------------------- helpers


@dataclass
class Served:
    base_url: str
    instance: Path
    env: dict
    settings: GraphSettings
    server: object = field(repr=False)


@contextmanager
def serve_sandbox(instance: Path) -> Iterator[Served]:
    server = make_sandbox_server("127.0.0.1", 0, instance, config={"SANDBOX_DB": ":memory:"}).start()
    try:
        env = read_env_file(instance / "sandbox.env")
        yield Served(server.base_url, instance, env, settings_from_values(env, "sandbox"), server)
    finally:
        server.shutdown()


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

    def access_policy(self, *mailboxes: str):
        return self.faults({"accessPolicy": {"mailboxes": list(mailboxes)}})

    def revoke(self, permission: str):
        return self._call("POST", "/permissions/revoke", {"permission": permission})

    def grant(self, permission: str):
        return self._call("POST", "/permissions/grant", {"permission": permission})

    def delete_room(self, email: str):
        return self._call("POST", f"/rooms/{email}/delete")

    def set_processing(self, email: str, **settings):
        """The room mailbox's calendarProcessing (bookingWindowInDays=…, enforceSchedulingHorizon=…,
        maximumDurationInMinutes=…, automateProcessing=…, allowRecurringMeetings=…); answers the effective
        settings. `reset()`/`restore()` put the seeded ones back."""
        return self._call("PUT", f"/rooms/{email}/processing", settings)["calendarProcessing"]

    def expire_delta(self):
        return self._call("POST", "/delta/expire")

    def throttle(self, **limits):
        return self._call("PUT", "/throttle", limits)

    def state(self):
        return self._call("GET", "/state")

    def reset(self):
        return self._call("POST", "/reset")

    def restore(self):
        self.reset()
        self.throttle(**OUTLOOK_LIMITS)


def graph_config(served: Served, base_url: str) -> dict:
    return {**{key: served.env[key] for key in GRAPH_KEYS}, "PUBLIC_BASE_URL": base_url, "REDIS_URL": None,
            "INTEGRATION_CACHE": "memory"}


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sandbox_tenant(tmp_path_factory):
    with serve_sandbox(tmp_path_factory.mktemp("integration-sandbox")) as served:
        yield served
    reset_graph_clients()


@pytest.fixture
def sandbox_admin(sandbox_tenant):
    admin = SandboxAdmin(sandbox_tenant)
    yield admin
    admin.restore()


@contextmanager
def serve_app(served) -> Iterator[str]:
    """Serve a Roomsync app on a free loopback port in a thread; yields its base URL, then shuts down and
    releases the app's database connections."""
    server = make_server("127.0.0.1", 0, served, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with served.app_context():
            db.engine.dispose()


@pytest.fixture(scope="module")
def webhook_server(app, tmp_path_factory):
    # No Redis: the webhook persists notifications and queues nothing; tests process them with
    # `inbound.process_notifications` (as a worker would) — see `live_settle` in tests/test_live_sync.py.
    served = create_app({"INSTANCE_PATH": str(tmp_path_factory.mktemp("webhook-instance")),
                         "SECRET_KEY": "webhook-test-secret", "REDIS_URL": None,
                         "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"]})
    with serve_app(served) as url:
        yield url


@pytest.fixture
def connected(app, sandbox_tenant, webhook_server):
    overrides = graph_config(sandbox_tenant, webhook_server)
    saved = {key: app.config.get(key, KeyError) for key in overrides}
    app.config.update(overrides)
    app.extensions.pop("integration_cache", None)
    yield sandbox_tenant
    for key, value in saved.items():
        if value is KeyError:
            app.config.pop(key, None)
        else:
            app.config[key] = value
    app.extensions.pop("integration_cache", None)
