"""Payloads for a database whose feed predates them: `fieldsync migrate` fills them from the
records once the schema is at head, a batch at a time, so that an upgraded database serves pulls
at once; and a pull that meets a record without one makes and keeps it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from conftest import own_database  # type: ignore[import-not-found]
from sqlalchemy import delete, inspect, select
from sqlalchemy.orm import Session

from fieldsync.db import make_engine, make_sessionmaker
from fieldsync.demo import STREET_A_CODE, demo_uuid, load_demo
from fieldsync.identity.models import Device
from fieldsync.identity.service import password_hasher
from fieldsync.inspections.models import Inspection
from fieldsync.migrate import alembic_config, upgrade
from fieldsync.sync import registry
from fieldsync.sync.feed import backfill_payloads
from fieldsync.sync.models import FeedPayload

BEFORE_PAYLOADS = "db3e7101faec"


def _inspections(session: Session, count: int, *, deleted: int) -> list[uuid.UUID]:
    """`count` inspections by cg_wang, the last `deleted` of them deleted; all their ids."""
    now = datetime.now(UTC)
    device = Device(
        id=uuid.uuid4(),
        person_id=demo_uuid("person", "cg_wang"),
        name="phone",
        token_hash=uuid.uuid4().hex * 2,
        token_expires_at=now + timedelta(days=1),
    )
    session.add(device)
    session.flush()
    records = [
        Inspection(
            id=uuid.uuid4(),
            street_id=demo_uuid("street", STREET_A_CODE),
            created_by_id=device.person_id,
            created_device_id=device.id,
            description=f"东华门大街 {n}",
            location={"lat": 39.9139, "lon": 116.4023, "accuracy_m": 8.5},
            deleted_at=now if n >= count - deleted else None,
        )
        for n in range(count)
    ]
    session.add_all(records)
    return [r.id for r in records]


def _payloads(session: Session) -> dict[tuple[str, uuid.UUID], tuple[int, Any]]:
    return {
        (p.entity, p.entity_id): (p.version, json.loads(p.data))
        for p in session.scalars(select(FeedPayload))
    }


def _serialized(session: Session) -> dict[tuple[str, uuid.UUID], tuple[int, Any]]:
    """Every live record of every synced entity, serialized as it is now."""
    out = {}
    for name, spec in registry.all_entities().items():
        for record in session.scalars(select(spec.model)):
            if getattr(record, "deleted_at", None) is None:
                out[(name, record.id)] = (record.version, spec.serialize(record))
    return out


def test_migrating_fills_payloads_from_the_records(tmp_path: Path) -> None:
    with own_database(tmp_path) as url:
        upgrade(url)
        engine = make_engine(url)
        make = make_sessionmaker(engine)
        try:
            with make() as s, s.begin():
                load_demo(s, hasher=password_hasher(time_cost=1, memory_kib=8))
                ids = _inspections(s, 4, deleted=1)
            with make() as s:
                written = _payloads(s)
            assert ("inspection", ids[0]) in written
            engine.dispose()

            command.downgrade(alembic_config(url), BEFORE_PAYLOADS)
            assert "sync_payloads" not in inspect(engine).get_table_names()
            engine.dispose()
            upgrade(url)

            with make() as s:
                filled = _payloads(s)
                assert filled == written  # what sealing the changes had stored
                assert filled == _serialized(s)
            assert ("inspection", ids[-1]) not in filled  # deleted: no payload
        finally:
            engine.dispose()


def test_the_backfill_pages_through_the_feed(app: Any, demo: Any, session: Session) -> None:
    with session.begin():
        ids = _inspections(session, 7, deleted=2)
    with session.begin():
        expected = _payloads(session)
        session.execute(delete(FeedPayload))
    with session.begin():
        stored = backfill_payloads(session, batch=3)  # 5 live inspections: two batches and one
    assert stored == len(expected)
    assert _payloads(session) == expected == _serialized(session)
    assert {("inspection", i) in expected for i in ids} == {True, False}


def test_a_pull_makes_a_missing_payload(app: Any, api: Any, demo: Any, session: Session) -> None:
    with session.begin():
        (iid,) = _inspections(session, 1, deleted=0)
    with session.begin():
        expected = _payloads(session)[("inspection", iid)]
        session.execute(delete(FeedPayload))  # as a database upgraded without the backfill
    resp = api.get("/sync/pull?limit=1000", "cg_liu")
    assert resp.status_code == 200
    pulled = {(c["entity"], c["id"]): c for c in resp.get_json()["changes"]}
    assert pulled[("inspection", str(iid))]["data"] == expected[1]
    session.expire_all()
    assert _payloads(session)[("inspection", iid)] == expected  # kept for the next pull
