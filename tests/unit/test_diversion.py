"""Unit tests of back-end diversion routing (后段分流处置)."""

import pytest

from fieldsync.rules.diversion import Finding, Route, route
from fieldsync.rules.second_inspector import DepartmentKind, MatterFacts

VENDING = MatterFacts("street_vending", "chengguan", DepartmentKind.RESIDENT)
UNLICENSED = MatterFacts("unlicensed_business", "market", DepartmentKind.RESIDENT)
WATER = MatterFacts("unauthorised_water_abstraction", "water", DepartmentKind.LISTED)


def test_three_findings_two_cases_and_one_referral():
    findings = [Finding("f1", VENDING), Finding("f2", UNLICENSED), Finding("f3", WATER)]
    assert route(findings) == [
        Route("f1", "case", "chengguan"),
        Route("f2", "case", "market"),
        Route("f3", "referral", "water"),
    ]


def test_two_findings_of_one_unit_make_two_cases():
    routes = route([Finding("f1", VENDING), Finding("f2", VENDING)])
    assert [(r.finding_id, r.kind, r.department_code) for r in routes] == [
        ("f1", "case", "chengguan"),
        ("f2", "case", "chengguan"),
    ]


def test_a_repeated_finding_routes_once():
    assert route([Finding("f1", VENDING), Finding("f1", VENDING)]) == [
        Route("f1", "case", "chengguan")
    ]


def test_one_finding_id_with_two_matters_is_refused():
    with pytest.raises(ValueError, match="f1"):
        route([Finding("f1", VENDING), Finding("f1", WATER)])


def test_no_findings_no_routes():
    assert route([]) == []
