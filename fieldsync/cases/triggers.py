"""Database triggers refusing UPDATE and DELETE of archived cases and sealed inspections, on
SQLite and PostgreSQL. Created by the migration `*_archive_triggers.py` (and made again by
migrations that add columns to `inspections`: on SQLite the trigger names every column), and on
`metadata.create_all` through the tables' after_create events (see register_ddl)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, Table, event, inspect, text

# what may still change on a sealed inspection: the mirror of its other cases' states (a
# sibling case goes on through its own lifecycle), with the version that carries it to devices
SEALED_INSPECTION_MUTABLE = frozenset({"cases", "version", "updated_at"})

_MUTABLE_ARRAY = "'{" + ",".join(sorted(SEALED_INSPECTION_MUTABLE)) + "}'::text[]"
CASE_MESSAGE = "case.archived: an archived case never changes"
INSPECTION_MESSAGE = "inspection.archived: a sealed inspection never changes"

_PG_FUNCTIONS = [
    f"""
CREATE OR REPLACE FUNCTION fieldsync_refuse_archived_case() RETURNS trigger AS $$
BEGIN
    IF OLD.state = 'archived' THEN
        RAISE EXCEPTION '{CASE_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql
""",
    f"""
CREATE OR REPLACE FUNCTION fieldsync_refuse_sealed_inspection() RETURNS trigger AS $$
BEGIN
    IF OLD.sealed_at IS NOT NULL THEN
        IF TG_OP = 'DELETE' OR (to_jsonb(NEW) - {_MUTABLE_ARRAY})
            IS DISTINCT FROM (to_jsonb(OLD) - {_MUTABLE_ARRAY}) THEN
            RAISE EXCEPTION '{INSPECTION_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql
""",
]


def _postgresql() -> list[str]:
    return [
        *_PG_FUNCTIONS,
        "CREATE TRIGGER cases_refuse_archived BEFORE UPDATE OR DELETE ON cases "
        "FOR EACH ROW EXECUTE FUNCTION fieldsync_refuse_archived_case()",
        "CREATE TRIGGER inspections_refuse_sealed BEFORE UPDATE OR DELETE ON inspections "
        "FOR EACH ROW EXECUTE FUNCTION fieldsync_refuse_sealed_inspection()",
    ]


def _sqlite(inspection_columns: list[str]) -> list[str]:
    changed = " OR ".join(
        f'NEW."{c}" IS NOT OLD."{c}"'
        for c in inspection_columns
        if c not in SEALED_INSPECTION_MUTABLE
    )
    return [
        "CREATE TRIGGER cases_refuse_archived_update BEFORE UPDATE ON cases "
        f"WHEN OLD.state = 'archived' BEGIN SELECT RAISE(ABORT, '{CASE_MESSAGE}'); END",
        "CREATE TRIGGER cases_refuse_archived_delete BEFORE DELETE ON cases "
        f"WHEN OLD.state = 'archived' BEGIN SELECT RAISE(ABORT, '{CASE_MESSAGE}'); END",
        "CREATE TRIGGER inspections_refuse_sealed_update BEFORE UPDATE ON inspections "
        f"WHEN OLD.sealed_at IS NOT NULL AND ({changed}) "
        f"BEGIN SELECT RAISE(ABORT, '{INSPECTION_MESSAGE}'); END",
        "CREATE TRIGGER inspections_refuse_sealed_delete BEFORE DELETE ON inspections "
        f"WHEN OLD.sealed_at IS NOT NULL BEGIN SELECT RAISE(ABORT, '{INSPECTION_MESSAGE}'); END",
    ]


_DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS cases_refuse_archived ON cases",
        "DROP TRIGGER IF EXISTS inspections_refuse_sealed ON inspections",
        "DROP FUNCTION IF EXISTS fieldsync_refuse_archived_case()",
        "DROP FUNCTION IF EXISTS fieldsync_refuse_sealed_inspection()",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS cases_refuse_archived_update",
        "DROP TRIGGER IF EXISTS cases_refuse_archived_delete",
        "DROP TRIGGER IF EXISTS inspections_refuse_sealed_update",
        "DROP TRIGGER IF EXISTS inspections_refuse_sealed_delete",
    ],
}


def _model_columns() -> list[str]:
    from fieldsync.inspections.models import Inspection

    return [c.name for c in Inspection.__table__.columns]


def statements(dialect: str, inspection_columns: list[str]) -> list[str]:
    if dialect == "postgresql":
        return _postgresql()
    if dialect == "sqlite":
        return _sqlite(inspection_columns)
    raise ValueError(f"no archive triggers for {dialect}")


def create_triggers(conn: Any) -> None:
    """Create the triggers on a connection (a migration's op.get_bind(), or a test's), over the
    columns `inspections` has in that database: a migration runs against the schema of its own
    revision, not against today's models."""
    columns = [c["name"] for c in inspect(conn).get_columns("inspections")]
    for sql in statements(conn.dialect.name, columns):
        conn.execute(text(sql))


def drop_triggers(conn: Any) -> None:
    for sql in _DROP[conn.dialect.name]:
        conn.execute(text(sql))


def register_ddl(cases: Table) -> None:
    """Create the triggers after `cases` (created after `inspections`) on create_all."""
    for dialect in ("postgresql", "sqlite"):
        for sql in statements(dialect, _model_columns()):
            event.listen(cases, "after_create", DDL(sql).execute_if(dialect=dialect))
