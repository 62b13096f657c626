"""A pull sends each record's stored wire form (`sync_payloads`), written when its change is
sealed into the feed. After every kind of change it is what the entity's `serialize` makes of
the record as the database now holds it; push results and pulls agree on it; and a pull's body
is the JSON the earlier pull (load every record of the page, serialize it) sent."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sync_phone import Phone  # type: ignore[import-not-found]

from fieldsync.api.sync import PullSchema
from fieldsync.demo import demo_uuid
from fieldsync.inspections.models import Report
from fieldsync.sync import registry
from fieldsync.sync.models import FeedPayload


def assert_payloads_current(app: Any) -> dict[tuple[str, uuid.UUID], Any]:
    """Every live record of every synced entity has a payload, and it is the record's
    serialisation, read now in a session of its own; deleted records have none. Returns the
    payloads, parsed."""
    with app.extensions["fieldsync"].sessionmaker() as s:
        stored = {
            (p.entity, p.entity_id): (p.version, json.loads(p.data))
            for p in s.scalars(select(FeedPayload))
        }
        expected = {}
        for name, spec in registry.all_entities().items():
            for record in s.scalars(select(spec.model)):
                if getattr(record, "deleted_at", None) is None:
                    expected[(name, record.id)] = (record.version, spec.serialize(record))
    assert stored == expected
    return {key: data for key, (_, data) in stored.items()}


def _pulled(phone: Phone) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in phone.pull_all()}


def test_reference_data_and_pushed_records(app: Any, api: Any, demo: Any) -> None:
    assert_payloads_current(app)  # the demo's departments, matters, roster, grids
    officer, grid_worker = Phone(api, "cg_wang"), Phone(api, "grid_duofu1")
    iid = officer.create(address="东城区东华门大街1号")
    [edited] = officer.push(
        officer.mutation(entity_id=iid, base_version=1, set={"description": "补充：已整改"})
    )
    assert edited["status"] == "applied", edited
    rid = str(uuid.uuid4())
    [report] = grid_worker.push(
        grid_worker.mutation(type="report.upsert", entity_id=rid, set={"description": "占道"})
    )
    assert report["status"] == "applied", report
    payloads = assert_payloads_current(app)
    assert payloads[("inspection", uuid.UUID(iid))]["description"] == "补充：已整改"
    assert payloads[("report", uuid.UUID(rid))]["description"] == "占道"


def test_server_side_changes_a_rule_flag_and_a_review(app: Any, api: Any, demo: Any) -> None:
    officer = Phone(api, "cg_wang")
    finding = str(uuid.uuid4())
    iid = officer.create(
        occurred_at="2026-11-20T02:00:00Z",
        present=[str(demo_uuid("person", "cg_wang"))],
        findings=[{"id": finding, "matter_code": "CG-001"}],
        measures=[
            {
                "id": str(uuid.uuid4()),
                "type": "seizure",
                "finding_id": finding,
                "details": {
                    "items": [{"item": "三轮车", "quantity": 1, "unit": "辆"}],
                    "receipt_no": "Z-9",
                },
            }
        ],
    )
    key = ("inspection", uuid.UUID(iid))
    flagged = assert_payloads_current(app)[key]
    assert flagged["flags"] and flagged["review_state"] == "awaiting_captain"
    resp = api.post(f"/inspections/{iid}/review", "captain", json={"decision": "acknowledge"})
    assert resp.status_code == 200, resp.get_json()
    reviewed = assert_payloads_current(app)[key]
    assert reviewed["review_state"] == "acknowledged"
    assert _pulled(officer)[iid]["data"] == reviewed


def test_roster_changes(app: Any, api: Any, demo: Any) -> None:
    """A person's department (a foreign key: the loaded relationship is not refreshed by the
    ORM), a new certificate and a revoked one (rows of their own) reach their roster record."""
    colleague = Phone(api, "cg_wang")
    colleague.pull_all()
    liu = demo_uuid("person", "cg_liu")
    police = str(demo_uuid("department", "police"))
    resp = api.patch(f"/officers/{liu}", "admin", json={"department_id": police})
    assert resp.status_code == 200, resp.get_json()
    moved = assert_payloads_current(app)[("person", liu)]
    assert (moved["department_id"], moved["department_code"]) == (police, "police")
    resp = api.post(
        f"/officers/{liu}/certificates",
        "admin",
        json={
            "number": "京公执-PAYLOAD-1",
            "valid_from": "2026-01-01T00:00:00Z",
            "valid_to": "2030-01-01T00:00:00Z",
        },
    )
    assert resp.status_code == 201, resp.get_json()
    certificate = resp.get_json()["id"]
    resp = api.post(f"/certificates/{certificate}/revoke", "admin", json={"reason": "遗失"})
    assert resp.status_code == 200, resp.get_json()
    roster = assert_payloads_current(app)[("person", liu)]
    [revoked] = [c for c in roster["certificates"] if c["id"] == certificate]
    assert revoked["revoked_at"] is not None
    assert _pulled(colleague)[str(liu)]["data"] == roster


def test_a_deleted_record_has_no_payload_and_comes_as_a_tombstone(
    app: Any, api: Any, demo: Any
) -> None:
    officer, colleague = Phone(api, "cg_wang"), Phone(api, "cg_liu")
    iid = officer.create()
    assert _pulled(colleague)[iid]["op"] == "upsert"
    [deleted] = officer.push(
        officer.mutation(type="inspection.delete", entity_id=iid, base_version=1)
    )
    assert deleted["status"] == "applied", deleted
    assert ("inspection", uuid.UUID(iid)) not in assert_payloads_current(app)
    assert _pulled(colleague)[iid] == {
        "entity": "inspection",
        "id": iid,
        "version": 2,
        "op": "delete",
        "reason": "deleted",
    }


def test_a_record_leaving_a_scope(app: Any, api: Any, demo: Any) -> None:
    """A reassigned report leaves its first grid worker's scope and enters the second's: one
    payload, the same for the audience that still sees it and the one it joins."""
    first, second, officer = (
        Phone(api, "grid_duofu1"),
        Phone(api, "grid_duofu2"),
        Phone(api, "cg_wang"),
    )
    rid = str(uuid.uuid4())
    first.push(first.mutation(type="report.upsert", entity_id=rid, set={"description": "占道"}))
    for phone in (first, second, officer):
        phone.pull_all()
    with app.extensions["fieldsync"].sessionmaker() as s, s.begin():
        s.get(Report, uuid.UUID(rid)).assignee_id = demo_uuid("person", "grid_duofu2")

    data = assert_payloads_current(app)[("report", uuid.UUID(rid))]
    assert data["assignee_id"] == str(demo_uuid("person", "grid_duofu2"))
    gone = _pulled(first)[rid]
    assert (gone["op"], gone["reason"], "data" in gone) == ("delete", "out_of_scope", False)
    assert _pulled(second)[rid]["data"] == data
    assert _pulled(officer)[rid]["data"] == data


def test_push_results_and_pulls_agree(app: Any, api: Any, demo: Any) -> None:
    officer, colleague = Phone(api, "cg_wang"), Phone(api, "cg_liu")
    iid = str(uuid.uuid4())
    present = [str(demo_uuid("person", u)) for u in ("cg_wang", "cg_liu")]
    steps = [
        officer.mutation(entity_id=iid, set={"matter_code": "CG-001", "present": present}),
        officer.mutation(entity_id=iid, base_version=1, set={"description": "东华门大街"}),
        officer.mutation(type="inspection.submit", entity_id=iid, base_version=2),
    ]
    for step in steps:
        [result] = officer.push(step)
        assert result["status"] == "applied", result
        pulled = _pulled(colleague)[iid]
        assert (pulled["version"], pulled["data"]) == (result["version"], result["data"])
    assert pulled["data"]["status"] == "diverted"  # submitted, its finding diverted at once


def _old_pull_changes(app: Any, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the pull before stored payloads made of a page's changes: each upsert's version and
    data from the record loaded and serialized, each delete as the feed said."""
    out = []
    with app.extensions["fieldsync"].sessionmaker() as s:
        for change in changes:
            item = {"entity": change["entity"], "id": change["id"]}
            spec = registry.entity(change["entity"])
            assert spec is not None
            record = s.get(spec.model, uuid.UUID(change["id"]))
            if change["op"] == "upsert" and getattr(record, "deleted_at", None) is None:
                item.update(version=record.version, op="upsert", data=spec.serialize(record))
            else:
                item.update(version=change["version"], op="delete", reason=change["reason"])
            out.append(item)
    return out


