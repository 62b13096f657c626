"""Derivatives off the request path: an upright thumbnail and a display copy without EXIF or GPS
for each evidence photo, stored as blobs under their own hash. The original is only read."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from fieldsync.clock import utcnow
from fieldsync.config import Config
from fieldsync.errors import DomainError
from fieldsync.evidence.blobstore import BlobStore, local_copy
from fieldsync.evidence.hashing import sha256_file
from fieldsync.evidence.models import Evidence
from fieldsync.evidence.service import SYSTEM, add_custody

log = logging.getLogger(__name__)

THUMBNAIL_MAX_SIDE = 320
DISPLAY_MAX_SIDE = 1600


# after a failure, the next try waits 1, 2, 4 … minutes, at most RETRY_MAX: photos that keep
# failing (a blob the store cannot read) do not hold up the ones behind them
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=6)


def pending(session: Session, *, limit: int, now: datetime) -> list[tuple[Any, str]]:
    """(street_id, sha256) of evidence without derivatives yet and not waiting to be tried
    again, oldest first."""
    rows = session.execute(
        select(Evidence.street_id, Evidence.sha256)
        .where(
            Evidence.derivatives_at.is_(None),
            or_(Evidence.derivatives_retry_at.is_(None), Evidence.derivatives_retry_at <= now),
        )
        .order_by(Evidence.received_at, Evidence.sha256)
        .limit(limit)
    )
    return [(street_id, sha256) for street_id, sha256 in rows]


def retry_delay(attempts: int) -> timedelta:
    """How long after its `attempts`-th failure a photo waits."""
    return min(RETRY_FIRST * 2 ** min(attempts - 1, 20), RETRY_MAX)


def _derive(store: BlobStore, config: Config, sha256: str) -> dict[str, Any]:
    """Make both derivatives of one original and store them; only files, no database."""
    from fieldsync.evidence.imaging import make_display_copy, make_thumbnail

    work = Path(config.data_dir) / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    made: dict[str, Any] = {}
    makers: list[tuple[str, Callable[..., None], int]] = [
        ("thumbnail", make_thumbnail, THUMBNAIL_MAX_SIDE),
        ("display", make_display_copy, DISPLAY_MAX_SIDE),
    ]
    with local_copy(store, sha256, tmp_dir=work) as original:
        for kind, make, max_side in makers:
            fd, name = tempfile.mkstemp(prefix=f"{sha256[:16]}.{kind}.", suffix=".jpg", dir=work)
            os.close(fd)
            out = Path(name)
            try:
                make(original, out, max_side=max_side, max_pixels=config.image_max_pixels)
                digest = sha256_file(out)
                store.put_file(digest, out)
                made[kind] = {"sha256": digest, "size": out.stat().st_size, "max_side": max_side}
            finally:
                out.unlink(missing_ok=True)
    return made


def make_derivatives(
    factory: sessionmaker[Session],
    *,
    store: BlobStore,
    config: Config,
    limit: int = 50,
    now: Callable[[], datetime] = utcnow,
) -> int:
    """Derive what is missing, each photo in its own short transaction (pixels are decoded
    outside any transaction: SQLite writers are not held up). Returns how many were done.

    Two processes may derive the same photo at once: the bytes come out the same, and only the
    first to commit records them (the row is re-read under a lock)."""
    with factory() as session, session.begin():
        keys = pending(session, limit=limit, now=now())
    done = 0
    for street_id, sha256 in keys:
        details: dict[str, Any] = {"parent_sha256": sha256}
        try:
            details.update(_derive(store, config, sha256))
        except DomainError as error:  # validated on upload, so unexpected; never retried
            log.error("derivatives of %s failed: %s", sha256, error.code)
            details["error"] = error.code
        except Exception:
            _failed(factory, street_id, sha256, now=now())
            continue
        try:
            with factory() as session, session.begin():
                evidence = _undone(session, street_id, sha256)
                if evidence is None:
                    continue
                at = now()
                evidence.thumbnail_sha256 = details.get("thumbnail", {}).get("sha256")
                evidence.display_sha256 = details.get("display", {}).get("sha256")
                evidence.derivatives_at = at
                add_custody(session, evidence, "derived", SYSTEM, at=at, details=details)
        except DomainError as error:  # e.g. evidence.archived: its inspection is sealed
            log.warning("derivatives of %s not recorded: %s", sha256, error.code)
            continue
        done += 1
    return done


def _undone(session: Session, street_id: Any, sha256: str) -> Evidence | None:
    """The evidence row, locked, unless it is gone or another process derived it meanwhile."""
    evidence = session.scalar(
        select(Evidence)
        .where(Evidence.street_id == street_id, Evidence.sha256 == sha256)
        .with_for_update()
    )
    return None if evidence is None or evidence.derivatives_at is not None else evidence


def _failed(factory: sessionmaker[Session], street_id: Any, sha256: str, *, now: datetime) -> None:
    """Count a failure (the store could not be read, say) and put the next try off. Allowed on
    sealed evidence too (cases.triggers.EVIDENCE_BOOKKEEPING): it says nothing of the photo."""
    with factory() as session, session.begin():
        evidence = _undone(session, street_id, sha256)
        if evidence is None:
            return
        evidence.derivative_attempts += 1
        evidence.derivatives_retry_at = now + retry_delay(evidence.derivative_attempts)
        attempts, retry_at = evidence.derivative_attempts, evidence.derivatives_retry_at
    log.exception(
        "derivatives of %s failed (attempt %d); next try at %s", sha256, attempts, retry_at
    )
