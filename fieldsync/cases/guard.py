"""Archive immutability below the API (留存备查): a flush that would change an archived case, a
sealed inspection or the evidence of a sealed inspection raises; database triggers
(triggers.py) refuse the same for anything that bypasses the ORM."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from fieldsync.cases.models import Case
from fieldsync.cases.triggers import SEALED_INSPECTION_MUTABLE
from fieldsync.errors import DomainError
from fieldsync.evidence.models import Evidence
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


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_archived(session: Session, _ctx: Any, _instances: Any) -> None:
    evidence_touched: list[Evidence] = []
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
        elif isinstance(obj, Evidence) and (deleted or _changed_attrs(obj)):
            evidence_touched.append(obj)
    if evidence_touched:
        with session.no_autoflush:
            for ev in evidence_touched:
                sealed = session.scalars(
                    select(Inspection.evidence).where(
                        Inspection.street_id == ev.street_id, Inspection.sealed_at.is_not(None)
                    )
                )
                if any(ev.sha256 in (hashes or []) for hashes in sealed):
                    raise DomainError("evidence.archived")
