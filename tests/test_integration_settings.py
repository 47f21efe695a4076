"""The integration settings page: prerequisites, permissions, consent link, and the live validation against
the sandbox tenant over real HTTPS (token, butler, rooms, calendar write, subscription handshake through the
webhook, directory, contacts and people). Settings are saved only when everything passes; a revoked
permission fails its own check with its hint; secrets never reach the HTML.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.graph.errors import AccessPolicyDenied, AuthFailed
from webapp.integration import operations, provider
from webapp.integration.models import IntegrationSettings
from webapp.integration.prerequisites import check_venue
from webapp.integration.validation import ValidationInput, auth_hint, run_validation
from webapp.integration.views import consent_url
from webapp.sandbox.seed import DEMO_BUTLER_EMAIL, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID

URL = "/admin/integration/"


@pytest.fixture
def admin_client(make_user, login):
    return login(make_user("admin@roomsync.test", role="admin"))


def form(**overrides):
    data = {"provider": "microsoft365", "sync_type": "two_way", "butler_email": DEMO_BUTLER_EMAIL,
            "allow_directory_search": "y", "sync_photos": "y", "public_base_url": ""}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def saved_count() -> int:
    return db.session.scalar(select(func.count()).select_from(IntegrationSettings))


def checks(html: str) -> dict[str, str]:
    """data-check key → "pass" | "fail" | "skip" from the results fragment."""
    return dict((key, state) for state, key in re.findall(r'<li class="(pass|fail|skip)" data-check="(\w+)"', html))


# ---------------------------------------------------------------------------------------------- pure parts


def test_prerequisites_name_each_problem_and_link_the_fix(make_venue):
    venue = make_venue(granularity_minutes=30, has_pricing_rules=True, online_payments_enabled=False)
    items = {item.key: item for item in check_venue(venue)}
    assert not items["granularity"].ok and "30 minutes" in items["granularity"].message
    assert not items["pricing"].ok
    assert items["payments"].ok
    assert all(item.fix_endpoint == "admin.venue" for item in items.values())


def test_consent_link_from_tenant_id_or_butler_domain_on_the_authority_host():
    microsoft = {"tenant_id": "contoso.onmicrosoft.com", "client_id": "abc",
                 "authority": "https://login.microsoftonline.com/contoso.onmicrosoft.com"}
    assert consent_url(microsoft, None) == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent?client_id=abc")
    by_domain = {"tenant_id": None, "client_id": "abc", "authority": None}
    assert consent_url(by_domain, "butler@fabrikam.com") == (
        "https://login.microsoftonline.com/fabrikam.com/adminconsent?client_id=abc")
    sandbox = {"tenant_id": DEMO_TENANT_ID, "client_id": DEMO_CLIENT_ID,
               "authority": f"https://127.0.0.1:5001/{DEMO_TENANT_ID}"}
    assert consent_url(sandbox, None).startswith(f"https://127.0.0.1:5001/{DEMO_TENANT_ID}/adminconsent?client_id=")
    assert consent_url({"tenant_id": None, "client_id": None}, "a@b.c") is None


@pytest.mark.parametrize("codes, expected", [
    ((7000215,), "client secret is wrong"),
    ((700016,), "does not know this client id"),
    ((65001,), "consent is missing"),
])
def test_auth_failures_are_explained_by_their_aadsts_number(codes, expected):
    assert expected in auth_hint(AuthFailed("refused", error="invalid_client", error_codes=codes))


def test_public_base_url_must_be_an_absolute_http_url():
    assert operations.normalise_base_url(" https://rooms.example.org/ ") == "https://rooms.example.org"
    for bad in ("rooms.example.org", "ftp://x.org", "https://x.org/?a=1", "https://user@x.org", "https://"):
        with pytest.raises(ValueError):
            operations.normalise_base_url(bad)


# ---------------------------------------------------------------------------------------------- the page


def test_settings_page_lists_permissions_revocations_prerequisites_and_hides_the_secret(
        connected, admin_client, make_venue):
    make_venue(granularity_minutes=30)
    html = admin_client.get(URL).get_data(as_text=True)
    for permission in ("Calendars.ReadWrite", "Place.Read.All", "User.Read.All", "Contacts.Read", "People.Read.All"):
        assert f"<code>{permission}</code>" in html
    revoke = html.split('id="revoke"')[1].split("</ul>")[0]
    assert "Mail.Read" in revoke and "Mail.Send" in revoke
    assert "The time grid is 30 minutes" in html and 'href="/admin/venue"' in html
    assert f"/{DEMO_TENANT_ID}/adminconsent?client_id={DEMO_CLIENT_ID}" in html
    assert "Client secret configured, from the environment" in html
    assert DEMO_CLIENT_SECRET not in html


def test_members_cannot_open_the_settings(make_user, login, make_venue):
    make_venue()
    client = login(make_user())
    assert client.get(URL).status_code == 403
    assert client.post(URL, data=form()).status_code == 403


def test_failing_prerequisites_refuse_the_save_without_calling_the_provider(admin_client, make_venue, monkeypatch):
    make_venue(online_payments_enabled=True)
    monkeypatch.setattr(provider, "acquire_token", lambda: pytest.fail("no provider call expected"))
    response = admin_client.post(URL, data=form(public_base_url="https://rooms.example.org"),
                                 headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "does not meet the prerequisites" in response.get_data(as_text=True)
    assert saved_count() == 0


def test_bad_fields_come_back_next_to_the_field(admin_client, make_venue):
    make_venue()
    response = admin_client.post(URL, data=form(butler_email="not-an-email", public_base_url="rooms.example"))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Enter the butler&#39;s email address." in html
    assert "absolute http:// or https:// URL" in html
    assert saved_count() == 0


# ---------------------------------------------------------------------------------------------- live validation


def test_every_check_passes_against_the_sandbox_and_the_settings_are_saved(connected, admin_client, make_venue):
    venue = make_venue()
    response = admin_client.post(URL, data=form(), headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert checks(html) == {key: "pass" for key in
                            ("token", "butler", "rooms", "calendar", "subscription", "directory", "contacts", "people")}
    assert "Every check passed" in html
    assert html.lstrip().startswith('<form id="integration-form"')  # the htmx fragment alone
    settings = operations.settings_for(venue)
    assert settings.enabled and settings.butler_email == DEMO_BUTLER_EMAIL
    assert settings.allow_directory_search and settings.sync_photos and settings.public_base_url is None
    assert [r["ok"] for r in settings.last_validation] == [True] * 8
    assert DEMO_CLIENT_SECRET not in html


def test_a_revoked_permission_fails_its_check_with_a_hint_and_nothing_is_saved(
        connected, sandbox_admin, admin_client, make_venue):
    make_venue()
    sandbox_admin.revoke("Place.Read.All")
    response = admin_client.post(URL, data=form(), headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    states = checks(html)
    assert states["rooms"] == "fail"
    assert {k for k, v in states.items() if v != "pass"} == {"rooms"}
    rooms = html.split('data-check="rooms"')[1].split("</li>")[0]
    assert "ErrorAccessDenied" in rooms
    assert "lacks the application permission Place.Read.All" in rooms
    assert saved_count() == 0


def test_a_butler_without_a_mailbox_or_a_shared_mailbox_is_refused(connected, make_venue):
    make_venue()
    base = "http://127.0.0.1:9"  # never reached: the checks that need the butler do not run
    no_mailbox = {r.key: r for r in run_validation(ValidationInput("ivy.chen@roomsync.test", base))}
    assert no_mailbox["butler"].ok is False and "no Exchange Online mailbox" in no_mailbox["butler"].error
    assert no_mailbox["calendar"].ok is None and no_mailbox["subscription"].ok is None
    shared = {r.key: r for r in run_validation(ValidationInput("noah.brooks@roomsync.test", base))}
    assert shared["butler"].ok is False and "shared mailbox" in shared["butler"].error
    unknown = {r.key: r for r in run_validation(ValidationInput("nobody@roomsync.test", base))}
    assert unknown["butler"].ok is False and "No user nobody@roomsync.test" in unknown["butler"].hint


def test_an_unreachable_webhook_fails_the_subscription_check(connected, make_venue):
    make_venue()
    results = {r.key: r for r in run_validation(ValidationInput(DEMO_BUTLER_EMAIL, "http://127.0.0.1:9"))}
    assert results["subscription"].ok is False
    assert "could not complete the handshake with http://127.0.0.1:9/webhooks/graph" in results["subscription"].hint
    assert all(r.ok for k, r in results.items() if k != "subscription")


def test_a_wrong_secret_fails_the_token_check_and_skips_the_rest(connected, app, make_venue):
    make_venue()
    app.config["GRAPH_CLIENT_SECRET"] = "wrong-secret"
    results = run_validation(ValidationInput(DEMO_BUTLER_EMAIL, "http://127.0.0.1:9"))
    assert results[0].key == "token" and results[0].ok is False
    assert "client secret is wrong" in results[0].hint
    assert DEMO_CLIENT_SECRET not in results[0].error and "wrong-secret" not in results[0].error
    assert all(r.ok is None for r in results[1:])


def test_an_application_access_policy_is_recognised_and_explained(connected, sandbox_admin, admin_client, make_venue,
                                                                  monkeypatch):
    # Exchange's application access policy shuts the app out of the butler's mailbox: the sandbox answers every
    # call on it with 403 ErrorAccessDenied "Access to OData is disabled.", through the real client.
    make_venue()
    sandbox_admin.access_policy(DEMO_BUTLER_EMAIL)
    raised = []
    create_test_event = provider.create_test_event

    def watched(*args, **kwargs):
        try:
            return create_test_event(*args, **kwargs)
        except Exception as error:
            raised.append(error)
            raise

    monkeypatch.setattr(provider, "create_test_event", watched)
    response = admin_client.post(URL, data=form(), headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert [type(e) for e in raised] == [AccessPolicyDenied]  # the client typed Graph's 403 for what it is
    states = checks(html)
    # Every check that opens the butler's mailbox fails, each explained as the policy, not a missing permission.
    assert {k for k, v in states.items() if v == "fail"} == {"calendar", "contacts", "people"}
    for key in ("calendar", "contacts", "people"):
        item = html.split(f'data-check="{key}"')[1].split("</li>")[0]
        assert "Access to OData is disabled" in item, key
        assert "Get-ApplicationAccessPolicy" in item and "Exchange admin" in item, key
        assert "lacks the application permission" not in item, key
    assert states["rooms"] == "pass" and states["directory"] == "pass"  # calls on no mailbox are not covered
    assert saved_count() == 0


# ---------------------------------------------------------------------------------------------- webhook


def test_webhook_echoes_the_validation_token_as_plain_text(client):
    response = client.post("/webhooks/graph?validationToken=Validation%3A%20Testing%20client%20%26%20more")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Validation: Testing client & more"
    assert client.post("/webhooks/graph/lifecycle?validationToken=abc").get_data(as_text=True) == "abc"


def test_webhook_accepts_notifications_with_202(client):
    response = client.post("/webhooks/graph", json={"value": [{"clientState": "x", "resource": "users/a/events"}]})
    assert response.status_code == 202
    assert client.post("/webhooks/graph?validationToken=" + "x" * 5000).status_code == 400
