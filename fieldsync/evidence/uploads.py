"""tus 1.0.0 uploads (断点续传) as plain services: create, append a chunk, finish, terminate,
expire. No HTTP here: the API maps headers in and out (fieldsync.api.uploads).

The upload row's `offset` is the truth; the part file `<data_dir>/uploads/<id>.part` is cut back
to it before every append, so bytes of a chunk whose transaction never committed are dropped.

A chunk is received into a file of its own (`<uuid>.chunk`) while no transaction is open — a
phone on a bad network may take minutes to send one, and SQLite has a single writer — and only
then appended to the part file under the upload's row lock, in a short transaction.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from fieldsync.config import Config
from fieldsync.errors import DomainError, flag
from fieldsync.evidence import service
from fieldsync.evidence.blobstore import BlobStore
from fieldsync.evidence.hashing import (
    CHUNK_SIZE,
    SUPPORTED_ALGORITHMS,
    StreamingHasher,
    is_sha256_hex,
    sha256_file,
)
from fieldsync.evidence.models import Evidence, Upload

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,checksum,termination,expiration"
CHECKSUM_ALGORITHMS = "sha1,sha256"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

RECEIVING, COMPLETE, FAILED = "receiving", "complete", "failed"
_METADATA_MAX = 4096
_ORPHAN_GRACE = timedelta(hours=1)


class UploadRefused(Exception):
    """The finished bytes cannot become evidence. The part file is already gone; the caller rolls
    back its transaction, records the refusal (mark_failed) in a new one, and reports `error`."""

    def __init__(self, upload_id: uuid.UUID, error: DomainError) -> None:
        super().__init__(error.code)
        self.upload_id = upload_id
        self.error = error


# --- file actions that follow the transaction's outcome --------------------------------------

_ACTIONS = {
    "commit": "fieldsync.evidence.after_commit",
    "rollback": "fieldsync.evidence.after_rollback",
}


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction commits; forget it on rollback (files are
    deleted only when the rows that name them are gone for good)."""
    session.info.setdefault(_ACTIONS["commit"], []).append(action)


def after_rollback(session: Session, action: Callable[[], None]) -> None:
    """Run `action` if the session's transaction rolls back; forget it on commit (a file made
    for rows that never came to be)."""
    session.info.setdefault(_ACTIONS["rollback"], []).append(action)


def _settle(session: Session, outcome: str) -> None:
    actions = {key: session.info.pop(name, []) for key, name in _ACTIONS.items()}
    for action in actions[outcome]:
        action()


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    _settle(session, "commit")


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    _settle(session, "rollback")


# --- parsing headers ------------------------------------------------------------------------


def uploads_dir(config: Config) -> Path:
    return Path(config.data_dir) / "uploads"


def part_path(config: Config, upload_id: uuid.UUID) -> Path:
    # named by our own id only: nothing the client sends ever becomes part of a path
    return uploads_dir(config) / f"{upload_id}.part"


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata: `key base64value` pairs separated by commas (the value may be absent)."""
    if not header:
        return {}
    if len(header) > _METADATA_MAX:
        raise DomainError("upload.invalid_metadata", reason="too long")
    pairs: dict[str, str] = {}
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, encoded = item.partition(" ")
        if not key or not key.isascii() or key in pairs:
            raise DomainError("upload.invalid_metadata", reason=f"bad or repeated key {key!r}")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise DomainError("upload.invalid_metadata", reason=f"{key} is not base64") from None
    return pairs


def clean_filename(name: str | None) -> str | None:
    """The bare file name a phone sent, for display only: `../`, `..\\`, directories and control
    characters removed. It is never used as a path."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if base in ("", ".", ".."):
        return None
    return base[:255]


def clean_metadata(pairs: dict[str, str]) -> dict[str, Any]:
    """The metadata we keep: sha256 (required), filename, content_type, inspection_id,
    captured_at. tus-js-client/Uppy spellings (`name`, `filetype`) are understood too."""
    sha256 = (pairs.get("sha256") or "").strip().lower()
    if not is_sha256_hex(sha256):
        raise DomainError("upload.invalid_metadata", reason="sha256 must be 64 hex digits")
    meta: dict[str, Any] = {"sha256": sha256}
    filename = clean_filename(pairs.get("filename") or pairs.get("name"))
    if filename:
        meta["filename"] = filename
    content_type = (pairs.get("content_type") or pairs.get("filetype") or "").strip()
    if content_type:
        meta["content_type"] = content_type[:100]  # what the phone says; the bytes decide
    if pairs.get("inspection_id"):
        try:
            meta["inspection_id"] = str(uuid.UUID(pairs["inspection_id"].strip()))
        except ValueError:
            raise DomainError(
                "upload.invalid_metadata", reason="inspection_id is not a UUID"
            ) from None
    if pairs.get("captured_at"):
        meta["captured_at"] = _rfc3339(pairs["captured_at"])
    return meta


