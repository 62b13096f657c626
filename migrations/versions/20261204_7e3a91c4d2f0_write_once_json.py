"""the mutation log and the trace as json, not jsonb, on PostgreSQL: written once, read whole

Revision ID: 7e3a91c4d2f0
Revises: 5d1e0c2a9b47
Create Date: 2026-12-04 19:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7e3a91c4d2f0"
down_revision: str | None = "5d1e0c2a9b47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {"sync_mutations": ("payload", "result"), "events": ("changes",)}


def _retype(to: str) -> None:
    # SQLite has one JSON type: nothing to do there. On PostgreSQL one ALTER TABLE per table, so
    # that each table is rewritten once, not once per column.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        changes = ", ".join(f"ALTER COLUMN {c} TYPE {to} USING {c}::{to}" for c in columns)
        op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
