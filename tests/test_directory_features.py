"""Directory features against the sandbox tenant: Roomsync users made from the directory when a provider user
first appears as an organizer ("Unknown" names without directory access), the link kept and refreshed, the
cached active-calendar check with its expiry, the attendee typeahead (sources, cache, per-user rate limit)
and synced photos with the initials fallback.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from webapp.auth.models import User
from webapp.extensions import db
from webapp.graph.errors import ServiceUnavailable
from webapp.integration import cache, jobs, operations, provider
from webapp.integration.models import IntegrationSettings, ProviderIdentity
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL, user_id_for

PRIYA = "priya.shah@roomsync.test"
TOM = "tom.baker@roomsync.test"  # no photo in the sandbox
IVY = "ivy.chen@roomsync.test"  # no mailbox


@pytest.fixture
def integration(make_venue):
    """An enabled integration; returns a setter for its toggles."""
    venue = make_venue()
    settings = IntegrationSettings(venue_id=venue.id, butler_email=DEMO_BUTLER_EMAIL, enabled=True,
                                   allow_directory_search=True, sync_photos=True)
    db.session.add(settings)
    db.session.commit()

    def set_(**values):
        for name, value in values.items():
            setattr(settings, name, value)
        db.session.commit()
        return settings

    return set_


@pytest.fixture
def calls(monkeypatch):
    """Counts the provider adapter's calls by name (they still reach the sandbox)."""
    counted: dict[str, int] = {}
    for name in ("get_user", "search_users", "list_contacts", "list_people", "get_photo"):
        original = getattr(provider, name)

        def wrapper(*args, _name=name, _original=original, **kwargs):
            counted[_name] = counted.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(provider, name, wrapper)
    return counted


def identity_of(user) -> ProviderIdentity:
    return db.session.scalar(select(ProviderIdentity).where(ProviderIdentity.user_id == user.id))


# ---------------------------------------------------------------------------------------------- provider users


def test_an_organizer_seen_first_becomes_a_user_with_directory_names_and_a_link(connected, integration, calls):
    user = operations.user_for_provider_identity(PRIYA.upper(), display_name="Priya S.")
    db.session.commit()
    assert (user.email, user.first_name, user.last_name, user.role) == (PRIYA, "Priya", "Shah", "member")
    assert user.password_hash is None  # they sign in some other way, if ever
    link = identity_of(user)
    assert link.provider_user_id == user_id_for(PRIYA)
    assert link.upn == PRIYA and link.has_mailbox is True and link.account_enabled is True
    # The same person again, by provider id: the same user, no new directory read (the link is fresh).
    again = operations.user_for_provider_identity("other-alias@roomsync.test", provider_user_id=user_id_for(PRIYA))
    assert again.id == user.id and calls["get_user"] == 1
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


def test_without_directory_access_names_are_unknown_and_the_directory_is_not_read(
        connected, integration, monkeypatch):
    integration(allow_directory_search=False)
    monkeypatch.setattr(provider, "get_user", lambda *a, **k: pytest.fail("the directory must not be read"))
    user = operations.user_for_provider_identity(TOM, provider_user_id=user_id_for(TOM))
    db.session.commit()
    assert (user.first_name, user.last_name) == ("Unknown", "Unknown")
    assert identity_of(user).provider_user_id == user_id_for(TOM)


def test_the_link_is_refreshed_when_stale_and_unknown_names_are_filled_in(connected, integration, clock, calls):
    integration(allow_directory_search=False)
    user = operations.user_for_provider_identity(TOM)
    db.session.commit()
    assert user.first_name == "Unknown" and calls.get("get_user", 0) == 0
    integration(allow_directory_search=True)
    operations.user_for_provider_identity(TOM)  # never checked yet: read now
    db.session.commit()
    assert (user.first_name, user.last_name) == ("Tom", "Baker") and calls["get_user"] == 1
    clock.tick(timedelta(hours=23))
    operations.user_for_provider_identity(TOM)
    assert calls["get_user"] == 1  # still fresh
    user.first_name = "Thomas"  # changed in Roomsync: the directory does not overwrite it
    db.session.commit()
    clock.tick(timedelta(hours=2))
    operations.user_for_provider_identity(TOM)
    db.session.commit()
    assert calls["get_user"] == 2 and user.first_name == "Thomas"
    assert identity_of(user).checked_at == operations.now_utc()


def test_refresh_job_updates_link_and_photo(connected, integration, make_user):
    user = make_user(PRIYA, first_name="Unknown", last_name="Unknown")
    jobs.refresh_user_identity(user.id)
    db.session.expire_all()
    assert (user.first_name, user.last_name) == ("Priya", "Shah")
    assert identity_of(user).provider_user_id == user_id_for(PRIYA)
    photo = operations.photo_for(user.id)
    assert photo is not None and photo.content_type == "image/png" and photo.data.startswith(b"\x89PNG")


# ---------------------------------------------------------------------------------------------- active calendar


def test_active_calendar_is_cached_for_an_hour(connected, integration, make_user, clock, calls):
    priya, ivy = make_user(PRIYA), make_user(IVY)
    assert operations.cached_active_calendar(priya) is None
    assert operations.has_active_calendar(priya) is True
    assert operations.has_active_calendar(ivy) is False  # no mailbox
    assert calls["get_user"] == 2
    clock.tick(timedelta(minutes=59))
    assert operations.has_active_calendar(priya) is True and operations.cached_active_calendar(ivy) is False
    assert calls["get_user"] == 2
    clock.tick(timedelta(minutes=2))
    assert operations.cached_active_calendar(priya) is None
    assert operations.has_active_calendar(priya) is True and calls["get_user"] == 3


