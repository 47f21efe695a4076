"""Fixtures that connect Roomsync (the suite's app) to a real sandbox tenant over HTTPS. Import the fixtures
you use into a test module (`from sandbox_server import connected, sandbox_admin  # noqa: F401`).

- `sandbox_tenant` (module): the sandbox from `make_sandbox_server` on a free port of 127.0.0.1 (HTTPS with
  its own CA), in a thread; yields `Tenant(env, server)` with the values of the sandbox.env it wrote.
- `sandbox_admin`: `SandboxAdmin` for /_sandbox/* (`revoke`, `grant`, `reset`, `state`); the tenant is reset
  after each test that used it.
- `webhook_server` (module): a second Roomsync app on the suite's database served on a free port (werkzeug,
  threaded), so the sandbox's subscription handshake reaches /webhooks/graph; yields its base URL.
- `connected`: points the suite's app at the tenant (GRAPH_* from sandbox.env, PUBLIC_BASE_URL = the webhook
  server, no Redis: `REDIS_URL` None and `INTEGRATION_CACHE` "memory"); restores everything afterwards.
- `graph_config(tenant, base_url)`: the config overrides that do the same for an app built by a test.

tests/graph/conftest.py starts a sandbox the same way for the Graph client's own tests; its fixtures live in
a conftest and cannot be imported, hence this module.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
import requests
from werkzeug.serving import make_server

from webapp import create_app
from webapp.extensions import db
from webapp.graph import reset_graph_clients
from webapp.graph.settings import read_env_file
from webapp.sandbox.serve import make_sandbox_server

GRAPH_KEYS = ("GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET", "GRAPH_AUTHORITY", "GRAPH_BASE_URL",
              "GRAPH_CA_BUNDLE")


@dataclass
class Tenant:
    env: dict
    server: object = field(repr=False)


class SandboxAdmin:
    def __init__(self, tenant: Tenant):
        self.url = tenant.env["SANDBOX_URL"].rstrip("/") + "/_sandbox"
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = tenant.env["GRAPH_CA_BUNDLE"]
        self.http.headers["X-Sandbox-Key"] = tenant.env["SANDBOX_ADMIN_KEY"]

    def _call(self, method: str, path: str, body=None):
        response = self.http.request(method, self.url + path, json=body, timeout=10)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json() if response.content else None

    def revoke(self, permission: str):
        return self._call("POST", "/permissions/revoke", {"permission": permission})

    def grant(self, permission: str):
        return self._call("POST", "/permissions/grant", {"permission": permission})

    def reset(self):
        return self._call("POST", "/reset")

    def state(self):
        return self._call("GET", "/state")


def graph_config(tenant: Tenant, base_url: str) -> dict:
    return {**{key: tenant.env[key] for key in GRAPH_KEYS}, "PUBLIC_BASE_URL": base_url, "REDIS_URL": None,
            "INTEGRATION_CACHE": "memory"}


@pytest.fixture(scope="module")
def sandbox_tenant(tmp_path_factory):
    instance = tmp_path_factory.mktemp("integration-sandbox")
    server = make_sandbox_server("127.0.0.1", 0, instance, config={"SANDBOX_DB": ":memory:"}).start()
    yield Tenant(read_env_file(instance / "sandbox.env"), server)
    server.shutdown()
    reset_graph_clients()


@pytest.fixture
def sandbox_admin(sandbox_tenant):
    admin = SandboxAdmin(sandbox_tenant)
    yield admin
    admin.reset()


@pytest.fixture(scope="module")
def webhook_server(app, tmp_path_factory):
    served = create_app({"INSTANCE_PATH": str(tmp_path_factory.mktemp("webhook-instance")),
                         "SECRET_KEY": "webhook-test-secret",
                         "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"]})
    server = make_server("127.0.0.1", 0, served, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="webhook-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    with served.app_context():
        db.engine.dispose()


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
