"""evidence per street: one evidence row per street and hash (the bytes stay stored once), and
the street on custody events and evidence links, so that a street sees only its own

Revision ID: cf66f812824d
Revises: 989ca74c5388
Create Date: 2026-12-01 20:45:00.194436
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'cf66f812824d'
down_revision: str | None = '989ca74c5388'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # the primary key becomes (street_id, sha256); autogenerate does not see primary keys
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_street_id"))
        batch_op.drop_constraint("pk_evidence", type_="primary")
        batch_op.create_primary_key("pk_evidence", ["street_id", "sha256"])

    # existing rows take the street of their evidence (one per hash until now) or record
    for table in ("evidence_custody", "evidence_links"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("street_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE evidence_custody SET street_id = "
        "(SELECT e.street_id FROM evidence e WHERE e.sha256 = evidence_custody.sha256)"
    )
    op.execute(
        "UPDATE evidence_links SET street_id = COALESCE("
        "(SELECT i.street_id FROM inspections i WHERE evidence_links.entity = 'inspection' "
        "AND i.id = evidence_links.entity_id), "
        "(SELECT r.street_id FROM reports r WHERE evidence_links.entity = 'report' "
        "AND r.id = evidence_links.entity_id))"
    )

    with op.batch_alter_table("evidence_custody", schema=None) as batch_op:
        batch_op.alter_column("street_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_index(batch_op.f("ix_evidence_custody_sha256_id"))
        batch_op.create_index(
            "ix_evidence_custody_street_id_sha256_id", ["street_id", "sha256", "id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_evidence_custody_street_id_streets"), "streets", ["street_id"], ["id"]
        )

    with op.batch_alter_table("evidence_links", schema=None) as batch_op:
        batch_op.alter_column("street_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_evidence_links_street_id_streets"), "streets", ["street_id"], ["id"]
        )


def downgrade() -> None:
    # only possible while no hash is held by two streets
    with op.batch_alter_table("evidence_links", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_evidence_links_street_id_streets"), type_="foreignkey"
        )
        batch_op.drop_column("street_id")

    with op.batch_alter_table("evidence_custody", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_evidence_custody_street_id_streets"), type_="foreignkey"
        )
        batch_op.drop_index("ix_evidence_custody_street_id_sha256_id")
        batch_op.create_index(
            batch_op.f("ix_evidence_custody_sha256_id"), ["sha256", "id"], unique=False
        )
        batch_op.drop_column("street_id")

    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_constraint("pk_evidence", type_="primary")
        batch_op.create_primary_key("pk_evidence", ["sha256"])
        batch_op.create_index(batch_op.f("ix_evidence_street_id"), ["street_id"], unique=False)
