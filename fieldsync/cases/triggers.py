"""Database triggers that keep archived materials unchanged (留存备查) below the ORM, on SQLite
and PostgreSQL: archived cases and their officers, sealed inspections, the evidence a sealed
inspection names and its links, and the append-only chain of custody.

Made by the migrations (`*_archive_triggers.py`, and again by every migration that changes the
columns of `inspections` or `evidence`: on SQLite their triggers name every column, and a batch
rebuild of a table drops its triggers), and on `metadata.create_all` (see register_ddl).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, event, inspect, text

# what may still change on a sealed inspection: the mirror of its other cases' states (a
# sibling case goes on through its own lifecycle), with the version that carries it to devices
SEALED_INSPECTION_MUTABLE = frozenset({"cases", "version", "updated_at"})
# what may still happen to the evidence of a sealed inspection: its derivatives (thumbnail,
# GPS-free display copy) made once, from nothing; the original and its record stay as they are
EVIDENCE_DERIVATIVES = frozenset({"thumbnail_sha256", "display_sha256", "derivatives_at"})
# and the derivation job's count of its failed tries, which says nothing about the evidence
EVIDENCE_BOOKKEEPING = frozenset({"derivative_attempts", "derivatives_retry_at"})

CASE_MESSAGE = "case.archived: an archived case never changes"
INSPECTION_MESSAGE = "inspection.archived: a sealed inspection never changes"
EVIDENCE_MESSAGE = "evidence.archived: the evidence of an archived case never changes"
CUSTODY_MESSAGE = "evidence.custody_append_only: the chain of custody is only ever added to"

# the evidence rows named by a sealed inspection (SQL over OLD, shared by both dialects)
_SEALED_EVIDENCE = (
    "EXISTS (SELECT 1 FROM evidence_links l JOIN inspections i ON i.id = l.entity_id "
    "WHERE l.street_id = OLD.street_id AND l.sha256 = OLD.sha256 AND l.entity = 'inspection' "
    "AND i.sealed_at IS NOT NULL)"
)
_SEALED_LINK = (
    "OLD.entity = 'inspection' AND EXISTS (SELECT 1 FROM inspections i "
    "WHERE i.id = OLD.entity_id AND i.sealed_at IS NOT NULL)"
)


def _archived_case(row: str) -> str:
    return f"EXISTS (SELECT 1 FROM cases c WHERE c.id = {row}.case_id AND c.state = 'archived')"


def _pg_array(names: Iterable[str]) -> str:
    return "'{" + ",".join(sorted(names)) + "}'::text[]"


def _raise_pg(message: str) -> str:
    return f"RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';"


def _raise_sqlite(message: str) -> str:
    return f"BEGIN SELECT RAISE(ABORT, '{message}'); END"


@dataclass(frozen=True)
class _Trigger:
    name: str
    table: str
    function: str  # PostgreSQL's trigger function
    tables: frozenset[str]  # every table its SQL reads: made only where they all exist
    first: bool = False  # one of the first two (a7c4e0f1d2b3); the others came later


_TRIGGERS = (
    _Trigger(
        "cases_refuse_archived",
        "cases",
        "fieldsync_refuse_archived_case",
        frozenset({"cases"}),
        first=True,
    ),
    _Trigger(
        "inspections_refuse_sealed",
        "inspections",
        "fieldsync_refuse_sealed_inspection",
        frozenset({"inspections"}),
        first=True,
    ),
    _Trigger(
        "case_officers_refuse_archived",
        "case_officers",
        "fieldsync_refuse_archived_case_officer",
        frozenset({"case_officers", "cases"}),
    ),
    _Trigger(
        "evidence_refuse_sealed",
        "evidence",
        "fieldsync_refuse_sealed_evidence",
        frozenset({"evidence", "evidence_links", "inspections"}),
    ),
    _Trigger(
        "evidence_links_refuse_sealed",
        "evidence_links",
        "fieldsync_refuse_sealed_evidence_link",
        frozenset({"evidence_links", "inspections"}),
    ),
    _Trigger(
        "evidence_custody_append_only",
        "evidence_custody",
        "fieldsync_refuse_custody_change",
        frozenset({"evidence_custody"}),
    ),
)


def _postgresql(trigger: _Trigger) -> list[str]:
    mutable = _pg_array(SEALED_INSPECTION_MUTABLE)
    derivatives = _pg_array(EVIDENCE_DERIVATIVES | EVIDENCE_BOOKKEEPING)
    refilled = " OR ".join(
        f"(OLD.{c} IS NOT NULL AND NEW.{c} IS DISTINCT FROM OLD.{c})"
        for c in sorted(EVIDENCE_DERIVATIVES)
    )
    old_archived, new_archived = _archived_case("OLD"), _archived_case("NEW")
    body = {
        "cases_refuse_archived": f"""IF OLD.state = 'archived' THEN
        {_raise_pg(CASE_MESSAGE)}
    END IF;""",
        "inspections_refuse_sealed": f"""IF OLD.sealed_at IS NOT NULL THEN
        IF TG_OP = 'DELETE' THEN {_raise_pg(INSPECTION_MESSAGE)} END IF;
        IF (to_jsonb(NEW) - {mutable}) IS DISTINCT FROM (to_jsonb(OLD) - {mutable}) THEN
            {_raise_pg(INSPECTION_MESSAGE)}
        END IF;
    END IF;""",
        "case_officers_refuse_archived": f"""IF TG_OP <> 'INSERT' THEN
        IF {old_archived} THEN {_raise_pg(CASE_MESSAGE)} END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF {new_archived} THEN {_raise_pg(CASE_MESSAGE)} END IF;
    END IF;""",
        "evidence_refuse_sealed": f"""IF {_SEALED_EVIDENCE} THEN
        IF TG_OP = 'DELETE' THEN {_raise_pg(EVIDENCE_MESSAGE)} END IF;
        IF (to_jsonb(NEW) - {derivatives}) IS DISTINCT FROM (to_jsonb(OLD) - {derivatives})
            OR {refilled} THEN
            {_raise_pg(EVIDENCE_MESSAGE)}
        END IF;
    END IF;""",
        "evidence_links_refuse_sealed": f"""IF {_SEALED_LINK} THEN
        {_raise_pg(INSPECTION_MESSAGE)}
    END IF;""",
        "evidence_custody_append_only": _raise_pg(CUSTODY_MESSAGE),
    }[trigger.name]
    operations = "UPDATE OR DELETE"
    if trigger.table == "case_officers":
        operations = "INSERT OR " + operations
    return [
        f"""CREATE OR REPLACE FUNCTION {trigger.function}() RETURNS trigger AS $$
