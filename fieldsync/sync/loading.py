"""Loading what a device writes into a synced record: a marshmallow schema's `load`, compiled.

A push validates every mutation's `set` and `add` with its entity's schema, and marshmallow's
own machinery (error stores, hooks, a closure per field and value) costs more than the checks
it runs. `compiled_load` walks the schema once and returns a function that does the same load
in plain Python: each leaf field's own `_deserialize` and validators, called directly; the
required, missing, null, default, unknown-key and nesting rules of `Field.deserialize` and
`Schema.load` done here. Its output is the load's, as JSON values (`jsonable`).

The schema stays the one declaration and the authority. The compiled form only ever says
"this is the load's result" or `Refused`; on `Refused`, `given_fields_loader` asks marshmallow,
which gives the messages (or the result, should it take what the compiled form did not). A
schema using what the compiled form does not know (hooks, data keys, `many`, `only`) is not
compiled.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import marshmallow as ma

from fieldsync.clock import isoformat

Loader = Callable[[Any], Any]


class Refused(Exception):
    """The compiled load does not take this input: marshmallow decides, and words why."""


class _Unsupported(Exception):
    pass


_MISSING = ma.missing


def jsonable(value: Any) -> Any:
    """A loaded value (UUIDs and times inside nested lists) as plain JSON values."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return isoformat(value)
    return value


def given_fields_loader(schema: ma.Schema) -> Loader:
    """The schema's load of the fields given, each whole (`partial=True` would reach into nested
    objects too: a location without lon, a finding without its id would pass), as JSON values.
    Compiled where it can be; marshmallow for what the compiled form refuses (it raises the
    ValidationError, with the messages) and for a schema that is not compiled."""
    partial = tuple(schema.fields)

    def by_marshmallow(data: Any) -> Any:
        return jsonable(schema.load(data, partial=partial))

    compiled = compiled_load(schema)
    if compiled is None:
        return by_marshmallow

    def load(data: Any) -> Any:
        try:
            return compiled(data)
        except Refused:
            return by_marshmallow(data)

    return load


def compiled_load(schema: ma.Schema) -> Loader | None:
    """`jsonable(schema.load(data, partial=<every field of its own>))` as a plain function that
    raises `Refused` where the load would raise a ValidationError; None if not compilable."""
    try:
        return _schema_loader(schema, partial=True, unknown=None)
    except _Unsupported:
        return None


def _schema_loader(schema: ma.Schema, *, partial: bool, unknown: str | None) -> Loader:
    if any(schema._hooks.values()) or schema.many or schema.dict_class is not dict:
        raise _Unsupported
    unknown = schema.unknown if unknown is None else unknown
    if unknown not in (ma.RAISE, ma.EXCLUDE):
        raise _Unsupported
    fields = []
    for name, field in schema.load_fields.items():
        if field.data_key is not None or field.attribute is not None:
            raise _Unsupported
        fields.append((name, _field_loader(field), field.required, field.load_default))
    names = frozenset(name for name, *_ in fields)
    raise_unknown = unknown == ma.RAISE

    def load(data: Any) -> dict[str, Any]:
        if type(data) is not dict or (raise_unknown and not names.issuperset(data)):
            raise Refused
        out = {}
        for name, load_field, required, default in fields:
            value = data.get(name, _MISSING)
            if value is not _MISSING:
                out[name] = load_field(value)
            elif partial:
                continue
            elif required:
                raise Refused
            elif default is not _MISSING:
                out[name] = default() if callable(default) else default
        return out

    return load


def _field_loader(field: ma.fields.Field) -> Loader:
    """`Field.deserialize` of a present value: null, then the conversion, then the validators."""
    if field.pre_load or field.post_load:
        raise _Unsupported
    convert: Loader
    if isinstance(field, ma.fields.Nested):
        if field.many or field.only or field.exclude or type(field) is not ma.fields.Nested:
            raise _Unsupported
        convert = _schema_loader(field.schema, partial=False, unknown=field.unknown)
    elif isinstance(field, ma.fields.List):
        if type(field) is not ma.fields.List:
            raise _Unsupported
        item = _field_loader(field.inner)

        def convert(value: Any) -> list[Any]:
            if type(value) is not list:
                raise Refused
            return [item(v) for v in value]

    else:
        return _leaf(field)
    if not all(type(v) is ma.validate.Length for v in field.validators):
        raise _Unsupported  # a container's items are JSON values here, not what marshmallow made
    return _checked(field, convert, lambda out: out)


def _leaf(field: ma.fields.Field) -> Loader:
    """A leaf field's own conversion (none of ours reads the key or the parent data); its
    validators see what it made, the result is that as a JSON value."""
    deserialize = field._deserialize

    def convert(value: Any) -> Any:
        try:
            return deserialize(value, None, None)
        except ma.ValidationError:
            raise Refused from None

    return _checked(field, convert, lambda out: out if type(out) is str else jsonable(out))


def _checked(field: ma.fields.Field, convert: Loader, plain: Loader) -> Loader:
    allow_none = field.allow_none
    validators = tuple(field.validators)

    def load(value: Any) -> Any:
        if value is None:
            if allow_none:
                return None
            raise Refused
        out = convert(value)
        for validate in validators:
            try:
                if validate(out) is False:
                    raise Refused
            except ma.ValidationError:
                raise Refused from None
        return plain(out)

    return load
