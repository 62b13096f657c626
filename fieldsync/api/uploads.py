"""tus 1.0.0 resumable uploads of evidence photos (PROTOCOL.md §4): headers in, headers out."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from werkzeug.http import http_date

from fieldsync.api.base import Blueprint, config, db, principal, public, requires, services
from fieldsync.clock import utcnow
from fieldsync.errors import DomainError
from fieldsync.evidence import uploads
from fieldsync.evidence.models import Upload
from fieldsync.evidence.service import Actor
from fieldsync.org.models import Role

blp = Blueprint(
    "uploads",
    __name__,
    description=(
        "tus 1.0.0 resumable uploads of evidence photos: core, creation, creation-with-upload, "
        "checksum (sha1, sha256), termination, expiration. Upload-Metadata: sha256 (required), "
        "filename, content_type, inspection_id, captured_at."
    ),
)

# the people who take photos in the field and send them from their phones
UPLOADERS = (Role.OFFICER, Role.CAPTAIN, Role.GRID_WORKER, Role.DISPATCHER)
_TUS_DOC = {"responses": {"default": {"description": "tus headers, no body (errors: JSON)"}}}


def _tus_version() -> None:
    """Every tus request but OPTIONS names the protocol version (412 otherwise). Checked after
    the upload is looked up: an upload that is not the caller's is 404 whatever the headers."""
    if request.headers.get("Tus-Resumable") != uploads.TUS_VERSION:
        raise DomainError("upload.version_unsupported")


@blp.after_request
def _tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = uploads.TUS_VERSION
    if response.status_code == 412:
        response.headers["Tus-Version"] = uploads.TUS_VERSION
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _context() -> uploads.Context:
    return uploads.Context(
        config=config(),
        store=services().extras["blobstore"],
        actor=Actor.of(principal(), request.remote_addr),
        now=utcnow(),
    )


def _progress_headers(upload: Upload) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset)}
    if upload.state == uploads.RECEIVING:
        headers["Upload-Expires"] = http_date(upload.expires_at)
    return headers


def _received(ctx: uploads.Context, *, length: int, offset: int) -> Any:
    """The request body, received with no transaction open.

    A PATCH (or a creation with its first chunk) is two transactions, by design and only here:
    the authentication (and the upload's lookup) commits before the phone's bytes are read, so
    that a slow network holds up no other request — SQLite has a single writer — and the bytes
    are then appended in a short transaction of their own, which the edge commits.
    """
    if (request.content_length or 0) > length - offset:  # refused before a byte is read
        raise DomainError("upload.length_exceeded", length=length)
    db().commit()
    # a chunk may be as large as the rest of the upload (tuspy sends a whole file by default),
    # not only as large as a JSON body; received_chunk stops at the upload's length
    request.max_content_length = ctx.config.upload_max_bytes + 1
    return uploads.received_chunk(
        ctx.config,
        request.stream,
        length=length,
        offset=offset,
        checksum=uploads.parse_checksum(request.headers.get("Upload-Checksum")),
    )


def _refused(ctx: uploads.Context, refusal: uploads.UploadRefused) -> DomainError:
    """The bytes were refused: nothing of this request stays but the upload marked failed (its
    own transaction, so the refusal is remembered: HEAD then answers 410)."""
    session = db()
    session.rollback()
    uploads.mark_failed(session, ctx, refusal.upload_id, refusal.error)
    session.commit()
    return refusal.error


def _after_verified(upload: Upload) -> None:
    if upload.state == uploads.COMPLETE and not upload.deduplicated:
        from fieldsync.jobs import wake_derivatives

        svc = services()
        uploads.after_commit(db(), lambda: wake_derivatives(svc))


def _tus_response(status: int, headers: dict[str, str]) -> Response:
    return Response(status=status, headers=headers)


class UploadSchema(ma.Schema):
    id = ma.fields.UUID()
    sha256 = ma.fields.String()
    length = ma.fields.Integer()
    offset = ma.fields.Integer()
    state = ma.fields.String(metadata={"description": "receiving | complete | failed"})
    error = ma.fields.String(allow_none=True, metadata={"description": "code of the refusal"})
    refusal = ma.fields.Dict(
        allow_none=True,
        metadata={"description": "the refusal: code, message (en), message_zh, params"},
    )
    deduplicated = ma.fields.Boolean()
    meta = ma.fields.Dict(data_key="metadata")
    created_at = ma.fields.DateTime()
    expires_at = ma.fields.DateTime()
    completed_at = ma.fields.DateTime(allow_none=True)


