"""db.append_rows, the push's bulk write of its log and trace (COPY on PostgreSQL): a row
reads back exactly as the same row written by an INSERT, whatever its text holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert, select

from fieldsync.db import append_rows
from fieldsync.sync.models import Event

# what COPY's text format must escape, and text beyond the BMP
AWKWARD = 'tab\there, newline\nthere, CR\r, back\\slash, \\N, "quotes", 东城区 𠀋 ✓'


def _rows(entity_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    beijing = timezone(timedelta(hours=8))
    return [
        {
            "entity": "inspection",
            "entity_id": entity_id,
            "version": n + 1,
            "action": "inspection.upsert",
            "person_id": None,
            "device_id": None,
            # an offset other than UTC, and none at all: stored as UTC, NULL
            "device_time": datetime(2026, 11, 25, 16, 0, n, tzinfo=beijing) if n else None,
            "hlc": AWKWARD,
            "server_time": datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
            "changes": {
                "description": AWKWARD,
                AWKWARD: [1, 2.5, None, True, {"nested": AWKWARD}],
                "empty": "",
            },
        }
        for n, entity_id in enumerate(entity_ids)
    ]


def _read(session: Any, entity_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Event.__table__).where(Event.entity_id.in_(entity_ids)).order_by(Event.version)
    ).mappings()
    return [{k: v for k, v in row.items() if k not in ("id", "entity_id")} for row in rows]


def test_a_row_appended_reads_back_as_the_same_row_inserted(session: Any) -> None:
    inserted_ids = [uuid.uuid4() for _ in range(3)]
    appended_ids = [uuid.uuid4() for _ in range(3)]
    session.execute(insert(Event.__table__), _rows(inserted_ids))
    append_rows(session, Event.__table__, _rows(appended_ids))
    session.commit()

    appended = _read(session, appended_ids)
    assert appended == _read(session, inserted_ids)
    assert appended[0]["device_time"] is None
    assert appended[1]["device_time"] == datetime(2026, 11, 25, 8, 0, 1, tzinfo=UTC)
    assert appended[2]["hlc"] == AWKWARD
    assert appended[2]["changes"][AWKWARD][4] == {"nested": AWKWARD}


def test_rows_naming_different_columns_are_refused_before_anything_is_written(
    session: Any,
) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    rows = _rows(ids)
    del rows[1]["hlc"]
    with pytest.raises(ValueError, match="every row names the columns"):
        append_rows(session, Event.__table__, rows)
    # the transaction is still good: nothing of the refused rows, the next write goes in
    assert _read(session, ids) == []
    append_rows(session, Event.__table__, _rows(ids[:1]))
    session.commit()
    assert len(_read(session, ids)) == 1
