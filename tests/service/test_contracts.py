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


def test_primary_keys_match_models(app: Any) -> None:
    """Alembic's comparison does not look at primary keys: this does."""
    from sqlalchemy import inspect

    inspector = inspect(app.extensions["fieldsync"].engine)
    for table in Base.metadata.sorted_tables:
        reflected = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert reflected == [c.name for c in table.primary_key.columns], table.name


def test_openapi_yaml_is_current(app: Any) -> None:
    generated = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    committed = yaml.safe_load(Path(ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    assert committed == generated, "openapi.yaml is stale: run `make openapi` and commit it"


# the schema main's databases had before the evidence migrations (uploads, links, streets)
LAST_RELEASED_REVISION = "a7c4e0f1d2b3"


def test_upgrade_from_the_last_release_keeps_rows_and_guards(tmp_path: Path) -> None:
    """A database that already holds data (a street's roster, an inspection naming evidence,
    its custody) goes down to the last released revision and up again: the rows survive, the
    new columns are filled from them, everyone on the roster has a roster period, every archive
    trigger is there, and the sealed-inspection and evidence triggers still cover every column,
    the new ones included."""
    from datetime import UTC, datetime, timedelta

    import pytest
    from alembic import command
    from conftest import own_database  # type: ignore[import-not-found]
    from sqlalchemy import func as sa_func
    from sqlalchemy import select, text
    from sqlalchemy.exc import DBAPIError

    from fieldsync.cases.triggers import (
        EVIDENCE_BOOKKEEPING,
        EVIDENCE_DERIVATIVES,
        SEALED_INSPECTION_MUTABLE,
        trigger_names,
    )
    from fieldsync.demo import STREET_A_CODE, demo_uuid, load_demo
    from fieldsync.evidence.links import sync_links
    from fieldsync.evidence.models import CustodyEvent, Evidence, EvidenceLink
    from fieldsync.evidence.service import SYSTEM, add_custody
    from fieldsync.identity.models import Device
    from fieldsync.identity.service import password_hasher
    from fieldsync.inspections.models import Inspection
    from fieldsync.migrate import upgrade
    from fieldsync.org.models import Person, RosterPeriod

    with own_database(tmp_path) as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                load_demo(session, hasher=password_hasher(time_cost=1, memory_kib=8))
                now = datetime.now(UTC)
                person = demo_uuid("person", "cg_wang")
                street, sha = demo_uuid("street", STREET_A_CODE), "ab" * 32
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
                    street_id=street,
                    created_by_id=person,
                    created_device_id=device.id,
                    description="kept across migrations",
                    evidence=[sha],
                )
                session.add(inspection)
                evidence = Evidence(
                    street_id=street,
                    sha256=sha,
                    size=1,
                    content_type="image/jpeg",
                    uploaded_by_id=person,
                )
                session.add(evidence)
                session.flush()
                add_custody(session, evidence, "verified", SYSTEM, at=now)
                sync_links(session, inspection)
            engine.dispose()

            command.downgrade(alembic_config(url), LAST_RELEASED_REVISION)
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
                # links made for the records that named evidence; streets filled in
                link = conn.execute(select(EvidenceLink)).one()
                assert (link.entity_id, link.sha256, link.street_id) == (inspection.id, sha, street)
                assert conn.scalars(select(CustodyEvent.street_id)).all() == [street]
                conn.execute(text("UPDATE inspections SET sealed_at = CURRENT_TIMESTAMP"))
                people = conn.scalar(select(sa_func.count()).select_from(Person.__table__))
                periods = RosterPeriod.__table__
                open_periods = conn.scalar(
                    select(sa_func.count(sa_func.distinct(periods.c.person_id))).where(
                        periods.c.valid_to.is_(None)
                    )
                )
                assert people and open_periods == people
            dialect = engine.dialect.name
            with engine.connect() as conn:
                if dialect == "sqlite":
                    found = conn.execute(
                        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                    ).all()
                else:
                    found = conn.execute(
                        text("SELECT tgname, '' FROM pg_trigger WHERE NOT tgisinternal")
                    ).all()
            sql = dict(found)
            assert set(trigger_names(dialect)) <= set(sql)
            if dialect == "sqlite":  # its update triggers name the guarded columns
                for name, model, mutable in (
                    ("inspections_refuse_sealed_update", Inspection, SEALED_INSPECTION_MUTABLE),
                    (
                        "evidence_refuse_sealed_update",
                        Evidence,
                        EVIDENCE_DERIVATIVES | EVIDENCE_BOOKKEEPING,
                    ),
                ):
                    guarded = set(model.__table__.c.keys()) - mutable
                    assert {c for c in guarded if f'NEW."{c}"' not in sql[name]} == set(), name
            with pytest.raises(DBAPIError, match="sealed inspection never changes"):
                with engine.begin() as conn:
                    conn.execute(text("""UPDATE inspections SET evidence_review = '{"x": 1}'"""))
        finally:
            engine.dispose()
