"""Push: apply a device's mutations in device_seq order, exactly once, each to one outcome."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import marshmallow as ma
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldsync.clock import isoformat, parse_rfc3339
from fieldsync.db import append_rows
from fieldsync.errors import DomainError, flag
from fieldsync.identity.models import Device
from fieldsync.org.models import Person
from fieldsync.org.reference import references_read_once
from fieldsync.sync import feed, registry
from fieldsync.sync.hlc import HLC, capped
from fieldsync.sync.loading import Loader, given_fields_loader, jsonable
from fieldsync.sync.merge import FieldState, LostValue, MergeRefused, merge
from fieldsync.sync.models import (
    Conflict,
    ConflictPerson,
    DeviceSyncState,
    Event,
    FeedEntry,
    MutationRecord,
)
from fieldsync.sync.registry import ActionContext, SyncedEntity

SKEW_FLAG = "sync.clock_skew"


def push(
    session: Session,
    *,
    principal: Any,
    device_id: uuid.UUID,
    mutations: Sequence[Mapping[str, Any]],
    now: datetime,
    device_clock: datetime | None,
    config: Any,
) -> dict[str, Any]:
    """Apply what is new, answer replays from the log. One transaction: the caller commits."""
    device = principal.device
    if device_id != device.id:
        raise DomainError("auth.device_id_mismatch")
    seqs = [int(m["device_seq"]) for m in mutations]
    if any(b <= a for a, b in zip(seqs, seqs[1:], strict=False)):
        raise DomainError("sync.sequence_unordered")

    state = _lock_device_state(session, device.id)
    # The person may have been moved to another street while this push waited for the lock
    # (a transfer takes its devices' locks before it hands their reports over): the request
    # read them before, so it would write by the street they left. Sent again, it is not.
    street_now = session.scalar(select(Person.street_id).where(Person.id == principal.person_id))
    if street_now != principal.street_id:
        raise DomainError("request.concurrent_write")
    last = state.last_device_seq
    fresh = [m for m in mutations if int(m["device_seq"]) > last]
    for expected, m in enumerate(fresh, start=last + 1):
        if int(m["device_seq"]) != expected:
            raise DomainError("sync.sequence_gap", expected_device_seq=expected)

    replayed = _replayed(session, device.id, [s for s in seqs if s <= last])

    skew_ms = _skew_ms(fresh, device_clock=device_clock, now=now)
    events: list[dict[str, Any]] = []
    ctx_base = dict(
        session=session,
        principal=principal,
        now=now,
        config=config,
        clock_skew_ms=skew_ms,
        events=events,
    )
    records = _prefetch(session, fresh)
    # mutation ids already in the log, found in one query (not one lookup per mutation); ids
    # seen earlier in this push are added as the loop goes
    logged = _logged_mutation_ids(session, fresh)
    # each record the push changed, with its last result (which holds its wire form)
    touched: dict[tuple[str, uuid.UUID], tuple[Any, dict[str, Any]]] = {}
    results: list[dict[str, Any]] = []
    applied_results: dict[int, dict[str, Any]] = {}
    log_rows: list[dict[str, Any]] = []
    conflicts: list[Conflict] = []
    # Nothing a mutation reads depends on the rows earlier mutations of this push wrote but
    # did not flush: their records are in `records`, their ids in `logged`, reference data and
    # evidence do not change here. So no flush per query: the log rows, records and events
    # are written together by the flush below (batched INSERTs), not one by one. Reference
    # data is read once for the whole push.
    with session.no_autoflush, references_read_once(session):
        for m in fresh:
            seq = int(m["device_seq"])
            result, record_row, record = _apply_one(session, ctx_base, m, records, logged)
            applied_results[seq] = result
            conflict = record_row.pop("conflict", None)
            record_row.update(
                device_id=device.id,
                person_id=principal.person_id,
                device_seq=seq,
                received_at=now,
                clock_skew_ms=skew_ms,
            )
            record_row.setdefault("street_id", principal.street_id)
            log_rows.append(record_row)
            logged.add(record_row["id"])
            if conflict is not None:
                conflicts.append(conflict)
            if record is not None and result["status"] != "rejected":
                touched[(result["entity"], record.id)] = (record, result)
    # The log and the trace written in bulk, as plain rows (no ORM object per row: nothing
    # reads them back in this push; no ids to return); the log before the conflicts, which
    # name their mutations.
    append_rows(session, MutationRecord.__table__, log_rows)
    append_rows(session, Event.__table__, events)
    session.add_all(conflicts)
    if fresh:
        state.last_device_seq = int(fresh[-1]["device_seq"])
    state.last_push_at = now
    if skew_ms is not None:
        state.clock_skew_ms = skew_ms
    session.flush()
    for record, result in touched.values():
        if result["version"] == record.version:  # the seal stores what the result carries
            feed.known_wire_form(session, record, result["data"])

    for seq in seqs:
        results.append(applied_results.get(seq) or replayed.get(seq) or _forgotten(seq))
    missing = sorted({h for r, _ in touched.values() for h in (r.evidence_missing or [])})
    return {
        "protocol": 1,
        "last_device_seq": state.last_device_seq,
        "server_time": isoformat(now),
        "clock_skew_ms": skew_ms,
        "results": results,
        "missing_evidence": missing,
    }


def _replayed(session: Session, device_id: uuid.UUID, seqs: list[int]) -> dict[int, Any]:
    """The stored results of the mutations sent again, by device_seq (no query when none is)."""
    if not seqs:
        return {}
    stmt = select(MutationRecord.device_seq, MutationRecord.result).where(
        MutationRecord.device_id == device_id, MutationRecord.device_seq.in_(seqs)
    )
    return {seq: result for seq, result in session.execute(stmt)}


def _logged_mutation_ids(session: Session, fresh: Sequence[Mapping[str, Any]]) -> set[uuid.UUID]:
    ids = sorted({i for i in (_uuid_or_none(m.get("mutation_id")) for m in fresh) if i is not None})
    found: set[uuid.UUID] = set()
    for start in range(0, len(ids), 500):
        found.update(
            session.scalars(
                select(MutationRecord.id).where(MutationRecord.id.in_(ids[start : start + 500]))
            )
        )
    return found


def _forgotten(seq: int) -> dict[str, Any]:
    # at or below last_device_seq but not in the log: cannot happen unless the log was pruned
    return _rejection(seq, DomainError("sync.replay_unknown"))


def _rejection(seq: int, error: DomainError) -> dict[str, Any]:
    result = {
        "device_seq": seq,
        "status": "rejected",
        "code": error.code,
        "message": error.message("en"),
        "message_zh": error.message("zh"),
    }
    if error.errors is not None:
        result["errors"] = error.errors
    return result


def _unstorable(m: Mapping[str, Any]) -> str | None:
    """What in a mutation the database could not keep as it came, if anything (JSON cannot
    encode it; text and jsonb columns refuse a NUL, which a validation message or the record
    would carry on): the log keeps every mutation, a rejected one too, so such a mutation is
    rejected with nothing of it stored but its device_seq and mutation_id (else an INSERT
    fails and the device's queue is stuck for good)."""
    try:
        text = orjson.dumps(m)
    except orjson.JSONEncodeError:
        # a lone surrogate, an integer beyond 64 bits, nesting deeper than 254
        return "text that is not Unicode, an integer beyond 64 bits, or nesting too deep"
    if b"\\u0000" in text and _has_nul(m):
        return "a NUL character"
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _lock_device_state(session: Session, device_id: uuid.UUID) -> DeviceSyncState:
    # FOR UPDATE: two pushes of one device (a retry racing its original) apply one after the
    # other, so the second sees the first's last_device_seq and answers as a replay
    stmt = select(DeviceSyncState).where(DeviceSyncState.device_id == device_id).with_for_update()
    state = session.scalar(stmt)
    if state is None:
        state = DeviceSyncState(device_id=device_id, last_device_seq=0)
        session.add(state)
        session.flush()
    return state


def _skew_ms(
    fresh: Sequence[Mapping[str, Any]], *, device_clock: datetime | None, now: datetime
) -> int | None:
    """Device clock minus server clock: from the request's Date header when the device sends
    one; otherwise a device time in the future is the best evidence there is."""
    if device_clock is not None:
        return int((device_clock - now).total_seconds() * 1000)
    latest = None
    for m in fresh:
        try:
            t = _parse_time(m.get("device_time"))
        except DomainError:
            continue
        if latest is None or t > latest:
            latest = t
    if latest is not None and latest > now:
        return int((latest - now).total_seconds() * 1000)
    return None


def _skew_flagged(ctx: ActionContext, record: Any) -> dict[str, Any]:
    """Flag a clock skew beyond the bound on a record this mutation changes, as part of that
    change (same version, same event). Returns the change to the flags, if any."""
    skew = ctx.clock_skew_ms
    if skew is None or abs(skew) <= ctx.config.clock_skew_flag_seconds * 1000:
        return {}
    new = flag(SKEW_FLAG, seconds=round(skew / 1000))
    flags = list(record.flags or [])
    at = next((i for i, f in enumerate(flags) if f.get("code") == SKEW_FLAG), None)
    if at is not None and flags[at] == new:
        return {}
    if at is None:
        flags.append(new)
    else:
        flags[at] = new
    record.flags = flags
    return {"flags": flags}


def _prefetch(
    session: Session, fresh: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, uuid.UUID], Any]:
    """Load (and on PostgreSQL lock, in a stable order) every record the push touches."""
    wanted: dict[str, set[uuid.UUID]] = {}
    for m in fresh:
        etype = str(m.get("type", "")).partition(".")[0]
        try:
            wanted.setdefault(etype, set()).add(uuid.UUID(str(m.get("entity_id"))))
        except ValueError:
            continue
    records: dict[tuple[str, uuid.UUID], Any] = {}
    all_ids = sorted({i for ids in wanted.values() for i in ids})
    if all_ids:
        # which entity an id belongs to, to refuse an id of one type used as another; naming
        # every entity lets the feed's primary key (entity, entity_id, …) find the rows
        for etype, eid in session.execute(
            select(FeedEntry.entity, FeedEntry.entity_id).where(
                FeedEntry.entity.in_(sorted(registry.all_entities())),
                FeedEntry.entity_id.in_(all_ids),
            )
        ):
            records.setdefault(("#type", eid), etype)
    for etype, ids in wanted.items():
        spec = registry.entity(etype)
        if spec is None or not spec.writable:
            continue
        model: Any = spec.model
        stmt = select(model).where(model.id.in_(sorted(ids))).order_by(model.id).with_for_update()
        for record in session.scalars(stmt):
            records[(etype, record.id)] = record
    return records


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise DomainError(
            "sync.invalid_mutation", errors={"device_time": ["RFC 3339 time required"]}
        )
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise DomainError(
            "sync.invalid_mutation", errors={"device_time": ["RFC 3339 time with offset required"]}
        ) from None


