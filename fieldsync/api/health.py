"""GET /health: is the service up and can it reach its database."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from fieldsync import __version__
from fieldsync.api.base import Blueprint, db, public
from fieldsync.api.errors import RETRY_AFTER_SECONDS
from fieldsync.clock import utcnow
from fieldsync.migrate import head_revision

blp = Blueprint("health", __name__, description="Service health")


class HealthSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "ok or degraded"})
    database = ma.fields.String(metadata={"description": "ok or unreachable"})
    database_backend = ma.fields.String()
    schema = ma.fields.String(
        metadata={"description": "current, or behind (run `make migrate`), or unknown"}
    )
    schema_revision = ma.fields.String(allow_none=True, metadata={"description": "Alembic's"})
    version = ma.fields.String()
    protocol = ma.fields.Integer()
    server_time = ma.fields.DateTime()


def _schema_revision(session: Any) -> str | None:
    try:
        return session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:  # never migrated
        session.rollback()
        return None


@blp.route("/health")
class Health(MethodView):
    @public
    @blp.response(200, HealthSchema)
    @blp.alt_response(
        503,
        schema=HealthSchema,
        description="The database is unreachable, or its schema is behind this code's",
    )
    @blp.doc(security=[])
    def get(self) -> Any:
        session = db()
        try:
            session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            database, schema, revision = "unreachable", "unknown", None
        else:
            database, revision = "ok", _schema_revision(session)
            schema = "current" if revision == head_revision() else "behind"
        body = {
            "status": "ok" if schema == "current" else "degraded",
            "database": database,
            "database_backend": session.get_bind().dialect.name,
            "schema": schema,
            "schema_revision": revision,
            "version": __version__,
            "protocol": 1,
            "server_time": utcnow(),
        }
        if body["status"] == "ok":
            return body, 200
        return body, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
