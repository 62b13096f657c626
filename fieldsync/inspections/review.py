"""The back office's view of inspections: lists, the trace, and the review — one concept: the
back office's review of an inspection. A flagged inspection is the captain's to acknowledge or
overrule; a submitted unflagged one is a reviewer's (or the captain's) to accept, reject or ask
more for, in the words evidence review uses. The review queue holds both, and the photos
awaiting review, filtered to what the caller may decide."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, case, cast, exists, func, literal, select, union_all
from sqlalchemy.orm import Session

from fieldsync.clock import isoformat
from fieldsync.errors import DomainError
from fieldsync.evidence import service as evidence_service
from fieldsync.evidence.models import Evidence, EvidenceLink
from fieldsync.inspections.models import Inspection
from fieldsync.inspections.rule_check import AWAITING_CAPTAIN, PENDING, reviewed_flag_keys
from fieldsync.org.models import Role
from fieldsync.sync.models import Event

# decision -> the review state it leaves
CAPTAIN_DECISIONS = {"acknowledge": "acknowledged", "overrule": "overruled"}
REVIEW_DECISIONS = evidence_service.REVIEW_DECISIONS  # accept, reject, more_needed
DECISIONS = {**CAPTAIN_DECISIONS, **REVIEW_DECISIONS}
REVIEW_STATES = (AWAITING_CAPTAIN, PENDING, *CAPTAIN_DECISIONS.values(), *REVIEW_DECISIONS.values())
# a review that does not let the field action stand says why
NOTE_REQUIRED = frozenset({"overrule", "reject", "more_needed"})
# the states of an inspection the rule flagged at least once (the `flagged` filter)
FLAGGED_STATES = (AWAITING_CAPTAIN, *CAPTAIN_DECISIONS.values())


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
        was_flagged = Inspection.review_state.in_(FLAGGED_STATES)
        stmt = stmt.where(
            was_flagged if flagged else ~was_flagged | Inspection.review_state.is_(None)
        )
    if officer is not None:
        stmt = stmt.where(Inspection.created_by_id == officer)
    if date_from is not None:
        stmt = stmt.where(Inspection.occurred_at >= date_from)
    if date_to is not None:
        stmt = stmt.where(Inspection.occurred_at < date_to)
    return stmt.order_by(Inspection.created_at.desc(), Inspection.id)


def review_decisions(state: str | None, roles: frozenset[Role]) -> dict[str, str]:
    """What someone with `roles` may decide on an inspection in review state `state`:
    decision -> the state it leaves. Empty when it is not theirs to decide (or not awaiting)."""
    if state == AWAITING_CAPTAIN and Role.CAPTAIN in roles:
        return CAPTAIN_DECISIONS
    if state == PENDING and roles & {Role.REVIEWER, Role.CAPTAIN}:
        return REVIEW_DECISIONS
    return {}


def decide_review(
    state: str | None, decision: str, *, roles: frozenset[Role], note: str | None
) -> str:
    """The review state after `decision`, or DomainError; checks in order: awaiting review,
    who decides, the decision fits the review, the note."""
    if state not in (AWAITING_CAPTAIN, PENDING):
        raise DomainError("inspection.review_not_pending")
    allowed = review_decisions(state, roles)
    if not allowed:  # the API's role gate lets a reviewer reach a flagged one, no one else
        flagged = state == AWAITING_CAPTAIN
        raise DomainError("inspection.review_captain_only" if flagged else "auth.forbidden")
    if decision not in allowed:
        raise DomainError(
            "inspection.review_wrong_decision",
            decision=decision,
            allowed=", ".join(allowed),
            kind="flagged" if state == AWAITING_CAPTAIN else "unflagged",
            kind_zh="被标记" if state == AWAITING_CAPTAIN else "未被标记",
        )
    if decision in NOTE_REQUIRED and not (note or "").strip():
        raise DomainError("inspection.review_note_required", decision=decision)
    return allowed[decision]


def review(
    session: Session,
    *,
    inspection_id: uuid.UUID,
    principal: Any,
    decision: str,
    note: str | None,
    now: datetime,
) -> Inspection:
    """Decide the back office's review of an inspection. Nothing of what was done in the field
    is dropped, whatever the decision; it is an event on the trace and, with the version it
    bumps, reaches the device on its next pull."""
    inspection = get_inspection(session, inspection_id=inspection_id, street_id=principal.street_id)
    if inspection.sealed_at is not None:
        raise DomainError("inspection.archived")
    before = inspection.review_state
    state = decide_review(before, decision, roles=frozenset(principal.roles), note=note)
    note = (note or "").strip() or None
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
            changes={"review_state": [before, state], "note": note},
        )
    )
    return inspection


# --- the review queue -------------------------------------------------------------------------


def review_queue(principal: Any) -> Select[Any]:
    """What awaits the caller's review, as rows (kind, key, rank, since): the inspections their
    role may decide — flagged ones (the captain's) first — and the photos awaiting review,
    oldest first. Nothing sealed: an archived case's materials are never decided again."""
    roles = frozenset(principal.roles)
    states = [s for s in (AWAITING_CAPTAIN, PENDING) if review_decisions(s, roles)]
    inspections = select(
        literal("inspection").label("kind"),
        cast(Inspection.id, String).label("key"),
        case((Inspection.review_state == AWAITING_CAPTAIN, 0), else_=1).label("rank"),
        func.coalesce(Inspection.submitted_at, Inspection.created_at).label("since"),
    ).where(
        Inspection.street_id == principal.street_id,
        Inspection.deleted_at.is_(None),
        Inspection.sealed_at.is_(None),
        Inspection.review_state.in_(states),
    )
    # the photos awaiting review come from the evidence module (reviewers and captains, the
    # only callers of the queue, decide them); minus those an archived case holds
    pending = evidence_service.list_evidence(
        evidence_service.Actor.of(principal), review_state="pending"
    )
    sealed = (
        select(EvidenceLink.sha256)
        .join(Inspection, Inspection.id == EvidenceLink.entity_id)
        .where(
            EvidenceLink.entity == "inspection",
            EvidenceLink.street_id == Evidence.street_id,
            EvidenceLink.sha256 == Evidence.sha256,
            Inspection.sealed_at.is_not(None),
        )
    )
    photos = pending.where(~exists(sealed)).order_by(None).subquery()
    evidence = select(
        literal("evidence").label("kind"),
        photos.c.sha256.label("key"),
        literal(1).label("rank"),
        photos.c.received_at.label("since"),
    )
    queue = union_all(inspections, evidence).subquery()
    return select(queue).order_by(queue.c.rank, queue.c.since, queue.c.kind, queue.c.key)


def queue_items(session: Session, rows: list[Any], principal: Any) -> list[dict[str, Any]]:
    """The queue's rows as items: kind, id, review state, since when, what the caller may
    decide, and the inspection or the evidence record itself."""
    roles = frozenset(principal.roles)
    ids = [uuid.UUID(r.key) for r in rows if r.kind == "inspection"]
    inspections = (
        {i.id: i for i in session.scalars(select(Inspection).where(Inspection.id.in_(ids)))}
        if ids
        else {}
    )
    actor = evidence_service.Actor.of(principal)
    items = []
    for row in rows:
        if row.kind == "inspection":
            inspection = inspections[uuid.UUID(row.key)]
            state, record = inspection.review_state, inspection
            decisions = list(review_decisions(state, roles))
        else:
            evidence = evidence_service.get_evidence(session, row.key, actor)
            state, record = evidence.review_state, evidence_service.describe(session, evidence)
            decisions = list(REVIEW_DECISIONS)
        items.append(
            {
                "kind": row.kind,
                "id": record["sha256"] if row.kind == "evidence" else str(record.id),
                "review_state": state,
                "waiting_since": row.since,
                "decisions": decisions,
                row.kind: record,
            }
        )
    return items


def get_inspection_with_events(
    session: Session, *, inspection_id: uuid.UUID, street_id: uuid.UUID
) -> dict[str, Any]:
    inspection = get_inspection(session, inspection_id=inspection_id, street_id=street_id)
    data = {c.key: getattr(inspection, c.key) for c in Inspection.__mapper__.column_attrs}
    data["events"] = inspection_events(session, inspection.id)
    return data
