"""Evidence for the back office and devices (PROTOCOL.md §4a): the record, the original and its
derivatives, the chain of custody, the review queue and review."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from werkzeug.wsgi import wrap_file

from fieldsync.api.base import ALL_ROLES, Blueprint, SelectPage, db, principal, requires, services
from fieldsync.api.schemas import StrictSchema
from fieldsync.clock import utcnow
from fieldsync.errors import DomainError
from fieldsync.evidence import service
from fieldsync.evidence.blobstore import BlobNotFoundError
from fieldsync.evidence.hashing import CHUNK_SIZE
from fieldsync.org.models import Role

blp = Blueprint("evidence", __name__, description="Photo evidence, custody and review (§4a)")

REVIEWERS = (Role.REVIEWER, Role.CAPTAIN)
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/heic": ".heic"}
_EXTENSIONS["image/heif"] = ".heif"
_KIND_ZH = {"thumbnail": "缩略图", "display": "展示副本"}


class DerivativeSchema(ma.Schema):
    sha256 = ma.fields.String()
    parent_sha256 = ma.fields.String()


class LinkSchema(ma.Schema):
    entity = ma.fields.String(metadata={"description": "inspection | report"})
    id = ma.fields.String()


class EvidenceSchema(ma.Schema):
    sha256 = ma.fields.String()
    declared_sha256 = ma.fields.String()
    verified_sha256 = ma.fields.String()
    street_id = ma.fields.UUID()
    size = ma.fields.Integer()
    content_type = ma.fields.String()
    filename = ma.fields.String(allow_none=True)
    width = ma.fields.Integer(allow_none=True)
    height = ma.fields.Integer(allow_none=True)
    orientation = ma.fields.Integer(allow_none=True)
    exif_taken_at = ma.fields.DateTime(
        allow_none=True, metadata={"description": "EXIF DateTimeOriginal in UTC (best effort)"}
    )
    exif_taken_at_local = ma.fields.String(
        allow_none=True, metadata={"description": "the camera's wall clock, as recorded"}
    )
    make = ma.fields.String(allow_none=True)
    model = ma.fields.String(allow_none=True)
    lat = ma.fields.Float(allow_none=True, metadata={"description": "WGS-84"})
    lon = ma.fields.Float(allow_none=True, metadata={"description": "WGS-84"})
    gcj02_lat = ma.fields.Float(allow_none=True)
    gcj02_lon = ma.fields.Float(allow_none=True)
    captured_at = ma.fields.DateTime(allow_none=True, metadata={"description": "device clock"})
    received_at = ma.fields.DateTime()
    uploaded_by_id = ma.fields.UUID()
    device_id = ma.fields.UUID(allow_none=True)
    flags = ma.fields.List(ma.fields.Dict())
    review_state = ma.fields.String(
        metadata={"description": "pending | accepted | rejected | more_needed"}
    )
    review_note = ma.fields.String(allow_none=True)
    reviewed_by_id = ma.fields.UUID(allow_none=True)
    reviewed_at = ma.fields.DateTime(allow_none=True)
    derivatives = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(DerivativeSchema))
    derivatives_at = ma.fields.DateTime(allow_none=True)
    derivative_attempts = ma.fields.Integer(
        metadata={"description": "failed tries at making the derivatives (store unreadable)"}
    )
    derivatives_retry_at = ma.fields.DateTime(
        allow_none=True, metadata={"description": "after a failed try: not tried again before"}
    )
    links = ma.fields.List(ma.fields.Nested(LinkSchema))


class CustodySchema(ma.Schema):
    id = ma.fields.Integer()
    sha256 = ma.fields.String()
    action = ma.fields.String(
        metadata={
            "description": "captured | uploaded | verified | derived | viewed | downloaded | "
            "reviewed"
        }
    )
    at = ma.fields.DateTime()
    person_id = ma.fields.UUID(allow_none=True)
    device_id = ma.fields.UUID(allow_none=True)
    remote_addr = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()


class EvidenceQuerySchema(StrictSchema):
    review_state = ma.fields.String(validate=ma.validate.OneOf(service.REVIEW_STATES))
    inspection_id = ma.fields.UUID()


class EvidenceReviewSchema(StrictSchema):
    decision = ma.fields.String(
        required=True, validate=ma.validate.OneOf(sorted(service.REVIEW_DECISIONS))
    )
    reason = ma.fields.String(load_default=None, validate=ma.validate.Length(max=2000))


def _actor() -> service.Actor:
    return service.Actor.of(principal(), request.remote_addr)


def _blob(sha256: str, *, content_type: str, size: int | None, disposition: str) -> Response:
    """Stream a blob in CHUNK_SIZE pieces (constant memory), never sniffable as markup."""
    store = services().extras["blobstore"]
    try:
        fileobj = store.open(sha256)
    except BlobNotFoundError:
        raise DomainError("evidence.not_found", sha256=sha256) from None
    response = Response(
        wrap_file(request.environ, fileobj, buffer_size=CHUNK_SIZE),
        mimetype=content_type,
        direct_passthrough=True,
    )
    if size is not None:
        response.content_length = size
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = disposition
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    response.set_etag(sha256)
    return response


@blp.route("/evidence")
class EvidenceList(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(EvidenceQuerySchema, location="query")
    @blp.response(200, EvidenceSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, query: dict[str, Any]) -> Any:
        """The street's evidence; `review_state=pending` is the review queue (oldest first)."""
        return service.list_evidence(_actor(), **query)


