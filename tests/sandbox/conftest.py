"""Shared fixtures of the sandbox tests. The sandbox is a separate system: these tests never start Roomsync.

- `sandbox_app`: a fresh sandbox tenant in memory (`SANDBOX_DB=":memory:"`, seeded), notification retries
  sped up by `SANDBOX_TIME_FACTOR=3600`; its delivery thread is closed afterwards.
- `sandbox_state`: that app's `SandboxState` (store, faults, throttle, delivery…).
- `graph`: a `GraphClient` — Flask's test client that sends `Authorization: Bearer <token>` with a token
  obtained from the sandbox's real token endpoint (the demo app's client credentials). After moving a frozen
  clock more than an hour ahead, call `graph.authenticate()` for a fresh token.
- `admin`: a test client that sends the admin API key (`X-Sandbox-Key`).
- `fetch_token(client_id=DEMO_CLIENT_ID, secret=DEMO_CLIENT_SECRET, tenant=DEMO_TENANT_ID, **form)`: a
  helper fixture that POSTs a client-credentials request to the token endpoint and returns the response.

The root conftest's autouse `_app_context` (Roomsync's database per test) is overridden with a no-op here.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from webapp.sandbox import create_sandbox_app
from webapp.sandbox.identity import GRAPH_DEFAULT_SCOPE
from webapp.sandbox.seed import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID

ADMIN_KEY = "test-admin-key"


@pytest.fixture(autouse=True)
def _app_context():
    """Overrides the root conftest's fixture: sandbox tests need no Roomsync app or database."""
    yield


def request_token(client: FlaskClient, client_id: str = DEMO_CLIENT_ID, secret: str | None = DEMO_CLIENT_SECRET,
                  tenant: str = DEMO_TENANT_ID, **form):
    body = {"grant_type": "client_credentials", "client_id": client_id, "scope": GRAPH_DEFAULT_SCOPE,
            "client_info": "1"}
    if secret is not None:
        body["client_secret"] = secret
    body.update(form)
    return client.post(f"/{tenant}/oauth2/v2.0/token", data={k: v for k, v in body.items() if v is not None})


class GraphClient(FlaskClient):
    """A test client that authenticates as the demo app through the token endpoint."""

    def authenticate(self, client_id: str = DEMO_CLIENT_ID, secret: str = DEMO_CLIENT_SECRET) -> str:
        self.environ_base.pop("HTTP_AUTHORIZATION", None)
        response = request_token(self, client_id, secret)
        assert response.status_code == 200, response.get_json()
        token = response.get_json()["access_token"]
        self.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return token


@pytest.fixture
def sandbox_app():
    app = create_sandbox_app({"SANDBOX_DB": ":memory:", "SANDBOX_TIME_FACTOR": 3600,
                              "SANDBOX_ADMIN_KEY": ADMIN_KEY, "TESTING": True})
    yield app
    app.extensions["sandbox"].delivery.close()


@pytest.fixture
def sandbox_state(sandbox_app):
    return sandbox_app.extensions["sandbox"]


@pytest.fixture
def graph(sandbox_app) -> GraphClient:
    client = GraphClient(sandbox_app, sandbox_app.response_class)
    client.authenticate()
    return client


@pytest.fixture
def admin(sandbox_app) -> FlaskClient:
    client = FlaskClient(sandbox_app, sandbox_app.response_class)
    client.environ_base["HTTP_X_SANDBOX_KEY"] = ADMIN_KEY
    return client


@pytest.fixture
def fetch_token(sandbox_app):
    client = FlaskClient(sandbox_app, sandbox_app.response_class)

    def fetch(client_id: str = DEMO_CLIENT_ID, secret: str | None = DEMO_CLIENT_SECRET,
              tenant: str = DEMO_TENANT_ID, **form):
        return request_token(client, client_id, secret, tenant, **form)

    return fetch


# The webhook receiver's fixtures, shared by the subscription, notification and Outlook-page tests.
from webhook_receiver import receiver, subscribe  # noqa: E402,F401
