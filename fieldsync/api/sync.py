"""Sync endpoints: pull, push, conflicts and the quarantine (PROTOCOL.md §2, §3, §4a)."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import marshmallow as ma
from flask import Response, current_app, request
from flask.views import MethodView

from fieldsync.api.base import ALL_ROLES, Blueprint, SelectPage, config, db, principal, requires
from fieldsync.api.schemas import StrictSchema
from fieldsync.clock import utcnow
from fieldsync.errors import DomainError
from fieldsync.org.models import Role
from fieldsync.sync import conflicts, pull, push
from fieldsync.sync.merge import Policy
from fieldsync.sync.registry import all_entities

blp = Blueprint("sync", __name__, description="Offline sync protocol v1")


def _policies_doc() -> str:
    lines = ["Merge policy per device-written field (PROTOCOL.md §3):"]
    for name, spec in sorted(all_entities().items()):
        if spec.fields:
            fields = ", ".join(f"{f}: {s.policy.value}" for f, s in spec.fields.items())
            lines.append(
                f"- {name}: {fields}; server_owned: every other field; "
                "immutable_after_submit: all device-written fields"
            )
    lines.append(f"Policies: {', '.join(p.value for p in Policy)}.")
    return "\n".join(lines)


class PullQuerySchema(StrictSchema):
    cursor = ma.fields.String(load_default=None, validate=ma.validate.Length(max=4096))
    limit = ma.fields.Integer(load_default=500)


class ChangeSchema(ma.Schema):
    entity = ma.fields.String()
    id = ma.fields.String()
    version = ma.fields.Integer()
    op = ma.fields.String(metadata={"description": "upsert | delete"})
    reason = ma.fields.String(metadata={"description": "deleted | out_of_scope (for delete)"})
    data = ma.fields.Dict()


class PullSchema(ma.Schema):
    protocol = ma.fields.Integer()
    cursor = ma.fields.String()
    has_more = ma.fields.Boolean()
    server_time = ma.fields.String()
    changes = ma.fields.List(ma.fields.Nested(ChangeSchema))


class MutationSchema(ma.Schema):
    """Only device_seq is checked for the whole request; every other problem of a mutation
    (null values included) makes that mutation `rejected`, and the queue goes on."""

    class Meta:
        unknown = ma.INCLUDE

    device_seq = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1))
    mutation_id = ma.fields.Raw(
        allow_none=True, metadata={"description": "uuid, chosen by the device"}
    )
    type = ma.fields.Raw(
        allow_none=True,
        metadata={"description": "<entity>.upsert | <entity>.submit | <entity>.delete"},
    )
    entity_id = ma.fields.Raw(allow_none=True, metadata={"description": "uuid"})
    base_version = ma.fields.Raw(
        allow_none=True, metadata={"description": "record version the edit was based on (0: new)"}
    )
    device_time = ma.fields.Raw(allow_none=True, metadata={"description": "RFC 3339"})
    hlc = ma.fields.Raw(
        allow_none=True, metadata={"description": "hybrid logical clock, see fieldsync.sync.hlc"}
    )
    set = ma.fields.Raw(allow_none=True)
    add = ma.fields.Raw(allow_none=True)
    remove = ma.fields.Raw(allow_none=True)


class PushBodySchema(StrictSchema):
    protocol = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Equal(1))
    device_id = ma.fields.UUID(required=True)
    mutations = ma.fields.List(ma.fields.Nested(MutationSchema), required=True)

    @ma.pre_load
    def _count_first(self, data: Any, **kwargs: Any) -> Any:
        # before a single mutation is validated: over the limit, that work is for nothing
        limit = config().sync_max_mutations
        mutations = data.get("mutations") if isinstance(data, dict) else None
        if isinstance(mutations, list) and len(mutations) > limit:
            raise DomainError("sync.too_many_mutations", limit=limit)
        return data


class PushResultSchema(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE

    device_seq = ma.fields.Integer()
    status = ma.fields.String(metadata={"description": "applied | merged | conflict | rejected"})
    entity = ma.fields.String()
    id = ma.fields.String()
    version = ma.fields.Integer()
    data = ma.fields.Dict()
    conflict_id = ma.fields.String()
    fields = ma.fields.List(ma.fields.String())
    code = ma.fields.String()
    message = ma.fields.String()
    message_zh = ma.fields.String()
    errors = ma.fields.Raw()


class PushSchema(ma.Schema):
    protocol = ma.fields.Integer()
    last_device_seq = ma.fields.Integer()
    server_time = ma.fields.String()
    clock_skew_ms = ma.fields.Integer(allow_none=True)
    results = ma.fields.List(ma.fields.Nested(PushResultSchema))
    missing_evidence = ma.fields.List(ma.fields.String())


class ConflictSchema(ma.Schema):
    id = ma.fields.UUID()
    entity = ma.fields.String()
    entity_id = ma.fields.UUID()
    fields = ma.fields.List(ma.fields.String())
    values = ma.fields.Dict(metadata={"description": "{field: {kept, lost, lost_side}}"})
    mutation_id = ma.fields.UUID()
    device_id = ma.fields.UUID()
    person_id = ma.fields.UUID(metadata={"description": "who pushed the mutation"})
    people = ma.fields.List(
        ma.fields.UUID(),
        attribute="person_ids",
        metadata={
            "description": "everyone the conflict concerns (the author of the value set aside "
            "and the writer of the value kept): each sees it and may resolve it"
        },
    )
    record_version = ma.fields.Integer()
    created_at = ma.fields.DateTime()
    resolved_at = ma.fields.DateTime(allow_none=True)
    resolved_by_id = ma.fields.UUID(allow_none=True)
    resolution = ma.fields.String(allow_none=True)
    resolution_note = ma.fields.String(allow_none=True)


class ConflictQuerySchema(StrictSchema):
    open = ma.fields.Boolean(load_default=False)
    entity_id = ma.fields.UUID(load_default=None)


class ResolveSchema(StrictSchema):
    resolution = ma.fields.String(required=True, validate=ma.validate.OneOf(["keep", "take_lost"]))
    note = ma.fields.String(load_default=None, validate=ma.validate.Length(max=2000))


class QuarantineSchema(ma.Schema):
    mutation_id = ma.fields.UUID(attribute="id")
    device_id = ma.fields.UUID()
    person_id = ma.fields.UUID()
    device_seq = ma.fields.Integer()
    type = ma.fields.String()
    entity = ma.fields.String(allow_none=True)
    entity_id = ma.fields.UUID(allow_none=True)
    code = ma.fields.String()
    message = ma.fields.String(attribute="message_en")
    message_zh = ma.fields.String()
    payload = ma.fields.Dict()
    received_at = ma.fields.DateTime()


class QuarantineQuerySchema(StrictSchema):
    device_id = ma.fields.UUID(load_default=None)


SUPERVISORS = (Role.REVIEWER, Role.CAPTAIN, Role.DISPATCHER, Role.ADMIN)


@blp.route("/sync/pull")
class Pull(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(PullQuerySchema, location="query")
    # documents the body; the view answers with the text pull builds from the stored payloads,
    # which the schema would only decode and encode again
    @blp.response(200, PullSchema)
    @blp.alt_response(410, description="sync.cursor_expired: start again without a cursor")
    @blp.alt_response(400, description="sync.cursor_invalid")
    def get(self, query: dict[str, Any]) -> Any:
        """Changes in the device's scope since its cursor (no cursor: everything)."""
        body = pull.pull(
            db(),
            principal=principal(),
            cursor=query["cursor"],
            limit=query["limit"],
            now=utcnow(),
            config=config(),
        )
        return Response(body, mimetype="application/json")


