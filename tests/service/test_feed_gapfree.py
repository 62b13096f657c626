"""The pull cursor is gap-free with respect to commits: a transaction that commits after
another can never be skipped by a puller that already passed the other's position.

The first race provoked here: writer 1 has taken its feed position and is paused just before COMMIT;
writer 2 writes and tries to commit; a device pulls; writer 1 commits; the device pulls again
from its cursor. With positions from a plain sequence, writer 2 commits first with the higher
position, the device's cursor passes writer 1's lower one, and writer 1's change is never
delivered. With fieldsync's feed, writer 2 waits for writer 1's commit, and the device gets both.

The second: a device reads several audiences ("all", "person:", "staff:", "street:"). Two
changes commit while its pull runs, a matter ("all") and then an inspection ("staff:"). Were
the audiences read by separate statements (each its own READ COMMITTED snapshot), the "all"
read could miss the matter, a later read see the inspection, and the cursor pass both.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event

from fieldsync.clock import utcnow
from fieldsync.demo import demo_uuid
from fieldsync.identity.models import Device
from fieldsync.inspections.models import Inspection
from fieldsync.org.models import Matter, Person
from fieldsync.sync.feed import seal
from fieldsync.sync.pull import pull

pytestmark = pytest.mark.skipif(
    __import__("os").environ.get("FIELDSYNC_TEST_DB", "sqlite") != "postgresql",
    reason="SQLite serialises whole write transactions (BEGIN IMMEDIATE): this interleaving "
    "cannot happen there; it is provoked on PostgreSQL",
)


def _inspection(person: Person, device_id: uuid.UUID) -> Inspection:
    now = utcnow()
    return Inspection(
        id=uuid.uuid4(),
        street_id=person.street_id,
        created_by_id=person.id,
        created_device_id=device_id,
        status="draft",
        version=1,
        description="race",
        present=[],
        findings=[],
        measures=[],
        evidence=[],
        flags=[],
        decisions=[],
        evidence_missing=[],
        cases=[],
        field_clocks={},
        created_at=now,
        updated_at=now,
    )


def _puller(app: Any) -> SimpleNamespace:
    """A device of cg_wang's, as the principal a pull is made for."""
    make = app.extensions["fieldsync"].sessionmaker
    with make() as s, s.begin():
        person = s.get(Person, demo_uuid("person", "cg_wang"))
        device = Device(
            id=uuid.uuid4(),
            person_id=person.id,
            name="puller",
            token_hash=uuid.uuid4().hex * 2,
            token_expires_at=utcnow(),
        )
        s.add(device)
    with make() as s:
        person = s.get(Person, demo_uuid("person", "cg_wang"))
        device = s.get(Device, device.id)
        return SimpleNamespace(
            street_id=person.street_id, person_id=person.id, roles=person.roles, device=device
        )


def _pull_all(app: Any, principal: Any, cursor: str | None) -> tuple[set[str], str]:
    """Pull until has_more is false; the ids of the inspections and matters received."""
    services = app.extensions["fieldsync"]
    seen: set[str] = set()
    while True:
        with services.sessionmaker() as s:
            page = json.loads(
                pull(
                    s,
                    principal=principal,
                    cursor=cursor,
                    limit=1000,
                    now=utcnow(),
                    config=services.config,
                )
            )
            s.rollback()
        seen |= {c["id"] for c in page["changes"] if c["entity"] in ("inspection", "matter")}
        cursor = page["cursor"]
        if not page["has_more"]:
            return seen, cursor


def test_late_commit_is_not_skipped(app: Any, demo: Any) -> None:
    make = app.extensions["fieldsync"].sessionmaker
    principal = _puller(app)
    device = principal.device

    def pull_all(cursor: str | None) -> tuple[set[str], str]:
        return _pull_all(app, principal, cursor)

    _, cursor = pull_all(None)

    writer1 = make()
    person1 = writer1.get(Person, demo_uuid("person", "cg_wang"))
    first = _inspection(person1, device.id)
    writer1.add(first)
    writer1.flush()
    seal(writer1)  # writer 1 now holds its feed position; its COMMIT is still to come

    second_id: list[uuid.UUID] = []

    def writer2_run() -> None:
        with make() as s:
            p = s.get(Person, demo_uuid("person", "cg_liu"))
            record = _inspection(p, device.id)
            s.add(record)
            s.commit()
            second_id.append(record.id)

    writer2 = threading.Thread(target=writer2_run)
    writer2.start()
    writer2.join(timeout=1.0)  # a plain sequence would let writer 2 commit here

    seen_between, cursor = pull_all(cursor)
    assert str(first.id) not in seen_between  # not committed yet

    writer1.commit()
    writer1.close()
    writer2.join(timeout=30)
    assert not writer2.is_alive()

    seen_after, _ = pull_all(cursor)
    delivered = seen_between | seen_after
    assert str(first.id) in delivered, "writer 1's change was skipped by the cursor"
    assert str(second_id[0]) in delivered


