"""Registers every blueprint; the one list of the application's URL spaces.

Public API: `register(app)`.
"""

from __future__ import annotations

import importlib

from flask import Flask

# (module, attribute, url_prefix)
BLUEPRINTS = [
    ("webapp.auth.views", "bp", None),
    ("webapp.auth.profile", "bp", "/profile"),
    ("webapp.booking.views", "bp", None),
    ("webapp.admin.views", "bp", "/admin"),
    ("webapp.api.views", "bp", "/api/v1"),
    ("webapp.integration.views", "bp", None),  # /admin/integration/
    ("webapp.integration.views", "people_bp", None),  # /people/…
    ("webapp.integration.views", "webhooks_bp", None),  # /webhooks/graph
    ("webapp.sync.views", "bp", "/admin/sync"),
    ("webapp.notify.views", "bp", "/admin/outbox"),
    ("webapp.kiosk.views", "bp", None),  # /kiosk, /kiosk/panel…, /kiosk/lobby… (device cookie)
    ("webapp.kiosk.admin_views", "bp", "/admin/devices"),
    ("webapp.feeds.views", "bp", None),  # /feeds/<token>.ics, subscribe and profile fragments
]


def register(app: Flask) -> None:
    for module_name, attribute, prefix in BLUEPRINTS:
        module = importlib.import_module(module_name)
        app.register_blueprint(getattr(module, attribute), url_prefix=prefix)
    from .errors import register_error_pages

    register_error_pages(app)
