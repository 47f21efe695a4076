"""Views of the admin blueprint (to be written)."""

from flask import Blueprint

bp = Blueprint("admin", __name__)
