"""Graph batch routes (to be written)."""

from .graph import bp  # noqa: F401
