"""The sync protocol end to end through the test client: first pull, push, conflict, replay."""

from __future__ import annotations

import uuid
from typing import Any

from fieldsync.sync.hlc import HLC


def _hlc(ms: int, node: str) -> str:
    return str(HLC(ms, 0, node))


class Device:
    def __init__(self, api: Any, username: str) -> None:
        self.api = api
        self.username = username
        self.device_id = str(uuid.uuid4())
        self.token = api.login(username, device_id=self.device_id)
        self.seq = 0
        self.cursor: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def push(self, *mutations: dict[str, Any]) -> Any:
        body = []
        for m in mutations:
            self.seq += 1
            body.append(
                {
                    "device_seq": self.seq,
                    "mutation_id": str(uuid.uuid4()),
                    "device_time": "2026-11-25T08:00:00Z",
                    **m,
                }
            )
        resp = self.api.client.post(
            "/api/v1/sync/push",
            headers=self.headers(),
            json={"protocol": 1, "device_id": self.device_id, "mutations": body},
        )
        return resp

    def pull_all(self) -> list[dict[str, Any]]:
        changes = []
        while True:
            q = {"limit": 100}
            if self.cursor:
                q["cursor"] = self.cursor
            resp = self.api.client.get("/api/v1/sync/pull", headers=self.headers(), query_string=q)
            assert resp.status_code == 200, resp.get_json()
            body = resp.get_json()
            changes.extend(body["changes"])
            self.cursor = body["cursor"]
            if not body["has_more"]:
                return changes


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
            "hlc": _hlc(1000, "a"),
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
            "hlc": _hlc(2000, "a"),
            "set": {"description": "from a"},
        }
    ).get_json()
    assert ra["results"][0]["status"] == "applied"
    rb = b.push(
        {
            "type": "inspection.upsert",
            "entity_id": iid,
            "base_version": 1,
            "hlc": _hlc(1500, "b"),
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
