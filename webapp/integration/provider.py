"""The one place where Roomsync's integration code calls the Microsoft Graph client (`webapp.graph`).

Everything else in `webapp.integration` speaks to the provider through these functions, so a change of the
client's surface changes only this file. They return small types of our own and raise the client's typed
errors (`webapp.graph.errors`).

Public API:
- `DirectoryUser(id, upn, mail, display_name, given_name, surname, account_enabled, has_mailbox)`,
  `Person(display_name, email)`.
- `configured()` → the client has a tenant, a client id and a credential; `connection_summary()` → what the
  settings page may show about the configuration (tenant, client id, authority host, where the secret comes
  from — never the secret).
- `acquire_token()`; `get_user(key, probe_mailbox=True)`; `has_mailbox(key)`; `search_users(prefix, top)`; `list_rooms()` → room email addresses;
  `room_directory()` → [ProviderRoom(id, email, display_name)] (the pairing form and the room check);
  `get_photo(user_key)` → bytes or None; `list_contacts(user_key, top)` / `list_people(user_key, top)` →
  [Person]; `create_test_event(mailbox, transaction_id)` → event id; `delete_event(mailbox, event_id)`;
  `create_subscription(resource, notification_url, lifecycle_url, client_state, expiration)` → id;
  `delete_subscription(id)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..timeutil import now_utc

REQUEST_RETRY_ATTEMPTS, REQUEST_RETRY_DEADLINE = 2, 8.0


@dataclass(frozen=True)
class DirectoryUser:
    id: str
    upn: str | None
    mail: str | None
    display_name: str | None
    given_name: str | None
    surname: str | None
    account_enabled: bool | None
    has_mailbox: bool | None

    @property
    def email(self) -> str | None:
        return self.mail or self.upn


@dataclass(frozen=True)
class Person:
    display_name: str
    email: str


_REQUEST_CLIENTS: dict = {}


def _client():
    """In a web request (the settings checks, the attendee lookup): a client with a short retry deadline and
    no shared limiter, so a page never waits a minute on throttling. Elsewhere (RQ jobs): the process's
    client with the per-mailbox limiter and the full retry policy."""
    from flask import has_request_context

    from ..graph import graph_client

    if not has_request_context():
        return graph_client()
    from ..graph import GraphClient, RetryPolicy, load_settings

    REQUEST_RETRY = RetryPolicy(max_attempts=REQUEST_RETRY_ATTEMPTS, deadline=REQUEST_RETRY_DEADLINE)

    settings = load_settings()
    settings.check()
    key = (os.getpid(), settings.cache_key())
    client = _REQUEST_CLIENTS.get(key)
    if client is None:
        client = _REQUEST_CLIENTS[key] = GraphClient(settings, retry=REQUEST_RETRY)
    return client


def _settings():
    from ..graph.settings import load_settings

    return load_settings()


def configured() -> bool:
    try:
        return bool(_settings().configured())
    except Exception:  # noqa: BLE001 - an unreadable configuration is "not configured", shown as such
        return False


def connection_summary() -> dict:
    """Safe to render: no secret, only whether one is set and from where."""
    try:
        settings = _settings()
    except Exception:  # noqa: BLE001
        return {"configured": False, "tenant_id": None, "client_id": None, "authority": None,
                "credential": None, "credential_source": None, "sandbox": False}
    has_secret = bool(getattr(settings, "client_secret", None))
    has_certificate = bool(getattr(settings, "certificate_path", None))
    return {
        "configured": configured(),
        "tenant_id": getattr(settings, "tenant_id", None),
        "client_id": getattr(settings, "client_id", None),
        "authority": getattr(settings, "authority", None),
        "credential": "client secret" if has_secret else "certificate" if has_certificate else None,
        "credential_source": getattr(settings, "source", None),
        "sandbox": bool(getattr(settings, "sandbox", False)),
    }


def acquire_token() -> None:
    """An application token (MSAL may serve it from its cache: the credentials it was issued for are the
    configured ones, since the cache is keyed by the settings)."""
    _client().tokens.token()


def _directory_user(user) -> DirectoryUser:
    return DirectoryUser(
        id=user.id, upn=getattr(user, "upn", None), mail=getattr(user, "mail", None),
        display_name=getattr(user, "display_name", None), given_name=getattr(user, "given_name", None),
        surname=getattr(user, "surname", None), account_enabled=getattr(user, "account_enabled", None),
        has_mailbox=getattr(user, "has_mailbox", None),
    )


def get_user(key: str, *, probe_mailbox: bool = True) -> DirectoryUser:
    """With `has_mailbox` probed by default: Graph's user resource alone does not say whether a mailbox
    exists (the probe reads the calendar, so it needs Calendars.Read(Write) besides User.Read.All)."""
    return _directory_user(_client().get_user(key, probe_mailbox=probe_mailbox))


def has_mailbox(key: str) -> bool:
    return _client().has_mailbox(key)


def search_users(prefix: str, top: int = 10) -> list[DirectoryUser]:
    return [_directory_user(u) for u in _client().search_users(prefix, limit=top)]


def list_rooms() -> list[str]:
    return [room.email for room in _client().list_rooms()]


@dataclass(frozen=True)
class ProviderRoom:
    id: str
    email: str
    display_name: str


def room_directory() -> list[ProviderRoom]:
    """Every room of the tenant (all pages), with what pairing needs; rooms without an address are skipped."""
    return [ProviderRoom(id=room.id, email=room.email, display_name=room.display_name or room.email)
            for room in _client().iter_rooms() if room.email]


def get_photo(user_key: str) -> bytes | None:
    return _client().get_photo(user_key)


def _people(items) -> list[Person]:
    out = []
    for item in items:
        email = getattr(item, "email", None)
        if email:
            out.append(Person(display_name=getattr(item, "display_name", None) or email, email=email))
    return out


def list_contacts(user_key: str, top: int = 100) -> list[Person]:
    return _people(_client().list_contacts(user_key, limit=top))


def list_people(user_key: str, top: int = 100) -> list[Person]:
    return _people(_client().list_people(user_key, limit=top))


def create_test_event(mailbox: str, transaction_id: str) -> str:
    """A short private event a week ahead on `mailbox`'s calendar, with no attendees (nobody is invited)."""
    from ..graph.types import EventDraft

    start = (now_utc() + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    draft = EventDraft(subject="Roomsync connection test", start=start, end=start + timedelta(minutes=15),
                       body_text="Created and deleted at once by Roomsync's settings check.", is_private=True,
                       show_as="free", response_requested=False, transaction_id=transaction_id)
    return _client().create_event(mailbox, draft).id


def delete_event(mailbox: str, event_id: str) -> None:
    _client().delete_event(mailbox, event_id)


def create_subscription(resource: str, notification_url: str, lifecycle_url: str, client_state: str,
                        expiration: datetime) -> str:
    subscription = _client().create_subscription(resource, notification_url, expiration, client_state,
                                                 lifecycle_url=lifecycle_url)
    return subscription.id


def delete_subscription(subscription_id: str) -> None:
    _client().delete_subscription(subscription_id)
