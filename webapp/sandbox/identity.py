"""Sandbox identity (to be written)."""

from flask import Blueprint

bp = Blueprint("identity", __name__)
