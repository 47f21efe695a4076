"""Bearer tokens and application permissions for the Graph surface.

Public API: `require(*permissions)` — view decorator: the request must carry `Authorization: Bearer <token>`
issued by this tenant's token endpoint and not expired (else 401 `InvalidAuthenticationToken` with a
`WWW-Authenticate` header), and the app must *currently* hold one of `permissions` (else 403
`ErrorAccessDenied`). Permissions are checked against the app's live grants, not the token's roles: a
revoked permission bites at once, the behaviour hardest on a client. Sets `g.sandbox_app` (the app
document) and `g.sandbox_token`.
`TOKEN_LIFETIME` (3599 s, as Entra issues: MSAL treats < 300 s as expired, graph-facts §1.3).
"""

from __future__ import annotations

from datetime import timedelta
from functools import wraps

from flask import g, request

from . import sandbox_state
from .clock import now, parse_graph_datetime
from .errors import GraphError

TOKEN_LIFETIME = timedelta(seconds=3599)
_CHALLENGE = 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"'


def _unauthenticated(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": _CHALLENGE})


def current_app_doc() -> dict:
    """Authenticate the request (without a permission check) and return the calling app's document."""
    if "sandbox_app" in g:
        return g.sandbox_app
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("Access token is empty.")
    store = sandbox_state().store
    doc = store.get("token", token.strip())
    if doc is None:
        raise _unauthenticated("Access token validation failure. Invalid audience.")
    if parse_graph_datetime(doc["expiresAt"], "UTC") <= now():
        raise _unauthenticated("Access token has expired or is not yet valid.")
    app_doc = store.get("app", doc["appId"])
    if app_doc is None or not app_doc.get("enabled", True):
        raise _unauthenticated("Access token validation failure.")
    g.sandbox_app, g.sandbox_token = app_doc, doc
    return app_doc


def require(*permissions: str):
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            app_doc = current_app_doc()
            granted = set(app_doc.get("permissions", []))
            if permissions and not granted & set(permissions):
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            return view(*args, **kwargs)

        return wrapper

    return decorate
