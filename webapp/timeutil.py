"""Time handling: everything is stored in UTC, shown in the venue's zone.

Public API:
- `now_utc()`: the one clock of the application (freezegun freezes it in tests).
- `ensure_aware(dt, field)`: refuses naive datetimes (raises `NaiveDatetimeError`).
- `UTCDateTime`: SQLAlchemy column type that accepts only aware datetimes, stores UTC and returns aware UTC.
- `to_local(dt, tz)`, `local_day_bounds(day, tz)`, `zone(name)`, `parse_iso(text)`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.types import DateTime, TypeDecorator

UTC = timezone.utc


class NaiveDatetimeError(ValueError):
    """A datetime without an offset reached a boundary that needs one."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def ensure_aware(value: datetime, field: str = "datetime") -> datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise NaiveDatetimeError(f"{field} must carry a UTC offset")
    return value.astimezone(UTC)


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return name in available_timezones() or name == "UTC"


def to_local(value: datetime, tz: ZoneInfo) -> datetime:
    return ensure_aware(value).astimezone(tz)


def localize(naive_local: datetime, tz: ZoneInfo) -> datetime:
    """Wall-clock time in `tz` → aware UTC. Times in a DST gap move forward like a wall clock does."""
    aware = naive_local.replace(tzinfo=tz)
    utc = aware.astimezone(UTC)
    # Round-trip check: a non-existent wall time (spring forward) comes back different.
    if utc.astimezone(tz).replace(tzinfo=None) != naive_local:
        utc = naive_local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return utc


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants of local midnight at the start and end of `day` (23 or 25 hours on DST days)."""
    start = localize(datetime.combine(day, time.min), tz)
    end = localize(datetime.combine(day + timedelta(days=1), time.min), tz)
    return start, end


def parse_iso(text: str, field: str = "datetime") -> datetime:
    """Parse ISO 8601 with an offset (or Z); naive input is refused."""
    if not isinstance(text, str):
        raise ValueError(f"{field} must be an ISO 8601 string")
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return ensure_aware(value, field)


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC so SQLite and PostgreSQL agree."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError("UTCDateTime needs a datetime")
        return ensure_aware(value).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)
