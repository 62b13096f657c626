"""Every read of the change feed during a push or a pull goes through an index, so that its
cost follows the records it touches, never the size of the feed.

Checked on the statements themselves (no EXPLAIN: on a test-sized table every plan is a scan):
each SELECT of `sync_feed` must pin a prefix of one of its indexes — the primary key
(entity, entity_id, audience) by entity and entity_id, or (audience, position) by audience
and a position bound.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Select, event
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, ColumnClause
from sqlalchemy.sql.selectable import Join

from fieldsync.demo import STREET_B_CODE, demo_uuid
from fieldsync.org.models import Person, Team
from fieldsync.sync.hlc import HLC
from fieldsync.sync.models import FeedEntry, FeedPayload

FEED = FeedEntry.__table__
EQUALS = {operator.eq, operators.eq, operators.in_op}
BOUNDS = {operator.gt, operator.ge, operators.gt, operators.ge, operators.lt, operators.le}


def _pinned(select: Select[Any]) -> tuple[set[str], set[str]]:
    """The feed columns this SELECT's WHERE fixes (= or IN) and bounds (<, >)."""
    fixed: set[str] = set()
    bounded: set[str] = set()
    if select.whereclause is None:
        return fixed, bounded
    for element in visitors.iterate(select.whereclause):
        if not isinstance(element, BinaryExpression):
            continue
        left = element.left
        if not isinstance(left, ColumnClause) or getattr(left, "table", None) is not FEED:
            continue
        if element.operator in EQUALS:
            fixed.add(left.name)
        elif element.operator in BOUNDS:
            bounded.add(left.name)
    return fixed, bounded


def _reads_feed(select: Select[Any]) -> bool:
    """Does this SELECT read sync_feed itself (in its FROM, or joined there)?"""

    def holds_feed(source: Any) -> bool:
        if isinstance(source, Join):
            return holds_feed(source.left) or holds_feed(source.right)
        return bool(source == FEED)  # annotated copies compare equal, never identical

    return any(holds_feed(source) for source in select.get_final_froms())


def unindexed_feed_reads(statements: list[Any]) -> list[str]:
    """The SELECTs of sync_feed (also inside unions and subqueries, also joined to other
    tables) that pin no index prefix."""
    bad = []
    for statement in statements:
        for element in visitors.iterate(statement):
            if not isinstance(element, Select) or not _reads_feed(element):
                continue
            fixed, bounded = _pinned(element)
            by_primary_key = {"entity", "entity_id"} <= fixed
            by_audience = "audience" in fixed and "position" in fixed | bounded
            if not (by_primary_key or by_audience):
                bad.append(str(element))
    return bad


@contextmanager
def captured() -> Iterator[list[Any]]:
    statements: list[Any] = []

    def record(state: ORMExecuteState) -> None:
        statements.append(state.statement)

    event.listen(Session, "do_orm_execute", record)
    try:
        yield statements
    finally:
        event.remove(Session, "do_orm_execute", record)


def _push(api: Any, token: str, device_id: str, seq: int, entity_id: str) -> Any:
    return api.client.post(
        "/api/v1/sync/push",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "protocol": 1,
            "device_id": device_id,
            "mutations": [
                {
                    "device_seq": seq,
                    "mutation_id": str(uuid.uuid4()),
                    "type": "inspection.upsert",
                    "entity_id": entity_id,
                    "base_version": 0 if seq == 1 else 1,
                    "device_time": "2026-11-25T08:00:00Z",
                    "hlc": str(HLC(1_700_000_000_000 + seq, 0, "q")),
                    "set": {"matter_code": "CG-001", "description": f"edit {seq}"},
                }
            ],
        },
    )


def _pull_all(api: Any, token: str, cursor: str | None) -> tuple[list[dict[str, Any]], str]:
    changes: list[dict[str, Any]] = []
    while True:
        query: dict[str, Any] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        resp = api.client.get(
            "/api/v1/sync/pull",
            headers={"Authorization": f"Bearer {token}"},
            query_string=query,
        )
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        changes += body["changes"]
        cursor = body["cursor"]
        if not body["has_more"]:
            return changes, cursor


