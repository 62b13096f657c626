"""An officer's phone for the enforcement tests: pushes in device_seq order, pulls to the end."""

from __future__ import annotations

import uuid
from typing import Any

from fieldsync.demo import demo_uuid
from fieldsync.sync.hlc import HLC


def hlc_at(ms: int, node: str) -> str:
    return str(HLC(ms, 0, node))


class Device:
    def __init__(self, api: Any, username: str) -> None:
        self.api = api
        self.username = username
        self.device_id = str(uuid.uuid4())
        self.token = api.login(username, device_id=self.device_id)
        self.seq = 0
        self.cursor: str | None = None
        self.clock = 1_000

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def push(self, *mutations: dict[str, Any]) -> Any:
        body = []
        for m in mutations:
            self.seq += 1
            self.clock += 1000
            body.append(
                {
                    "device_seq": self.seq,
                    "mutation_id": str(uuid.uuid4()),
                    "device_time": "2026-11-25T08:00:00Z",
                    "hlc": hlc_at(self.clock, self.username),
                    **m,
                }
            )
        return self.api.client.post(
            "/api/v1/sync/push",
            headers=self.headers(),
            json={"protocol": 1, "device_id": self.device_id, "mutations": body},
        )

    def push_one(self, **m: Any) -> dict[str, Any]:
        resp = self.push(m)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["results"][0]

    def pull_all(self) -> list[dict[str, Any]]:
        changes = []
        while True:
            q: dict[str, Any] = {"limit": 100}
            if self.cursor:
                q["cursor"] = self.cursor
            resp = self.api.client.get("/api/v1/sync/pull", headers=self.headers(), query_string=q)
            assert resp.status_code == 200, resp.get_json()
            body = resp.get_json()
            changes.extend(body["changes"])
            self.cursor = body["cursor"]
            if not body["has_more"]:
                return changes

    def pulled(self, entity_id: str) -> dict[str, Any]:
        found = [c for c in self.pull_all() if c["id"] == entity_id]
        assert found, f"{entity_id} not in the pull"
        return found[-1]["data"]


def pid(username: str) -> str:
    return str(demo_uuid("person", username))


def new_id() -> str:
    return str(uuid.uuid4())
