"""The API's JSON provider (orjson): what it writes reads back as what Flask's default provider
wrote, for every value the API answers with, and what orjson cannot write still gets written."""

from __future__ import annotations

import dataclasses
import decimal
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from fieldsync.api.app import JsonProvider


@dataclasses.dataclass
class Point:
    lat: float
    lon: float


VALUES: list[Any] = [
    {"address": "东城区东华门大街1号", "note": "é ✓ 𠀋", "empty": "", "none": None},
    [1, -2, 2**63 - 1, 1.5, 1e16, True, False],
    {"at": datetime(2026, 11, 25, 8, 0, tzinfo=UTC), "day": date(2026, 11, 25)},
    {"id": uuid.UUID("a3bb189e-8bf9-3888-9912-ace4e6543002"), "fine": decimal.Decimal("50.00")},
    {"where": Point(39.9, 116.4), "errors": {0: ["index keys become strings"]}},
    # what orjson refuses: json.dumps writes them
    {"field \ud800": ["Unknown field."]},
    {"big": 2**70},
]


@pytest.fixture
def flask_app() -> Flask:
    return Flask("t")


@pytest.fixture
def providers(flask_app: Flask) -> tuple[JsonProvider, DefaultJSONProvider]:
    default = DefaultJSONProvider(flask_app)
    default.sort_keys = False
    return JsonProvider(flask_app), default


@pytest.mark.parametrize("value", VALUES)
def test_reads_back_as_flasks_default_wrote_it(
    value: Any, flask_app: Flask, providers: Any
) -> None:
    ours, default = providers
    assert json.loads(ours.dumps(value)) == json.loads(default.dumps(value))
    with flask_app.app_context():
        body = ours.response(value).get_data()
    assert json.loads(body) == json.loads(default.dumps(value))


def test_text_is_utf8_not_escaped(providers: Any) -> None:
    ours, _ = providers
    assert ours.dumps({"a": "东城"}) == '{"a":"东城"}'


def test_what_neither_can_write_is_the_same_type_error(providers: Any) -> None:
    ours, default = providers
    for provider in (ours, default):
        with pytest.raises(TypeError, match="not JSON serializable"):
            provider.dumps({"x": object()})
