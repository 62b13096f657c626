"""Sync tables: the feed counter, the change feed and its payloads, devices' mutation log,
conflicts, events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldsync.clock import utcnow
from fieldsync.db import Base, WriteOnceJSON, new_id


class FeedCounter(Base):
    """One row. Positions are taken from it at commit time under its row lock, so that they are
    handed out in commit order: the feed is gap-free with respect to commits."""

    __tablename__ = "sync_feed_counter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    # the highest position of a pruned tombstone (fieldsync.sync.retention): cursors below it
    # may have missed a delete and get 410
    pruned_through: Mapped[int] = mapped_column(BigInteger, default=0)


class FeedEntry(Base):
    """The latest change of one record for one audience (Kinto-style: one row per record and
    audience, its position moved forward on every change). A pull reads the rows of the
    device's audiences after its cursor, so its cost follows the changes, not the table."""

    __tablename__ = "sync_feed"
    __table_args__ = (Index("ix_sync_feed_audience_position", "audience", "position"),)
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    entity_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # "all" | "street:<id>" | "staff:<id>" | "person:<id>"
    audience: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(8))  # upsert | delete
    reason: Mapped[str | None] = mapped_column(String(16))  # deleted | out_of_scope
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedPayload(Base):
    """A record's wire form (the `data` of its upserts) at its latest version, serialized once
    when its change is sealed into the feed and shared by the rows of all its audiences: a pull
    copies it into the response as it is. TEXT, not JSON, so that the database hands it back
    without parsing. Deleted records have none (their tombstones carry no data).

    A change to an entity's `serialize` (a field more, a field renamed) must come with a
    migration that deletes that entity's rows here: `fieldsync migrate` then stores them anew
    from the records (`fieldsync.sync.feed.backfill_payloads`), or pulls go on sending the old
    form of every record until it changes."""

    __tablename__ = "sync_payloads"
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    entity_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)


class DeviceSyncState(Base):
    """Per device: the last device_seq applied (written in the same transaction as the effects)
    and what its clock looked like at its last push."""

    __tablename__ = "sync_device_state"
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    last_device_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_push_at: Mapped[datetime | None]
    # device clock minus server clock at the last push, in milliseconds
    clock_skew_ms: Mapped[int | None] = mapped_column(BigInteger)


class MutationRecord(Base):
    """Every mutation a device pushed, with the result it got: replays answer from here.
    Rejected ones are the quarantine."""

    __tablename__ = "sync_mutations"
    __table_args__ = (UniqueConstraint("device_id", "device_seq"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the client's mutation_id
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"), index=True)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"), index=True)
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), index=True)
    device_seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str | None] = mapped_column(String(32))
    entity_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(16), index=True)
    code: Mapped[str | None] = mapped_column(String(64))  # for rejected
    message_en: Mapped[str | None] = mapped_column(Text)
    message_zh: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(WriteOnceJSON)  # the mutation as received
    result: Mapped[dict[str, Any]] = mapped_column(WriteOnceJSON)  # the result as returned
    device_time: Mapped[datetime | None]
    hlc: Mapped[str | None] = mapped_column(String(96))
    # indexed for the retention prune, which removes the oldest rows
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # device clock minus server clock at the push that brought it, in milliseconds (unknown
    # when the device sent no Date header and no device_time ahead of the server)
    clock_skew_ms: Mapped[int | None] = mapped_column(BigInteger)


class Conflict(Base):
    """A value that lost a merge, kept until a person resolves it."""

    __tablename__ = "sync_conflicts"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    street_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streets.id"), index=True)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[uuid.UUID] = mapped_column(index=True)
    fields: Mapped[list[Any]]  # the fields that conflicted
    # {field: {"kept": value in the record, "lost": value set aside, "lost_side": device|server}}
    values: Mapped[dict[str, Any]]
    mutation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sync_mutations.id"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"))
    # who pushed the mutation; `people` holds everyone the conflict concerns
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"), index=True)
    record_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    resolution: Mapped[str | None] = mapped_column(String(16))  # keep | take_lost
    resolution_note: Mapped[str | None] = mapped_column(Text)

    people: Mapped[list[ConflictPerson]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ConflictPerson.person_id"
    )

    @property
    def person_ids(self) -> list[uuid.UUID]:
        return [p.person_id for p in self.people]


class ConflictPerson(Base):
    """Someone a conflict concerns: the officer who pushed the mutation, and whoever wrote the
    record's value of a conflicting field — between them, the author of the value set aside
    and the writer of the value kept. Each of them sees the conflict and may resolve it."""

    __tablename__ = "sync_conflict_people"
    conflict_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sync_conflicts.id"), primary_key=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("people.id"), primary_key=True, index=True
    )


class Event(Base):
    """The trace (全过程留痕): every accepted change to a synced record or a case."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_entity", "entity", "entity_id", "id"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[uuid.UUID]
    version: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"))
    device_time: Mapped[datetime | None]
    hlc: Mapped[str | None] = mapped_column(String(96))
    server_time: Mapped[datetime] = mapped_column(default=utcnow)
    changes: Mapped[dict[str, Any]] = mapped_column(WriteOnceJSON)
