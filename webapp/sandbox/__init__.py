"""The Microsoft 365 sandbox tenant: a local stand-in for the Microsoft identity platform and Graph v1.0.

A separate system that only shares the repository: nothing here imports Roomsync's own modules
(`webapp.*` outside `webapp.sandbox`). Roomsync's Graph client talks to it over HTTPS exactly as it talks to
Microsoft; tests also mount it in-process.

Public API:
- `create_sandbox_app(config=None)` → a Flask app serving the identity endpoints (`/{tenant}/…`), Graph
  (`/v1.0/…`), the fault-injection admin API (`/_sandbox/…`, its own key) and the Outlook-like page
  (`/outlook/…`).
- `sandbox_state(app=None)` → the `SandboxState` (store, clock, faults, throttling, delivery) of an app.

Configuration keys (all optional): `SANDBOX_DB` (SQLite file of the tenant's state; `":memory:"` in
tests), `SANDBOX_BASE_URL` (how the sandbox names itself in links, default https://127.0.0.1:5001),
`SANDBOX_ADMIN_KEY` (key of the admin API), `SANDBOX_TIME_FACTOR` (divides notification retry delays in
tests), `SANDBOX_SEED` (seed the demo tenant when the store is empty, default True),
`SANDBOX_SUBSCRIPTION_MAX_MINUTES` (maximum subscription lifetime, default 4,230 as for Outlook events).
"""

from __future__ import annotations

from flask import Flask, current_app

from .state import SandboxState

DEFAULTS = {
    "SANDBOX_DB": ":memory:",
    "SANDBOX_BASE_URL": "https://127.0.0.1:5001",
    "SANDBOX_ADMIN_KEY": "sandbox-admin-key",
    "SANDBOX_TIME_FACTOR": 1.0,
    "SANDBOX_SEED": True,
}

# (module, blueprint attribute) in registration order; each module owns its URL space.
BLUEPRINTS = [
    ("identity", "bp"),
    ("graph", "bp"),
    ("admin_api", "bp"),
    ("outlook", "bp"),
]


def create_sandbox_app(config: dict | None = None) -> Flask:
    import importlib

    app = Flask(__name__, template_folder="templates", static_folder="static", static_url_path="/outlook/static")
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    app.json.sort_keys = False  # Graph's JSON keeps its documented key order (@odata.* first)
    state = SandboxState.create(app.config)
    app.extensions["sandbox"] = state
    for module_name, attribute in BLUEPRINTS:
        module = importlib.import_module(f"{__name__}.{module_name}")
        app.register_blueprint(getattr(module, attribute))
    from .errors import register_error_handlers

    register_error_handlers(app)
    return app


def sandbox_state(app: Flask | None = None) -> SandboxState:
    return (app or current_app).extensions["sandbox"]
