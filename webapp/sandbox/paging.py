"""OData query options shared by every Graph collection the sandbox serves: `$top`, `$skip`/`$skiptoken`,
`@odata.nextLink`, `$count`, `$select`.

Public API (call inside a request; all read `flask.request.args`):

- `selected_fields(known=None, type_name="entity")` → the `$select` list (order kept, blanks dropped) or
  `None` when absent. With `known` given, an unknown name raises 400 `BadRequest` "Could not find a property
  named 'x' on type 'microsoft.graph.<type_name>'." as Graph does.
- `project(doc, fields, always=("id",))` → `doc` reduced to `fields` (plus `always` and every `@odata.*`
  annotation, which Graph keeps: `@odata.etag` stays on a `$select`ed event); `fields=None` returns `doc`.
- `page_window(default_top, max_top)` → `(top, skip)` from `$top` and `$skip`/`$skiptoken`; 400 on a value
  that is not a non-negative integer (and on `$top=0`). `$top` above `max_top` is clamped (Graph pages rather than failing).
- `collection(items, *, context, default_top, max_top, render=None, fields=None, always=("id",),
  skip_param="$skip", count=False, extra=None)` → the response dict
  `{"@odata.context", ["@odata.count"], **extra, "value": [...], ["@odata.nextLink"]}`:
  slices `items` (already filtered and ordered by the caller) to the window, maps each through `render`
  (if given) and then `project(…, fields, always)`, and adds `@odata.nextLink` when items remain.
  `count=True` adds `@odata.count` (the total before paging); pass it when `$count=true` was asked.
- `next_link(skip, skip_param="$skip")` → the absolute URL of the current request with `$skip`/`$skiptoken`
  replaced (every other query option kept, `$top` included), built on `SANDBOX_BASE_URL`.
- `context_url(fragment)` → `"<SANDBOX_BASE_URL>/v1.0/$metadata#<fragment>"`.

Why it behaves so:
- Graph pages server-side and the client must follow `@odata.nextLink` verbatim, carrying the original query
  options ([D:concepts/paging.md]); collections that page with `$skip` (events, calendarView, places) show
  `$skip=N` in the link, directory collections show an opaque `$skiptoken` ([D:api-reference/v1.0/api/
  user-list.md] examples). `skip_param="$skiptoken"` makes an opaque token (clients must not parse it).
- The last page has no `@odata.nextLink` at all (not null), as in every documented example.
"""

from __future__ import annotations

import base64
from typing import Callable, Iterable
from urllib.parse import quote, urlencode

from flask import current_app, request

from .errors import GraphError

_SKIPTOKEN_PREFIX = "RFNwdAIAAQ"  # opaque-looking prefix: clients follow nextLink, they never build it


def context_url(fragment: str) -> str:
    return f"{current_app.config['SANDBOX_BASE_URL'].rstrip('/')}/v1.0/$metadata#{fragment}"


def selected_fields(known: Iterable[str] | None = None, type_name: str = "entity") -> list[str] | None:
    raw = request.args.get("$select")
    if raw is None:
        return None
    fields = [name.strip() for name in raw.split(",") if name.strip()]
    if known is not None:
        known_set = set(known)
        for name in fields:
            if name not in known_set:
                raise GraphError(400, "BadRequest",
                                 f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.")
    return fields


def project(doc: dict, fields: Iterable[str] | None, always: Iterable[str] = ("id",)) -> dict:
    if fields is None:
        return doc
    wanted = set(fields) | set(always)
    return {key: value for key, value in doc.items() if key in wanted or key.startswith("@odata.")}


def _non_negative_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for query option '{name}'.")
    return value


def _decode_skiptoken(token: str) -> int:
    try:
        return _non_negative_int("$skiptoken", base64.urlsafe_b64decode(token[len(_SKIPTOKEN_PREFIX):] + "==").decode())
    except (ValueError, UnicodeDecodeError):
        raise GraphError(400, "BadRequest", "The $skiptoken is invalid or has expired.") from None


def _encode_skiptoken(skip: int) -> str:
    return _SKIPTOKEN_PREFIX + base64.urlsafe_b64encode(str(skip).encode()).decode().rstrip("=")


def page_window(default_top: int, max_top: int) -> tuple[int, int]:
    args = request.args
    top = _non_negative_int("$top", args["$top"]) if "$top" in args else default_top
    if top == 0:
        raise GraphError(400, "BadRequest", "Invalid value '0' for query option '$top'.")
    top = min(top, max_top)
    if "$skiptoken" in args:
        skip = _decode_skiptoken(args["$skiptoken"])
    elif "$skip" in args:
        skip = _non_negative_int("$skip", args["$skip"])
    else:
        skip = 0
    return top, skip


def next_link(skip: int, skip_param: str = "$skip") -> str:
    value = _encode_skiptoken(skip) if skip_param == "$skiptoken" else str(skip)
    pairs = [(k, v) for k, v in request.args.items(multi=True) if k not in ("$skip", "$skiptoken")]
    pairs.append((skip_param, value))
    base = current_app.config["SANDBOX_BASE_URL"].rstrip("/")
    # Keep "$" literal in option names, as Graph's own links do.
    path = quote(request.path, safe="/@:$'(),")
    return f"{base}{path}?{urlencode(pairs, safe='$,')}"


def collection(items: list, *, context: str, default_top: int, max_top: int,
               render: Callable[[object], dict] | None = None, fields: Iterable[str] | None = None,
               always: Iterable[str] = ("id",), skip_param: str = "$skip", count: bool = False,
               extra: dict | None = None) -> dict:
    top, skip = page_window(default_top, max_top)
    window = items[skip:skip + top]
    body: dict = {"@odata.context": context_url(context)}
    if count:
        body["@odata.count"] = len(items)
    body.update(extra or {})
    body["value"] = [project(render(item) if render else item, fields, always) for item in window]
    if skip + top < len(items):
        body["@odata.nextLink"] = next_link(skip + top, skip_param)
    return body
