"""The conformance vectors: well formed, broad enough, and every one agrees with the rule."""

import copy

import pytest

from fieldsync.rules.measures import FLAG_TEXT, validate_measure
from fieldsync.rules.second_inspector import REASON_TEXT, Tier
from fieldsync.rules.vectors import check_vector, load_vectors, measure_from_json, run_vector

DOCUMENT = load_vectors()
CASES = DOCUMENT["cases"]
SINGLE_KEYS = {"tier", "second_inspector_id", "authorised_ids", "allowed_measures", "reason_codes"}
OPTIONAL_KEYS = {"reasons", "absent_reason_codes", "flags"}
PERSON_KEYS = {"id", "department_code", "department_kind", "roles", "certificates"}


def _expectations(case):
    expected = case["expected"]
    return expected["decisions"] if "decisions" in expected else [expected]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_agrees_with_the_rule(case):
    assert check_vector(case) == []


def test_enough_distinct_cases():
    names = [c["name"] for c in CASES]
    assert len(names) >= 45
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_is_well_formed(case):
    assert set(case) == {"name", "description", "input", "expected"}
    given = case["input"]
    assert given["at"].endswith("Z")
    assert ("matter" in given) != ("matters" in given)
    assert set(given) <= {"at", "matter", "matters", "present", "measures", "evidence"}
    for person in given["present"]:
        assert PERSON_KEYS <= set(person) <= PERSON_KEYS | {"active"}
        assert isinstance(person.get("active", True), bool)
    # measures are checked when, and only when, the vector says what flags they get
    assert ("measures" in given) == ("flags" in case["expected"])
    for m in given.get("measures", ()):
        assert set(m) == {"id", "type", "finding", "details"}
        validate_measure({**measure_from_json(m), "id": "5b0c7a8e-4f0e-4c7b-9a51-0d6f1b2c3d4e"})
    for flag in case["expected"].get("flags", ()):
        assert set(flag) == {"code", "measure_id"} and flag["code"] in FLAG_TEXT
    for expected in _expectations(case):
        assert SINGLE_KEYS <= set(expected) <= SINGLE_KEYS | OPTIONAL_KEYS
        assert expected["allowed_measures"] == sorted(expected["allowed_measures"])
        codes = [*expected["reason_codes"], *expected.get("absent_reason_codes", ())]
        codes += [r["code"] for r in expected.get("reasons", ())]
        assert set(codes) <= set(REASON_TEXT), "every code a vector names is a real reason code"


def test_every_tier_and_every_reason_code_is_exercised():
    expected = [e for case in CASES for e in _expectations(case)]
    assert {e["tier"] for e in expected} == {t.value for t in Tier}
    named = {c for e in expected for c in e["reason_codes"]}
    named |= {r["code"] for e in expected for r in e.get("reasons", ())}
    assert named == set(REASON_TEXT)
    assert any("decisions" in case["expected"] for case in CASES)
    flagged = {f["code"] for case in CASES for f in case["expected"].get("flags", ())}
    assert flagged == set(FLAG_TEXT)


def test_version_2_knows_active_and_flags():
    assert DOCUMENT["version"] == 2
    assert any(p.get("active") is False for c in CASES for p in c["input"]["present"])
    assert any(c["expected"].get("flags") == [] for c in CASES)


def test_check_vector_catches_a_wrong_flag():
    case = copy.deepcopy(
        next(c for c in CASES if c["name"].startswith("measures_unattributed_pen"))
    )
    assert check_vector(case) == []
    case["expected"]["flags"] = case["expected"]["flags"][:1]
    assert check_vector(case) != []


def test_run_vector_reports_every_reason():
    case = next(c for c in CASES if c["name"] == "inspection_lowest_id_among_several_candidates")
    outcome = run_vector(case)
    assert outcome["second_inspector_id"] == "fire-01"
    assert outcome["reason_codes"][0] == "tier.inspection"
    assert len(outcome["reasons"]) == 1 + 4  # the tier, then one line per person


@pytest.mark.parametrize(
    ("field", "wrong"),
    [
        ("tier", "enforcement"),
        ("second_inspector_id", "cg-01"),
        ("authorised_ids", []),
        ("allowed_measures", ["photo_evidence"]),
        ("reason_codes", ["tier.referral"]),
        ("absent_reason_codes", ["tier.inspection"]),
        ("reasons", [{"code": "person.authorised", "person_id": "pol-01"}]),
    ],
)
def test_check_vector_catches_a_wrong_expectation(field, wrong):
    case = copy.deepcopy(
        next(c for c in CASES if c["name"] == "inspection_police_officer_as_second_inspector")
    )
    case["expected"][field] = wrong
    assert check_vector(case) != []


def test_load_vectors_gives_a_fresh_copy():
    load_vectors()["cases"].clear()
    assert len(load_vectors()["cases"]) == len(CASES)
