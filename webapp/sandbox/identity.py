"""The Microsoft identity platform's client-credentials surface, as MSAL Python uses it.

Routes (blueprint `bp`, no prefix; `{tenant}` is the tenant id or its domain `roomsync.test`):
- `GET /{tenant}/v2.0/.well-known/openid-configuration` — the discovery document MSAL reads before its
  first token request. Every URL in it is `https://…` built on `SANDBOX_BASE_URL`: MSAL rejects an
  `http` token endpoint even when it found it by discovery (graph-facts §1.4).
- `POST /{tenant}/oauth2/v2.0/token` — `grant_type=client_credentials`, `client_id`, `client_secret` in
  the form body (MSAL's way) or as HTTP Basic (RFC 6749 §2.3.1), `scope=https://graph.microsoft.com/.default`.
  Success: 200 `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":…}`, the
  token stored as kind "token" {appId, tenantId, expiresAt} (`auth.py` checks it on every Graph call).
  Errors: 400 `{"error","error_description":"AADSTS…: … Trace ID: … Correlation ID: … Timestamp: …",
  "error_codes":[…],"timestamp","trace_id","correlation_id","error_uri"}`
  ([ENTRA:docs/identity-platform/v2-oauth2-client-creds-grant-flow.md], graph-facts §1.1).
  The status is 400 for every error, as that page documents; Entra has been seen answering 401 for
  `invalid_client` — a client must read the JSON for either status.

Error codes used (AADSTS numbers as Entra reports them):
  unsupported_grant_type 70003 · invalid_request 900144 (missing client_id) and 90002 (unknown tenant) ·
  unauthorized_client 700016 (unknown application) and 7000112 (disabled application) ·
  invalid_client 7000218 (no secret) and 7000215 (wrong secret) · invalid_scope 70011 (missing or foreign
  scope) and 1002012 (scope without /.default).

Tokens are opaque random strings: MSAL never parses an access token, and a JWT would invite Roomsync to.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from urllib.parse import unquote

from flask import Blueprint, current_app, jsonify, request

from . import sandbox_state
from .auth import TOKEN_LIFETIME
from .clock import iso_z, now, parse_graph_datetime
from .seed import secret_matches

bp = Blueprint("identity", __name__)

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"


def _base_url() -> str:
    return current_app.config["SANDBOX_BASE_URL"].rstrip("/")


def _find_tenant(tenant: str) -> dict | None:
    wanted = tenant.lower()
    for doc in sandbox_state().store.all("tenant"):
        if wanted == doc["id"].lower() or wanted in (d.lower() for d in doc.get("domains", [])):
            return doc
    return None


def _error(error: str, code: int, message: str, status: int = 400):
    moment = now()
    stamp = moment.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    response = jsonify({
        "error": error,
        "error_description": f"AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} "
                             f"Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{_base_url()}/error?code={code}",
    })
    response.status_code = status
    return response


def _unknown_tenant(tenant: str):
    return _error("invalid_request", 90002,
                  f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
                  "into the correct cloud.")


@bp.get("/<tenant>/v2.0/.well-known/openid-configuration")
def openid_configuration(tenant: str):
    doc = _find_tenant(tenant)
    if doc is None:
        return _unknown_tenant(tenant)
    base, tenant_id = _base_url(), doc["id"]
    return {
        "token_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/{tenant_id}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{tenant_id}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }


def _client_credentials() -> tuple[str | None, str | None]:
    """(client_id, client_secret) from the form body, or from an HTTP Basic header (URL-encoded parts)."""
    client_id, secret = request.form.get("client_id"), request.form.get("client_secret")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            basic_id, _, basic_secret = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return client_id, secret
        client_id = client_id or unquote(basic_id)
        secret = secret or unquote(basic_secret)
    return client_id, secret


def _forget_expired_tokens(store) -> None:
    """Keep the token table small: a token past its expiry can never authenticate again."""
    moment = now()
    with store.lock:
        for token_id in store.ids("token"):
            doc = store.get("token", token_id)
            if doc is not None and parse_graph_datetime(doc["expiresAt"], "UTC") <= moment:
                store.delete("token", token_id)


@bp.post("/<tenant>/oauth2/v2.0/token")
def token(tenant: str):
    tenant_doc = _find_tenant(tenant)
    if tenant_doc is None:
        return _unknown_tenant(tenant)
    grant_type = request.form.get("grant_type")
    if grant_type != "client_credentials":
        return _error("unsupported_grant_type", 70003,
                      "The app requested an unsupported grant type '" + (grant_type or "") + "'.")
    client_id, secret = _client_credentials()
    if not client_id:
        return _error("invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
    store = sandbox_state().store
    app_doc = store.get("app", client_id)
    if app_doc is None or app_doc.get("tenantId") != tenant_doc["id"]:
        return _error("unauthorized_client", 700016,
                      f"Application with identifier '{client_id}' was not found in the directory "
                      f"'{tenant_doc['displayName']}'. This can happen if the application has not been installed by "
                      "the administrator of the tenant or consented to by any user in the tenant.")
    if not secret:
        return _error("invalid_client", 7000218,
                      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
    if not secret_matches(app_doc, secret):
        return _error("invalid_client", 7000215,
                      "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                      f"secret value, not the client secret ID, for a secret added to app '{client_id}'.")
    if not app_doc.get("enabled", True):
        return _error("unauthorized_client", 7000112, f"Application '{client_id}' is disabled.")
    scope = request.form.get("scope", "").strip()
    if not scope:
        return _error("invalid_scope", 70011, "The provided request must include a 'scope' input parameter.")
    if scope != GRAPH_DEFAULT_SCOPE:
        if scope.startswith("https://graph.microsoft.com/") and " " not in scope:
            return _error("invalid_scope", 1002012,
                          f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                          "scope value with /.default suffixed to the resource identifier (application ID URI).")
        return _error("invalid_scope", 70011,
                      f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.")
    access_token = secrets.token_urlsafe(48)
    lifetime = int(TOKEN_LIFETIME.total_seconds())
    _forget_expired_tokens(store)
    store.put("token", access_token, {"appId": client_id, "tenantId": tenant_doc["id"],
                                      "issuedAt": iso_z(now()), "expiresAt": iso_z(now() + TOKEN_LIFETIME)})
    response = jsonify({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                        "access_token": access_token})
    response.headers["Cache-Control"] = "no-store, no-cache"
    response.headers["Pragma"] = "no-cache"
    return response
