"""evidence uploads and links: tus uploads, which records name which evidence, and the
back office's review of each photo on the records that reach the devices

Revision ID: 989ca74c5388
Revises: a7c4e0f1d2b3
Create Date: 2026-12-01 20:22:18.424745
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import fieldsync.db
from fieldsync.cases.triggers import create_triggers, drop_triggers

revision: str = "989ca74c5388"
down_revision: str | None = "a7c4e0f1d2b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evidence_links",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "entity", "entity_id", name=op.f("pk_evidence_links")),
    )
    with op.batch_alter_table("evidence_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evidence_links_entity_id"), ["entity_id"], unique=False
        )
    _link_existing_records()

    op.create_table(
        "uploads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("street_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=64), nullable=True),
        sa.Column(
            "refusal",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("deduplicated", sa.Boolean(), nullable=False),
        sa.Column("created_at", fieldsync.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", fieldsync.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", fieldsync.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", fieldsync.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_uploads_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["people.id"], name=op.f("fk_uploads_owner_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["street_id"], ["streets.id"], name=op.f("fk_uploads_street_id_streets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uploads_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_uploads_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_uploads_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_uploads_state"), ["state"], unique=False)

    # existing rows have no review yet (NULL reads as {}); on SQLite the sealed-inspection trigger
    # names every column, so it is made again to cover the new one
    drop_triggers(op.get_bind())
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "evidence_review",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )

    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "evidence_review",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
    create_triggers(op.get_bind(), later=False)


def _link_existing_records() -> None:
    """The records that already name evidence get their links, so that evidence arriving or
    reviewed later still reaches them."""
    conn = op.get_bind()
    links = sa.table(
        "evidence_links",
        sa.column("sha256", sa.String()),
        sa.column("entity", sa.String()),
        sa.column("entity_id", sa.Uuid()),
    )
    for entity, name in (("inspection", "inspections"), ("report", "reports")):
        records = sa.table(name, sa.column("id", sa.Uuid()), sa.column("evidence", sa.JSON()))
        rows = [
            {"sha256": sha256, "entity": entity, "entity_id": record_id}
            for record_id, hashes in conn.execute(sa.select(records.c.id, records.c.evidence))
            for sha256 in sorted(set(hashes or []))
        ]
        if rows:
            conn.execute(links.insert(), rows)


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("evidence_review")

    drop_triggers(op.get_bind())  # SQLite's batch mode rebuilds the table without them
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_column("evidence_review")
    create_triggers(op.get_bind(), later=False)

    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_state"))
        batch_op.drop_index(batch_op.f("ix_uploads_sha256"))
        batch_op.drop_index(batch_op.f("ix_uploads_owner_id"))
        batch_op.drop_index(batch_op.f("ix_uploads_expires_at"))

    op.drop_table("uploads")
    with op.batch_alter_table("evidence_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_links_entity_id"))

    op.drop_table("evidence_links")
