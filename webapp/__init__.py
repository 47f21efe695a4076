"""Roomsync web application.

Public API: `create_app(config=None)`, the one factory used by `app.py`, `worker.py`, the CLI, benchmarks
and tests. It loads configuration (see `webapp.config`), binds the extensions, registers the blueprints and
the CLI commands.
"""

from __future__ import annotations

import os

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    instance_path = (config or {}).get("INSTANCE_PATH") or os.environ.get("ROOMSYNC_INSTANCE") or None
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    from .config import load_config

    app.config.update(load_config(app.instance_path, config))

    from . import db_engine, models  # noqa: F401  (models: register every table)
    from .extensions import csrf, db, login_manager, migrate

    db.init_app(app)
    db_engine.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"

    from .auth.models import User

    @login_manager.user_loader
    def load_user(user_id: str):
        return db.session.get(User, int(user_id)) if user_id.isdigit() else None

    from . import blueprints, cli, jobs

    blueprints.register(app)
    cli.init_app(app)
    jobs.init_app(app)
    from .sync import outbound

    outbound.init_app(app)  # bookings on paired spaces are pushed to Outlook
    return app