def test_changes_committed_during_a_pull_are_not_skipped(app: Any, demo: Any) -> None:
    services = app.extensions["fieldsync"]
    make = services.sessionmaker
    principal = _puller(app)
    _, cursor = _pull_all(app, principal, None)

    matter_id = demo_uuid("matter", "CG-001")
    inspection_id: list[uuid.UUID] = []

    def commit_two_changes() -> None:
        with make() as s, s.begin():
            s.get(Matter, matter_id).name_en = "Street vending on the road (edited)"
        with make() as s, s.begin():
            person = s.get(Person, demo_uuid("person", "cg_liu"))
            record = _inspection(person, principal.device.id)
            s.add(record)
            inspection_id.append(record.id)

    pulling: list[Any] = []

    def after_feed_read(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # right after the pull's first read of the feed, before any other: the two commits
        if conn in pulling and re.search(r"FROM sync_feed\b(?!_)", statement) and not inspection_id:
            commit_two_changes()

    def pull_once(cursor: str) -> tuple[set[str], str, bool]:
        with make() as s:
            pulling.append(s.connection())
            page = json.loads(
                pull(
                    s,
                    principal=principal,
                    cursor=cursor,
                    limit=1000,
                    now=utcnow(),
                    config=services.config,
                )
            )
            s.rollback()
            pulling.clear()
        ids = {c["id"] for c in page["changes"] if c["entity"] in ("inspection", "matter")}
        return ids, page["cursor"], page["has_more"]

    event.listen(services.engine, "after_cursor_execute", after_feed_read)
    try:
        during, cursor, has_more = pull_once(cursor)
    finally:
        event.remove(services.engine, "after_cursor_execute", after_feed_read)
    assert inspection_id, "the hook did not run: the pull read no feed rows"
    assert not has_more
    after, _ = _pull_all(app, principal, cursor)
    delivered = during | after
    assert str(inspection_id[0]) in delivered
    assert str(matter_id) in delivered, "the matter's change was skipped by the cursor"


def test_a_prune_committed_during_a_pull_expires_the_cursor(app: Any, demo: Any) -> None:
    """A prune that removes a tombstone the cursor needs, committed after the pull began but
    before it read the feed: the pull must answer 410, not a page without the delete."""
    from datetime import timedelta

    from fieldsync.errors import DomainError
    from fieldsync.jobs import prune_sync

    services = app.extensions["fieldsync"]
    make = services.sessionmaker
    principal = _puller(app)
    _, cursor = _pull_all(app, principal, None)
    with make() as s, s.begin():
        record = _inspection(s.get(Person, demo_uuid("person", "cg_liu")), principal.device.id)
        s.add(record)
    with make() as s, s.begin():
        s.get(Inspection, record.id).deleted_at = utcnow()  # a tombstone above the cursor

    pruned: list[int] = []
    pulling: list[Any] = []

    def after_counter_read(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if conn in pulling and "FROM sync_feed_counter" in statement and not pruned:
            pruned.append(prune_sync(services, now=utcnow() + timedelta(days=365)))

    event.listen(services.engine, "after_cursor_execute", after_counter_read)
    try:
        with make() as s:
            pulling.append(s.connection())
            with pytest.raises(DomainError) as raised:
                pull(
                    s,
                    principal=principal,
                    cursor=cursor,
                    limit=1000,
                    now=utcnow(),
                    config=services.config,
                )
            s.rollback()
    finally:
        event.remove(services.engine, "after_cursor_execute", after_counter_read)
    assert pruned and pruned[0] >= 1, "the hook did not prune the tombstone"
    assert raised.value.code == "sync.cursor_expired"
