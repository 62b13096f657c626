"""The device's local SQLite store: replica, outbox, cursor, clock, conflicts and rejections.

Every method that changes state is one SQLite transaction (``BEGIN IMMEDIATE`` … ``COMMIT``),
so a device killed at any point restarts from a consistent state:

- an edit is either fully in the outbox (with its ``device_seq``, its HLC tick and the optimistic
  local copy) or not there at all;
- push results are stored together with ``last_acked_seq``: if the device dies after the server
  applied a push but before the response was stored, the next push re-sends from
  ``last_acked_seq + 1`` and the server answers with the stored results (replays) — exactly once;
- a pulled page and the cursor after it are stored together: a page is applied again or not at
  all, never half;
- a photo is copied into the profile and hashed first, then recorded together with the outbox
  entry that adds its hash to the record's evidence; its tus upload URL is stored as soon as the
  server made it, so a restarted upload asks the server for its offset and goes on from there.

The local copy a user sees is the server's data with the outbox entries not yet acknowledged
re-applied on top (``local``); it is rebuilt whenever either side changes.
"""

from __future__ import annotations

import json
import mimetypes
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fieldsync.evidence.hashing import StreamingHasher, iter_chunks
from fieldsync.sync.hlc import HLC, receive, tick
from fieldsync.sync.merge import FieldSpec, FieldState, MergeRefused, Policy, merge

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,   -- the server's version (0: none yet, or unknown)
    data TEXT,                            -- the server's data (JSON), NULL when unknown
    local TEXT,                           -- data with pending edits re-applied; NULL: none
    PRIMARY KEY (entity, id)
);
CREATE TABLE IF NOT EXISTS outbox (
    device_seq INTEGER PRIMARY KEY,
    mutation_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    base_version INTEGER NOT NULL,
    device_time TEXT NOT NULL,
    hlc TEXT NOT NULL,
    body TEXT NOT NULL,                   -- {"set": …, "add": …, "remove": …}
    created_at TEXT NOT NULL,
    status TEXT,                          -- the server's outcome once acknowledged
    result TEXT
);
CREATE INDEX IF NOT EXISTS ix_outbox_entity ON outbox (entity_id, device_seq);
CREATE TABLE IF NOT EXISTS conflicts (
    id TEXT PRIMARY KEY,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    device_seq INTEGER,
    fields TEXT NOT NULL,
    detail TEXT,                          -- the server's conflict (both values), when fetched
    seen_at TEXT NOT NULL,
    resolution TEXT
);
CREATE TABLE IF NOT EXISTS photos (
    sha256 TEXT PRIMARY KEY,              -- of the whole file, computed at capture
    path TEXT NOT NULL,                   -- the copy kept in the profile, relative to it
    filename TEXT NOT NULL,               -- the original file's name (display, Upload-Metadata)
    content_type TEXT,
    size INTEGER NOT NULL,
    captured_at TEXT NOT NULL,
    entity TEXT NOT NULL,                 -- the record it was taken for
    entity_id TEXT NOT NULL,
    device_seq INTEGER NOT NULL,          -- the outbox entry that added it to that record
    state TEXT NOT NULL DEFAULT 'pending',  -- pending | uploaded | refused
    upload_url TEXT,                      -- the tus upload, once the server created it
    offset INTEGER NOT NULL DEFAULT 0,    -- bytes the server had when last asked (display only)
    code TEXT,                            -- why the server refused it
    message TEXT,
    created_at TEXT NOT NULL,
    done_at TEXT
);
CREATE TABLE IF NOT EXISTS rejected (
    device_seq INTEGER PRIMARY KEY,
    mutation_id TEXT NOT NULL,
    type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT,
    message_zh TEXT,
    errors TEXT,
    at TEXT NOT NULL
);
"""

DELETED = {"_deleted": True}  # the local view of a record this device deleted, not yet acked
PHOTO_STATES = ("pending", "uploaded", "refused")


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Crash(Exception):
    """Raised by a test's fault hook to simulate the process dying inside a transaction."""


