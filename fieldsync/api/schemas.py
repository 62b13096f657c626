"""Marshmallow schemas shared by several blueprints."""

from __future__ import annotations

import marshmallow as ma


class StrictSchema(ma.Schema):
    """Input schema: unknown fields are an error, not silently dropped."""

    class Meta:
        unknown = ma.RAISE


class AwareDateTime(ma.fields.AwareDateTime):
    """RFC 3339 with an explicit offset; naive input is refused."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(format="iso", **kwargs)  # type: ignore[arg-type]
