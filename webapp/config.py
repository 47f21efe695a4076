"""Configuration from the environment (twelve-factor): every setting has an embedded default.

Public API: `load_config(instance_path, overrides)` returns the dict `create_app` applies.

Environment variables (all optional):
- `SECRET_KEY`: signs sessions and CSRF tokens. Default: a random key kept in `instance/secret_key`.
- `DATABASE_URL`: SQLAlchemy URL; `postgresql://…` selects PostgreSQL (driver psycopg 3).
  Default: `sqlite:///instance/roomsync.sqlite3`.
- `REDIS_URL`: Redis for the RQ queues. Default: `redis://127.0.0.1:6379/0` (`make run` starts an embedded
  server and sets it).
- `ROOMSYNC_RQ_QUEUE`: name of the RQ queue (default `roomsync`).
- `ROOMSYNC_SYNC_JOBS`: `1` runs jobs inline instead of enqueueing (tests and one-off scripts).
- `ROOMSYNC_SYNC_LEASE_SECONDS` (120): how long a worker's claim on an initial sync lasts without renewal (a
  killed worker's run is resumed by another once it lapses); `ROOMSYNC_SYNC_SWEEP_SECONDS` (30): how often the
  cron process looks for such runs (and for live-sync work left behind); `ROOMSYNC_SYNC_RECONCILE_SECONDS`
  (900): how often each live pair is reconciled with its room (a delta round, then the parity audit);
  `ROOMSYNC_SYNC_THREADS` (4): how many pairs' notifications one worker processes at once (a job takes its own
  pair, and threads take other pairs' waiting work; 1 = one pair per job).
- `ROOMSYNC_FEED_PAST_DAYS` (30), `ROOMSYNC_FEED_FUTURE_DAYS` (365): the window of the iCalendar feeds, in days
  before and after today (see `webapp.feeds`).
- `SESSION_COOKIE_SECURE`: `1` behind HTTPS.
- `PUBLIC_BASE_URL`: the address at which the provider reaches Roomsync's webhooks (`make run` sets
  http://127.0.0.1:$PORT, which the local sandbox accepts).
- `GRAPH_*`: the Microsoft 365 tenant, read by `webapp.graph.settings` (see there).
- `SMTP_URL` (`smtp://user:password@host:port`, `smtp+starttls://…`, `smtps://…`): the mail settings in one
  variable (`mail_from_smtp_url`); it wins over the separate ones below.
- `MAIL_SERVER`, `MAIL_PORT`, `MAIL_USERNAME`, `MAIL_PASSWORD`, `MAIL_STARTTLS`, `MAIL_SSL`, `MAIL_CA_BUNDLE`,
  `MAIL_FROM`, `MAIL_TIMEOUT`: outgoing mail, read by `webapp.notify.mailer` (see there). No `MAIL_SERVER`
  (the default): emails stay in the admin outbox page.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def normalise_database_url(url: str) -> str:
    """Accept the common `postgres://` and `postgresql://` spellings and select psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _secret_key(instance_path: Path) -> str:
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def mail_from_smtp_url(url: str) -> dict:
    """`SMTP_URL` → the MAIL_* settings it stands for: `smtp://[user[:password]@]host[:port]` (plain, or
    `?starttls=1`), `smtp+starttls://…` (STARTTLS) or `smtps://…` (implicit TLS); user and password
    percent-decoded. Raises ValueError for anything else."""
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://user:password@host:587 (or smtps://, smtp+starttls://)")
    starttls = scheme == "smtp+starttls" or parse_qs(parts.query).get("starttls", ["0"])[0] in ("1", "true")
    return {"MAIL_SERVER": parts.hostname, "MAIL_PORT": str(parts.port or ""),
            "MAIL_USERNAME": unquote(parts.username or ""), "MAIL_PASSWORD": unquote(parts.password or ""),
            "MAIL_SSL": scheme == "smtps", "MAIL_STARTTLS": starttls}


def load_config(instance_path: str, overrides: dict | None = None) -> dict:
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    overrides = dict(overrides or {})
    default_db = f"sqlite:///{instance / 'roomsync.sqlite3'}"
    config = {
        "SECRET_KEY": overrides.pop("SECRET_KEY", None) or _secret_key(instance),
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(
            overrides.pop("DATABASE_URL", None) or os.environ.get("DATABASE_URL") or default_db
        ),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "RQ_QUEUE": os.environ.get("ROOMSYNC_RQ_QUEUE", "roomsync"),
        "SYNC_JOBS": os.environ.get("ROOMSYNC_SYNC_JOBS") == "1",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": os.environ.get("SESSION_COOKIE_SECURE") == "1",
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", ""),
        "SYNC_LEASE_SECONDS": float(os.environ.get("ROOMSYNC_SYNC_LEASE_SECONDS", "120")),
        "SYNC_SWEEP_SECONDS": int(os.environ.get("ROOMSYNC_SYNC_SWEEP_SECONDS", "30")),
        "SYNC_RECONCILE_SECONDS": int(os.environ.get("ROOMSYNC_SYNC_RECONCILE_SECONDS", "900")),
        "SYNC_THREADS": int(os.environ.get("ROOMSYNC_SYNC_THREADS", "4")),
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", ""),
        "MAIL_PORT": os.environ.get("MAIL_PORT", ""),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD", ""),
        "MAIL_STARTTLS": os.environ.get("MAIL_STARTTLS") == "1",
        "MAIL_SSL": os.environ.get("MAIL_SSL") == "1",
        "MAIL_CA_BUNDLE": os.environ.get("MAIL_CA_BUNDLE", ""),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Roomsync <roomsync@localhost>"),
        "MAIL_TIMEOUT": os.environ.get("MAIL_TIMEOUT", "10"),
        **(mail_from_smtp_url(os.environ["SMTP_URL"]) if os.environ.get("SMTP_URL") else {}),
        "FEED_PAST_DAYS": int(os.environ.get("ROOMSYNC_FEED_PAST_DAYS", "30")),
        "FEED_FUTURE_DAYS": int(os.environ.get("ROOMSYNC_FEED_FUTURE_DAYS", "365")),
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": 1024 * 1024,
    }
    config.update(overrides)
    if "DATABASE_URL" in config:
        config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(config.pop("DATABASE_URL"))
    return config
