"""Sign-in, sign-out, login-required pages and CSRF enforcement (Flask test client)."""

from __future__ import annotations

import re

import pytest

from webapp import create_app
from webapp.extensions import db


@pytest.fixture
def venue(make_venue):
    return make_venue()


def test_login_page_has_the_form(client):
    response = client.get("/login")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'name="email"' in html and 'name="password"' in html
    assert 'autocomplete="current-password"' in html


def test_login_redirects_to_day_view_and_greets(client, make_user, venue):
    user = make_user(first_name="Ana", last_name="Lee")
    response = client.post("/login", data={"email": user.email.upper(), "password": "password"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    day = client.get("/")
    assert day.status_code == 200
    assert "Signed in as Ana Lee." in day.get_data(as_text=True)


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/bookings/mine", "/bookings/mine"),
        ("/?date=2026-03-04", "/?date=2026-03-04"),
        ("https://evil.example/steal", "/"),
        ("//evil.example/steal", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_login_follows_only_local_next(client, make_user, venue, next_url, expected):
    user = make_user()
    response = client.post("/login", query_string={"next": next_url}, data={"email": user.email, "password": "password"})
    assert response.status_code == 303
    assert response.headers["Location"] == expected


def test_wrong_password_and_unknown_email_get_the_same_answer(client, make_user):
    user = make_user()
    wrong_password = client.post("/login", data={"email": user.email, "password": "nope"})
    unknown_email = client.post("/login", data={"email": "nobody@roomsync.test", "password": "nope"})
    assert wrong_password.status_code == unknown_email.status_code == 401
    message = "That email and password do not match an account."
    assert message in wrong_password.get_data(as_text=True)
    assert message in unknown_email.get_data(as_text=True)
    # What was typed stays (except the password).
    assert f'value="{user.email}"' in wrong_password.get_data(as_text=True)
    assert 'value="nope"' not in wrong_password.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still signed out


def test_inactive_user_is_refused_with_a_clear_message(client, make_user, venue):
    user = make_user(active=False)
    response = client.post("/login", data={"email": user.email, "password": "password"})
    assert response.status_code == 403
    assert "This account is deactivated" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_empty_form_is_re_rendered_with_field_errors(client):
    response = client.post("/login", data={"email": "", "password": ""})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Enter your email address." in html
    assert "Enter your password." in html


def test_signed_in_user_visiting_login_goes_to_the_day_view(client, login, make_user, venue):
    login(make_user())
    response = client.get("/login")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_logout_signs_out(client, login, make_user, venue):
    login(make_user())
    assert client.get("/").status_code == 200
    assert client.get("/logout").status_code == 405  # signing out changes state: POST only
    response = client.post("/logout")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert "You are signed out." in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("path", ["/", "/bookings/mine", "/bookings/new", "/bookings/1", "/bookings/1/edit", "/spaces/1/week"])
def test_pages_require_sign_in(client, venue, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_posts_require_sign_in(client, venue):
    for path in ("/bookings", "/bookings/1/cancel", "/bookings/1/edit"):
        response = client.post(path, data={})
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login")


def test_htmx_request_after_the_session_ended_navigates_to_sign_in(client, venue):
    response = client.get("/bookings/new", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith("/login?next=")
    assert response.get_data(as_text=True) == ""


# ---------------------------------------------------------------------------------------------- CSRF


@pytest.fixture
def csrf_client(app, tmp_path):
    """A client of an app like the session's but with CSRF protection on (the suite's app turns it off)."""
    protected = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "WTF_CSRF_ENABLED": True,
            "SYNC_JOBS": True,
        }
    )
    yield protected.test_client()
    with protected.app_context():
        db.engine.dispose()


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def test_csrf_is_enforced_on_sign_in_and_on_booking_forms(csrf_client, clock, make_user, make_space, venue):
    user = make_user()
    space = make_space(venue)
    missing = csrf_client.post("/login", data={"email": user.email, "password": "password"})
    assert missing.status_code == 400
    assert "Form expired" in missing.get_data(as_text=True)

    token = _token(csrf_client.get("/login").get_data(as_text=True))
    signed_in = csrf_client.post("/login", data={"email": user.email, "password": "password", "csrf_token": token})
    assert signed_in.status_code == 303

    form = {"spaces": str(space.id), "date": "2026-03-03", "start_time": "10:00", "end_time": "11:00", "title": "x"}
    refused = csrf_client.post("/bookings", data=form)
    assert refused.status_code == 400
    assert "Form expired" in refused.get_data(as_text=True)
    forged = csrf_client.post("/bookings", data={**form, "csrf_token": "forged"})
    assert forged.status_code == 400
    assert csrf_client.post("/logout").status_code == 400

    # The htmx way: the token travels in the X-CSRFToken header that base.html's hx-headers sets.
    page = csrf_client.get("/").get_data(as_text=True)
    header_token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    accepted = csrf_client.post("/bookings", data=form, headers={"X-CSRFToken": header_token, "HX-Request": "true"})
    assert accepted.status_code == 204
    assert "booking-changed" in accepted.headers["HX-Trigger"]
