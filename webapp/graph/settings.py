"""Microsoft Graph settings, from configuration only (never from the database).

Public API:
- `GraphSettings` — frozen: `tenant_id`, `client_id`, `client_secret`, `certificate_path`,
  `certificate_thumbprint`, `authority`, `base_url`, `ca_bundle`, `connect_timeout`, `read_timeout`,
  `source` ("environment", "sandbox" or "unset"). `configured()` says whether a tenant is set;
  `verify` is what TLS verification uses (the CA bundle path, else True); `cache_key()` identifies the
  settings for the per-process caches without holding the secret in clear; `check()` raises
  `GraphSettingsError` when a configured tenant lacks what a token request needs. Its repr never shows
  the secret (nor does any log line of this package).
- `load_settings(app=None, environ=None)` → `GraphSettings`. Values come from the app's config
  (`create_app` overrides, for tests) or else the process environment. When `GRAPH_TENANT_ID` is in neither
  and `<instance>/sandbox.env` exists (the sandbox writes it at start: webapp/sandbox/serve.py
  `write_env_file`), every value comes from that file instead: "sandbox mode".
- `GraphSettingsError` (a `GraphError` and a `ValueError`, code `invalidConfiguration`): a setting is
  unusable, e.g. an authority on /common.

Variables: `GRAPH_TENANT_ID`, `GRAPH_CLIENT_ID`, `GRAPH_CLIENT_SECRET` or `GRAPH_CLIENT_CERTIFICATE` (a PEM
file with the private key and the certificate) + `GRAPH_CLIENT_CERTIFICATE_THUMBPRINT` (SHA-1 hex; computed
from the PEM when omitted), `GRAPH_AUTHORITY` (default `https://login.microsoftonline.com/<tenant>`),
`GRAPH_BASE_URL` (default `https://graph.microsoft.com/v1.0`), `GRAPH_CA_BUNDLE` (a CA file for TLS
verification; default the system's), `GRAPH_CONNECT_TIMEOUT` / `GRAPH_READ_TIMEOUT` (seconds, default 5/30).

Why /common and /organizations are refused: the client-credentials flow needs a specific tenant; MSAL calls
those authorities "unreliable" for `acquire_token_for_client` (graph-facts §1.2). /consumers has no
application permissions at all.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from .errors import GraphError

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_BASE_URL = "https://graph.microsoft.com/v1.0"
SANDBOX_ENV_FILE = "sandbox.env"
KEYS = ("GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET", "GRAPH_CLIENT_CERTIFICATE",
        "GRAPH_CLIENT_CERTIFICATE_THUMBPRINT", "GRAPH_AUTHORITY", "GRAPH_BASE_URL", "GRAPH_CA_BUNDLE",
        "GRAPH_CONNECT_TIMEOUT", "GRAPH_READ_TIMEOUT")
_MULTI_TENANT = {"common", "organizations", "consumers"}


class GraphSettingsError(GraphError, ValueError):
    def __init__(self, message: str):
        super().__init__(message, code="invalidConfiguration")


@dataclass(frozen=True)
class GraphSettings:
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    certificate_path: str | None = None
    certificate_thumbprint: str | None = None
    authority: str = ""
    base_url: str = DEFAULT_BASE_URL
    ca_bundle: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    source: str = "unset"

    def configured(self) -> bool:
        return bool(self.tenant_id)

    @property
    def sandbox(self) -> bool:
        return self.source == "sandbox"

    @property
    def verify(self) -> str | bool:
        return self.ca_bundle or True

    @property
    def timeouts(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def check(self) -> None:
        if not self.configured():
            raise GraphSettingsError("GRAPH_TENANT_ID is not set: no Microsoft 365 tenant is configured.")
        if not self.client_id:
            raise GraphSettingsError("GRAPH_CLIENT_ID is not set.")
        if not self.client_secret and not self.certificate_path:
            raise GraphSettingsError("Set GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERTIFICATE.")
        if self.certificate_path and not Path(self.certificate_path).is_file():
            raise GraphSettingsError("GRAPH_CLIENT_CERTIFICATE does not name a readable file.")
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise GraphSettingsError("GRAPH_CA_BUNDLE does not name a readable file.")

    def cache_key(self) -> tuple:
        secret = hashlib.sha256((self.client_secret or "").encode()).hexdigest()
        return (self.tenant_id, self.client_id, secret, self.certificate_path, self.certificate_thumbprint,
                self.authority, self.base_url, self.ca_bundle, self.connect_timeout, self.read_timeout)

    def __repr__(self) -> str:
        return (f"GraphSettings(source={self.source!r}, tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, "
                f"credential={self._credential_kind()!r}, authority={self.authority!r}, base_url={self.base_url!r}, "
                f"ca_bundle={self.ca_bundle!r})")

    __str__ = __repr__

    def _credential_kind(self) -> str:
        if self.certificate_path:
            return "certificate"
        return "secret" if self.client_secret else "none"


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values


def _check_authority(authority: str) -> str:
    parts = urlsplit(authority)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme != "https" or not parts.hostname or not segments:
        raise GraphSettingsError("GRAPH_AUTHORITY must be an https URL ending in the tenant, "
                                 "e.g. https://login.microsoftonline.com/<tenant id>.")
    if segments[-1].lower() in _MULTI_TENANT:
        raise GraphSettingsError(f"GRAPH_AUTHORITY must name a specific tenant, not /{segments[-1]}: the "
                                 "client-credentials flow needs the tenant that granted the permissions.")
    return authority.rstrip("/")


def _seconds(raw: str | None, default: float, name: str) -> float:
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise GraphSettingsError(f"{name} must be a number of seconds.") from None
    if value <= 0:
        raise GraphSettingsError(f"{name} must be positive.")
    return value


def settings_from_values(values: Mapping[str, str | None], source: str) -> GraphSettings:
    def get(name: str) -> str | None:
        value = values.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    tenant = get("GRAPH_TENANT_ID")
    if tenant and tenant.lower() in _MULTI_TENANT:
        raise GraphSettingsError(f"GRAPH_TENANT_ID must be a specific tenant, not '{tenant}'.")
    authority = get("GRAPH_AUTHORITY") or (f"{DEFAULT_AUTHORITY_HOST}/{tenant}" if tenant else "")
    if authority:
        authority = _check_authority(authority)
    base_url = (get("GRAPH_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if urlsplit(base_url).scheme != "https":
        raise GraphSettingsError("GRAPH_BASE_URL must be an https URL.")
    return GraphSettings(
        tenant_id=tenant, client_id=get("GRAPH_CLIENT_ID"), client_secret=get("GRAPH_CLIENT_SECRET"),
        certificate_path=get("GRAPH_CLIENT_CERTIFICATE"),
        certificate_thumbprint=get("GRAPH_CLIENT_CERTIFICATE_THUMBPRINT"),
        authority=authority, base_url=base_url, ca_bundle=get("GRAPH_CA_BUNDLE"),
        connect_timeout=_seconds(get("GRAPH_CONNECT_TIMEOUT"), 5.0, "GRAPH_CONNECT_TIMEOUT"),
        read_timeout=_seconds(get("GRAPH_READ_TIMEOUT"), 30.0, "GRAPH_READ_TIMEOUT"),
        source=source if tenant else "unset",
    )


def load_settings(app=None, environ: Mapping[str, str] | None = None) -> GraphSettings:
    if app is None:
        from flask import current_app, has_app_context

        app = current_app._get_current_object() if has_app_context() else None
    environ = os.environ if environ is None else environ
    config = app.config if app is not None else {}
    values = {name: config[name] if config.get(name) is not None else environ.get(name) for name in KEYS}
    if values.get("GRAPH_TENANT_ID"):
        return settings_from_values(values, "environment")
    instance = getattr(app, "instance_path", None)
    env_file = Path(instance) / SANDBOX_ENV_FILE if instance else None
    if env_file is not None and env_file.is_file():
        return settings_from_values(read_env_file(env_file), "sandbox")
    return settings_from_values(values, "environment")
