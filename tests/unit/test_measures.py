"""Unit tests of measure validation and of measures checked against the rule's decisions."""

import copy
from datetime import UTC, datetime

import pytest

from fieldsync.errors import CATALOGUE, DomainError
from fieldsync.rules.measures import (
    check_measures,
    measures_beyond,
    penalties_over_limit,
    photos_not_attached,
    validate_measure,
)
from fieldsync.rules.second_inspector import (
    CertificateFacts,
    DepartmentKind,
    MatterFacts,
    PersonFacts,
    decide,
)

AT = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
HASH = "a" * 64
MID = "5b0c7a8e-4f0e-4c7b-9a51-0d6f1b2c3d4e"

VALID = {
    "photo_evidence": {"evidence": [HASH, "0123456789abcdef" * 4]},
    "summons": {"appointment_at": "2026-03-12T01:30:00Z", "place": "东华门街道综合执法队"},
    "seizure": {
        "items": [
            {"item": "三轮车", "quantity": 1, "unit": "辆"},
            {"item": "水果", "quantity": "12.5", "unit": "公斤"},
        ],
        "receipt_no": "暂扣-2026-0031",
    },
    "order_rectification": {"deadline": "2026-03-17", "requirement": "清理占道物品"},
    "onsite_penalty": {
        "amount": "200.00",
        "party_kind": "individual",
        "legal_basis": "《北京市市容环境卫生条例》第二十八条",
    },
}


def measure(kind, details=None, **extra):
    return {
        "id": MID,
        "type": kind,
        "details": copy.deepcopy(VALID[kind]) if details is None else details,
        **extra,
    }


def rejected(m) -> DomainError:
    with pytest.raises(DomainError) as info:
        validate_measure(m)
    assert info.value.code in CATALOGUE
    return info.value


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_measures_pass(kind):
    validate_measure(measure(kind))
    validate_measure(measure(kind, finding_id="f-1"))


def test_other_valid_forms():
    validate_measure(
        measure(
            "order_rectification", {"deadline": "2026-03-17T10:00:00+08:00", "requirement": "整改"}
        )
    )
    validate_measure(
        measure(
            "onsite_penalty",
            {**VALID["onsite_penalty"], "amount": 3000, "party_kind": "organisation"},
        )
    )
    validate_measure(measure("onsite_penalty", {**VALID["onsite_penalty"], "amount": 50.5}))
    validate_measure({**measure("summons"), "id": MID.upper()})


def test_unknown_type():
    error = rejected(measure("photo_evidence") | {"type": "demolition"})
    assert error.code == "measure.unknown_type"
    assert error.params["type"] == "demolition"
    assert "demolition" in error.message("en")
    assert "demolition" in error.message("zh")


@pytest.mark.parametrize(
    ("m", "field"),
    [
        ({"type": "summons", "details": VALID["summons"]}, "id"),
        (measure("summons") | {"id": "not-a-uuid"}, "id"),
        (measure("summons") | {"id": 42}, "id"),
        ({"id": MID, "details": {}}, "type"),
        (measure("summons") | {"weather": "rain"}, "weather"),
        (measure("summons") | {"finding_id": ""}, "finding_id"),
    ],
    ids=["no-id", "bad-id", "int-id", "no-type", "unknown-field", "blank-finding"],
)
def test_malformed_envelope(m, field):
    error = rejected(m)
    assert error.code == "measure.invalid"
    assert field in error.errors


def test_not_an_object():
    assert rejected(["photo_evidence"]).code == "measure.invalid"


@pytest.mark.parametrize("items", [None, []], ids=["missing", "empty"])
def test_seizure_needs_items(items):
    details = {"receipt_no": "R-1"} if items is None else {"items": items, "receipt_no": "R-1"}
    error = rejected(measure("seizure", details))
    assert error.code == "measure.seizure_items_required"
    assert "details.items" in error.errors


def test_seizure_item_fields_are_checked():
    details = {
        "items": [
            {"item": "", "quantity": 0, "unit": "辆", "colour": "red"},
            "bike",
            {"item": "x", "quantity": True, "unit": "个"},
            {"item": "x", "quantity": "\uff11\uff12", "unit": "个"},  # FULLWIDTH ONE, TWO
        ],
        "receipt_no": " ",
    }
    error = rejected(measure("seizure", details))
    assert error.code == "measure.invalid_details"
    assert set(error.errors) == {
        "details.items.0.item",
        "details.items.0.quantity",
        "details.items.0.colour",
        "details.items.1",
        "details.items.2.quantity",
        "details.items.3.quantity",
        "details.receipt_no",
    }


@pytest.mark.parametrize("basis", [None, "", "   "], ids=["missing", "empty", "blank"])
def test_penalty_needs_legal_basis(basis):
    details = {"amount": "50", "party_kind": "individual"}
    if basis is not None:
        details["legal_basis"] = basis
    error = rejected(measure("onsite_penalty", details))
    assert error.code == "measure.penalty_legal_basis_required"
    assert "details.legal_basis" in error.errors


