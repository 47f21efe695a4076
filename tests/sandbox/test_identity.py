"""The identity platform surface against the documented client-credentials flow (graph-facts §1.1, §1.4;
examples under tests/data/graph/identity/)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from webapp.sandbox.clock import now
from webapp.sandbox.seed import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_DOMAIN, DEMO_TENANT_ID

EXAMPLES = Path(__file__).parents[1] / "data" / "graph" / "identity"


def _documented(name: str) -> dict:
    return {k: v for k, v in json.loads((EXAMPLES / name).read_text()).items() if k != "_source"}


@pytest.mark.parametrize("tenant", [DEMO_TENANT_ID, DEMO_DOMAIN])
def test_discovery_advertises_https_endpoints_of_the_tenant(sandbox_app, tenant):
    response = sandbox_app.test_client().get(f"/{tenant}/v2.0/.well-known/openid-configuration")

    assert response.status_code == 200
    body = response.get_json()
    assert set(_documented("openid-configuration.json")) <= set(body)
    assert body["token_endpoint"] == f"https://127.0.0.1:5001/{DEMO_TENANT_ID}/oauth2/v2.0/token"
    assert body["authorization_endpoint"] == f"https://127.0.0.1:5001/{DEMO_TENANT_ID}/oauth2/v2.0/authorize"
    assert body["issuer"] == f"https://127.0.0.1:5001/{DEMO_TENANT_ID}/v2.0"


def test_discovery_follows_the_configured_base_url(sandbox_app):
    sandbox_app.config["SANDBOX_BASE_URL"] = "https://127.0.0.1:6123"
    body = sandbox_app.test_client().get(f"/{DEMO_TENANT_ID}/v2.0/.well-known/openid-configuration").get_json()
    assert body["token_endpoint"].startswith("https://127.0.0.1:6123/")


def test_discovery_of_an_unknown_tenant_is_the_documented_error(sandbox_app):
    response = sandbox_app.test_client().get("/contoso.example/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert response.get_json()["error_codes"] == [90002]


@pytest.mark.parametrize("tenant", [DEMO_TENANT_ID, DEMO_DOMAIN])
def test_client_credentials_issue_a_bearer_token(fetch_token, sandbox_state, tenant):
    response = fetch_token(tenant=tenant)

    assert response.status_code == 200
    body = response.get_json()
    documented = _documented("token-response.json")
    assert set(body) == set(documented)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599 and body["ext_expires_in"] == 3599
    stored = sandbox_state.store.get("token", body["access_token"])
    assert stored["appId"] == DEMO_CLIENT_ID
    assert stored["expiresAt"] > stored["issuedAt"]
    assert response.headers["Cache-Control"].startswith("no-store")


def test_the_secret_may_come_as_http_basic(sandbox_app, fetch_token):
    basic = base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET}".encode()).decode()
    response = sandbox_app.test_client().post(
        f"/{DEMO_TENANT_ID}/oauth2/v2.0/token", headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"})
    assert response.status_code == 200


def _assert_documented_error(response, error: str, code: int) -> dict:
    assert response.status_code == 400
    body = response.get_json()
    assert set(_documented("token-error.json")) <= set(body)
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]
    assert f"Correlation ID: {body['correlation_id']}" in body["error_description"]
    assert body["timestamp"].endswith("Z") and len(body["timestamp"]) == 20
    return body


def test_wrong_secret_is_invalid_client(fetch_token):
    _assert_documented_error(fetch_token(secret="not-the-secret"), "invalid_client", 7000215)


def test_missing_secret_is_invalid_client(fetch_token):
    _assert_documented_error(fetch_token(secret=None), "invalid_client", 7000218)


def test_unknown_client_is_unauthorized_client(fetch_token):
    _assert_documented_error(fetch_token(client_id="00000000-0000-0000-0000-000000000001"), "unauthorized_client",
                             700016)


def test_unknown_tenant_is_rejected(fetch_token):
    _assert_documented_error(fetch_token(tenant="other.example"), "invalid_request", 90002)


@pytest.mark.parametrize("scope, code", [
    ("https://foo.microsoft.com/.default", 70011),
    ("https://graph.microsoft.com/User.Read", 1002012),
    ("", 70011),
])
def test_only_the_graph_default_scope_is_accepted(fetch_token, scope, code):
    _assert_documented_error(fetch_token(scope=scope), "invalid_scope", code)


def test_other_grant_types_are_unsupported(fetch_token):
    _assert_documented_error(fetch_token(grant_type="password"), "unsupported_grant_type", 70003)


def test_a_disabled_app_gets_no_token(fetch_token, sandbox_state):
    app_doc = sandbox_state.store.get("app", DEMO_CLIENT_ID)
    sandbox_state.store.put("app", DEMO_CLIENT_ID, {**app_doc, "enabled": False})
    _assert_documented_error(fetch_token(), "unauthorized_client", 7000112)


def test_the_token_opens_graph_until_it_expires(sandbox_app, fetch_token):
    with freeze_time(now()) as frozen:
        token = fetch_token().get_json()["access_token"]
        client = sandbox_app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1.0/users", headers=headers).status_code == 200

        frozen.tick(timedelta(seconds=3600))
        expired = client.get("/v1.0/users", headers=headers)
        assert expired.status_code == 401
        assert expired.get_json()["error"]["code"] == "InvalidAuthenticationToken"
        assert expired.headers["WWW-Authenticate"].startswith("Bearer")


def test_graph_without_a_token_is_401(sandbox_app):
    response = sandbox_app.test_client().get("/v1.0/users")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "InvalidAuthenticationToken"