def _rfc3339(value: str) -> str:
    from fieldsync.clock import isoformat, parse_rfc3339

    try:
        return isoformat(parse_rfc3339(value)) or ""
    except ValueError:
        raise DomainError(
            "upload.invalid_metadata", reason="captured_at is not an RFC 3339 time with its zone"
        ) from None


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum: `<algorithm> <base64 digest>`."""
    if not header:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise DomainError("upload.checksum_unsupported", algorithm=algorithm[:20])
    try:
        return algorithm, base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise DomainError("request.bad_request") from None


def _whole_number(value: str | None) -> int | None:
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def parse_length(value: str | None) -> int:
    length = _whole_number(value)
    if length is None:
        raise DomainError("upload.length_required")
    return length


def parse_offset(value: str | None) -> int:
    offset = _whole_number(value)
    if offset is None:
        raise DomainError("request.bad_request")
    return offset


# --- the services -------------------------------------------------------------------------


def check_length(config: Config, length: int) -> None:
    """Refuse a declared length over the limit before a single byte is read."""
    if length > config.upload_max_bytes:
        raise DomainError("evidence.too_large", size=length, limit=config.upload_max_bytes)


@dataclass(frozen=True)
class Context:
    """What every upload service needs beside the session."""

    config: Config
    store: BlobStore
    actor: service.Actor
    now: datetime


def create(
    session: Session,
    ctx: Context,
    *,
    length: int,
    metadata: dict[str, Any],
    upload_id: uuid.UUID | None = None,
) -> Upload:
    """A new upload (tus creation). The same hash already held as the street's evidence gives an
    upload that is complete at once: the phone sends no byte twice."""
    check_length(ctx.config, length)
    upload = Upload(
        id=upload_id or uuid.uuid4(),
        owner_id=ctx.actor.person_id,
        device_id=ctx.actor.device_id,
        street_id=ctx.actor.street_id,
        sha256=metadata["sha256"],
        length=length,
        offset=0,
        meta=metadata,
        state=RECEIVING,
        created_at=ctx.now,
        updated_at=ctx.now,
        expires_at=ctx.now + timedelta(hours=ctx.config.upload_expiry_hours),
    )
    # only the street's own evidence: another street's copy of the same bytes is no proof that
    # this phone holds them, and is not this street's to see
    existing = session.get(Evidence, (upload.street_id, upload.sha256))
    if existing is not None:
        if existing.size != length:  # bytes of another length cannot have that hash
            raise DomainError("upload.hash_mismatch")
        _complete(upload, ctx.now, deduplicated=True)
        session.add(upload)
        service.add_custody(
            session,
            existing,
            "uploaded",
            ctx.actor,
            at=ctx.now,
            details={"upload_id": str(upload.id), "deduplicated": True, "bytes_received": 0},
        )
        return upload
    session.add(upload)
    path = part_path(ctx.config, upload.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as f:
        os.fsync(f.fileno())
    # a creation that does not commit leaves no file behind
    after_rollback(session, lambda: path.unlink(missing_ok=True))
    if length == 0:
        finish(session, ctx, upload)  # refuses: an empty file is never evidence
    return upload


def get(
    session: Session,
    ctx: Context,
    upload_id: uuid.UUID,
    *,
    for_update: bool = False,
    include_failed: bool = False,
) -> Upload:
    """The caller's own upload; another person's is 404 as if it did not exist. An expired one
    is 410, and so is a refused one unless `include_failed` (to say why, or to delete it)."""
    stmt = select(Upload).where(Upload.id == upload_id)
    if for_update:
        stmt = stmt.with_for_update()
    upload = session.scalar(stmt)
    if upload is None or upload.owner_id != ctx.actor.person_id:
        raise DomainError("upload.not_found")
    if upload.state == FAILED and not include_failed:
        raise DomainError("upload.failed", error=upload.error or "")
    if upload.state == RECEIVING and upload.expires_at <= ctx.now:
        raise DomainError("upload.expired")
    return upload


@dataclass(frozen=True)
class Chunk:
    """The bytes of one request, received into a file of their own, checksum verified."""

    path: Path
    size: int


@contextmanager
def received_chunk(
    config: Config,
    body: BinaryIO,
    *,
    length: int,
    offset: int,
    checksum: tuple[str, bytes] | None,
) -> Iterator[Chunk]:
    """Receive a chunk meant for `offset` of an upload of `length` bytes, with no transaction
    open. A chunk that runs past the length (413), does not match its checksum (460) or breaks
    off is dropped whole; the file goes when the block ends, whatever happens."""
    remaining = length - offset
    hasher = StreamingHasher(checksum[0]) if checksum else None
    directory = uploads_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4()}.chunk"
    try:
        size = 0
        with open(path, "xb") as f:
            while block := body.read(min(CHUNK_SIZE, remaining - size + 1)):
                size += len(block)
                if size > remaining:
                    raise DomainError("upload.length_exceeded", length=length)
                if hasher:
                    hasher.update(block)
                f.write(block)
        if checksum and hasher and hasher.digest() != checksum[1]:
            raise DomainError("upload.checksum_mismatch")
        yield Chunk(path=path, size=size)
    finally:
        path.unlink(missing_ok=True)


def append(session: Session, ctx: Context, upload: Upload, *, offset: int, chunk: Chunk) -> Upload:
    """Append a received chunk (tus PATCH) at `offset`, the upload's row locked; the last byte
    finishes the upload. The offset is checked again here: another request for the same upload
    may have moved it while this chunk was on its way (409)."""
    if offset != upload.offset:
        raise DomainError("upload.offset_mismatch", expected=upload.offset, got=offset)
    if chunk.size > upload.length - upload.offset:
        raise DomainError("upload.length_exceeded", length=upload.length)
    if upload.state == COMPLETE:
        return upload
    if chunk.size:
        _write_at(part_path(ctx.config, upload.id), upload.offset, chunk.path)
        upload.offset += chunk.size
        upload.updated_at = ctx.now
        # expiration slides with progress: a phone on a bad network may take days
        upload.expires_at = ctx.now + timedelta(hours=ctx.config.upload_expiry_hours)
    if upload.offset == upload.length:
        finish(session, ctx, upload)
    return upload


def _write_at(part: Path, offset: int, chunk: Path) -> None:
    try:
        f = open(part, "r+b")
    except FileNotFoundError:
        # removed by the expiry job meanwhile, or the upload began on a server that does not
        # share this one's data directory (README: several servers)
        raise DomainError("upload.part_missing") from None
    with f, open(chunk, "rb") as src:
        f.truncate(offset)  # bytes of a chunk that never committed
        f.seek(offset)
        try:
            shutil.copyfileobj(src, f, CHUNK_SIZE)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.truncate(offset)
            raise


def finish(session: Session, ctx: Context, upload: Upload) -> Evidence:
    """The last byte arrived: verify the hash, validate the image, store the original and
    record the evidence. On refusal the part file is deleted and UploadRefused raised."""
    path = part_path(ctx.config, upload.id)
    try:
        actual = sha256_file(path)
        if actual != upload.sha256:
            raise DomainError("upload.hash_mismatch")
        from fieldsync.evidence.imaging import inspect_image

        facts = inspect_image(
            path,
            max_pixels=ctx.config.image_max_pixels,
            max_bytes=ctx.config.upload_max_bytes,
        )
    except DomainError as error:
        path.unlink(missing_ok=True)
        raise UploadRefused(upload.id, error) from error

    ctx.store.put_file(upload.sha256, path)  # verifies the hash again while copying
    evidence, created = service.record_verified(
        session, upload=upload, facts=facts, actor=ctx.actor, now=ctx.now, config=ctx.config
    )
    _complete(upload, ctx.now, deduplicated=not created)
    after_commit(session, lambda: path.unlink(missing_ok=True))
    return evidence


def _complete(upload: Upload, now: datetime, *, deduplicated: bool) -> None:
    upload.state = COMPLETE
    upload.offset = upload.length
    upload.deduplicated = deduplicated
    upload.completed_at = now
    upload.updated_at = now


def mark_failed(session: Session, ctx: Context, upload_id: uuid.UUID, error: DomainError) -> None:
    """Record a refusal (in its own transaction: the request's one is rolled back)."""
    upload = session.get(Upload, upload_id)
    if upload is None:
        return
    upload.state = FAILED
    upload.error = error.code
    upload.refusal = flag(error.code, **error.params)
    upload.updated_at = ctx.now
    part_path(ctx.config, upload_id).unlink(missing_ok=True)


def terminate(session: Session, ctx: Context, upload: Upload) -> None:
    """tus termination: the upload and its bytes go (a finished one's evidence stays)."""
    path = part_path(ctx.config, upload.id)
    session.delete(upload)
    after_commit(session, lambda: path.unlink(missing_ok=True))


def expire(session: Session, *, config: Config, now: datetime) -> int:
    """Remove unfinished uploads past their expiry and refused ones, with their part files; and
    part files no row names (a crash between writing and committing). Returns rows removed."""
    # skip_locked: every server process runs this job; each row is removed by one of them
    stale = list(
        session.scalars(
            select(Upload)
            .where(Upload.state != COMPLETE, Upload.expires_at <= now)
            .with_for_update(skip_locked=True)
        )
    )
    paths = [part_path(config, u.id) for u in stale]
    for upload in stale:
        session.delete(upload)

    live = {str(i) for i in session.scalars(select(Upload.id).where(Upload.state == RECEIVING))}
    live -= {str(u.id) for u in stale}

    def remove_files() -> None:
        for path in paths:
            path.unlink(missing_ok=True)
        _remove_orphans(live, config, now)

    after_commit(session, remove_files)
    return len(stale)


def _remove_orphans(known: set[str], config: Config, now: datetime) -> None:
    directory = uploads_dir(config)
    if not directory.is_dir():
        return
    cutoff = (now - _ORPHAN_GRACE).timestamp()
    for path in [*directory.glob("*.part"), *directory.glob("*.chunk")]:
        if path.suffix == ".part" and path.stem in known:
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            continue