def test_the_checker_sees_a_scan() -> None:
    from sqlalchemy import select

    assert unindexed_feed_reads([select(FeedEntry.entity).where(FeedEntry.entity_id == 1)])
    assert unindexed_feed_reads(
        [select(FeedEntry.entity).where(FeedEntry.audience.in_(["a"]), FeedEntry.entity_id == 1)]
    )
    assert not unindexed_feed_reads(
        [select(FeedEntry).where(FeedEntry.entity == "x", FeedEntry.entity_id.in_([1]))]
    )
    # the pull joins the payloads: the feed is still what must be read by an index
    joined = select(FeedEntry.entity, FeedPayload.data).outerjoin(
        FeedPayload, FeedPayload.entity_id == FeedEntry.entity_id
    )
    assert unindexed_feed_reads([joined.where(FeedEntry.op == "upsert")])
    assert not unindexed_feed_reads(
        [joined.where(FeedEntry.audience == "all", FeedEntry.position > 0)]
    )


def test_push_reads_the_feed_by_key(api: Any, demo: Any) -> None:
    device_id = str(uuid.uuid4())
    token = api.login("cg_wang", device_id=device_id)
    entity_id = str(uuid.uuid4())
    with captured() as statements:
        for seq in (1, 2):  # a new record, then an edit of a record the feed holds
            resp = _push(api, token, device_id, seq, entity_id)
            assert resp.status_code == 200, resp.get_json()
            assert resp.get_json()["results"][0]["status"] == "applied"
    assert any(FEED in s.get_final_froms() for s in statements if isinstance(s, Select))
    assert unindexed_feed_reads(statements) == []


def _reads_of_held_audiences(statements: list[Any]) -> list[Any]:
    """The seal's read of which audiences the feed holds records in (to replace those rows,
    tombstone the audiences a record left): feed rows selected by entity_id, with audience."""
    return [
        s
        for s in statements
        if isinstance(s, Select)
        and _reads_feed(s)
        and "audience" in {c.name for c in s.selected_columns}
        and "entity_id" in _pinned(s)[0]
    ]


def test_a_record_made_by_the_push_needs_no_read_of_its_feed_rows(api: Any, demo: Any) -> None:
    """Its id has no feed rows to replace (at most an earlier record's tombstones, which stay
    as they are): the seal reads the feed rows only of records that existed before."""
    device_id = str(uuid.uuid4())
    token = api.login("cg_wang", device_id=device_id)
    entity_id = str(uuid.uuid4())
    with captured() as creating:
        assert _push(api, token, device_id, 1, entity_id).get_json()["results"][0]["version"] == 1
    with captured() as editing:
        assert _push(api, token, device_id, 2, entity_id).get_json()["results"][0]["version"] == 2
    assert _reads_of_held_audiences(creating) == []
    assert len(_reads_of_held_audiences(editing)) == 1


def test_pulls_read_the_feed_by_index_also_when_evicting(app: Any, api: Any, demo: Any) -> None:
    """An officer moved to the other street: the device evicts what it may no longer see."""
    writer_device = str(uuid.uuid4())
    writer = api.login("cg_wang", device_id=writer_device)
    entity_id = str(uuid.uuid4())
    assert _push(api, writer, writer_device, 1, entity_id).status_code == 200
    mover = api.login("cg_liu")
    with captured() as statements:
        first, cursor = _pull_all(api, mover, None)
    assert entity_id in {c["id"] for c in first}

    # no API moves a person to another street (PATCH /officers keeps the street)
    with app.extensions["fieldsync"].sessionmaker() as s, s.begin():
        person = s.get(Person, demo_uuid("person", "cg_liu"))
        street_b = demo_uuid("street", STREET_B_CODE)
        person.street_id = street_b
        person.team_id = s.query(Team).filter_by(street_id=street_b).one().id
        person.grid_id = None

    with captured() as more:
        changes, _ = _pull_all(api, mover, cursor)
    evicted = [c for c in changes if c["id"] == entity_id]
    assert evicted == [
        {
            "entity": "inspection",
            "id": entity_id,
            "op": "delete",
            "reason": "out_of_scope",
            "version": 1,
        }
    ]
    assert unindexed_feed_reads(statements + more) == []
