"""Sign-in and sign-out pages (blueprint `auth`).

Public API: `bp` with
- `GET/POST /login` (`auth.login`): email + password form; on success a 303 to the `next` page when it is a
  path on this site, else to the day view. Wrong credentials get one message whether or not the email is
  known (no user enumeration); an inactive account is told so only after the right password.
- `POST /logout` (`auth.logout`): signs out, 303 to the sign-in page.

It also makes flask-login's "please sign in" redirect work for htmx requests: a fragment request whose
session expired gets an `HX-Redirect` to the sign-in page instead of the sign-in page swapped into a dialog.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .. import htmx
from ..extensions import db
from .forms import LoginForm
from .models import User, normalise_email

bp = Blueprint("auth", __name__)

BAD_CREDENTIALS = "That email and password do not match an account."
INACTIVE = "This account is deactivated. Ask an administrator to reactivate it."
# Checked when the email is unknown, so a wrong email costs as long as a wrong password (no timing oracle).
_DUMMY_HASH = generate_password_hash("roomsync-no-such-user")


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site (no scheme, no host, no protocol-relative `//`), else None."""
    if not target:
        return None
    target = target.strip()
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("booking.day_view"), 303)
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.email == normalise_email(form.email.data)))
        if user is None:
            check_password_hash(_DUMMY_HASH, form.password.data)
            form.form_errors.append(BAD_CREDENTIALS)
            status = 401
        elif not user.check_password(form.password.data):
            form.form_errors.append(BAD_CREDENTIALS)
            status = 401
        elif not user.is_active:
            form.form_errors.append(INACTIVE)
            status = 403
        else:
            login_user(user, remember=form.remember.data)
            flash(f"Signed in as {user.display_name}.", "success")
            return redirect(next_url or url_for("booking.day_view"), 303)
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form, next_url=next_url), status


@bp.post("/logout")
def logout():
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.after_app_request
def htmx_sign_in_redirect(response):
    """flask-login answers an expired session with a 302 to the sign-in page; htmx would swap that page
    into the fragment's target, so send htmx a full-page navigation instead."""
    if response.status_code in (301, 302, 303) and htmx.is_htmx():
        location = response.headers.get("Location", "")
        if urlsplit(location).path == url_for("auth.login"):
            return htmx.redirect(location)
    return response
