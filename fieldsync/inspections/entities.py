"""Inspections and reports as synced entities: fields, merge policies, validation, actions."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from fieldsync.clock import isoformat, parse_rfc3339
from fieldsync.errors import DomainError
from fieldsync.inspections.models import Inspection, Report
from fieldsync.inspections.rule_check import await_review, check
from fieldsync.org.models import Grid, Role
from fieldsync.org.reference import reference_reads
from fieldsync.sync.loading import jsonable
from fieldsync.sync.merge import FieldSpec, Policy
from fieldsync.sync.registry import ActionContext, SyncedEntity, register

LWW = FieldSpec(Policy.DEVICE_LWW)
UNION = FieldSpec(Policy.UNION)
UNION_BY_ID = FieldSpec(Policy.UNION_BY_ID)

SHA256 = ma.validate.Regexp(r"^[0-9a-f]{64}$", error="not a lowercase hex SHA-256")
MEASURE_TYPES = ["photo_evidence", "summons", "seizure", "order_rectification", "onsite_penalty"]


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class JsonNumber(ma.fields.Float):
    """A JSON number: "39.9" is a string, refused as a phone bug rather than read as 39.9."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class Location(_Strict):
    lat = JsonNumber(required=True, validate=ma.validate.Range(-90, 90))
    lon = JsonNumber(required=True, validate=ma.validate.Range(-180, 180))
    accuracy_m = JsonNumber(load_default=None, validate=ma.validate.Range(0, 100_000))


class Party(_Strict):
    name = ma.fields.String(validate=ma.validate.Length(max=200))
    id_document = ma.fields.String(validate=ma.validate.Length(max=64))
    phone = ma.fields.String(validate=ma.validate.Length(max=32))
    business_name = ma.fields.String(validate=ma.validate.Length(max=200))
    licence_no = ma.fields.String(validate=ma.validate.Length(max=64))
    kind = ma.fields.String(validate=ma.validate.OneOf(["individual", "organisation"]))


class Finding(_Strict):
    id = ma.fields.UUID(required=True)
    matter_code = ma.fields.String(required=True, validate=ma.validate.Length(1, 32))
    description = ma.fields.String(load_default="", validate=ma.validate.Length(max=4000))


class Measure(_Strict):
    id = ma.fields.UUID(required=True)
    # an unknown type gets its own code (measure.unknown_type) from validate_measure
    type = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, 32),
        metadata={"description": " | ".join(MEASURE_TYPES)},
    )
    finding_id = ma.fields.UUID(load_default=None)
    details = ma.fields.Dict(keys=ma.fields.String(), load_default=dict)


