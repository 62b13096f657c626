"""The change feed: records touched in a transaction get positions at commit, in commit order;
pulls read a device's audiences after its cursor."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import operator
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Integer, and_, bindparam, delete, event, select, union_all, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from fieldsync.clock import utcnow
from fieldsync.db import TEXT_AS_BYTES, Synced, as_utf8_bytes, id_as_text, upsert_insert
from fieldsync.errors import DomainError
from fieldsync.sync import registry
from fieldsync.sync.models import FeedCounter, FeedEntry, FeedPayload

_PENDING = "fieldsync.sync.pending"
_WIRE_FORMS = "fieldsync.sync.wire_forms"


# --- recording: session hooks ---------------------------------------------------------------


class _Touched(NamedTuple):
    """A record this transaction changed: deleted at some point; or made by it (first seen
    inserted), which leaves its id no feed rows to replace but an earlier record's tombstones."""

    record: Synced
    deleted: bool
    created: bool


def _touch(session: Session, obj: Synced, *, deleted: bool = False, created: bool = False) -> None:
    pending: dict[tuple[str, Any], _Touched] = session.info.setdefault(_PENDING, {})
    key = (obj.__sync_entity__, obj.id)  # type: ignore[attr-defined]
    before = pending.get(key)
    if before is None:
        pending[key] = _Touched(obj, deleted, created)
    else:
        pending[key] = _Touched(obj, deleted or before.deleted, before.created)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    # A change to a dependent row (a certificate, a role) is a change of its parent record:
    # touch the parent so that its version moves and the feed carries it.
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        parent_of = getattr(obj, "sync_parent", None)
        if parent_of is None or not callable(parent_of):
            continue
        parent = parent_of(session)
        if parent is not None and parent not in session.deleted:
            parent.updated_at = utcnow()
    for obj in session.dirty:
        # collections count: a person's roles (rows of their own, added before they have a
        # person_id to name their parent by) are part of the roster record
        if isinstance(obj, Synced) and session.is_modified(obj):
            state = _history_changed(obj, "version")
            if not state:
                obj.version = (obj.version or 0) + 1


def _history_changed(obj: Any, attr: str) -> bool:
    return bool(sa_inspect(obj).attrs[attr].history.has_changes())


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _ctx: Any) -> None:
    for obj in session.new:
        if isinstance(obj, Synced):
            _touch(session, obj, created=True)
    for obj in session.dirty:
        if isinstance(obj, Synced) and session.is_modified(obj, include_collections=False):
            _touch(session, obj)
    for obj in session.deleted:
        if isinstance(obj, Synced):
            _touch(session, obj, deleted=True)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    seal(session)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_WIRE_FORMS, None)


def known_wire_form(session: Session, record: Synced, data: dict[str, Any]) -> None:
    """`data` is the record's wire form at its current version, made by this transaction (a
    push's result): the seal stores it rather than serializing the record again. Called once
    the record is flushed; a later change moves its version, which makes this one stale."""
    key = (record.__sync_entity__, record.id)  # type: ignore[attr-defined]
    session.info.setdefault(_WIRE_FORMS, {})[key] = (record.version, data)


