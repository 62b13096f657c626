"""Roster and catalogue services: people, certificates, departments, matters. Never commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldsync.clock import utcnow
from fieldsync.errors import DomainError
from fieldsync.org.models import (
    Certificate,
    Department,
    Grid,
    Matter,
    Person,
    PersonRole,
    Role,
    RosterPeriod,
    Street,
    Team,
)

# Auxiliary forces (辅助力量: 网格员 …) help patrol and report but never hold enforcement authority
# (DOMAIN.md §2), so no one holds an auxiliary role together with a role that enforces.
AUXILIARY_ROLES = frozenset({Role.GRID_WORKER})
ENFORCEMENT_ROLES = frozenset({Role.OFFICER, Role.CAPTAIN, Role.CASE_HANDLER})


def list_departments(session: Session) -> list[Department]:
    return list(session.scalars(select(Department).order_by(Department.kind, Department.code)))


def list_matters(session: Session, *, department_id: uuid.UUID | None = None) -> list[Matter]:
    stmt = select(Matter).where(Matter.active.is_(True)).order_by(Matter.code)
    if department_id is not None:
        stmt = stmt.where(Matter.department_id == department_id)
    return list(session.scalars(stmt))


def get_matter(session: Session, code: str) -> Matter:
    matter = session.scalar(select(Matter).where(Matter.code == code))
    if matter is None:
        raise DomainError("org.unknown_matter", code=code)
    return matter


def get_department(session: Session, department_id: uuid.UUID) -> Department:
    department = session.get(Department, department_id)
    if department is None:
        raise DomainError("org.unknown_department", id=str(department_id))
    return department


def team_of_street(session: Session, street_id: uuid.UUID) -> Team | None:
    return session.scalar(select(Team).where(Team.street_id == street_id))


def get_person(session: Session, *, person_id: uuid.UUID, street_id: uuid.UUID) -> Person:
    """A person of the caller's street; other streets' people do not exist for the caller."""
    person = session.get(Person, person_id)
    if person is None or person.street_id != street_id:
        raise DomainError("org.person_not_found", id=str(person_id))
    return person


def list_people(
    session: Session,
    *,
    street_id: uuid.UUID,
    role: Role | None = None,
    department_id: uuid.UUID | None = None,
) -> list[Person]:
    stmt = select(Person).where(Person.street_id == street_id).order_by(Person.username)
    if role is not None:
        stmt = stmt.where(Person.role_rows.any(role=role))
    if department_id is not None:
        stmt = stmt.where(Person.department_id == department_id)
    return list(session.scalars(stmt))


def _check_refs(
    session: Session,
    *,
    street_id: uuid.UUID,
    department_id: uuid.UUID | None,
    grid_id: uuid.UUID | None,
) -> None:
    if department_id is not None:
        get_department(session, department_id)
    if grid_id is not None:
        grid = session.get(Grid, grid_id)
        if grid is None or grid.community is None or grid.community.street_id != street_id:
            raise DomainError("org.unknown_grid", id=str(grid_id))


def _check_roles(roles: Iterable[Role]) -> None:
    wanted = frozenset(roles)
    if wanted & AUXILIARY_ROLES and (clash := wanted & ENFORCEMENT_ROLES):
        raise DomainError("org.auxiliary_cannot_enforce", role=sorted(clash)[0].value)


def _keep_an_admin(session: Session, person: Person, changes: dict[str, Any]) -> None:
    """Refuse to leave the street without an active admin: nobody could manage its roster."""
    stays_admin = Role.ADMIN in set(changes.get("roles", person.roles)) and changes.get(
        "active", True
    )
    if stays_admin or Role.ADMIN not in person.roles or not person.active:
        return
    # the street's admins under their row locks, in one order: two admins taking the role
    # from each other at the same moment wait for each other, and the second is refused
    admins = session.scalars(
        select(Person.id)
        .join(PersonRole, PersonRole.person_id == Person.id)
        .where(
            Person.street_id == person.street_id,
            Person.active.is_(True),
            PersonRole.role == Role.ADMIN,
        )
        .order_by(Person.id)
        .with_for_update()
    ).all()
    if not set(admins) - {person.id}:
        raise DomainError("org.last_admin", username=person.username)


def record_roster_period(session: Session, person: Person, *, now: datetime) -> None:
    """Keep the person's roster history (RosterPeriod): when their department, roles or active
    flag differ from their open period, close it at `now` and open one with what they are now.
    The one place that writes roster periods; every change to those fields comes through it."""
    current = session.scalar(
        select(RosterPeriod).where(
            RosterPeriod.person_id == person.id, RosterPeriod.valid_to.is_(None)
        )
    )
    state = {
        "department_id": person.department_id,
        "roles": sorted(r.value for r in person.roles),
        "active": person.active,
    }
    if current is not None:
        if {k: getattr(current, k) for k in state} == state:
            return
        if current.valid_from is not None and current.valid_from >= now:
            # changed twice at one instant: the period of that instant is the last state
            for key, value in state.items():
                setattr(current, key, value)
            return
        current.valid_to = now
    session.add(
        RosterPeriod(
            person_id=person.id, valid_from=None if current is None else now, valid_to=None, **state
        )
    )
    session.flush()


def create_person(
    session: Session,
    *,
    hasher: PasswordHasher,
    street_id: uuid.UUID,
    username: str,
    password: str,
    full_name: str,
    roles: Iterable[Role],
    department_id: uuid.UUID | None = None,
    grid_id: uuid.UUID | None = None,
    title: str | None = None,
    phone: str | None = None,
    on_team: bool = True,
    person_id: uuid.UUID | None = None,
) -> Person:
    if session.scalar(select(Person.id).where(Person.username == username)) is not None:
        raise DomainError("org.username_taken", username=username)
    roles = list(roles)
    _check_roles(roles)
    _check_refs(session, street_id=street_id, department_id=department_id, grid_id=grid_id)
    team = team_of_street(session, street_id) if on_team else None
    person = Person(
        id=person_id or uuid.uuid4(),
        username=username,
        password_hash=hasher.hash(password),
        full_name=full_name,
        street_id=street_id,
        team_id=team.id if team else None,
        department_id=department_id,
        grid_id=grid_id,
        title=title,
        phone=phone,
    )
    person.set_roles(set(roles))
    session.add(person)
    session.flush()
    record_roster_period(session, person, now=utcnow())
    return person


def update_person(
    session: Session,
    *,
    hasher: PasswordHasher,
    person: Person,
    changes: dict[str, Any],
    now: datetime | None = None,
) -> Person:
    """Apply a partial update; keys are the writable fields of a person. A change of
    department, roles or active flag takes effect at `now` in the roster history."""
    if "username" in changes and changes["username"] != person.username:
        taken = session.scalar(select(Person.id).where(Person.username == changes["username"]))
        if taken is not None:
            raise DomainError("org.username_taken", username=changes["username"])
    _check_refs(
        session,
        street_id=person.street_id,
        department_id=changes.get("department_id"),
        grid_id=changes.get("grid_id"),
    )
    if "roles" in changes:
        _check_roles(changes["roles"])
    _keep_an_admin(session, person, changes)
    for key, value in changes.items():
        if key == "roles":
            person.set_roles(set(value))
        elif key == "password":
            person.password_hash = hasher.hash(value)
        else:
            setattr(person, key, value)
    session.flush()
    record_roster_period(session, person, now=now or utcnow())
    return person


def transfer_person(
    session: Session, *, person: Person, street_id: uuid.UUID, grid_id: uuid.UUID | None
) -> Person:
    """Move a person to another street's roster (and its team, if they were on one): their
    devices get the old street's records as `delete / out_of_scope` on their next pull and the
    new street's records after them. Certificates, department and roles go with them; the
    street they leave keeps an admin. Their reports there are handed over in the same
    transaction (fieldsync.inspections.reports.hand_over)."""
    if session.get(Street, street_id) is None:
        raise DomainError("org.unknown_street", id=str(street_id))
    if street_id == person.street_id:
        raise DomainError("org.transfer_same_street", username=person.username)
    _check_refs(session, street_id=street_id, department_id=None, grid_id=grid_id)
    _keep_an_admin(session, person, {"active": False})  # to the street they leave: gone
    team = team_of_street(session, street_id) if person.team_id is not None else None
    person.street_id = street_id
    person.team_id = team.id if team is not None else None
    person.grid_id = grid_id
    session.flush()
    session.expire(person, ["street"])  # loaded with the person: the street they left
    return person


def add_certificate(
    session: Session,
    *,
    person: Person,
    number: str,
    valid_from: datetime,
    valid_to: datetime,
) -> Certificate:
    if valid_to <= valid_from:
        raise DomainError("org.certificate_invalid_period")
    if session.scalar(select(Certificate.id).where(Certificate.number == number)) is not None:
        raise DomainError("org.certificate_number_taken", number=number)
    certificate = Certificate(
        person_id=person.id, number=number, valid_from=valid_from, valid_to=valid_to
    )
    session.add(certificate)
    session.flush()
    session.refresh(person, ["certificates"])
    return certificate


def get_certificate(
    session: Session, *, certificate_id: uuid.UUID, street_id: uuid.UUID
) -> Certificate:
    certificate = session.get(Certificate, certificate_id)
    if certificate is None or certificate.person.street_id != street_id:
        raise DomainError("org.certificate_not_found", id=str(certificate_id))
    return certificate


def revoke_certificate(
    session: Session, *, certificate: Certificate, reason: str, now: datetime
) -> Certificate:
    if certificate.revoked_at is not None:
        raise DomainError("org.certificate_already_revoked")
    certificate.revoked_at = now
    certificate.revoked_reason = reason
    session.flush()
    return certificate


def street_of(session: Session, street_id: uuid.UUID) -> Street:
    street = session.get(Street, street_id)
    assert street is not None
    return street