@pytest.mark.parametrize(
    ("amount", "party_kind"),
    [("200.01", "individual"), (201, "individual"), ("3000.01", "organisation")],
)
def test_penalty_over_the_on_the_spot_limit_is_kept_and_flagged(amount, party_kind):
    # DOMAIN.md §4: what happened in the field is never dropped; the rule check flags it
    m = measure(
        "onsite_penalty", {**VALID["onsite_penalty"], "amount": amount, "party_kind": party_kind}
    )
    validate_measure(m)
    (flag,) = penalties_over_limit([m])
    assert flag.code == "inspection.penalty_over_onsite_limit"
    assert flag.measure_id == m["id"]
    assert str(amount) in flag.message_en
    assert "元" in flag.message_zh


def test_penalty_at_the_limit_is_not_flagged():
    m = measure(
        "onsite_penalty", {**VALID["onsite_penalty"], "amount": "200", "party_kind": "individual"}
    )
    assert penalties_over_limit([m]) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 0}, "details.amount"),
        ({"amount": "-5"}, "details.amount"),
        ({"amount": "1e2"}, "details.amount"),
        ({"amount": "10.005"}, "details.amount"),
        ({"amount": float("nan")}, "details.amount"),
        ({"amount": True}, "details.amount"),
        ({"party_kind": "company"}, "details.party_kind"),
    ],
)
def test_penalty_details_are_checked(changes, field):
    error = rejected(measure("onsite_penalty", {**VALID["onsite_penalty"], **changes}))
    assert error.code == "measure.invalid_details"
    assert field in error.errors


@pytest.mark.parametrize(
    "value",
    [
        None,
        "2026-03-12 09:30",
        "2026-03-12T09:30:00",
        "2026-13-12T09:30:00Z",
        "tomorrow",
        1741742400,
    ],
)
def test_summons_needs_an_rfc3339_instant(value):
    details = {"place": "执法队"} if value is None else {"appointment_at": value, "place": "执法队"}
    error = rejected(measure("summons", details))
    assert error.code == "measure.invalid_details"
    assert "details.appointment_at" in error.errors


@pytest.mark.parametrize("deadline", ["2026-02-30", "17/03/2026", "2026-03-17T10:00:00", None])
def test_order_rectification_needs_a_deadline(deadline):
    details = (
        {"requirement": "整改"}
        if deadline is None
        else {"deadline": deadline, "requirement": "整改"}
    )
    error = rejected(measure("order_rectification", details))
    assert "details.deadline" in error.errors


@pytest.mark.parametrize(
    "evidence",
    [[], ["A" * 64], ["a" * 63], [HASH, HASH], "a" * 64, [None]],
    ids=["empty", "uppercase", "short", "repeated", "not-a-list", "null"],
)
def test_photo_evidence_names_sha256_hashes(evidence):
    error = rejected(measure("photo_evidence", {"evidence": evidence}))
    assert error.code == "measure.invalid_details"
    assert any(key.startswith("details.evidence") for key in error.errors)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_unknown_detail_fields_are_rejected(kind):
    error = rejected(measure(kind, {**VALID[kind], "note": "extra"}))
    assert error.code == "measure.invalid_details"
    assert error.errors == {"details.note": ["Unknown field."]}


def test_details_must_be_an_object():
    assert rejected(measure("summons", "tomorrow at ten")).code == "measure.invalid_details"


# --- measures against decisions ----------------------------------------------------------

RESIDENT = DepartmentKind.RESIDENT


