"""Contracts: migrations equal the models (on this run's database), one Alembic head, and
openapi.yaml equals what the app generates."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import fieldsync.models  # noqa: F401
from fieldsync.db import Base, make_engine, make_sessionmaker
from fieldsync.migrate import ROOT, alembic_config


def test_single_head(migrated_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(migrated_url))
    assert len(script.get_heads()) == 1


def test_migrations_match_models(app: Any) -> None:
    engine = app.extensions["fieldsync"].engine
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], diff


def test_openapi_yaml_is_current(app: Any) -> None:
    generated = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    committed = yaml.safe_load(Path(ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    assert committed == generated, "openapi.yaml is stale: run `make openapi` and commit it"


def test_upgrade_from_the_previous_revision_keeps_rows_and_guards(tmp_path: Path) -> None:
    """A database that already holds data (a street's roster, an inspection) goes down one
    revision and up again: the rows survive, and the sealed-inspection trigger still covers
    every column, the new ones included."""
    from datetime import UTC, datetime, timedelta

    import pytest
    from alembic import command
    from conftest import own_database  # type: ignore[import-not-found]
    from sqlalchemy import select, text
    from sqlalchemy.exc import DBAPIError

    from fieldsync.cases.triggers import SEALED_INSPECTION_MUTABLE
    from fieldsync.demo import STREET_A_CODE, demo_uuid, load_demo
    from fieldsync.identity.models import Device
    from fieldsync.identity.service import password_hasher
    from fieldsync.inspections.models import Inspection
    from fieldsync.migrate import upgrade

    with own_database(tmp_path) as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                load_demo(session, hasher=password_hasher(time_cost=1, memory_kib=8))
                now = datetime.now(UTC)
                person = demo_uuid("person", "cg_wang")
                device = Device(
                    id=uuid.uuid4(),
                    person_id=person,
                    name="phone",
                    token_hash="0" * 64,
                    token_expires_at=now + timedelta(days=1),
                )
                session.add(device)
                session.flush()
                inspection = Inspection(
                    id=uuid.uuid4(),
                    street_id=demo_uuid("street", STREET_A_CODE),
                    created_by_id=person,
                    created_device_id=device.id,
                    description="kept across migrations",
                )
                session.add(inspection)
            engine.dispose()

            # down through every revision since the one that added evidence_review, and up
            script = ScriptDirectory.from_config(alembic_config(url))
            previous = script.get_revision("989ca74c5388").down_revision
            command.downgrade(alembic_config(url), previous)
            upgrade(url)

            with engine.begin() as conn:
                table = Inspection.__table__
                row = conn.execute(
                    select(table.c.description, table.c.evidence_review).where(
                        table.c.id == inspection.id
                    )
                ).one()
                assert row.description == "kept across migrations"
                assert row.evidence_review is None  # no review yet: read as {}
                conn.execute(text("UPDATE inspections SET sealed_at = CURRENT_TIMESTAMP"))
            if engine.dialect.name == "sqlite":  # its trigger names the guarded columns
                with engine.connect() as conn:
                    trigger = conn.execute(
                        text("SELECT sql FROM sqlite_master WHERE name = :n"),
                        {"n": "inspections_refuse_sealed_update"},
                    ).scalar_one()
                guarded = set(table.c.keys()) - SEALED_INSPECTION_MUTABLE
                assert {c for c in guarded if f'NEW."{c}"' not in trigger} == set()
            with pytest.raises(DBAPIError, match="sealed inspection never changes"):
                with engine.begin() as conn:
                    conn.execute(text("UPDATE inspections SET evidence_review = '{}'"))
        finally:
            engine.dispose()
