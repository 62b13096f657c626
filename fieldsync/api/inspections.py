"""Inspections for the back office: lists, one with its trace, the review queue and review."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView

from fieldsync.api.base import BACK_OFFICE, Blueprint, SelectPage, db, principal, requires
from fieldsync.api.evidence import EvidenceSchema
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
        allow_none=True,
        metadata={
            "description": "null (a draft), awaiting_captain (flagged: the captain's) → "
            "acknowledged | overruled; pending (submitted: a reviewer's or the captain's) → "
            "accepted | rejected | more_needed"
        },
    )
    review = ma.fields.Dict(
        allow_none=True, metadata={"description": "the last review: {decision, note, by, at}"}
    )
    submitted_at = ma.fields.DateTime(allow_none=True)
    sealed_at = ma.fields.DateTime(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class InspectionDetailSchema(InspectionSchema):
    events = ma.fields.List(ma.fields.Nested(EventSchema), metadata={"description": "the trace"})


class InspectionQuerySchema(StrictSchema):
    status = ma.fields.String(validate=ma.validate.OneOf(["draft", "submitted", "diverted"]))
    review_state = ma.fields.String(validate=ma.validate.OneOf(review.REVIEW_STATES))
    matter = ma.fields.String(validate=ma.validate.Length(1, 32))
    flagged = ma.fields.Boolean()
    officer = ma.fields.UUID()
    date_from = AwareDateTime(data_key="from")
    date_to = AwareDateTime(data_key="to")


class ReviewSchema(StrictSchema):
    decision = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(sorted(review.DECISIONS)),
        metadata={
            "description": "flagged (awaiting_captain), by the captain: acknowledge | overrule; "
            "pending, by a reviewer or the captain: accept | reject | more_needed"
        },
    )
    note = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(max=2000),
        metadata={"description": "why; required for overrule, reject and more_needed"},
    )


class ReviewItemSchema(ma.Schema):
    kind = ma.fields.String(metadata={"description": "inspection | evidence"})
    id = ma.fields.String(metadata={"description": "the inspection's id, or the photo's SHA-256"})
    review_state = ma.fields.String(metadata={"description": "awaiting_captain | pending"})
    waiting_since = ma.fields.DateTime(
        metadata={"description": "submitted (an inspection), received (a photo)"}
    )
    decisions = ma.fields.List(
        ma.fields.String(), metadata={"description": "what the caller may decide"}
    )
    inspection = ma.fields.Nested(InspectionSchema)
    evidence = ma.fields.Nested(EvidenceSchema)


class ReviewQueuePage(SelectPage):
    """The queue's rows, a page at a time, as items (the total counts both kinds)."""

    @property
    def items(self) -> list[Any]:
        stmt = self.collection.offset(self.page_params.first_item).limit(self.page_params.page_size)
        return review.queue_items(db(), list(db().execute(stmt)), principal())


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
    @requires(*REVIEWERS)
    @blp.arguments(ReviewSchema)
    @blp.response(200, InspectionSchema)
    @blp.alt_response(403, description="inspection.review_captain_only")
    @blp.alt_response(
        409,
        description="inspection.review_not_pending, inspection.review_wrong_decision, "
        "inspection.archived",
    )
    @blp.alt_response(422, description="inspection.review_note_required")
    def post(self, body: dict[str, Any], inspection_id: Any) -> Any:
        """Review an inspection: the captain acknowledges or overrules a flagged one; a reviewer
        or the captain accepts, rejects or asks more for a submitted one. The device sees the
        review on its next pull; nothing done in the field is dropped."""
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
    @blp.response(200, ReviewItemSchema(many=True))
    @blp.paginate(ReviewQueuePage)
    def get(self) -> Any:
        """What awaits the caller's review: inspections their role may decide (flagged ones,
        the captain's, first) and photos awaiting review, oldest first."""
        return review.review_queue(principal())