def test_a_failed_check_keeps_the_last_answer_briefly(connected, integration, make_user, clock, monkeypatch):
    priya = make_user(PRIYA)
    assert operations.has_active_calendar(priya) is True
    clock.tick(timedelta(hours=2))

    def down(*args, **kwargs):
        raise ServiceUnavailable("unavailable", status=503)

    monkeypatch.setattr(provider, "get_user", down)
    assert operations.has_active_calendar(priya) is True  # the last known answer
    assert identity_of(priya).calendar_expires_at == operations.now_utc() + operations.CALENDAR_FAILURE_TTL
    assert "unavailable" in identity_of(priya).calendar_error
    nobody = make_user("new@roomsync.test")
    assert operations.has_active_calendar(nobody) is False  # nothing known: no


# ---------------------------------------------------------------------------------------------- typeahead


@pytest.fixture
def holder(make_user, login):
    user = make_user(PRIYA, first_name="Priya", last_name="Shah")
    return user, login(user)


def test_typeahead_offers_contacts_people_roomsync_users_and_the_directory(connected, integration, holder, make_user):
    make_user("tomas.local@roomsync.test", first_name="Tomas", last_name="Local")
    _, client = holder
    html = client.get("/people/search?q=to").get_data(as_text=True)
    assert 'role="listbox"' in html and 'role="option"' in html
    assert "tomas.local@roomsync.test" in html  # a Roomsync user
    assert TOM in html  # relevant people / directory
    assert client.get("/people/search?q=tailspin").get_data(as_text=True).count("tailspin.example") >= 1  # a contact
    integration(allow_directory_search=False)
    cache.store().clear()
    html = client.get("/people/search?q=fatima").get_data(as_text=True)
    assert "fatima.ali@roomsync.test" not in html  # only in the directory
    integration(allow_directory_search=True)
    cache.store().clear()
    assert "fatima.ali@roomsync.test" in client.get("/people/search?q=fatima").get_data(as_text=True)


def test_typeahead_caches_answers_and_limits_provider_calls_per_user(connected, integration, holder, calls, clock):
    _, client = holder
    client.get("/people/search?q=to")
    first = dict(calls)
    assert first == {"list_contacts": 1, "list_people": 1, "search_users": 1}
    client.get("/people/search?q=to")  # the same query: cached
    assert calls == first
    client.get("/people/search?q=tom")  # contacts and people reused; one directory search
    assert calls["search_users"] == 2 and calls["list_contacts"] == 1
    # 4 provider calls spent in this second (the budget): the next query gets no provider call, only what
    # Roomsync knows and a note, and that partial answer is not cached.
    html = client.get("/people/search?q=tom%20b").get_data(as_text=True)
    assert calls["search_users"] == 2 and "Searching too quickly" in html
    clock.tick(timedelta(seconds=1.5))
    html = client.get("/people/search?q=tom%20b").get_data(as_text=True)
    assert calls["search_users"] == 3 and "Searching too quickly" not in html and TOM in html


def test_typeahead_ignores_short_queries(connected, integration, holder, calls):
    _, client = holder
    response = client.get("/people/search?q=t")
    assert response.status_code == 200 and "option" not in response.get_data(as_text=True) and not calls


def test_typeahead_and_photos_need_a_sign_in(client, make_venue):
    make_venue()
    assert client.get("/people/search?q=tom").status_code == 302
    assert client.get("/people/1/photo").status_code == 302


# ---------------------------------------------------------------------------------------------- photos


def test_photos_are_served_with_cache_headers_and_initials_otherwise(connected, integration, holder, make_user):
    priya, client = holder
    tom = make_user(TOM, first_name="Tom", last_name="Baker")
    assert operations.sync_photo(priya) is True and operations.sync_photo(tom) is False
    response = client.get(f"/people/{priya.id}/photo")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert "max-age" in response.headers["Cache-Control"] and response.headers["ETag"]
    assert client.get(f"/people/{priya.id}/photo", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    assert client.get(f"/people/{tom.id}/photo").status_code == 404
    html = client.get("/people/search?q=shah").get_data(as_text=True)
    assert f"/people/{priya.id}/photo" in html
    html = client.get("/people/search?q=baker").get_data(as_text=True)
    assert f"/people/{tom.id}/photo" not in html and '<span class="avatar-initials">TB</span>' in html
    integration(sync_photos=False)
    assert client.get(f"/people/{priya.id}/photo").status_code == 404
    cache.store().clear()
    assert "/photo" not in client.get("/people/search?q=shah").get_data(as_text=True)


def test_typeahead_works_without_an_integration_from_roomsync_users(make_venue, make_user, login, app, monkeypatch):
    monkeypatch.setitem(app.config, "INTEGRATION_CACHE", "memory")
    monkeypatch.delitem(app.extensions, "integration_cache", raising=False)
    make_venue()
    client = login(make_user("ana@roomsync.test", first_name="Ana", last_name="Lee"))
    make_user("bo@roomsync.test", first_name="Bo", last_name="Kim")
    html = client.get("/people/search?q=kim").get_data(as_text=True)
    assert "bo@roomsync.test" in html and '<span class="avatar-initials">BK</span>' in html
    app.extensions.pop("integration_cache", None)
