"""The sync protocol end to end through the test client: first pull, push, conflict, replay."""

from __future__ import annotations

import uuid
from typing import Any

from field_phone import Device, hlc_at  # type: ignore[import-not-found]


def test_first_pull_has_reference_data(api: Any, demo: Any) -> None:
    phone = Device(api, "cg_wang")
    changes = phone.pull_all()
    kinds = {c["entity"] for c in changes}
    assert {"department", "matter", "person", "grid"} <= kinds
    assert len([c for c in changes if c["entity"] == "matter"]) >= 30
    streets = {c["data"]["street_id"] for c in changes if c["entity"] == "person"}
    assert len(streets) == 1  # only its own street's roster
    assert phone.pull_all() == []


def test_push_conflict_and_replay(api: Any, demo: Any) -> None:
    a = Device(api, "cg_wang")
    b = Device(api, "cg_liu")
    iid = str(uuid.uuid4())
    resp = a.push(
        {
            "type": "inspection.upsert",
            "entity_id": iid,
            "base_version": 0,
            "hlc": hlc_at(1000, "a"),
            "set": {"matter_code": "CG-001", "description": "first"},
        }
    )
    assert resp.status_code == 200, resp.get_json()
    r = resp.get_json()["results"][0]
    assert r["status"] == "applied" and r["version"] == 1
    b.pull_all()
    ra = a.push(
        {
            "type": "inspection.upsert",
            "entity_id": iid,
            "base_version": 1,
            "hlc": hlc_at(2000, "a"),
            "set": {"description": "from a"},
        }
    ).get_json()
    assert ra["results"][0]["status"] == "applied"
    rb = b.push(
        {
            "type": "inspection.upsert",
            "entity_id": iid,
            "base_version": 1,
            "hlc": hlc_at(1500, "b"),
            "set": {"description": "from b", "address": "东华门大街"},
        }
    )
    res = rb.get_json()["results"][0]
    assert res["status"] == "conflict", res
    assert res["data"]["description"] == "from a"  # later HLC wins
    assert res["data"]["address"] == "东华门大街"
    conflict = api.client.get(f"/api/v1/conflicts/{res['conflict_id']}", headers=b.headers())
    assert conflict.get_json()["values"]["description"]["lost"] == "from b"
    # replay of b's push: same result, nothing changes
    again = api.client.post(
        "/api/v1/sync/push",
        headers=b.headers(),
        json={
            "protocol": 1,
            "device_id": b.device_id,
            "mutations": [{"device_seq": 1, "type": "inspection.upsert", "entity_id": iid}],
        },
    )
    assert again.get_json()["results"][0] == {**res}
