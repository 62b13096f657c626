"""the mutation log and the trace as json, not jsonb, on PostgreSQL: written once, read whole

Revision ID: 7e3a91c4d2f0
Revises: 5d1e0c2a9b47
Create Date: 2026-12-04 19:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7e3a91c4d2f0"
down_revision: str | None = "5d1e0c2a9b47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {"sync_mutations": ("payload", "result"), "events": ("changes",)}


def _retype(new: sa.types.TypeEngine, old: sa.types.TypeEngine, cast: str) -> None:
    # SQLite has one JSON type: nothing to do there. On PostgreSQL each table is rewritten once.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(
                table,
                column,
                type_=new,
                existing_type=old,
                existing_nullable=False,
                postgresql_using=f"{column}::{cast}",
            )


def upgrade() -> None:
    _retype(sa.JSON(), postgresql.JSONB(), "json")


def downgrade() -> None:
    _retype(postgresql.JSONB(), sa.JSON(), "jsonb")
