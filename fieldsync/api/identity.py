"""Identity endpoints: device registration (sign-in), the caller, and device management."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView

from fieldsync.api.base import ALL_ROLES, Blueprint, db, principal, public, requires, services
from fieldsync.api.schemas import StrictSchema
from fieldsync.clock import utcnow
from fieldsync.identity import service
from fieldsync.org.models import Role

blp = Blueprint("identity", __name__, description="Sign-in and devices (PROTOCOL.md §1)")


class RegisterDeviceSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))
    password = ma.fields.String(required=True, validate=ma.validate.Length(1, 200), load_only=True)
    device_id = ma.fields.UUID(required=True)
    device_name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))


class UserSchema(ma.Schema):
    id = ma.fields.UUID()
    username = ma.fields.String()
    full_name = ma.fields.String()
    roles = ma.fields.Method("_roles")
    street_id = ma.fields.UUID()
    team_id = ma.fields.UUID(allow_none=True)
    department_id = ma.fields.UUID(allow_none=True)
    department_code = ma.fields.Function(lambda p: p.department.code if p.department else None)

    def _roles(self, person: Any) -> list[str]:
        return sorted(r.value for r in person.roles)


class RegisteredDeviceSchema(ma.Schema):
    token = ma.fields.String()
    device_id = ma.fields.UUID()
    expires_at = ma.fields.DateTime()
    user = ma.fields.Nested(UserSchema)


class DeviceSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    person_id = ma.fields.UUID()
    username = ma.fields.Function(lambda d: d.person.username)
    registered_at = ma.fields.DateTime()
    token_expires_at = ma.fields.DateTime()
    last_seen_at = ma.fields.DateTime(allow_none=True)
    revoked_at = ma.fields.DateTime(allow_none=True)
    revoked_reason = ma.fields.String(allow_none=True)


class RevokeDeviceSchema(StrictSchema):
    reason = ma.fields.String(load_default=None, validate=ma.validate.Length(max=500))


@blp.route("/auth/devices")
class DeviceRegistration(MethodView):
    @public
    @blp.doc(security=[])
    @blp.arguments(RegisterDeviceSchema)
    @blp.response(201, RegisteredDeviceSchema)
    @blp.alt_response(401, description="auth.invalid_credentials, auth.device_revoked")
    @blp.alt_response(409, description="auth.device_owned_by_other")
    def post(self, body: dict[str, Any]) -> Any:
        """Sign in on a device: returns a bearer token bound to that device."""
        device, token = service.register_device(
            db(),
            hasher=services().hasher,
            username=body["username"],
            password=body["password"],
            device_id=body["device_id"],
            device_name=body["device_name"],
            now=utcnow(),
            lifetime=services().token_lifetime,
        )
        return {
            "token": token,
            "device_id": device.id,
            "expires_at": device.token_expires_at,
            "user": device.person,
        }


@blp.route("/auth/me")
class Me(MethodView):
    @requires(*ALL_ROLES)
    @blp.response(200, UserSchema)
    def get(self) -> Any:
        """The signed-in user."""
        return principal().person


@blp.route("/devices")
class Devices(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, DeviceSchema(many=True))
    def get(self) -> Any:
        """Devices of the admin's street."""
        return service.list_devices(db(), street_id=principal().street_id)


@blp.route("/devices/<uuid:device_id>/revoke")
class DeviceRevocation(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(RevokeDeviceSchema)
    @blp.response(200, DeviceSchema)
    def post(self, body: dict[str, Any], device_id: Any) -> Any:
        """Revoke a device (a lost phone): its token stops working on the next request."""
        return service.revoke_device(
            db(), device_id=device_id, by=principal(), reason=body["reason"], now=utcnow()
        )
