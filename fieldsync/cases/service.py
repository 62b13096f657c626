"""Diversion of submitted inspections into cases, and the guarded case lifecycle.

Services never commit: the request, job or push that calls them owns the transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from fieldsync.cases import guard  # noqa: F401  (archive immutability on every flush)
from fieldsync.cases.models import Case, CaseNumberCounter, CaseOfficer
from fieldsync.db import upsert_insert
from fieldsync.errors import DomainError
from fieldsync.inspections.models import Inspection
from fieldsync.org.models import Department, Person, PersonRole, Role, Street
from fieldsync.org.reference import reference_reads
from fieldsync.rules.case_states import CaseAction, CaseState, format_case_number, transition
from fieldsync.rules.diversion import Finding, route
from fieldsync.sync.models import Event

REFERRED = "referred"  # a referral's only state: whistled to the listed unit (吹哨)
BEIJING = timezone(timedelta(hours=8))  # the year of a case number is the local year


def divert(
    session: Session,
    *,
    inspection: Inspection,
    now: datetime,
    person_id: uuid.UUID | None,
    device_id: uuid.UUID | None = None,
    device_time: datetime | None = None,
    hlc: str | None = None,
) -> list[Case]:
    """One case (or referral) per finding; findings already diverted are skipped (idempotent,
    backed by the unique constraint on (inspection_id, finding_id)). An inspection with a
    matter and no findings is one finding, under the inspection's own id.

    Runs inside a sync push without flushing: the push bumps the inspection's version once.
    """
    with session.no_autoflush:
        return _divert(
            session,
            inspection=inspection,
            now=now,
            person_id=person_id,
            device_id=device_id,
            device_time=device_time,
            hlc=hlc,
        )


def _divert(
    session: Session,
    *,
    inspection: Inspection,
    now: datetime,
    person_id: uuid.UUID | None,
    device_id: uuid.UUID | None,
    device_time: datetime | None,
    hlc: str | None,
) -> list[Case]:
    findings = [
        (str(f["id"]), f["matter_code"]) for f in inspection.findings or [] if f.get("matter_code")
    ]
    if not findings and inspection.matter_code:
        findings = [(str(inspection.id), inspection.matter_code)]
    reads = reference_reads(session)
    matters = reads.matters(code for _, code in findings)
    done = set(session.scalars(select(Case.finding_id).where(Case.inspection_id == inspection.id)))
    routes = route(Finding(fid, reads.matter_facts(code)) for fid, code in findings)
    codes = dict(findings)
    officers = {inspection.created_by_id} | {uuid.UUID(str(p)) for p in inspection.present or []}
    created: list[Case] = []
    for r in routes:
        if r.finding_id in done:
            continue
        matter = matters[codes[r.finding_id]]
        case = Case(
            id=uuid.uuid4(),
            street_id=inspection.street_id,
            inspection_id=inspection.id,
            finding_id=r.finding_id,
            kind=r.kind,
            matter_code=matter.code,
            department_id=matter.department_id,
            department=matter.department,
            state=CaseState.AWAITING_FILING.value if r.kind == "case" else REFERRED,
            assignee_ids=[
                str(p) for p in _case_handlers(session, inspection.street_id, matter.department_id)
            ]
            if r.kind == "case"
            else [],
            occurred_at=inspection.occurred_at,
            created_at=now,
            updated_at=now,
        )
        case.officers = [CaseOfficer(person_id=p) for p in sorted(officers)]
        session.add(case)
        created.append(case)
        _event(
            session,
            case,
            action="case.divert",
            person_id=person_id,
            device_id=device_id,
            device_time=device_time,
            hlc=hlc,
            now=now,
            changes={
                "state": [None, case.state],
                "kind": r.kind,
                "department": r.department_code,
                "inspection_id": str(inspection.id),
                "finding_id": r.finding_id,
            },
        )
    if findings:
        inspection.status = "diverted"
    refresh_inspection_cases(session, inspection, pending=created)
    return created


def _case_handlers(
    session: Session, street_id: uuid.UUID, department_id: uuid.UUID
) -> list[uuid.UUID]:
    stmt = (
        select(Person.id)
        .join(PersonRole, PersonRole.person_id == Person.id)
        .where(
            Person.street_id == street_id,
            Person.department_id == department_id,
            Person.active.is_(True),
            PersonRole.role == Role.CASE_HANDLER,
        )
        .order_by(Person.id)
    )
    return list(session.scalars(stmt))


def case_summary(case: Case) -> dict[str, Any]:
    """What the device sees of a case in its inspection's `cases`."""
    return {
        "id": str(case.id),
        "number": case.number,
        "state": case.state,
        "kind": case.kind,
        "department_code": case.department_code,
        "finding_id": case.finding_id,
    }