@blp.route("/sync/push")
class Push(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(PushBodySchema)
    # documents the body; the view answers with push's own, which is plain JSON already and
    # which the schema would only copy (results, records and all) before it is written
    @blp.response(200, PushSchema)
    @blp.alt_response(409, description="sync.sequence_gap, with expected_device_seq")
    @blp.alt_response(413, description="sync.too_many_mutations or request.too_large")
    def post(self, body: dict[str, Any]) -> Any:
        """Apply the device's mutations in device_seq order; replays return stored results."""
        answer = push.push(
            db(),
            principal=principal(),
            device_id=body["device_id"],
            mutations=body["mutations"],
            now=utcnow(),
            device_clock=_device_clock(),
            config=config(),
        )
        return current_app.json.response(answer)


Push.post.__doc__ = (Push.post.__doc__ or "") + "\n\n" + _policies_doc()


def _device_clock() -> Any:
    header = request.headers.get("Date")
    if not header:
        return None
    try:
        return parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None


@blp.route("/conflicts")
class Conflicts(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(ConflictQuerySchema, location="query")
    @blp.response(200, ConflictSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, query: dict[str, Any]) -> Any:
        """Conflicts: a device sees those of its user (either side), reviewers and the captain
        the street's."""
        return conflicts.visible_conflicts(
            principal(), open_only=query["open"], entity_id=query["entity_id"]
        )


@blp.route("/conflicts/<uuid:conflict_id>")
class ConflictItem(MethodView):
    @requires(*ALL_ROLES)
    @blp.response(200, ConflictSchema)
    def get(self, conflict_id: Any) -> Any:
        return conflicts.get_conflict(db(), principal=principal(), conflict_id=conflict_id)


@blp.route("/conflicts/<uuid:conflict_id>/resolve")
class ConflictResolution(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(ResolveSchema)
    @blp.response(200, ConflictSchema)
    def post(self, body: dict[str, Any], conflict_id: Any) -> Any:
        """Keep the record as it is, or take the set-aside value."""
        return conflicts.resolve(
            db(),
            principal=principal(),
            conflict_id=conflict_id,
            resolution=body["resolution"],
            note=body["note"],
            now=utcnow(),
        )


@blp.route("/quarantine")
class Quarantine(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(QuarantineQuerySchema, location="query")
    @blp.response(200, QuarantineSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, query: dict[str, Any]) -> Any:
        """Rejected mutations: a device sees its own, wherever they went; supervisors see the
        street's, its records' edits refused to officers since moved elsewhere included."""
        p = principal()
        if p.has(*SUPERVISORS):
            return push.quarantine(db(), street_id=p.street_id, device_id=query["device_id"])
        return push.quarantine(db(), street_id=None, device_id=p.device.id)