def officer(pid, dept):
    cert = CertificateFacts(
        f"JZ-{pid}", datetime(2025, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
    )
    return PersonFacts(pid, dept, RESIDENT, frozenset({"officer"}), (cert,))


VENDING = MatterFacts("street_vending", "chengguan", RESIDENT)
MARKET = MatterFacts("unlicensed_business", "market", RESIDENT)
LONE = decide(VENDING, [officer("cg-01", "chengguan")], AT)  # investigation
PAIR = decide(VENDING, [officer("cg-01", "chengguan"), officer("cg-02", "chengguan")], AT)


def m(mid, kind, finding_id=None):
    data = {"id": mid, "type": kind, "details": {}}
    if finding_id is not None:
        data["finding_id"] = finding_id
    return data


def test_lone_officers_seizure_is_flagged_not_dropped():
    measures = [m("m1", "photo_evidence"), m("m2", "seizure"), m("m3", "summons")]
    flags = measures_beyond(LONE, measures)
    assert [(f.code, f.measure_id) for f in flags] == [("inspection.measure_not_allowed", "m2")]
    assert "seizure" in flags[0].message_en and "investigation" in flags[0].message_en
    assert "暂扣物品" in flags[0].message_zh and "现场调查程序" in flags[0].message_zh
    assert len(measures) == 3  # the input is untouched


def test_enforcement_allows_everything():
    assert measures_beyond(PAIR, [m(str(i), t) for i, t in enumerate(VALID)]) == []


def test_measures_with_findings_are_checked_against_their_own_finding():
    present = [officer("cg-01", "chengguan"), officer("cg-02", "chengguan")]
    by_finding = {
        "f-vending": decide(VENDING, present, AT),
        "f-market": decide(MARKET, present, AT),
    }
    flags = measures_beyond(
        by_finding,
        [
            m("m1", "onsite_penalty", "f-vending"),  # enforcement: fine
            m("m2", "onsite_penalty", "f-market"),  # investigation: flagged
            m("m3", "photo_evidence"),  # no finding, but every finding allows it: fine
            m("m4", "seizure", "f-vending"),
        ],
    )
    assert [(f.code, f.measure_id, f.finding_id) for f in flags] == [
        ("inspection.measure_not_allowed", "m2", "f-market"),
    ]
    assert flags[0].to_dict()["code"] == "inspection.measure_not_allowed"


# an enforcement-tier finding beside a referral (the matter of a listed unit)
WATER = MatterFacts("water_abstraction", "water", DepartmentKind.LISTED)
MIXED = {
    "f-vending": PAIR,
    "f-water": decide(WATER, [officer("cg-01", "chengguan"), officer("cg-02", "chengguan")], AT),
}


def test_an_unattributed_measure_needs_every_finding_to_allow_it():
    flags = measures_beyond(MIXED, [m("m1", "onsite_penalty"), m("m2", "photo_evidence")])
    assert [(f.code, f.measure_id, f.finding_id) for f in flags] == [
        ("inspection.measure_finding_required", "m1", None),
    ]
    assert "name the finding" in flags[0].message_en
    assert "f-water (water_abstraction, referral)" in flags[0].message_en
    assert "请注明该措施针对的问题" in flags[0].message_zh and "当场处罚" in flags[0].message_zh
    # naming the finding it served settles it
    assert measures_beyond(MIXED, [m("m1", "onsite_penalty", "f-vending")]) == []


def test_an_unknown_finding_is_flagged_and_checked_as_naming_none():
    flags = measures_beyond(MIXED, [m("m1", "seizure", "f-nowhere"), m("m2", "summons", "x")])
    assert [(f.code, f.measure_id) for f in flags] == [
        ("inspection.measure_unknown_finding", "m1"),
        ("inspection.measure_finding_required", "m1"),
        ("inspection.measure_unknown_finding", "m2"),
        ("inspection.measure_finding_required", "m2"),
    ]


def test_measure_without_finding_is_flagged_when_no_finding_allows_it():
    by_finding = {"f1": LONE, "f2": decide(MARKET, [], AT)}
    flags = measures_beyond(by_finding, [m("m1", "seizure"), m("m2", "unknown_type")])
    assert [(f.code, f.measure_id) for f in flags] == [
        ("inspection.measure_not_allowed", "m1"),
        ("inspection.measure_not_allowed", "m2"),
    ]
    assert "any finding" in flags[0].message_en


def test_no_decisions_means_nothing_is_allowed():
    flags = measures_beyond({}, [m("m1", "photo_evidence", "f1"), m("m2", "photo_evidence")])
    assert [f.code for f in flags] == [
        "inspection.measure_unknown_finding",
        "inspection.measure_not_allowed",
        "inspection.measure_not_allowed",
    ]


def test_photo_evidence_must_name_the_inspections_own_photos():
    other = "b" * 64
    photo = {"id": "m1", "type": "photo_evidence", "details": {"evidence": [HASH, other]}}
    flags = photos_not_attached([photo], [HASH])
    assert [(f.code, f.measure_id) for f in flags] == [
        ("inspection.measure_evidence_not_attached", "m1")
    ]
    assert other in flags[0].message_en and HASH not in flags[0].message_en
    assert photos_not_attached([photo], [other, HASH, "c" * 64]) == []
    assert photos_not_attached([m("m2", "summons")], []) == []


def test_check_measures_gives_every_flag_and_changes_nothing():
    photo = {"id": "m1", "type": "photo_evidence", "details": {"evidence": [HASH]}}
    fine = {**m("m2", "onsite_penalty"), "details": {"amount": "500", "party_kind": "individual"}}
    measures = [photo, fine]
    snapshot = copy.deepcopy(measures)
    flags = check_measures(MIXED, measures, [])
    assert [(f.code, f.measure_id) for f in flags] == [
        ("inspection.measure_finding_required", "m2"),
        ("inspection.penalty_over_onsite_limit", "m2"),
        ("inspection.measure_evidence_not_attached", "m1"),
    ]
    assert measures == snapshot
    assert {f.code for f in flags} <= set(CATALOGUE)
