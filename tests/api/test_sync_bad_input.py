"""Bad input to the sync API, one case at a time: each gets its machine code, and nothing
changes — no record, no feed row, no event; a rejected mutation adds only its own quarantine
entry, and the mutations after it are still applied (the queue is never blocked)."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sync_phone import Phone  # type: ignore[import-not-found]

from fieldsync.demo import demo_uuid
from fieldsync.identity.models import Device
from fieldsync.inspections.models import Inspection, Report
from fieldsync.sync.models import (
    Conflict,
    DeviceSyncState,
    Event,
    FeedCounter,
    FeedEntry,
    MutationRecord,
)


@dataclasses.dataclass
class World:
    phone: Phone  # cg_wang's
    iid: str  # cg_wang's draft inspection, version 1
    deleted: str  # an inspection cg_wang deleted
    elsewhere: str  # an inspection of the other street
    report: str  # a grid worker's report


@pytest.fixture
def world(api: Any, demo: Any) -> World:
    phone = Phone(api, "cg_wang")
    iid = phone.create()
    deleted = phone.create(description="记错了")
    [gone] = phone.push(phone.mutation(type="inspection.delete", entity_id=deleted, base_version=1))
    assert gone["status"] == "applied"
    elsewhere = Phone(api, "js_cg_xu").create()
    grid = Phone(api, "grid_duofu1")
    report = str(uuid.uuid4())
    [made] = grid.push(
        grid.mutation(type="report.upsert", entity_id=report, set={"description": "占道"})
    )
    assert made["status"] == "applied", made
    return World(phone, iid, deleted, elsewhere, report)


def _state(app: Any) -> dict[str, Any]:
    """Everything a sync request could change, as plain values."""
    with app.extensions["fieldsync"].sessionmaker() as s:

        def rows(*columns: Any) -> list[tuple[str, ...]]:
            return sorted(tuple(str(v) for v in row) for row in s.execute(select(*columns)))

        return {
            "inspections": rows(Inspection.id, Inspection.version, Inspection.updated_at),
            "reports": rows(Report.id, Report.version, Report.updated_at),
            "feed": rows(
                FeedEntry.entity,
                FeedEntry.entity_id,
                FeedEntry.audience,
                FeedEntry.position,
                FeedEntry.version,
                FeedEntry.op,
            ),
            "counter": rows(FeedCounter.value, FeedCounter.pruned_through),
            "events": s.scalar(select(func.count()).select_from(Event)),
            "conflicts": s.scalar(select(func.count()).select_from(Conflict)),
            "log": rows(MutationRecord.id, MutationRecord.status, MutationRecord.code),
            "device_seq": rows(DeviceSyncState.device_id, DeviceSyncState.last_device_seq),
        }


def _only_quarantined(before: dict[str, Any], after: dict[str, Any], mutation_id: str) -> None:
    """Nothing changed but the rejected mutation's log row and the device's last device_seq."""
    keep = {k for k in before if k not in ("log", "device_seq")}
    assert {k: after[k] for k in keep} == {k: before[k] for k in keep}
    added = set(after["log"]) - set(before["log"])
    assert [row[:2] for row in added] == [(mutation_id, "rejected")]
    assert set(before["log"]) <= set(after["log"])


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


Case = Callable[[World], dict[str, Any]]
REJECTED: dict[str, tuple[Case, str]] = {
    # malformed
    "set is not an object": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": "description"},
        "sync.invalid_mutation",
    ),
    "set is a list": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": []},
        "sync.invalid_mutation",
    ),
    "set is false": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": False},
        "sync.invalid_mutation",
    ),
    "add is a number": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "add": 0},
        "sync.invalid_mutation",
    ),
    "remove names an object": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "remove": {"present": [{"id": "x"}]}},
        "sync.invalid_mutation",
    ),
    "a submit that sets fields": (
        lambda w: {
            "type": "inspection.submit",
            "entity_id": w.iid,
            "base_version": 1,
            "set": {"description": "交回前改"},
        },
        "sync.invalid_mutation",
    ),
    "a delete that adds": (
        lambda w: {
            "type": "inspection.delete",
            "entity_id": w.iid,
            "base_version": 1,
            "add": {"present": [str(demo_uuid("person", "cg_liu"))]},
        },
        "sync.invalid_mutation",
    ),
    "value of the wrong shape": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": {"location": "路口"}},
        "sync.invalid_mutation",
    ),
    "a coordinate given as a string": (
        lambda w: {
            "entity_id": w.iid,
            "base_version": 1,
            "set": {"location": {"lat": "39.9", "lon": 116.4}},
        },
        "sync.invalid_mutation",
    ),
    "unknown field": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": {"colour": "red"}},
        "sync.invalid_mutation",
    ),
    "entity_id is not a UUID": (
        lambda w: {"entity_id": "CG-001", "set": {"description": "x"}},
        "sync.invalid_mutation",
    ),
    "no device_time": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "device_time": None, "set": {}},
        "sync.invalid_mutation",
    ),
    "device_time out of range once in UTC": (
        lambda w: {
            "entity_id": w.iid,
            "base_version": 1,
            "device_time": "9999-12-31T23:59:59-05:00",
            "set": {},
        },
        "sync.invalid_mutation",
    ),
    "device_time in ISO 8601 basic form": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "device_time": "20261125T080000Z"},
        "sync.invalid_mutation",
    ),
    "device_time a date only": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "device_time": "2026-11-25"},
        "sync.invalid_mutation",
    ),
    "occurred_at in ISO 8601 basic form": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": {"occurred_at": "20261125T0800Z"}},
        "sync.invalid_mutation",
    ),
    "occurred_at out of range once in UTC": (
        lambda w: {
            "entity_id": w.iid,
            "base_version": 1,
            "set": {"occurred_at": "9999-12-31T23:59:59-05:00"},
        },
        "sync.invalid_mutation",
    ),
    # errors keyed by list index (the log stores them as JSON)
    "a bad item in a list": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": {"present": ["x"]}},
        "sync.invalid_mutation",
    ),
    "a bad item in an added list": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "add": {"evidence": ["zz"]}},
        "sync.invalid_mutation",
    ),
    # what the log cannot store as it came: rejected, kept as its device_seq and id only
    "an integer beyond 64 bits": (
        lambda w: {"entity_id": w.iid, "base_version": 10**30, "set": {"address": "x"}},
        "sync.invalid_mutation",
    ),
    "a lone surrogate": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": {"description": "\ud800"}},
        "sync.invalid_mutation",
    ),
    "a NUL character": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": {"description": "a\x00b"}},
        "sync.invalid_mutation",
    ),
    "a NUL character in an unknown key": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "note": "\x00", "set": {}},
        "sync.invalid_mutation",
    ),
    "nesting deeper than the log stores": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "z": _nested(300), "set": {}},
        "sync.invalid_mutation",
    ),
    # `set` may leave fields out, but an object it gives is whole: what it requires, it has
    "a location without its longitude": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "set": {"location": {"lat": 39.9}}},
        "sync.invalid_mutation",
    ),
    "a finding without its id": (
        lambda w: {
            "entity_id": w.iid,
            "base_version": 1,
            "add": {"findings": [{"matter_code": "CG-001"}]},
        },
        "sync.invalid_mutation",
    ),
    "a measure without its type": (
        lambda w: {
            "entity_id": w.iid,
            "base_version": 1,
            "set": {"measures": [{"id": str(uuid.uuid4())}]},
        },
        "sync.invalid_mutation",
    ),
    "null type": (
        lambda w: {"type": None, "entity_id": w.iid, "base_version": 1},
        "sync.unknown_type",
    ),
    "null entity_id and base_version": (
        lambda w: {"entity_id": None, "base_version": None, "set": {"address": "x"}},
        "sync.invalid_mutation",
    ),
    "base_version not a number": (
        lambda w: {"entity_id": w.iid, "base_version": "1", "set": {"address": "x"}},
        "sync.invalid_mutation",
    ),
    "malformed hybrid logical clock": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "hlc": "yesterday", "set": {}},
        "sync.invalid_hlc",
    ),
    "hybrid logical clock in other digits": (
        lambda w: {
            "entity_id": w.iid,
            "base_version": 1,
            "hlc": "\u0661" * 15 + "-00001-phone",  # ARABIC-INDIC DIGIT ONE
        },
        "sync.invalid_hlc",
    ),
    "hybrid logical clock with a line break after it": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "hlc": "001764000000000-00001-phone\n"},
        "sync.invalid_hlc",
    ),
    "hybrid logical clock not a string": (
        lambda w: {"entity_id": w.iid, "base_version": 1, "hlc": 1764000000000},
        "sync.invalid_hlc",
    ),
    # unknown type
    "unknown entity": (
        lambda w: {"type": "spaceship.upsert", "entity_id": w.iid, "set": {}},
        "sync.unknown_type",
    ),
    "unknown action": (
        lambda w: {"type": "inspection.frobnicate", "entity_id": w.iid, "base_version": 1},
        "sync.unknown_type",
    ),
    "reference data is not written by devices": (
        lambda w: {"type": "matter.upsert", "entity_id": str(demo_uuid("matter", "CG-001"))},
        "sync.unknown_type",
    ),
    # an entity id of another type
    "a matter's id as an inspection": (
        lambda w: {"entity_id": str(demo_uuid("matter", "CG-001")), "set": {"address": "x"}},
        "sync.entity_type_mismatch",
    ),
    "a report's id as an inspection": (
        lambda w: {"entity_id": w.report, "base_version": 1, "set": {"address": "x"}},
        "sync.entity_type_mismatch",
    ),
    "base_version from the future": (
        lambda w: {"entity_id": w.iid, "base_version": 7, "set": {"address": "x"}},
        "sync.base_version_from_future",
    ),
    "edit of a deleted record": (
        lambda w: {"entity_id": w.deleted, "base_version": 2, "set": {"address": "x"}},
        "sync.record_deleted",
    ),
    "another street's record": (
        lambda w: {"entity_id": w.elsewhere, "base_version": 1, "set": {"address": "x"}},
        "sync.not_in_scope",
    ),
    "an edit of a record that does not exist": (
        lambda w: {"entity_id": str(uuid.uuid4()), "base_version": 3, "set": {"address": "x"}},
        "sync.unknown_entity",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_a_bad_mutation_is_rejected_and_changes_nothing(app: Any, world: World, case: str) -> None:
    make, code = REJECTED[case]
    phone = world.phone
    before = _state(app)
    mutation = phone.mutation(**make(world))
    [result] = phone.push(mutation)
    assert result["status"] == "rejected", result
    assert result["code"] == code
    assert result["message"] and result["message_zh"]
    _only_quarantined(before, _state(app), mutation["mutation_id"])
    [listed] = phone.get("/quarantine").get_json()[:1]
    assert (listed["mutation_id"], listed["code"]) == (mutation["mutation_id"], code)


@pytest.mark.parametrize("given", ["absent", None, "m-41", 41])
def test_a_mutation_without_an_id_of_its_own_is_rejected(
    app: Any, world: World, given: Any
) -> None:
    phone = world.phone
    before = _state(app)
    mutation = phone.mutation(entity_id=world.iid, base_version=1, set={"address": "x"})
    if given == "absent":
        del mutation["mutation_id"]
    else:
        mutation["mutation_id"] = given
    [result] = phone.push(mutation)
    assert (result["status"], result["code"]) == ("rejected", "sync.invalid_mutation")
    assert "mutation_id" in result["errors"]
    after = _state(app)
    [(logged_as, _, _)] = set(after["log"]) - set(before["log"])
    _only_quarantined(before, after, logged_as)
    [listed] = phone.get("/quarantine").get_json()[:1]
    assert (listed["mutation_id"], listed["device_seq"]) == (logged_as, mutation["device_seq"])


def test_a_rejection_never_blocks_the_queue(app: Any, world: World) -> None:
    phone = world.phone
    first = phone.mutation(entity_id=world.iid, base_version=1, set={"description": "一"})
    bad = phone.mutation(type="inspection.frobnicate", entity_id=world.iid, base_version=1)
    third = phone.mutation(entity_id=world.iid, base_version=1, set={"address": "三号"})
    results = phone.push(first, bad, third)
    assert [r["status"] for r in results] == ["applied", "rejected", "applied"]
    assert results[1]["code"] == "sync.unknown_type"
    assert results[2]["version"] == 3
    assert (results[2]["data"]["description"], results[2]["data"]["address"]) == ("一", "三号")
    resp = phone.send([])
    assert resp.get_json()["last_device_seq"] == third["device_seq"]
    # and the next push goes on from there
    [next_one] = phone.push(phone.mutation(entity_id=world.iid, base_version=3, set={}))
    assert next_one["status"] == "applied"


def test_a_duplicate_mutation_id_is_rejected_and_the_queue_goes_on(app: Any, world: World) -> None:
    phone = world.phone
    first = phone.mutation(entity_id=world.iid, base_version=1, set={"description": "一"})
    again = phone.mutation(entity_id=world.iid, base_version=1, set={"address": "x"})
    again["mutation_id"] = first["mutation_id"]  # in the same push
    third = phone.mutation(entity_id=world.iid, base_version=1, set={"address": "三号"})
    results = phone.push(first, again, third)
    assert [r["status"] for r in results] == ["applied", "rejected", "applied"]
    assert results[1]["code"] == "sync.duplicate_mutation_id"
    before = _state(app)
    later = phone.mutation(entity_id=world.iid, base_version=3, set={"address": "y"})
    later["mutation_id"] = first["mutation_id"].upper().replace("-", "")  # in a later push
    [result] = phone.push(later)
    assert (result["status"], result["code"]) == ("rejected", "sync.duplicate_mutation_id")
    assert result["message"] and result["message_zh"]
    keep = {k for k in before if k not in ("log", "device_seq")}
    assert {k: v for k, v in _state(app).items() if k in keep} == {k: before[k] for k in keep}
    [next_one] = phone.push(phone.mutation(entity_id=world.iid, base_version=3, set={}))
    assert next_one["status"] == "applied"


def test_json_nested_too_deep_for_the_parser_is_malformed(app: Any, world: World) -> None:
    phone = world.phone
    before = _state(app)
    body = '{"protocol":1,"mutations":[],"z":' + "[" * 100_000 + "]" * 100_000 + "}"
    resp = phone.api.client.post(
        "/api/v1/sync/push",
        headers={**phone.headers, "Content-Type": "application/json"},
        data=body,
    )
    _refused(resp, 400, "request.malformed_json")
    assert _state(app) == before


def _refused(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.get_data()[:300]
    assert resp.get_json()["error"] == code


def test_a_device_id_other_than_the_tokens(app: Any, api: Any, world: World) -> None:
    phone = world.phone
    other = Phone(api, "cg_wang")  # the same officer's other phone
    before = _state(app)
    mutation = phone.mutation(entity_id=world.iid, base_version=1, set={"address": "x"})
    _refused(phone.send([mutation], device_id=other.device_id), 403, "auth.device_id_mismatch")
    _refused(phone.send([mutation], device_id=str(uuid.uuid4())), 403, "auth.device_id_mismatch")
    assert _state(app) == before


def test_too_many_mutations(app: Any, world: World, monkeypatch: Any) -> None:
    monkeypatch.setattr(app.extensions["fieldsync"].config, "sync_max_mutations", 3)
    phone = world.phone
    before = _state(app)
    mutations = [
        phone.mutation(entity_id=world.iid, base_version=1, set={"address": f"{n}号"})
        for n in range(4)
    ]
    _refused(phone.send(mutations), 413, "sync.too_many_mutations")
    assert _state(app) == before
    assert phone.send(mutations[:3]).status_code == 200  # at the limit: accepted


def test_too_many_mutations_is_answered_before_any_is_read(
    app: Any, world: World, monkeypatch: Any
) -> None:
    monkeypatch.setattr(app.extensions["fieldsync"].config, "sync_max_mutations", 3)
    before = _state(app)
    _refused(world.phone.send([{"device_seq": "?"}] * 4), 413, "sync.too_many_mutations")
    assert _state(app) == before


@pytest.mark.parametrize("protocol", ["1", 1.0, True, 2])
def test_a_protocol_other_than_1(app: Any, world: World, protocol: Any) -> None:
    phone = world.phone
    before = _state(app)
    mutation = phone.mutation(entity_id=world.iid, base_version=1, set={"address": "x"})
    _refused(phone.send([mutation], protocol=protocol), 422, "request.invalid")
    assert _state(app) == before


def test_too_many_bytes(app: Any, world: World) -> None:
    phone = world.phone
    limit = app.extensions["fieldsync"].config.max_body_bytes
    before = _state(app)
    mutation = phone.mutation(entity_id=world.iid, base_version=1, set={"description": "长"})
    mutation["padding"] = "x" * (limit + 1)
    _refused(phone.send([mutation]), 413, "request.too_large")
    assert _state(app) == before


def test_a_sequence_gap(app: Any, world: World) -> None:
    phone = world.phone
    before = _state(app)
    phone.seq += 1  # device_seq 1 of this phone's next push is skipped
    resp = phone.send([phone.mutation(entity_id=world.iid, base_version=1, set={"address": "x"})])
    _refused(resp, 409, "sync.sequence_gap")
    assert resp.get_json()["expected_device_seq"] == phone.seq - 1
    assert _state(app) == before


def _forge(cursor: str) -> str:
    """The cursor with one byte of its body changed, signature kept."""
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[2] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


@pytest.mark.parametrize("which", ["another device's", "forged", "garbage", "truncated"])
def test_a_cursor_not_of_this_device(app: Any, api: Any, world: World, which: str) -> None:
    phone = world.phone
    other = Phone(api, "cg_liu")
    other.pull_all()
    phone.pull_all()
    assert other.cursor is not None and phone.cursor is not None
    cursor = {
        "another device's": other.cursor,
        "forged": _forge(phone.cursor),
        "garbage": "bm90IGEgY3Vyc29y",
        "truncated": phone.cursor[:-6],
    }[which]
    before = _state(app)
    _refused(phone.pull(cursor=cursor), 400, "sync.cursor_invalid")
    assert _state(app) == before


@pytest.mark.parametrize(
    "positions",
    [{"p": 2**64}, {"p": -1}, {"p": 1.5}, {"p": "7"}, {"t": 2**70}],
    ids=["beyond 64 bits", "negative", "fraction", "string", "issued beyond 64 bits"],
)
def test_a_cursor_the_server_could_not_have_signed(
    app: Any, world: World, positions: dict[str, Any]
) -> None:
    """Signed with the server's secret (as if it had leaked), but holding numbers the server
    never writes into a cursor: refused, not a server error."""
    from fieldsync.sync.feed import decode_cursor, encode_cursor

    phone = world.phone
    phone.pull_all()
    secret = app.extensions["fieldsync"].config.secret()
    cursor = decode_cursor(phone.cursor, secret=secret, device_id=phone.device_id)
    audience = next(iter(cursor.positions))
    forged = dataclasses.replace(
        cursor,
        positions={**cursor.positions, audience: positions.get("p", 0)},
        issued_at=positions.get("t", cursor.issued_at),
    )
    before = _state(app)
    _refused(phone.pull(cursor=encode_cursor(forged, secret=secret)), 400, "sync.cursor_invalid")
    assert _state(app) == before


@pytest.mark.parametrize("limit", [0, -1, 1001, 10**9])
def test_a_limit_out_of_range(app: Any, world: World, limit: int) -> None:
    assert app.extensions["fieldsync"].config.sync_page_max == 1000
    before = _state(app)
    _refused(world.phone.pull(limit=limit), 422, "sync.limit_out_of_range")
    assert _state(app) == before


def test_the_limits_themselves_are_accepted(world: World) -> None:
    for limit in (1, 1000):
        assert world.phone.pull(limit=limit).status_code == 200


def test_a_revoked_device_writes_nothing(app: Any, world: World) -> None:
    with app.extensions["fieldsync"].sessionmaker() as s, s.begin():
        from fieldsync.clock import utcnow

        s.get(Device, uuid.UUID(world.phone.device_id)).revoked_at = utcnow()
    before = _state(app)
    phone = world.phone
    resp = phone.send([phone.mutation(entity_id=world.iid, base_version=1, set={"address": "x"})])
    _refused(resp, 401, "auth.device_revoked")
    assert _state(app) == before
