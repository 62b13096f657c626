"""Retention: what only the retention window needs is pruned once it has passed — tombstones
(deleted and out-of-scope rows of the feed) and the mutation log kept for answering replays."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from fieldsync.sync.models import Conflict, FeedCounter, FeedEntry, MutationRecord


def prune(session: Session, *, now: datetime, retention: timedelta) -> dict[str, int]:
    """Remove tombstones and replay-only log rows older than the window; the caller commits.

    A cursor below a removed tombstone could no longer learn of that delete: `pruned_through`
    moves past it in the same transaction, and such cursors get 410 sync.cursor_expired
    (fieldsync.sync.feed.read_page). Kept: upserts (the current records), rejected mutations
    (the quarantine, for people to look at) and mutations a conflict names.
    """
    cutoff = now - retention
    # a tombstone changed again meanwhile has a new changed_at: the DELETE re-checks it
    positions = session.scalars(
        delete(FeedEntry)
        .where(FeedEntry.op == "delete", FeedEntry.changed_at < cutoff)
        .returning(FeedEntry.position)
    ).all()
    if positions:
        through = max(positions)
        session.execute(
            update(FeedCounter)
            .where(FeedCounter.id == 1, FeedCounter.pruned_through < through)
            .values(pruned_through=through)
        )
    # a replay of a pruned device_seq is answered sync.replay_unknown (nothing is applied)
    log = session.execute(
        delete(MutationRecord)
        .where(
            MutationRecord.received_at < cutoff,
            MutationRecord.status != "rejected",
            MutationRecord.id.not_in(select(Conflict.mutation_id)),
        )
        .execution_options(synchronize_session=False)
    )
    return {"tombstones": len(positions), "mutations": log.rowcount}
