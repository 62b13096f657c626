"""Pull: one page of the device's changes, with the records' current data."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from fieldsync.clock import isoformat
from fieldsync.errors import DomainError
from fieldsync.org.models import Role
from fieldsync.sync import registry
from fieldsync.sync.feed import decode_cursor, encode_cursor, read_page


def audiences_of(principal: Any) -> list[str]:
    """Which slices of the feed a person's devices receive."""
    street = principal.street_id
    audiences = ["all", f"street:{street}", f"person:{principal.person_id}"]
    if principal.roles - {Role.GRID_WORKER}:
        audiences.append(f"staff:{street}")
    return sorted(audiences)


def pull(
    session: Session,
    *,
    principal: Any,
    cursor: str | None,
    limit: int,
    now: datetime,
    config: Any,
) -> dict[str, Any]:
    if not 1 <= limit <= config.sync_page_max:
        raise DomainError("sync.limit_out_of_range", max=config.sync_page_max)
    device_id = str(principal.device.id)
    secret = config.secret()
    decoded = decode_cursor(cursor, secret=secret, device_id=device_id) if cursor else None
    page = read_page(
        session,
        device_id=device_id,
        audiences=audiences_of(principal),
        cursor=decoded,
        limit=limit,
        now=now,
        retention=timedelta(days=config.sync_retention_days),
    )
    wanted: dict[str, list[Any]] = defaultdict(list)
    for change in page.changes:
        if change.op == "upsert":
            wanted[change.entity].append(change.entity_id)
    loaded: dict[tuple[str, Any], Any] = {}
    for name, ids in wanted.items():
        spec = registry.entity(name)
        assert spec is not None, name
        model: Any = spec.model
        stmt = select(model)
        if "field_clocks" in model.__table__.c:
            # merge bookkeeping, never sent: not worth decoding for every record of a page
            stmt = stmt.options(defer(model.field_clocks))
        for start in range(0, len(ids), 1000):
            for record in session.scalars(stmt.where(model.id.in_(ids[start : start + 1000]))):
                loaded[(name, record.id)] = record
    changes = []
    for change in page.changes:
        item: dict[str, Any] = {"entity": change.entity, "id": str(change.entity_id)}
        record = loaded.get((change.entity, change.entity_id))
        visible = record is not None and getattr(record, "deleted_at", None) is None
        if change.op == "upsert" and visible:
            spec = registry.entity(change.entity)
            assert spec is not None
            item.update(version=record.version, op="upsert", data=spec.serialize(record))
        else:
            item.update(version=change.version, op="delete", reason=change.reason or "deleted")
        changes.append(item)
    return {
        "protocol": 1,
        "cursor": encode_cursor(page.cursor, secret=secret),
        "has_more": page.has_more,
        "server_time": isoformat(now),
        "changes": changes,
    }
