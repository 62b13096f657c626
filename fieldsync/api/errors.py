"""The one place where errors become HTTP responses, in flask-smorest's shape plus `error`."""

from __future__ import annotations

import re
from string import Formatter
from typing import Any

import marshmallow as ma
from flask import current_app, request
from sqlalchemy import exc as sa_exc
from sqlalchemy.schema import PrimaryKeyConstraint, UniqueConstraint
from werkzeug.exceptions import HTTPException

from fieldsync.db import Base
from fieldsync.errors import CATALOGUE, DomainError

_HTTP_CODES = {
    400: "request.bad_request",
    401: "auth.required",
    403: "auth.forbidden",
    404: "request.not_found",
    405: "request.method_not_allowed",
    409: "request.conflict",
    412: "request.precondition_failed",
    413: "request.too_large",
    415: "request.unsupported_media_type",
    422: "request.invalid",
    500: "server.error",
    503: "server.unavailable",
}


class ErrorSchema(ma.Schema):
    code = ma.fields.Integer(metadata={"description": "HTTP status code"})
    status = ma.fields.String(metadata={"description": "HTTP status name"})
    error = ma.fields.String(
        metadata={"description": "Stable machine code from the catalogue (see x-error-codes)"}
    )
    message = ma.fields.String(metadata={"description": "Message in zh-CN or en (Accept-Language)"})
    errors = ma.fields.Dict(metadata={"description": "Field errors"})


def language() -> str:
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"]) if request else None
    if best is None:
        return current_app.extensions["fieldsync"].config.default_language
    return "zh" if best.startswith("zh") else "en"


def problem_response(
    code: str,
    status: int,
    *,
    params: dict[str, Any] | None = None,
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[dict[str, Any], int, dict[str, str]]:
    problem = CATALOGUE[code]
    payload: dict[str, Any] = {
        "code": status,
        "status": _status_name(status),
        "error": code,
        "message": problem.message(language(), params or {}),
    }
    if errors is not None:
        payload["errors"] = errors
    return payload, status, headers or {}


def _status_name(status: int) -> str:
    from werkzeug.http import HTTP_STATUS_CODES

    return HTTP_STATUS_CODES.get(status, "Error")


def handle_domain_error(error: DomainError) -> Any:
    extra = {k: v for k, v in error.params.items() if isinstance(v, str | int | float | bool)}
    payload, status, headers = problem_response(
        error.code, error.status, params=error.params, errors=error.errors
    )
    # machine-readable parameters (e.g. expected_device_seq) beside the message
    for key, value in extra.items():
        payload.setdefault(key, value)
    return payload, status, headers


def handle_http_exception(error: HTTPException) -> Any:
    status = error.code or 500
    code = _HTTP_CODES.get(status, "server.error" if status >= 500 else "request.bad_request")
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    headers = dict(data.get("headers") or {})
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    if status >= 500:
        current_app.logger.error("unhandled error", exc_info=error)
    return problem_response(code, status, errors=errors, headers=headers)


# A service checks "is this username free?" before it inserts, but cannot see a row another
# transaction has not committed yet: when two requests race, the database's unique constraint
# refuses the later one. Each constraint, by the name NAMING_CONVENTION gives it, stands for
# the rejection its service check would have made; any other one for request.concurrent_write
# (sending the request again gets the definitive answer).
UNIQUE_CONSTRAINT_CODES = {
    "uq_people_username": "org.username_taken",
    "uq_certificates_number": "org.certificate_number_taken",
}
RETRY_AFTER_SECONDS = 5
_PG_UNIQUE_VIOLATION = "23505"
_PG_DETAIL = re.compile(r"Key \((?P<columns>.+?)\)=\((?P<values>.*)\) already exists")
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<columns>.+)")
# the archive triggers (fieldsync.cases.triggers) raise "<catalogue code>: why"
_RAISED_CODE = re.compile(r"(?P<code>[a-z_]+\.[a-z_]+):")


def database_problem(error: sa_exc.SQLAlchemyError) -> tuple[str, dict[str, Any]]:
    """The catalogue code (and its message's parameters) a database error stands for."""
    if isinstance(error, sa_exc.IntegrityError):
        violated = _unique_violation(error)
        if violated is not None:
            constraint, values = violated
            return UNIQUE_CONSTRAINT_CODES.get(constraint, "request.concurrent_write"), values
        raised = _RAISED_CODE.match(_primary_message(error))
        if raised and raised["code"] in CATALOGUE:
            return raised["code"], {}
        return "server.error", {}
    unavailable = (
        sa_exc.OperationalError,  # cannot connect, connection lost, lock or statement timeout
        sa_exc.InterfaceError,  # the connection was closed under us
        sa_exc.DisconnectionError,
        sa_exc.TimeoutError,  # no connection free in the pool
    )
    if getattr(error, "connection_invalidated", False) or isinstance(error, unavailable):
        return "server.unavailable", {}
    return "server.error", {}


def _primary_message(error: sa_exc.DBAPIError) -> str:
    diag = getattr(error.orig, "diag", None)
    return (getattr(diag, "message_primary", None) or str(error.orig)).strip()


def _unique_violation(error: sa_exc.IntegrityError) -> tuple[str, dict[str, Any]] | None:
    """(constraint name, {column: value} where the database says) of a unique violation."""
    orig = error.orig
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION:
        diag = orig.diag  # type: ignore[union-attr]
        detail = _PG_DETAIL.match(diag.message_detail or "")
        values = {}
        if detail:
            columns, given = detail["columns"].split(", "), detail["values"].split(", ")
            values = dict(zip(columns, given, strict=True)) if len(columns) == len(given) else {}
        return str(diag.constraint_name), values
    sqlite = _SQLITE_UNIQUE.match(str(orig))
    if sqlite is None:
        return None
    # SQLite names table.column pairs, not the constraint: find it in the metadata
    pairs = [item.strip().split(".", 1) for item in sqlite["columns"].split(",")]
    table = Base.metadata.tables.get(pairs[0][0])
    columns = {column for _table, column in pairs}
    for constraint in table.constraints if table is not None else ():
        if isinstance(constraint, UniqueConstraint | PrimaryKeyConstraint):
            if {c.name for c in constraint.columns} == columns:
                return str(constraint.name), {}
    return sqlite["columns"], {}


def handle_database_error(error: sa_exc.SQLAlchemyError) -> Any:
    code, values = database_problem(error)
    if code == "server.error":
        raise error  # not understood: a bug, answered and logged like any other (500)
    headers = {}
    if code == "server.unavailable":
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        current_app.logger.warning("database unavailable: %s", error)
    problem = CATALOGUE[code]
    # a value the database did not name (SQLite never does) is left out of the message
    placeholders = {
        name for text in (problem.en, problem.zh) for _, name, _, _ in Formatter().parse(text)
    }
    params = {name: values.get(name, "") for name in placeholders if name}
    return problem_response(code, problem.status, params=params, headers=headers)
