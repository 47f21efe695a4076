"""The sandbox's clock and Graph's time formats.

Public API: `now()` (aware UTC; freezegun-friendly), `graph_datetime(dt)` → "2026-03-02T09:00:00.0000000"
(Graph's dateTimeTimeZone value: 7 fractional digits, no offset), `parse_graph_datetime(text, zone)` → aware
UTC, `iso_z(dt)` → "2026-03-02T09:00:00Z" (createdDateTime and friends).
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc

# Windows zone names Graph may send in dateTimeTimeZone.timeZone, mapped to IANA (the common ones).
WINDOWS_ZONES = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "Pacific Standard Time": "America/Los_Angeles",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "Tokyo Standard Time": "Asia/Tokyo",
    "India Standard Time": "Asia/Kolkata",
}


def now() -> datetime:
    return datetime.now(UTC)


def zone(name: str | None) -> ZoneInfo:
    """IANA or Windows zone name → ZoneInfo; raises KeyError for an unknown name."""
    name = (name or "UTC").strip()
    name = WINDOWS_ZONES.get(name, name)
    try:
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 — zoneinfo raises several types for bad names
        raise KeyError(name) from None


def graph_datetime(value: datetime, tz: ZoneInfo | None = None) -> str:
    local = value.astimezone(tz or UTC)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond * 10:07d}"


def parse_graph_datetime(text: str, tz_name: str | None) -> datetime:
    """A dateTimeTimeZone's dateTime (up to 7 fractional digits, optional offset) in its zone → aware UTC."""
    text = text.strip()
    if "." in text:
        head, tail = text.split(".", 1)
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]  # the fraction, not the offset's digits
        rest = tail[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(tz_name))
    return value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond * 10:07d}Z"
