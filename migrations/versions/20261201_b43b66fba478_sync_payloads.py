"""sync payloads: each record's wire form, stored once when its change is sealed, for the pull

Revision ID: b43b66fba478
Revises: db3e7101faec
Create Date: 2026-12-01 21:56:20.317568
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b43b66fba478"
down_revision: str | None = "db3e7101faec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_payloads",
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("entity", "entity_id", name=op.f("pk_sync_payloads")),
    )
    # filled by `fieldsync migrate` once the schema is at head (fieldsync.migrate.upgrade:
    # the models then match the tables), and by the pull for any record still without one


def downgrade() -> None:
    op.drop_table("sync_payloads")
