"""Evidence tables: one row per photo (keyed by its SHA-256), its custody log, the records that
name it, and the tus uploads that bring its bytes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.clock import utcnow
from fieldsync.db import Base


class Evidence(Base):
    """A verified original, kept unchanged forever (留存备查).

    One row per street and hash: the bytes are stored once (the blob store is keyed by hash
    alone), but each street holds its own evidence of them — its own custody, review and
    records — and learns nothing of another street's."""

    __tablename__ = "evidence"
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str | None] = mapped_column(String(255))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    orientation: Mapped[int | None] = mapped_column(Integer)
    exif_taken_at: Mapped[datetime | None]
    exif_taken_at_local: Mapped[str | None] = mapped_column(String(32))
    make: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    gcj02_lat: Mapped[float | None] = mapped_column(Float)
    gcj02_lon: Mapped[float | None] = mapped_column(Float)
    captured_at: Mapped[datetime | None]  # the device's clock at capture
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    uploaded_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"))
    flags: Mapped[list[Any]] = mapped_column(default=list)
    review_state: Mapped[str] = mapped_column(String(24), default="pending", index=True)
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    reviewed_at: Mapped[datetime | None]
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64))
    display_sha256: Mapped[str | None] = mapped_column(String(64))
    derivatives_at: Mapped[datetime | None]
    # failed derivations (an unreadable blob, say): how many, and not to be tried before when
    derivative_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    derivatives_retry_at: Mapped[datetime | None]


class CustodyEvent(Base):
    """Chain of custody: captured, uploaded, verified, derived, viewed, downloaded, reviewed."""

    __tablename__ = "evidence_custody"
    __table_args__ = (
        Index("ix_evidence_custody_street_id_sha256_id", "street_id", "sha256", "id"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class EvidenceLink(Base):
    """A synced record (inspection, report) naming evidence by hash, kept beside the record's own
    `evidence` list so that verification and review find the records without scanning JSON."""

    __tablename__ = "evidence_links"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    entity_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, index=True)
    # the record's street: the evidence it names is that street's
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"))


class Upload(Base):
    """A tus upload (断点续传) in progress, finished or refused. The bytes received so far sit in
    `<data_dir>/uploads/<id>.part`; `offset` here is the truth, the file is cut back to it."""

    __tablename__ = "uploads"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"), index=True)
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"))
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # declared, lowercase hex
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # decoded Upload-Metadata (filename already reduced to a bare name)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # receiving | complete | failed
    state: Mapped[str] = mapped_column(String(16), default="receiving", index=True)
    error: Mapped[str | None] = mapped_column(String(64))
    # the refusal as a flag (code, message in en and zh, params), for a phone that asks later
    refusal: Mapped[dict[str, Any] | None]
    deduplicated: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]
