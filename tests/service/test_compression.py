"""On PostgreSQL, large values are compressed with lz4 (fieldsync.db.make_engine), whatever the
server's default: a stored payload says which method compressed it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import insert, text

from fieldsync.sync.models import FeedPayload


def test_a_large_value_is_compressed_with_lz4(app: Any, session: Any) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite compresses nothing")
    with session.begin():
        has_lz4 = session.execute(
            text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = "
                "'default_toast_compression'"
            )
        ).scalar_one()
        if not has_lz4:
            pytest.skip("this PostgreSQL was built without lz4: pglz it is")
        # the server's own default stays pglz: only the app's sessions choose lz4
        assert (
            session.execute(
                text("SELECT boot_val FROM pg_settings WHERE name = 'default_toast_compression'")
            ).scalar_one()
            == "pglz"
        )
        entity_id = uuid.uuid4()
        data = '{"description":"' + "东华门大街占道经营。" * 400 + '"}'
        session.execute(
            insert(FeedPayload.__table__),
            {"entity": "inspection", "entity_id": entity_id, "version": 1, "data": data},
        )
        method = session.execute(
            text("SELECT pg_column_compression(data) FROM sync_payloads WHERE entity_id = :i"),
            {"i": entity_id},
        ).scalar_one()
    assert method == "lz4"
