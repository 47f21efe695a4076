"""Bearer-token authentication of the JSON API (no cookies, so no CSRF either).

Public API:
- `protect(bp)`: every view of `bp` requires `Authorization: Bearer <token>`; a missing, unknown or revoked
  token or an inactive user answers 401 `unauthorized` with `WWW-Authenticate: Bearer`.
- `api_user()`: the user the current request's token belongs to.

A token's `last_used_at` is written at most once a minute, so a busy client does not make every read a
write.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, g, request
from sqlalchemy import or_, update

from ..auth.models import ApiToken, User, token_for_plaintext
from ..db_engine import begin_serialised_write
from ..extensions import db
from ..timeutil import now_utc
from .errors import ApiError

LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_user() -> User:
    return g.api_user


def _unauthorized(message: str, challenge: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def _bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Send an API token: Authorization: Bearer <token>.", 'Bearer realm="roomsync"')
    return token


def _record_use(token: ApiToken) -> None:
    now = now_utc()
    cutoff = now - LAST_USED_RESOLUTION
    if token.last_used_at is not None and token.last_used_at > cutoff:
        return
    token_id = token.id  # read before the commit below expires the instance
    begin_serialised_write()
    # The condition is repeated in the UPDATE so concurrent requests write it once between them.
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= cutoff))
        .values(last_used_at=now)
    )
    db.session.commit()


def authenticate() -> None:
    token = token_for_plaintext(_bearer_token())
    if token is None:
        raise _unauthorized(
            "The API token is unknown, revoked, or its user is inactive.",
            'Bearer realm="roomsync", error="invalid_token"',
        )
    user = token.user
    _record_use(token)
    g.api_user = user


def protect(bp: Blueprint) -> None:
    bp.before_request(authenticate)
