"""Reference data and roster endpoints: departments, matters, grids, officers, certificates."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from sqlalchemy import select

from fieldsync.api.base import ALL_ROLES, Blueprint, db, principal, requires, services
from fieldsync.api.schemas import AwareDateTime, StrictSchema
from fieldsync.clock import utcnow
from fieldsync.inspections import reports
from fieldsync.org import service
from fieldsync.org.models import Community, DepartmentKind, Grid, Role

blp = Blueprint("org", __name__, description="Organisation, roster and catalogue (PROTOCOL.md §6)")

ROLE_VALUES = [r.value for r in Role]


class DepartmentSchema(ma.Schema):
    id = ma.fields.UUID()
    code = ma.fields.String()
    name_zh = ma.fields.String()
    name_en = ma.fields.String()
    kind = ma.fields.Enum(DepartmentKind, by_value=True)


class MatterSchema(ma.Schema):
    id = ma.fields.UUID()
    code = ma.fields.String()
    name_zh = ma.fields.String()
    name_en = ma.fields.String()
    department_id = ma.fields.UUID()
    department_code = ma.fields.Function(lambda m: m.department.code)
    department_kind = ma.fields.Function(lambda m: m.department.kind.value)
    allowed_measures = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "measures each tier allows for this matter"},
    )
    legal_basis = ma.fields.String(allow_none=True)


class MatterQuerySchema(StrictSchema):
    department_id = ma.fields.UUID()


class GridSchema(ma.Schema):
    id = ma.fields.UUID()
    code = ma.fields.String()
    name_zh = ma.fields.String()
    name_en = ma.fields.String()
    community_id = ma.fields.UUID()


class CertificateSchema(ma.Schema):
    id = ma.fields.UUID()
    person_id = ma.fields.UUID()
    number = ma.fields.String()
    valid_from = ma.fields.DateTime()
    valid_to = ma.fields.DateTime()
    revoked_at = ma.fields.DateTime(allow_none=True)
    revoked_reason = ma.fields.String(allow_none=True)


class PersonSchema(ma.Schema):
    id = ma.fields.UUID()
    username = ma.fields.String()
    full_name = ma.fields.String()
    title = ma.fields.String(allow_none=True)
    phone = ma.fields.String(allow_none=True)
    roles = ma.fields.Function(lambda p: sorted(r.value for r in p.roles))
    street_id = ma.fields.UUID()
    team_id = ma.fields.UUID(allow_none=True)
    department_id = ma.fields.UUID(allow_none=True)
    grid_id = ma.fields.UUID(allow_none=True)
    active = ma.fields.Boolean()
    certificates = ma.fields.List(ma.fields.Nested(CertificateSchema))


class PersonQuerySchema(StrictSchema):
    role = ma.fields.Enum(Role, by_value=True)
    department_id = ma.fields.UUID()


_roles_field = ma.fields.List(
    ma.fields.Enum(Role, by_value=True), validate=ma.validate.Length(min=1)
)


class PersonCreateSchema(StrictSchema):
    username = ma.fields.String(
        required=True, validate=ma.validate.Regexp(r"^[A-Za-z0-9_.-]{2,64}$")
    )
    password = ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(8, 200))
    full_name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))
    roles = ma.fields.List(
        ma.fields.Enum(Role, by_value=True), required=True, validate=ma.validate.Length(min=1)
    )
    department_id = ma.fields.UUID(load_default=None)
    grid_id = ma.fields.UUID(load_default=None)
    title = ma.fields.String(load_default=None, validate=ma.validate.Length(max=100))
    phone = ma.fields.String(load_default=None, validate=ma.validate.Length(max=32))


class PersonPatchSchema(StrictSchema):
    username = ma.fields.String(validate=ma.validate.Regexp(r"^[A-Za-z0-9_.-]{2,64}$"))
    password = ma.fields.String(load_only=True, validate=ma.validate.Length(8, 200))
    full_name = ma.fields.String(validate=ma.validate.Length(1, 100))
    roles = _roles_field
    department_id = ma.fields.UUID(allow_none=True)
    grid_id = ma.fields.UUID(allow_none=True)
    title = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=100))
    phone = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=32))
    active = ma.fields.Boolean()


class PersonTransferSchema(StrictSchema):
    street_id = ma.fields.UUID(required=True, metadata={"description": "the street they join"})
    grid_id = ma.fields.UUID(
        load_default=None, metadata={"description": "their grid there (grid workers)"}
    )
    reports_to = ma.fields.UUID(
        load_default=None,
        metadata={
            "description": "who takes over the reports they are responsible for here "
            "(required when there are any)"
        },
    )


class CertificateCreateSchema(StrictSchema):
    number = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))
    valid_from = AwareDateTime(required=True)
    valid_to = AwareDateTime(required=True)


class CertificateRevokeSchema(StrictSchema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(1, 500))


def _known_department(query: dict[str, Any]) -> None:
    """A filter naming a department that does not exist is a mistake (422
    org.unknown_department, as on PATCH), not an empty list that looks like "none"."""
    if query.get("department_id") is not None:
        service.get_department(db(), query["department_id"])


ROSTER_READERS = (Role.ADMIN, Role.CAPTAIN, Role.DISPATCHER, Role.REVIEWER, Role.CASE_HANDLER)


@blp.route("/departments")
class Departments(MethodView):
    @requires(*ALL_ROLES)
    @blp.response(200, DepartmentSchema(many=True))
    def get(self) -> Any:
        """The district's enforcement departments: resident (on the team) or listed."""
        return service.list_departments(db())


