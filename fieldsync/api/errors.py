"""The one place where errors become HTTP responses, in flask-smorest's shape plus `error`."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, request
from werkzeug.exceptions import HTTPException

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
