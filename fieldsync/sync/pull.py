"""Pull: one page of the device's changes as the response body, built from the records' stored
wire forms (no record is loaded, decoded or encoded)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fieldsync.clock import isoformat
from fieldsync.errors import DomainError
from fieldsync.org.models import Role
from fieldsync.sync.feed import Change, decode_cursor, encode_cursor, read_page


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
) -> bytes:
    """The JSON body of one page (PROTOCOL.md §2), UTF-8, ready to send."""
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
    envelope = json.dumps(
        {
            "protocol": 1,
            "cursor": encode_cursor(page.cursor, secret=secret),
            "has_more": page.has_more,
            "server_time": isoformat(now),
        }
    )
    return _body(envelope, page.changes)


def _body(envelope: str, changes: list[Change]) -> bytes:
    """The envelope with the changes spliced in, each upsert around its stored payload: UTF-8
    bytes joined once, the payloads as the database sent them (decoding them into str and
    encoding the body again would cost more than the rest of the page)."""
    parts = [envelope[:-1].encode(), b',"changes":[']
    separator = ""
    for change in changes:
        if change.op == "upsert":
            # entity names are identifiers of the code and ids UUIDs: nothing in them to escape
            parts.append(
                f'{separator}{{"entity":"{change.entity}","id":"{change.entity_id}",'
                f'"version":{change.version},"op":"upsert","data":'.encode()
            )
            parts.append(change.data)  # type: ignore[arg-type]
            parts.append(b"}")
        else:
            tombstone = {
                "entity": change.entity,
                "id": change.entity_id,
                "version": change.version,
                "op": "delete",
                "reason": change.reason or "deleted",
            }
            parts.append((separator + json.dumps(tombstone)).encode())
        separator = ","
    parts.append(b"]}")
    return b"".join(parts)