@blp.route("/uploads")
class Uploads(MethodView):
    @public
    @blp.doc(**_TUS_DOC)
    def options(self) -> Response:
        """tus discovery: version, extensions, maximum size, checksum algorithms."""
        return _tus_response(
            204,
            {
                "Tus-Version": uploads.TUS_VERSION,
                "Tus-Extension": uploads.TUS_EXTENSIONS,
                "Tus-Max-Size": str(config().upload_max_bytes),
                "Tus-Checksum-Algorithm": uploads.CHECKSUM_ALGORITHMS,
            },
        )

    @requires(*UPLOADERS)
    @blp.doc(**_TUS_DOC)
    @blp.alt_response(201, description="Created: Location, Upload-Offset, Upload-Expires")
    @blp.alt_response(413, description="evidence.too_large (Upload-Length over Tus-Max-Size)")
    @blp.alt_response(422, description="upload.hash_mismatch, evidence.* (refused bytes)")
    def post(self) -> Response:
        """Create an upload (tus creation), optionally with its first chunk in the body. The
        same sha256 already held as evidence answers complete at once (Upload-Offset = length):
        no byte is sent twice."""
        _tus_version()
        if request.headers.get("Upload-Defer-Length"):
            raise DomainError("upload.length_required")
        length = uploads.parse_length(request.headers.get("Upload-Length"))
        metadata = uploads.clean_metadata(
            uploads.parse_metadata(request.headers.get("Upload-Metadata"))
        )
        ctx = _context()
        uploads.check_length(ctx.config, length)
        session = db()
        try:
            if request.mimetype == uploads.OFFSET_CONTENT_TYPE:
                with _received(ctx, length=length, offset=0) as chunk:
                    upload = uploads.create(session, ctx, length=length, metadata=metadata)
                    if upload.state == uploads.RECEIVING:
                        upload = uploads.append(session, ctx, upload, offset=0, chunk=chunk)
            else:
                uploads.parse_checksum(request.headers.get("Upload-Checksum"))
                upload = uploads.create(session, ctx, length=length, metadata=metadata)
        except uploads.UploadRefused as refusal:
            raise _refused(ctx, refusal) from None
        _after_verified(upload)
        headers = _progress_headers(upload)
        headers["Location"] = f"{request.path.rstrip('/')}/{upload.id}"
        return _tus_response(201, headers)


@blp.route("/uploads/<uuid:upload_id>")
class UploadItem(MethodView):
    @public
    @blp.doc(**_TUS_DOC)
    def options(self, upload_id: uuid.UUID) -> Response:
        """tus discovery, as on /uploads."""
        return Uploads().options()

    @requires(*UPLOADERS)
    @blp.response(200, UploadSchema)
    def get(self, upload_id: uuid.UUID) -> Any:
        """The upload's state as JSON (not part of tus): offset, and why it was refused."""
        return uploads.get(db(), _context(), upload_id, include_failed=True)

    @requires(*UPLOADERS)  # HEAD is checked against get's roles as well
    @blp.doc(**_TUS_DOC)
    def head(self, upload_id: uuid.UUID) -> Response:
        """The offset to resume from. 404 for another person's upload, 410 once expired or
        refused."""
        upload = uploads.get(db(), _context(), upload_id)
        _tus_version()
        headers = _progress_headers(upload)
        headers["Upload-Length"] = str(upload.length)
        return _tus_response(200, headers)

    @requires(*UPLOADERS)
    @blp.doc(**_TUS_DOC)
    @blp.alt_response(409, description="upload.offset_mismatch")
    @blp.alt_response(460, description="upload.checksum_mismatch: chunk dropped")
    @blp.alt_response(422, description="upload.hash_mismatch, evidence.* (refused bytes)")
    def patch(self, upload_id: uuid.UUID) -> Response:
        """Append a chunk at Upload-Offset; the last byte verifies the whole file."""
        ctx = _context()
        session = db()
        upload = uploads.get(session, ctx, upload_id)
        _tus_version()
        if request.mimetype != uploads.OFFSET_CONTENT_TYPE:
            raise DomainError("upload.content_type")
        offset = uploads.parse_offset(request.headers.get("Upload-Offset"))
        if offset != upload.offset:  # before a byte is read (checked again under the lock)
            raise DomainError("upload.offset_mismatch", expected=upload.offset, got=offset)
        try:
            with _received(ctx, length=upload.length, offset=offset) as chunk:
                upload = uploads.get(session, ctx, upload_id, for_update=True)
                upload = uploads.append(session, ctx, upload, offset=offset, chunk=chunk)
        except uploads.UploadRefused as refusal:
            raise _refused(ctx, refusal) from None
        _after_verified(upload)
        return _tus_response(204, _progress_headers(upload))

    @requires(*UPLOADERS)
    @blp.doc(**_TUS_DOC)
    def delete(self, upload_id: uuid.UUID) -> Response:
        """tus termination: the upload and its received bytes are removed."""
        ctx = _context()
        session = db()
        upload = uploads.get(session, ctx, upload_id, for_update=True, include_failed=True)
        _tus_version()
        uploads.terminate(session, ctx, upload)
        return _tus_response(204, {})
