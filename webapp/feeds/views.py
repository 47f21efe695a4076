"""The feeds' URLs: the `.ics` files calendar apps subscribe to, and the pages' subscribe and manage fragments.

Public API: `bp` (the "feeds" blueprint, no prefix); `feed_list(user, venue)` → the user's feeds as JSON-ready
dicts (making their tokens if missing; `GET /api/v1/feeds` answers it); `subscribe_urls(token)`;
`body_cache(app)` → the process's `BodyCache` (built bodies by content version).

Endpoints:
- `GET /feeds/<token>.ics` (`feeds.feed`): no sign-in, the token is the key. An unknown, regenerated or
  revoked token, an inactive user or a feed whose space is gone: 404, the same answer as for any URL that does
  not exist. `text/calendar; charset=utf-8`; `ETag` and `Last-Modified` from `data.feed_version` (one
  aggregate query); `If-None-Match` / `If-Modified-Since` answer 304 without building anything; otherwise
  the body of that version comes from the body cache, or is built once and kept there (32 MB per process by
  default, `FEED_BODY_CACHE_BYTES`; 0 turns it off); gzip when the client accepts it (compressed once per
  version, its own ETag, `Vary: Accept-Encoding`). Polling costs (bench/feeds_bench.py, a 3-year space feed
  of about 5,000 occurrences): about 3 ms for a 304 or a cached body, about 80 ms to build one.
- `POST /feeds/subscribe/<kind>/<target_id>` (`feeds.subscribe`): signed in; makes the user's token for that
  feed if missing and answers the `feeds/_links.html` fragment (https and webcal addresses, copy buttons).
- `GET /feeds/panel` (`feeds.panel`): the profile page's "Calendar feeds" card (`feeds/_panel.html`);
  `POST /feeds/panel/create/<kind>/<target_id>`, `POST /feeds/panel/<token_id>/regenerate`,
  `POST /feeds/panel/<token_id>/revoke` change one token and answer the card again (or redirect to the
  profile page without htmx).
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from datetime import timedelta

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.exceptions import NotFound
from werkzeug.http import http_date

from .. import htmx
from ..booking.models import Space
from ..extensions import db
from ..timeutil import now_utc
from ..venue import current_venue
from . import data, ical, tokens
from .models import FEED_KINDS, FeedToken

bp = Blueprint("feeds", __name__)

CONTENT_TYPE = "text/calendar; charset=utf-8"
CACHE_CONTROL = "private, no-cache"  # revalidate each time: a 304 costs one query
LAST_USED_EVERY = timedelta(hours=1)  # how often a poll records itself (a write per poll would not be cheap)
GZIP_MIN_BYTES = 1024
BODY_CACHE_BYTES = 32 * 1024 * 1024  # per process; app.config["FEED_BODY_CACHE_BYTES"] overrides, 0 turns it off


# ---------------------------------------------------------------------------------------------- body cache


class BodyCache:
    """Feed bodies by content version: the ETag (which `data.feed_version` derives from everything the body
    shows) and the address the body's links start with. Each subscriber has a URL of their own, so after a
    change every subscriber of a space fetches the same new body: it is built once, then served from here
    until the version changes. A body is never served for a version other than the one it was built for, so
    the cache is exactly as fresh as the ETag; entries of old versions age out (least recently used first,
    within `max_bytes`). Thread-safe; one per process (`body_cache(app)`)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, list] = OrderedDict()  # key → [body, gzipped body or None]
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple, body: bytes) -> None:
        if len(body) > self.max_bytes // 4:
            return  # one huge feed must not flush everything else
        with self._lock:
            if key not in self._entries:
                self._entries[key] = [body, None]
                self._bytes += len(body)
                self._trim()

    def gzipped(self, key: tuple, body: bytes) -> bytes:
        """`body` gzipped, compressed once per version (mtime 0: the same bytes every time)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] is not None:
                return entry[1]
        zipped = gzip.compress(body, compresslevel=5, mtime=0)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] is None:
                entry[1] = zipped
                self._bytes += len(zipped)
                self._trim()
        return zipped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _trim(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            _, (body, zipped) = self._entries.popitem(last=False)
            self._bytes -= len(body) + (len(zipped) if zipped else 0)


def body_cache(app) -> BodyCache:
    cache = app.extensions.get("roomsync_feed_bodies")
    if cache is None:
        cache = app.extensions.setdefault(
            "roomsync_feed_bodies", BodyCache(int(app.config.get("FEED_BODY_CACHE_BYTES", BODY_CACHE_BYTES)))
        )
    return cache


# ---------------------------------------------------------------------------------------------- the feed


def _booking_url_maker():
    marker = 987654321
    base = url_for("booking.detail", booking_id=marker, _external=True)
    head, tail = base.split(str(marker), 1)
    return lambda booking_id: f"{head}{booking_id}{tail}"


def _not_modified(etag: str, last_modified) -> bool:
    candidates = request.if_none_match
    if candidates:
        plain = etag.strip('"')
        # Ours, or its gzip variant (`"…-gz"`), whichever the client kept; `*` matches too.
        return candidates.star_tag or any(tag in (plain, plain + "-gz") for tag in candidates.as_set(include_weak=True))
    since = request.if_modified_since
    return since is not None and last_modified <= since


def _last_used(token: FeedToken) -> None:
    now = now_utc()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        token.last_used_at = now
        db.session.commit()


@bp.get("/feeds/<token>.ics")
def feed(token: str):
    row = tokens.resolve(token)
    if row is None:
        abort(404)
    venue = current_venue()
    names = data.space_names(venue)  # the ETag needs them; a space feed's space must be one of them
    if row.kind == "space":
        if row.target_id not in names:
            abort(404)
        spec = data.Feed("space", row.user, venue, data.SpaceRef(row.target_id, names[row.target_id]))
    else:
        tokens.check_target(row.user, row.kind, row.target_id, venue)
        spec = data.Feed(row.kind, row.user, venue)
    window = data.feed_window(venue, current_app.config["FEED_PAST_DAYS"], current_app.config["FEED_FUTURE_DAYS"])
    etag, last_modified = data.feed_version(spec, window, names)
    _last_used(row)
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "Last-Modified": http_date(last_modified),
        "Vary": "Accept-Encoding",
        "X-Robots-Tag": "noindex",
    }
    use_gzip = request.accept_encodings["gzip"] > 0
    tagged = etag[:-1] + '-gz"' if use_gzip else etag
    if _not_modified(etag, last_modified):
        return Response(status=304, headers={**headers, "ETag": tagged})
    cache = body_cache(current_app)
    key = (etag, request.host_url)  # the body's booking links start with the address it was asked at
    body = cache.get(key) if cache.max_bytes else None
    if body is None:
        body = ical.build_calendar(data.feed_calendar(spec, window, _booking_url_maker(), last_modified))
        if cache.max_bytes:
            cache.put(key, body)
    headers["ETag"] = etag
    if use_gzip and len(body) >= GZIP_MIN_BYTES:
        body = cache.gzipped(key, body)
        headers["Content-Encoding"] = "gzip"
        headers["ETag"] = tagged
    return Response(body, status=200, headers=headers, content_type=CONTENT_TYPE)


# ---------------------------------------------------------------------------------------------- links


def subscribe_urls(token: FeedToken) -> dict:
    https = url_for("feeds.feed", token=tokens.plaintext(token), _external=True)
    return {"url": https, "webcal": "webcal://" + https.split("://", 1)[1]}


def _feed_name(kind: str, target, venue) -> str:
    if kind == "space":
        return target.name
    if kind == "venue":
        return f"{venue.name}: all spaces"
    return "My bookings"


def feed_list(user, venue) -> list[dict]:
    """The personal feed, the venue feed and one per active space, each with its URLs (tokens made if
    missing)."""
    wanted = [("personal", user.id, None), ("venue", venue.id, None)]
    spaces = db.session.scalars(select(Space).where(Space.venue_id == venue.id, Space.active).order_by(Space.position, Space.id))
    wanted += [("space", space.id, space) for space in spaces]
    result = []
    for kind, target_id, space in wanted:
        token = tokens.feed_token(user, kind, target_id)
        item = {"kind": kind, "name": _feed_name(kind, space, venue), "space_id": space.id if space else None}
        item.update(subscribe_urls(token))
        result.append(item)
    return result


def _target_or_404(kind: str, target_id: int):
    if kind not in FEED_KINDS:
        abort(404)
    return tokens.check_target(current_user, kind, target_id, current_venue())


@bp.post("/feeds/subscribe/<kind>/<int:target_id>")
@login_required
def subscribe(kind: str, target_id: int):
    venue = current_venue()
    target = _target_or_404(kind, target_id)
    token = tokens.feed_token(current_user, kind, target_id)
    fragment = render_template("feeds/_links.html", urls=subscribe_urls(token), name=_feed_name(kind, target, venue))
    return _as_page(fragment), 200, {"Cache-Control": "no-store"}


def _as_page(fragment: str) -> str:
    """htmx swaps the fragment in; a plain form post (no JavaScript) gets it inside a page."""
    return fragment if htmx.is_htmx() else render_template("feeds/page.html", fragment=fragment)


# ---------------------------------------------------------------------------------------------- profile card


def _panel(status: int = 200):
    venue = current_venue()
    mine = {(t.kind, t.target_id): t for t in db.session.scalars(select(FeedToken).where(FeedToken.user_id == current_user.id))}
    rows = [("personal", current_user.id, "My bookings", "Every booking you hold or attend."),
            ("venue", venue.id, f"{venue.name}: all spaces", "Every booking of every space, one event each.")]
    space_names = dict(db.session.execute(select(Space.id, Space.name).where(Space.venue_id == venue.id)).all())
    for (kind, target_id), token in sorted(mine.items(), key=lambda item: space_names.get(item[0][1], "")):
        if kind == "space" and target_id in space_names:
            rows.append(("space", target_id, space_names[target_id], "The bookings of this space."))
    feeds = []
    for kind, target_id, name, hint in rows:
        token = mine.get((kind, target_id))
        feeds.append({"kind": kind, "target_id": target_id, "name": name, "hint": hint, "token": token,
                      "urls": subscribe_urls(token) if token else None})
    fragment = render_template("feeds/_panel.html", feeds=feeds, tz=venue.tz)
    return _as_page(fragment), status, {"Cache-Control": "no-store"}


def _panel_answer():
    if htmx.is_htmx():
        return _panel()
    return htmx.redirect(url_for("profile.index") + "#feeds")


@bp.get("/feeds/panel")
@login_required
def panel():
    return _panel()


@bp.post("/feeds/panel/create/<kind>/<int:target_id>")
@login_required
def panel_create(kind: str, target_id: int):
    _target_or_404(kind, target_id)
    tokens.feed_token(current_user, kind, target_id)
    return _panel_answer()


def _own_token(token_id: int) -> FeedToken:
    token = db.session.get(FeedToken, token_id) if 0 < token_id < 2**31 else None
    if token is None or token.user_id != current_user.id:
        raise NotFound()
    return token


@bp.post("/feeds/panel/<int:token_id>/regenerate")
@login_required
def panel_regenerate(token_id: int):
    tokens.regenerate(_own_token(token_id))
    return _panel_answer()


@bp.post("/feeds/panel/<int:token_id>/revoke")
@login_required
def panel_revoke(token_id: int):
    tokens.revoke(_own_token(token_id))
    return _panel_answer()

