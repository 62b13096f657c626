"""Inspection and report tables: device-written fields, server-written fields, field clocks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.clock import utcnow
from fieldsync.db import Base, Synced


class FieldClocks:
    """Per device-written field: the record version at which it last changed and the HLC of
    that write, so that a later mutation can tell a concurrent edit from a stale one."""

    field_clocks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Inspection(FieldClocks, Synced, Base):
    """现场检查: what officers found and did on site (PROTOCOL.md §5)."""

    __tablename__ = "inspections"
    __sync_entity__ = "inspection"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), index=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"), index=True)
    created_device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"))
    # device-written
    matter_code: Mapped[str | None] = mapped_column(String(32), index=True)
    occurred_at: Mapped[datetime | None] = mapped_column(index=True)
    location: Mapped[dict[str, Any] | None]
    address: Mapped[str | None] = mapped_column(Text)
    present: Mapped[list[Any]] = mapped_column(default=list)
    party: Mapped[dict[str, Any] | None]
    findings: Mapped[list[Any]] = mapped_column(default=list)
    measures: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    description: Mapped[str | None] = mapped_column(Text)
    task_order_id: Mapped[uuid.UUID | None]
    # the tier the phone decided offline; a disagreement with the server's is flagged
    claimed_tier: Mapped[str | None] = mapped_column(String(16))
    # server-written
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    tier: Mapped[str | None] = mapped_column(String(16))
    second_inspector_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    decisions: Mapped[list[Any]] = mapped_column(default=list)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    evidence_missing: Mapped[list[Any]] = mapped_column(default=list)
    # {sha256: {state, reason, at}}: the back office's review of each photo (reaches the device)
    evidence_review: Mapped[dict[str, Any] | None] = mapped_column(default=dict)
    cases: Mapped[list[Any]] = mapped_column(default=list)
    review_state: Mapped[str | None] = mapped_column(String(24), index=True)
    review: Mapped[dict[str, Any] | None]
    submitted_at: Mapped[datetime | None]
    # set when one of its cases is archived: nothing may change it again (留存备查)
    sealed_at: Mapped[datetime | None]

    def sync_audiences(self) -> list[str]:
        # officers and the back office of the street; grid workers do not receive inspections
        return [f"staff:{self.street_id}"]


class Report(FieldClocks, Synced, Base):
    """事件上报: a problem a grid worker found on patrol."""

    __tablename__ = "reports"
    __sync_entity__ = "report"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), index=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    created_device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"))
    # the grid worker responsible for it; reassignment moves it out of the old one's scope
    assignee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"), index=True)
    # device-written
    category: Mapped[str | None] = mapped_column(String(64))
    grid_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("grids.id"))
    occurred_at: Mapped[datetime | None]
    location: Mapped[dict[str, Any] | None]
    address: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    # server-written
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    evidence_missing: Mapped[list[Any]] = mapped_column(default=list)
    # {sha256: {state, reason, at}}: the back office's review of each photo (reaches the device)
    evidence_review: Mapped[dict[str, Any] | None] = mapped_column(default=dict)
    submitted_at: Mapped[datetime | None]

    def sync_audiences(self) -> list[str]:
        return [f"staff:{self.street_id}", f"person:{self.assignee_id}"]
