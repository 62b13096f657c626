"""Case tables: one row per diverted finding (a case or a referral), the case-number counter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldsync.clock import utcnow
from fieldsync.db import Base
from fieldsync.org.models import Department


class Case(Base):
    """A finding diverted by departmental duty (DOMAIN.md §5).

    One concept, two kinds: `case` — for the resident unit owning the matter, to be filed
    (立案处置) and taken through the lifecycle; `referral` — whistled (吹哨) to the listed unit
    owning the matter, state `referred`, which leaves the team's lifecycle. Devices never
    receive cases directly: the inspection's `cases` list mirrors them.
    """

    __tablename__ = "cases"
    __table_args__ = (
        # a replayed or repeated submit never diverts a finding twice
        UniqueConstraint("inspection_id", "finding_id"),
        # case numbers are unique per street (the year is part of the number)
        UniqueConstraint("street_id", "number"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), index=True)
    inspection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspections.id"), index=True)
    # the finding's id; the inspection's own id when it had a matter but no findings
    finding_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))  # case | referral
    matter_code: Mapped[str] = mapped_column(String(32), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("departments.id"), index=True)
    # awaiting_filing | filed | declined | concluded | archived (CaseState) | referred
    state: Mapped[str] = mapped_column(String(24), index=True)
    # the unit's case handlers on the team at diversion (办案人员)
    assignee_ids: Mapped[list[Any]] = mapped_column(default=list)
    # when the problem was found on site (the inspection's occurred_at), for date filters
    occurred_at: Mapped[datetime | None] = mapped_column(index=True)
    number: Mapped[str | None] = mapped_column(String(64))  # 案件编号, on filing
    number_year: Mapped[int | None] = mapped_column(Integer)
    number_seq: Mapped[int | None] = mapped_column(Integer)
    filed_at: Mapped[datetime | None]
    filed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    decline_reason: Mapped[str | None] = mapped_column(Text)
    declined_at: Mapped[datetime | None]
    decision: Mapped[str | None] = mapped_column(Text)  # 处理决定
    summary: Mapped[str | None] = mapped_column(Text)
    concluded_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]
    archived_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")
    officers: Mapped[list[CaseOfficer]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="CaseOfficer.person_id"
    )

    @property
    def department_code(self) -> str:
        return self.department.code


class CaseOfficer(Base):
    """The officers of a case: who recorded its inspection or was present (filter `officer`)."""

    __tablename__ = "case_officers"
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"), primary_key=True)


class CaseNumberCounter(Base):
    """The last case-number sequence per street and year, taken under its row lock."""

    __tablename__ = "case_number_counters"
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


def _register_triggers() -> None:
    from fieldsync.cases.triggers import register_ddl

    register_ddl(Case.metadata)


_register_triggers()
