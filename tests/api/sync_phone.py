"""A phone for the sync API tests: signs in as a device, numbers its mutations, pulls pages."""

from __future__ import annotations

import uuid
from typing import Any

from fieldsync.sync.hlc import HLC


def hlc(ms: int, node: str = "t") -> str:
    return str(HLC(1_700_000_000_000 + ms, 0, node))


class Phone:
    def __init__(self, api: Any, username: str) -> None:
        self.api = api
        self.username = username
        self.device_id = str(uuid.uuid4())
        self.token = api.login(username, device_id=self.device_id)
        self.seq = 0
        self.cursor: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def mutation(self, **fields: Any) -> dict[str, Any]:
        """The next mutation of this phone: device_seq, ids and clocks filled in."""
        self.seq += 1
        return {
            "device_seq": self.seq,
            "mutation_id": str(uuid.uuid4()),
            "type": "inspection.upsert",
            "base_version": 0,
            "device_time": "2026-11-25T08:00:00Z",
            "hlc": hlc(self.seq, self.device_id[:8]),
            **fields,
        }

    def send(self, mutations: list[dict[str, Any]], **body: Any) -> Any:
        return self.api.client.post(
            "/api/v1/sync/push",
            headers=self.headers,
            json={"protocol": 1, "device_id": self.device_id, "mutations": mutations, **body},
        )

    def push(self, *mutations: dict[str, Any]) -> list[dict[str, Any]]:
        """Push, expecting 200; the results."""
        resp = self.send(list(mutations))
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["results"]

    def create(self, **set_: Any) -> str:
        """A new inspection of this phone's officer; its id."""
        entity_id = str(uuid.uuid4())
        values = {"matter_code": "CG-001", "description": "占道经营", **set_}
        [result] = self.push(self.mutation(entity_id=entity_id, set=values))
        assert result["status"] == "applied", result
        return entity_id

    def pull(self, *, headers: dict[str, str] | None = None, **query: Any) -> Any:
        return self.api.client.get(
            "/api/v1/sync/pull", headers={**self.headers, **(headers or {})}, query_string=query
        )

    def pull_all(self) -> list[dict[str, Any]]:
        """Pull from this phone's cursor until has_more is false; the changes."""
        changes: list[dict[str, Any]] = []
        while True:
            resp = self.pull(limit=200, **({"cursor": self.cursor} if self.cursor else {}))
            assert resp.status_code == 200, resp.get_json()
            body = resp.get_json()
            changes += body["changes"]
            self.cursor = body["cursor"]
            if not body["has_more"]:
                return changes

    def get(self, path: str, **kw: Any) -> Any:
        return self.api.client.get("/api/v1" + path, headers=self.headers, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.api.client.post("/api/v1" + path, headers=self.headers, **kw)
