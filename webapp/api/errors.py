"""JSON errors of the API: every answer under the blueprint's prefix that is not a success looks like
`{"error": {"code": ..., "message": ..., "fields": {...}}}` (409 adds `"conflicts"`), never an HTML page.

Public API:
- `ApiError(status, code, message, fields=None, headers=None)`: raised by the API's own code (auth, parsing).
- `register(bp)`: installs the handlers on the blueprint:
  booking-domain errors keep their status and code (`ValidationError` → 422 with `fields`, `ConflictError` →
  409 with `conflicts`, `SpaceSyncing` → 409 `space_syncing` with `fields` and `spaces` (the ids of the
  syncing spaces that block the write), `PermissionDenied` → 403, `NotFound` → 404); a repeat rule whose expansion fails
  (too many occurrences, past the year 9999) → 422; every werkzeug HTTP error (404, 405, 413 …) → its status
  with a code; anything else → a logged 500 `internal_error` (a bug: tests show no input reaches it).
  Routing failures (unknown URL, wrong method) happen before a blueprint is chosen, so a
  `before_app_request` hook answers them for paths under the blueprint's prefix.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, default_exceptions

from ..booking.errors import BookingError, ConflictError, SpaceSyncing, ValidationError
from ..booking.recurrence import RecurrenceError
from ..extensions import db
from ..venue import current_venue

# Codes clients can rely on; other HTTP errors get werkzeug's name in snake case ("too_many_requests").
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "invalid_json",
    422: "validation_error",
    500: "internal_error",
}
_PREFIX_KEY = "roomsync_api_url_prefix"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str, fields: dict | None = None, headers=None, **extra):
    body = {"code": code, "message": message, "fields": dict(fields or {}), **extra}
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in headers or ():
        response.headers[name] = value
    return response


def _http_error(error: HTTPException):
    status = error.code or 500
    code = HTTP_CODES.get(status) or (error.name or "error").lower().replace(" ", "_")
    # Keep headers the error carries (Allow on 405, WWW-Authenticate on 401); the body is ours.
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    return error_response(status, code, error.description or error.name, headers=headers)


def register(bp: Blueprint) -> None:
    from . import schemas  # here, not at the top: schemas raises ApiError from this module

    @bp.record_once
    def remember_prefix(state):
        state.app.extensions[_PREFIX_KEY] = state.url_prefix

    @bp.errorhandler(ApiError)
    def api_error(error: ApiError):
        return error_response(error.status, error.code, error.message, error.fields, error.headers.items())

    @bp.errorhandler(ValidationError)
    def validation_error(error: ValidationError):
        return error_response(422, error.code, error.message, error.fields)

    # Flask picks the handler of the most specific class: this one wins over ValidationError's 422.
    @bp.errorhandler(SpaceSyncing)
    def space_syncing(error: SpaceSyncing):
        return error_response(409, error.code, error.message, error.fields, spaces=error.space_ids)

    @bp.errorhandler(ConflictError)
    def conflict_error(error: ConflictError):
        conflicts = schemas.conflict_items(error.conflicts, current_venue().tz)
        return error_response(409, error.code, error.message, conflicts=conflicts)

    @bp.errorhandler(BookingError)
    def booking_error(error: BookingError):
        return error_response(error.status, error.code, error.message)

    @bp.errorhandler(RecurrenceError)
    def recurrence_error(error: RecurrenceError):
        # The rule parsed but its expansion failed (too many occurrences): the client's rule is at fault.
        return error_response(422, "validation_error", str(error), {"rrule": str(error)})

    @bp.errorhandler(OverflowError)
    def date_out_of_range(error: OverflowError):
        # Request dates are bounded by `schemas`, so only a repeat rule expanded to the year 9999 (e.g.
        # yearly, every 78 years, in a zone behind UTC) can reach a date Python cannot represent.
        message = "The repeat rule reaches dates beyond the supported range."
        return error_response(422, "validation_error", message, {"rrule": message})

    # Registered per status code: Flask looks up handlers by code before it looks them up by class, and the
    # application's HTML pages (webapp/errors.py) are registered by code.
    for status in default_exceptions:
        bp.register_error_handler(status, _http_error)

    @bp.errorhandler(Exception)
    def internal_error(error: Exception):
        current_app.logger.exception("Unhandled error in the JSON API: %s %s", request.method, request.path)
        db.session.rollback()
        return error_response(500, "internal_error", "Something went wrong on our side.")

    @bp.before_app_request
    def routing_failure_under_prefix():
        error = request.routing_exception
        if not isinstance(error, HTTPException) or (error.code or 0) < 400:
            return None  # matched, or a redirect werkzeug wants to send
        prefix = current_app.extensions.get(_PREFIX_KEY)
        if not prefix or not (request.path == prefix or request.path.startswith(prefix.rstrip("/") + "/")):
            return None
        return _http_error(error)