class Store:
    """One device profile's state, in one SQLite file. Not shared between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        # a phone loses power: a committed sync step must survive it
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        # tests set this to raise Crash at a named point inside a transaction
        self.fault: Callable[[str], None] | None = None

    def close(self) -> None:
        self.conn.close()

    # --- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _point(self, name: str) -> None:
        if self.fault is not None:
            self.fault(name)

    def get(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def _set(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def set(self, **values: Any) -> None:
        with self.transaction():
            for key, value in values.items():
                self._set(key, value)

    # --- identity -----------------------------------------------------------------------------

    def device_id(self) -> str:
        """This profile's device id: made once, kept forever (the server keys device_seq by it)."""
        existing = self.get("device_id")
        if existing:
            return str(existing)
        with self.transaction():
            existing = self.get("device_id")
            if not existing:
                existing = str(uuid.uuid4())
                self._set("device_id", existing)
        return str(existing)

    # --- reading ------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return int(self.get("last_seq", 0))

    @property
    def last_acked_seq(self) -> int:
        return int(self.get("last_acked_seq", 0))

    @property
    def cursor(self) -> str | None:
        return self.get("cursor")

    def hlc(self) -> HLC | None:
        text = self.get("hlc")
        return HLC.parse(text) if text else None

    def record(self, entity: str, record_id: str) -> dict[str, Any] | None:
        """What the user sees: the server's data with pending edits on top (None: unknown or
        deleted on this device)."""
        row = self.conn.execute(
            "SELECT data, local FROM records WHERE entity = ? AND id = ?", (entity, record_id)
        ).fetchone()
        if row is None:
            return None
        view = json.loads(row["local"] or row["data"] or "null")
        if view is None or view.get("_deleted"):
            return None
        return view

    def server_record(self, entity: str, record_id: str) -> tuple[int, dict[str, Any] | None]:
        row = self.conn.execute(
            "SELECT version, data FROM records WHERE entity = ? AND id = ?", (entity, record_id)
        ).fetchone()
        if row is None:
            return 0, None
        return int(row["version"]), json.loads(row["data"]) if row["data"] else None

    def records(self, entity: str) -> dict[str, tuple[int, dict[str, Any]]]:
        """The server's copy of every record of one entity: id -> (version, data)."""
        rows = self.conn.execute(
            "SELECT id, version, data FROM records WHERE entity = ? AND data IS NOT NULL",
            (entity,),
        )
        return {r["id"]: (int(r["version"]), json.loads(r["data"])) for r in rows}

    def pending(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Outbox entries not yet acknowledged, in device_seq order, in wire form."""
        sql = "SELECT * FROM outbox WHERE device_seq > ? ORDER BY device_seq"
        params: tuple[Any, ...] = (self.last_acked_seq,)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        return [wire(row) for row in self.conn.execute(sql, params)]

    def pending_count(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM outbox WHERE device_seq > ?", (self.last_acked_seq,)
        ).fetchone()
        return int(row[0])

    def outbox_entry(self, device_seq: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM outbox WHERE device_seq = ?", (device_seq,)
        ).fetchone()
        return None if row is None else {**wire(row), "status": row["status"]}

    def conflicts(self, *, open_only: bool = True) -> list[dict[str, Any]]:
        sql = "SELECT * FROM conflicts"
        if open_only:
            sql += " WHERE resolution IS NULL"
        return [
            {
                "id": r["id"],
                "entity": r["entity"],
                "entity_id": r["entity_id"],
                "device_seq": r["device_seq"],
                "fields": json.loads(r["fields"]),
                "detail": json.loads(r["detail"]) if r["detail"] else None,
                "resolution": r["resolution"],
            }
            for r in self.conn.execute(sql + " ORDER BY seen_at, id")
        ]

    def rejected(self) -> list[dict[str, Any]]:
        return [
            {**dict(r), "errors": json.loads(r["errors"]) if r["errors"] else None}
            for r in self.conn.execute("SELECT * FROM rejected ORDER BY device_seq")
        ]

    # --- writing: local edits -----------------------------------------------------------------

    def enqueue(
        self,
        *,
        entity: str,
        entity_id: str,
        action: str,
        set_: Mapping[str, Any] | None = None,
        add: Mapping[str, list[Any]] | None = None,
        remove: Mapping[str, list[Any]] | None = None,
        now: datetime,
        node: str,
    ) -> dict[str, Any]:
        """Record one local change: the next device_seq, an HLC tick, the optimistic local copy.
        The base version is the version of the server's copy this device holds."""
        with self.transaction():
            seq = self._enqueue(
                entity, entity_id, action, set_=set_, add=add, remove=remove, now=now, node=node
            )
            self._point("enqueue.done")
        entry = self.outbox_entry(seq)
        assert entry is not None
        return entry

    def _enqueue(
        self,
        entity: str,
        entity_id: str,
        action: str,
        *,
        set_: Mapping[str, Any] | None = None,
        add: Mapping[str, list[Any]] | None = None,
        remove: Mapping[str, list[Any]] | None = None,
        now: datetime,
        node: str,
    ) -> int:
        """The outbox entry, inside the caller's transaction; returns its device_seq."""
        body = {k: dict(v) for k, v in (("set", set_), ("add", add), ("remove", remove)) if v}
        seq = self.last_seq + 1
        row = self.conn.execute(
            "SELECT version FROM records WHERE entity = ? AND id = ?", (entity, entity_id)
        ).fetchone()
        base_version = int(row["version"]) if row else 0
        clock = tick(self.hlc(), now_ms=int(now.timestamp() * 1000), node=node)
        self.conn.execute(
            "INSERT INTO outbox (device_seq, mutation_id, type, entity, entity_id, "
            "base_version, device_time, hlc, body, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                str(uuid.uuid4()),
                f"{entity}.{action}",
                entity,
                entity_id,
                base_version,
                rfc3339(now),
                str(clock),
                json.dumps(body, ensure_ascii=False),
                rfc3339(utcnow()),
            ),
        )
        self._point("enqueue.inserted")
        self._set("last_seq", seq)
        self._set("hlc", str(clock))
        self._rebuild(entity, entity_id)
        return seq

    # --- photos (evidence taken on this phone) ------------------------------------------------

    @property
    def photos_dir(self) -> Path:
        return self.path.parent / "photos"

    def add_photo(
        self,
        source: Path,
        *,
        entity: str,
        entity_id: str,
        captured_at: datetime,
        now: datetime,
        node: str,
    ) -> dict[str, Any]:
        """Take a photo into the profile and add it to a record's evidence.

        The bytes are copied and hashed in one pass (the SHA-256 is of exactly what will be
        uploaded, even if the original is later changed or deleted), then the photo and the
        outbox entry `add: {evidence: [sha256]}` are recorded in one transaction, so the record
        can sync before the bytes. A crash before that commit leaves at most a copy no row
        names; taking the same photo again reuses it.
        """
        sha256, size, kept = self._copy_in(source)
        self._point("photo.copied")
        with self.transaction() as c:
            seq = self._enqueue(
                entity, entity_id, "upsert", add={"evidence": [sha256]}, now=now, node=node
            )
            c.execute(
                "INSERT INTO photos (sha256, path, filename, content_type, size, captured_at, "
                "entity, entity_id, device_seq, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (sha256) DO NOTHING",  # the same bytes again: one upload serves all
                (
                    sha256,
                    str(kept.relative_to(self.path.parent)),
                    source.name,
                    mimetypes.guess_type(source.name)[0],
                    size,
                    rfc3339(captured_at),
                    entity,
                    entity_id,
                    seq,
                    rfc3339(now),
                ),
            )
            self._point("photo.recorded")
        photo = self.photo(sha256)
        assert photo is not None
        return photo

    def _copy_in(self, source: Path) -> tuple[str, int, Path]:
        self.photos_dir.mkdir(parents=True, exist_ok=True)
        hasher = StreamingHasher("sha256")
        partial = self.photos_dir / f".{uuid.uuid4().hex}.part"
        try:
            with source.open("rb") as src, partial.open("xb") as dst:
                for block in iter_chunks(src):
                    hasher.update(block)
                    dst.write(block)
                dst.flush()
                os.fsync(dst.fileno())
            kept = self.photos_dir / (hasher.hexdigest() + source.suffix.lower())
            os.replace(partial, kept)
        finally:
            partial.unlink(missing_ok=True)
        return hasher.hexdigest(), hasher.bytes_seen, kept

    def photo(self, sha256: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else dict(row)

    def photos(self, state: str | None = None) -> list[dict[str, Any]]:
        """Photos in the order they were taken, optionally only those in one state."""
        sql, params = "SELECT * FROM photos", ()
        if state is not None:
            sql, params = sql + " WHERE state = ?", (state,)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY device_seq, sha256", params)]

    def photo_file(self, photo: Mapping[str, Any]) -> Path:
        return self.path.parent / str(photo["path"])

    def photo_upload_created(self, sha256: str, url: str) -> None:
        """The server made the tus upload: from now on it is resumed, never made again."""
        with self.transaction() as c:
            c.execute(
                "UPDATE photos SET upload_url = ?, offset = 0 WHERE sha256 = ?", (url, sha256)
            )

    def photo_offset(self, sha256: str, offset: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE photos SET offset = ? WHERE sha256 = ?", (offset, sha256))

    def photo_upload_lost(self, sha256: str) -> None:
        """The server no longer knows the upload (expired, removed): the next try makes one."""
        with self.transaction() as c:
            c.execute("UPDATE photos SET upload_url = NULL, offset = 0 WHERE sha256 = ?", (sha256,))

    def photo_uploaded(self, sha256: str, *, now: datetime) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE photos SET state = 'uploaded', offset = size, done_at = ? WHERE sha256 = ?",
                (rfc3339(now), sha256),
            )

    def photo_refused(self, sha256: str, *, code: str, message: str, now: datetime) -> None:
        """The server will never take these bytes as evidence: they are not sent again."""
        with self.transaction() as c:
            c.execute(
                "UPDATE photos SET state = 'refused', code = ?, message = ?, done_at = ? "
                "WHERE sha256 = ?",
                (code, message, rfc3339(now), sha256),
            )

    # --- writing: what the server said --------------------------------------------------------

    def apply_push(self, response: Mapping[str, Any], *, now: datetime) -> dict[str, int]:
        """Store a push response: every result, the records it returned, conflicts and
        rejections, and last_acked_seq — together. Returns counts per status."""
        counts: dict[str, int] = {}
        missing = set(response.get("missing_evidence") or [])
        held: set[str] = set()  # hashes the server already holds as verified evidence
        with self.transaction() as c:
            acked = self.last_acked_seq
            touched: set[tuple[str, str]] = set()
            for result in response.get("results", []):
                seq = int(result["device_seq"])
                if seq <= acked:
                    continue  # stored already (a response we did get, sent again)
                row = c.execute("SELECT * FROM outbox WHERE device_seq = ?", (seq,)).fetchone()
                if row is None:
                    raise ValueError(f"the server answered for device_seq {seq}, not in the outbox")
                status = str(result.get("status"))
                counts[status] = counts.get(status, 0) + 1
                c.execute(
                    "UPDATE outbox SET status = ?, result = ? WHERE device_seq = ?",
                    (status, json.dumps(result, ensure_ascii=False), seq),
                )
                entity, entity_id = row["entity"], row["entity_id"]
                if status != "rejected" and isinstance(result.get("data"), dict):
                    data = result["data"]
                    self._put(entity, entity_id, int(result["version"]), data, answer=True)
                    named = set(data.get("evidence") or [])
                    held |= named - set(data.get("evidence_missing") or [])
                if status == "conflict" and result.get("conflict_id"):
                    c.execute(
                        "INSERT INTO conflicts (id, entity, entity_id, device_seq, fields, "
                        "seen_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                        (
                            result["conflict_id"],
                            entity,
                            entity_id,
                            seq,
                            json.dumps(result.get("fields") or []),
                            rfc3339(now),
                        ),
                    )
                if status == "rejected":
                    c.execute(
                        "INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            seq,
                            row["mutation_id"],
                            row["type"],
                            entity_id,
                            str(result.get("code")),
                            result.get("message"),
                            result.get("message_zh"),
                            json.dumps(result.get("errors"), ensure_ascii=False),
                            rfc3339(now),
                        ),
                    )
                touched.add((entity, entity_id))
                acked = seq
                self._point("push.result_stored")
            self._set("last_acked_seq", acked)
            # another phone (or an earlier upload) brought these bytes: nothing to send
            for sha256 in sorted(held - missing):
                c.execute(
                    "UPDATE photos SET state = 'uploaded', offset = size, done_at = ? "
                    "WHERE sha256 = ? AND state = 'pending'",
                    (rfc3339(now), sha256),
                )
            self._receive(response.get("server_time"), now=now)
            for entity, entity_id in touched:
                self._rebuild(entity, entity_id)
            self._set("last_push_at", rfc3339(now))
            self._point("push.done")
        return counts

    def rewind(self, expected_device_seq: int) -> None:
        """The server lacks mutations from `expected_device_seq` on (409 sync.sequence_gap, e.g.
        its database was restored): send them again from there."""
        with self.transaction() as c:
            if expected_device_seq > self.last_seq + 1:
                raise ValueError(
                    f"the server expects device_seq {expected_device_seq}, "
                    f"beyond this device's last ({self.last_seq})"
                )
            first = c.execute("SELECT min(device_seq) FROM outbox").fetchone()[0]
            if expected_device_seq <= self.last_seq and (first or 1) > expected_device_seq:
                raise ValueError(f"device_seq {expected_device_seq} is no longer in the outbox")
            acked = min(self.last_acked_seq, expected_device_seq - 1)
            self._set("last_acked_seq", acked)
            self._point("rewind.acked")
            for entity, entity_id in c.execute(
                "SELECT DISTINCT entity, entity_id FROM outbox WHERE device_seq > ?", (acked,)
            ).fetchall():
                self._rebuild(entity, entity_id)
            self._point("rewind.done")

    def apply_pull_page(self, page: Mapping[str, Any], *, now: datetime) -> int:
        """Store one pulled page and the cursor after it, together."""
        with self.transaction():
            for change in page.get("changes", []):
                entity, record_id = str(change["entity"]), str(change["id"])
                if change.get("op") == "upsert":
                    self._put(entity, record_id, int(change["version"]), change["data"])
                else:
                    self._drop(entity, record_id, int(change.get("version") or 0))
                self._rebuild(entity, record_id)
                self._point("pull.change_stored")
            self._set("cursor", page.get("cursor"))
            self._set("cursor_at", rfc3339(now))
            self._receive(page.get("server_time"), now=now)
            self._point("pull.done")
        return len(page.get("changes", []))

    def reset_replica(self) -> None:
        """Forget the cursor and the server's data (410 sync.cursor_expired); keep the outbox."""
        with self.transaction() as c:
            c.execute("UPDATE records SET data = NULL, version = 0")
            self._set("cursor", None)
            self._set("cursor_at", None)
            self._point("reset.forgotten")
            for entity, record_id in c.execute("SELECT entity, id FROM records").fetchall():
                self._rebuild(entity, record_id)
            self._point("reset.done")

    def note_conflicts(self, conflicts: list[Mapping[str, Any]], *, now: datetime) -> None:
        """Keep the server's view of this user's conflicts (both values) for offline display."""
        with self.transaction() as c:
            for item in conflicts:
                c.execute(
                    "INSERT INTO conflicts (id, entity, entity_id, fields, detail, seen_at, "
                    "resolution) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    "detail = excluded.detail, resolution = excluded.resolution",
                    (
                        str(item["id"]),
                        str(item["entity"]),
                        str(item["entity_id"]),
                        json.dumps(item.get("fields") or []),
                        json.dumps(item, ensure_ascii=False),
                        rfc3339(now),
                        item.get("resolution"),
                    ),
                )

    def _put(
        self,
        entity: str,
        record_id: str,
        version: int,
        data: Mapping[str, Any],
        *,
        answer: bool = False,
    ) -> None:
        """The server's copy, unless this device already holds a newer one. A push `answer`
        may be a replay of one the server gave before the record went (deleted, or out of this
        device's scope): it never brings back a record whose tombstone this device took at
        its version or later. The feed's upserts are in commit order: one after a tombstone is
        the record back."""
        newer = "excluded.version >= records.version OR records.data IS NULL"
        if answer:  # a tombstone (no data, a version) stands against answers as old as it
            tombstone = "records.data IS NULL AND records.version > 0"
            newer = (
                f"CASE WHEN {tombstone} THEN excluded.version > records.version ELSE {newer} END"
            )
        self.conn.execute(
            "INSERT INTO records (entity, id, version, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (entity, id) DO UPDATE SET version = excluded.version, "
            f"data = excluded.data WHERE {newer}",
            (entity, record_id, version, json.dumps(data, ensure_ascii=False)),
        )

    def _drop(self, entity: str, record_id: str, version: int) -> None:
        """A tombstone: no data, and the version it came at (0 when unknown)."""
        self.conn.execute(
            "UPDATE records SET data = NULL, version = ? WHERE entity = ? AND id = ?",
            (version, entity, record_id),
        )

    def _rebuild(self, entity: str, record_id: str) -> None:
        """Local copy = the server's data with the unacknowledged outbox entries re-applied."""
        row = self.conn.execute(
            "SELECT data FROM records WHERE entity = ? AND id = ?", (entity, record_id)
        ).fetchone()
        server = json.loads(row["data"]) if row and row["data"] else None
        pending = self.conn.execute(
            "SELECT type, body FROM outbox WHERE entity = ? AND entity_id = ? AND device_seq > ? "
            "ORDER BY device_seq",
            (entity, record_id, self.last_acked_seq),
        ).fetchall()
        if not pending:
            if server is None:
                self.conn.execute(
                    "DELETE FROM records WHERE entity = ? AND id = ?", (entity, record_id)
                )
            else:
                self.conn.execute(
                    "UPDATE records SET local = NULL WHERE entity = ? AND id = ?",
                    (entity, record_id),
                )
            return
        view: dict[str, Any] = dict(server or {})
        for p in pending:
            view = apply_mutation(view, p["type"], json.loads(p["body"]))
        self.conn.execute(
            "INSERT INTO records (entity, id, version, data, local) VALUES (?, ?, 0, NULL, ?) "
            "ON CONFLICT (entity, id) DO UPDATE SET local = excluded.local",
            (entity, record_id, json.dumps(view, ensure_ascii=False)),
        )

    def _receive(self, server_time: str | None, *, now: datetime) -> None:
        # The server's clock is the latest remote clock a device sees: later local edits order
        # after it even when this phone's clock runs behind.
        remote = parse_time(server_time)
        if remote is None:
            return
        last = self.hlc()
        node = last.node if last else self.get("device_id", "device")
        clock = receive(
            last,
            HLC(int(remote.timestamp() * 1000), 0, "server"),
            now_ms=int(now.timestamp() * 1000),
            node=node,
        )
        self._set("hlc", str(clock))


def wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox row as PROTOCOL.md §3 sends it."""
    out = {
        "device_seq": row["device_seq"],
        "mutation_id": row["mutation_id"],
        "type": row["type"],
        "entity_id": row["entity_id"],
        "base_version": row["base_version"],
        "device_time": row["device_time"],
        "hlc": row["hlc"],
    }
    out.update(json.loads(row["body"]))
    return out


def _policy_of(current: Any, new: Any) -> FieldSpec:
    """Synced entities' list fields are sets (union) or sets of objects by id; the rest is
    last-writer-wins. The local copy follows the server's rules for a non-concurrent edit."""
    for value in (current, new):
        if isinstance(value, list):
            if any(isinstance(item, dict) for item in value):
                return FieldSpec(Policy.UNION_BY_ID)
            if value:
                return FieldSpec(Policy.UNION)
    if isinstance(current, list) or isinstance(new, list):
        return FieldSpec(Policy.UNION)
    return FieldSpec(Policy.DEVICE_LWW)


def apply_mutation(data: Mapping[str, Any], mtype: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """One outbox entry applied optimistically to a local copy (pure)."""
    view = dict(data)
    if view.get("_deleted"):
        return view
    action = mtype.partition(".")[2]
    if action == "delete":
        return dict(DELETED)
    if action == "submit":
        if view.get("status", "draft") == "draft":
            view["status"] = "submitted"
        return view
    set_, add, remove = body.get("set") or {}, body.get("add") or {}, body.get("remove") or {}
    names = list(dict.fromkeys([*set_, *add, *remove]))
    spec = {n: _policy_of(view.get(n), set_.get(n, add.get(n, remove.get(n)))) for n in names}
    state = {n: FieldState(view.get(n), 0, "") for n in names}
    try:
        result = merge(
            spec,
            state,
            base_version=0,
            hlc="~",
            writer="local",
            set_=set_,
            add=add,
            remove=remove,
            submitted=False,
        )
    except MergeRefused:
        return view  # the server will reject it; the local copy shows it unchanged
    view.update(result.changed)
    return view
