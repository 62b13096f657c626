"""The rule check on an inspection: the roster as of occurred_at, flags kept, never dropped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fieldsync.demo import STREET_A_CODE, demo_uuid
from fieldsync.inspections.models import Inspection
from fieldsync.inspections.rule_check import check

FINDING = str(uuid.uuid4())
SEIZURE = {
    "id": str(uuid.uuid4()),
    "type": "seizure",
    "finding_id": FINDING,
    "details": {"items": [{"item": "三轮车", "quantity": 1, "unit": "辆"}], "receipt_no": "Z-1"},
}


def person(username: str) -> str:
    return str(demo_uuid("person", username))


def inspection(*present: str, at: datetime, measures: list[Any] | None = None, **kw: Any):
    return Inspection(
        id=uuid.uuid4(),
        street_id=demo_uuid("street", STREET_A_CODE),
        occurred_at=at,
        created_at=at,
        present=[person(p) for p in present],
        findings=[{"id": FINDING, "matter_code": "CG-001", "description": "占道"}],
        measures=list(measures or []),
        flags=[],
        decisions=[],
        **kw,
    )


def codes(i: Inspection) -> list[str]:
    return [f["code"] for f in i.flags]


def test_certificate_revoked_after_the_inspection_still_counts(session: Any, demo: Any) -> None:
    # cg_wu's certificate was revoked on 2026-06-01: a month before, it counted
    i = inspection("cg_wang", "cg_wu", at=datetime(2026, 5, 1, 2, tzinfo=UTC), measures=[SEIZURE])
    check(session, i)
    assert i.tier == "enforcement"
    assert i.decisions[0]["authorised_ids"] == sorted([person("cg_wang"), person("cg_wu")])
    assert i.flags == [] and i.review_state is None


def test_certificate_revoked_before_the_inspection_does_not_count(session: Any, demo: Any) -> None:
    i = inspection("cg_wang", "cg_wu", at=datetime(2026, 7, 1, 2, tzinfo=UTC), measures=[SEIZURE])
    check(session, i)
    assert i.tier == "investigation"
    reasons = {r["code"] for r in i.decisions[0]["reasons"]}
    assert "certificate.revoked" in reasons
    # the seizure stays, flagged for the captain
    assert i.measures == [SEIZURE]
    assert codes(i) == ["inspection.measure_not_allowed"]
    assert i.flags[0]["params"]["measure_id"] == SEIZURE["id"]
    assert i.review_state == "awaiting_captain"


def test_expired_certificate_does_not_count(session: Any, demo: Any) -> None:
    # cg_zhou's certificate expired on 2025-06-30
    i = inspection("cg_wang", "cg_zhou", at=datetime(2026, 3, 1, 2, tzinfo=UTC))
    check(session, i)
    assert i.tier == "investigation"
    assert i.decisions[0]["authorised_ids"] == [person("cg_wang")]


def test_second_inspector_from_another_resident_unit(session: Any, demo: Any) -> None:
    i = inspection(
        "cg_liu", "police_li", at=datetime(2026, 3, 1, 2, tzinfo=UTC), measures=[SEIZURE]
    )
    check(session, i)
    assert i.tier == "inspection"
    assert str(i.second_inspector_id) == person("police_li")
    assert i.flags == []


def test_penalty_over_limit_and_tier_claim_are_flagged_and_kept(session: Any, demo: Any) -> None:
    penalty = {
        "id": str(uuid.uuid4()),
        "type": "onsite_penalty",
        "finding_id": FINDING,
        "details": {"amount": "500", "party_kind": "individual", "legal_basis": "条例第十七条"},
    }
    i = inspection(
        "cg_wang",
        "cg_liu",
        at=datetime(2026, 3, 1, 2, tzinfo=UTC),
        measures=[penalty],
        claimed_tier="inspection",
    )
    i.flags = [{"code": "sync.clock_skew", "message": "...", "message_zh": "..."}]
    check(session, i)
    assert i.tier == "enforcement"
    assert codes(i) == [
        "sync.clock_skew",  # flags the rule does not own are kept
        "inspection.penalty_over_onsite_limit",
        "inspection.tier_claim_mismatch",
    ]
    assert i.measures == [penalty]
    assert i.review_state == "awaiting_captain"
    check(session, i)  # idempotent
    assert len(i.flags) == 3


def test_unattributed_penalty_in_a_mixed_inspection_is_flagged(session: Any, demo: Any) -> None:
    """An enforcement-tier finding beside a referral (HJ-001 belongs to a listed unit): a fine
    that names no finding is not covered by every finding's decision."""
    referral = str(uuid.uuid4())
    penalty = {
        "id": str(uuid.uuid4()),
        "type": "onsite_penalty",
        "details": {"amount": "100", "party_kind": "individual", "legal_basis": "条例第十七条"},
    }
    i = inspection("cg_wang", "cg_liu", at=datetime(2026, 3, 1, 2, tzinfo=UTC), measures=[penalty])
    i.findings = [*i.findings, {"id": referral, "matter_code": "HJ-001", "description": "油烟"}]
    check(session, i)
    assert [d["tier"] for d in i.decisions] == ["enforcement", "referral"]
    assert codes(i) == ["inspection.measure_finding_required"]
    assert i.review_state == "awaiting_captain"
    # named for the enforcement finding, it is covered
    i.measures = [{**penalty, "finding_id": FINDING}]
    check(session, i)
    assert codes(i) == [] and i.review_state is None


def test_photo_evidence_must_be_among_the_inspections_evidence(session: Any, demo: Any) -> None:
    attached, elsewhere = "a" * 64, "b" * 64
    photo = {
        "id": str(uuid.uuid4()),
        "type": "photo_evidence",
        "details": {"evidence": [elsewhere]},
    }
    i = inspection("cg_wang", at=datetime(2026, 3, 1, 2, tzinfo=UTC), measures=[photo])
    i.evidence = [attached]
    check(session, i)
    assert codes(i) == ["inspection.measure_evidence_not_attached"]
    assert elsewhere in i.flags[0]["message"]
    i.evidence = [attached, elsewhere]
    check(session, i)
    assert codes(i) == []
