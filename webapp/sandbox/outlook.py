"""Sandbox outlook (to be written)."""

from flask import Blueprint

bp = Blueprint("outlook", __name__)
