"""Conformance vectors for the second-inspector rule and the check of measures against it: load
them, run one, compare with expected."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from fieldsync.rules.measures import check_measures
from fieldsync.rules.second_inspector import (
    CertificateFacts,
    Decision,
    DepartmentKind,
    MatterFacts,
    PersonFacts,
    as_utc,
    decide,
    decide_findings,
)

VECTORS_FORMAT = "fieldsync/second-inspector-vectors"
# 2: people carry `active`; auxiliary roles never count; vectors may check measures (`flags`)
VECTORS_VERSION = 2
_EXACT_FIELDS = ("tier", "second_inspector_id", "authorised_ids", "allowed_measures")


@cache
def _vectors_text() -> str:
    return resources.files("fieldsync.rules").joinpath("vectors.json").read_text("utf-8")


def load_vectors() -> dict[str, Any]:
    """The whole document `{format, version, rule, cases: [...]}`, a fresh copy each call."""
    document = json.loads(_vectors_text())
    if document.get("format") != VECTORS_FORMAT or document.get("version") != VECTORS_VERSION:
        raise ValueError(
            f"vectors.json is not a version {VECTORS_VERSION} second-inspector vectors document"
        )
    return document


def parse_instant(value: str) -> datetime:
    """An RFC 3339 instant with its offset (`Z` included), as an aware UTC datetime."""
    return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")), value)


def certificate_from_json(obj: Mapping[str, Any]) -> CertificateFacts:
    revoked_at = obj.get("revoked_at")
    return CertificateFacts(
        number=obj["number"],
        valid_from=parse_instant(obj["valid_from"]),
        valid_to=parse_instant(obj["valid_to"]),
        revoked_at=parse_instant(revoked_at) if revoked_at is not None else None,
    )


def person_from_json(obj: Mapping[str, Any]) -> PersonFacts:
    kind = obj.get("department_kind")
    return PersonFacts(
        id=obj["id"],
        department_code=obj.get("department_code"),
        department_kind=DepartmentKind(kind) if kind is not None else None,
        roles=frozenset(obj.get("roles", ())),
        certificates=tuple(certificate_from_json(c) for c in obj.get("certificates", ())),
        active=obj.get("active", True),
    )


def matter_from_json(obj: Mapping[str, Any]) -> MatterFacts:
    return MatterFacts(
        code=obj["code"],
        department_code=obj["department_code"],
        department_kind=DepartmentKind(obj["department_kind"]),
        allowed_measures=obj.get("allowed_measures"),
    )


def _outcome(decision: Decision) -> dict[str, Any]:
    data = decision.to_dict()
    return {
        "tier": data["tier"],
        "second_inspector_id": data["second_inspector_id"],
        "authorised_ids": data["authorised_ids"],
        "allowed_measures": data["allowed_measures"],
        "reason_codes": [r["code"] for r in data["reasons"]],
        "reasons": [{"code": r["code"], "person_id": r["person_id"]} for r in data["reasons"]],
    }


def measure_from_json(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A vector's measure as the rule takes it: `finding` (an index into `input.matters`, or
    null for a measure naming no finding) becomes the `finding_id` of that finding."""
    measure = {"id": obj["id"], "type": obj["type"], "details": dict(obj.get("details", {}))}
    if obj.get("finding") is not None:
        measure["finding_id"] = str(obj["finding"])
    return measure


def _by_measure(flag: Mapping[str, Any]) -> tuple[str, str]:
    return (str(flag["measure_id"]), flag["code"])


def _flags(flags: Any) -> list[dict[str, Any]]:
    return sorted(({"code": f.code, "measure_id": f.measure_id} for f in flags), key=_by_measure)


def run_vector(case: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the rule to a vector's input; the outcome in the shape of its `expected`.

    Single-matter vectors give `{tier, second_inspector_id, authorised_ids, allowed_measures,
    reason_codes, reasons}` with every reason; several-findings vectors give `{decisions: [...]}`.
    With `input.measures`, the outcome also has `flags`: `{code, measure_id}` for each flag the
    measures get (against the decision, or each finding's), sorted.
    """
    given = case["input"]
    at = parse_instant(given["at"])
    present = [person_from_json(p) for p in given["present"]]
    if "matters" in given:
        matters = [matter_from_json(m) for m in given["matters"]]
        decisions = decide_findings(matters, present, at)
        outcome: dict[str, Any] = {"decisions": [_outcome(d) for d in decisions]}
        checked: Any = {str(index): d for index, d in enumerate(decisions)}
    else:
        checked = decide(matter_from_json(given["matter"]), present, at)
        outcome = _outcome(checked)
    if "measures" in given:
        measures = [measure_from_json(m) for m in given["measures"]]
        outcome["flags"] = _flags(check_measures(checked, measures, given.get("evidence", [])))
    return outcome


def _mismatches(expected: Mapping[str, Any], actual: Mapping[str, Any], where: str) -> list[str]:
    problems = [
        f"{where}{name}: expected {expected[name]!r}, got {actual[name]!r}"
        for name in _EXACT_FIELDS
        if expected[name] != actual[name]
    ]
    problems += [
        f"{where}reason_codes: {code!r} missing from {actual['reason_codes']!r}"
        for code in expected.get("reason_codes", ())
        if code not in actual["reason_codes"]
    ]
    problems += [
        f"{where}reason_codes: {code!r} must not appear"
        for code in expected.get("absent_reason_codes", ())
        if code in actual["reason_codes"]
    ]
    problems += [
        f"{where}reasons: {reason!r} missing"
        for reason in expected.get("reasons", ())
        if dict(reason) not in actual["reasons"]
    ]
    return problems


def check_vector(case: Mapping[str, Any]) -> list[str]:
    """What differs between the rule and a vector's `expected`; empty when they agree."""
    expected, actual = case["expected"], run_vector(case)
    problems: list[str] = []
    if "flags" in expected:
        want = sorted((dict(f) for f in expected["flags"]), key=_by_measure)
        if want != actual.get("flags"):
            problems.append(f"flags: expected {want!r}, got {actual.get('flags')!r}")
    if "decisions" not in expected:
        return problems + _mismatches(expected, actual, "")
    if len(expected["decisions"]) != len(actual["decisions"]):
        return [f"expected {len(expected['decisions'])} decisions, got {len(actual['decisions'])}"]
    for index, (want, got) in enumerate(
        zip(expected["decisions"], actual["decisions"], strict=True)
    ):
        problems += _mismatches(want, got, f"decisions[{index}].")
    return problems
