"""archive triggers: the database refuses to change archived cases and sealed inspections

Hand-written (autogenerate cannot see triggers); kept by migrations/regenerate.sh, and placed
after the generated initial schema whatever its revision id is.

Revision ID: a7c4e0f1d2b3
Revises: (the initial schema)
"""

import re
from collections.abc import Sequence
from pathlib import Path

from alembic import op

from fieldsync.cases.triggers import create_triggers, drop_triggers


def _initial_revision() -> str:
    (initial,) = Path(__file__).parent.glob("*_initial_schema.py")
    match = re.search(r'^revision: str = "(\w+)"', initial.read_text(), re.MULTILINE)
    assert match, initial
    return match.group(1)


revision: str = "a7c4e0f1d2b3"
down_revision: str | None = _initial_revision()
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_triggers(op.get_bind())


def downgrade() -> None:
    drop_triggers(op.get_bind())
