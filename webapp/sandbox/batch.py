"""JSON batching: `POST /v1.0/$batch` on `graph.bp`.

Public API: the route. Behaviour ([D:concepts/json-batching.md], graph-facts §5.2):
- Body `{"requests": [{"id", "method", "url", "headers"?, "body"?, "dependsOn"?}]}`; at most 20 requests;
  ids unique (case-insensitive); `url` relative to /v1.0 (with or without a leading "/"); a `body` needs
  `headers` with `Content-Type`; `dependsOn` must name other requests of the batch. Any of these broken →
  the whole batch answers 400 (it is malformed); otherwise 200 with one response per request.
- Each request is dispatched through this same app as its own HTTP request carrying the caller's
  `Authorization` header, so authentication, permissions, throttling and faults apply to each one (a
  throttled request answers 429 inside a 200 batch).
- Requests run one at a time, dependencies first; a request whose dependency failed (status >= 400, or
  itself skipped) answers 424 Failed Dependency without running.
- Responses are returned in an order that is deliberately not the request order (the docs: "might appear
  in a different order"), so clients correlate by `id`.
- Response bodies: JSON as JSON, other content base64-encoded, none for an empty body.
"""

from __future__ import annotations

import base64
import hashlib
import json

from flask import current_app, request
from werkzeug.test import Client

from .auth import current_app_doc
from .errors import GraphError
from .graph import bp

MAX_REQUESTS = 20
_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}
_KEPT_HEADERS = ("Content-Type", "Retry-After", "Location", "Preference-Applied", "ETag", "WWW-Authenticate")


def _malformed(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _validated(payload) -> list[dict]:
    requests = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(requests, list) or not requests:
        raise _malformed("The batch request must contain a non-empty 'requests' array.")
    if len(requests) > MAX_REQUESTS:
        raise _malformed(f"The batch request exceeds the maximum of {MAX_REQUESTS} requests.")
    seen = set()
    for item in requests:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item.get(k) for k in
                                                 ("id", "method", "url")):
            raise _malformed("Each request needs an id, a method and a url.")
        if item["id"].lower() in seen:
            raise _malformed(f"Request id '{item['id']}' is not unique in the batch.")
        seen.add(item["id"].lower())
        if item["method"].upper() not in _METHODS:
            raise _malformed(f"Invalid method '{item['method']}'.")
        if "://" in item["url"] or item["url"].lstrip("/").lower().startswith(("v1.0/", "beta/", "$batch")):
            raise _malformed("The url of a batch request must be relative, such as '/users'.")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict):
            raise _malformed("headers must be an object.")
        if "body" in item and not any(k.lower() == "content-type" for k in headers):
            raise _malformed("A request with a body needs a Content-Type header.")
        depends = item.get("dependsOn", [])
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise _malformed("dependsOn must be an array of request ids.")
    ids = {item["id"].lower() for item in requests}
    for item in requests:
        for dependency in item.get("dependsOn", []):
            if dependency.lower() not in ids or dependency.lower() == item["id"].lower():
                raise _malformed(f"dependsOn '{dependency}' does not name another request of the batch.")
    return requests


def _run_order(requests: list[dict]) -> list[dict]:
    by_id = {item["id"].lower(): item for item in requests}
    ordered, placed, visiting = [], set(), set()

    def place(item):
        key = item["id"].lower()
        if key in placed:
            return
        if key in visiting:
            raise _malformed("dependsOn forms a cycle.")
        visiting.add(key)
        for dependency in item.get("dependsOn", []):
            place(by_id[dependency.lower()])
        visiting.discard(key)
        placed.add(key)
        ordered.append(item)

    for item in requests:
        place(item)
    return ordered


def _dispatch(client: Client, item: dict) -> dict:
    headers = {k: str(v) for k, v in (item.get("headers") or {}).items()}
    if request.headers.get("Authorization"):
        headers["Authorization"] = request.headers["Authorization"]
    body = item.get("body")
    data = None
    if body is not None:
        data = json.dumps(body) if not isinstance(body, str) else body
    response = client.open("/v1.0/" + item["url"].lstrip("/"), method=item["method"].upper(), headers=headers,
                           data=data, base_url=request.host_url)
    result = {"id": item["id"], "status": response.status_code,
              "headers": {k: v for k, v in response.headers.items() if k in _KEPT_HEADERS}}
    raw = response.get_data()
    if raw:
        if "json" in (response.headers.get("Content-Type") or ""):
            result["body"] = json.loads(raw)
        else:
            result["body"] = base64.b64encode(raw).decode()
    return result


def _failed_dependency(item: dict) -> dict:
    return {"id": item["id"], "status": 424, "headers": {"Content-Type": "application/json"},
            "body": {"error": {"code": "FailedDependency",
                               "message": "The request could not run because a request it depends on failed."}}}


@bp.post("/$batch")
def batch():
    current_app_doc()  # the batch itself needs a valid token; permissions are checked per request
    try:
        payload = json.loads(request.get_data() or b"null")
    except ValueError:
        raise _malformed("The batch request body is not valid JSON.") from None
    requests = _validated(payload)
    client = Client(current_app._get_current_object())
    statuses: dict[str, int] = {}
    responses = []
    for item in _run_order(requests):
        if any(statuses.get(d.lower(), 500) >= 400 for d in item.get("dependsOn", [])):
            result = _failed_dependency(item)
        else:
            result = _dispatch(client, item)
        statuses[item["id"].lower()] = result["status"]
        responses.append(result)
    responses.sort(key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())
    return {"responses": responses}, 200
