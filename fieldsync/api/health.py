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

blp = Blueprint("health", __name__, description="Service health")


class HealthSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "ok or degraded"})
    database = ma.fields.String(metadata={"description": "ok or unreachable"})
    database_backend = ma.fields.String()
    version = ma.fields.String()
    protocol = ma.fields.Integer()
    server_time = ma.fields.DateTime()


@blp.route("/health")
class Health(MethodView):
    @public
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="The database is unreachable")
    @blp.doc(security=[])
    def get(self) -> Any:
        session = db()
        try:
            session.execute(text("SELECT 1"))
            database = "ok"
        except SQLAlchemyError:
            database = "unreachable"
        body = {
            "status": "ok" if database == "ok" else "degraded",
            "database": database,
            "database_backend": session.get_bind().dialect.name,
            "version": __version__,
            "protocol": 1,
            "server_time": utcnow(),
        }
        if database == "ok":
            return body, 200
        return body, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