def test_a_pull_body_is_the_json_the_old_pull_sent(app: Any, api: Any, demo: Any) -> None:
    officer, grid_worker = Phone(api, "cg_wang"), Phone(api, "grid_duofu1")
    kept, deleted = officer.create(address="东城区南池子大街"), officer.create()
    officer.push(officer.mutation(type="inspection.delete", entity_id=deleted, base_version=1))
    rid = str(uuid.uuid4())
    grid_worker.push(
        grid_worker.mutation(type="report.upsert", entity_id=rid, set={"description": "占道"})
    )
    for phone, cursor in ((Phone(api, "cg_liu"), None), (officer, None)):
        seen: dict[str, str] = {}
        while True:
            resp = phone.pull(limit=25, **({"cursor": cursor} if cursor else {}))
            assert resp.status_code == 200
            assert resp.mimetype == "application/json"
            body = json.loads(resp.data.decode("utf-8"))  # strict: valid JSON, valid UTF-8
            PullSchema().load(body)  # the documented shape, no field more
            assert body["protocol"] == 1 and isinstance(body["server_time"], str)
            assert body["changes"] == _old_pull_changes(app, body["changes"])
            seen.update((c["id"], c["op"]) for c in body["changes"])
            cursor = body["cursor"]
            if not body["has_more"]:
                break
        # reference data, the street's inspections and reports; the deleted one, if at all, as
        # a tombstone (pages after the first of a first sync carry them)
        assert {seen[kept], seen[rid], seen[str(demo_uuid("matter", "CG-001"))]} == {"upsert"}
        assert seen.get(deleted, "delete") == "delete"
