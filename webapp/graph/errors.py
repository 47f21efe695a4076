"""Typed errors of the Microsoft Graph client: what the sync engine and the settings page act on.

Public API:
- `GraphError(message, *, status=None, code=None, request_id=None, retry_after=None)` — the base; every
  error the package raises is one of these. `str()` never carries a secret or a token.
- Subclasses, by what a caller does about them:
  `NotFound` (404: the item, event, photo or room is gone) · `InvalidUser` (404 `ErrorInvalidUser`: no such
  user or mailbox) · `MailboxNotEnabled` (`MailboxNotEnabledForRESTAPI`: no Exchange Online mailbox) ·
  `PermissionMissing` (403: an application permission is not granted) · `AccessPolicyDenied` (403 "Access to
  OData is disabled": an Exchange application access policy blocks this mailbox) · `AuthFailed` (the token
  endpoint refused us, or Graph still answers 401 after a token refresh; `error`, `error_codes` are the AADSTS
  numbers) · `Throttled` (429; `retry_after` seconds) · `ServiceUnavailable` (503/504, and `ConnectionFailed`
  for connection errors and timeouts; `retry_after` when given) · `SyncStateExpired` (410, or
  `syncStateNotFound`/`resyncRequired`: restart the delta round without a token) · `BadRequest` (400) ·
  `FailedDependency` (424 in a `$batch`: a request it `dependsOn` failed) · `Conflict` (409/412).
- `from_response(status, body, headers=None)` → the error for a Graph error response (`body` the parsed JSON
  or None). It maps the HTTP status and `error.code`, never the message (graph-facts §5.3 "code against
  code"), with one documented exception: 403 `ErrorAccessDenied` with the message "Access to OData is
  disabled" is how Graph reports an application access policy ([D:concepts/auth-limit-mailbox-access.md]),
  and no code tells it apart from a missing permission.
- `parse_retry_after(value, now=None)` → seconds (float ≥ 0) from a `Retry-After` header given in seconds or
  as an HTTP date (RFC 9110 §10.2.3), or None when absent or unreadable.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Mapping


class GraphError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code
        self.request_id, self.retry_after = request_id, retry_after

    def __str__(self) -> str:
        parts = [f"{self.status}" if self.status else None, self.code, self.message]
        text = " ".join(p for p in parts if p)
        return f"{text} (request-id {self.request_id})" if self.request_id else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class NotFound(GraphError):
    pass


class InvalidUser(NotFound):
    """No such user (or room mailbox): `ErrorInvalidUser`."""


class MailboxNotEnabled(GraphError):
    """The user exists but has no Exchange Online mailbox (`MailboxNotEnabledForRESTAPI`)."""


class PermissionMissing(GraphError):
    """403: the app lacks the application permission this call needs (admin consent, or it was revoked)."""


class AccessPolicyDenied(PermissionMissing):
    """403 "Access to OData is disabled": an Exchange application access policy excludes this mailbox."""


class AuthFailed(GraphError):
    def __init__(self, message: str, *, error: str | None = None, error_codes: tuple[int, ...] = (),
                 status: int | None = None, code: str | None = None, request_id: str | None = None):
        super().__init__(message, status=status, code=code or error, request_id=request_id)
        self.error, self.error_codes = error, tuple(error_codes)


class Throttled(GraphError):
    pass


class ServiceUnavailable(GraphError):
    pass


class ConnectionFailed(ServiceUnavailable):
    """No HTTP answer: connection refused or reset, TLS failure, connect or read timeout."""


class SyncStateExpired(GraphError):
    pass


class BadRequest(GraphError):
    pass


class FailedDependency(GraphError):
    pass


class Conflict(GraphError):
    pass


ACCESS_POLICY_MESSAGE = "access to odata is disabled"
_SYNC_STATE_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}
_MAILBOX_CODES = {"mailboxnotenabledforrestapi", "errormailboxnotenabledforrestapi", "mailboxnotsupportedforrestapi"}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - (now or datetime.now(timezone.utc))).total_seconds())


def _error_fields(body) -> tuple[str | None, str, str | None]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, "", None
    inner = error.get("innerError") or error.get("innererror") or {}
    request_id = inner.get("request-id") if isinstance(inner, dict) else None
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    return code, message, request_id


def from_response(status: int, body, headers: Mapping[str, str] | None = None) -> GraphError:
    headers = headers or {}
    code, message, request_id = _error_fields(body)
    request_id = request_id or headers.get("request-id")
    retry_after = parse_retry_after(headers.get("Retry-After"))
    lowered = (code or "").lower()
    kwargs = dict(status=status, code=code, request_id=request_id)
    message = message or f"Graph answered HTTP {status}"
    if lowered in _MAILBOX_CODES:
        return MailboxNotEnabled(message, **kwargs)
    if status == 410 or lowered in _SYNC_STATE_CODES:
        return SyncStateExpired(message, **kwargs)
    if status == 429:
        return Throttled(message, retry_after=retry_after, **kwargs)
    if status in (503, 504):
        return ServiceUnavailable(message, retry_after=retry_after, **kwargs)
    if status == 401:
        return AuthFailed(message, **kwargs)
    if status == 403:
        if message.strip().lower().startswith(ACCESS_POLICY_MESSAGE):  # the one case only the message tells
            return AccessPolicyDenied(message, **kwargs)
        return PermissionMissing(message, **kwargs)
    if status == 404:
        if lowered == "errorinvaliduser":
            return InvalidUser(message, **kwargs)
        return NotFound(message, **kwargs)
    if status == 424:
        return FailedDependency(message, **kwargs)
    if status in (409, 412):
        return Conflict(message, **kwargs)
    if status == 400:
        return BadRequest(message, **kwargs)
    return GraphError(message, retry_after=retry_after, **kwargs)
