"""The profile page: details, password change, API tokens (shown once, stored hashed, revocable)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, text

from webapp.auth.models import ApiToken, User, issue_api_token, user_for_token
from webapp.extensions import db
from webapp.htmx import HX_REQUEST

HTMX = {HX_REQUEST: "true"}
TOKEN_IN_PAGE = re.compile(r'value="(rs_[A-Za-z0-9_\-]+)"')


@pytest.fixture
def member(make_user):
    return make_user("grace@roomsync.test", first_name="Grace", last_name="Hopper")


@pytest.fixture
def signed_in(login, member, make_venue):
    make_venue()
    return login(member)


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for response in (client.get("/profile/"), client.post("/profile/tokens", data={"name": "x"})):
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert db.session.scalar(select(ApiToken)) is None


def test_profile_shows_the_users_details(signed_in):
    page = signed_in.get("/profile/").get_data(as_text=True)
    assert "Grace Hopper" in page and "grace@roomsync.test" in page
    assert "You have no API tokens." in page


def test_the_profile_works_before_a_venue_exists(client, login, member):
    login(member)
    assert client.get("/profile/").status_code == 200


def test_changing_the_password(signed_in, member):
    response = signed_in.post("/profile/password", data={
        "current_password": "password", "new_password": "correct horse", "confirm": "correct horse",
    })
    assert response.status_code == 303
    db.session.expire_all()
    user = db.session.get(User, member.id)
    assert user.check_password("correct horse") and not user.check_password("password")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"current_password": "wrong", "new_password": "correct horse", "confirm": "correct horse"}, "That is not your current password."),
        ({"current_password": "password", "new_password": "short", "confirm": "short"}, "At least 8 characters."),
        ({"current_password": "password", "new_password": "correct horse", "confirm": "correct hose"}, "The passwords differ."),
        ({"current_password": "", "new_password": "correct horse", "confirm": "correct horse"}, "This field is required."),
    ],
)
def test_bad_password_changes_are_refused(signed_in, member, data, message):
    response = signed_in.post("/profile/password", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert "correct horse" not in page  # passwords are never echoed back
    db.session.expire_all()
    assert db.session.get(User, member.id).check_password("password")


def test_a_new_token_is_shown_once_and_stored_hashed(clock, signed_in, member):
    response = signed_in.post("/profile/tokens", data={"name": "Team dashboard"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    plaintext = TOKEN_IN_PAGE.search(page).group(1)
    assert "shown only this once" in page

    assert user_for_token(plaintext).id == member.id
    token = db.session.scalar(select(ApiToken))
    assert token.name == "Team dashboard" and token.token_hash != plaintext and plaintext.startswith(token.hint)
    # The plaintext is nowhere in the table.
    for row in db.session.execute(text("SELECT * FROM api_tokens")):
        assert all(plaintext not in str(value) for value in row)

    listing = signed_in.get("/profile/").get_data(as_text=True)
    assert plaintext not in listing
    assert "Team dashboard" in listing and f"{token.hint}…" in listing
    assert "02 Mar 2026 09:00" in listing and "Never" in listing  # created (London time), not used yet


def test_token_last_use_is_listed(clock, signed_in, member):
    token, _ = issue_api_token(member, "script")
    from webapp.timeutil import now_utc

    token.last_used_at = now_utc()
    db.session.commit()
    row = signed_in.get("/profile/").get_data(as_text=True).split(f'id="token-{token.id}"')[1].split("</tr>")[0]
    assert row.count("02 Mar 2026 09:00") == 2 and "Never" not in row


def test_revoking_a_token_swaps_its_row(clock, signed_in, member):
    token, plaintext = issue_api_token(member, "old script")
    db.session.commit()
    response = signed_in.post(f"/profile/tokens/{token.id}/revoke", headers=HTMX)
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and f'id="token-{token.id}"' in fragment and "Revoked 02 Mar 2026" in fragment
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).revoked_at is not None
    assert user_for_token(plaintext) is None


def test_revoking_without_htmx_goes_back_to_the_profile(signed_in, member):
    token, plaintext = issue_api_token(member, "old script")
    db.session.commit()
    response = signed_in.post(f"/profile/tokens/{token.id}/revoke")
    assert response.status_code == 303 and response.headers["Location"].endswith("/profile/")
    assert user_for_token(plaintext) is None


def test_nobody_revokes_someone_elses_token(signed_in, make_user):
    other = make_user()
    token, plaintext = issue_api_token(other, "theirs")
    db.session.commit()
    assert signed_in.post(f"/profile/tokens/{token.id}/revoke").status_code == 404
    assert signed_in.post("/profile/tokens/9999/revoke").status_code == 404
    assert signed_in.post(f"/profile/tokens/{2**31}/revoke").status_code == 404
    assert "theirs" not in signed_in.get("/profile/").get_data(as_text=True)
    assert user_for_token(plaintext).id == other.id


def test_a_token_needs_a_name(signed_in):
    response = signed_in.post("/profile/tokens", data={"name": ""})
    assert response.status_code == 422
    assert "This field is required." in response.get_data(as_text=True)
    too_long = signed_in.post("/profile/tokens", data={"name": "x" * 101})
    assert too_long.status_code == 422 and 'value="' + "x" * 101 + '"' in too_long.get_data(as_text=True)
    assert signed_in.post("/profile/tokens", data={"name": "nul\x00"}).status_code == 422
    assert db.session.scalar(select(ApiToken)) is None
