"""Property-based, stateful: several devices and the server, random offline periods, concurrent
edits of the same inspections, responses lost after commit, duplicated and reordered
deliveries, device restarts. Invariants: every mutation applied exactly once; nothing lost
(every value either in the record or kept as a conflict); every device equals the server at
the end."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from fieldsync.sync.hlc import HLC, tick
from fieldsync.sync.models import MutationRecord

OFFICERS = ["cg_wang", "cg_liu", "police_li"]
TEXTS = st.text(alphabet="东华门街道占道经营abc ", min_size=1, max_size=12)
EVIDENCE = st.sampled_from([f"{i:064x}" for i in range(1, 6)])


class SimDevice:
    """What a phone keeps: an outbox numbered by device_seq, an acknowledged seq, a replica and
    a cursor. A restart loses nothing that a phone persists (all of the above)."""

    def __init__(self, api: Any, username: str, clock: list[int]) -> None:
        self.api = api
        self.device_id = str(uuid.uuid4())
        self.token = api.login(username, device_id=self.device_id)
        self.clock = clock
        self.hlc: HLC | None = None
        self.outbox: list[dict[str, Any]] = []
        self.acked = 0
        self.next_seq = 1
        self.replica: dict[str, dict[str, Any]] = {}
        self.cursor: str | None = None
        self.created = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def mutate(self, entity_id: str, set_: dict[str, Any], add: dict[str, Any]) -> None:
        self.clock[0] += 7
        self.hlc = tick(self.hlc, now_ms=self.clock[0], node=self.device_id[:8])
        base = self.replica.get(entity_id, {}).get("version", 0)
        self.outbox.append(
            {
                "device_seq": self.next_seq,
                "mutation_id": str(uuid.uuid4()),
                "type": "inspection.upsert",
                "entity_id": entity_id,
                "base_version": base,
                "device_time": "2026-11-25T08:00:00Z",
                "hlc": str(self.hlc),
                "set": set_,
                "add": add,
            }
        )
        self.next_seq += 1
        self.created += 1

    def _send(self, mutations: list[dict[str, Any]]) -> Any:
        return self.api.client.post(
            "/api/v1/sync/push",
            headers=self.headers(),
            json={"protocol": 1, "device_id": self.device_id, "mutations": mutations},
        )

    def push(self, *, lose_response: bool, duplicate: bool, reorder: bool) -> list[tuple]:
        pending = [m for m in self.outbox if m["device_seq"] > self.acked]
        if not pending:
            return []
        if reorder and len(pending) > 1:
            # the later mutations arrive first: refused whole, nothing applied, unless the
            # server already has them (an earlier response was lost) and answers as replays
            resp = self._send(pending[1:])
            body = resp.get_json()
            if resp.status_code == 409:
                assert body["error"] == "sync.sequence_gap"
                assert self.acked + 1 <= body["expected_device_seq"] <= pending[1]["device_seq"] - 1
            else:
                assert resp.status_code == 200, body
        resp = self._send(pending)
        assert resp.status_code == 200, resp.get_json()
        if duplicate:
            again = self._send(pending)
            assert again.get_json()["results"] == resp.get_json()["results"]
        if lose_response:
            return []  # committed on the server; the phone never heard back
        body = resp.get_json()
        self.acked = body["last_device_seq"]
        self.outbox = [m for m in self.outbox if m["device_seq"] > self.acked]
        return list(zip(pending, body["results"], strict=True))

    def pull(self, *, lose_response: bool = False) -> None:
        cursor = self.cursor
        while True:
            q: dict[str, Any] = {"limit": 50}
            if cursor:
                q["cursor"] = cursor
            resp = self.api.client.get("/api/v1/sync/pull", headers=self.headers(), query_string=q)
            assert resp.status_code == 200, resp.get_json()
            body = resp.get_json()
            if lose_response:
                return
            for change in body["changes"]:
                if change["entity"] != "inspection":
                    continue
                if change["op"] == "delete":
                    self.replica.pop(change["id"], None)
                else:
                    self.replica[change["id"]] = {
                        "version": change["version"],
                        "data": change["data"],
                    }
            cursor = self.cursor = body["cursor"]
            if not body["has_more"]:
                return


class SyncMachine(RuleBasedStateMachine):
    api: Any = None
    app: Any = None

    @initialize()
    def setup(self) -> None:
        self.clock = [1_700_000_000_000]
        self.devices = [SimDevice(self.api, u, self.clock) for u in OFFICERS]
        self.ids: list[str] = []

    @precondition(lambda self: len(self.ids) < 4)  # few records, so that edits collide
    @rule(d=st.integers(0, 2), text=TEXTS)
    def create(self, d: int, text: str) -> None:
        entity_id = str(uuid.uuid4())
        self.ids.append(entity_id)
        self.devices[d].mutate(entity_id, {"matter_code": "CG-001", "description": text}, {})

    @precondition(lambda self: self.ids)
    @rule(
        d=st.integers(0, 2),
        i=st.integers(0, 50),
        text=TEXTS,
        field=st.sampled_from(["description", "address"]),
        evidence=EVIDENCE,
    )
    def edit(self, d: int, i: int, text: str, field: str, evidence: str) -> None:
        device = self.devices[d]
        known = [
            x
            for x in self.ids
            if x in device.replica or any(m["entity_id"] == x for m in device.outbox)
        ]
        if not known:
            return
        device.mutate(known[i % len(known)], {field: text}, {"evidence": [evidence]})

    @rule(d=st.integers(0, 2), lose=st.booleans(), dup=st.booleans(), reorder=st.booleans())
    def sync(self, d: int, lose: bool, dup: bool, reorder: bool) -> None:
        device = self.devices[d]
        for mutation, result in device.push(lose_response=lose, duplicate=dup, reorder=reorder):
            self.check_result(device, mutation, result)
        device.pull(lose_response=lose and dup)

    @rule()
    def everyone_syncs(self) -> None:
        # back at the team: every phone syncs, so they all hold the same records and their
        # next offline edits of the same inspection are concurrent
        for device in self.devices:
            for mutation, result in device.push(
                lose_response=False, duplicate=False, reorder=False
            ):
                self.check_result(device, mutation, result)
            device.pull()

    @rule(d=st.integers(0, 2))
    def restart(self, d: int) -> None:
        # a phone killed mid-sync keeps its store: nothing in memory is lost that matters,
        # except an answer it had not yet written down
        device = self.devices[d]
        device.pull(lose_response=True)

    def check_result(
        self, device: SimDevice, mutation: dict[str, Any], result: dict[str, Any]
    ) -> None:
        assert result["device_seq"] == mutation["device_seq"]
        assert result["status"] in ("applied", "merged", "conflict"), result
        data = result["data"]
        lost: dict[str, Any] = {}
        if result["status"] == "conflict":
            resp = self.api.client.get(
                f"/api/v1/conflicts/{result['conflict_id']}", headers=device.headers()
            )
            assert resp.status_code == 200
            lost = resp.get_json()["values"]
        for field, value in mutation["set"].items():
            if data[field] != value:
                # nothing lost: the device's value is kept as a conflict
                assert lost.get(field, {}).get("lost") == value, (field, value, data, lost)
        for item in mutation["add"].get("evidence", []):
            assert item in data["evidence"]  # sets only grow
        for entry in lost.values():
            # and a server value that lost is kept too
            assert entry["lost_side"] in ("device", "server")

    @invariant()
    def exactly_once(self) -> None:
        if not getattr(self, "devices", None):
            return
        with self.app.extensions["fieldsync"].sessionmaker() as s:
            for device in self.devices:
                n = s.scalar(
                    select(func.count())
                    .select_from(MutationRecord)
                    .where(MutationRecord.device_id == uuid.UUID(device.device_id))
                )
                # the server applied every acknowledged mutation once, and no more than sent
                assert device.acked <= n <= device.next_seq - 1

    def teardown(self) -> None:
        if not getattr(self, "devices", None):
            return
        for _ in range(2):
            for device in self.devices:
                while device.outbox:
                    device.push(lose_response=False, duplicate=False, reorder=False)
                device.pull()
        with self.app.extensions["fieldsync"].sessionmaker() as s:
            for device in self.devices:
                n = s.scalar(
                    select(func.count())
                    .select_from(MutationRecord)
                    .where(MutationRecord.device_id == uuid.UUID(device.device_id))
                )
                assert n == device.created  # each mutation applied exactly once
        server = self.devices[0].replica
        for device in self.devices[1:]:
            assert device.replica == server
        # and the replicas are the server's state
        fresh = SimDevice(self.api, "captain", self.clock)
        fresh.pull()
        mine = {k: v for k, v in fresh.replica.items() if k in self.ids}
        assert {k: v for k, v in server.items() if k in self.ids} == mine
        assert set(mine) == set(self.ids)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_sync_state_machine(api: Any, app: Any, demo: Any) -> None:
    SyncMachine.api = api
    SyncMachine.app = app
    machine = SyncMachine.TestCase
    machine.settings = settings(
        max_examples=12,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    machine().runTest()
