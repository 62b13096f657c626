"""The back office's view of grid workers' reports (事件上报): lists, one with its trace, and
assignment — the street grid center (网格化服务管理中心) or the captain handing a report to the
person of the street who is to deal with it.

Who may receive a report: an active person of the report's street who works reports in the
field on a phone — a grid worker (网格员), an officer (执法人员) or the captain. The back office
(dispatcher, reviewer, case handler, admin) reads the street's reports anyway and does not take
them. A draft is not assigned: it is still being written on its author's phone, and moving it
away would reject the rest of their edits. A report's assignee is server-owned: devices never
write it; the feed moves the report out of the former assignee's scope (`out_of_scope`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from fieldsync.errors import DomainError
from fieldsync.identity.models import Device
from fieldsync.inspections.models import Report
from fieldsync.org.models import Person, Role
from fieldsync.sync.models import DeviceSyncState, Event

STATUSES = ("draft", "submitted")
# the field roles that take reports (see the module's docstring)
ASSIGNEE_ROLES = frozenset({Role.GRID_WORKER, Role.OFFICER, Role.CAPTAIN})
# who hands reports out: the street grid center and the captain
ASSIGNERS = frozenset({Role.DISPATCHER, Role.CAPTAIN})


@dataclass(frozen=True)
class Candidate:
    """Someone a report may be handed to, as the rule needs them."""

    id: uuid.UUID
    street_id: uuid.UUID
    roles: frozenset[Role]
    active: bool

    @classmethod
    def of(cls, person: Person) -> Candidate:
        return cls(person.id, person.street_id, frozenset(person.roles), person.active)


def decide_assignment(
    *,
    status: str,
    street_id: uuid.UUID,
    assignee_id: uuid.UUID,
    to: uuid.UUID,
    candidate: Candidate | None,
) -> bool:
    """Whether handing a report (in `status`, of `street_id`, now `assignee_id`'s) to `to`
    changes it, or DomainError. In order: submitted, the same assignee (nothing to do, whoever
    they are now: a repeated request gets the same answer), then the new assignee — on the
    street's roster (another street's person is unknown here), active, of a role that takes
    reports."""
    if status != "submitted":
        raise DomainError("report.not_submitted")
    if to == assignee_id:
        return False
    if candidate is None or candidate.street_id != street_id:
        raise DomainError("report.assignee_unknown", id=str(to))
    if not candidate.active:
        raise DomainError("report.assignee_inactive", id=str(to))
    if not candidate.roles & ASSIGNEE_ROLES:
        raise DomainError("report.assignee_not_eligible", id=str(to))
    return True


def get_report(
    session: Session, *, report_id: uuid.UUID, street_id: uuid.UUID, for_update: bool = False
) -> Report:
    stmt = select(Report).where(Report.id == report_id)
    if for_update:
        # two assignments at once: the second waits and decides on what the first left
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    report = session.scalar(stmt)
    if report is None or report.street_id != street_id or report.deleted_at is not None:
        raise DomainError("report.not_found", id=str(report_id))
    return report


def report_events(session: Session, report_id: uuid.UUID) -> list[Event]:
    stmt = select(Event).where(Event.entity == "report", Event.entity_id == report_id)
    return list(session.scalars(stmt.order_by(Event.id)))


def list_reports(
    *,
    street_id: uuid.UUID,
    status: str | None = None,
    assignee_id: uuid.UUID | None = None,
    grid_id: uuid.UUID | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> Select[tuple[Report]]:
    """The street's live reports, newest first (ties by id); occurred_at in [from, to)."""
    stmt = select(Report).where(Report.street_id == street_id, Report.deleted_at.is_(None))
    if status:
        stmt = stmt.where(Report.status == status)
    if assignee_id is not None:
        stmt = stmt.where(Report.assignee_id == assignee_id)
    if grid_id is not None:
        stmt = stmt.where(Report.grid_id == grid_id)
    if date_from is not None:
        stmt = stmt.where(Report.occurred_at >= date_from)
    if date_to is not None:
        stmt = stmt.where(Report.occurred_at < date_to)
    return stmt.order_by(Report.created_at.desc(), Report.id)


def get_report_with_events(
    session: Session, *, report_id: uuid.UUID, street_id: uuid.UUID
) -> dict[str, Any]:
    report = get_report(session, report_id=report_id, street_id=street_id)
    data = {c.key: getattr(report, c.key) for c in Report.__mapper__.column_attrs}
    data["events"] = report_events(session, report.id)
    return data


def assign(
    session: Session,
    *,
    report_id: uuid.UUID,
    principal: Any,
    assignee_id: uuid.UUID,
    note: str | None,
    now: datetime,
) -> Report:
    """Hand a report to another person of the street. The version moves and the handover is
    an event on the trace; on their next pull the former assignee's devices get the report as
    `delete / out_of_scope`, the new assignee's get it. To the current assignee: nothing
    changes (no version, no event)."""
    report = get_report(
        session, report_id=report_id, street_id=principal.street_id, for_update=True
    )
    person = session.get(Person, assignee_id)
    changes = decide_assignment(
        status=report.status,
        street_id=report.street_id,
        assignee_id=report.assignee_id,
        to=assignee_id,
        candidate=Candidate.of(person) if person is not None else None,
    )
    if not changes:
        return report
    before = report.assignee_id
    note = (note or "").strip() or None
    report.assignee_id = assignee_id
    report.updated_at = now
    session.flush()  # the feed hook bumps the version: both devices see it on pull
    session.add(
        Event(
            entity="report",
            entity_id=report.id,
            version=report.version,
            action="report.assign",
            person_id=principal.person_id,
            device_id=principal.device.id,
            server_time=now,
            changes={"assignee_id": [str(before), str(assignee_id)], "note": note},
        )
    )
    return report


def hand_over(
    session: Session,
    *,
    principal: Any,
    holder: Person,
    street_id: uuid.UUID,
    to: uuid.UUID | None,
    now: datetime,
) -> int:
    """When `holder` leaves `street_id` (the principal's): every report of that street they
    are responsible for goes to `to`, each as an assignment on its trace. A draft refuses the
    move: it is still being written on their phone (submitted or deleted there first, it is
    handed over or gone). Returns how many were handed over.

    Called after the person's street has changed: a push of theirs still in flight may be
    writing a report of this street, so their devices' sync locks are taken first. A push
    that holds one commits before the reports are read; one that waits for it finds them
    moved once it has the lock, and is refused (fieldsync.sync.push)."""
    session.execute(
        select(DeviceSyncState.device_id)
        .join(Device, Device.id == DeviceSyncState.device_id)
        .where(Device.person_id == holder.id)
        .order_by(DeviceSyncState.device_id)
        .with_for_update(of=DeviceSyncState)
    ).all()
    held = list(
        session.scalars(
            select(Report)
            .where(
                Report.street_id == street_id,
                Report.assignee_id == holder.id,
                Report.deleted_at.is_(None),
            )
            .order_by(Report.id)
            .with_for_update()
        )
    )
    if not held:
        return 0
    drafts = sum(1 for r in held if r.status == "draft")
    if drafts:
        raise DomainError("org.transfer_draft_reports", username=holder.username, count=drafts)
    if to is None or to == holder.id:
        raise DomainError("org.transfer_holds_reports", username=holder.username, count=len(held))
    note = f"调动交接 handed over: {holder.username} moves to another street"
    for report in held:
        assign(
            session,
            report_id=report.id,
            principal=principal,
            assignee_id=to,
            note=note,
            now=now,
        )
    return len(held)
