"""Evidence services: recording a verified photo with its flags and custody, reading it within
the street's scope, the review queue and review. Never commits."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from fieldsync.clock import isoformat, parse_rfc3339
from fieldsync.config import Config
from fieldsync.db import upsert_insert
from fieldsync.errors import DomainError, flag
from fieldsync.evidence import links
from fieldsync.evidence.models import CustodyEvent, Evidence, EvidenceLink, Upload
from fieldsync.org.models import Role

# who may download an original besides the person who uploaded it
ORIGINAL_READERS = (Role.REVIEWER, Role.CAPTAIN, Role.CASE_HANDLER, Role.ADMIN)
BACK_OFFICE = (Role.DISPATCHER, Role.CASE_HANDLER, Role.REVIEWER, Role.CAPTAIN, Role.ADMIN)
REVIEW_DECISIONS = {"accept": "accepted", "reject": "rejected", "more_needed": "more_needed"}
REVIEW_STATES = ("pending", "accepted", "rejected", "more_needed")


@dataclass(frozen=True)
class Actor:
    """Who does something to evidence, for the chain of custody (监管链)."""

    person_id: uuid.UUID | None
    device_id: uuid.UUID | None
    street_id: uuid.UUID | None
    remote_addr: str | None = None
    roles: frozenset[Role] = frozenset()

    @classmethod
    def of(cls, principal: Any, remote_addr: str | None = None) -> Actor:
        return cls(
            person_id=principal.person_id,
            device_id=principal.device.id,
            street_id=principal.street_id,
            remote_addr=(remote_addr or "")[:64] or None,
            roles=frozenset(principal.roles),
        )

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


SYSTEM = Actor(person_id=None, device_id=None, street_id=None)


# --- custody --------------------------------------------------------------------------------


def add_custody(
    session: Session,
    evidence: Evidence,
    action: str,
    actor: Actor,
    *,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> CustodyEvent:
    event = CustodyEvent(
        street_id=evidence.street_id,
        sha256=evidence.sha256,
        action=action,
        at=at,
        person_id=actor.person_id,
        device_id=actor.device_id,
        remote_addr=actor.remote_addr,
        details=details or {},
    )
    session.add(event)
    return event


def custody(session: Session, evidence: Evidence) -> list[CustodyEvent]:
    return list(
        session.scalars(
            select(CustodyEvent)
            .where(
                CustodyEvent.street_id == evidence.street_id,
                CustodyEvent.sha256 == evidence.sha256,
            )
            .order_by(CustodyEvent.id)
        )
    )


# --- verification ---------------------------------------------------------------------------


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS-84 points (mean Earth radius)."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


_ENTITY_ZH = {"inspection": "检查记录", "report": "事件上报"}


def discrepancy_flags(
    *,
    taken_at: datetime | None,
    lat: float | None,
    lon: float | None,
    captured_at: datetime | None,
    places: list[tuple[str, str, dict[str, Any] | None]],
    config: Config,
) -> list[dict[str, Any]]:
    """Flags for EXIF facts (`taken_at` in UTC, `lat`/`lon`) that disagree with what the device
    said: the capture time beyond `exif_time_tolerance_minutes`, the position beyond
    `exif_distance_tolerance_m` from the location of a record the photo belongs to (`places`:
    entity, id, location)."""
    flags = []
    if captured_at is not None and taken_at is not None:
        minutes = abs((taken_at - captured_at).total_seconds()) / 60
        if minutes > config.exif_time_tolerance_minutes:
            flags.append(
                flag(
                    "evidence.time_mismatch",
                    exif_time=isoformat(taken_at),
                    captured_at=isoformat(captured_at),
                    minutes=round(minutes),
                )
            )
    if lat is not None and lon is not None:
        for entity, entity_id, location in places:
            if not location or location.get("lat") is None or location.get("lon") is None:
                continue
            distance = haversine_m(lat, lon, location["lat"], location["lon"])
            if distance > config.exif_distance_tolerance_m:
                flags.append(
                    flag(
                        "evidence.position_mismatch",
                        distance_m=round(distance),
                        entity=entity,
                        entity_zh=_ENTITY_ZH.get(entity, entity),
                        id=entity_id,
                    )
                )
    return flags


def _place(record: Any) -> tuple[str, str, dict[str, Any] | None]:
    return record.__sync_entity__, str(record.id), record.location


def _places(
    session: Session, *, street_id: Any, sha256: str, also: Iterable[Any] = ()
) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Where the street's records a photo belongs to say they were: those naming it, and
    `also` (a record not flushed yet, the inspection an upload names)."""
    linked = links.linked_records(session, sha256, street_id=street_id)
    records = {(r.__sync_entity__, r.id): r for r in [*linked, *also]}
    return sorted(_place(r) for r in records.values())


