"""Sandbox admin_api (to be written)."""

from flask import Blueprint

bp = Blueprint("admin_api", __name__)
