"""The reference client's local store, without a server: outbox numbering, crash safety,
pending edits over pulled data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fieldsync.client.store import Crash, Store, apply_mutation
from fieldsync.sync.hlc import HLC

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
NODE = "device-a"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "device.sqlite3")
    yield s
    s.close()


def _edit(store: Store, rid: str, minutes: int = 0, **set_: Any) -> dict[str, Any]:
    return store.enqueue(
        entity="inspection",
        entity_id=rid,
        action="upsert",
        set_=set_,
        now=NOW + timedelta(minutes=minutes),
        node=NODE,
    )


def _result(seq: int, rid: str, version: int, data: dict[str, Any], **kw: Any) -> dict:
    return {
        "device_seq": seq,
        "status": "applied",
        "entity": "inspection",
        "id": rid,
        "version": version,
        "data": data,
        **kw,
    }


def _push_response(*results: dict[str, Any]) -> dict[str, Any]:
    return {
        "protocol": 1,
        "last_device_seq": results[-1]["device_seq"],
        "server_time": "2026-11-25T08:00:00Z",
        "results": list(results),
    }


def _snapshot(store: Store) -> dict[str, Any]:
    c = store.conn
    return {
        table: [tuple(r) for r in c.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
        for table in ("meta", "records", "outbox", "conflicts", "rejected", "photos")
    }


def _crash_at(point: str) -> Any:
    def fault(name: str) -> None:
        if name == point:
            raise Crash(name)

    return fault


# --- outbox numbering -------------------------------------------------------------------------


def test_outbox_numbers_from_one_without_gaps_and_ticks_the_clock(store: Store) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    m1 = _edit(store, a, description="one")
    m2 = _edit(store, b, description="two")
    m3 = _edit(store, a, description="three")
    assert [m["device_seq"] for m in (m1, m2, m3)] == [1, 2, 3]
    assert len({m["mutation_id"] for m in (m1, m2, m3)}) == 3
    clocks = [HLC.parse(m["hlc"]) for m in (m1, m2, m3)]
    assert clocks == sorted(clocks) and len(set(clocks)) == 3
    assert all(c.node == NODE for c in clocks)
    assert [m["device_seq"] for m in store.pending()] == [1, 2, 3]
    assert m1["base_version"] == 0 and m1["set"] == {"description": "one"}


def test_numbering_survives_a_restart_and_acknowledgement(tmp_path: Path) -> None:
    path = tmp_path / "device.sqlite3"
    s = Store(path)
    rid = str(uuid.uuid4())
    _edit(s, rid, description="one")
    s.apply_push(_push_response(_result(1, rid, 1, {"description": "one"})), now=NOW)
    s.close()
    s = Store(path)
    m = _edit(s, rid, description="two")
    assert m["device_seq"] == 2
    assert m["base_version"] == 1  # the server's version this device holds
    assert [p["device_seq"] for p in s.pending()] == [2]
    s.close()


def test_the_clock_never_goes_back_with_the_wall_clock(store: Store) -> None:
    rid = str(uuid.uuid4())
    first = _edit(store, rid, minutes=10, description="a")
    second = _edit(store, rid, minutes=0, description="b")  # the phone's clock was set back
    assert HLC.parse(second["hlc"]) > HLC.parse(first["hlc"])


# --- crash safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["enqueue.inserted", "enqueue.done"])
def test_a_crash_inside_an_edit_leaves_nothing_half_written(store: Store, point: str) -> None:
    rid = str(uuid.uuid4())
    _edit(store, rid, description="kept")
    before = _snapshot(store)
    store.fault = _crash_at(point)
    with pytest.raises(Crash):
        _edit(store, rid, description="lost in the crash")
    store.fault = None
    assert _snapshot(store) == before
    assert _edit(store, rid, description="again")["device_seq"] == 2


@pytest.mark.parametrize("point", ["push.result_stored", "push.done"])
def test_a_crash_while_storing_push_results_means_a_replay_later(store: Store, point: str) -> None:
    rid = str(uuid.uuid4())
    _edit(store, rid, description="one")
    _edit(store, rid, description="two")
    before = _snapshot(store)
    response = _push_response(
        _result(1, rid, 1, {"description": "one"}),
        _result(2, rid, 2, {"description": "two"}),
    )
    store.fault = _crash_at(point)
    with pytest.raises(Crash):
        store.apply_push(response, now=NOW)
    store.fault = None
    # as if the response had never arrived: the same mutations go out again, and the server's
    # answer (its stored results, as replays) is stored exactly once
    assert _snapshot(store) == before
    assert [p["device_seq"] for p in store.pending()] == [1, 2]
    counts = store.apply_push(response, now=NOW)
    assert counts == {"applied": 2}
    assert store.last_acked_seq == 2 and store.pending() == []
    assert store.server_record("inspection", rid) == (2, {"description": "two"})
    # the same response delivered twice changes nothing the second time
    assert store.apply_push(response, now=NOW) == {}


def test_a_crash_while_storing_a_pulled_page_keeps_the_old_cursor(store: Store) -> None:
    store.apply_pull_page(
        {"cursor": "c1", "has_more": False, "server_time": "2026-11-25T08:00:00Z", "changes": []},
        now=NOW,
    )
    before = _snapshot(store)
    rid = str(uuid.uuid4())
    page = {
        "cursor": "c2",
        "has_more": False,
        "server_time": "2026-11-25T08:01:00Z",
        "changes": [
            {"entity": "inspection", "id": rid, "version": 3, "op": "upsert", "data": {"x": 1}}
        ],
    }
    store.fault = _crash_at("pull.done")
    with pytest.raises(Crash):
        store.apply_pull_page(page, now=NOW)
    store.fault = None
    assert _snapshot(store) == before and store.cursor == "c1"
    store.apply_pull_page(page, now=NOW)
    assert store.cursor == "c2" and store.record("inspection", rid) == {"x": 1}


def test_conflicts_and_rejections_are_stored_with_their_results(store: Store) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    _edit(store, a, description="mine")
    _edit(store, b, matter_code="NO-SUCH")
    conflict_id = str(uuid.uuid4())
    store.apply_push(
        _push_response(
            _result(
                1,
                a,
                5,
                {"description": "theirs"},
                status="conflict",
                conflict_id=conflict_id,
                fields=["description"],
            ),
            {
                "device_seq": 2,
                "status": "rejected",
                "code": "org.unknown_matter",
                "message": "Unknown matter: NO-SUCH.",
                "message_zh": "未知事项：NO-SUCH。",
            },
        ),
        now=NOW,
    )
    assert [c["id"] for c in store.conflicts()] == [conflict_id]
    assert store.conflicts()[0]["fields"] == ["description"]
    assert [(r["device_seq"], r["code"]) for r in store.rejected()] == [(2, "org.unknown_matter")]
    assert store.record("inspection", a) == {"description": "theirs"}
    # a record that never reached the server and whose only change was refused is gone
    assert store.record("inspection", b) is None


def test_rewind_on_a_sequence_gap_sends_acknowledged_mutations_again(store: Store) -> None:
    rid = str(uuid.uuid4())
    for text in ("one", "two", "three"):
        _edit(store, rid, description=text)
    store.apply_push(
        _push_response(*(_result(i, rid, i, {"description": "x"}) for i in (1, 2, 3))), now=NOW
    )
    assert store.pending() == []
    store.rewind(2)  # the server lost everything from device_seq 2 on
    assert [p["device_seq"] for p in store.pending()] == [2, 3]
    with pytest.raises(ValueError):
        store.rewind(9)


# --- pending edits over pulled data ------------------------------------------------------------


def test_pending_edits_stay_on_top_of_pulled_data(store: Store) -> None:
    rid = str(uuid.uuid4())
    store.apply_pull_page(
        {
            "cursor": "c1",
            "has_more": False,
            "changes": [
                {
                    "entity": "inspection",
                    "id": rid,
                    "version": 2,
                    "op": "upsert",
                    "data": {"description": "server", "address": "A", "present": ["p1"]},
                }
            ],
        },
        now=NOW,
    )
    store.enqueue(
        entity="inspection",
        entity_id=rid,
        action="upsert",
        set_={"description": "mine"},
        add={"present": ["p2"]},
        now=NOW,
        node=NODE,
    )
    assert store.record("inspection", rid) == {
        "description": "mine",
        "address": "A",
        "present": ["p1", "p2"],
    }
    # someone else changed the record meanwhile: their change shows, mine stays on top
    store.apply_pull_page(
        {
            "cursor": "c2",
            "has_more": False,
            "changes": [
                {
                    "entity": "inspection",
                    "id": rid,
                    "version": 3,
                    "op": "upsert",
                    "data": {"description": "theirs", "address": "B", "present": ["p1", "p3"]},
                }
            ],
        },
        now=NOW,
    )
    assert store.record("inspection", rid) == {
        "description": "mine",
        "address": "B",
        "present": ["p1", "p3", "p2"],
    }
    assert store.server_record("inspection", rid)[0] == 3
    # an older copy (a pull that read before my push committed) never replaces a newer one
    store.apply_pull_page(
        {
            "cursor": "c3",
            "has_more": False,
            "changes": [
                {"entity": "inspection", "id": rid, "version": 2, "op": "upsert", "data": {}}
            ],
        },
        now=NOW,
    )
    assert store.server_record("inspection", rid)[0] == 3


def test_a_deleted_record_disappears_unless_this_device_has_pending_edits(store: Store) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    upserts = [
        {"entity": "inspection", "id": i, "version": 1, "op": "upsert", "data": {"d": i}}
        for i in (a, b)
    ]
    store.apply_pull_page({"cursor": "c1", "has_more": False, "changes": upserts}, now=NOW)
    _edit(store, b, description="offline edit")
    deletes = [
        {"entity": "inspection", "id": i, "version": 2, "op": "delete", "reason": "out_of_scope"}
        for i in (a, b)
    ]
    store.apply_pull_page({"cursor": "c2", "has_more": False, "changes": deletes}, now=NOW)
    assert store.record("inspection", a) is None
    # the edit waits in the outbox; the server will say what became of it
    assert store.record("inspection", b) == {"description": "offline edit"}


def test_a_replayed_answer_does_not_bring_back_a_record_gone_since(store: Store) -> None:
    """The push's answer was lost; the pull then brought the record's tombstone; the push sent
    again is answered from the server's log, with the record as it was before it went."""
    rid = str(uuid.uuid4())
    page = {"entity": "inspection", "id": rid, "version": 1, "op": "upsert", "data": {"d": 1}}
    store.apply_pull_page({"cursor": "c1", "has_more": False, "changes": [page]}, now=NOW)
    _edit(store, rid, description="offline edit")
    gone = {"entity": "inspection", "id": rid, "version": 3, "op": "delete", "reason": "deleted"}
    store.apply_pull_page({"cursor": "c2", "has_more": False, "changes": [gone]}, now=NOW)
    replay = _result(1, rid, 2, {"d": 1, "description": "offline edit"})
    store.apply_push(_push_response(replay), now=NOW)
    assert store.record("inspection", rid) is None
    assert store.server_record("inspection", rid)[1] is None
    assert store.pending() == []  # the edit is answered all the same
    # back in the device's scope (a report assigned back, an officer moved back): the feed's
    # upsert after the tombstone brings it, at any version
    back = {**page, "version": 3, "data": {"d": 3}}
    store.apply_pull_page({"cursor": "c3", "has_more": False, "changes": [back]}, now=NOW)
    assert store.record("inspection", rid) == {"d": 3}


