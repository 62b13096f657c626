"""Contracts: migrations equal the models (on this run's database), one Alembic head, and
openapi.yaml equals what the app generates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import fieldsync.models  # noqa: F401
from fieldsync.db import Base
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
