"""Time: every timestamp fieldsync stores is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware datetimes are converted; naive ones are refused (they say nothing about the zone)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: a time zone is required")
    return value.astimezone(UTC)


def isoformat(value: datetime | None) -> str | None:
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time that names its zone, as UTC. ValueError for anything else: no zone, not
    a time, or outside what a datetime holds once in UTC (9999-12-31T23:00:00-05:00)."""
    try:
        return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except OverflowError:
        raise ValueError(f"out of range: {text!r}") from None
