"""Feed tokens: the secret in each feed's URL, one per user and feed, revocable and regenerable.

Public API:
- `feed_token(user, kind, target_id)` → FeedToken, made if missing (commits).
- `existing_token(user, kind, target_id)` → FeedToken | None.
- `regenerate(token)` → FeedToken (a new secret; the old URL answers 404 at once; commits).
- `revoke(token)` (deletes it; commits).
- `plaintext(token)` → the URL secret; `resolve(plaintext)` → FeedToken | None (None for anything that is
  not a live token of an active user).
- `check_target(user, kind, target_id, venue)` → the Space / Venue / User the feed shows, or raises NotFound.

A token is `selector` + `verifier`: the selector is random and stored (unique), the verifier is an HMAC-SHA256
of the selector under the app's SECRET_KEY and never stored. The URL can be shown again on the profile page
and by `GET /api/v1/feeds` (a stored hash could not be turned back into a URL), yet a copy of the database
alone opens no feed. Changing SECRET_KEY changes every feed URL (the old ones answer 404).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from werkzeug.exceptions import NotFound

from ..auth.models import User
from ..booking.models import Space, Venue
from ..extensions import db
from ..timeutil import now_utc
from .models import FEED_KINDS, FeedToken

SELECTOR_LENGTH = 16
VERIFIER_LENGTH = 27  # 160 bits of the HMAC, base64url


def _verifier(selector: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    mac = hmac.new(key, b"roomsync-feed:" + selector.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")[:VERIFIER_LENGTH]


def _new_selector() -> str:
    return secrets.token_urlsafe(12)[:SELECTOR_LENGTH]  # 16 url-safe characters, 96 bits


def plaintext(token: FeedToken) -> str:
    return token.selector + _verifier(token.selector)


def resolve(text: str) -> FeedToken | None:
    if not isinstance(text, str) or len(text) != SELECTOR_LENGTH + VERIFIER_LENGTH:
        return None
    selector, verifier = text[:SELECTOR_LENGTH], text[SELECTOR_LENGTH:]
    # The user comes with the token (one query): every poll needs both.
    token = db.session.scalar(select(FeedToken).options(joinedload(FeedToken.user)).where(FeedToken.selector == selector))
    # Compared even when no row matched, so timing does not tell a known selector from an unknown one.
    expected = _verifier(selector)
    if not hmac.compare_digest(expected, verifier) or token is None or not token.user.active:
        return None
    return token


def check_target(user: User, kind: str, target_id: int, venue: Venue):
    """What the feed shows, if `user` may have it: a space of the venue, the venue, or the user's own
    bookings."""
    if kind == "space":
        space = db.session.get(Space, target_id) if 0 < target_id < 2**31 else None
        if space is None or space.venue_id != venue.id:
            raise NotFound()
        return space
    if kind == "venue":
        if target_id != venue.id:
            raise NotFound()
        return venue
    if kind == "personal":
        if target_id != user.id:
            raise NotFound()
        return user
    raise NotFound()


def existing_token(user: User, kind: str, target_id: int) -> FeedToken | None:
    return db.session.scalar(
        select(FeedToken).where(FeedToken.user_id == user.id, FeedToken.kind == kind, FeedToken.target_id == target_id)
    )


def feed_token(user: User, kind: str, target_id: int) -> FeedToken:
    if kind not in FEED_KINDS:
        raise ValueError(f"unknown feed kind {kind!r}")
    token = existing_token(user, kind, target_id)
    if token is not None:
        return token
    token = FeedToken(user_id=user.id, kind=kind, target_id=target_id, selector=_new_selector())
    db.session.add(token)
    try:
        db.session.commit()
    except IntegrityError:  # the same user asked twice at once: the other request made it
        db.session.rollback()
        token = existing_token(user, kind, target_id)
        if token is None:
            raise
    return token


def regenerate(token: FeedToken) -> FeedToken:
    token.selector = _new_selector()
    token.created_at = now_utc()
    token.last_used_at = None
    db.session.commit()
    return token


def revoke(token: FeedToken) -> None:
    db.session.delete(token)
    db.session.commit()
