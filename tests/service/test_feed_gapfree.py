"""The pull cursor is gap-free with respect to commits: a transaction that commits after
another can never be skipped by a puller that already passed the other's position.

The race provoked here: writer 1 has taken its feed position and is paused just before COMMIT;
writer 2 writes and tries to commit; a device pulls; writer 1 commits; the device pulls again
from its cursor. With positions from a plain sequence, writer 2 commits first with the higher
position, the device's cursor passes writer 1's lower one, and writer 1's change is never
delivered. With fieldsync's feed, writer 2 waits for writer 1's commit, and the device gets both.
"""

from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from fieldsync.clock import utcnow
from fieldsync.demo import demo_uuid
from fieldsync.identity.models import Device
from fieldsync.inspections.models import Inspection
from fieldsync.org.models import Person
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


def test_late_commit_is_not_skipped(app: Any, demo: Any) -> None:
    services = app.extensions["fieldsync"]
    config = services.config
    make = services.sessionmaker
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
        principal = SimpleNamespace(
            street_id=person.street_id, person_id=person.id, roles=person.roles, device=device
        )

    def pull_all(cursor: str | None) -> tuple[set[str], str]:
        seen: set[str] = set()
        while True:
            with make() as s:
                page = pull(
                    s, principal=principal, cursor=cursor, limit=1000, now=utcnow(), config=config
                )
                s.rollback()
            seen |= {c["id"] for c in page["changes"] if c["entity"] == "inspection"}
            cursor = page["cursor"]
            if not page["has_more"]:
                return seen, cursor

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