def _named_inspection(session: Session, upload: Upload) -> list[Any]:
    """The inspection the upload's metadata names, if it is the street's."""
    from fieldsync.inspections.models import Inspection

    inspection_id = (upload.meta or {}).get("inspection_id")
    inspection = session.get(Inspection, uuid.UUID(inspection_id)) if inspection_id else None
    return (
        [inspection] if inspection is not None and inspection.street_id == upload.street_id else []
    )


def record_changed(session: Session, record: Any, *, config: Config) -> None:
    """A synced record (inspection, report) changed on the device's side: what evidence it
    still misses, which photos it names, and — as a record may name a photo, or move, after the
    photo arrived — the position flags of the photos the street already holds."""
    hashes = record.evidence or []
    state = sa_inspect(record)
    if not hashes and state.pending:
        return  # a new record naming no photo: nothing to link or check
    named_anew = state.attrs.evidence.history.has_changes()
    if not hashes and not named_anew:
        return  # it names no photo, and had none linked: nothing to link or check
    record.evidence_missing = links.missing(session, hashes, street_id=record.street_id)
    if named_anew:  # the links follow the list (JSON columns change only by assignment)
        links.sync_links(session, record)
    if len(record.evidence_missing) == len(set(hashes)):
        return  # none of its photos has arrived yet
    held = session.scalars(
        select(Evidence).where(Evidence.street_id == record.street_id, Evidence.sha256.in_(hashes))
    )
    for evidence in held:
        if evidence.lat is None or links.sealed(session, evidence):
            continue  # no EXIF position to compare; or kept as it was (留存备查)
        places = _places(
            session, street_id=evidence.street_id, sha256=evidence.sha256, also=[record]
        )
        flags = discrepancy_flags(
            taken_at=evidence.exif_taken_at,
            lat=evidence.lat,
            lon=evidence.lon,
            captured_at=evidence.captured_at,
            places=places,
            config=config,
        )
        if flags != evidence.flags:
            evidence.flags = flags


def record_verified(
    session: Session,
    *,
    upload: Upload,
    facts: Any,
    actor: Actor,
    now: datetime,
    config: Config,
) -> tuple[Evidence, bool]:
    """Record the finished upload as evidence: metadata, discrepancy flags, custody (captured,
    uploaded, verified), and clear `evidence_missing` on the records naming it. Returns the
    evidence and whether it is new (False: another upload brought the same bytes first)."""
    meta = upload.meta or {}
    captured_at = parse_rfc3339(meta["captured_at"]) if meta.get("captured_at") else None
    values = dict(
        sha256=upload.sha256,
        street_id=upload.street_id,
        size=upload.length,
        content_type=facts.content_type,
        filename=meta.get("filename"),
        width=facts.width,
        height=facts.height,
        orientation=facts.orientation,
        exif_taken_at=facts.taken_at_utc,
        exif_taken_at_local=facts.taken_at_local,
        make=facts.make,
        model=facts.model,
        lat=facts.lat,
        lon=facts.lon,
        gcj02_lat=facts.gcj02_lat,
        gcj02_lon=facts.gcj02_lon,
        captured_at=captured_at,
        received_at=now,
        uploaded_by_id=upload.owner_id,
        device_id=upload.device_id,
        flags=discrepancy_flags(
            taken_at=facts.taken_at_utc,
            lat=facts.lat,
            lon=facts.lon,
            captured_at=captured_at,
            places=_places(
                session,
                street_id=upload.street_id,
                sha256=upload.sha256,
                also=_named_inspection(session, upload),
            ),
            config=config,
        ),
        review_state="pending",
    )
    # Two devices may finish the same photo at the same moment (two server processes): the
    # insert that comes second waits for the first to commit and then inserts nothing.
    inserted = session.execute(
        upsert_insert(session, Evidence)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["street_id", "sha256"])
    ).rowcount
    evidence = session.get(Evidence, (upload.street_id, upload.sha256))
    assert evidence is not None
    if not inserted:
        add_custody(
            session,
            evidence,
            "uploaded",
            actor,
            at=now,
            details={"upload_id": str(upload.id), "deduplicated": True, "size": upload.length},
        )
        return evidence, False
    device_actor = Actor(
        person_id=upload.owner_id, device_id=upload.device_id, street_id=upload.street_id
    )
    add_custody(
        session,
        evidence,
        "captured",
        device_actor,
        at=captured_at or now,
        details={
            "sha256": evidence.sha256,
            "captured_at": meta.get("captured_at"),
            "clock": "device" if captured_at else "server (no captured_at sent)",
            "inspection_id": meta.get("inspection_id"),
        },
    )
    add_custody(
        session,
        evidence,
        "uploaded",
        actor,
        at=now,
        details={
            "upload_id": str(upload.id),
            "size": upload.length,
            "filename": meta.get("filename"),
            "declared_content_type": meta.get("content_type"),
            "started_at": isoformat(upload.created_at),
        },
    )
    add_custody(
        session,
        evidence,
        "verified",
        SYSTEM,
        at=now,
        details={
            "sha256": evidence.sha256,
            "content_type": facts.content_type,
            "width": facts.width,
            "height": facts.height,
            "exif_taken_at_local": facts.taken_at_local,
            "exif_offset": facts.taken_at_offset,
            "exif_offset_source": facts.taken_at_offset_source,
            "flags": [f["code"] for f in evidence.flags],
        },
    )
    session.flush()
    links.evidence_arrived(session, evidence, now=now)
    return evidence, True


