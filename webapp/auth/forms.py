"""Forms of the sign-in pages.

Public API: `LoginForm` (email, password, remember).
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import InputRequired, Length


class LoginForm(FlaskForm):
    class Meta:
        csrf = False  # CSRFProtect checks every POST before the view runs

    email = EmailField(
        "Email", validators=[InputRequired("Enter your email address."), Length(max=254)], render_kw={"autocomplete": "username"}
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired("Enter your password."), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    remember = BooleanField("Keep me signed in on this device")
