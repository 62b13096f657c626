"""Evidence tables: one row per photo (keyed by its SHA-256), its derivatives and custody log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.clock import utcnow
from fieldsync.db import Base


class Evidence(Base):
    """A verified original, kept unchanged forever (留存备查)."""

    __tablename__ = "evidence"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), index=True)
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


class CustodyEvent(Base):
    """Chain of custody: captured, uploaded, verified, derived, viewed, downloaded, reviewed."""

    __tablename__ = "evidence_custody"
    __table_args__ = (Index("ix_evidence_custody_sha256_id", "sha256", "id"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
