"""Cases diverted from inspections and their lifecycle (DOMAIN.md §5, PROTOCOL.md §4a)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView

from fieldsync.api.base import BACK_OFFICE, Blueprint, SelectPage, config, db, principal, requires
from fieldsync.api.inspections import EventSchema
from fieldsync.api.schemas import AwareDateTime, StrictSchema
from fieldsync.cases import service
from fieldsync.clock import utcnow

blp = Blueprint("cases", __name__, description="Cases: filing, conclusion, archive")


class CaseSchema(ma.Schema):
    id = ma.fields.UUID()
    street_id = ma.fields.UUID()
    inspection_id = ma.fields.UUID()
    finding_id = ma.fields.String()
    kind = ma.fields.String(metadata={"description": "case | referral"})
    matter_code = ma.fields.String()
    department_code = ma.fields.String()
    state = ma.fields.String(
        metadata={
            "description": "awaiting_filing | filed | declined | concluded | archived; "
            "referred for a referral"
        }
    )
    assignee_ids = ma.fields.List(ma.fields.String())
    occurred_at = ma.fields.DateTime(allow_none=True)
    number = ma.fields.String(allow_none=True)
    filed_at = ma.fields.DateTime(allow_none=True)
    filed_by_id = ma.fields.UUID(allow_none=True)
    decline_reason = ma.fields.String(allow_none=True)
    declined_at = ma.fields.DateTime(allow_none=True)
    decision = ma.fields.String(allow_none=True)
    summary = ma.fields.String(allow_none=True)
    concluded_at = ma.fields.DateTime(allow_none=True)
    archived_at = ma.fields.DateTime(allow_none=True)
    archived_by_id = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class CaseDetailSchema(CaseSchema):
    transitions = ma.fields.Method("_transitions")

    def _transitions(self, case: Any) -> Any:
        return EventSchema(many=True).dump(service.case_events(db(), case.id))


class CaseQuerySchema(StrictSchema):
    inspection_id = ma.fields.UUID()
    state = ma.fields.String(
        validate=ma.validate.OneOf(
            ["awaiting_filing", "filed", "declined", "concluded", "archived", "referred"]
        )
    )
    department = ma.fields.String(validate=ma.validate.Length(1, 32))
    matter = ma.fields.String(validate=ma.validate.Length(1, 32))
    date_from = AwareDateTime(data_key="from")
    date_to = AwareDateTime(data_key="to")
    officer = ma.fields.UUID()


class FileSchema(StrictSchema):
    """Nothing to send: the number is always generated (FIELDSYNC_CASE_NUMBER_FORMAT), one
    sequence per street and year."""


def _required_text(max_length: int) -> ma.fields.String:
    # Missing or blank, the text reaches the state machine, which answers with the action's own
    # code (case.reason_required, case.conclusion_required) whichever way it is missing.
    return ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(max=max_length),
        metadata={"description": "required, not blank"},
    )


class DeclineSchema(StrictSchema):
    reason = _required_text(4000)


class ConcludeSchema(StrictSchema):
    decision = _required_text(4000)
    summary = _required_text(8000)


class ArchiveSchema(StrictSchema):
    pass


@blp.route("/cases")
class Cases(MethodView):
    @requires(*BACK_OFFICE)
    @blp.arguments(CaseQuerySchema, location="query")
    @blp.response(200, CaseSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, query: dict[str, Any]) -> Any:
        """The street's cases (a case handler: their unit's), newest first."""
        return service.list_cases(principal=principal(), **query)


@blp.route("/cases/<uuid:case_id>")
class CaseItem(MethodView):
    @requires(*BACK_OFFICE)
    @blp.response(200, CaseDetailSchema)
    def get(self, case_id: Any) -> Any:
        """One case with its transitions (the trace)."""
        return service.get_case(db(), case_id=case_id, principal=principal())


def _act(case_id: Any, action: str, payload: dict[str, Any]) -> Any:
    return service.act(
        db(),
        case_id=case_id,
        action=action,
        principal=principal(),
        payload=payload,
        now=utcnow(),
        case_number_format=config().case_number_format,
    )


@blp.route("/cases/<uuid:case_id>/file")
class CaseFiling(MethodView):
    @requires(*BACK_OFFICE)
    @blp.arguments(FileSchema)
    @blp.response(200, CaseDetailSchema)
    @blp.alt_response(403, description="case.handler_only, case.other_department")
    @blp.alt_response(409, description="case.transition_not_allowed")
    def post(self, body: dict[str, Any], case_id: Any) -> Any:
        """立案: file the case under the next number of its street and year."""
        return _act(case_id, "file", body)


@blp.route("/cases/<uuid:case_id>/decline")
class CaseDeclining(MethodView):
    @requires(*BACK_OFFICE)
    @blp.arguments(DeclineSchema)
    @blp.response(200, CaseDetailSchema)
    @blp.alt_response(409, description="case.transition_not_allowed")
    @blp.alt_response(422, description="case.reason_required")
    def post(self, body: dict[str, Any], case_id: Any) -> Any:
        """不予立案: decline to file the case, with the reason."""
        return _act(case_id, "decline", body)


@blp.route("/cases/<uuid:case_id>/conclude")
class CaseConclusion(MethodView):
    @requires(*BACK_OFFICE)
    @blp.arguments(ConcludeSchema)
    @blp.response(200, CaseDetailSchema)
    @blp.alt_response(409, description="case.transition_not_allowed")
    @blp.alt_response(422, description="case.conclusion_required")
    def post(self, body: dict[str, Any], case_id: Any) -> Any:
        """办结: conclude a filed case with the decision and a summary."""
        return _act(case_id, "conclude", body)


@blp.route("/cases/<uuid:case_id>/archive")
class CaseArchive(MethodView):
    @requires(*BACK_OFFICE)
    @blp.arguments(ArchiveSchema)
    @blp.response(200, CaseDetailSchema)
    @blp.alt_response(403, description="case.archive_captain_only")
    @blp.alt_response(409, description="case.transition_not_allowed, case.archived")
    def post(self, body: dict[str, Any], case_id: Any) -> Any:
        """归档: the captain archives a concluded case; it and its inspection never change."""
        return _act(case_id, "archive", body)
