"""The second-inspector rule over the server's roster, and its conformance vectors (§6)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView

from fieldsync.api.base import ALL_ROLES, Blueprint, db, principal, requires
from fieldsync.api.schemas import AwareDateTime, StrictSchema
from fieldsync.inspections.rule_check import second_inspector
from fieldsync.rules.vectors import load_vectors

blp = Blueprint("rules", __name__, description="The second-inspector rule (PROTOCOL.md §6)")


class SecondInspectorQuerySchema(StrictSchema):
    matter_code = ma.fields.String(required=True, validate=ma.validate.Length(1, 32))
    present = ma.fields.List(ma.fields.UUID(), required=True, validate=ma.validate.Length(max=50))
    at = AwareDateTime(required=True)


class ReasonSchema(ma.Schema):
    code = ma.fields.String()
    person_id = ma.fields.String(allow_none=True)
    detail = ma.fields.String()
    message_en = ma.fields.String()
    message_zh = ma.fields.String()


class DecisionSchema(ma.Schema):
    matter_code = ma.fields.String()
    tier = ma.fields.String(
        metadata={"description": "enforcement | inspection | investigation | referral"}
    )
    authorised_ids = ma.fields.List(ma.fields.String())
    second_inspector_id = ma.fields.String(allow_none=True)
    allowed_measures = ma.fields.List(ma.fields.String())
    reasons = ma.fields.List(ma.fields.Nested(ReasonSchema))


class VectorsSchema(ma.Schema):
    format = ma.fields.String()
    version = ma.fields.Integer()
    rule = ma.fields.String()
    cases = ma.fields.List(
        ma.fields.Dict(), metadata={"description": "{name, description, input, expected}"}
    )


@blp.route("/rules/second-inspector")
class SecondInspector(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(SecondInspectorQuerySchema)
    @blp.response(200, DecisionSchema)
    @blp.alt_response(422, description="org.unknown_matter, inspection.unknown_person")
    def post(self, body: dict[str, Any]) -> Any:
        """Tier, second inspector, allowed measures and reasons from the server's roster."""
        decision = second_inspector(
            db(),
            matter_code=body["matter_code"],
            present=body["present"],
            at=body["at"],
            street_id=principal().street_id,
        )
        return decision.to_dict()


@blp.route("/rules/vectors")
class Vectors(MethodView):
    @requires(*ALL_ROLES)
    @blp.response(200, VectorsSchema)
    def get(self) -> Any:
        """The conformance vectors (input → expected decision) for offline implementations."""
        return load_vectors()
