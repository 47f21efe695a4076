"""The profile page (`/profile`): the signed-in user's details, password and API tokens.

Public API: `bp`, the "profile" blueprint; endpoints `profile.index`, `profile.password`,
`profile.token_new`, `profile.token_revoke`. Operations: `change_password(user, current, new)`,
`create_api_token(user, name)` → plaintext, `revoke_api_token(token)`.

A new token's plaintext is rendered once, in the answer to the POST that created it; only its SHA-256
digest is stored (`auth.models.issue_api_token`), so it can never be shown again. Revoking is an htmx
fragment (`profile/_token_row.html`) that swaps its own table row.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.exceptions import NotFound
from wtforms import PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length

from .. import htmx
from ..admin.forms import StorableForm
from ..admin.operations import MIN_PASSWORD_LENGTH
from ..api.schemas import MAX_ID
from ..booking.errors import ValidationError
from ..extensions import db
from ..timeutil import UTC, now_utc
from ..venue import current_venue
from .models import ApiToken, User, issue_api_token

bp = Blueprint("profile", __name__)


# ---------------------------------------------------------------------------------------------- operations


def change_password(user: User, current: str, new: str) -> None:
    errors = {}
    if not user.check_password(current or ""):
        errors["current_password"] = "That is not your current password."
    if len(new or "") < MIN_PASSWORD_LENGTH:
        errors["new_password"] = f"At least {MIN_PASSWORD_LENGTH} characters."
    if errors:
        raise ValidationError(errors)
    user.set_password(new)
    db.session.commit()


def create_api_token(user: User, name: str) -> str:
    _, plaintext = issue_api_token(user, name)
    db.session.commit()
    return plaintext


def revoke_api_token(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = now_utc()
        db.session.commit()


# ---------------------------------------------------------------------------------------------- forms


class PasswordForm(StorableForm):
    current_password = PasswordField("Current password", validators=[InputRequired()])
    new_password = PasswordField("New password", validators=[InputRequired(), Length(max=200)])
    confirm = PasswordField("Repeat the new password", validators=[EqualTo("new_password", "The passwords differ.")])


class TokenForm(StorableForm):
    name = StringField(
        "Token name", validators=[InputRequired(), Length(max=100)], description="What uses it, e.g. “team dashboard”."
    )


class RevokeForm(StorableForm):
    """Only the CSRF token."""


# ---------------------------------------------------------------------------------------------- views


def _display_zone():
    """Times show in the venue's zone; before a venue exists, in UTC."""
    try:
        return current_venue().tz
    except NotFound:
        return UTC


def _page(status: int = 200, *, password_form=None, token_form=None, new_token=None):
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == current_user.id).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return (
        render_template(
            "profile/index.html",
            password_form=password_form or PasswordForm(formdata=None),
            token_form=token_form or TokenForm(formdata=None),
            revoke_form=RevokeForm(),
            tokens=list(tokens),
            new_token=new_token,
            tz=_display_zone(),
        ),
        status,
    )


@bp.before_request
@login_required
def require_login():
    """Every page here is the signed-in user's own."""


@bp.get("/")
def index():
    return _page()


@bp.post("/password")
def password():
    form = PasswordForm()
    if not form.validate_on_submit():
        return _page(422, password_form=form)
    try:
        change_password(current_user, form.current_password.data, form.new_password.data)
    except ValidationError as error:
        for name, message in error.fields.items():
            form[name].errors = [*form[name].errors, message]
        return _page(422, password_form=form)
    flash("Password changed.", "success")
    return htmx.redirect(url_for("profile.index"))


@bp.post("/tokens")
def token_new():
    form = TokenForm()
    if not form.validate_on_submit():
        return _page(422, token_form=form)
    plaintext = create_api_token(current_user, form.name.data)
    # Rendered in this answer, never redirected to: the plaintext exists nowhere else; nor kept in a cache.
    body, status = _page(new_token=plaintext)
    return body, status, {"Cache-Control": "no-store"}


@bp.post("/tokens/<int:token_id>/revoke")
def token_revoke(token_id: int):
    token = db.session.get(ApiToken, token_id) if token_id <= MAX_ID else None
    if token is None or token.user_id != current_user.id:
        abort(404)
    if not RevokeForm().validate_on_submit():
        abort(400)
    revoke_api_token(token)
    if htmx.is_htmx():
        return render_template("profile/_token_row.html", token=token, revoke_form=RevokeForm(), tz=_display_zone())
    flash(f"Token {token.name or token.hint} revoked.", "success")
    return htmx.redirect(url_for("profile.index"))