def seal(session: Session) -> None:
    """Give the records touched in this transaction their feed positions. Called just before
    commit: the counter's row lock is then held only until the commit, and positions are
    handed out in commit order — a pull can never pass a position that commits later."""
    session.flush()
    pending: dict[tuple[str, Any], _Touched] = session.info.pop(_PENDING, {})
    known = session.info.pop(_WIRE_FORMS, {})
    if not pending:
        return
    count = len(pending)
    position = _take_positions(session, count) - count
    now = utcnow()

    # the feed rows the records have now, to replace; none to read for a record made here
    # (what its id may have is tombstones of an earlier record, which an upsert replaces and
    # a delete leaves as they are)
    by_entity: dict[str, list[Any]] = {}
    for (entity, entity_id), touched in pending.items():
        if not touched.created:
            by_entity.setdefault(entity, []).append(entity_id)
    existing: dict[tuple[str, Any], dict[str, str]] = {}
    for entity, ids in by_entity.items():
        for chunk in _chunks(ids, 500):
            rows = session.execute(
                select(FeedEntry.entity_id, FeedEntry.audience, FeedEntry.op).where(
                    FeedEntry.entity == entity, FeedEntry.entity_id.in_(chunk)
                )
            )
            for entity_id, audience, op in rows:
                existing.setdefault((entity, entity_id), {})[audience] = op

    values: list[dict[str, Any]] = []
    live: list[Synced] = []
    gone: dict[str, list[Any]] = {}
    for (entity, entity_id), (obj, deleted, _) in sorted(
        pending.items(), key=lambda kv: str(kv[0])
    ):
        position += 1
        before = existing.get((entity, entity_id), {})
        is_deleted = deleted or getattr(obj, "deleted_at", None) is not None
        if is_deleted:
            gone.setdefault(entity, []).append(entity_id)
        else:
            live.append(obj)
        now_audiences = set() if is_deleted else set(obj.sync_audiences())
        version = obj.version or 1
        for audience in now_audiences:
            values.append(_row(entity, entity_id, audience, position, version, "upsert", None, now))
        for audience, op in before.items():
            if audience in now_audiences or (op == "delete" and not is_deleted):
                continue
            reason = "deleted" if is_deleted else "out_of_scope"
            values.append(
                _row(entity, entity_id, audience, position, version, "delete", reason, now)
            )
    if values:
        stmt = upsert_insert(session, FeedEntry.__table__)
        stmt = stmt.on_conflict_do_update(
            index_elements=["entity", "entity_id", "audience"],
            set_={
                "position": stmt.excluded.position,
                "version": stmt.excluded.version,
                "op": stmt.excluded.op,
                "reason": stmt.excluded.reason,
                "changed_at": stmt.excluded.changed_at,
            },
        )
        # executemany: one statement compiled once (and cached), batched by the driver
        session.execute(stmt, values)
    _reload_relationships(session, live)
    store_payloads(session, live, known=known)
    for entity, ids in gone.items():
        for chunk in _chunks(ids, 500):
            session.execute(
                delete(FeedPayload).where(
                    FeedPayload.entity == entity, FeedPayload.entity_id.in_(chunk)
                )
            )


def _row(
    entity: str,
    entity_id: Any,
    audience: str,
    position: int,
    version: int,
    op: str,
    reason: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "entity": entity,
        "entity_id": entity_id,
        "audience": audience,
        "position": position,
        "version": version,
        "op": op,
        "reason": reason,
        "changed_at": now,
    }


# --- payloads: each record's wire form, stored when its change is sealed ----------------------


