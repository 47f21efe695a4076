"""MSAL Python, unmodified, against the sandbox served over real HTTPS with its own CA (graph-facts §1.4)."""

from __future__ import annotations

import ssl

import msal  # a test dependency on purpose: a missing one must fail here, not skip the fidelity check
import pytest
import requests

from webapp.sandbox.seed import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID
from webapp.sandbox.serve import make_sandbox_server
from webapp.sandbox.tls import ensure_certificates

SCOPES = ["https://graph.microsoft.com/.default"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance")
    sandbox = make_sandbox_server("127.0.0.1", 0, instance, config={"SANDBOX_DB": ":memory:"}).start()
    yield sandbox
    sandbox.shutdown()


def _session(ca_path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override verify= otherwise
    session.verify = str(ca_path)
    return session


def _msal_app(served, secret: str = DEMO_CLIENT_SECRET) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        DEMO_CLIENT_ID, client_credential=secret, authority=f"{served.base_url}/{DEMO_TENANT_ID}",
        instance_discovery=False, azure_region=False, http_client=_session(served.ca_path))


def test_msal_acquires_a_token_then_serves_it_from_its_cache(served):
    app = _msal_app(served)

    first = app.acquire_token_for_client(scopes=SCOPES)
    assert first.get("token_source") == "identity_provider", first
    assert first["token_type"] == "Bearer" and first["expires_in"] > 300

    second = app.acquire_token_for_client(scopes=SCOPES)
    assert second["token_source"] == "cache" and second["access_token"] == first["access_token"]

    graph = _session(served.ca_path).get(f"{served.base_url}/v1.0/places/microsoft.graph.room",
                                         headers={"Authorization": f"Bearer {first['access_token']}"})
    assert graph.status_code == 200 and len(graph.json()["value"]) == 11


def test_a_wrong_secret_comes_back_as_an_error_dict(served):
    result = _msal_app(served, secret="wrong").acquire_token_for_client(scopes=SCOPES)
    assert result["error"] == "invalid_client"
    assert "AADSTS7000215" in result["error_description"]
    assert "access_token" not in result


def test_the_certificate_names_loopback_and_is_signed_by_the_ca(served):
    context = ssl.create_default_context(cafile=str(served.ca_path))
    response = _session(served.ca_path).get(f"https://localhost:{served.port}/{DEMO_TENANT_ID}/v2.0/"
                                            ".well-known/openid-configuration")
    assert response.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.Session().get(f"{served.base_url}/{DEMO_TENANT_ID}/v2.0/.well-known/openid-configuration",
                               verify=True)  # not trusted without the sandbox CA
    assert context.get_ca_certs()[0]["subject"][-1][0][1] == "Roomsync sandbox local CA"


def test_the_env_file_points_roomsync_at_the_sandbox(served):
    settings = dict(line.split("=", 1) for line in served.env_path.read_text().splitlines())
    assert settings["GRAPH_TENANT_ID"] == DEMO_TENANT_ID and settings["GRAPH_CLIENT_ID"] == DEMO_CLIENT_ID
    assert settings["GRAPH_CLIENT_SECRET"] == DEMO_CLIENT_SECRET
    assert settings["GRAPH_AUTHORITY"] == f"{served.base_url}/{DEMO_TENANT_ID}"
    assert settings["GRAPH_BASE_URL"] == f"{served.base_url}/v1.0"
    assert settings["GRAPH_CA_BUNDLE"] == str(served.ca_path.resolve())
    assert served.base_url.startswith("https://127.0.0.1:")


def test_certificates_are_reused_while_valid_and_replaced_when_broken(tmp_path):
    first = ensure_certificates(tmp_path)
    ca = first.ca_path.read_bytes()
    assert ensure_certificates(tmp_path).ca_path.read_bytes() == ca
    assert oct(first.key_path.stat().st_mode & 0o777) == "0o600"
    first.cert_path.write_text("garbage")
    renewed = ensure_certificates(tmp_path)
    assert renewed.ca_path.read_bytes() != ca and renewed.cert_path.read_text().startswith("-----BEGIN CERTIFICATE")


def test_plain_http_mode_for_rewriting_clients(tmp_path):
    sandbox = make_sandbox_server("127.0.0.1", 0, tmp_path, plain_http=True, config={"SANDBOX_DB": ":memory:"})
    sandbox.start()
    try:
        assert sandbox.listen_url.startswith("http://") and sandbox.ca_path is None
        body = requests.get(f"{sandbox.listen_url}/{DEMO_TENANT_ID}/v2.0/.well-known/openid-configuration").json()
        # MSAL rejects an http token endpoint even from discovery: the rewriting client gets https names.
        assert body["token_endpoint"] == f"{sandbox.base_url}/{DEMO_TENANT_ID}/oauth2/v2.0/token"
        assert sandbox.base_url.startswith("https://")
        env = sandbox.env_path.read_text()
        assert "GRAPH_CA_BUNDLE=\n" in env and f"SANDBOX_URL={sandbox.listen_url}\n" in env
    finally:
        sandbox.shutdown()
