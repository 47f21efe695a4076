"""Graph-shaped errors.

Public API: `GraphError(status, code, message, headers=None)` — raise it anywhere in a Graph view;
`graph_error_response(status, code, message, headers=None)`; `register_error_handlers(app)` (Graph paths
answer Graph JSON for every error, including 404/405 of unknown routes).

Shape (graph-facts §5.3): {"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def graph_error_response(status: int, code: str, message: str, headers: dict | None = None):
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request.headers.get("client-request-id", request_id),
            },
        }
    }
    response = jsonify(body)
    response.status_code = status
    response.headers["request-id"] = request_id
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


_HTTP_CODES = {400: "BadRequest", 404: "ResourceNotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge",
               415: "UnsupportedMediaType"}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(GraphError)
    def graph_error(error: GraphError):
        return graph_error_response(error.status, error.code, error.message, error.headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if request.path.startswith("/v1.0") or request.path.startswith("/_sandbox"):
            code = _HTTP_CODES.get(error.code or 500, "generalException")
            return graph_error_response(error.code or 500, code, error.description or code)
        return error
