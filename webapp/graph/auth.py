"""Tokens for Microsoft Graph: MSAL Python's `ConfidentialClientApplication`, unmodified, client credentials.

Public API:
- `GRAPH_SCOPES` — `["https://graph.microsoft.com/.default"]` (all granted application permissions).
- `http_session(settings)` → the ONE `requests.Session` per process and settings that MSAL and the Graph
  client share: `trust_env=False` (so `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` and proxies from the environment
  cannot override `verify` — graph-facts §1.4 gotcha), `verify` = `GRAPH_CA_BUNDLE` or the system store,
  and a default `(connect, read)` timeout on every request that does not give its own (MSAL passes none to
  a custom `http_client`). No adapter-level retries: the Graph client owns retrying.
- `TokenProvider(settings, session)` — `token()` → an access token (MSAL serves it from its in-memory cache
  until < 5 minutes are left, graph-facts §1.3), raising `AuthFailed` (an AADSTS error: `error`,
  `error_codes`) or `ConnectionFailed`/`ServiceUnavailable` (the token endpoint could not be reached or
  answered 5xx); `invalidate()` → drop the cached app tokens after Graph answered 401, so the next
  `token()` asks the identity platform again; `requests` counts the token requests that went to the
  network (tests and the benchmark read it).
- `SharedTokens(redis, key)`: the app token shared by every process through Redis (`TokenProvider`'s
  optional `shared`; `graph_client` passes one when the app has Redis), so short-lived job processes do not
  each sign in again.
- `token_provider(settings)` → the process's provider for these settings (built on first use, cached per
  settings and per process id, so a forked worker never reuses its parent's sockets).
- `client_credential(settings)` → what MSAL takes as `client_credential`: the secret, or for a certificate
  `{"private_key", "thumbprint", "public_certificate"}` read from the PEM file.

Authority: the tenant's (settings refuse /common and /organizations). For a host that is not one of
Microsoft's (the sandbox), `instance_discovery=False` (no call to login.microsoftonline.com, which fails
offline) and `azure_region=False` (no regional host from `MSAL_FORCE_REGION`) — graph-facts §1.4 recipe A.
For Microsoft's hosts MSAL's defaults stay.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import msal
import requests
from requests.adapters import HTTPAdapter

from .errors import AuthFailed, ConnectionFailed, ServiceUnavailable
from .settings import GraphSettings, GraphSettingsError

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
MICROSOFT_AUTHORITY_HOSTS = frozenset(getattr(msal.authority, "WELL_KNOWN_AUTHORITY_HOSTS", ())) | {
    "login.microsoftonline.com"}


class _TimeoutSession(requests.Session):
    """A Session whose requests time out by default: a hung socket must never hang a worker."""

    def __init__(self, timeout: tuple[float, float]):
        super().__init__()
        self.default_timeout = timeout

    def request(self, method, url, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, **kwargs)


def new_session(settings: GraphSettings) -> requests.Session:
    session = _TimeoutSession(settings.timeouts)
    session.trust_env = False
    session.verify = settings.verify
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


_lock = threading.Lock()
_sessions: dict[tuple, requests.Session] = {}
_providers: dict[tuple, "TokenProvider"] = {}


def http_session(settings: GraphSettings) -> requests.Session:
    key = (os.getpid(), settings.cache_key())
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = new_session(settings)
        return session


def token_provider(settings: GraphSettings) -> "TokenProvider":
    key = (os.getpid(), settings.cache_key())
    session = http_session(settings)
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _providers[key] = TokenProvider(settings, session)
        return provider


def reset_caches() -> None:
    """Forget every cached session and provider of this process (tests; a changed configuration)."""
    with _lock:
        for session in _sessions.values():
            session.close()
        _sessions.clear()
        _providers.clear()


def _thumbprint(certificate_pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    certificate = x509.load_pem_x509_certificate(certificate_pem)
    return hashlib.sha1(certificate.public_bytes(Encoding.DER)).hexdigest().upper()  # noqa: S324 (x5t is SHA-1)


def client_credential(settings: GraphSettings):
    if not settings.certificate_path:
        return settings.client_secret
    pem = Path(settings.certificate_path).read_bytes()
    begin = pem.find(b"-----BEGIN CERTIFICATE-----")
    if begin < 0 or b"PRIVATE KEY-----" not in pem:
        raise GraphSettingsError("GRAPH_CLIENT_CERTIFICATE must be a PEM file with the private key and the certificate.")
    certificate = pem[begin:pem.find(b"-----END CERTIFICATE-----", begin) + len(b"-----END CERTIFICATE-----")]
    return {
        "private_key": pem.decode(),
        "thumbprint": settings.certificate_thumbprint or _thumbprint(certificate),
        "public_certificate": certificate.decode(),
    }


class SharedTokens:
    """The app's access token shared by every process through Redis (`key` names the settings): RQ runs each
    job in a fresh work horse, and without this each would sign in again (MSAL's cache lives in memory) —
    an OpenID discovery and a token request per job. Stored until 5 minutes before it expires, as MSAL's own
    cache does. Redis trouble only means signing in again."""

    MARGIN = 300

    def __init__(self, redis, key: str):
        self.redis, self.key = redis, key

    def get(self) -> str | None:
        try:
            value = self.redis.get(self.key)
        except Exception:  # noqa: BLE001
            return None
        return value.decode() if isinstance(value, bytes) else value

    def put(self, token: str, expires_in) -> None:
        try:
            ttl = int(expires_in or 0) - self.MARGIN
            if ttl > 0:
                self.redis.set(self.key, token, ex=ttl)
        except Exception:  # noqa: BLE001
            pass

    def drop(self) -> None:
        try:
            self.redis.delete(self.key)
        except Exception:  # noqa: BLE001
            pass


class TokenProvider:
    def __init__(self, settings: GraphSettings, session: requests.Session, shared: SharedTokens | None = None):
        self.settings, self.session, self.shared = settings, session, shared
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        self.requests = 0  # token requests that reached the identity platform

    def _application(self) -> msal.ConfidentialClientApplication:
        # Built on first use: MSAL's constructor already fetches the tenant's OpenID configuration, and nothing
        # may connect before a worker forks.
        if self._app is None:
            settings = self.settings
            settings.check()
            host = urlsplit(settings.authority).hostname or ""
            foreign = host.lower() not in MICROSOFT_AUTHORITY_HOSTS
            options = {"instance_discovery": False, "azure_region": False} if foreign else {}
            try:
                self._app = msal.ConfidentialClientApplication(
                    settings.client_id, client_credential=client_credential(settings),
                    authority=settings.authority, http_client=self.session, **options)
            except requests.RequestException as error:
                raise ConnectionFailed(f"The identity platform could not be reached: {type(error).__name__}",
                                       code="connectionError") from None
            except ValueError as error:  # discovery refused: unknown tenant, bad authority
                raise AuthFailed(f"The authority {settings.authority} is not usable: {error}",
                                 error="invalid_authority") from None
        return self._app

    def token(self) -> str:
        if self.shared is not None:
            cached = self.shared.get()
            if cached:
                return cached
        with self._lock:
            app = self._application()
            try:
                result = app.acquire_token_for_client(scopes=GRAPH_SCOPES)
            except requests.HTTPError as error:  # MSAL raises on a 5xx token response (graph-facts §1.3)
                status = error.response.status_code if error.response is not None else None
                raise ServiceUnavailable("The identity platform answered with a server error.", status=status,
                                         code="tokenEndpointUnavailable") from None
            except requests.RequestException as error:
                raise ConnectionFailed(f"The identity platform could not be reached: {type(error).__name__}",
                                       code="connectionError") from None
        if "access_token" not in result:
            description = str(result.get("error_description") or result.get("error") or "no token")
            # The first line is the AADSTS message; the trace/correlation ids follow and are not secret.
            raise AuthFailed(description.splitlines()[0], error=result.get("error"),
                             error_codes=tuple(result.get("error_codes") or ()))
        if result.get("token_source") != "cache":
            self.requests += 1
            if self.shared is not None:
                self.shared.put(result["access_token"], result.get("expires_in"))
        return result["access_token"]

    def invalidate(self) -> None:
        if self.shared is not None:
            self.shared.drop()
        with self._lock:
            if self._app is not None:
                self._app.remove_tokens_for_client()
