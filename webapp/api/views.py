"""Views of the api blueprint (to be written)."""

from flask import Blueprint

bp = Blueprint("api", __name__)
