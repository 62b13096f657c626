"""Derivatives off the request path: an upright thumbnail and a display copy without EXIF or GPS
for each evidence photo, stored as blobs under their own hash. The original is only read."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
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


def pending(session: Session, *, limit: int) -> list[tuple[Any, str]]:
    """(street_id, sha256) of evidence without derivatives yet, oldest first."""
    rows = session.execute(
        select(Evidence.street_id, Evidence.sha256)
        .where(Evidence.derivatives_at.is_(None))
        .order_by(Evidence.received_at, Evidence.sha256)
        .limit(limit)
    )
    return [(street_id, sha256) for street_id, sha256 in rows]


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
        keys = pending(session, limit=limit)
    done = 0
    for street_id, sha256 in keys:
        details: dict[str, Any] = {"parent_sha256": sha256}
        try:
            details.update(_derive(store, config, sha256))
        except DomainError as error:  # validated on upload, so unexpected; never retried
            log.error("derivatives of %s failed: %s", sha256, error.code)
            details["error"] = error.code
        except Exception:
            log.exception("derivatives of %s failed; will retry", sha256)
            continue
        try:
            with factory() as session, session.begin():
                evidence = session.scalar(
                    select(Evidence)
                    .where(Evidence.street_id == street_id, Evidence.sha256 == sha256)
                    .with_for_update()
                )
                if evidence is None or evidence.derivatives_at is not None:
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
