"""roster history, review of unflagged inspections, evidence archive triggers: each person's
department, roles and active flag over time (the rule reads them as of the inspection);
submitted inspections nobody reviewed await a reviewer (`pending`); the database refuses
changes to the evidence of sealed inspections and their links, to archived cases' officers, and
to the chain of custody

Revision ID: c7215637ac15
Revises: cf66f812824d
Create Date: 2026-12-01 20:55:56.415972
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import fieldsync.db
from fieldsync.cases.triggers import create_triggers, drop_triggers

revision: str = "c7215637ac15"
down_revision: str | None = "cf66f812824d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    roster_periods = op.create_table(
        "roster_periods",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("department_id", sa.Uuid(), nullable=True),
        sa.Column(
            "roles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("valid_from", fieldsync.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("valid_to", fieldsync.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "valid_from IS NULL OR valid_to IS NULL OR valid_to > valid_from",
            name=op.f("ck_roster_periods_valid_period"),
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_roster_periods_department_id_departments"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_roster_periods_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roster_periods")),
    )
    with op.batch_alter_table("roster_periods", schema=None) as batch_op:
        batch_op.create_index(
            "ix_roster_periods_person_id_valid_from", ["person_id", "valid_from"], unique=False
        )

    # everyone on the roster gets a first period, open at both ends: what the roster says of
    # them now is all that is known of their past
    conn = op.get_bind()
    people = sa.table(
        "people",
        sa.column("id", sa.Uuid()),
        sa.column("department_id", sa.Uuid()),
        sa.column("active", sa.Boolean()),
    )
    person_roles = sa.table("person_roles", sa.column("person_id", sa.Uuid()), sa.column("role"))
    roles: dict[object, list[str]] = {}
    for person_id, role in conn.execute(sa.select(person_roles.c.person_id, person_roles.c.role)):
        roles.setdefault(person_id, []).append(role)
    rows = [
        {
            "person_id": person_id,
            "department_id": department_id,
            "roles": sorted(roles.get(person_id, [])),
            "active": active,
            "valid_from": None,
            "valid_to": None,
        }
        for person_id, department_id, active in conn.execute(
            sa.select(people.c.id, people.c.department_id, people.c.active)
        )
    ]
    if rows:
        op.bulk_insert(roster_periods, rows)

    # submitted inspections nobody has reviewed await a reviewer now (sealed ones never change)
    op.execute(
        "UPDATE inspections SET review_state = 'pending' "
        "WHERE review_state IS NULL AND submitted_at IS NOT NULL AND sealed_at IS NULL"
    )

    drop_triggers(conn)
    create_triggers(conn)


def downgrade() -> None:
    drop_triggers(op.get_bind())
    create_triggers(op.get_bind(), later=False)
    op.execute(
        "UPDATE inspections SET review_state = NULL "
        "WHERE review_state = 'pending' AND sealed_at IS NULL"
    )

    with op.batch_alter_table("roster_periods", schema=None) as batch_op:
        batch_op.drop_index("ix_roster_periods_person_id_valid_from")

    op.drop_table("roster_periods")