def wire_text(data: Mapping[str, Any]) -> str:
    """A record's `data` as the JSON text that pulls send: compact, keys sorted, UTF-8 as is."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def store_payloads(
    session: Session,
    records: Sequence[Synced],
    *,
    replace: bool = True,
    known: Mapping[tuple[str, Any], tuple[int, dict[str, Any]]] | None = None,
) -> dict[tuple[str, Any], str]:
    """Store the wire form of these live, flushed records: their entity's `serialize` (the one
    push answers with), encoded once here so that no pull decodes or encodes a record; `known`
    holds forms already made, by (entity, id), with the version they are of. Returns the texts
    by (entity, id). Without `replace`, a payload already stored is kept (a filler must never
    overwrite what a concurrent seal wrote of a newer version)."""
    values = []
    for record in records:
        spec = registry.entity(record.__sync_entity__)
        assert spec is not None, record.__sync_entity__
        key = (spec.name, record.id)  # type: ignore[attr-defined]
        version, data = (known or {}).get(key, (None, None))
        if data is None or version != record.version:
            data = spec.serialize(record)
        values.append(
            {
                "entity": spec.name,
                "entity_id": record.id,  # type: ignore[attr-defined]
                "version": record.version,
                "data": wire_text(data),
            }
        )
    if not values:
        return {}
    stmt = upsert_insert(session, FeedPayload.__table__)
    if replace:
        stmt = stmt.on_conflict_do_update(
            index_elements=["entity", "entity_id"],
            set_={"version": stmt.excluded.version, "data": stmt.excluded.data},
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["entity", "entity_id"])
    session.execute(stmt, values)  # executemany, as the feed rows in `seal`
    return {(v["entity"], v["entity_id"]): v["data"] for v in values}


def _reload_relationships(session: Session, records: Sequence[Synced]) -> None:
    """Read again the records whose serialisation follows relationships (a matter's department,
    a person's certificates and roles): the ORM keeps a loaded relationship as it was when only
    a foreign key or a child row changed, and the stored wire form must be what a fresh load
    gives. Inspections and reports have none: they cost nothing here."""
    by_model: dict[Any, list[Any]] = {}
    for record in records:
        model = type(record)
        if _has_relationships(model):
            by_model.setdefault(model, []).append(record.id)  # type: ignore[attr-defined]
    for model, ids in by_model.items():
        for chunk in _chunks(ids, 500):
            session.scalars(
                select(model).where(model.id.in_(chunk)).execution_options(populate_existing=True)
            ).all()


@functools.cache
def _has_relationships(model: type) -> bool:
    return bool(sa_inspect(model).relationships)


def backfill_payloads(session: Session, *, batch: int = 500) -> int:
    """Store the payload of every record the feed holds an upsert of and no payload yet,
    `batch` records at a time (keyset-paged through the feed's primary key, the session emptied
    after each batch): for a database whose feed predates payloads. Run by `fieldsync migrate`
    once the schema is at head (the models then match the tables); the pull fills any record
    still without one. Returns how many were stored."""
    stored = 0
    for name, spec in sorted(registry.all_entities().items()):
        model: Any = spec.model
        after = None
        while True:
            stmt = (
                select(FeedEntry.entity_id)
                .outerjoin(
                    FeedPayload,
                    and_(
                        FeedPayload.entity == FeedEntry.entity,
                        FeedPayload.entity_id == FeedEntry.entity_id,
                    ),
                )
                .where(
                    FeedEntry.entity == name,
                    FeedEntry.op == "upsert",
                    FeedPayload.entity_id.is_(None),
                )
                .distinct()
                .order_by(FeedEntry.entity_id)
                .limit(batch)
            )
            if after is not None:
                stmt = stmt.where(FeedEntry.entity_id > after)
            ids = list(session.scalars(stmt))
            if not ids:
                break
            records = session.scalars(select(model).where(model.id.in_(ids))).all()
            live = [r for r in records if getattr(r, "deleted_at", None) is None]
            stored += len(store_payloads(session, live, replace=False))
            session.expunge_all()
            after = ids[-1]
    return stored


def _with_payloads(session: Session, changes: list[Change]) -> list[Change]:
    """Upserts whose record has no stored wire form yet (a database upgraded from before
    payloads whose backfill has not run): made and kept now, as `seal` would have."""
    missing: dict[str, list[uuid.UUID]] = {}
    for change in changes:
        if change.op == "upsert" and change.data is None:
            missing.setdefault(change.entity, []).append(uuid.UUID(change.entity_id))
    if not missing:
        return changes
    texts: dict[tuple[str, str], str] = {}
    for name, ids in missing.items():
        model: Any = registry.entity(name).model  # type: ignore[union-attr]
        records = session.scalars(select(model).where(model.id.in_(ids))).all()
        stored = store_payloads(session, records, replace=False)
        texts.update({(entity, str(i)): text for (entity, i), text in stored.items()})
    return [
        c._replace(data=texts[(c.entity, c.entity_id)].encode())
        if c.op == "upsert" and c.data is None
        else c
        for c in changes
    ]


def _take_positions(session: Session, count: int) -> int:
    """Move the counter on by `count` under its row lock, held until the commit; returns the
    last position taken. The row is made the first time (a new database), in the same way by
    any number of transactions at once."""
    take = (
        update(FeedCounter)
        .where(FeedCounter.id == 1)
        .values(value=FeedCounter.value + count)
        .returning(FeedCounter.value)
    )
    top = session.execute(take).scalar()
    if top is None:
        first = upsert_insert(session, FeedCounter).values(id=1, value=0, pruned_through=0)
        session.execute(first.on_conflict_do_nothing())
        top = session.execute(take).scalar_one()
    return top


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- cursors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a device stands: a position per audience, and audiences it must evict."""

    device_id: str
    positions: dict[str, int]  # audience -> last position seen
    evict: dict[str, int]  # audience left behind -> position of eviction progress
    issued_at: int  # unix seconds


def encode_cursor(cursor: Cursor, *, secret: bytes) -> str:
    body = json.dumps(
        {"d": cursor.device_id, "p": cursor.positions, "e": cursor.evict, "t": cursor.issued_at},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    mac = hmac.new(secret, body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")


def decode_cursor(text: str, *, secret: bytes, device_id: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body, mac = raw[:-16], raw[-16:]
        if not hmac.compare_digest(mac, hmac.new(secret, body, hashlib.sha256).digest()[:16]):
            raise ValueError("bad signature")
        data = json.loads(body)
        cursor = Cursor(
            device_id=str(data["d"]),
            positions={str(k): _counter(v) for k, v in data["p"].items()},
            evict={str(k): _counter(v) for k, v in data["e"].items()},
            issued_at=_counter(data["t"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError):
        raise DomainError("sync.cursor_invalid") from None
    if cursor.device_id != device_id:
        raise DomainError("sync.cursor_invalid")
    return cursor


def _counter(value: Any) -> int:
    # what the server signs is a BIGINT position or unix seconds: anything else is not its own
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(f"not a position: {value!r}")
    return value


# --- pulling ---------------------------------------------------------------------------------


class Change(NamedTuple):
    """One change of a page (a tuple: a first sync makes thousands)."""

    entity: str
    entity_id: str  # the record's id as text: it only goes into the response
    version: int
    op: str
    reason: str | None
    position: int
    data: bytes | None = None  # an upsert's payload (UTF-8 JSON, see FeedPayload)


@dataclass(frozen=True)
class Page:
    changes: list[Change]
    cursor: Cursor
    has_more: bool


def read_page(
    session: Session,
    *,
    device_id: str,
    audiences: Sequence[str],
    cursor: Cursor | None,
    limit: int,
    now: datetime,
    retention: timedelta,
) -> Page:
    """One page of changes for a device whose current audiences are `audiences`."""
    # read before the feed rows, in an earlier snapshot (see below)
    top = session.scalar(select(FeedCounter.value).where(FeedCounter.id == 1)) or 0
    given: dict[str, int] = {}  # the positions of the cursor the device sent
    if cursor is None:
        cursor = Cursor(device_id, {a: 0 for a in audiences}, {}, int(now.timestamp()))
    else:
        if now.timestamp() - cursor.issued_at > retention.total_seconds():
            raise DomainError("sync.cursor_expired")
        given = cursor.positions
        # the device's scope changed (another street, other roles): evict what it may no
        # longer see, start the new audiences from scratch
        left = {a: 0 for a in cursor.positions if a not in audiences}
        positions = {a: cursor.positions.get(a, 0) for a in audiences}
        cursor = Cursor(device_id, positions, {**cursor.evict, **left}, cursor.issued_at)

    if cursor.evict:
        page = _evict_page(session, cursor=cursor, audiences=audiences, limit=limit, now=now)
    else:
        page = _changes_page(session, cursor=cursor, top=top, limit=limit, now=now)
    if given:
        # Read after the feed: a prune that committed before the feed was read has moved
        # pruned_through by then, so a cursor that may have missed a pruned tombstone is
        # refused, never answered without it.
        pruned_through = session.scalar(
            select(FeedCounter.pruned_through).where(FeedCounter.id == 1)
        )
        if any(0 < p < (pruned_through or 0) for p in given.values()):
            raise DomainError("sync.cursor_expired")
    return page


def _changes_page(session: Session, *, cursor: Cursor, top: int, limit: int, now: datetime) -> Page:
    rows = _feed_rows(session, cursor.positions, limit + 1)
    has_more = len(rows) > limit
    if has_more:
        cut = rows[limit - 1].position
        # never split one record's rows (same position, several audiences) across pages
        rows = [r for r in rows if r.position <= cut]
    else:
        # Every audience was read to its end, in a snapshot taken after `top` was read: all
        # positions up to `top` had committed by then, so nothing at or below it is missed.
        cut = max([top, *(r.position for r in rows)])
    changes = _with_payloads(session, _collapse(rows))
    positions = {a: max(p, cut) for a, p in cursor.positions.items()}
    return Page(changes, Cursor(cursor.device_id, positions, {}, int(now.timestamp())), has_more)


# a feed row as plain columns, with its payload: a page reads thousands, none is ever changed;
# read as tuples (unpacked by _collapse in this order, sorted by position and audience); the
# record's id as text and the payload as the bytes stored, both copied into the response (see
# fieldsync.sync.pull)
_BY_POSITION_AND_AUDIENCE = operator.itemgetter(3, 2)
# the statement of a page, by dialect and which of its audiences (in order) start from scratch
_PAGE_STATEMENTS: dict[tuple[str, tuple[bool, ...]], Any] = {}


def _feed_rows(session: Session, positions: dict[str, int], limit: int) -> list[Any]:
    """Up to `limit` rows of each audience after its position, sorted by position.

    All audiences are read by ONE statement, so under READ COMMITTED they share one snapshot.
    Positions are handed out under the counter's row lock and committed in that order (see
    `seal`), so a snapshot holds every position up to some N and none above: each audience's
    rows are complete up to its own last row, and the merged list up to its limit-th smallest
    position. Read by separate statements, a change committed between two of them could be
    missed by the first audience's read while the second's moved the cut past it.
    Each part is a range of the (audience, position) index with its own LIMIT: the cost grows
    with the changes since the cursor, never with the size of the feed. An upsert's payload is
    joined in the same statement, so it is the version of that very row.
    """
    if not positions:
        return []
    ordered = sorted(positions.items())
    key = (session.get_bind().dialect.name, tuple(after == 0 for _, after in ordered))
    stmt = _PAGE_STATEMENTS.get(key)
    if stmt is None:
        stmt = _PAGE_STATEMENTS[key] = _page_statement(session, key[1])
    values: dict[str, Any] = {"limit": limit}
    for n, (audience, after) in enumerate(ordered):
        values[f"audience_{n}"], values[f"after_{n}"] = audience, after
    # a Core statement of plain columns, built once: the connection runs it without the ORM's
    # layer (about 2 ms of a 30 ms first page here), and nothing is put together per page
    execute = session.connection().execute
    rows = execute(stmt, values, execution_options={TEXT_AS_BYTES: True}).all()
    rows.sort(key=_BY_POSITION_AND_AUDIENCE)
    return rows


def _page_statement(session: Session, first: tuple[bool, ...]) -> Any:
    """The statement of `_feed_rows` for audiences of which `first` says whether each starts
    from scratch (a first sync needs no tombstones); their names and positions are bound."""
    feed, payloads = FeedEntry.__table__.c, FeedPayload.__table__.c
    columns = (
        feed.entity,
        id_as_text(session, feed.entity_id).label("entity_id"),
        feed.audience,
        feed.position,
        feed.version,
        feed.op,
        feed.reason,
        as_utf8_bytes(session, payloads.data).label("data"),
    )
    joined = FeedEntry.__table__.outerjoin(
        FeedPayload.__table__,
        and_(
            feed.op == "upsert",
            payloads.entity == feed.entity,
            payloads.entity_id == feed.entity_id,
        ),
    )
    parts = []
    for n, from_scratch in enumerate(first):
        part = (
            select(*columns)
            .select_from(joined)
            .where(
                feed.audience == bindparam(f"audience_{n}"),
                feed.position > bindparam(f"after_{n}"),
            )
            .order_by(feed.position)
            .limit(bindparam("limit", type_=Integer))
        )
        if from_scratch:
            part = part.where(feed.op == "upsert")
        # a member of a compound SELECT may not have its own ORDER BY/LIMIT (SQLite): wrap it
        parts.append(select(part.subquery()))
    return union_all(*parts) if len(parts) > 1 else parts[0]


def _collapse(rows: Sequence[Any]) -> list[Change]:
    """One change per record; if any of the device's audiences still sees it, it is an upsert."""
    by_record: dict[tuple[str, Any], Change] = {}
    for entity, entity_id, _audience, position, version, op, reason, data in rows:
        key = (entity, entity_id)
        current = by_record.get(key)
        if (
            current is None
            or (current.op == "delete" and op == "upsert")
            or (current.op == op and position > current.position)
        ):
            by_record[key] = Change(entity, entity_id, version, op, reason, position, data)
    return sorted(by_record.values(), key=_BY_POSITION)


_BY_POSITION = operator.attrgetter("position")


def _evict_page(
    session: Session, *, cursor: Cursor, audiences: Sequence[str], limit: int, now: datetime
) -> Page:
    evict = dict(cursor.evict)
    changes: list[Change] = []
    for audience, after in sorted(evict.items()):
        rows = list(
            session.scalars(
                select(FeedEntry)
                .where(
                    FeedEntry.audience == audience,
                    FeedEntry.position > after,
                    FeedEntry.op == "upsert",
                )
                .order_by(FeedEntry.position)
                .limit(limit)
            )
        )
        still_visible = _visible(session, rows, audiences)
        for row in rows:
            if (row.entity, row.entity_id) not in still_visible:
                changes.append(
                    Change(
                        row.entity,
                        str(row.entity_id),
                        row.version,
                        "delete",
                        "out_of_scope",
                        row.position,
                    )
                )
        if len(rows) < limit:
            del evict[audience]
        else:
            evict[audience] = rows[-1].position
            break
    next_cursor = Cursor(cursor.device_id, cursor.positions, evict, int(now.timestamp()))
    return Page(changes, next_cursor, True)


def _visible(
    session: Session, rows: Sequence[FeedEntry], audiences: Sequence[str]
) -> set[tuple[str, Any]]:
    """Which of these records one of `audiences` still sees: looked up by the feed's primary
    key (entity, entity_id, audience), one entity at a time."""
    by_entity: dict[str, list[Any]] = {}
    for row in rows:
        by_entity.setdefault(row.entity, []).append(row.entity_id)
    visible: set[tuple[str, Any]] = set()
    for entity, ids in by_entity.items():
        for chunk in _chunks(ids, 500):
            visible.update(
                (entity, entity_id)
                for entity_id in session.scalars(
                    select(FeedEntry.entity_id).where(
                        FeedEntry.entity == entity,
                        FeedEntry.entity_id.in_(chunk),
                        FeedEntry.audience.in_(list(audiences)),
                        FeedEntry.op == "upsert",
                    )
                )
            )
    return visible
