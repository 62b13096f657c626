"""derivative retries: a photo whose derivation failed waits before the next try

Revision ID: 5d1e0c2a9b47
Revises: b43b66fba478
Create Date: 2026-12-02 06:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fieldsync.db
from fieldsync.cases.triggers import create_triggers, drop_triggers

revision: str = "5d1e0c2a9b47"
down_revision: str | None = "b43b66fba478"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN, not batch mode: a batch would rebuild the table on SQLite
    op.add_column(
        "evidence",
        sa.Column("derivative_attempts", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "evidence",
        sa.Column("derivatives_retry_at", fieldsync.db.UTCDateTime(timezone=True), nullable=True),
    )
    # the evidence triggers again: they leave the new columns free on sealed evidence
    drop_triggers(op.get_bind())
    create_triggers(op.get_bind())


def downgrade() -> None:
    drop_triggers(op.get_bind())
    op.drop_column("evidence", "derivatives_retry_at")
    op.drop_column("evidence", "derivative_attempts")
    create_triggers(op.get_bind())
