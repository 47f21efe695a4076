"""The venue settings two-way sync needs, checked before anything talks to the provider. Pure.

Public API: `Prerequisite` (key, label, ok, message, fix_endpoint, fix_label), `check_venue(venue)` → the
list in the order the admin works through it, `all_met(items)`.

Why each one (the reference guide's setup steps 1–3): the provider's events are placed on the venue's grid,
and 15 minutes gives them the best chance to fit without adjustment; the provider has no notion of a paid
booking, so neither pricing rules nor online payments can be on. Each item names the admin page that fixes it
(an endpoint; the view builds the link with `url_for`).
"""

from __future__ import annotations

from dataclasses import dataclass

REQUIRED_GRANULARITY = 15


@dataclass(frozen=True)
class Prerequisite:
    key: str
    label: str
    ok: bool
    message: str
    fix_endpoint: str = "admin.venue"
    fix_label: str = "Venue settings"


def check_venue(venue) -> list[Prerequisite]:
    granularity = venue.granularity_minutes
    return [
        Prerequisite(
            "granularity", "Time grid of 15 minutes", granularity == REQUIRED_GRANULARITY,
            "The time grid is 15 minutes." if granularity == REQUIRED_GRANULARITY else
            f"The time grid is {granularity} minutes. Set it to 15 minutes so events made in Outlook fit the "
            "grid with the least adjustment.",
        ),
        Prerequisite(
            "pricing", "No pricing rules", not venue.has_pricing_rules,
            "No pricing rules are in use." if not venue.has_pricing_rules else
            "Pricing rules are in use. Remove them: Microsoft 365 has no paid bookings.",
        ),
        Prerequisite(
            "payments", "Online payments off", not venue.online_payments_enabled,
            "Online payments are off." if not venue.online_payments_enabled else
            "Online payments are on. Turn them off: bookings made in Outlook cannot be charged.",
        ),
    ]


def all_met(items: list[Prerequisite]) -> bool:
    return all(item.ok for item in items)
