"""Issue 4 end to end: the rule on sync, flags and review, diversion on submit, the case
lifecycle to archive, and archive immutability through the API, sync, the ORM and SQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from field_phone import Device, new_id, pid  # type: ignore[import-not-found]
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fieldsync.demo import demo_uuid
from fieldsync.errors import DomainError

BEIJING = timezone(timedelta(hours=8))


SEIZURE_DETAILS = {"items": [{"item": "三轮车", "quantity": 1, "unit": "辆"}], "receipt_no": "Z-7"}


def test_lone_officer_seizure_arrives_flagged_and_kept(api: Any, demo: Any) -> None:
    phone = Device(api, "cg_wang")
    iid, finding, seizure = new_id(), new_id(), new_id()
    result = phone.push_one(
        type="inspection.upsert",
        entity_id=iid,
        base_version=0,
        set={
            "matter_code": "CG-001",
            "occurred_at": "2026-11-20T02:00:00Z",
            "present": [pid("cg_wang")],
            "claimed_tier": "inspection",
            "findings": [{"id": finding, "matter_code": "CG-001", "description": "占道经营"}],
            "measures": [
                {
                    "id": seizure,
                    "type": "seizure",
                    "finding_id": finding,
                    "details": SEIZURE_DETAILS,
                }
            ],
        },
    )
    assert result["status"] == "applied", result
    data = result["data"]
    assert data["tier"] == "investigation"
    assert [m["id"] for m in data["measures"]] == [seizure]  # kept
    codes = [f["code"] for f in data["flags"]]
    assert codes == ["inspection.measure_not_allowed", "inspection.tier_claim_mismatch"]
    assert data["flags"][0]["params"]["measure_id"] == seizure
    assert data["review_state"] == "awaiting_captain"

    queue = api.get("/review-queue", "captain").get_json()
    assert [i["id"] for i in queue] == [iid]
    assert api.get("/review-queue", "reviewer_liang").status_code == 200
    refused = api.post(
        f"/inspections/{iid}/review", "reviewer_liang", json={"decision": "overrule"}
    )
    assert (refused.status_code, refused.get_json()["error"]) == (
        403,
        "inspection.review_captain_only",
    )
    resp = api.post(
        f"/inspections/{iid}/review",
        "captain",
        json={"decision": "acknowledge", "note": "摊主当场拒不配合，暂扣属实"},
    )
    assert resp.status_code == 200, resp.get_json()
    again = api.post(f"/inspections/{iid}/review", "captain", json={"decision": "overrule"})
    assert again.get_json()["error"] == "inspection.review_not_pending"

    seen = phone.pulled(iid)
    assert seen["review_state"] == "acknowledged"
    assert seen["review"]["decision"] == "acknowledge"
    assert seen["review"]["by"] == pid("captain")
    assert [m["id"] for m in seen["measures"]] == [seizure]
    detail = api.get(f"/inspections/{iid}", "reviewer_liang").get_json()
    assert [e["action"] for e in detail["events"]] == [
        "inspection.upsert",
        "inspection.review.acknowledge",
    ]


def test_bad_input_is_rejected_with_its_code_and_changes_nothing(api: Any, demo: Any) -> None:
    phone = Device(api, "cg_wang")
    iid, finding = new_id(), new_id()
    base = {"matter_code": "CG-001", "findings": [{"id": finding, "matter_code": "CG-001"}]}
    assert phone.push_one(type="inspection.upsert", entity_id=iid, set=base)["version"] == 1

    def measure(kind: str, details: dict[str, Any]) -> dict[str, Any]:
        return {"id": new_id(), "type": kind, "finding_id": finding, "details": details}

    cases = [
        ({"set": {"matter_code": "XX-999"}}, "org.unknown_matter"),
        ({"add": {"present": [new_id()]}}, "inspection.unknown_person"),
        ({"add": {"present": [pid("js_cg_xu")]}}, "inspection.unknown_person"),  # other street
        ({"add": {"measures": [measure("confiscation", {})]}}, "measure.unknown_type"),
        (
            {"add": {"measures": [measure("seizure", {"items": [], "receipt_no": "1"})]}},
            "measure.seizure_items_required",
        ),
        (
            {
                "add": {
                    "measures": [
                        measure("onsite_penalty", {"amount": "50", "party_kind": "individual"})
                    ]
                }
            },
            "measure.penalty_legal_basis_required",
        ),
    ]
    for mutation, code in cases:
        r = phone.push_one(type="inspection.upsert", entity_id=iid, base_version=1, **mutation)
        assert (r["status"], r.get("code")) == ("rejected", code), r
    detail = api.get(f"/inspections/{iid}", "captain").get_json()
    assert detail["version"] == 1 and detail["measures"] == [] and detail["present"] == []

    rule = api.post(
        "/rules/second-inspector",
        "cg_wang",
        json={"matter_code": "XX-999", "present": [], "at": "2026-11-20T02:00:00Z"},
    )
    assert (rule.status_code, rule.get_json()["error"]) == (422, "org.unknown_matter")
    rule = api.post(
        "/rules/second-inspector",
        "cg_wang",
        json={"matter_code": "CG-001", "present": [new_id()], "at": "2026-11-20T02:00:00Z"},
    )
    assert (rule.status_code, rule.get_json()["error"]) == (422, "inspection.unknown_person")


def test_rule_endpoint_and_vectors(api: Any, demo: Any) -> None:
    resp = api.post(
        "/rules/second-inspector",
        "grid_duofu1",
        json={
            "matter_code": "CG-001",
            "present": [pid("cg_liu"), pid("police_li")],
            "at": "2026-11-20T02:00:00Z",
        },
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["tier"] == "inspection"
    assert body["second_inspector_id"] == pid("police_li")
    assert "seizure" in body["allowed_measures"] and body["reasons"]
    vectors = api.get("/rules/vectors", "cg_wang").get_json()
    assert vectors["format"] == "fieldsync/second-inspector-vectors"
    assert len(vectors["cases"]) >= 40


def test_three_findings_diverted_filed_concluded_archived_then_immutable(
    api: Any, demo: Any, app: Any
) -> None:
    phone = Device(api, "cg_wang")
    iid = new_id()
    f_cg, f_market, f_env = new_id(), new_id(), new_id()
    evidence_hash = "ab" * 32
    # recorded offline: three problems at one shop front, pushed in one go when back online
    resp = phone.push(
        {
            "type": "inspection.upsert",
            "entity_id": iid,
            "base_version": 0,
            "set": {
                "occurred_at": "2026-11-20T02:00:00Z",
                "present": [pid("cg_wang"), pid("cg_liu"), pid("market_zhu"), pid("market_hu")],
                "findings": [
                    {"id": f_cg, "matter_code": "CG-010", "description": "店外经营"},
                    {"id": f_market, "matter_code": "SJ-001", "description": "无照经营"},
                    {"id": f_env, "matter_code": "HJ-001", "description": "油烟超标"},
                ],
                "evidence": [evidence_hash],
            },
        },
        {"type": "inspection.submit", "entity_id": iid, "base_version": 1},
    )
    assert resp.status_code == 200, resp.get_json()
    submit = resp.get_json()["results"][1]
    assert submit["status"] == "applied", submit
    data = submit["data"]
    assert data["status"] == "diverted"
    by_finding = {c["finding_id"]: c for c in data["cases"]}
    assert {k: (c["kind"], c["department_code"], c["state"]) for k, c in by_finding.items()} == {
        f_cg: ("case", "chengguan", "awaiting_filing"),
        f_market: ("case", "market", "awaiting_filing"),
        f_env: ("referral", "environment", "referred"),
    }
    assert [d["tier"] for d in data["decisions"]] == ["enforcement", "enforcement", "referral"]

    # a repeated submit (new mutation) and a replayed push divert nothing more
    phone.push_one(type="inspection.submit", entity_id=iid, base_version=2)
    replay = api.client.post(
        "/api/v1/sync/push",
        headers=phone.headers(),
        json={
            "protocol": 1,
            "device_id": phone.device_id,
            "mutations": [{"device_seq": 2, "type": "inspection.submit", "entity_id": iid}],
        },
    )
    assert replay.get_json()["results"][0] == submit
    listed = api.get("/cases", "captain", query_string={"inspection_id": iid})
    assert len(listed.get_json()) == 3
    assert '"total": 3' in listed.headers["X-Pagination"]

    cg_case, market_case = by_finding[f_cg]["id"], by_finding[f_market]["id"]
    referral = by_finding[f_env]["id"]
    detail = api.get(f"/cases/{cg_case}", "handler_chengguan").get_json()
    assert detail["assignee_ids"] == [pid("handler_chengguan")]
    # a case handler sees only their own unit's cases
    mine = api.get("/cases", "handler_market").get_json()
    assert [c["id"] for c in mine] == [market_case]
    assert api.get(f"/cases/{cg_case}", "handler_market").status_code == 404
    officer = api.get("/cases", "captain", query_string={"officer": pid("market_hu")}).get_json()
    assert len(officer) == 3
    assert (
        api.get("/cases", "captain", query_string={"department": "market"}).get_json()[0]["id"]
        == market_case
    )

    def act(case_id: str, action: str, who: str, **body: Any) -> Any:
        return api.post(f"/cases/{case_id}/{action}", who, json=body)

    # out of order, wrong person, referral: each refused with its code, nothing changes
    out_of_order = act(cg_case, "conclude", "handler_chengguan", decision="罚款", summary="...")
    assert (out_of_order.status_code, out_of_order.get_json()["error"]) == (
        409,
        "case.transition_not_allowed",
    )
    assert act(cg_case, "file", "captain").get_json()["error"] == "case.handler_only"
    ref = act(referral, "file", "captain")
    assert ref.get_json()["error"] == "case.referral_not_handled_here"

    filed = act(cg_case, "file", "handler_chengguan")
    assert filed.status_code == 200, filed.get_json()
    year = datetime.now(BEIJING).year
    assert filed.get_json()["number"] == f"京东华执〔{year}〕第0001号"
    filed2 = act(market_case, "file", "handler_market").get_json()
    assert filed2["number"] == f"京东华执〔{year}〕第0002号"  # one sequence per street and year
    for case_id, who in ((cg_case, "handler_chengguan"), (market_case, "handler_market")):
        done = act(case_id, "conclude", who, decision="责令改正并罚款200元", summary="已整改")
        assert done.status_code == 200, done.get_json()

    handler_archive = act(cg_case, "archive", "handler_chengguan")
    assert (handler_archive.status_code, handler_archive.get_json()["error"]) == (
        403,
        "case.archive_captain_only",
    )
    archived = act(cg_case, "archive", "captain")
    assert archived.status_code == 200, archived.get_json()
    transitions = [t["action"] for t in archived.get_json()["transitions"]]
    assert transitions == ["case.divert", "case.file", "case.conclude", "case.archive"]
    # the sibling case goes on; the sealed inspection mirrors its state
    assert act(market_case, "archive", "captain").status_code == 200

    # the device sees tier, cases with numbers and states
    seen = phone.pulled(iid)
    assert seen["tier"] == "enforcement"
    assert {c["id"]: (c["number"], c["state"]) for c in seen["cases"]} == {
        cg_case: (f"京东华执〔{year}〕第0001号", "archived"),
        market_case: (f"京东华执〔{year}〕第0002号", "archived"),
        referral: (None, "referred"),
    }
    version = api.get(f"/inspections/{iid}", "captain").get_json()["version"]

    # after archive every change attempt fails: the API ...
    for action, body in (("file", {}), ("conclude", {"decision": "x", "summary": "y"})):
        again = act(cg_case, action, "handler_chengguan", **body)
        assert (again.status_code, again.get_json()["error"]) == (409, "case.archived")
    assert act(cg_case, "archive", "captain").get_json()["error"] == "case.archived"
    # ... sync ...
    rejected = phone.push_one(
        type="inspection.upsert", entity_id=iid, base_version=version, set={"description": "改"}
    )
    assert (rejected["status"], rejected["code"]) == ("rejected", "inspection.archived")
    # ... the ORM ...
    from fieldsync.cases.models import Case
    from fieldsync.evidence.models import Evidence
    from fieldsync.inspections.models import Inspection

    sessionmaker = app.extensions["fieldsync"].sessionmaker
    with sessionmaker() as s:
        s.get(Case, uuid.UUID(cg_case)).summary = "改写"
        with pytest.raises(DomainError) as error:
            s.flush()
        assert error.value.code == "case.archived"
    with sessionmaker() as s:
        s.get(Inspection, uuid.UUID(iid)).description = "改写"
        with pytest.raises(DomainError) as error:
            s.flush()
        assert error.value.code == "inspection.archived"
    with sessionmaker() as s, s.begin():
        s.add(
            Evidence(
                sha256=evidence_hash,
                street_id=demo_uuid("street", "110101001"),
                size=1,
                content_type="image/jpeg",
                uploaded_by_id=uuid.UUID(pid("cg_wang")),
                received_at=datetime.now(UTC),
            )
        )
    with sessionmaker() as s:
        s.get(Evidence, (demo_uuid("street", "110101001"), evidence_hash)).review_state = "rejected"
        with pytest.raises(DomainError) as error:
            s.flush()
        assert error.value.code == "evidence.archived"
    # ... and SQL that bypasses the ORM
    engine = app.extensions["fieldsync"].engine
    for sql in (
        "UPDATE cases SET summary = 'x' WHERE id = :id",
        "DELETE FROM cases WHERE id = :id",
    ):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(sql), {"id": _db_id(engine, cg_case)})
    for sql in (
        "UPDATE inspections SET description = 'x' WHERE id = :id",
        "DELETE FROM inspections WHERE id = :id",
    ):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(sql), {"id": _db_id(engine, iid)})
    after = api.get(f"/inspections/{iid}", "captain").get_json()
    assert after["version"] == version and after["description"] is None
    assert api.get(f"/cases/{cg_case}", "captain").get_json()["summary"] == "已整改"


def _db_id(engine: Any, value: str) -> Any:
    # SQLAlchemy's Uuid stores 32 hex digits on SQLite, a native uuid on PostgreSQL
    return uuid.UUID(value).hex if engine.dialect.name == "sqlite" else uuid.UUID(value)