def test_reset_replica_keeps_the_outbox(store: Store) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    upserts = [
        {"entity": "inspection", "id": i, "version": 1, "op": "upsert", "data": {"d": i}}
        for i in (a, b)
    ]
    store.apply_pull_page({"cursor": "c1", "has_more": False, "changes": upserts}, now=NOW)
    _edit(store, b, description="offline edit")
    store.reset_replica()
    assert store.cursor is None
    assert store.record("inspection", a) is None
    assert store.record("inspection", b) == {"description": "offline edit"}
    assert [p["device_seq"] for p in store.pending()] == [1]


def test_apply_mutation_follows_the_servers_policies_for_a_plain_edit() -> None:
    data = {
        "description": "old",
        "present": ["a"],
        "findings": [{"id": "f1", "matter_code": "CG-001", "description": "x"}],
        "status": "draft",
    }
    out = apply_mutation(
        data,
        "inspection.upsert",
        {
            "set": {"description": "new", "present": ["b"]},
            "add": {"findings": [{"id": "f2", "matter_code": "CG-002", "description": "y"}]},
        },
    )
    assert out["description"] == "new"
    assert out["present"] == ["a", "b"]  # a set only grows on sync
    assert [f["id"] for f in out["findings"]] == ["f1", "f2"]
    out = apply_mutation(out, "inspection.upsert", {"remove": {"present": ["a"]}})
    assert out["present"] == ["b"]
    assert apply_mutation(out, "inspection.submit", {})["status"] == "submitted"
    assert apply_mutation(out, "inspection.delete", {}) == {"_deleted": True}
    assert data["description"] == "old"  # pure


