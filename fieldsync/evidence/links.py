"""Records name evidence by hash before or after the bytes arrive: what is still missing."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldsync.evidence.models import Evidence


def missing(session: Session, hashes: Iterable[str]) -> list[str]:
    """The hashes among `hashes` that have no verified evidence yet, in their given order."""
    wanted = list(dict.fromkeys(hashes))
    if not wanted:
        return []
    have = set(session.scalars(select(Evidence.sha256).where(Evidence.sha256.in_(wanted))))
    return [h for h in wanted if h not in have]
