"""HTML error pages for the staff site (the JSON API has its own handlers in `api.errors`).

Public API: `register_error_pages(app)`.
"""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError


def register_error_pages(app: Flask) -> None:
    def page(status: int, title: str, message: str):
        return render_template("error.html", status=status, title=title, message=message), status

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return page(400, "Form expired", "The form was open too long or came from elsewhere. Reload and try again.")

    @app.errorhandler(400)
    def bad_request(error):
        return page(400, "Bad request", getattr(error, "description", "") or "The request could not be understood.")

    @app.errorhandler(403)
    def forbidden(error):
        return page(403, "Not allowed", "You do not have permission to do that.")

    @app.errorhandler(404)
    def not_found(error):
        return page(404, "Not found", f"There is nothing at {request.path}.")

    @app.errorhandler(405)
    def method_not_allowed(error):
        return page(405, "Not allowed", "That method is not allowed here.")

    @app.errorhandler(413)
    def too_large(error):
        return page(413, "Too large", "The request is larger than Roomsync accepts.")
