"""What every blueprint shares: the request's session and principal, role checks, the parser."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar

import flask_smorest
import marshmallow as ma
from flask import current_app, g, request
from sqlalchemy.orm import Session
from webargs.flaskparser import FlaskParser, is_json_request

from fieldsync.config import Config
from fieldsync.errors import DomainError
from fieldsync.identity.service import Principal
from fieldsync.org.models import Role

F = TypeVar("F", bound=Callable[..., Any])
ALL_ROLES = tuple(Role)
BACK_OFFICE = (Role.DISPATCHER, Role.CASE_HANDLER, Role.REVIEWER, Role.CAPTAIN, Role.ADMIN)


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 422

    def _raw_load_json(self, req: Any) -> Any:
        # webargs reads a body that is not labelled JSON as no body at all: a PATCH sent as
        # text/plain would answer 200 and change nothing
        if req.get_data(cache=True) and not is_json_request(req):
            raise DomainError("request.unsupported_media_type")
        try:
            return super()._raw_load_json(req)
        except RecursionError:  # arrays nested some thousand levels deep
            raise DomainError("request.malformed_json") from None

    def _handle_invalid_json_error(self, error: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        raise DomainError("request.malformed_json")


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()


@cache
def query_fields(view: Callable[..., Any]) -> Mapping[str, ma.fields.Field]:
    """The query parameters a view declares, by name: its query schemas and its pagination.

    Each of them is loaded on its own with unknown=EXCLUDE (webargs' default for the query, and
    the only choice when several schemas share it: flask-smorest's pagination parses page and
    page_size separately), so unknown names are refused here, against all of them together."""
    apidoc = getattr(view, "_apidoc", {})
    parameters = [
        p for p in apidoc.get("arguments", {}).get("parameters", []) if p["in"] == "query"
    ]
    if "pagination" in apidoc:
        parameters.append(apidoc["pagination"]["parameters"])
    fields: dict[str, ma.fields.Field] = {}
    for parameter in parameters:
        schema = parameter["schema"]
        schema = schema() if isinstance(schema, type) else schema
        assert isinstance(schema, ma.Schema)
        fields.update((f.data_key or name, f) for name, f in schema.load_fields.items())
    return fields


# what a query integer looks like on the wire; Python's int() (and so marshmallow) also takes
# "１２", "1_000" and " 5 ", which no client means to send
_QUERY_INTEGER = re.compile(r"-?[0-9]{1,18}")


def refuse_loose_query(view: Callable[..., Any]) -> None:
    """Unknown names, and integers spelled otherwise than in ASCII digits: refused together,
    before the view's schemas read the query (pagination's included)."""
    fields = query_fields(view)
    errors = {name: ["Unknown field."] for name in sorted(set(request.args) - fields.keys())}
    for name, field in fields.items():
        if isinstance(field, ma.fields.Integer) and not all(
            _QUERY_INTEGER.fullmatch(value) for value in request.args.getlist(name)
        ):
            errors[name] = ["Not a valid integer."]
    if errors:
        raise DomainError("request.invalid", errors={"query": errors})


def requires(*roles: Role) -> Callable[[F], F]:
    """Declare who may call a view. Checked before the view runs (see api.app); a view without a
    declaration is refused, so a forgotten check fails closed."""

    def decorate(func: F) -> F:
        func._fieldsync_roles = frozenset(roles)  # type: ignore[attr-defined]
        return func

    return decorate


def public(func: F) -> F:
    func._fieldsync_public = True  # type: ignore[attr-defined]
    return func


def db() -> Session:
    session: Session | None = g.get("db_session")
    if session is None:
        session = current_app.extensions["fieldsync"].sessionmaker()
        g.db_session = session
    return session


def principal() -> Principal:
    return g.principal


def config() -> Config:
    return current_app.extensions["fieldsync"].config


def services() -> Any:
    return current_app.extensions["fieldsync"]


class SelectPage(flask_smorest.Page):
    """Pagination over a SQLAlchemy select, counted in the database (total in X-Pagination)."""

    @property
    def items(self) -> list[Any]:
        stmt = self.collection.offset(self.page_params.first_item).limit(self.page_params.page_size)
        return list(db().scalars(stmt))

    @property
    def item_count(self) -> int:
        from sqlalchemy import func, select

        subquery = self.collection.order_by(None).subquery()
        return int(db().scalar(select(func.count()).select_from(subquery)) or 0)
