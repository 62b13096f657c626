"""Archive immutability below the API (留存备查): a flush that would change an archived case or its
officers, a sealed inspection or its evidence links, the evidence a sealed inspection names, or
the chain of custody raises. The database triggers (triggers.py) refuse the same, with the same
exceptions, for anything that bypasses the ORM."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from fieldsync.cases.models import Case, CaseOfficer
from fieldsync.cases.triggers import (
    EVIDENCE_BOOKKEEPING,
    EVIDENCE_DERIVATIVES,
    SEALED_INSPECTION_MUTABLE,
)
from fieldsync.errors import DomainError
from fieldsync.evidence.links import sealed
from fieldsync.evidence.models import CustodyEvent, Evidence, EvidenceLink
from fieldsync.inspections.models import Inspection


def _original(obj: Any, attr: str) -> Any:
    history = inspect(obj).attrs[attr].history
    if history.deleted:
        return history.deleted[0]
    if history.unchanged:
        return history.unchanged[0]
    return getattr(obj, attr)


def _changed_attrs(obj: Any) -> set[str]:
    state = inspect(obj)
    return {a.key for a in state.attrs if a.history.has_changes()}


def _evidence_changed(evidence: Evidence) -> bool:
    """Anything but a derivative made from nothing (a thumbnail after archive changes nothing
    of the original)."""
    changed = _changed_attrs(evidence)
    return bool(changed - EVIDENCE_DERIVATIVES - EVIDENCE_BOOKKEEPING) or any(
        _original(evidence, attr) is not None for attr in changed & EVIDENCE_DERIVATIVES
    )


def _sealed_inspections(session: Session, ids: set[Any]) -> bool:
    stmt = select(Inspection.id).where(Inspection.id.in_(ids), Inspection.sealed_at.is_not(None))
    return session.scalar(stmt.limit(1)) is not None


def _archived(session: Session, case_ids: set[Any]) -> bool:
    stmt = select(Case.id).where(Case.id.in_(case_ids), Case.state == "archived")
    return session.scalar(stmt.limit(1)) is not None


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_archived(session: Session, _ctx: Any, _instances: Any) -> None:
    evidence: list[Evidence] = []
    links: set[Any] = set()
    officers: set[Any] = set()
    for obj in list(session.dirty) + list(session.deleted):
        deleted = obj in session.deleted
        if isinstance(obj, Case):
            if _original(obj, "state") == "archived" and (deleted or _changed_attrs(obj)):
                raise DomainError("case.archived")
        elif isinstance(obj, Inspection):
            if _original(obj, "sealed_at") is None:
                continue
            if deleted or _changed_attrs(obj) - SEALED_INSPECTION_MUTABLE:
                raise DomainError("inspection.archived")
        elif isinstance(obj, Evidence):
            if deleted or _evidence_changed(obj):
                evidence.append(obj)
        elif isinstance(obj, CustodyEvent):
            if deleted or _changed_attrs(obj):
                raise DomainError("evidence.custody_append_only")
        elif isinstance(obj, EvidenceLink):
            if obj.entity == "inspection" and (deleted or _changed_attrs(obj)):
                links.add(obj.entity_id)
        elif isinstance(obj, CaseOfficer) and (deleted or _changed_attrs(obj)):
            officers.add(obj.case_id)
    officers |= {obj.case_id for obj in session.new if isinstance(obj, CaseOfficer)}
    with session.no_autoflush:
        if any(sealed(session, e) for e in evidence):
            raise DomainError("evidence.archived")
        if links and _sealed_inspections(session, links):
            raise DomainError("inspection.archived")
        if officers and _archived(session, {c for c in officers if c is not None}):
            raise DomainError("case.archived")