@blp.route("/matters")
class Matters(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(MatterQuerySchema, location="query")
    @blp.response(200, MatterSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        """The matter catalogue with the measures each tier allows."""
        _known_department(query)
        return service.list_matters(db(), department_id=query.get("department_id"))


@blp.route("/grids")
class Grids(MethodView):
    @requires(*ALL_ROLES)
    @blp.response(200, GridSchema(many=True))
    def get(self) -> Any:
        """The grids of the caller's street."""
        stmt = (
            select(Grid)
            .join(Community, Grid.community_id == Community.id)
            .where(Community.street_id == principal().street_id)
            .order_by(Grid.code)
        )
        return list(db().scalars(stmt))


@blp.route("/officers")
class Officers(MethodView):
    @requires(*ROSTER_READERS)
    @blp.arguments(PersonQuerySchema, location="query")
    @blp.response(200, PersonSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        """The roster of the caller's street, with certificates."""
        _known_department(query)
        return service.list_people(db(), street_id=principal().street_id, **query)

    @requires(Role.ADMIN)
    @blp.arguments(PersonCreateSchema)
    @blp.response(201, PersonSchema)
    @blp.alt_response(409, description="org.username_taken")
    @blp.alt_response(422, description="org.auxiliary_cannot_enforce")
    def post(self, body: dict[str, Any]) -> Any:
        """Add a person to the roster of the admin's street."""
        return service.create_person(
            db(), hasher=services().hasher, street_id=principal().street_id, **body
        )


@blp.route("/officers/<uuid:person_id>")
class Officer(MethodView):
    @requires(*ROSTER_READERS)
    @blp.response(200, PersonSchema)
    def get(self, person_id: Any) -> Any:
        return service.get_person(db(), person_id=person_id, street_id=principal().street_id)

    @requires(Role.ADMIN)
    @blp.arguments(PersonPatchSchema)
    @blp.response(200, PersonSchema)
    @blp.alt_response(409, description="org.username_taken, org.last_admin")
    @blp.alt_response(422, description="org.auxiliary_cannot_enforce")
    def patch(self, body: dict[str, Any], person_id: Any) -> Any:
        """Change a person: roles, department, grid, password, active. A grid worker never
        holds an enforcement role; the street's last active admin stays one."""
        person = service.get_person(db(), person_id=person_id, street_id=principal().street_id)
        return service.update_person(
            db(), hasher=services().hasher, person=person, changes=body, now=utcnow()
        )


@blp.route("/officers/<uuid:person_id>/transfer")
class OfficerTransfer(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(PersonTransferSchema)
    @blp.response(200, PersonSchema)
    @blp.alt_response(
        409,
        description="org.transfer_same_street, org.last_admin, org.transfer_holds_reports, "
        "org.transfer_draft_reports",
    )
    @blp.alt_response(422, description="org.unknown_street, org.unknown_grid, report.assignee_*")
    def post(self, body: dict[str, Any], person_id: Any) -> Any:
        """Move a person of the admin's street to another street (调动). Their reports here go
        to `reports_to`; their phones lose this street's records (`out_of_scope`) and receive
        the new street's on their next sync."""
        here = principal().street_id
        person = service.get_person(db(), person_id=person_id, street_id=here)
        service.transfer_person(
            db(), person=person, street_id=body["street_id"], grid_id=body["grid_id"]
        )
        reports.hand_over(
            db(),
            principal=principal(),
            holder=person,
            street_id=here,
            to=body["reports_to"],
            now=utcnow(),
        )
        return person


@blp.route("/officers/<uuid:person_id>/certificates")
class OfficerCertificates(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(CertificateCreateSchema)
    @blp.response(201, CertificateSchema)
    @blp.alt_response(409, description="org.certificate_number_taken")
    def post(self, body: dict[str, Any], person_id: Any) -> Any:
        """Register an enforcement certificate (执法证)."""
        person = service.get_person(db(), person_id=person_id, street_id=principal().street_id)
        return service.add_certificate(db(), person=person, **body)


@blp.route("/certificates/<uuid:certificate_id>/revoke")
class CertificateRevocation(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(CertificateRevokeSchema)
    @blp.response(200, CertificateSchema)
    def post(self, body: dict[str, Any], certificate_id: Any) -> Any:
        """Revoke a certificate from now on; inspections before now keep their authority."""
        certificate = service.get_certificate(
            db(), certificate_id=certificate_id, street_id=principal().street_id
        )
        return service.revoke_certificate(
            db(), certificate=certificate, reason=body["reason"], now=utcnow()
        )
