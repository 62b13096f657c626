"""Run Alembic from code: used by the CLI, `make run` and the tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> AlembicConfig:
    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate to `revision`; at head, also make what the schema's data needs from this code's
    models: the stored wire forms (sync payloads) of records that have none yet."""
    command.upgrade(alembic_config(database_url), revision)
    if revision == "head":
        from fieldsync.db import make_engine, make_sessionmaker
        from fieldsync.sync.feed import backfill_payloads

        engine = make_engine(database_url)
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                backfill_payloads(session)
        finally:
            engine.dispose()


@cache
def head_revision() -> str:
    """The revision this code's models need (the migrations' single head)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head
