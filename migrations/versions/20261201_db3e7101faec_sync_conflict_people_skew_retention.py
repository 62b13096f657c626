"""sync: the people a conflict concerns (both sides see it), the clock skew of every pushed
mutation, and what the retention prune needs

Revision ID: db3e7101faec
Revises: c7215637ac15
Create Date: 2026-12-01 20:48:56.216350
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fieldsync.db

revision: str = "db3e7101faec"
down_revision: str | None = "c7215637ac15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_conflict_people",
        sa.Column("conflict_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conflict_id"],
            ["sync_conflicts.id"],
            name=op.f("fk_sync_conflict_people_conflict_id_sync_conflicts"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_sync_conflict_people_person_id_people")
        ),
        sa.PrimaryKeyConstraint("conflict_id", "person_id", name=op.f("pk_sync_conflict_people")),
    )
    with op.batch_alter_table("sync_conflict_people", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_conflict_people_person_id"), ["person_id"], unique=False
        )

    with op.batch_alter_table("sync_mutations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("clock_skew_ms", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_sync_mutations_received_at"), ["received_at"], unique=False
        )

    # conflicts made before: their pushers keep seeing them
    op.execute(
        "INSERT INTO sync_conflict_people (conflict_id, person_id)"
        " SELECT id, person_id FROM sync_conflicts"
    )
    # never written: the people above replace it
    with op.batch_alter_table("sync_conflicts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_sync_conflicts_other_person_id_people"), type_="foreignkey"
        )
        batch_op.drop_column("other_person_id")


def downgrade() -> None:
    with op.batch_alter_table("sync_mutations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_mutations_received_at"))
        batch_op.drop_column("clock_skew_ms")

    with op.batch_alter_table("sync_conflicts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("other_person_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_sync_conflicts_other_person_id_people"),
            "people",
            ["other_person_id"],
            ["id"],
        )

    with op.batch_alter_table("sync_conflict_people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_conflict_people_person_id"))

    op.drop_table("sync_conflict_people")
