"""Cases through the API: declining, the list's filters, refusals that leave the case as it was,
and numbers that are never given by hand."""

from __future__ import annotations

from typing import Any

import pytest
from field_phone import Device, new_id, pid  # type: ignore[import-not-found]


def _inspection(phone: Device, occurred_at: str, *matters: str) -> dict[str, str]:
    """Push and submit an inspection with one finding per matter: {matter: case id}."""
    iid = new_id()
    findings = [{"id": new_id(), "matter_code": m, "description": m} for m in matters]
    resp = phone.push(
        {
            "type": "inspection.upsert",
            "entity_id": iid,
            "base_version": 0,
            "set": {
                "occurred_at": occurred_at,
                "present": [pid("cg_wang"), pid("cg_liu"), pid("market_zhu"), pid("market_hu")],
                "findings": findings,
            },
        },
        {"type": "inspection.submit", "entity_id": iid, "base_version": 1},
    )
    assert resp.status_code == 200, resp.get_json()
    cases = resp.get_json()["results"][1]["data"]["cases"]
    by_finding = {f["id"]: f["matter_code"] for f in findings}
    return {by_finding[c["finding_id"]]: c["id"] for c in cases}


@pytest.fixture
def cases(api: Any, demo: Any) -> dict[str, Any]:
    phone = Device(api, "cg_wang")
    early = _inspection(phone, "2026-11-10T02:00:00Z", "CG-001", "SJ-001")
    late = _inspection(phone, "2026-11-20T02:00:00Z", "CG-010")
    return {"phone": phone, "early": early, "late": late}


def _ids(api: Any, **query: str) -> set[str]:
    resp = api.get("/cases", "captain", query_string=query)
    assert resp.status_code == 200, resp.get_json()
    return {c["id"] for c in resp.get_json()}


