"""Database plumbing: the declarative base, portable column types, engines and sessions."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg.adapt import Loader
from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    cast,
    create_engine,
    event,
    insert,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores no zone; we put it back on load)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type:
        # sync's _from_wire converts wire strings by the column's python type
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: fieldsync stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# For documents written once and read whole, never queried into (the mutation log, the trace):
# PostgreSQL's json keeps the text as written, where jsonb first parses it into its binary form
# and turns it back into text on every read. A 1,000-mutation push writes about 5 MB of such
# JSON; with json it ran about 4% faster (median of 8 rounds, pushes alternating between two
# databases in one process).
WriteOnceJSON = JSON()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


class Synced:
    """A record that devices receive through the change feed (see fieldsync.sync.feed).

    `version` grows by one with every change; the feed keys each record by `__sync_entity__`.
    """

    __sync_entity__: str
    version: Mapped[int] = mapped_column(Integer, default=1)

    def sync_audiences(self) -> list[str]:
        """Who receives this record: "all", "street:<id>", "staff:<id>" or "person:<id>"."""
        raise NotImplementedError


def upsert_insert(session: Session, table: Any) -> Any:
    """INSERT for the session's database with its ON CONFLICT clauses (PostgreSQL and SQLite
    spell them alike, but SQLAlchemy has one construct per dialect)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def append_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT rows that all name the same columns into a table, in the session's transaction,
    with nothing returned and no conflict expected (the push's log and trace). On PostgreSQL by
    COPY: each value goes through its column type's own bind processing, as in an INSERT, but
    the rows stream in one statement, not one execution each (a third of the client's time and
    less of the server's). Elsewhere an executemany. Pending ORM objects are not flushed first."""
    if not rows:
        return
    names = list(rows[0])
    if any(row.keys() != rows[0].keys() for row in rows):
        # refused before anything is sent: a COPY that fails half-way fails the transaction
        raise ValueError(f"append_rows: every row names the columns {names}")
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        with session.no_autoflush:
            session.execute(insert(table), rows)
        return
    from psycopg import sql

    processors = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    steps = list(zip(names, processors, strict=True))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    dbapi_connection: Any = session.connection().connection.dbapi_connection
    with dbapi_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[n] if p is None else p(row[n]) for n, p in steps])


def json_text(value: Any) -> str:
    """JSON columns are written with orjson (json.dumps was an eighth of a large push): the
    same JSON, compact; values are plain JSON types by then (see inspections.entities). Keys
    that are not strings (the list indexes of a validation error) are written as strings, as
    json.dumps does."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def make_engine(url: str, **kwargs: Any) -> Engine:
    kwargs.setdefault("json_serializer", json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when a transaction begins, so that BEGIN
            # IMMEDIATE below serialises writers instead of failing late with "database is locked".
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # UTF-8 whatever the database's own encoding: TEXT_AS_BYTES hands on the bytes received
    kwargs["connect_args"] = {"client_encoding": "utf8", **kwargs.get("connect_args", {})}
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _lz4(dbapi_connection: Any, _record: Any) -> None:
        # Values over 2 KB (payloads, the mutation log, events, inspections) are compressed;
        # lz4 compresses and decompresses several times faster than the default pglz, for
        # about the same size. Where the server has it (PostgreSQL 14+, built with lz4): this
        # session's default, so every table and column has it without a migration.
        dbapi_connection.autocommit = True
        dbapi_connection.execute(
            "SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings "
            "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )
        dbapi_connection.autocommit = False

    @event.listens_for(engine, "before_cursor_execute")
    def _text_as_bytes(
        _conn: Any, cursor: Any, _sql: str, _params: Any, context: Any, _many: bool
    ) -> None:
        # this cursor only (psycopg copies the connection's adapters on write)
        if context is not None and context.execution_options.get(TEXT_AS_BYTES):
            cursor.adapters.register_loader("text", _Utf8Bytes)

    return engine


# An execution option: the statement's TEXT columns (not VARCHAR) come back as bytes.
TEXT_AS_BYTES = "fieldsync_text_as_bytes"


def as_utf8_bytes(session: Session, column: Any) -> Any:
    """A TEXT column read as the UTF-8 bytes the database holds, not decoded into str: for text
    copied as it is into a response (decoding it and encoding it again costs more than reading
    it). Execute the statement with the execution option TEXT_AS_BYTES: on PostgreSQL the
    driver then loads TEXT as bytes; on SQLite the column is cast to BLOB."""
    if session.get_bind().dialect.name == "sqlite":
        return cast(column, LargeBinary)
    return column


def id_as_text(session: Session, column: Any) -> Any:
    """A UUID column read as its canonical text, what str() of the UUID gives: for ids that only
    go into a response (turning each row's UUID into text was more than half of building a
    first pull's body). PostgreSQL casts it; SQLite stores the hex digits, put in the usual
    form."""
    if session.get_bind().dialect.name == "sqlite":
        return type_coerce(column, _HexUuidAsText())
    return cast(column, String)


class _HexUuidAsText(TypeDecorator[str]):
    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else str(uuid.UUID(value))


class _Utf8Bytes(Loader):
    """psycopg: a TEXT value as the bytes received (the connection's encoding is UTF-8)."""

    def load(self, data: Any) -> bytes:
        return bytes(data)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
