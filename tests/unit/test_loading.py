"""The compiled load of a synced entity's schema is marshmallow's load: it takes exactly what
marshmallow takes and gives exactly what marshmallow gives (as JSON values), for inputs drawn
from the schema itself (near the bounds, wrong types, unknown keys, nulls), valid or not."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strategies import json_values  # type: ignore[import-not-found]

from fieldsync.sync import registry
from fieldsync.sync.loading import Refused, compiled_load, jsonable

SCHEMAS = sorted(
    (spec.schema for spec in registry.all_entities().values() if spec.schema is not None),
    key=lambda s: s.__name__,
)
REFUSED = "refused"


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` 19 times in 20 (st.one_of does not weigh its branches by their count)."""
    return st.integers(0, 19).flatmap(lambda k: usual if k else odd)


def _text(validators: list[Any]) -> st.SearchStrategy[str]:
    choices = [c for v in validators if isinstance(v, ma.validate.OneOf) for c in v.choices]
    if choices:
        return _mostly(st.sampled_from(choices), st.text(max_size=3))
    if any(isinstance(v, ma.validate.Regexp) for v in validators):
        hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
        return _mostly(hex64, hex64.map(str.upper) | st.text("0123456789abcdef", max_size=65))
    bounds = [(v.min, v.max) for v in validators if isinstance(v, ma.validate.Length)]
    low, high = bounds[0] if bounds else (0, 8)
    low, high = low or 0, high if high is not None else 8
    at_bounds = st.sampled_from(sorted({low, high, max(low - 1, 0), high + 1}))
    return _mostly(st.text(min_size=low, max_size=min(high, 8)), at_bounds.map(lambda n: "字" * n))


def _number(validators: list[Any]) -> st.SearchStrategy[Any]:
    [limits] = [v for v in validators if isinstance(v, ma.validate.Range)] or [None]
    low, high = (limits.min, limits.max) if limits else (-(2**31), 2**31)
    inside = st.floats(low, high) | st.integers(int(low), int(high))
    edges = st.sampled_from([low, high]).flatmap(
        lambda e: st.sampled_from([e, e - 1e-9, e + 1e-9, int(e), e + 1])
    )
    wrong = (
        st.floats(allow_nan=True, allow_infinity=True)
        | st.integers(-(2**70), 2**70)
        | st.booleans()
        | st.sampled_from(["39.9", "nan"])
    )
    return _mostly(inside, edges | wrong)


def _uuid() -> st.SearchStrategy[Any]:
    def spelt(u: uuid.UUID) -> st.SearchStrategy[Any]:
        odd = [str(u).upper(), u.hex, f"{{{u}}}", f"urn:uuid:{u}", str(u)[:-1], u.int]
        return _mostly(st.just(str(u)), st.sampled_from(odd))

    return st.uuids().flatmap(spelt)


def _time() -> st.SearchStrategy[str]:
    usual = [
        "2026-11-25T08:00:00Z",
        "2026-11-25T16:00:00.123456+08:00",
        "2026-11-25T08:00:00+00:00",
    ]
    odd = [
        "2026-11-25T08:00:00",
        "2026-11-25 08:00:00+00:00",
        "2026-02-30T08:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "yesterday",
    ]
    return _mostly(st.sampled_from(usual), st.sampled_from(odd))


def values_for(field: ma.fields.Field) -> st.SearchStrategy[Any]:
    """Values for a field: mostly of its own shape, sometimes null or any JSON at all."""
    if isinstance(field, ma.fields.Nested):
        own = objects_for(type(field.schema), partial=False)
    elif isinstance(field, ma.fields.List):
        maxima = [v.max for v in field.validators if isinstance(v, ma.validate.Length)]
        own = st.lists(values_for(field.inner), max_size=3)
        if maxima:
            long = st.lists(values_for(field.inner), min_size=maxima[0], max_size=maxima[0] + 1)
            own = _mostly(own, long)
    elif isinstance(field, ma.fields.UUID):
        own = _uuid()
    elif isinstance(field, ma.fields.DateTime):
        own = _time()
    elif isinstance(field, ma.fields.Float):
        own = _number(field.validators)
    elif isinstance(field, ma.fields.String):
        own = _text(field.validators)
    elif isinstance(field, ma.fields.Dict):
        own = st.dictionaries(st.text(max_size=4), json_values, max_size=3)
    else:
        raise AssertionError(f"no strategy for {type(field).__name__}: add one")
    # mostly a value of its own shape: many objects then hold no wrong value at all
    return _mostly(own, st.none() | json_values)


