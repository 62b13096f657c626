"""Property-based, stateful: several phones and the server, random offline periods, concurrent
edits of the same inspections, submits, deletes and bad mutations, responses lost after
commit, duplicated and reordered deliveries, phones killed and restarted from what they had
written down.

The test keeps its own model of the server (the record after each mutation the server applied,
as its response said) and checks every response against it:
- every mutation is applied exactly once; a replay answers exactly what the first delivery did;
- a rejection has the code the model predicts, changes nothing, and never stops the mutations
  after it; it is in the device's quarantine;
- nothing is lost, in either direction: a device value that did not make it into the record
  is kept as a conflict, and so is a server value the device's value replaced without the
  device having seen it;
- at the end every phone holds exactly the server's records.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from fieldsync.demo import demo_uuid
from fieldsync.sync.hlc import HLC, tick
from fieldsync.sync.models import MutationRecord

OFFICERS = ["cg_wang", "cg_liu", "police_li"]
TEXTS = st.text(alphabet="东华门街道占道经营abc ", min_size=1, max_size=12)
EVIDENCE = st.sampled_from([f"{i:064x}" for i in range(1, 6)])
DELETED = "deleted"
# bad mutations a buggy phone might send: how to make one, and the code it must get
BAD = {
    "sync.invalid_hlc": {"hlc": "not-a-clock", "set": {"description": "x"}},
    "sync.invalid_mutation": {"set": {"colour": "red"}},
    "sync.base_version_from_future": {"base_version": 10_000, "set": {"address": "x"}},
}
# these look at the record before the mutation's own content, so a deleted record says so first
CHECKED_AFTER_THE_RECORD = {"sync.invalid_mutation", "sync.base_version_from_future"}


class Phone:
    """A phone: `state` is what it has in memory, `disk` what its local database holds,
    written at the points a phone commits locally (a mutation recorded, a push response or a
    pull page taken in). A restart throws the memory away and starts again from the disk."""

    def __init__(self, api: Any, username: str, clock: list[int]) -> None:
        self.api = api
        self.username = username
        self.person_id = str(demo_uuid("person", username))
        self.device_id = str(uuid.uuid4())
        self.token = api.login(username, device_id=self.device_id)
        self.clock = clock
        self.state: dict[str, Any] = {
            "outbox": [],  # mutations not yet acknowledged, in device_seq order
            "next_seq": 1,
            "acked": 0,  # the last device_seq the server's answer said it applied
            "hlc": None,
            "replica": {},  # entity id -> {"version", "data"}: the server's record, as last seen
            "gone": {},  # entity id -> the version of the tombstone taken for it
            "known": [],  # the records this phone shows (its own new ones included)
            "cursor": None,
        }
        self.commit()

    def commit(self) -> None:
        self.disk = copy.deepcopy(self.state)

    def restart(self) -> None:
        self.state = copy.deepcopy(self.disk)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def mutate(self, kind: str, entity_id: str, **fields: Any) -> dict[str, Any]:
        """Record a mutation in memory (the caller commits it, or crashes first)."""
        s = self.state
        self.clock[0] += 7
        last = HLC.parse(s["hlc"]) if s["hlc"] else None
        s["hlc"] = str(tick(last, now_ms=self.clock[0], node=self.device_id[:8]))
        base = s["replica"].get(entity_id)
        mutation = {
            "device_seq": s["next_seq"],
            "mutation_id": str(uuid.uuid4()),
            "type": f"inspection.{'upsert' if kind in ('create', 'edit') else kind}",
            "entity_id": entity_id,
            "base_version": base["version"] if base else 0,
            "device_time": "2026-11-25T08:00:00Z",
            "hlc": s["hlc"],
            **fields,
        }
        s["next_seq"] += 1
        s["outbox"].append(mutation)
        if kind == "delete":
            s["known"].remove(entity_id)
        elif entity_id not in s["known"]:
            s["known"].append(entity_id)
        return mutation

    def pending(self) -> list[dict[str, Any]]:
        return [m for m in self.state["outbox"] if m["device_seq"] > self.state["acked"]]

    def take_push(self, pairs: list[tuple[dict[str, Any], dict[str, Any]]], last: int) -> None:
        s = self.state
        s["acked"] = max(s["acked"], last)
        s["outbox"] = [m for m in s["outbox"] if m["device_seq"] > s["acked"]]
        for mutation, result in pairs:
            if result["status"] == "rejected":
                continue
            if mutation["type"] == "inspection.delete":
                self._forget(mutation["entity_id"], result["version"])
            else:
                self._hold(result["id"], result["version"], result["data"], answer=True)

    def take_page(self, body: dict[str, Any]) -> None:
        for change in body["changes"]:
            if change["entity"] != "inspection":
                continue
            if change["op"] == "delete":
                self._forget(change["id"], change["version"])
            else:
                self._hold(change["id"], change["version"], change["data"])
        self.state["cursor"] = body["cursor"]

    def _hold(
        self, entity_id: str, version: int, data: dict[str, Any], *, answer: bool = False
    ) -> None:
        gone = self.state["gone"].get(entity_id)
        if answer and gone is not None and version <= gone:
            return  # a replayed answer from before the record went: it stays gone
        held = self.state["replica"].get(entity_id)
        if held is None or version >= held["version"]:  # a replayed answer may be older
            self.state["replica"][entity_id] = {"version": version, "data": data}
            self.state["gone"].pop(entity_id, None)
            if entity_id not in self.state["known"]:
                self.state["known"].append(entity_id)

    def _forget(self, entity_id: str, version: int) -> None:
        self.state["replica"].pop(entity_id, None)
        self.state["gone"][entity_id] = version
        if entity_id in self.state["known"]:
            self.state["known"].remove(entity_id)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class SyncMachine(RuleBasedStateMachine):
    api: Any = None
    app: Any = None

    @initialize()
    def setup(self) -> None:
        self.clock = [1_700_000_000_000]
        self.phones = [Phone(self.api, u, self.clock) for u in OFFICERS]
        self.ids: list[str] = []
        self.server: dict[str, Any] = {}  # entity id -> {"version", "data"} | DELETED
        self.meta: dict[str, dict[str, Any]] = {}  # mutation id -> what it was meant to do
        self.applied = {p.device_id: 0 for p in self.phones}  # the server's last device_seq
        self.first: dict[tuple[str, int], dict[str, Any]] = {}  # first answer per mutation
        self.rejected: dict[str, list[int]] = {p.device_id: [] for p in self.phones}
        self.written: set[tuple[str, str, str, str]] = set()  # (device, id, field, value)
        # a record every phone holds, so that edits collide from the first step on
        self.create(0, "占道经营")
        self.everyone_syncs()

    # --- what phones do offline -------------------------------------------------------------

    def _record(self, phone: Phone, kind: str, entity_id: str, **fields: Any) -> None:
        base = phone.state["replica"].get(entity_id)
        mutation = phone.mutate(kind, entity_id, **fields)
        self.meta[mutation["mutation_id"]] = {
            "kind": kind,
            "base_data": copy.deepcopy(base["data"]) if base else None,
        }
        for field, value in (fields.get("set") or {}).items():
            self.written.add((phone.device_id, entity_id, field, _key(value)))
        phone.commit()

    def _known(self, phone: Phone, i: int) -> str | None:
        # the database outlives an example: records of earlier ones are not this one's
        known = [k for k in phone.state["known"] if k in self.ids]
        return known[i % len(known)] if known else None

    @precondition(lambda self: len(self.ids) < 4)  # few records, so that edits collide
    @rule(d=st.integers(0, 2), text=TEXTS)
    def create(self, d: int, text: str) -> None:
        entity_id = str(uuid.uuid4())
        self.ids.append(entity_id)
        self._record(
            self.phones[d], "create", entity_id, set={"matter_code": "CG-001", "description": text}
        )

    @rule(
        d=st.integers(0, 2),
        i=st.integers(0, 50),
        text=TEXTS,
        field=st.sampled_from(["description", "address"]),
        evidence=EVIDENCE,
    )
    def edit(self, d: int, i: int, text: str, field: str, evidence: str) -> None:
        phone = self.phones[d]
        entity_id = self._known(phone, i)
        if entity_id is not None:
            self._record(phone, "edit", entity_id, set={field: text}, add={"evidence": [evidence]})

    @rule(
        d=st.integers(0, 2),
        other=st.integers(1, 2),
        i=st.integers(0, 50),
        field=st.sampled_from(["description", "address"]),
        texts=st.lists(TEXTS, min_size=2, max_size=2, unique=True),
        earlier_first=st.booleans(),
    )
    def concurrent_edits(
        self, d: int, other: int, i: int, field: str, texts: list[str], earlier_first: bool
    ) -> None:
        """Two phones, just synced, edit the same field of one record offline, then sync one
        after the other: the later clock wins whichever syncs first, and the other value is
        kept as a conflict (the device's, or the one already on the server)."""
        first, second = self.phones[d], self.phones[(d + other) % 3]
        for phone in (first, second):
            self.pull(phone)
        shared = [k for k in first.state["known"] if k in second.state["known"] and k in self.ids]
        if not shared:
            return
        entity_id = shared[i % len(shared)]
        self._record(first, "edit", entity_id, set={field: texts[0]})
        self._record(second, "edit", entity_id, set={field: texts[1]})  # the later clock
        for phone in (first, second) if earlier_first else (second, first):
            self.push(phone, lose=False, duplicate=False, reorder=False)

    @rule(d=st.integers(0, 2), i=st.integers(0, 50))
    def submit(self, d: int, i: int) -> None:
        phone = self.phones[d]
        entity_id = self._known(phone, i)
        if entity_id is not None:
            self._record(phone, "submit", entity_id)

    @precondition(lambda self: sum(v == DELETED for v in self.server.values()) < 2)
    @rule(d=st.integers(0, 2), i=st.integers(0, 50))
    def delete(self, d: int, i: int) -> None:
        phone = self.phones[d]
        entity_id = self._known(phone, i)
        if entity_id is not None:
            self._record(phone, "delete", entity_id)

    @rule(d=st.integers(0, 2), i=st.integers(0, 50), code=st.sampled_from(sorted(BAD)))
    def bad(self, d: int, i: int, code: str) -> None:
        phone = self.phones[d]
        entity_id = self._known(phone, i)
        if entity_id is not None:
            base = phone.state["replica"].get(entity_id)
            mutation = phone.mutate("edit", entity_id, **copy.deepcopy(BAD[code]))
            self.meta[mutation["mutation_id"]] = {
                "kind": f"bad:{code}",
                "base_data": copy.deepcopy(base["data"]) if base else None,
            }
            phone.commit()

    # --- syncing, failures and restarts ------------------------------------------------------

    def _send(self, phone: Phone, mutations: list[dict[str, Any]]) -> Any:
        resp = self.api.client.post(
            "/api/v1/sync/push",
            headers=phone.headers,
            json={"protocol": 1, "device_id": phone.device_id, "mutations": mutations},
        )
        body = resp.get_json()
        if resp.status_code == 409:
            assert body["error"] == "sync.sequence_gap"
            assert body["expected_device_seq"] == self.applied[phone.device_id] + 1
            return None
        assert resp.status_code == 200, body
        assert body["last_device_seq"] >= mutations[-1]["device_seq"]
        for mutation, result in zip(mutations, body["results"], strict=True):
            self._observe(phone, mutation, result)
        self.applied[phone.device_id] = body["last_device_seq"]
        return body

    def push(self, phone: Phone, *, lose: bool, duplicate: bool, reorder: bool) -> None:
        pending = phone.pending()
        if not pending:
            return
        if reorder and len(pending) > 1:
            # the later mutations arrive first: refused whole unless the server already has
            # everything before them (an earlier response was lost)
            self._send(phone, pending[1:])
        body = self._send(phone, pending)
        assert body is not None
        if duplicate:
            again = self._send(phone, pending)
            assert again is not None and again["results"] == body["results"]
        if lose:
            return  # committed on the server; the phone never heard back
        phone.take_push(list(zip(pending, body["results"], strict=True)), body["last_device_seq"])
        phone.commit()

    def pull(self, phone: Phone, *, crash_after: int | None = None) -> None:
        pages = 0
        while True:
            query: dict[str, Any] = {"limit": 50}
            if phone.state["cursor"]:
                query["cursor"] = phone.state["cursor"]
            resp = self.api.client.get(
                "/api/v1/sync/pull", headers=phone.headers, query_string=query
            )
            assert resp.status_code == 200, resp.get_json()
            body = resp.get_json()
            phone.take_page(body)
            if crash_after == pages:
                phone.restart()  # killed before the page was written down
                return
            phone.commit()
            pages += 1
            if not body["has_more"]:
                return

    @rule(d=st.integers(0, 2), lose=st.booleans(), dup=st.booleans(), reorder=st.booleans())
    def sync(self, d: int, lose: bool, dup: bool, reorder: bool) -> None:
        phone = self.phones[d]
        self.push(phone, lose=lose, duplicate=dup, reorder=reorder)
        self.pull(phone)

    @rule()
    def everyone_syncs(self) -> None:
        # back at the team: every phone syncs, so they all hold the same records and their
        # next offline edits of the same inspection are concurrent
        for phone in self.phones:
            self.push(phone, lose=False, duplicate=False, reorder=False)
            self.pull(phone)

    @rule(
        d=st.integers(0, 2),
        moment=st.sampled_from(["idle", "mid-push", "mid-pull", "mid-mutation"]),
        text=TEXTS,
    )
    def restart(self, d: int, moment: str, text: str) -> None:
        """The phone is killed and started again: what it had not written down is gone."""
        phone = self.phones[d]
        if moment == "mid-push":
            pending = phone.pending()
            if pending:
                self._send(phone, pending)  # the server commits; the answer dies with the app
        elif moment == "mid-pull":
            self.pull(phone, crash_after=0)
            return
        elif moment == "mid-mutation":
            entity_id = self._known(phone, 0)
            if entity_id is not None:
                phone.mutate("edit", entity_id, set={"description": text})  # never written
        phone.restart()

    # --- the checks --------------------------------------------------------------------------

    def _observe(self, phone: Phone, mutation: dict[str, Any], result: dict[str, Any]) -> None:
        seq = mutation["device_seq"]
        assert result["device_seq"] == seq
        key = (phone.device_id, seq)
        if seq <= self.applied[phone.device_id]:
            assert result == self.first[key], "a replay answers what the first delivery did"
            return
        self.first[key] = result
        self._check(phone, mutation, result)

    def _expected_rejection(self, phone: Phone, kind: str, before: Any) -> str | None:
        if kind.startswith("bad:"):
            code = kind[4:]
            if code in CHECKED_AFTER_THE_RECORD and before == DELETED:
                return "sync.record_deleted"
            return code
        if before == DELETED:
            return "sync.record_deleted"
        if kind == "delete":
            if before["data"]["status"] != "draft":
                return "sync.delete_after_submit"
            if before["data"]["created_by_id"] != phone.person_id:
                return "sync.not_permitted"
        return None

    def _check(self, phone: Phone, mutation: dict[str, Any], result: dict[str, Any]) -> None:
        meta = self.meta[mutation["mutation_id"]]
        kind = meta["kind"]
        entity_id = mutation["entity_id"]
        before = self.server.get(entity_id)
        expected = self._expected_rejection(phone, kind, before)
        if expected is not None:
            assert (result["status"], result.get("code")) == ("rejected", expected), (
                result,
                kind,
            )
            self.rejected[phone.device_id].append(mutation["device_seq"])
            return  # the model, and so every later check, says the record did not change
        assert result["status"] in ("applied", "merged", "conflict"), (result, kind)
        if kind == "delete":
            self.server[entity_id] = DELETED
            return
        data = result["data"]
        lost: dict[str, Any] = {}
        if result["status"] == "conflict":
            resp = self.api.client.get(
                f"/api/v1/conflicts/{result['conflict_id']}", headers=phone.headers
            )
            assert resp.status_code == 200
            lost = resp.get_json()["values"]
        if before is not None:
            assert result["version"] in (before["version"], before["version"] + 1)
        for field, value in (mutation.get("set") or {}).items():
            if data[field] != value:
                # the device's value did not make it: kept as a conflict
                assert lost.get(field, {}).get("lost") == value, (field, value, data, lost)
                assert lost[field]["lost_side"] == "device"
                continue
            if before is None:
                continue
            replaced = before["data"][field]
            seen = {_key(None), _key(value), _key((meta["base_data"] or {}).get(field))}
            if (
                _key(replaced) in seen
                or (
                    phone.device_id,
                    entity_id,
                    field,
                    _key(replaced),
                )
                in self.written
            ):
                continue  # the device saw (or wrote) the value it replaced
            # the device replaced a value it never saw: that value is kept as a conflict
            assert lost.get(field) == {"kept": value, "lost": replaced, "lost_side": "server"}, (
                field,
                replaced,
                data,
                lost,
            )
        for item in (mutation.get("add") or {}).get("evidence", []):
            # sets only grow; after submission an addition is kept as a conflict
            assert item in data["evidence"] or item in lost.get("evidence", {}).get("lost", [])
        if before is not None:
            assert set(before["data"]["evidence"]) <= set(data["evidence"])
            untouched = {"matter_code", "description", "address"} - set(mutation.get("set") or {})
            assert {f: data[f] for f in untouched} == {f: before["data"][f] for f in untouched}
        if kind == "submit":
            assert data["status"] != "draft"  # submitted, or diverted at once
        self.server[entity_id] = {"version": result["version"], "data": data}

    @invariant()
    def exactly_once(self) -> None:
        if not getattr(self, "phones", None):
            return
        with self.app.extensions["fieldsync"].sessionmaker() as s:
            for phone in self.phones:
                n = s.scalar(
                    select(func.count())
                    .select_from(MutationRecord)
                    .where(MutationRecord.device_id == uuid.UUID(phone.device_id))
                )
                # the server holds each mutation it applied once, and none the phone never sent
                assert n == self.applied[phone.device_id]
                assert phone.disk["acked"] <= n <= phone.disk["next_seq"] - 1

    def teardown(self) -> None:
        if not getattr(self, "phones", None):
            return
        for _ in range(2):
            for phone in self.phones:
                while phone.pending():
                    self.push(phone, lose=False, duplicate=False, reorder=False)
                self.pull(phone)
        for phone in self.phones:
            # every mutation the phone wrote down was applied, once
            assert self.applied[phone.device_id] == phone.disk["next_seq"] - 1
            quarantine = self.api.client.get(
                "/api/v1/quarantine", headers=phone.headers, query_string={"page_size": 100}
            ).get_json()
            assert sorted(q["device_seq"] for q in quarantine) == self.rejected[phone.device_id]
        alive = {k: v for k, v in self.server.items() if v != DELETED}
        for phone in self.phones:
            mine = {k: v for k, v in phone.state["replica"].items() if k in self.ids}
            assert mine == alive  # each phone holds exactly the server's records
        # and a phone starting from nothing gets the same
        fresh = Phone(self.api, "captain", self.clock)
        self.pull(fresh)
        assert {k: v for k, v in fresh.state["replica"].items() if k in self.ids} == alive


@pytest.mark.parametrize("earlier_first", [True, False], ids=["server-value-lost", "device-lost"])
def test_a_concurrent_edit_keeps_the_loser(
    api: Any, app: Any, demo: Any, earlier_first: bool
) -> None:
    """The machine's checks on one fixed run: two phones edit one description offline; the
    later clock wins, and the value it beat is kept whether it was on the server already or
    came from the device."""
    SyncMachine.api = api
    SyncMachine.app = app
    machine = SyncMachine()
    machine.setup()
    machine.concurrent_edits(0, 1, 0, "description", ["一处", "两处"], earlier_first)
    machine.exactly_once()
    machine.teardown()
    conflicts = [r for r in machine.first.values() if r["status"] == "conflict"]
    assert len(conflicts) == 1


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_sync_state_machine(api: Any, app: Any, demo: Any) -> None:
    SyncMachine.api = api
    SyncMachine.app = app
    machine = SyncMachine.TestCase
    machine.settings = settings(
        max_examples=25,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    machine().runTest()


def test_a_replayed_answer_does_not_bring_back_a_deleted_record(
    api: Any, app: Any, demo: Any
) -> None:
    """Found by the machine above, shrunk: a phone whose push answer is lost takes the record's
    tombstone on its next pull; the answer it then gets to its push sent again is the replay
    of one from before the delete, and must not put the record back on the phone."""
    SyncMachine.api = api
    SyncMachine.app = app
    state = SyncMachine()
    state.setup()
    state.delete(d=0, i=0)  # the record's creator deletes it, offline
    state.edit(d=1, i=0, field="address", text=" ", evidence=f"{1:064x}")  # another edits it
    state.sync(d=1, lose=True, dup=False, reorder=False)  # applied; the answer is lost
    state.sync(d=0, lose=False, dup=False, reorder=False)  # the delete reaches the server
    state.sync(d=1, lose=True, dup=False, reorder=False)  # lost again; the pull: the tombstone
    state.teardown()  # the edit's replayed answer, taken at last; every phone checked
