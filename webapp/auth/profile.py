"""Profile page: the signed-in user's details and API tokens (to be written)."""

from flask import Blueprint

bp = Blueprint("profile", __name__)
