"""Inspections for the back office: lists, one with its trace, the review queue and review."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView

from fieldsync.api.base import BACK_OFFICE, Blueprint, SelectPage, db, principal, requires
from fieldsync.api.schemas import AwareDateTime, StrictSchema
from fieldsync.clock import utcnow
from fieldsync.inspections import review
from fieldsync.org.models import Role

blp = Blueprint("inspections", __name__, description="Inspections, review (DOMAIN.md §4)")

READERS = (*BACK_OFFICE, Role.OFFICER)
REVIEWERS = (Role.REVIEWER, Role.CAPTAIN)


class EventSchema(ma.Schema):
    id = ma.fields.Integer()
    entity = ma.fields.String()
    entity_id = ma.fields.UUID()
    version = ma.fields.Integer(allow_none=True)
    action = ma.fields.String()
    person_id = ma.fields.UUID(allow_none=True)
    device_id = ma.fields.UUID(allow_none=True)
    device_time = ma.fields.DateTime(allow_none=True)
    hlc = ma.fields.String(allow_none=True)
    server_time = ma.fields.DateTime()
    changes = ma.fields.Dict()


class InspectionSchema(ma.Schema):
    id = ma.fields.UUID()
    version = ma.fields.Integer()
    street_id = ma.fields.UUID()
    created_by_id = ma.fields.UUID()
    matter_code = ma.fields.String(allow_none=True)
    occurred_at = ma.fields.DateTime(allow_none=True)
    location = ma.fields.Dict(allow_none=True)
    address = ma.fields.String(allow_none=True)
    present = ma.fields.List(ma.fields.String())
    party = ma.fields.Dict(allow_none=True)
    findings = ma.fields.List(ma.fields.Dict())
    measures = ma.fields.List(ma.fields.Dict())
    evidence = ma.fields.List(ma.fields.String())
    description = ma.fields.String(allow_none=True)
    claimed_tier = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"description": "draft | submitted | diverted"})
    tier = ma.fields.String(allow_none=True)
    second_inspector_id = ma.fields.UUID(allow_none=True)
    decisions = ma.fields.List(ma.fields.Dict())
    flags = ma.fields.List(ma.fields.Dict())
    evidence_missing = ma.fields.List(ma.fields.String())
    cases = ma.fields.List(ma.fields.Dict())
    review_state = ma.fields.String(
        allow_none=True, metadata={"description": "awaiting_captain | acknowledged | overruled"}
    )
    review = ma.fields.Dict(allow_none=True)
    submitted_at = ma.fields.DateTime(allow_none=True)
    sealed_at = ma.fields.DateTime(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class InspectionDetailSchema(InspectionSchema):
    events = ma.fields.List(ma.fields.Nested(EventSchema), metadata={"description": "the trace"})


class InspectionQuerySchema(StrictSchema):
    status = ma.fields.String(validate=ma.validate.OneOf(["draft", "submitted", "diverted"]))
    review_state = ma.fields.String(
        validate=ma.validate.OneOf(["awaiting_captain", "acknowledged", "overruled"])
    )
    matter = ma.fields.String(validate=ma.validate.Length(1, 32))
    flagged = ma.fields.Boolean()
    officer = ma.fields.UUID()
    date_from = AwareDateTime(data_key="from")
    date_to = AwareDateTime(data_key="to")


class ReviewSchema(StrictSchema):
    decision = ma.fields.String(
        required=True, validate=ma.validate.OneOf(["acknowledge", "overrule"])
    )
    note = ma.fields.String(load_default=None, validate=ma.validate.Length(max=2000))


@blp.route("/inspections")
class Inspections(MethodView):
    @requires(*READERS)
    @blp.arguments(InspectionQuerySchema, location="query")
    @blp.response(200, InspectionSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, query: dict[str, Any]) -> Any:
        """The street's inspections, newest first."""
        return review.list_inspections(street_id=principal().street_id, **query)


@blp.route("/inspections/<uuid:inspection_id>")
class InspectionItem(MethodView):
    @requires(*READERS)
    @blp.response(200, InspectionDetailSchema)
    def get(self, inspection_id: Any) -> Any:
        """One inspection with its trace (全过程留痕): every event, oldest first."""
        return review.get_inspection_with_events(
            db(), inspection_id=inspection_id, street_id=principal().street_id
        )


@blp.route("/inspections/<uuid:inspection_id>/review")
class InspectionReview(MethodView):
    @requires(Role.CAPTAIN)
    @blp.arguments(ReviewSchema)
    @blp.response(200, InspectionSchema)
    @blp.alt_response(409, description="inspection.review_not_pending, inspection.archived")
    def post(self, body: dict[str, Any], inspection_id: Any) -> Any:
        """The captain acknowledges or overrules a flagged inspection, with a note."""
        return review.review(
            db(),
            inspection_id=inspection_id,
            principal=principal(),
            decision=body["decision"],
            note=body["note"],
            now=utcnow(),
        )


@blp.route("/review-queue")
class ReviewQueue(MethodView):
    @requires(*REVIEWERS)
    @blp.response(200, InspectionSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self) -> Any:
        """Flagged inspections awaiting the captain, then submitted ones not yet reviewed."""
        return review.review_queue(street_id=principal().street_id)
