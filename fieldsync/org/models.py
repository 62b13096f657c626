"""Organisation tables ("1+5+N", DOMAIN.md §2-3)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from fieldsync.clock import utcnow
from fieldsync.db import Base, Synced, new_id


class Role(enum.StrEnum):
    OFFICER = "officer"  # 执法人员
    GRID_WORKER = "grid_worker"  # 网格员
    DISPATCHER = "dispatcher"  # 网格化服务管理中心
    CASE_HANDLER = "case_handler"  # 常驻单位办案人员
    REVIEWER = "reviewer"  # 审核人员
    CAPTAIN = "captain"  # 综合执法队队长
    ADMIN = "admin"  # 管理员


class DepartmentKind(enum.StrEnum):
    RESIDENT = "resident"  # 常驻单位
    LISTED = "listed"  # 挂牌单位


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
        length=32,
    )


class District(Base):
    """区"""

    __tablename__ = "districts"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))


class Street(Base):
    """街道 / 地区"""

    __tablename__ = "streets"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    district_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("districts.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    # short form used in case numbers, e.g. 东华 for 东城区东华门街道
    case_abbrev: Mapped[str] = mapped_column(String(16))

    district: Mapped[District] = relationship()


class Community(Base):
    """社区"""

    __tablename__ = "communities"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))


class Grid(Synced, Base):
    """网格"""

    __tablename__ = "grids"
    __sync_entity__ = "grid"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    community_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("communities.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))

    community: Mapped[Community] = relationship(lazy="joined")

    def sync_audiences(self) -> list[str]:
        return [f"street:{self.community.street_id}"]


class Department(Synced, Base):
    """An enforcement department of the district: resident on the team, or listed."""

    __tablename__ = "departments"
    __sync_entity__ = "department"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    kind: Mapped[DepartmentKind] = mapped_column(_enum(DepartmentKind, "department_kind"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def sync_audiences(self) -> list[str]:
        return ["all"]


class Team(Base):
    """街道综合执法队: one per street."""

    __tablename__ = "teams"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), unique=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))

    street: Mapped[Street] = relationship()


class Person(Synced, Base):
    """Anyone who signs in: officers, grid workers, back office. Scope is the street."""

    __tablename__ = "people"
    __sync_entity__ = "person"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    full_name: Mapped[str] = mapped_column(String(100))
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), index=True)
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id"), index=True)
    department_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("departments.id"), index=True
    )
    grid_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("grids.id"))
    # 队长 / 副队长 / 城管队长 …, free text shown on the roster
    title: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    role_rows: Mapped[list[PersonRole]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PersonRole.role"
    )
    certificates: Mapped[list[Certificate]] = relationship(
        back_populates="person", lazy="selectin", order_by="Certificate.valid_from"
    )
    department: Mapped[Department | None] = relationship(lazy="joined")
    street: Mapped[Street] = relationship(lazy="joined")

    def sync_audiences(self) -> list[str]:
        return [f"street:{self.street_id}"]

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(r.role for r in self.role_rows)

    def set_roles(self, roles: set[Role] | frozenset[Role] | list[Role]) -> None:
        wanted = set(roles)
        self.role_rows = [r for r in self.role_rows if r.role in wanted] + [
            PersonRole(role=r) for r in sorted(wanted - self.roles)
        ]


class PersonRole(Base):
    __tablename__ = "person_roles"
    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), primary_key=True)

    def sync_parent(self, session: Session) -> Person | None:
        """A role change is a change of the person's roster record."""
        # a role added with a new person has no person_id yet: the person is new anyway
        return session.get(Person, self.person_id) if self.person_id else None


class RosterPeriod(Base):
    """A person as the roster knew them over [valid_from, valid_to): department, roles, active —
    what the second-inspector rule reads, as of when an inspection happened (DOMAIN.md §4).

    Written by the org service whenever one of them changes. A person's first period has no
    valid_from: before the roster first recorded them, it knows nothing better. The open period
    (valid_to NULL) is the person as they are now.
    """

    __tablename__ = "roster_periods"
    __table_args__ = (
        CheckConstraint(
            "valid_from IS NULL OR valid_to IS NULL OR valid_to > valid_from", name="valid_period"
        ),
        Index("ix_roster_periods_person_id_valid_from", "person_id", "valid_from"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    department_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("departments.id"))
    roles: Mapped[list[Any]]  # role values, sorted
    active: Mapped[bool]
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]

    department: Mapped[Department | None] = relationship(lazy="joined")


class Certificate(Base):
    """执法证: an enforcement certificate, valid in [valid_from, valid_to) unless revoked."""

    __tablename__ = "certificates"
    __table_args__ = (CheckConstraint("valid_to > valid_from", name="valid_period"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"), index=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    person: Mapped[Person] = relationship(back_populates="certificates")

    def sync_parent(self, session: Session) -> Person | None:
        """Certificate validity travels with the roster record of its holder."""
        if self.person_id is None:
            return self.person
        return session.get(Person, self.person_id)


class Matter(Synced, Base):
    """执法事项: one entry of the catalogue, owned by exactly one department."""

    __tablename__ = "matters"
    __sync_entity__ = "matter"
    __table_args__ = (UniqueConstraint("code"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("departments.id"), index=True)
    # {tier: [measure, ...]} — what each tier allows for this matter (DOMAIN.md §4)
    allowed_measures: Mapped[dict[str, Any]]
    legal_basis: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")

    def sync_audiences(self) -> list[str]:
        return ["all"]
