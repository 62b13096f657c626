"""TEXT read as the UTF-8 bytes the database holds (fieldsync.db.as_utf8_bytes), for the one
statement that asks: the pull copies payloads into its body this way, and every other read of
the same connection still gets str. And a UUID column read as its text (fieldsync.db.id_as_text),
as the pull reads the ids it sends."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select

from fieldsync.db import TEXT_AS_BYTES, as_utf8_bytes, id_as_text
from fieldsync.sync.models import FeedPayload

TEXT = '{"address":"东城区东华门大街1号","note":"é ✓ 𠀋"}'


def test_a_statement_asking_for_bytes_gets_the_utf8_bytes_and_no_other_does(session: Any) -> None:
    session.execute(
        insert(FeedPayload.__table__),
        [
            {
                "entity": "inspection",
                "entity_id": uuid.uuid4(),
                "version": 1,
                "data": TEXT,
            }
        ],
    )
    as_bytes = select(FeedPayload.entity, as_utf8_bytes(session, FeedPayload.data))
    entity, data = session.execute(as_bytes, execution_options={TEXT_AS_BYTES: True}).one()
    assert data == TEXT.encode("utf-8")
    assert entity == "inspection"  # VARCHAR columns of that statement are decoded as ever

    # the same connection, the next statement: str again
    assert session.execute(select(FeedPayload.data)).scalar_one() == TEXT


def test_a_uuid_read_as_text_is_what_str_of_it_gives(session: Any) -> None:
    ids = [uuid.uuid4(), uuid.UUID(int=0), uuid.UUID("ABCDEF01-2345-6789-ABCD-EF0123456789")]
    session.execute(
        insert(FeedPayload.__table__),
        [{"entity": "inspection", "entity_id": i, "version": 1, "data": "{}"} for i in ids],
    )
    read = session.scalars(select(id_as_text(session, FeedPayload.entity_id))).all()
    assert sorted(read) == sorted(str(i) for i in ids)
    assert all(type(text) is str for text in read)