class WireDateTime(ma.fields.AwareDateTime):
    """RFC 3339 in, canonical RFC 3339 UTC string out (values are compared as text)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        try:
            return isoformat(parse_rfc3339(value))
        except ValueError:  # not RFC 3339, or past year 9999 once in UTC
            raise self.make_error("invalid", input=value, obj_type="datetime") from None


class WireUUID(ma.fields.UUID):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        return str(super()._deserialize(value, attr, data, **kwargs))


class InspectionFields(_Strict):
    """What a device may write into an inspection (values of `set`, items of `add`)."""

    matter_code = ma.fields.String(allow_none=True, validate=ma.validate.Length(1, 32))
    occurred_at = WireDateTime(format="iso", allow_none=True)
    location = ma.fields.Nested(Location, allow_none=True)
    address = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=500))
    present = ma.fields.List(WireUUID(), validate=ma.validate.Length(max=50))
    party = ma.fields.Nested(Party, allow_none=True)
    findings = ma.fields.List(ma.fields.Nested(Finding), validate=ma.validate.Length(max=50))
    measures = ma.fields.List(ma.fields.Nested(Measure), validate=ma.validate.Length(max=100))
    evidence = ma.fields.List(
        ma.fields.String(validate=SHA256), validate=ma.validate.Length(max=200)
    )
    description = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=4000))
    task_order_id = WireUUID(allow_none=True)
    claimed_tier = ma.fields.String(
        allow_none=True,
        validate=ma.validate.OneOf(["enforcement", "inspection", "investigation", "referral"]),
    )


class ReportFields(_Strict):
    category = ma.fields.String(allow_none=True, validate=ma.validate.Length(1, 64))
    grid_id = WireUUID(allow_none=True)
    occurred_at = WireDateTime(format="iso", allow_none=True)
    location = ma.fields.Nested(Location, allow_none=True)
    address = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=500))
    description = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=4000))
    evidence = ma.fields.List(
        ma.fields.String(validate=SHA256), validate=ma.validate.Length(max=200)
    )


def _wire(record: Any, name: str) -> Any:
    return jsonable(getattr(record, name))


def _common(record: Inspection | Report) -> dict[str, Any]:
    return {
        "street_id": str(record.street_id),
        "created_by_id": str(record.created_by_id),
        "status": record.status,
        "flags": record.flags,
        "evidence_missing": record.evidence_missing,
        "evidence_review": record.evidence_review or {},
        "submitted_at": isoformat(record.submitted_at),
        "created_at": isoformat(record.created_at),
        "updated_at": isoformat(record.updated_at),
    }


def serialize_inspection(i: Inspection) -> dict[str, Any]:
    data = {name: _wire(i, name) for name in INSPECTION_FIELDS}
    data.update(_common(i))
    data.update(
        {
            "tier": i.tier,
            "second_inspector_id": str(i.second_inspector_id) if i.second_inspector_id else None,
            "decisions": i.decisions,
            "cases": i.cases,
            "review_state": i.review_state,
            "review": i.review,
        }
    )
    return data


def serialize_report(r: Report) -> dict[str, Any]:
    data = {name: _wire(r, name) for name in REPORT_FIELDS}
    data.update(_common(r))
    data["assignee_id"] = str(r.assignee_id)
    return data


INSPECTION_FIELDS: dict[str, FieldSpec] = {
    "matter_code": LWW,
    "occurred_at": LWW,
    "location": LWW,
    "address": LWW,
    "present": UNION,
    "party": LWW,
    "findings": UNION_BY_ID,
    "measures": UNION_BY_ID,
    "evidence": UNION,
    "description": LWW,
    "task_order_id": LWW,
    "claimed_tier": LWW,
}
REPORT_FIELDS: dict[str, FieldSpec] = {
    "category": LWW,
    "grid_id": LWW,
    "occurred_at": LWW,
    "location": LWW,
    "address": LWW,
    "description": LWW,
    "evidence": UNION,
}

OFFICERS = frozenset({Role.OFFICER, Role.CAPTAIN})
REPORTERS = frozenset({Role.GRID_WORKER, Role.OFFICER, Role.CAPTAIN, Role.DISPATCHER})


def _create_inspection(ctx: ActionContext, entity_id: uuid.UUID) -> Inspection:
    if not ctx.principal.has(*OFFICERS):
        raise DomainError("sync.not_permitted")
    p = ctx.principal
    return Inspection(
        id=entity_id,
        street_id=p.street_id,
        created_by_id=p.person_id,
        created_device_id=p.device.id,
        status="draft",
        version=0,
        present=[],
        findings=[],
        measures=[],
        evidence=[],
        flags=[],
        decisions=[],
        evidence_missing=[],
        cases=[],
        field_clocks={},
        created_at=ctx.now,
        updated_at=ctx.now,
    )


def _authorize_inspection(ctx: ActionContext, record: Inspection) -> None:
    if record.street_id != ctx.principal.street_id:
        raise DomainError("sync.not_in_scope")
    if not ctx.principal.has(*OFFICERS):
        raise DomainError("sync.not_permitted")
    if record.sealed_at is not None:
        raise DomainError("inspection.archived")


def _check_inspection(ctx: ActionContext, values: Mapping[str, Any]) -> None:
    """References must exist: the matters of the inspection and its findings, the people."""
    reads = reference_reads(ctx.session)
    codes = {values.get("matter_code")} | {f["matter_code"] for f in values.get("findings") or []}
    codes.discard(None)
    reads.matters(codes)
    reads.people(values.get("present") or [], street_id=ctx.principal.street_id)
    finding_ids = {f["id"] for f in values.get("findings") or []}
    for m in values.get("measures") or []:
        if m.get("finding_id") and m["finding_id"] not in finding_ids:
            raise DomainError("inspection.unknown_finding", id=m["finding_id"])
        _validate_measure(m)


def _validate_measure(measure: Mapping[str, Any]) -> None:
    from fieldsync.rules.measures import validate_measure

    validate_measure(measure)


def _submit_inspection(ctx: ActionContext, record: Inspection, mutation: Mapping[str, Any]) -> None:
    if record.status != "draft":
        # submitting twice changes nothing: a replayed or repeated submit never diverts twice
        return
    if not record.matter_code and not record.findings:
        raise DomainError("inspection.incomplete")
    from fieldsync.cases.service import divert

    check(ctx.session, record)
    record.status = "submitted"
    record.submitted_at = ctx.now
    await_review(record)  # back at the team: before the back office
    # back at the team (归队): each finding to the unit owning its matter (DOMAIN.md §5)
    divert(
        ctx.session,
        inspection=record,
        now=ctx.now,
        person_id=ctx.principal.person_id,
        device_id=ctx.principal.device.id,
        device_time=ctx.device_time,
        hlc=ctx.hlc,
    )


def _create_report(ctx: ActionContext, entity_id: uuid.UUID) -> Report:
    if not ctx.principal.has(*REPORTERS):
        raise DomainError("sync.not_permitted")
    p = ctx.principal
    return Report(
        id=entity_id,
        street_id=p.street_id,
        created_by_id=p.person_id,
        created_device_id=p.device.id,
        assignee_id=p.person_id,
        status="draft",
        version=0,
        evidence=[],
        flags=[],
        evidence_missing=[],
        field_clocks={},
        created_at=ctx.now,
        updated_at=ctx.now,
    )


def _authorize_report(ctx: ActionContext, record: Report) -> None:
    p = ctx.principal
    if record.street_id != p.street_id:
        raise DomainError("sync.not_in_scope")
    if record.assignee_id != p.person_id and not p.has(Role.OFFICER, Role.CAPTAIN, Role.DISPATCHER):
        raise DomainError("sync.not_in_scope")


def _check_report(ctx: ActionContext, values: Mapping[str, Any]) -> None:
    grid_id = values.get("grid_id")
    if grid_id:
        grid = ctx.session.get(Grid, uuid.UUID(grid_id))
        if grid is None or grid.community.street_id != ctx.principal.street_id:
            raise DomainError("org.unknown_grid", id=grid_id)


def _submit_report(ctx: ActionContext, record: Report, mutation: Mapping[str, Any]) -> None:
    if record.status != "draft":
        return
    if not record.description and not record.evidence:
        raise DomainError("report.incomplete")
    record.status = "submitted"
    record.submitted_at = ctx.now


def _after_change(ctx: ActionContext, record: Inspection | Report) -> None:
    from fieldsync.evidence.service import record_changed

    record_changed(ctx.session, record, config=ctx.config)


def _after_inspection_change(ctx: ActionContext, record: Inspection) -> None:
    # no autoflush: a flush here would bump the version a second time for one mutation
    with ctx.session.no_autoflush:
        _after_change(ctx, record)
        if record.review_state == "more_needed":
            record.review_state = None  # the officer brought more: reviewed again
        check(ctx.session, record)


register(
    SyncedEntity(
        name="inspection",
        model=Inspection,
        serialize=serialize_inspection,
        fields=INSPECTION_FIELDS,
        schema=InspectionFields,
        create=_create_inspection,
        authorize=_authorize_inspection,
        check=_check_inspection,
        actions={"submit": _submit_inspection},
        after_change=_after_inspection_change,
        is_submitted=lambda r: r.status != "draft",
        evidence_of=lambda r: list(r.evidence or []),
    )
)
register(
    SyncedEntity(
        name="report",
        model=Report,
        serialize=serialize_report,
        fields=REPORT_FIELDS,
        schema=ReportFields,
        create=_create_report,
        authorize=_authorize_report,
        check=_check_report,
        actions={"submit": _submit_report},
        after_change=_after_change,
        is_submitted=lambda r: r.status != "draft",
        evidence_of=lambda r: list(r.evidence or []),
    )
)
