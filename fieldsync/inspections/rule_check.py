"""The server's re-application of the second-inspector rule to an inspection (DOMAIN.md §4).

The roster is read as of the inspection's `occurred_at`: each person's department, roles and
active flag from their roster period valid then (RosterPeriod, kept by the org service), and
certificates with their validity and revocation times, so an officer transferred, deactivated
or whose certificate was revoked after the inspection still counts for it.

The inspection's overall `tier` and `second_inspector_id` come from the decision for its main
matter (`matter_code`) when it has one; otherwise from the strongest of its findings'
decisions — the procedure the people on scene followed (a listed unit's finding is whistled,
it does not lower what the officers could do for the others). The overall tier is what the
phone shows; what counts for the law is per finding: every finding keeps its own decision in
`decisions`, and each measure is checked against its finding's decision.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldsync.errors import DomainError, flag
from fieldsync.inspections.models import Inspection
from fieldsync.org.models import Matter, Person, RosterPeriod
from fieldsync.rules.measures import Flag, check_measures
from fieldsync.rules.second_inspector import (
    CertificateFacts,
    Decision,
    DepartmentKind,
    MatterFacts,
    PersonFacts,
    Tier,
    decide,
)

# the flags this module owns: recomputed on every check, others (clock skew …) are kept
RULE_FLAGS = frozenset(
    {
        "inspection.measure_not_allowed",
        "inspection.measure_unknown_finding",
        "inspection.measure_finding_required",
        "inspection.measure_evidence_not_attached",
        "inspection.penalty_over_onsite_limit",
        "inspection.tier_claim_mismatch",
    }
)
# the back office's review of an inspection (review.py): flagged → the captain's; submitted and
# unflagged → a reviewer's or the captain's
AWAITING_CAPTAIN = "awaiting_captain"
PENDING = "pending"
# weakest first
TIER_ORDER = (Tier.REFERRAL, Tier.INVESTIGATION, Tier.INSPECTION, Tier.ENFORCEMENT)


def matter_facts(matter: Matter) -> MatterFacts:
    return MatterFacts(
        code=matter.code,
        department_code=matter.department.code,
        department_kind=DepartmentKind(matter.department.kind.value),
        allowed_measures=matter.allowed_measures or None,
    )


def person_facts(person: Person, period: RosterPeriod | None = None) -> PersonFacts:
    """The rule's view of a person: as of `period` (their roster at the time), else as now."""
    department = period.department if period is not None else person.department
    roles = period.roles if period is not None else [r.value for r in person.roles]
    return PersonFacts(
        id=str(person.id),
        department_code=department.code if department else None,
        department_kind=DepartmentKind(department.kind.value) if department else None,
        roles=frozenset(roles),
        certificates=tuple(
            CertificateFacts(c.number, c.valid_from, c.valid_to, c.revoked_at)
            for c in person.certificates
        ),
        active=period.active if period is not None else person.active,
    )


def roster_at(
    session: Session, person_ids: Iterable[uuid.UUID], at: datetime
) -> dict[uuid.UUID, RosterPeriod]:
    """Each person's roster period valid at `at` ([valid_from, valid_to), open at either end).

    Every period of these people is read (a few each) and the one for `at` chosen here: the
    statement is then the same for every inspection naming them, which a push answers once
    (fieldsync.sync.push memoises reads of reference data)."""
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    rows = session.scalars(
        select(RosterPeriod).where(RosterPeriod.person_id.in_(ids)).order_by(RosterPeriod.id)
    )
    return {
        p.person_id: p
        for p in rows
        if (p.valid_from is None or p.valid_from <= at) and (p.valid_to is None or p.valid_to > at)
    }


def load_matters(session: Session, codes: Iterable[str]) -> dict[str, Matter]:
    wanted = sorted(set(codes))
    rows = session.scalars(select(Matter).where(Matter.code.in_(wanted))) if wanted else []
    matters = {m.code: m for m in rows}
    for code in wanted:
        if code not in matters:
            raise DomainError("org.unknown_matter", code=code)
    return matters


def load_present(
    session: Session, ids: Sequence[Any], *, street_id: uuid.UUID, at: datetime
) -> list[PersonFacts]:
    """The people named present as the roster knew them at `at`, in the order given
    (duplicates kept: the rule counts once). Someone with no roster history (made outside the
    org service) is read as they are now."""
    people_ids = [uuid.UUID(str(i)) for i in ids]
    rows = (
        session.scalars(
            select(Person).where(
                Person.id.in_(sorted(set(people_ids))), Person.street_id == street_id
            )
        )
        if people_ids
        else []
    )
    people = {p.id: p for p in rows}
    for pid in people_ids:
        if pid not in people:
            raise DomainError("inspection.unknown_person", id=str(pid))
    periods = roster_at(session, people, at)
    return [person_facts(people[pid], periods.get(pid)) for pid in people_ids]


