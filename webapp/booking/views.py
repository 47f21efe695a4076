"""Views of the booking blueprint (to be written)."""

from flask import Blueprint

bp = Blueprint("booking", __name__)
