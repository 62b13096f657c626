"""Marshmallow schemas shared by several blueprints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma


class StrictSchema(ma.Schema):
    """Input schema: unknown fields are an error, not silently dropped."""

    class Meta:
        unknown = ma.RAISE


class AwareDateTime(ma.fields.AwareDateTime):
    """RFC 3339 with an explicit offset; naive input is refused. Loaded as UTC, which is how
    fieldsync stores every time: a time that has no UTC year within 1..9999 (Python's range,
    e.g. 9999-12-31T23:59:59-05:00) is refused here rather than overflowing later."""

    default_error_messages = {"out_of_range": "Not a valid datetime: out of range in UTC."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("out_of_range") from None
