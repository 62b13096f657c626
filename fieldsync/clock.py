"""Time: every timestamp fieldsync stores is timezone-aware UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# RFC 3339 §5.6 date-time, ASCII digits only (\d would take any script's digits)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


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
    """An RFC 3339 date-time (with its offset) as UTC. ValueError for anything else: another
    ISO 8601 form (basic, date only, no zone), not a time, or outside what a datetime holds
    once in UTC (9999-12-31T23:00:00-05:00)."""
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    try:
        return as_utc(datetime.fromisoformat(text.upper()))
    except OverflowError:
        raise ValueError(f"out of range: {text!r}") from None