# --- reading --------------------------------------------------------------------------------


def get_evidence(
    session: Session, sha256: str, actor: Actor, *, whole_street: bool = False
) -> Evidence:
    """The street's evidence; grid workers see only what they uploaded themselves (unless
    `whole_street`, for a check that answers 403 rather than 404 to them)."""
    evidence = (
        session.get(Evidence, (actor.street_id, sha256.lower()))
        if len(sha256) == 64 and actor.street_id is not None
        else None
    )
    if evidence is None:
        raise DomainError("evidence.not_found", sha256=sha256[:64])
    if not (whole_street or _sees_street(actor)) and evidence.uploaded_by_id != actor.person_id:
        raise DomainError("evidence.not_found", sha256=sha256[:64])
    return evidence


def _sees_street(actor: Actor) -> bool:
    return actor.has(Role.OFFICER, *BACK_OFFICE)


def may_download_original(actor: Actor, evidence: Evidence) -> bool:
    return actor.has(*ORIGINAL_READERS) or evidence.uploaded_by_id == actor.person_id


def list_evidence(
    actor: Actor,
    *,
    review_state: str | None = None,
    inspection_id: uuid.UUID | None = None,
) -> Select[tuple[Evidence]]:
    """The street's evidence, oldest first when filtered to a review state (a queue), else
    newest first."""
    stmt = select(Evidence).where(Evidence.street_id == actor.street_id)
    if not _sees_street(actor):
        stmt = stmt.where(Evidence.uploaded_by_id == actor.person_id)
    if review_state:
        stmt = stmt.where(Evidence.review_state == review_state)
    if inspection_id is not None:
        stmt = stmt.where(
            Evidence.sha256.in_(
                select(EvidenceLink.sha256).where(
                    EvidenceLink.entity == "inspection", EvidenceLink.entity_id == inspection_id
                )
            )
        )
    if review_state:
        stmt = stmt.order_by(Evidence.received_at, Evidence.sha256)
    else:
        stmt = stmt.order_by(Evidence.received_at.desc(), Evidence.sha256)
    return stmt


def record_links(session: Session, evidence: Evidence) -> list[dict[str, str]]:
    rows = session.execute(
        select(EvidenceLink.entity, EvidenceLink.entity_id)
        .where(EvidenceLink.street_id == evidence.street_id, EvidenceLink.sha256 == evidence.sha256)
        .order_by(EvidenceLink.entity, EvidenceLink.entity_id)
    )
    return [{"entity": entity, "id": str(entity_id)} for entity, entity_id in rows]


def describe(session: Session, evidence: Evidence) -> dict[str, Any]:
    """The evidence record as PROTOCOL.md §4a lists it."""
    data = {c.key: getattr(evidence, c.key) for c in Evidence.__mapper__.column_attrs}
    data["declared_sha256"] = evidence.sha256
    data["verified_sha256"] = evidence.sha256  # refused unless the two are equal
    data["derivatives"] = {
        kind: {"sha256": digest, "parent_sha256": evidence.sha256}
        for kind, digest in (
            ("thumbnail", evidence.thumbnail_sha256),
            ("display", evidence.display_sha256),
        )
        if digest
    }
    data["links"] = record_links(session, evidence)
    return data


def record_view(
    session: Session,
    evidence: Evidence,
    actor: Actor,
    *,
    action: str,
    now: datetime,
    **details: Any,
) -> None:
    """Views by the back office and every download of an original go into the custody log."""
    if action == "viewed" and not actor.has(*BACK_OFFICE):
        return
    add_custody(session, evidence, action, actor, at=now, details=details)


# --- review ---------------------------------------------------------------------------------


def review(
    session: Session,
    *,
    sha256: str,
    actor: Actor,
    decision: str,
    reason: str | None,
    now: datetime,
) -> Evidence:
    """A reviewer or the captain accepts the photo, rejects it, or asks for more; the decision
    reaches the devices through the records naming the photo (their `evidence_review`)."""
    evidence = get_evidence(session, sha256, actor)
    if decision != "accept" and not (reason or "").strip():
        raise DomainError("evidence.reason_required")
    previous = evidence.review_state
    evidence.review_state = REVIEW_DECISIONS[decision]
    evidence.review_note = reason
    evidence.reviewed_by_id = actor.person_id
    evidence.reviewed_at = now
    add_custody(
        session,
        evidence,
        "reviewed",
        actor,
        at=now,
        details={"decision": decision, "reason": reason, "previous": previous},
    )
    session.flush()
    links.evidence_reviewed(session, evidence, now=now)
    return evidence
