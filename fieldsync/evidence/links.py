"""Records name evidence by hash before or after the bytes arrive: what is still missing, which
records name a hash, and carrying verification and review back to those records (and so, on
their next pull, to the devices)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fieldsync.clock import isoformat
from fieldsync.db import upsert_insert
from fieldsync.evidence.models import Evidence, EvidenceLink


def missing(session: Session, hashes: Iterable[str], *, street_id: Any) -> list[str]:
    """The hashes among `hashes` that the street holds no verified evidence for, in order."""
    wanted = list(dict.fromkeys(hashes))
    if not wanted:
        return []
    have = set(
        session.scalars(
            select(Evidence.sha256).where(
                Evidence.street_id == street_id, Evidence.sha256.in_(wanted)
            )
        )
    )
    return [h for h in wanted if h not in have]


def sync_links(session: Session, record: Any) -> None:
    """Make `evidence_links` say exactly which hashes `record` names.

    Core statements, not ORM objects: they take effect at once (a second mutation of the same
    record in one push sees the first one's links) and never trigger a flush, which would bump
    the record's version a second time.
    """
    entity, street = record.__sync_entity__, record.street_id
    hashes = sorted(set(record.evidence or []))
    with session.no_autoflush:
        stmt = delete(EvidenceLink).where(
            EvidenceLink.entity == entity, EvidenceLink.entity_id == record.id
        )
        if hashes:
            stmt = stmt.where(EvidenceLink.sha256.not_in(hashes))
        session.execute(stmt)
        if not hashes:
            return
        session.execute(
            upsert_insert(session, EvidenceLink)
            .values(
                [
                    {"sha256": h, "entity": entity, "entity_id": record.id, "street_id": street}
                    for h in hashes
                ]
            )
            .on_conflict_do_nothing()
        )


def linked_records(session: Session, sha256: str, *, street_id: Any) -> list[Any]:
    """The street's live inspections and reports that name `sha256`, sealed ones included."""
    from fieldsync.inspections.models import Inspection, Report

    records: list[Any] = []
    for model in (Inspection, Report):
        ids = select(EvidenceLink.entity_id).where(
            EvidenceLink.street_id == street_id,
            EvidenceLink.sha256 == sha256,
            EvidenceLink.entity == model.__sync_entity__,
        )
        records.extend(
            session.scalars(
                select(model)
                .where(
                    model.id.in_(ids),
                    model.street_id == street_id,
                    model.deleted_at.is_(None),
                )
                .order_by(model.id)
            )
        )
    return records


def sealed(session: Session, evidence: Evidence) -> bool:
    """Does a sealed inspection (its case archived) name this evidence? Then it never changes."""
    from fieldsync.inspections.models import Inspection

    return bool(
        session.scalar(
            select(EvidenceLink.entity_id)
            .join(Inspection, Inspection.id == EvidenceLink.entity_id)
            .where(
                EvidenceLink.street_id == evidence.street_id,
                EvidenceLink.sha256 == evidence.sha256,
                EvidenceLink.entity == "inspection",
                Inspection.sealed_at.is_not(None),
            )
            .limit(1)
        )
    )


def _writable(record: Any) -> bool:
    # a sealed inspection never changes again (留存备查): not even its server fields
    return getattr(record, "sealed_at", None) is None


def evidence_arrived(session: Session, evidence: Evidence, *, now: datetime) -> list[Any]:
    """Recompute `evidence_missing` of every record naming the new evidence. The feed hooks bump
    their versions on flush, so devices see the change on their next pull."""
    changed = []
    for record in linked_records(session, evidence.sha256, street_id=evidence.street_id):
        if not _writable(record):
            continue
        # autoflush: the new row counts
        still = missing(session, record.evidence or [], street_id=record.street_id)
        if still != list(record.evidence_missing or []):
            record.evidence_missing = still
            record.updated_at = now
            changed.append(record)
    return changed


def evidence_reviewed(session: Session, evidence: Evidence, *, now: datetime) -> list[Any]:
    """Put the evidence's review into `evidence_review` of every record naming it."""
    summary = {
        "state": evidence.review_state,
        "reason": evidence.review_note,
        "at": isoformat(evidence.reviewed_at),
    }
    changed = []
    for record in linked_records(session, evidence.sha256, street_id=evidence.street_id):
        if not _writable(record):
            continue
        # a new dict, so that the JSON column registers the change
        record.evidence_review = {**(record.evidence_review or {}), evidence.sha256: summary}
        record.updated_at = now
        changed.append(record)
    return changed
