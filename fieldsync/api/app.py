"""create_app: configuration, database, the API, authentication and one transaction per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from argon2 import PasswordHasher
from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fieldsync import __version__
from fieldsync.api import errors as api_errors
from fieldsync.api.base import db, refuse_loose_query
from fieldsync.clock import utcnow
from fieldsync.config import Config
from fieldsync.db import make_engine, make_sessionmaker
from fieldsync.errors import CATALOGUE, DomainError
from fieldsync.evidence.blobstore import blobstore_from_url
from fieldsync.identity.service import authenticate, password_hasher, touch_device

PROTOCOL_VERSION = 1


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON written by orjson, several times faster than json.dumps (which took 4% of a
    1,000-mutation push over HTTP to write its answer): the same values, Flask's conversions of
    dates, decimals and dataclasses included, in UTF-8 rather than \\u escapes. What orjson
    cannot write (a lone surrogate echoed from a request, an integer beyond 64 bits) and
    debug mode's indented output are left to json.dumps, as before."""

    sort_keys = False
    _OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    _COMPACT: dict[str, Any] = {"separators": (",", ":")}

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if not kwargs or kwargs == self._COMPACT:
            try:
                return orjson.dumps(
                    obj, default=self.default, option=self._OPTIONS | orjson.OPT_NON_STR_KEYS
                ).decode()
            except orjson.JSONEncodeError:
                pass  # json.dumps writes it, or raises its own TypeError as ever
        return super().dumps(obj, **kwargs)


@dataclass
class Services:
    """What the app holds for its requests, jobs and CLI commands (app.extensions["fieldsync"])."""

    config: Config
    engine: Engine
    sessionmaker: sessionmaker[Session]
    hasher: PasswordHasher
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def token_lifetime(self) -> timedelta:
        return timedelta(hours=self.config.token_lifetime_hours)


class FieldsyncApi(Api):
    ERROR_SCHEMA = api_errors.ErrorSchema

    def handle_http_exception(self, error: Any) -> Any:
        return api_errors.handle_http_exception(error)


def _spec_options() -> dict[str, Any]:
    return {
        "info": {
            "description": (
                "fieldsync sync protocol v1 (see PROTOCOL.md). Errors carry a stable machine "
                "code in `error`; the catalogue is listed under `x-error-codes`."
            )
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "x-error-codes": [
            {"error": p.code, "status": p.status, "en": p.en, "zh": p.zh}
            for p in sorted(CATALOGUE.values(), key=lambda p: p.code)
        ],
    }


def create_app(config: Config | dict[str, Any] | None = None) -> Flask:
    if config is None:
        config = Config.from_env()
    elif isinstance(config, dict):
        config = Config.from_env(**config)

    app = Flask("fieldsync", static_folder=None)
    app.config.update(
        API_TITLE="fieldsync",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS=_spec_options(),
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        JSON_SORT_KEYS=False,
        TESTING=config.testing,
    )
    app.json = JsonProvider(app)
    if config.trusted_proxies:
        # the client's address, not the proxy's, for the custody log; only as many hops as
        # configured are believed, so a phone cannot forge where it called from
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]

    config.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.database_url)
    services = Services(
        config=config,
        engine=engine,
        sessionmaker=make_sessionmaker(engine),
        hasher=password_hasher(
            time_cost=config.password_time_cost, memory_kib=config.password_memory_kib
        ),
    )
    services.extras["blobstore"] = blobstore_from_url(config.blobstore_url, config.data_dir)
    app.extensions["fieldsync"] = services

    api = FieldsyncApi(app)
    app.register_error_handler(DomainError, api_errors.handle_domain_error)
    app.register_error_handler(SQLAlchemyError, api_errors.handle_database_error)
    _register_blueprints(api)
    _install_request_lifecycle(app)

    from fieldsync.cli import register_cli

    register_cli(app)
    from fieldsync.jobs import start_scheduler_when_serving

    start_scheduler_when_serving(services)
    return app


def _register_blueprints(api: Api) -> None:
    from fieldsync.api import (
        cases,
        evidence,
        health,
        identity,
        inspections,
        org,
        reports,
        rules,
        sync,
        uploads,
    )

    for module in (
        health,
        identity,
        org,
        sync,
        inspections,
        reports,
        cases,
        rules,
        uploads,
        evidence,
    ):
        api.register_blueprint(module.blp, url_prefix="/api/v1")


def _view_method(app: Flask) -> Any:
    view = app.view_functions.get(request.endpoint or "")
    if view is None:
        return None
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return view
    method = request.method.lower()
    if method == "head":
        method = "get"
    return getattr(view_class, method, None)


def _install_request_lifecycle(app: Flask) -> None:
    @app.before_request
    def _authenticate() -> None:
        endpoint = request.endpoint or ""
        if endpoint.startswith("api-docs."):
            return
        func = _view_method(app)
        if func is None:  # routing will answer 404 / 405
            return
        if not getattr(func, "_fieldsync_public", False):
            now = utcnow()
            principal = authenticate(
                db(), authorization=request.headers.get("Authorization"), now=now
            )
            roles = getattr(func, "_fieldsync_roles", None)
            if not roles or not principal.roles & roles:
                raise DomainError("auth.forbidden")
            touch_device(principal.device, now=now)
            g.principal = principal
        refuse_loose_query(func)

    @app.after_request
    def _finish_transaction(response: Any) -> Any:
        # The edge owns the transaction: one commit per request, and only for a success.
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            try:
                if response.status_code < 400:
                    session.commit()
                else:
                    session.rollback()
            except SQLAlchemyError as error:
                # the commit itself can lose the race or the connection: answer for that
                session.rollback()
                response = app.make_response(api_errors.handle_database_error(error))
            finally:
                session.close()
        return response

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()