# --- crash safety of pulling, rewinding and starting over ---------------------------------------


def test_a_crash_between_the_changes_of_a_page_stores_none_of_them(store: Store) -> None:
    store.apply_pull_page({"cursor": "c1", "has_more": False, "changes": []}, now=NOW)
    before = _snapshot(store)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    page = {
        "cursor": "c2",
        "has_more": False,
        "changes": [
            {"entity": "inspection", "id": i, "version": 1, "op": "upsert", "data": {"n": n}}
            for n, i in enumerate(ids)
        ],
    }
    stored = 0

    def second_change(name: str) -> None:
        nonlocal stored
        if name == "pull.change_stored":
            stored += 1
            if stored == 2:
                raise Crash(name)

    store.fault = second_change
    with pytest.raises(Crash):
        store.apply_pull_page(page, now=NOW)
    store.fault = None
    assert _snapshot(store) == before  # not the first change either: the page is one step
    assert store.apply_pull_page(page, now=NOW) == 3
    assert [store.record("inspection", i) for i in ids] == [{"n": 0}, {"n": 1}, {"n": 2}]


@pytest.mark.parametrize("point", ["rewind.acked", "rewind.done"])
def test_a_crash_inside_a_rewind_keeps_the_acknowledgements(store: Store, point: str) -> None:
    rid = str(uuid.uuid4())
    for text in ("one", "two"):
        _edit(store, rid, description=text)
    store.apply_push(
        _push_response(*(_result(i, rid, i, {"description": "x"}) for i in (1, 2))), now=NOW
    )
    before = _snapshot(store)
    store.fault = _crash_at(point)
    with pytest.raises(Crash):
        store.rewind(1)
    store.fault = None
    assert _snapshot(store) == before and store.pending() == []
    store.rewind(1)
    assert [p["device_seq"] for p in store.pending()] == [1, 2]


@pytest.mark.parametrize("point", ["reset.forgotten", "reset.done"])
def test_a_crash_inside_a_reset_keeps_the_replica_and_cursor(store: Store, point: str) -> None:
    rid = str(uuid.uuid4())
    store.apply_pull_page(
        {
            "cursor": "c1",
            "has_more": False,
            "changes": [
                {"entity": "inspection", "id": rid, "version": 1, "op": "upsert", "data": {"d": 1}}
            ],
        },
        now=NOW,
    )
    _edit(store, rid, description="offline edit")
    before = _snapshot(store)
    store.fault = _crash_at(point)
    with pytest.raises(Crash):
        store.reset_replica()
    store.fault = None
    assert _snapshot(store) == before and store.cursor == "c1"
    store.reset_replica()
    assert store.cursor is None
    assert store.record("inspection", rid) == {"description": "offline edit"}