@blp.route("/evidence/<sha256>")
class EvidenceItem(MethodView):
    @requires(*ALL_ROLES)
    @blp.response(200, EvidenceSchema)
    def get(self, sha256: str) -> Any:
        """The evidence record; a back-office view is recorded in the custody log."""
        session, actor = db(), _actor()
        evidence = service.get_evidence(session, sha256, actor)
        service.record_view(session, evidence, actor, action="viewed", now=utcnow(), what="record")
        return service.describe(session, evidence)


@blp.route("/evidence/<sha256>/original")
class EvidenceOriginal(MethodView):
    @requires(*ALL_ROLES)
    @blp.doc(responses={"200": {"description": "the original bytes, as an attachment"}})
    @blp.alt_response(
        403,
        description="auth.forbidden: only reviewers, captains, case "
        "handlers, admins and the uploader",
    )
    def get(self, sha256: str) -> Response:
        """The original, unchanged, as a download; every download is in the custody log."""
        session, actor = db(), _actor()
        evidence = service.get_evidence(session, sha256, actor, whole_street=True)
        if not service.may_download_original(actor, evidence):
            raise DomainError("auth.forbidden")
        if request.method != "HEAD":  # a HEAD transfers no byte of the original
            service.record_view(session, evidence, actor, action="downloaded", now=utcnow())
        name = f"{evidence.sha256}{_EXTENSIONS.get(evidence.content_type, '')}"
        disposition = f'attachment; filename="{name}"'
        if evidence.filename:
            disposition += f"; filename*=UTF-8''{quote(evidence.filename, safe='')}"
        return _blob(
            evidence.sha256,
            content_type=evidence.content_type,
            size=evidence.size,
            disposition=disposition,
        )


def _derivative(sha256: str, kind: str) -> Response:
    session, actor = db(), _actor()
    evidence = service.get_evidence(session, sha256, actor)
    digest = evidence.thumbnail_sha256 if kind == "thumbnail" else evidence.display_sha256
    if not digest:
        raise DomainError("evidence.not_derived", kind=kind, kind_zh=_KIND_ZH[kind])
    if kind == "display" and request.method != "HEAD":
        service.record_view(session, evidence, actor, action="viewed", now=utcnow(), what=kind)
    return _blob(
        digest,
        content_type="image/jpeg",
        size=None,
        disposition=f'inline; filename="{evidence.sha256}.{kind}.jpg"',
    )


@blp.route("/evidence/<sha256>/thumbnail")
class EvidenceThumbnail(MethodView):
    @requires(*ALL_ROLES)
    @blp.doc(responses={"200": {"description": "JPEG, upright, no metadata"}})
    def get(self, sha256: str) -> Response:
        """An upright thumbnail (at most 320 px a side) without any metadata."""
        return _derivative(sha256, "thumbnail")


@blp.route("/evidence/<sha256>/display")
class EvidenceDisplay(MethodView):
    @requires(*ALL_ROLES)
    @blp.doc(responses={"200": {"description": "JPEG, upright, without EXIF or GPS"}})
    def get(self, sha256: str) -> Response:
        """A display copy (at most 1600 px a side) without EXIF, GPS or any other metadata."""
        return _derivative(sha256, "display")


@blp.route("/evidence/<sha256>/custody")
class EvidenceCustody(MethodView):
    @requires(*ALL_ROLES)
    @blp.response(200, CustodySchema(many=True))
    def get(self, sha256: str) -> Any:
        """The chain of custody, oldest first."""
        session = db()
        evidence = service.get_evidence(session, sha256, _actor())
        return service.custody(session, evidence)


@blp.route("/evidence/<sha256>/review")
class EvidenceReview(MethodView):
    @requires(*REVIEWERS)
    @blp.arguments(EvidenceReviewSchema)
    @blp.response(200, EvidenceSchema)
    @blp.alt_response(422, description="evidence.reason_required")
    @blp.alt_response(409, description="evidence.archived")
    def post(self, body: dict[str, Any], sha256: str) -> Any:
        """Accept, reject (with a reason) or ask for more; reaches the devices on their next
        pull through the inspections and reports naming the photo (`evidence_review`)."""
        session = db()
        evidence = service.review(
            session,
            sha256=sha256,
            actor=_actor(),
            decision=body["decision"],
            reason=body["reason"],
            now=utcnow(),
        )
        return service.describe(session, evidence)
