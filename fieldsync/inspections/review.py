"""The back office's view of inspections: lists, the trace, the captain's review queue and
review (acknowledge or overrule a flagged inspection)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from fieldsync.clock import isoformat
from fieldsync.errors import DomainError
from fieldsync.inspections.models import Inspection
from fieldsync.inspections.rule_check import AWAITING_CAPTAIN, reviewed_flag_keys
from fieldsync.sync.models import Event

REVIEW_STATES = {"acknowledge": "acknowledged", "overrule": "overruled"}


def get_inspection(
    session: Session, *, inspection_id: uuid.UUID, street_id: uuid.UUID
) -> Inspection:
    inspection = session.get(Inspection, inspection_id)
    if inspection is None or inspection.street_id != street_id or inspection.deleted_at:
        raise DomainError("inspection.not_found", id=str(inspection_id))
    return inspection


def inspection_events(session: Session, inspection_id: uuid.UUID) -> list[Event]:
    stmt = select(Event).where(Event.entity == "inspection", Event.entity_id == inspection_id)
    return list(session.scalars(stmt.order_by(Event.id)))


def list_inspections(
    *,
    street_id: uuid.UUID,
    status: str | None = None,
    review_state: str | None = None,
    matter: str | None = None,
    flagged: bool | None = None,
    officer: uuid.UUID | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> Select[tuple[Inspection]]:
    stmt = select(Inspection).where(
        Inspection.street_id == street_id, Inspection.deleted_at.is_(None)
    )
    if status:
        stmt = stmt.where(Inspection.status == status)
    if review_state:
        stmt = stmt.where(Inspection.review_state == review_state)
    if matter:
        stmt = stmt.where(Inspection.matter_code == matter)
    if flagged is not None:
        # every rule flag puts the inspection before the captain at least once
        stmt = stmt.where(
            Inspection.review_state.is_not(None) if flagged else Inspection.review_state.is_(None)
        )
    if officer is not None:
        stmt = stmt.where(Inspection.created_by_id == officer)
    if date_from is not None:
        stmt = stmt.where(Inspection.occurred_at >= date_from)
    if date_to is not None:
        stmt = stmt.where(Inspection.occurred_at < date_to)
    return stmt.order_by(Inspection.created_at.desc(), Inspection.id)


def review_queue(*, street_id: uuid.UUID) -> Select[tuple[Inspection]]:
    """Flagged inspections awaiting the captain, then submitted ones nobody has reviewed."""
    return (
        select(Inspection)
        .where(
            Inspection.street_id == street_id,
            Inspection.deleted_at.is_(None),
            or_(
                Inspection.review_state == AWAITING_CAPTAIN,
                Inspection.status.in_(["submitted", "diverted"])
                & Inspection.review_state.is_(None),
            ),
        )
        .order_by(Inspection.review_state.is_(None), Inspection.submitted_at, Inspection.id)
    )


def review(
    session: Session,
    *,
    inspection_id: uuid.UUID,
    principal: Any,
    decision: str,
    note: str | None,
    now: datetime,
) -> Inspection:
    """The captain acknowledges the flags (what was done stands) or overrules the field action
    (it was not justified; the back office follows up). Either way nothing is dropped."""
    inspection = get_inspection(session, inspection_id=inspection_id, street_id=principal.street_id)
    if inspection.sealed_at is not None:
        raise DomainError("inspection.archived")
    if inspection.review_state != AWAITING_CAPTAIN:
        raise DomainError("inspection.review_not_pending")
    state = REVIEW_STATES[decision]
    inspection.review = {
        "decision": decision,
        "note": note,
        "by": str(principal.person_id),
        "at": isoformat(now),
        "flags": reviewed_flag_keys(inspection),
    }
    inspection.review_state = state
    inspection.updated_at = now
    session.flush()  # the feed hook bumps the version: the device sees the review on pull
    session.add(
        Event(
            entity="inspection",
            entity_id=inspection.id,
            version=inspection.version,
            action=f"inspection.review.{decision}",
            person_id=principal.person_id,
            device_id=principal.device.id,
            server_time=now,
            changes={"review_state": [AWAITING_CAPTAIN, state], "note": note},
        )
    )
    return inspection


def get_inspection_with_events(
    session: Session, *, inspection_id: uuid.UUID, street_id: uuid.UUID
) -> dict[str, Any]:
    inspection = get_inspection(session, inspection_id=inspection_id, street_id=street_id)
    data = {c.key: getattr(inspection, c.key) for c in Inspection.__mapper__.column_attrs}
    data["events"] = inspection_events(session, inspection.id)
    return data