def test_decline_with_a_reason(api: Any, cases: dict[str, Any]) -> None:
    case_id = cases["early"]["CG-001"]
    resp = api.post(f"/cases/{case_id}/decline", "handler_chengguan", json={"reason": "已自行整改"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["state"], body["decline_reason"], body["number"]) == (
        "declined",
        "已自行整改",
        None,
    )
    assert body["declined_at"] is not None
    assert [t["action"] for t in body["transitions"]] == ["case.divert", "case.decline"]
    assert body["transitions"][-1]["changes"]["reason"] == "已自行整改"
    # declined is the end: the device sees it in its inspection's cases
    seen = {c["id"]: c["state"] for c in cases["phone"].pulled(body["inspection_id"])["cases"]}
    assert seen[case_id] == "declined"
    again = api.post(f"/cases/{case_id}/file", "handler_chengguan", json={})
    assert (again.status_code, again.get_json()["error"]) == (409, "case.transition_not_allowed")


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": None}])
def test_decline_without_a_reason_is_refused_with_its_code(
    api: Any, cases: dict[str, Any], body: dict[str, Any]
) -> None:
    case_id = cases["early"]["CG-001"]
    before = api.get(f"/cases/{case_id}", "captain").get_json()
    resp = api.post(f"/cases/{case_id}/decline", "handler_chengguan", json=body)
    assert (resp.status_code, resp.get_json()["error"]) == (422, "case.reason_required")
    assert "reason" in resp.get_json()["errors"]
    zh = api.post(
        f"/cases/{case_id}/decline",
        "handler_chengguan",
        json=body,
        headers={"Accept-Language": "zh-CN"},
    )
    assert zh.get_json()["message"] == "不予立案须说明理由。"
    assert api.get(f"/cases/{case_id}", "captain").get_json() == before


def test_a_transition_out_of_order_leaves_the_case_unchanged(
    api: Any, cases: dict[str, Any]
) -> None:
    case_id = cases["early"]["CG-001"]
    before = api.get(f"/cases/{case_id}", "captain").get_json()
    refusals = [
        ("conclude", "handler_chengguan", {"decision": "罚款", "summary": "已缴纳"}),
        ("archive", "captain", {}),
    ]
    for action, who, body in refusals:
        resp = api.post(f"/cases/{case_id}/{action}", who, json=body)
        assert (resp.status_code, resp.get_json()["error"]) == (409, "case.transition_not_allowed")
    # filed, it cannot be filed or declined again, nor archived before its conclusion
    filed = api.post(f"/cases/{case_id}/file", "handler_chengguan", json={}).get_json()
    for action, who, body in [
        ("file", "handler_chengguan", {}),
        ("decline", "handler_chengguan", {"reason": "迟到的理由"}),
        ("archive", "captain", {}),
    ]:
        resp = api.post(f"/cases/{case_id}/{action}", who, json=body)
        assert (resp.status_code, resp.get_json()["error"]) == (409, "case.transition_not_allowed")
    after = api.get(f"/cases/{case_id}", "captain").get_json()
    assert after == filed
    assert [t["action"] for t in after["transitions"]] == ["case.divert", "case.file"]
    assert {k: v for k, v in after.items() if k not in CHANGED_BY_FILING} == {
        k: v for k, v in before.items() if k not in CHANGED_BY_FILING
    }


CHANGED_BY_FILING = {"state", "number", "filed_at", "filed_by_id", "updated_at", "transitions"}


def test_numbers_are_never_given_by_hand(api: Any, cases: dict[str, Any]) -> None:
    case_id = cases["early"]["CG-001"]
    resp = api.post(
        f"/cases/{case_id}/file",
        "handler_chengguan",
        json={"case_number": "京东华执〔2026〕第0001号"},
    )
    assert (resp.status_code, resp.get_json()["error"]) == (422, "request.invalid")
    assert "case_number" in resp.get_json()["errors"]["json"]
    assert api.get(f"/cases/{case_id}", "captain").get_json()["state"] == "awaiting_filing"
    # the audit's sequence: a number equal to the next one can no longer be taken by hand, so
    # every later filing of the street and year gets the next number
    numbers = [
        api.post(f"/cases/{c}/file", who, json={}).get_json()["number"]
        for c, who in (
            (case_id, "handler_chengguan"),
            (cases["early"]["SJ-001"], "handler_market"),
            (cases["late"]["CG-010"], "handler_chengguan"),
        )
    ]
    assert [n[-6:] for n in numbers] == ["第0001号", "第0002号", "第0003号"]


def test_filters_state_matter_from_to(api: Any, cases: dict[str, Any]) -> None:
    early, late = cases["early"], cases["late"]
    every = {*early.values(), *late.values()}
    assert _ids(api) == every
    assert _ids(api, state="awaiting_filing") == every
    assert _ids(api, state="filed") == set()
    api.post(f"/cases/{early['SJ-001']}/file", "handler_market", json={})
    api.post(f"/cases/{late['CG-010']}/decline", "handler_chengguan", json={"reason": "不属实"})
    assert _ids(api, state="filed") == {early["SJ-001"]}
    assert _ids(api, state="declined") == {late["CG-010"]}
    assert _ids(api, state="awaiting_filing") == {early["CG-001"]}

    assert _ids(api, matter="CG-001") == {early["CG-001"]}
    assert _ids(api, matter="CG-010") == {late["CG-010"]}
    assert _ids(api, matter="XX-999") == set()

    # from is inclusive, to exclusive, both on when the problem was found (occurred_at)
    assert _ids(api, **{"from": "2026-11-15T00:00:00Z"}) == {late["CG-010"]}
    assert _ids(api, to="2026-11-15T00:00:00Z") == set(early.values())
    assert _ids(api, **{"from": "2026-11-10T02:00:00Z", "to": "2026-11-20T02:00:00Z"}) == set(
        early.values()
    )
    assert _ids(api, **{"from": "2026-11-10T10:00:00+08:00"}) == every  # the same instant
    combined = {"state": "filed", "matter": "SJ-001", "to": "2026-11-15T00:00:00Z"}
    assert _ids(api, **combined) == {early["SJ-001"]}
    assert _ids(api, **{**combined, "from": "2026-11-15T00:00:00Z"}) == set()

    for bad in ({"state": "lost"}, {"from": "2026-11-15"}, {"to": "yesterday"}):
        resp = api.get("/cases", "captain", query_string=bad)
        assert (resp.status_code, resp.get_json()["error"]) == (422, "request.invalid"), bad
