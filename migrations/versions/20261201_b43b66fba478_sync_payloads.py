"""sync payloads: each record's wire form, stored once when its change is sealed, for the pull

Revision ID: b43b66fba478
Revises: db3e7101faec
Create Date: 2026-12-01 21:56:20.317568
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

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
    _store_existing_payloads()


def _store_existing_payloads() -> None:
    """Every record the feed already holds gets its payload, so that an upgraded database
    serves pulls at once. Made by the code's own serialisation (the only definition of a
    record's wire form), hence the ORM here, in batches so that a big feed fits in memory; the
    session joins the migration's transaction and never commits it. The models are those of the
    code being installed, so they must match the synced tables as this revision leaves them: a
    later migration that adds a column to one of them takes this call over (at its end) and
    this one goes."""
    from fieldsync.sync.feed import backfill_payloads

    session = Session(bind=op.get_bind(), join_transaction_mode="rollback_only")
    try:
        backfill_payloads(session)
    finally:
        session.close()


def downgrade() -> None:
    op.drop_table("sync_payloads")