def _as_flag(f: Flag) -> dict[str, Any]:
    params = {"measure_id": f.measure_id, "finding_id": f.finding_id}
    return {"code": f.code, "message": f.message_en, "message_zh": f.message_zh, "params": params}


def check(session: Session, inspection: Inspection) -> None:
    """Set tier, second inspector, decisions and the rule's flags; flagged → captain's queue.

    Runs inside a sync push without flushing: the push bumps the inspection's version once.
    """
    with session.no_autoflush:
        _check(session, inspection)


def _check(session: Session, inspection: Inspection) -> None:
    at: datetime = inspection.occurred_at or inspection.created_at
    findings = [f for f in inspection.findings or [] if f.get("matter_code")]
    codes = [f["matter_code"] for f in findings]
    if inspection.matter_code:
        codes.append(inspection.matter_code)
    if not codes:
        inspection.tier = None
        inspection.second_inspector_id = None
        inspection.decisions = []
        _set_flags(inspection, [])
        return
    matters = {c: matter_facts(m) for c, m in load_matters(session, codes).items()}
    present = load_present(session, inspection.present or [], street_id=inspection.street_id, at=at)

    by_finding: dict[str, Decision] = {}
    stored: list[dict[str, Any]] = []
    for finding in findings:
        decision = decide(matters[finding["matter_code"]], present, at)
        by_finding[str(finding["id"])] = decision
        stored.append({"finding_id": str(finding["id"]), **decision.to_dict()})
    main: Decision | None = None
    if inspection.matter_code:
        main = decide(matters[inspection.matter_code], present, at)
        if not findings:
            stored.append({"finding_id": None, **main.to_dict()})
    if main is None:
        main = max(by_finding.values(), key=lambda d: TIER_ORDER.index(d.tier))

    rule_flags = [
        _as_flag(f)
        for f in check_measures(
            by_finding or main, inspection.measures or [], inspection.evidence or []
        )
    ]
    if inspection.claimed_tier and inspection.claimed_tier != main.tier.value:
        rule_flags.append(
            flag(
                "inspection.tier_claim_mismatch",
                claimed=inspection.claimed_tier,
                tier=main.tier.value,
            )
        )

    inspection.tier = main.tier.value
    second = main.second_inspector_id
    inspection.second_inspector_id = uuid.UUID(second) if second else None
    inspection.decisions = stored
    _set_flags(inspection, rule_flags)


def _flag_key(f: dict[str, Any]) -> str:
    params = f.get("params") or {}
    return f"{f['code']}:{params.get('measure_id')}:{params.get('finding_id')}"


def _set_flags(inspection: Inspection, rule_flags: list[dict[str, Any]]) -> None:
    others = [f for f in inspection.flags or [] if f.get("code") not in RULE_FLAGS]
    flags = others + rule_flags
    if flags != (inspection.flags or []):
        inspection.flags = flags
    await_review(inspection)


def await_review(inspection: Inspection) -> None:
    """Put the inspection before the back office when it needs a review: flagged, and not what
    was already reviewed → the captain's; submitted, unflagged and not yet reviewed → pending
    (a reviewer's or the captain's). A decided review stays decided until new flags come."""
    keys = reviewed_flag_keys(inspection)
    if keys and keys != (inspection.review or {}).get("flags"):
        inspection.review_state = AWAITING_CAPTAIN
    elif not keys and inspection.review_state == AWAITING_CAPTAIN:
        inspection.review_state = None
    if inspection.review_state is None and inspection.submitted_at is not None:
        inspection.review_state = PENDING


def reviewed_flag_keys(inspection: Inspection) -> list[str]:
    """What a review covers: the rule's flags at the time of the review."""
    return sorted({_flag_key(f) for f in inspection.flags or [] if f.get("code") in RULE_FLAGS})


def second_inspector(
    session: Session,
    *,
    matter_code: str,
    present: Sequence[Any],
    at: datetime,
    street_id: uuid.UUID,
) -> Decision:
    """The rule for a matter and people of the caller's street at `at` (PROTOCOL.md §6)."""
    matter = load_matters(session, [matter_code])[matter_code]
    people = load_present(session, present, street_id=street_id, at=at)
    return decide(matter_facts(matter), people, at)
