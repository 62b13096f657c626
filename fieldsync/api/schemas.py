"""Marshmallow schemas shared by several blueprints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import marshmallow as ma

from fieldsync.clock import parse_rfc3339


class StrictSchema(ma.Schema):
    """Input schema: unknown fields are an error, not silently dropped."""

    class Meta:
        unknown = ma.RAISE


class AwareDateTime(ma.fields.AwareDateTime):
    """RFC 3339 with an explicit offset; naive input and other ISO 8601 forms are refused.
    Loaded as UTC, which is how fieldsync stores every time: a time that has no UTC year
    within 1..9999 (Python's range, e.g. 9999-12-31T23:59:59-05:00) is refused here rather
    than overflowing later."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        try:
            return parse_rfc3339(value)
        except ValueError:
            raise self.make_error("invalid", input=value, obj_type="datetime") from None
