"""Grid workers' reports (事件上报) for the back office: lists, one with its trace, assignment."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView

from fieldsync.api.base import BACK_OFFICE, Blueprint, SelectPage, db, principal, requires
from fieldsync.api.inspections import EventSchema
from fieldsync.api.schemas import AwareDateTime, StrictSchema
from fieldsync.clock import utcnow
from fieldsync.inspections import reports
from fieldsync.org.models import Role

blp = Blueprint("reports", __name__, description="Reports (事件上报) and their assignment")

# whoever receives the street's reports on sync (everyone but grid workers, who see their own)
READERS = (*BACK_OFFICE, Role.OFFICER)
ASSIGNERS = tuple(sorted(reports.ASSIGNERS))


class ReportSchema(ma.Schema):
    id = ma.fields.UUID()
    version = ma.fields.Integer()
    street_id = ma.fields.UUID()
    created_by_id = ma.fields.UUID()
    assignee_id = ma.fields.UUID(
        metadata={"description": "who deals with it; their devices receive it"}
    )
    category = ma.fields.String(allow_none=True)
    grid_id = ma.fields.UUID(allow_none=True)
    occurred_at = ma.fields.DateTime(allow_none=True)
    location = ma.fields.Dict(allow_none=True)
    address = ma.fields.String(allow_none=True)
    description = ma.fields.String(allow_none=True)
    evidence = ma.fields.List(ma.fields.String())
    status = ma.fields.String(metadata={"description": " | ".join(reports.STATUSES)})
    flags = ma.fields.List(ma.fields.Dict())
    evidence_missing = ma.fields.List(ma.fields.String())
    evidence_review = ma.fields.Dict(allow_none=True)
    submitted_at = ma.fields.DateTime(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class ReportDetailSchema(ReportSchema):
    events = ma.fields.List(ma.fields.Nested(EventSchema), metadata={"description": "the trace"})


class ReportQuerySchema(StrictSchema):
    status = ma.fields.String(validate=ma.validate.OneOf(reports.STATUSES))
    assignee_id = ma.fields.UUID()
    grid_id = ma.fields.UUID()
    date_from = AwareDateTime(data_key="from", metadata={"description": "occurred_at from"})
    date_to = AwareDateTime(data_key="to", metadata={"description": "occurred_at before"})


class AssignSchema(StrictSchema):
    assignee_id = ma.fields.UUID(
        required=True,
        metadata={
            "description": "an active grid worker, officer or the captain of the street; the "
            "current assignee changes nothing"
        },
    )
    note = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(max=2000),
        metadata={"description": "why, kept on the trace"},
    )


@blp.route("/reports")
class Reports(MethodView):
    @requires(*READERS)
    @blp.arguments(ReportQuerySchema, location="query")
    @blp.response(200, ReportSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, query: dict[str, Any]) -> Any:
        """The street's reports, newest first."""
        return reports.list_reports(street_id=principal().street_id, **query)


@blp.route("/reports/<uuid:report_id>")
class ReportItem(MethodView):
    @requires(*READERS)
    @blp.response(200, ReportDetailSchema)
    @blp.alt_response(404, description="report.not_found")
    def get(self, report_id: Any) -> Any:
        """One report with its trace (全过程留痕): every event, oldest first."""
        return reports.get_report_with_events(
            db(), report_id=report_id, street_id=principal().street_id
        )


@blp.route("/reports/<uuid:report_id>/assign")
class ReportAssign(MethodView):
    @requires(*ASSIGNERS)
    @blp.arguments(AssignSchema)
    @blp.response(200, ReportSchema)
    @blp.alt_response(404, description="report.not_found")
    @blp.alt_response(409, description="report.not_submitted")
    @blp.alt_response(
        422,
        description="report.assignee_unknown, report.assignee_inactive, "
        "report.assignee_not_eligible",
    )
    def post(self, body: dict[str, Any], report_id: Any) -> Any:
        """Hand a submitted report to another person of the street (the dispatcher or the
        captain). The handover is on the trace; on their next pull the former assignee's
        devices get the report as delete / out_of_scope, the new assignee's get it."""
        return reports.assign(
            db(),
            report_id=report_id,
            principal=principal(),
            assignee_id=body["assignee_id"],
            note=body["note"],
            now=utcnow(),
        )
