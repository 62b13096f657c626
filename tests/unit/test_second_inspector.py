"""Unit tests of the second-inspector rule (第二检查人): tiers, reasons, time, and properties."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldsync.rules.second_inspector import (
    DEFAULT_ALLOWED,
    REASON_TEXT,
    CertificateFacts,
    Decision,
    DepartmentKind,
    MatterFacts,
    MeasureType,
    PersonFacts,
    Reason,
    Tier,
    decide,
    decide_findings,
)

AT = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
RESIDENT, LISTED = DepartmentKind.RESIDENT, DepartmentKind.LISTED
KIND = {
    "chengguan": RESIDENT,
    "police": RESIDENT,
    "market": RESIDENT,
    "fire": RESIDENT,
    "water": LISTED,
    "housing": LISTED,
}
STREET_VENDING = MatterFacts("street_vending", "chengguan", RESIDENT)
UNLICENSED = MatterFacts("unlicensed_business", "market", RESIDENT)
WATER = MatterFacts("unauthorised_water_abstraction", "water", LISTED)


def cert(
    number="JZ-1", *, start=AT - timedelta(days=365), end=AT + timedelta(days=365), revoked=None
):
    return CertificateFacts(number, start, end, revoked)


def officer(pid, dept, *certs, roles=("officer",)):
    certificates = certs if certs else (cert(f"JZ-{pid}"),)
    return PersonFacts(pid, dept, KIND[dept], frozenset(roles), certificates)


def grid_worker(pid="grid-01"):
    return PersonFacts(pid, None, None, frozenset({"grid_worker"}))


def reasons_of(decision: Decision) -> set[tuple[str, str | None]]:
    return {(r.code, r.person_id) for r in decision.reasons}


def essence(decision: Decision):
    return (
        decision.tier,
        decision.authorised_ids,
        decision.second_inspector_id,
        decision.allowed_measures,
    )


# --- the four tiers ----------------------------------------------------------------------


def test_two_officers_with_authority_enforce():
    d = decide(STREET_VENDING, [officer("cg-02", "chengguan"), officer("cg-01", "chengguan")], AT)
    assert d.tier is Tier.ENFORCEMENT
    assert d.authorised_ids == ("cg-01", "cg-02")
    assert d.second_inspector_id is None
    assert d.allowed_measures == frozenset(MeasureType)
    assert d.reasons[0].code == "tier.enforcement"


def test_one_officer_and_a_resident_officer_inspect():
    d = decide(STREET_VENDING, [officer("cg-01", "chengguan"), officer("pol-01", "police")], AT)
    assert d.tier is Tier.INSPECTION
    assert d.authorised_ids == ("cg-01",)
    assert d.second_inspector_id == "pol-01"
    assert d.allowed_measures == {
        MeasureType.PHOTO_EVIDENCE,
        MeasureType.SUMMONS,
        MeasureType.SEIZURE,
    }
    assert ("person.second_inspector", "pol-01") in reasons_of(d)


def test_nobody_with_authority_on_a_resident_matter_investigates():
    d = decide(STREET_VENDING, [officer("pol-01", "police"), officer("fire-01", "fire")], AT)
    assert d.tier is Tier.INVESTIGATION
    assert d.authorised_ids == ()
    assert d.allowed_measures == {MeasureType.PHOTO_EVIDENCE, MeasureType.SUMMONS}
    assert d.reasons[0].code == "tier.investigation"
    assert ("person.other_department", "pol-01") in reasons_of(d)


def test_nobody_with_authority_on_a_listed_matter_refers():
    d = decide(WATER, [officer("cg-01", "chengguan"), officer("cg-02", "chengguan")], AT)
    assert d.tier is Tier.REFERRAL
    assert d.allowed_measures == {MeasureType.PHOTO_EVIDENCE}
    assert d.reasons[0].code == "tier.referral"


def test_lone_officer_with_authority_investigates():
    d = decide(STREET_VENDING, [officer("cg-01", "chengguan")], AT)
    assert d.tier is Tier.INVESTIGATION
    assert d.authorised_ids == ("cg-01",)
    assert d.second_inspector_id is None
    assert d.reasons[0].code == "tier.investigation_no_second_inspector"


def test_nobody_present():
    assert decide(STREET_VENDING, [], AT).tier is Tier.INVESTIGATION
    assert decide(WATER, [], AT).tier is Tier.REFERRAL


# --- who counts --------------------------------------------------------------------------


def test_listed_unit_officer_has_authority_for_own_matter_but_is_never_second_inspector():
    water_pair = decide(WATER, [officer("water-01", "water"), officer("water-02", "water")], AT)
    assert water_pair.tier is Tier.ENFORCEMENT

    # hous-01 sorts before pol-01 and would be chosen if listed officers were eligible.
    d = decide(
        STREET_VENDING,
        [officer("cg-01", "chengguan"), officer("hous-01", "housing"), officer("pol-01", "police")],
        AT,
    )
    assert d.second_inspector_id == "pol-01"
    assert ("person.listed_unit_not_second_inspector", "hous-01") in reasons_of(d)

    alone = decide(STREET_VENDING, [officer("cg-01", "chengguan"), officer("w-1", "water")], AT)
    assert alone.tier is Tier.INVESTIGATION


def test_a_resident_officer_can_second_a_listed_units_officer():
    d = decide(WATER, [officer("water-01", "water"), officer("cg-01", "chengguan")], AT)
    assert (d.tier, d.second_inspector_id) == (Tier.INSPECTION, "cg-01")


@pytest.mark.parametrize(
    "person",
    [
        grid_worker(),
        PersonFacts("vol-01", None, None, frozenset()),
        officer("grid-02", "chengguan", roles=("grid_worker",)),
        officer("cap-02", "chengguan", roles=("captain",)),
        officer("ch-01", "police", roles=("case_handler",)),
        # a roster that gives a grid worker the officer role too still never makes them count
        officer("grid-03", "police", roles=("grid_worker", "officer")),
    ],
    ids=[
        "grid-worker",
        "volunteer",
        "grid-worker-with-cert",
        "captain-only",
        "case-handler",
        "grid-worker-also-officer",
    ],
)
def test_people_without_the_officer_role_never_count(person):
    d = decide(STREET_VENDING, [officer("cg-01", "chengguan"), person], AT)
    assert d.tier is Tier.INVESTIGATION
    assert d.authorised_ids == ("cg-01",)
    assert ("person.not_an_officer", person.id) in reasons_of(d)


def test_captain_with_officer_role_counts():
    captain = officer("cap-01", "chengguan", roles=("captain", "officer"))
    assert decide(STREET_VENDING, [captain, officer("cg-01", "chengguan")], AT).tier is (
        Tier.ENFORCEMENT
    )


def test_an_inactive_officer_never_counts():
    """Deactivated on the roster at the time: neither authority nor second inspector."""
    gone = PersonFacts("cg-02", "chengguan", RESIDENT, frozenset({"officer"}), (cert(),), False)
    d = decide(STREET_VENDING, [officer("cg-01", "chengguan"), gone], AT)
    assert (d.tier, d.authorised_ids) == (Tier.INVESTIGATION, ("cg-01",))
    assert ("person.inactive", "cg-02") in reasons_of(d)
    police = PersonFacts("pol-01", "police", RESIDENT, frozenset({"officer"}), (cert(),), False)
    d = decide(STREET_VENDING, [officer("cg-01", "chengguan"), police], AT)
    assert (d.tier, d.second_inspector_id) == (Tier.INVESTIGATION, None)


def test_officer_without_department_never_counts():
    stray = PersonFacts("aux-01", None, None, frozenset({"officer"}), (cert(),))
    d = decide(STREET_VENDING, [officer("cg-01", "chengguan"), stray], AT)
    assert d.tier is Tier.INVESTIGATION
    assert ("person.no_department", "aux-01") in reasons_of(d)


def test_same_officer_twice_counts_once():
    cg = officer("cg-01", "chengguan")
    d = decide(STREET_VENDING, [cg, cg, officer("pol-01", "police")], AT)
    assert d.tier is Tier.INSPECTION
    assert d.authorised_ids == ("cg-01",)
    assert ("person.duplicate", "cg-01") in reasons_of(d)


def test_one_id_with_two_different_facts_is_refused():
    with pytest.raises(ValueError, match="different facts"):
        decide(STREET_VENDING, [officer("x", "chengguan"), officer("x", "police")], AT)


def test_second_inspector_is_the_lowest_id_by_code_point():
    present = [
        officer("pol-02", "police"),
        officer("mkt-01", "market"),
        officer("cg-01", "chengguan"),
        officer("fire-01", "fire"),
    ]
    d = decide(STREET_VENDING, present, AT)
    assert d.second_inspector_id == "fire-01"
    assert ("person.second_inspector_not_chosen", "pol-02") in reasons_of(d)
    chosen = next(r for r in d.reasons if r.code == "person.second_inspector")
    assert chosen.detail == "fire-01, mkt-01, pol-02"

    upper = decide(
        STREET_VENDING,
        [officer("cg-01", "chengguan"), officer("fire-03", "fire"), officer("Pol-07", "police")],
        AT,
    )
    assert upper.second_inspector_id == "Pol-07"  # "P" < "f": not a locale order


# --- certificates and time ---------------------------------------------------------------


def test_certificate_period_is_half_open():
    c = cert(start=AT, end=AT + timedelta(days=1))
    assert c.valid_at(AT)
    assert not c.valid_at(AT - timedelta(microseconds=1))
    assert c.valid_at(AT + timedelta(days=1) - timedelta(microseconds=1))
    assert not c.valid_at(AT + timedelta(days=1))


def test_revocation_counts_from_its_instant():
    c = cert(revoked=AT)
    assert not c.valid_at(AT)
    assert c.valid_at(AT - timedelta(seconds=1))
    assert c.status_at(AT) == "certificate.revoked"


@pytest.mark.parametrize(
    ("certificate", "code"),
    [
        (cert(start=AT - timedelta(days=30), end=AT), "certificate.expired"),
        (cert(start=AT + timedelta(seconds=1)), "certificate.not_yet_valid"),
        (cert(revoked=AT - timedelta(days=1)), "certificate.revoked"),
        (
            cert(
                start=AT - timedelta(days=9),
                end=AT - timedelta(days=1),
                revoked=AT - timedelta(days=5),
            ),
            "certificate.revoked",
        ),
    ],
    ids=["expired-at-boundary", "not-yet-valid", "revoked", "revoked-outranks-expired"],
)
def test_invalid_certificate_takes_away_authority(certificate, code):
    d = decide(
        STREET_VENDING,
        [officer("cg-01", "chengguan"), officer("cg-02", "chengguan", certificate)],
        AT,
    )
    assert d.tier is Tier.INVESTIGATION
    assert d.authorised_ids == ("cg-01",)
    assert (code, "cg-02") in reasons_of(d)


def test_revoked_after_the_inspection_still_counted():
    late = cert(revoked=AT + timedelta(hours=3))
    d = decide(
        STREET_VENDING, [officer("cg-01", "chengguan"), officer("cg-02", "chengguan", late)], AT
    )
    assert d.tier is Tier.ENFORCEMENT


def test_no_certificate_at_all():
    bare = PersonFacts("cg-09", "chengguan", RESIDENT, frozenset({"officer"}))
    d = decide(STREET_VENDING, [bare], AT)
    assert ("certificate.missing", "cg-09") in reasons_of(d)


def test_one_valid_certificate_among_old_ones_is_enough():
    old = cert("old", start=AT - timedelta(days=900), end=AT - timedelta(days=400))
    d = decide(
        STREET_VENDING,
        [officer("cg-01", "chengguan"), officer("cg-02", "chengguan", old, cert("new"))],
        AT,
    )
    assert d.tier is Tier.ENFORCEMENT
    assert ("person.authorised", "cg-02") in reasons_of(d)
    assert "certificate.expired" not in d.reason_codes


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(STREET_VENDING, [], datetime(2026, 3, 10, 2, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        CertificateFacts("n", datetime(2025, 1, 1), AT)


def test_other_offsets_are_the_same_instant():
    beijing = timezone(timedelta(hours=8))
    ends_at = cert(start=AT - timedelta(days=9), end=AT)
    assert not ends_at.valid_at(datetime(2026, 3, 10, 10, 0, tzinfo=beijing))
    assert ends_at.valid_from.tzinfo is UTC


def test_certificate_must_end_after_it_starts():
    with pytest.raises(ValueError):
        CertificateFacts("n", AT, AT)


def test_department_code_and_kind_go_together():
    with pytest.raises(ValueError):
        PersonFacts("p", "chengguan", None, frozenset({"officer"}))


# --- measures of the matter --------------------------------------------------------------


def test_matter_may_narrow_a_tier_and_the_reason_says_so():
    matter = MatterFacts(
        "shared_bicycles", "chengguan", RESIDENT, {Tier.INSPECTION: {"photo_evidence", "summons"}}
    )
    d = decide(matter, [officer("cg-01", "chengguan"), officer("pol-01", "police")], AT)
    assert d.allowed_measures == {MeasureType.PHOTO_EVIDENCE, MeasureType.SUMMONS}
    restricted = next(r for r in d.reasons if r.code == "matter.measures_restricted")
    assert restricted.detail == "seizure"
    # Tiers it does not name keep the law's table.
    assert matter.allowed_for(Tier.ENFORCEMENT) == DEFAULT_ALLOWED[Tier.ENFORCEMENT]


def test_matter_can_never_widen_a_tier():
    matter = MatterFacts("wide", "chengguan", RESIDENT, {"investigation": list(MeasureType)})
    d = decide(matter, [], AT)
    assert d.allowed_measures == DEFAULT_ALLOWED[Tier.INVESTIGATION]
    assert "matter.measures_restricted" not in d.reason_codes


def test_matter_facts_stay_hashable():
    matter = MatterFacts("m", "chengguan", RESIDENT, {Tier.REFERRAL: []})
    assert hash(matter) == hash(MatterFacts("m", "chengguan", RESIDENT, {Tier.REFERRAL: []}))


# --- several findings and the output shape -----------------------------------------------


def test_one_decision_per_finding_in_order():
    present = [
        officer("cg-01", "chengguan"),
        officer("cg-02", "chengguan"),
        officer("mkt-01", "market"),
    ]
    decisions = decide_findings([STREET_VENDING, UNLICENSED, WATER], present, AT)
    assert [d.matter_code for d in decisions] == [
        "street_vending",
        "unlicensed_business",
        "unauthorised_water_abstraction",
    ]
    assert [d.tier for d in decisions] == [Tier.ENFORCEMENT, Tier.INSPECTION, Tier.REFERRAL]
    assert decisions[1].second_inspector_id == "cg-01"


def test_to_dict_is_json_ready_and_bilingual():
    d = decide(STREET_VENDING, [officer("cg-01", "chengguan"), officer("pol-01", "police")], AT)
    data = d.to_dict()
    assert data["tier"] == "inspection"
    assert data["authorised_ids"] == ["cg-01"]
    assert data["second_inspector_id"] == "pol-01"
    assert data["allowed_measures"] == ["photo_evidence", "seizure", "summons"]
    second = next(r for r in data["reasons"] if r["code"] == "person.second_inspector")
    assert second["person_id"] == "pol-01"
    assert second["message_en"].startswith("pol-01 acts as second inspector")
    assert "第二检查人" in second["message_zh"]


def test_every_reason_code_has_both_texts():
    for code, (en, zh) in REASON_TEXT.items():
        assert en and zh, code
        assert Reason(code, "p-1", "d").message("zh") != Reason(code, "p-1", "d").message("en")


def test_reasons_cover_every_person_once_and_lead_with_the_tier():
    present = [
        officer("cg-01", "chengguan"),
        officer("pol-01", "police"),
        grid_worker(),
        officer("w-1", "water"),
    ]
    d = decide(STREET_VENDING, present, AT)
    assert d.reasons[0].code.startswith("tier.")
    people = [r.person_id for r in d.reasons if r.person_id]
    assert people == sorted({p.id for p in present})


# --- properties --------------------------------------------------------------------------

_IDS = ["a-1", "B-2", "cg-01", "cg-02", "fire-1", "mkt-1", "pol-1", "w-1", "x-9"]
_DEPTS = [None, *KIND]
_ROLE_SETS = [
    frozenset({"officer"}),
    frozenset({"officer", "captain"}),
    frozenset({"grid_worker"}),
    frozenset(),
    frozenset({"case_handler"}),
]
_OFFSETS = [-400, -10, -1, 0, 1, 10, 400]  # days around AT


@st.composite
def certificates(draw):
    start = AT + timedelta(days=draw(st.sampled_from(_OFFSETS)))
    length = timedelta(days=draw(st.sampled_from([1, 10, 1000])))
    revoked = draw(st.sampled_from([None, *_OFFSETS]))
    return CertificateFacts(
        draw(st.sampled_from(["c1", "c2", "c3"])),
        start,
        start + length,
        None if revoked is None else AT + timedelta(days=revoked),
    )


@st.composite
def people(draw):
    chosen = draw(st.lists(st.sampled_from(_IDS), unique=True, max_size=6))
    result = []
    for pid in chosen:
        dept = draw(st.sampled_from(_DEPTS))
        result.append(
            PersonFacts(
                pid,
                dept,
                KIND[dept] if dept else None,
                draw(st.sampled_from(_ROLE_SETS)),
                tuple(draw(st.lists(certificates(), max_size=2))),
            )
        )
    return result


matters = st.sampled_from([STREET_VENDING, UNLICENSED, WATER])


@settings(max_examples=200, deadline=None)
@given(matter=matters, present=people(), data=st.data())
def test_order_of_present_never_changes_the_decision(matter, present, data):
    shuffled = data.draw(st.permutations(present))
    assert decide(matter, shuffled, AT) == decide(matter, present, AT)


@settings(max_examples=200, deadline=None)
@given(matter=matters, present=people(), data=st.data())
def test_duplicates_never_change_the_decision(matter, present, data):
    extra = data.draw(st.lists(st.sampled_from(present), max_size=4)) if present else []
    with_duplicates = decide(matter, present + extra, AT)
    plain = decide(matter, present, AT)
    assert essence(with_duplicates) == essence(plain)
    non_duplicate = [r for r in with_duplicates.reasons if r.code != "person.duplicate"]
    assert tuple(non_duplicate) == plain.reasons


@settings(max_examples=200, deadline=None)
@given(matter=matters, present=people())
def test_adding_a_grid_worker_never_changes_the_decision(matter, present):
    helper = PersonFacts("zz-grid", "chengguan", RESIDENT, frozenset({"grid_worker"}), (cert(),))
    assert essence(decide(matter, [*present, helper], AT)) == essence(decide(matter, present, AT))


@settings(max_examples=200, deadline=None)
@given(matter=matters, present=people())
def test_decision_invariants(matter, present):
    d = decide(matter, present, AT)
    assert list(d.authorised_ids) == sorted(set(d.authorised_ids))
    assert d.allowed_measures <= DEFAULT_ALLOWED[d.tier]
    assert (d.second_inspector_id is not None) == (d.tier is Tier.INSPECTION)
    if d.tier is Tier.ENFORCEMENT:
        assert len(d.authorised_ids) >= 2
    if d.tier is Tier.INSPECTION:
        assert len(d.authorised_ids) == 1
        assert d.second_inspector_id not in d.authorised_ids
    if d.tier is Tier.REFERRAL:
        assert not d.authorised_ids and matter.department_kind is LISTED
    # A certificate revoked after the instant never changes anything at the instant.
    later = [
        PersonFacts(
            p.id,
            p.department_code,
            p.department_kind,
            p.roles,
            tuple(
                CertificateFacts(c.number, c.valid_from, c.valid_to, AT + timedelta(days=1))
                if c.revoked_at is None
                else c
                for c in p.certificates
            ),
        )
        for p in present
    ]
    assert essence(decide(matter, later, AT)) == essence(d)
