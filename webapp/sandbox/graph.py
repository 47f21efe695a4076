"""The Graph v1.0 surface: one blueprint at /v1.0 whose routes live in the resource modules.

Public API: `bp`. Resource modules (`directory`, `places`, `events`, `batch`, `subscriptions`) add their
routes to `bp`; this module imports them so registering `bp` registers everything. Cross-cutting request
handling (fault injection, throttling) is installed here by `traffic.install(bp)`.
"""

from flask import Blueprint

bp = Blueprint("graph", __name__, url_prefix="/v1.0")

from . import batch, directory, events, places, subscriptions, traffic  # noqa: E402,F401  (register routes)

traffic.install(bp)