def objects_for(schema_class: type[ma.Schema], *, partial: bool) -> st.SearchStrategy[Any]:
    fields = schema_class().load_fields
    always = set() if partial else {n for n, f in fields.items() if f.required}
    chosen = st.fixed_dictionaries(
        {n: values_for(f) for n, f in fields.items() if n in always},
        optional={n: values_for(f) for n, f in fields.items() if n not in always},
    )
    with_unknown = st.tuples(chosen, st.text(max_size=6), json_values).map(
        lambda t: {**t[0], t[1]: t[2]}
    )
    return _mostly(chosen, with_unknown | json_values)


def _both(schema_class: type[ma.Schema], data: Any) -> tuple[Any, Any]:
    schema = schema_class()
    compiled = compiled_load(schema)
    assert compiled is not None, f"{schema_class.__name__} is not compiled: the push runs slow"
    try:
        expected = jsonable(schema.load(data, partial=tuple(schema.fields)))
    except ma.ValidationError:
        expected = REFUSED
    try:
        got = compiled(data)
    except Refused:
        got = REFUSED
    return got, expected


@pytest.mark.parametrize("schema_class", SCHEMAS, ids=lambda s: s.__name__)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_compiled_load_is_marshmallows(schema_class, data):
    value = data.draw(objects_for(schema_class, partial=True))
    got, expected = _both(schema_class, value)
    # as bytes: 5 and 5.0, key order and types all count
    assert orjson.dumps(got) == orjson.dumps(expected)


def test_a_full_inspection_is_taken_by_the_compiled_load():
    """The common case is the fast one: what the phones push is never sent to marshmallow."""
    finding = str(uuid.uuid4())
    data = {
        "matter_code": "CG-001",
        "occurred_at": "2026-11-25T16:00:00+08:00",
        "location": {"lat": 39, "lon": 116.4023},
        "address": "东华门大街1号",
        "present": [str(uuid.uuid4()).upper()],
        "party": {"name": "张三", "kind": "individual"},
        "findings": [{"id": finding, "matter_code": "CG-001"}],
        "measures": [{"id": str(uuid.uuid4()), "type": "summons", "finding_id": finding}],
        "evidence": ["a" * 64],
        "description": None,
        "claimed_tier": "enforcement",
    }
    schema_class = registry.entity("inspection").schema
    compiled = compiled_load(schema_class())
    got = compiled(data)
    assert got == _both(schema_class, data)[1]
    assert got["location"] == {"lat": 39.0, "lon": 116.4023, "accuracy_m": None}
    assert got["occurred_at"] == "2026-11-25T08:00:00Z"
    assert got["findings"][0]["description"] == ""
    assert got["measures"][0]["details"] == {}
    assert got["present"][0] == got["present"][0].lower()


class _Hooked(ma.Schema):
    name = ma.fields.String()

    @ma.post_load
    def _upper(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {k: v.upper() for k, v in data.items()}


class _Keyed(ma.Schema):
    name = ma.fields.String(data_key="Name")


class _Checked(ma.Schema):
    ids = ma.fields.List(ma.fields.UUID(), validate=lambda ids: len(set(ids)) == len(ids))


@pytest.mark.parametrize("schema_class", [_Hooked, _Keyed, _Checked])
def test_what_the_compiled_load_does_not_know_is_left_to_marshmallow(schema_class):
    assert compiled_load(schema_class()) is None