def refresh_inspection_cases(
    session: Session, inspection: Inspection, pending: list[Case] | None = None
) -> None:
    stored = session.scalars(select(Case).where(Case.inspection_id == inspection.id))
    cases = {c.id: c for c in [*stored, *(pending or [])]}
    ordered = sorted(cases.values(), key=lambda c: (c.created_at, c.finding_id))
    summaries = [case_summary(c) for c in ordered]
    if summaries != (inspection.cases or []):
        inspection.cases = summaries  # the feed bumps the version: the device pulls it


def _event(
    session: Session,
    case: Case,
    *,
    action: str,
    person_id: uuid.UUID | None,
    now: datetime,
    changes: dict[str, Any],
    device_id: uuid.UUID | None = None,
    device_time: datetime | None = None,
    hlc: str | None = None,
) -> None:
    session.add(
        Event(
            entity="case",
            entity_id=case.id,
            version=None,
            action=action,
            person_id=person_id,
            device_id=device_id,
            device_time=device_time,
            hlc=hlc,
            server_time=now,
            changes=changes,
        )
    )


# --- reading ----------------------------------------------------------------------------------


def get_case(session: Session, *, case_id: uuid.UUID, principal: Any) -> Case:
    case = session.get(Case, case_id)
    if case is None or not _visible(case, principal):
        raise DomainError("case.not_found", id=str(case_id))
    return case


def _visible(case: Case, principal: Any) -> bool:
    if case.street_id != principal.street_id:
        return False
    if _handler_only(principal):
        return case.department_id == principal.person.department_id
    return True


def _handler_only(principal: Any) -> bool:
    """A case handler without a wider back-office role sees only their own unit's cases."""
    wider = {Role.CAPTAIN, Role.REVIEWER, Role.DISPATCHER, Role.ADMIN}
    return principal.has(Role.CASE_HANDLER) and not principal.has(*wider)


def list_cases(
    *,
    principal: Any,
    inspection_id: uuid.UUID | None = None,
    state: str | None = None,
    department: str | None = None,
    matter: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    officer: uuid.UUID | None = None,
) -> Select[tuple[Case]]:
    """A select of the cases the principal may see, filtered; newest first."""
    stmt = select(Case).where(Case.street_id == principal.street_id)
    if _handler_only(principal):
        stmt = stmt.where(Case.department_id == principal.person.department_id)
    if inspection_id is not None:
        stmt = stmt.where(Case.inspection_id == inspection_id)
    if state:
        stmt = stmt.where(Case.state == state)
    if department:
        dept = select(Department.id).where(Department.code == department).scalar_subquery()
        stmt = stmt.where(Case.department_id == dept)
    if matter:
        stmt = stmt.where(Case.matter_code == matter)
    if date_from is not None:
        stmt = stmt.where(Case.occurred_at >= date_from)
    if date_to is not None:
        stmt = stmt.where(Case.occurred_at < date_to)
    if officer is not None:
        stmt = stmt.where(
            exists().where(CaseOfficer.case_id == Case.id, CaseOfficer.person_id == officer)
        )
    return stmt.order_by(Case.created_at.desc(), Case.id)