def _apply_one(
    session: Session,
    ctx_base: dict[str, Any],
    m: Mapping[str, Any],
    records: dict[tuple[str, uuid.UUID], Any],
    logged: set[uuid.UUID],
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    seq = int(m["device_seq"])
    given_id = _uuid_or_none(m.get("mutation_id"))
    unstorable = _unstorable(m)
    if unstorable is not None:
        m = {"device_seq": seq, **({"mutation_id": str(given_id)} if given_id else {})}
    # a mutation without an id of its own is logged (and quarantined) under one made here
    mutation_id = given_id or uuid.uuid4()
    mtype = str(m.get("type", ""))
    entity_id = _uuid_or_none(m.get("entity_id"))
    row: dict[str, Any] = {
        "id": mutation_id,
        "type": mtype[:64],
        "payload": dict(m),
        "hlc": None,
        "device_time": None,
        "entity": None,
        "entity_id": entity_id,
        "code": None,
        "message_en": None,
        "message_zh": None,
    }
    try:
        if unstorable is not None:
            raise DomainError("sync.invalid_mutation", errors={"mutation": [unstorable]})
        if given_id is None:
            raise DomainError(
                "sync.invalid_mutation", errors={"mutation_id": ["a UUID chosen by the device"]}
            )
        if mutation_id in logged:
            # logged under an id of its own: the id it came with names another mutation
            row["id"] = uuid.uuid4()
            raise DomainError("sync.duplicate_mutation_id", id=str(mutation_id))
        etype, _, action = mtype.partition(".")
        spec = registry.entity(etype)
        if spec is None or not spec.writable or not action:
            raise DomainError("sync.unknown_type", type=mtype)
        row["entity"] = etype
        if entity_id is None:
            raise DomainError("sync.invalid_mutation", errors={"entity_id": ["a UUID is required"]})
        try:
            clock = HLC.parse(m.get("hlc"))
        except ValueError:
            raise DomainError("sync.invalid_hlc") from None
        # what the merge and the field clocks use (the mutation as received keeps the original)
        now, bound_s = ctx_base["now"], ctx_base["config"].clock_skew_flag_seconds
        hlc = str(capped(clock, limit_ms=int(now.timestamp() * 1000) + bound_s * 1000))
        device_time = _parse_time(m.get("device_time"))
        row.update(hlc=hlc, device_time=device_time)
        base_version = m.get("base_version", 0)
        if not isinstance(base_version, int) or isinstance(base_version, bool) or base_version < 0:
            raise DomainError("sync.invalid_mutation", errors={"base_version": ["an integer ≥ 0"]})
        known_type = records.get(("#type", entity_id))
        if known_type is not None and known_type != etype:
            raise DomainError("sync.entity_type_mismatch", entity=known_type)
        ctx = ActionContext(device_time=device_time, hlc=hlc, **ctx_base)
        record = records.get((etype, entity_id))
        outcome = _apply_action(ctx, spec, action, entity_id, record, m, base_version)
        record, merge_result, conflict = outcome
        records[(etype, entity_id)] = record
        records[("#type", entity_id)] = etype
        result: dict[str, Any] = {
            "device_seq": seq,
            "status": merge_result,
            "entity": etype,
            "id": str(record.id),
            "version": record.version,
            "data": spec.serialize(record),
        }
        if conflict is not None:
            result["conflict_id"] = str(conflict.id)
            result["fields"] = conflict.fields
            conflict.mutation_id = mutation_id
        row["status"] = result["status"]
        row["conflict"] = conflict
        row["result"] = result
        return result, row, record
    except DomainError as error:
        result = _rejection(seq, error)
        if row["entity"] is not None and entity_id is not None:
            result.update(entity=row["entity"], id=str(entity_id))
        held = records.get((row["entity"], entity_id))
        if error.code == "sync.not_in_scope" and held is not None:
            # quarantined where the record is: an officer moved to another street with edits
            # of the old one's records queued, those edits reach the supervisors who hold them
            row["street_id"] = held.street_id
        row.update(
            status="rejected",
            code=error.code,
            message_en=result["message"],
            message_zh=result["message_zh"],
            result=result,
        )
        return result, row, None


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _apply_action(
    ctx: ActionContext,
    spec: SyncedEntity,
    action: str,
    entity_id: uuid.UUID,
    record: Any,
    m: Mapping[str, Any],
    base_version: int,
) -> tuple[Any, str, Conflict | None]:
    if record is not None:
        if spec.authorize:
            spec.authorize(ctx, record)
        if record.deleted_at is not None:
            raise DomainError("sync.record_deleted")
        if base_version > record.version:
            raise DomainError("sync.base_version_from_future", version=record.version)
    if action == "upsert":
        return _upsert(ctx, spec, entity_id, record, m, base_version)
    if any(_changes(m)):
        # dropping them would lose what the officer wrote without a word
        raise DomainError(
            "sync.invalid_mutation",
            errors={action: ["set, add and remove belong in an upsert, queued before it"]},
        )
    if record is None:
        raise DomainError("sync.unknown_entity", id=str(entity_id))
    if action == "delete":
        if spec.is_submitted(record):
            raise DomainError("sync.delete_after_submit")
        if record.created_by_id != ctx.principal.person_id:
            raise DomainError("sync.not_permitted")
        record.deleted_at = ctx.now
        _bump(ctx, record, {"deleted_at": isoformat(ctx.now)}, m)
        return record, "applied", None
    handler = spec.actions.get(action)
    if handler is None:
        raise DomainError("sync.unknown_type", type=f"{spec.name}.{action}")
    before = spec.serialize(record)
    handler(ctx, record, m)
    after = spec.serialize(record)
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    if changed:
        if spec.after_change:
            spec.after_change(ctx, record)
        _bump(ctx, record, {**changed, **_skew_flagged(ctx, record)}, m)
    status = "applied" if base_version == record.version - (1 if changed else 0) else "merged"
    return record, status, None


def _upsert(
    ctx: ActionContext,
    spec: SyncedEntity,
    entity_id: uuid.UUID,
    record: Any,
    m: Mapping[str, Any],
    base_version: int,
) -> tuple[Any, str, Conflict | None]:
    created = record is None
    if created:
        if base_version != 0:
            raise DomainError("sync.unknown_entity", id=str(entity_id))
        assert spec.create is not None
        record = spec.create(ctx, entity_id)
    set_, add, remove = _validated(spec, m)
    clocks = dict(record.field_clocks or {})
    writer = str(ctx.principal.device.id)
    state = {
        name: FieldState(jsonable(getattr(record, name)), *(clocks.get(name) or (0, "", "")))
        for name in spec.fields
    }
    try:
        result = merge(
            spec.fields,
            state,
            base_version=base_version,
            hlc=ctx.hlc,
            writer=writer,
            set_=set_,
            add=add,
            remove=remove,
            submitted=spec.is_submitted(record),
        )
    except MergeRefused as refused:
        raise DomainError(refused.code, **refused.params) from None
    values = {name: result.changed.get(name, state[name].value) for name in spec.fields}
    if spec.check:
        spec.check(ctx, values)

    new_version = record.version + 1
    for name, value in result.changed.items():
        setattr(record, name, _from_wire(record, name, value))
        clocks[name] = [new_version, ctx.hlc, writer]
    conflict = None
    if result.lost:
        conflict = Conflict(
            id=uuid.uuid4(),
            street_id=record.street_id,
            entity=spec.name,
            entity_id=record.id,
            fields=sorted({lv.field for lv in result.lost}),
            values={
                lv.field: {"kept": lv.kept, "lost": lv.lost, "lost_side": lv.lost_side}
                for lv in result.lost
            },
            device_id=ctx.principal.device.id,
            person_id=ctx.principal.person_id,
            people=[
                ConflictPerson(person_id=p)
                for p in sorted({ctx.principal.person_id, *_writers(ctx, state, result.lost)})
            ],
            record_version=new_version if (result.changed or created) else record.version,
            created_at=ctx.now,
        )
    if created:
        ctx.session.add(record)
    if result.changed or created:
        record.field_clocks = clocks
        if spec.after_change:
            spec.after_change(ctx, record)
        changes = {**result.changed, **_skew_flagged(ctx, record), **_lost_summary(result.lost)}
        _bump(ctx, record, changes, m)
    elif conflict is not None:
        _event(ctx, record, _lost_summary(result.lost), m)
    return record, result.status, conflict


def _writers(
    ctx: ActionContext, state: Mapping[str, FieldState], lost: Sequence[LostValue]
) -> set[uuid.UUID]:
    """The people whose devices last wrote the record's values of the conflicting fields: the
    other side of the conflict (a server write, such as a resolution, names no device)."""
    devices = {_uuid_or_none(state[lv.field.partition("[")[0]].writer) for lv in lost}
    devices.discard(None)
    if not devices:
        return set()
    return set(ctx.session.scalars(select(Device.person_id).where(Device.id.in_(sorted(devices)))))


def _lost_summary(lost: Sequence[Any]) -> dict[str, Any]:
    return {f"lost:{lv.field}": {"value": lv.lost, "side": lv.lost_side} for lv in lost}


def _changes(m: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """A mutation's `set`, `add` and `remove`: each an object, or absent (null)."""
    parts = {part: m.get(part) for part in ("set", "add", "remove")}
    wrong = {p: ["an object"] for p, v in parts.items() if v is not None and type(v) is not dict}
    if wrong:
        raise DomainError("sync.invalid_mutation", errors=wrong)
    set_, add, remove = (v or {} for v in parts.values())
    return set_, add, remove


def _validated(spec: SyncedEntity, m: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    set_, add, remove = _changes(m)
    assert spec.schema is not None
    load = _loader(spec.schema)
    errors: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    for part, payload in (("set", set_), ("add", add)):
        if not payload:
            out.append({})
            continue
        try:
            out.append(load(payload))
        except ma.ValidationError as e:
            errors[part] = e.messages
            out.append({})
    for name, items in remove.items():
        if not (
            name in spec.fields
            and isinstance(items, list)
            and all(isinstance(item, str) for item in items)
        ):
            errors.setdefault("remove", {})[name] = ["a list of values or item ids (strings)"]
    if errors:
        raise DomainError("sync.invalid_mutation", errors=errors)
    return out[0], out[1], remove


@functools.cache
def _loader(schema_class: type[ma.Schema]) -> Loader:
    """Made once per entity schema: building a schema per mutation costs more than loading."""
    return given_fields_loader(schema_class())


def _from_wire(record: Any, name: str, value: Any) -> Any:
    """A wire value (JSON) as the column stores it: times and ids have their own types."""
    column_type = type(record).__table__.c[name].type
    # a TypeDecorator (UTCDateTime) reports `object`: ask the type it decorates
    column_type = getattr(column_type, "impl_instance", column_type)
    try:
        python_type = column_type.python_type
    except NotImplementedError:  # JSON columns
        python_type = None
    if value is None:
        return None
    if python_type is datetime:
        return parse_rfc3339(value)
    if python_type is uuid.UUID:
        return uuid.UUID(value)
    return value


def _bump(ctx: ActionContext, record: Any, changes: dict[str, Any], m: Mapping[str, Any]) -> None:
    record.version = (record.version or 0) + 1
    record.updated_at = ctx.now
    _event(ctx, record, changes, m)


def _event(ctx: ActionContext, record: Any, changes: dict[str, Any], m: Mapping[str, Any]) -> None:
    ctx.events.append(
        {
            "entity": type(record).__sync_entity__,
            "entity_id": record.id,
            "version": record.version,
            "action": str(m.get("type")),
            "person_id": ctx.principal.person_id,
            "device_id": ctx.principal.device.id,
            "device_time": ctx.device_time,
            "hlc": ctx.hlc,
            "server_time": ctx.now,
            "changes": changes,
        }
    )


def quarantine(
    session: Session, *, street_id: uuid.UUID | None, device_id: uuid.UUID | None
) -> Any:
    """Rejected mutations: a street's (a supervisor's view), a device's, or both. A mutation is
    the pushing street's, or, refused as out of scope, the street of the record it named."""
    stmt = select(MutationRecord).where(MutationRecord.status == "rejected")
    if street_id is not None:
        stmt = stmt.where(MutationRecord.street_id == street_id)
    if device_id is not None:
        stmt = stmt.where(MutationRecord.device_id == device_id)
    return stmt.order_by(MutationRecord.received_at.desc(), MutationRecord.device_seq.desc())
