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
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fieldsync.errors import flag
from fieldsync.inspections.models import Inspection
from fieldsync.org.reference import reference_reads
from fieldsync.rules.measures import Flag, check_measures
from fieldsync.rules.second_inspector import (
    Decision,
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
    reads = reference_reads(session)
    reads.matters(codes)
    matters = {c: reads.matter_facts(c) for c in codes}
    present = reads.present(inspection.present or [], street_id=inspection.street_id, at=at)

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
    reads = reference_reads(session)
    matter = reads.matter_facts(matter_code)
    return decide(matter, reads.present(present, street_id=street_id, at=at), at)