BEGIN
    {body}
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql""",
        f"CREATE TRIGGER {trigger.name} BEFORE {operations} ON {trigger.table} "
        f"FOR EACH ROW EXECUTE FUNCTION {trigger.function}()",
    ]


def _changed(columns: Iterable[str], unchanged: frozenset[str]) -> str:
    return " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in columns if c not in unchanged)


def _sqlite(trigger: _Trigger, columns: dict[str, list[str]]) -> list[str]:
    """One trigger per operation (SQLite has no TG_OP); UPDATE triggers name every guarded
    column, so they are made again whenever the table's columns change."""
    name, table = trigger.name, trigger.table
    if name == "cases_refuse_archived":
        when = {"update": "OLD.state = 'archived'", "delete": "OLD.state = 'archived'"}
        message = CASE_MESSAGE
    elif name == "inspections_refuse_sealed":
        changed = _changed(columns["inspections"], SEALED_INSPECTION_MUTABLE)
        when = {
            "update": f"OLD.sealed_at IS NOT NULL AND ({changed})",
            "delete": "OLD.sealed_at IS NOT NULL",
        }
        message = INSPECTION_MESSAGE
    elif name == "case_officers_refuse_archived":
        old_archived, new_archived = _archived_case("OLD"), _archived_case("NEW")
        when = {
            "insert": new_archived,
            "update": f"{old_archived} OR {new_archived}",
            "delete": old_archived,
        }
        message = CASE_MESSAGE
    elif name == "evidence_refuse_sealed":
        changed = _changed(columns["evidence"], EVIDENCE_DERIVATIVES | EVIDENCE_BOOKKEEPING)
        refilled = " OR ".join(
            f'(OLD."{c}" IS NOT NULL AND NEW."{c}" IS NOT OLD."{c}")'
            for c in sorted(EVIDENCE_DERIVATIVES)
        )
        when = {
            "update": f"({changed} OR {refilled}) AND {_SEALED_EVIDENCE}",
            "delete": _SEALED_EVIDENCE,
        }
        message = EVIDENCE_MESSAGE
    elif name == "evidence_links_refuse_sealed":
        when = {"update": _SEALED_LINK, "delete": _SEALED_LINK}
        message = INSPECTION_MESSAGE
    else:
        when = {"update": "1", "delete": "1"}
        message = CUSTODY_MESSAGE
    return [
        f"CREATE TRIGGER {name}_{op} BEFORE {op.upper()} ON {table} "
        f"WHEN {condition} {_raise_sqlite(message)}"
        for op, condition in when.items()
    ]


