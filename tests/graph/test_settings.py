"""Graph settings from configuration: environment vs the sandbox's sandbox.env, refused authorities, secrets
kept out of reprs and logs, and the process's cached client."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from webapp.graph import (AuthFailed, GraphSettingsError, NullLimiter, RedisMailboxLimiter, configured,
                          graph_client, load_settings, reset_graph_clients)
from webapp.graph.auth import client_credential
from webapp.graph.settings import DEFAULT_BASE_URL, settings_from_values
from webapp.sandbox.serve import write_env_file

TENANT = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cr3t-~value-that-must-not-leak"


def _app(tmp_path: Path, **config) -> SimpleNamespace:
    return SimpleNamespace(config=config, instance_path=str(tmp_path))


def _sandbox_env(tmp_path: Path, port: int = 5999) -> Path:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    path = tmp_path / "sandbox.env"
    write_env_file(path, f"https://127.0.0.1:{port}", f"https://127.0.0.1:{port}", ca, "the-admin-key")
    return path


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in ("GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET", "GRAPH_CLIENT_CERTIFICATE",
                 "GRAPH_CLIENT_CERTIFICATE_THUMBPRINT", "GRAPH_AUTHORITY", "GRAPH_BASE_URL", "GRAPH_CA_BUNDLE",
                 "GRAPH_CONNECT_TIMEOUT", "GRAPH_READ_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    reset_graph_clients()
    yield
    reset_graph_clients()


def test_the_environment_configures_a_real_tenant_with_microsofts_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPH_TENANT_ID", TENANT)
    monkeypatch.setenv("GRAPH_CLIENT_ID", "client")
    monkeypatch.setenv("GRAPH_CLIENT_SECRET", SECRET)
    settings = load_settings(_app(tmp_path))
    assert settings.configured() and settings.source == "environment"
    assert settings.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert settings.base_url == DEFAULT_BASE_URL == "https://graph.microsoft.com/v1.0"
    assert settings.verify is True and settings.timeouts == (5.0, 30.0)
    settings.check()


def test_without_a_tenant_in_the_environment_sandbox_env_is_read(tmp_path):
    _sandbox_env(tmp_path, port=5123)
    settings = load_settings(_app(tmp_path))
    assert settings.source == "sandbox" and settings.sandbox
    assert settings.tenant_id == "7d3c5a1e-2b4f-4c8e-9a61-0f5b8d2e4c17"
    assert settings.authority == f"https://127.0.0.1:5123/{settings.tenant_id}"
    assert settings.base_url == "https://127.0.0.1:5123/v1.0"
    assert settings.verify == str((tmp_path / "ca.pem").resolve())
    assert configured(_app(tmp_path))


def test_a_tenant_in_the_environment_wins_over_sandbox_env_and_app_config_over_both(tmp_path, monkeypatch):
    _sandbox_env(tmp_path)
    monkeypatch.setenv("GRAPH_TENANT_ID", TENANT)
    assert load_settings(_app(tmp_path)).tenant_id == TENANT
    assert load_settings(_app(tmp_path, GRAPH_TENANT_ID="contoso.onmicrosoft.com")).tenant_id == \
        "contoso.onmicrosoft.com"


def test_nothing_configured(tmp_path):
    settings = load_settings(_app(tmp_path))
    assert not settings.configured() and settings.source == "unset" and not configured(_app(tmp_path))
    with pytest.raises(GraphSettingsError):
        graph_client(_app(tmp_path))


@pytest.mark.parametrize("authority", ["https://login.microsoftonline.com/common",
                                       "https://login.microsoftonline.com/organizations/",
                                       "https://login.microsoftonline.com/consumers",
                                       "http://login.microsoftonline.com/" + TENANT,
                                       "https://login.microsoftonline.com"])
def test_multi_tenant_and_non_https_authorities_are_refused(authority):
    with pytest.raises(GraphSettingsError) as caught:
        settings_from_values({"GRAPH_TENANT_ID": TENANT, "GRAPH_AUTHORITY": authority}, "environment")
    assert isinstance(caught.value, ValueError) and caught.value.code == "invalidConfiguration"


@pytest.mark.parametrize("tenant", ["common", "Organizations"])
def test_a_multi_tenant_name_as_tenant_id_is_refused(tenant):
    with pytest.raises(GraphSettingsError):
        settings_from_values({"GRAPH_TENANT_ID": tenant}, "environment")


def test_check_names_what_is_missing(tmp_path):
    with pytest.raises(GraphSettingsError, match="GRAPH_CLIENT_ID"):
        settings_from_values({"GRAPH_TENANT_ID": TENANT}, "environment").check()
    with pytest.raises(GraphSettingsError, match="GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERTIFICATE"):
        settings_from_values({"GRAPH_TENANT_ID": TENANT, "GRAPH_CLIENT_ID": "c"}, "environment").check()
    with pytest.raises(GraphSettingsError, match="GRAPH_READ_TIMEOUT"):
        settings_from_values({"GRAPH_TENANT_ID": TENANT, "GRAPH_READ_TIMEOUT": "soon"}, "environment")


def test_the_secret_is_never_in_a_repr(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPH_TENANT_ID", TENANT)
    monkeypatch.setenv("GRAPH_CLIENT_ID", "client")
    monkeypatch.setenv("GRAPH_CLIENT_SECRET", SECRET)
    settings = load_settings(_app(tmp_path))
    client = graph_client(_app(tmp_path), limited=False)
    for text in (repr(settings), str(settings), repr(client), str(settings.cache_key()), f"{settings!r}"):
        assert SECRET not in text
    assert "credential='secret'" in repr(settings)


def test_the_secret_is_never_logged(sandbox, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client()
    client.list_room_lists()
    secret = sandbox.settings.client_secret
    wrong = make_client(settings=sandbox.settings.__class__(**{**sandbox.settings.__dict__,
                                                               "client_secret": SECRET}))
    with pytest.raises(AuthFailed) as caught:
        wrong.list_rooms()
    assert caught.value.error_codes == (7000215,)
    token = client.tokens.token()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged  # MSAL, urllib3 and werkzeug did log at DEBUG
    assert secret not in logged and SECRET not in logged and token not in logged


def test_graph_client_is_cached_per_settings_and_built_without_connecting(tmp_path):
    _sandbox_env(tmp_path, port=5998)
    app = _app(tmp_path, REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there: nothing may connect
    client = graph_client(app)
    assert graph_client(app) is client and isinstance(client.limiter, RedisMailboxLimiter)
    assert client.limiter.lease_seconds > client.settings.connect_timeout + client.settings.read_timeout
    unlimited = graph_client(app, limited=False)
    assert unlimited is not client and isinstance(unlimited.limiter, NullLimiter)
    _sandbox_env(tmp_path, port=5997)  # the sandbox restarted elsewhere
    moved = graph_client(app)
    assert moved is not client and moved.base_url == "https://127.0.0.1:5997/v1.0"
    assert client.calls == moved.calls == 0


def _certificate_pem(tmp_path: Path) -> tuple[Path, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "roomsync-app")])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    path = tmp_path / "app.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
                     + certificate.public_bytes(serialization.Encoding.PEM))
    return path, certificate.public_bytes(serialization.Encoding.DER)


def test_a_certificate_credential_is_read_from_its_pem_with_its_thumbprint(tmp_path):
    path, der = _certificate_pem(tmp_path)
    settings = settings_from_values({"GRAPH_TENANT_ID": TENANT, "GRAPH_CLIENT_ID": "c",
                                     "GRAPH_CLIENT_CERTIFICATE": str(path)}, "environment")
    settings.check()
    credential = client_credential(settings)
    assert credential["thumbprint"] == hashlib.sha1(der).hexdigest().upper()
    assert "PRIVATE KEY" in credential["private_key"] and "BEGIN CERTIFICATE" in credential["public_certificate"]
    assert "credential='certificate'" in repr(settings) and "PRIVATE" not in repr(settings)
