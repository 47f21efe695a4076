"""The one place that knows htmx's HTTP header names.

Public API: `is_htmx()`, `is_boosted()`, `hx_target()`, `trigger(response, event, detail=None)`,
`redirect(response_or_none, url)`, `refresh()`, and the header-name constants.
"""

from __future__ import annotations

import json

from flask import Response, make_response, request

HX_REQUEST = "HX-Request"
HX_BOOSTED = "HX-Boosted"
HX_TARGET = "HX-Target"
HX_TRIGGER = "HX-Trigger"
HX_REDIRECT = "HX-Redirect"
HX_REFRESH = "HX-Refresh"
HX_RETARGET = "HX-Retarget"
HX_RESWAP = "HX-Reswap"


def is_htmx() -> bool:
    return request.headers.get(HX_REQUEST) == "true"


def is_boosted() -> bool:
    return request.headers.get(HX_BOOSTED) == "true"


def hx_target() -> str | None:
    return request.headers.get(HX_TARGET)


def trigger(response: Response, event: str, detail=None) -> Response:
    response.headers[HX_TRIGGER] = json.dumps({event: detail}) if detail is not None else event
    return response


def redirect(url: str) -> Response:
    """Full-page navigation after an htmx request (a 200 with HX-Redirect), a 303 otherwise."""
    if is_htmx():
        response = make_response("", 200)
        response.headers[HX_REDIRECT] = url
        return response
    response = make_response("", 303)
    response.headers["Location"] = url
    return response


def retarget(response: Response, selector: str, swap: str = "outerHTML") -> Response:
    response.headers[HX_RETARGET] = selector
    response.headers[HX_RESWAP] = swap
    return response