def _drop(dialect: str, trigger: _Trigger) -> list[str]:
    if dialect == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {trigger.name} ON {trigger.table}",
            f"DROP FUNCTION IF EXISTS {trigger.function}()",
        ]
    return [f"DROP TRIGGER IF EXISTS {trigger.name}_{op}" for op in ("insert", "update", "delete")]


def statements(dialect: str, columns: dict[str, list[str]], *, later: bool = True) -> list[str]:
    """The CREATE statements for a database whose tables have `columns` (table -> names):
    every trigger whose tables all exist there; only the first two unless `later`."""
    if dialect not in ("postgresql", "sqlite"):
        raise ValueError(f"no archive triggers for {dialect}")
    wanted = [t for t in _TRIGGERS if (t.first or later) and t.tables <= set(columns)]
    if dialect == "postgresql":
        return [sql for t in wanted for sql in _postgresql(t)]
    return [sql for t in wanted for sql in _sqlite(t, columns)]


def _columns(conn: Any) -> dict[str, list[str]]:
    schema = inspect(conn)
    return {t: [c["name"] for c in schema.get_columns(t)] for t in schema.get_table_names()}


def create_triggers(conn: Any, *, later: bool = True) -> None:
    """Create the triggers on a connection (a migration's op.get_bind(), or a test's), over the
    tables and columns of that database: a migration runs against the schema of its own
    revision, not against today's models. `later=False` makes only the first ones (the archived
    case and the sealed inspection), as the revisions before the evidence triggers had them."""
    for sql in statements(conn.dialect.name, _columns(conn), later=later):
        conn.execute(text(sql))


def drop_triggers(conn: Any) -> None:
    tables = set(inspect(conn).get_table_names())
    for trigger in _TRIGGERS:
        if trigger.table in tables:
            for sql in _drop(conn.dialect.name, trigger):
                conn.execute(text(sql))


def trigger_names(dialect: str) -> list[str]:
    """The names the database knows the triggers by (a contract test checks they all exist)."""
    if dialect == "postgresql":
        return [t.name for t in _TRIGGERS]
    ops = {"case_officers_refuse_archived": ("insert", "update", "delete")}
    return [f"{t.name}_{op}" for t in _TRIGGERS for op in ops.get(t.name, ("update", "delete"))]


def register_ddl(metadata: MetaData) -> None:
    """Create the triggers on create_all, once every table they read exists."""

    def _after_create(_target: Any, connection: Any, **_kw: Any) -> None:
        create_triggers(connection)

    event.listen(metadata, "after_create", _after_create)
