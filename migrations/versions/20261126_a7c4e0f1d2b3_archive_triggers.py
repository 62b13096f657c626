"""archive triggers: the database refuses to change archived cases and sealed inspections

Hand-written: autogenerate cannot see triggers.

Revision ID: a7c4e0f1d2b3
Revises: 965522a4f059
"""

from collections.abc import Sequence

from alembic import op

from fieldsync.cases.triggers import create_triggers, drop_triggers


revision: str = "a7c4e0f1d2b3"
down_revision: str | None = "965522a4f059"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_triggers(op.get_bind(), later=False)


def downgrade() -> None:
    drop_triggers(op.get_bind())