def case_events(session: Session, case_id: uuid.UUID) -> list[Event]:
    stmt = select(Event).where(Event.entity == "case", Event.entity_id == case_id)
    return list(session.scalars(stmt.order_by(Event.id)))


# --- the lifecycle ----------------------------------------------------------------------------


def act(
    session: Session,
    *,
    case_id: uuid.UUID,
    action: str,
    principal: Any,
    payload: dict[str, Any],
    now: datetime,
    case_number_format: str,
) -> Case:
    """Apply one lifecycle action (file, decline, conclude, archive) guarded by the state
    machine; record it as an event and mirror the new state into the inspection."""
    case = get_case(session, case_id=case_id, principal=principal)
    if case.kind != "case":
        raise DomainError("case.referral_not_handled_here", department=case.department_code)
    person = principal.person
    target = transition(
        case.state,
        action,
        actor_roles=frozenset(r.value for r in principal.roles),
        actor_department_code=person.department.code if person.department else None,
        case_department_code=case.department_code,
        payload=payload,
    )
    before = case.state
    changes: dict[str, Any] = {"state": [before, target.value]}
    if action == CaseAction.FILE:
        # the number's year is the year of filing (立案年度), in Beijing
        year = now.astimezone(BEIJING).year
        case.number_seq, case.number = _next_number(
            session, street_id=case.street_id, year=year, fmt=case_number_format
        )
        case.number_year = year
        case.filed_at, case.filed_by_id = now, person.id
        changes["number"] = case.number
    elif action == CaseAction.DECLINE:
        case.decline_reason, case.declined_at = payload["reason"], now
        changes["reason"] = payload["reason"]
    elif action == CaseAction.CONCLUDE:
        case.decision, case.summary, case.concluded_at = (
            payload["decision"],
            payload["summary"],
            now,
        )
        changes.update(decision=payload["decision"], summary=payload["summary"])
    elif action == CaseAction.ARCHIVE:
        case.archived_at, case.archived_by_id = now, person.id
    case.state = target.value
    case.updated_at = now
    _event(session, case, action=f"case.{action}", person_id=person.id, now=now, changes=changes)

    inspection = session.get(Inspection, case.inspection_id)
    assert inspection is not None
    session.flush()
    refresh_inspection_cases(session, inspection)
    if target is CaseState.ARCHIVED and inspection.sealed_at is None:
        # 留存备查: from now on the inspection and its evidence never change (see guard.py)
        inspection.sealed_at = now
    session.flush()
    return case


def _next_number(session: Session, *, street_id: uuid.UUID, year: int, fmt: str) -> tuple[int, str]:
    """The next free number of the street and year, and its sequence. A number already taken
    (filed by hand before numbers were always generated) is skipped, never handed out again."""
    street = session.get(Street, street_id)
    assert street is not None
    while True:
        seq = _next_seq(session, street_id=street_id, year=year)
        number = format_case_number(fmt, street_abbrev=street.case_abbrev, year=year, seq=seq)
        taken = session.scalar(
            select(Case.id).where(Case.street_id == street_id, Case.number == number)
        )
        if taken is None:
            return seq, number


def _next_seq(session: Session, *, street_id: uuid.UUID, year: int) -> int:
    """The next sequence for the street and year, under the counter row's lock: two concurrent
    filings on PostgreSQL wait for each other (SQLite serialises writers with BEGIN IMMEDIATE)."""
    session.execute(
        upsert_insert(session, CaseNumberCounter)
        .values(street_id=street_id, year=year, value=0)
        .on_conflict_do_nothing(index_elements=["street_id", "year"])
    )
    counter = session.scalars(
        select(CaseNumberCounter)
        .where(CaseNumberCounter.street_id == street_id, CaseNumberCounter.year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    counter.value += 1
    session.flush()
    return counter.value
