"""Conflicts: list them for the people who may see them, and resolve them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from fieldsync.errors import DomainError
from fieldsync.org.models import Role
from fieldsync.sync import registry
from fieldsync.sync.models import Conflict, ConflictPerson, Event

SUPERVISORS = (Role.REVIEWER, Role.CAPTAIN)


def visible_conflicts(
    principal: Any, *, open_only: bool = False, entity_id: uuid.UUID | None = None
) -> Select[tuple[Conflict]]:
    """A device sees the conflicts its user is one of the people of (whose value was set aside,
    or is kept); reviewers and the captain see the street's."""
    stmt = select(Conflict).where(Conflict.street_id == principal.street_id)
    if not principal.has(*SUPERVISORS):
        stmt = stmt.where(
            Conflict.id.in_(
                select(ConflictPerson.conflict_id).where(
                    ConflictPerson.person_id == principal.person_id
                )
            )
        )
    if open_only:
        stmt = stmt.where(Conflict.resolved_at.is_(None))
    if entity_id is not None:
        stmt = stmt.where(Conflict.entity_id == entity_id)
    return stmt.order_by(Conflict.created_at.desc(), Conflict.id)


def get_conflict(session: Session, *, principal: Any, conflict_id: uuid.UUID) -> Conflict:
    conflict = session.scalar(visible_conflicts(principal).where(Conflict.id == conflict_id))
    if conflict is None:
        raise DomainError("sync.conflict_not_found", id=str(conflict_id))
    return conflict


def resolve(
    session: Session,
    *,
    principal: Any,
    conflict_id: uuid.UUID,
    resolution: str,
    note: str | None,
    now: datetime,
) -> Conflict:
    """`keep`: the record stays as it is. `take_lost`: the set-aside values replace the kept
    ones, as a new change that every device receives."""
    conflict = get_conflict(session, principal=principal, conflict_id=conflict_id)
    if conflict.resolved_at is not None:
        raise DomainError("sync.conflict_resolved")
    if resolution == "take_lost":
        spec = registry.entity(conflict.entity)
        assert spec is not None
        model: Any = spec.model
        record = session.scalar(
            select(model).where(model.id == conflict.entity_id).with_for_update()
        )
        if record is None or getattr(record, "deleted_at", None) is not None:
            raise DomainError("sync.record_deleted")
        if getattr(record, "sealed_at", None) is not None:
            raise DomainError("inspection.archived")
        if spec.is_submitted(record) and not principal.has(*SUPERVISORS):
            # after submission the record is the team's: only a reviewer or the captain changes it
            raise DomainError("sync.conflict_needs_supervisor")
        changes: dict[str, Any] = {}
        for field, entry in conflict.values.items():
            name, _, item_id = field.partition("[")
            lost = entry["lost"]
            if item_id:
                item_id = item_id.rstrip("]")
                items = [dict(i) for i in getattr(record, name) or []]
                items = [lost if i.get("id") == item_id else i for i in items]
                setattr(record, name, items)
                changes[name] = items
            elif isinstance(lost, dict) and set(lost) == {"remove"}:
                continue  # a refused removal after submission: nothing to re-apply
            else:
                from fieldsync.sync.push import _from_wire

                setattr(record, name, _from_wire(record, name, lost))
                changes[name] = lost
        record.version += 1
        record.updated_at = now
        # a resolution is a server write: a later device edit based on an older version is
        # then concurrent with it, and whichever value loses is kept as a conflict again
        clocks = dict(record.field_clocks or {})
        for name in changes:
            clocks[name] = [record.version, "", "server"]
        record.field_clocks = clocks
        session.add(
            Event(
                entity=conflict.entity,
                entity_id=record.id,
                version=record.version,
                action="conflict.resolve",
                person_id=principal.person_id,
                device_id=principal.device.id,
                server_time=now,
                changes={"conflict_id": str(conflict.id), **changes},
            )
        )
        if spec.after_change:
            from fieldsync.sync.registry import ActionContext

            spec.after_change(
                ActionContext(
                    session=session,
                    principal=principal,
                    now=now,
                    device_time=None,
                    hlc="",
                    config=None,
                ),
                record,
            )
    conflict.resolved_at = now
    conflict.resolved_by_id = principal.person_id
    conflict.resolution = resolution
    conflict.resolution_note = note
    session.flush()
    return conflict
