"""Sync benchmarks: push batches, first pull, incremental pull and push over 10k and 1M feed rows.

Push and pull are measured through the service functions (`fieldsync.sync.push.push`,
`fieldsync.sync.pull.pull`, the latter building the response body the view sends), each call
in its own transaction with token authentication and the commit, as one request does; HTTP
(Flask, JSON, marshmallow where the view uses it) is measured in one extra row for each.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    Table,
    Uuid,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from bench.env import BenchApp
from bench.table import Report, Row, Target

# what a push of new inspections writes: table -> the column naming the inspection
COPIED = {
    "inspections": "id",
    "sync_mutations": "entity_id",
    "events": "entity_id",
    "sync_feed": "entity_id",
    "sync_payloads": "entity_id",
}
# rounds: how many incremental pulls and pushes at 10k and at 1M feed rows each median is of.
# One push of 100 took from 98 to 591 ms within a minute on these machines: medians of 5 put
# the same code's SQLite push ratio at 1.01 in one run and 1.57 in the next.
SIZES_FULL = {"push_single": 200, "first_pull": 10_000, "big_feed": 1_000_000, "rounds": 15}
SIZES_QUICK = {"push_single": 20, "first_pull": 2_000, "big_feed": 50_000, "rounds": 3}

DESCRIPTION = (
    "东华门大街与南池子大街交叉口东北角，流动摊贩占道经营，售卖水果与小食，"
    "占用人行道约六平方米，影响行人通行。现场已拍照取证，告知当事人立即整改。"
    "Street vendor occupying the pavement at the north-east corner of the crossing; "
    "about six square metres blocked, pedestrians forced onto the road. Photos taken, "
    "the vendor was told to clear the pavement at once and moved the cart while we watched."
)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _read_page(body: str | bytes) -> tuple[int, str, bool]:
    """The phone's reading of a pull page: (changes, cursor, has_more). With the collector off:
    the parsed page (tens of thousands of objects) is gone again before it could run, so the
    phone's garbage never sets off full collections inside the server's timed part."""
    gc.disable()
    try:
        page = json.loads(body)
        facts = len(page["changes"]), page["cursor"], page["has_more"]
        del page
        return facts
    finally:
        gc.enable()


@dataclass
class Phone:
    """A device for the bench: its id, token, device_seq and HLC."""

    username: str
    device_id: str
    token: str
    seq: int = 0
    ms: int = 1_700_000_000_000
    cursor: str | None = None

    def hlc(self) -> str:
        from fieldsync.sync.hlc import HLC

        self.ms += 1
        return str(HLC(self.ms, 0, self.device_id[:8]))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def new_inspection(phone: Phone, present: list[str], n: int) -> dict[str, Any]:
    """A new inspection of about 1 KB of JSON, as a phone pushes it."""
    when = datetime(2026, 11, 25, 8, 0, tzinfo=UTC) + timedelta(seconds=n)
    return {
        "device_seq": phone.next_seq(),
        "mutation_id": str(uuid.uuid4()),
        "type": "inspection.upsert",
        "entity_id": str(uuid.uuid4()),
        "base_version": 0,
        "device_time": _iso(when),
        "hlc": phone.hlc(),
        "set": {
            "matter_code": "CG-001",
            "occurred_at": _iso(when),
            "location": {"lat": 39.9139 + n * 1e-7, "lon": 116.4023, "accuracy_m": 8.5},
            "address": f"东城区东华门大街{n % 200 + 1}号",
            "present": present,
            "party": {
                "name": "张三",
                "phone": "13800138000",
                "id_document": "110101199001011234",
                "kind": "individual",
            },
            "description": DESCRIPTION,
        },
    }


def edit(phone: Phone, entity_id: Any, version: int, n: int) -> dict[str, Any]:
    return {
        "device_seq": phone.next_seq(),
        "mutation_id": str(uuid.uuid4()),
        "type": "inspection.upsert",
        "entity_id": str(entity_id),
        "base_version": version,
        "device_time": _iso(datetime.now(UTC)),
        "hlc": phone.hlc(),
        "set": {"description": f"{DESCRIPTION} (edit {n})"},
    }


class SyncBench:
    def __init__(self, bench: BenchApp, db: str, report: Report, *, quick: bool) -> None:
        from fieldsync.inspections.models import Inspection
        from fieldsync.sync.models import FeedCounter, FeedEntry, FeedPayload

        self.bench = bench
        self.db = db
        self.report = report
        self.sizes = SIZES_QUICK if quick else SIZES_FULL
        self.services = bench.services
        self.config = bench.services.config
        self.inspections: Table = Inspection.__table__  # type: ignore[assignment]
        self.feed: Table = FeedEntry.__table__  # type: ignore[assignment]
        self.counter: Table = FeedCounter.__table__  # type: ignore[assignment]
        self.payloads: Table = FeedPayload.__table__  # type: ignore[assignment]

    # --- plumbing ----------------------------------------------------------------------------

    def phone(self, username: str) -> Phone:
        device_id, token = self.bench.login(username)
        return Phone(username, device_id, token)

    def _principal(self, session: Any, phone: Phone) -> Any:
        from fieldsync.clock import utcnow
        from fieldsync.identity.service import authenticate

        return authenticate(session, authorization=f"Bearer {phone.token}", now=utcnow())

    def push(self, phone: Phone, mutations: list[dict[str, Any]]) -> tuple[float, dict]:
        """One push as a request does it: authenticate, push, commit. Returns (seconds, body)."""
        from fieldsync.clock import utcnow
        from fieldsync.sync.push import push

        t0 = time.perf_counter()
        with self.services.sessionmaker() as s, s.begin():
            body = push(
                s,
                principal=self._principal(s, phone),
                device_id=uuid.UUID(phone.device_id),
                mutations=mutations,
                now=utcnow(),
                device_clock=None,
                config=self.config,
            )
        elapsed = time.perf_counter() - t0
        bad = [r for r in body["results"] if r["status"] not in ("applied", "merged")]
        assert not bad, bad[:3]
        return elapsed, body

    def pull_all(
        self, phone: Phone, limit: int = 1000, *, profiler: Any = None
    ) -> tuple[float, int]:
        """Pull pages until has_more is false, each page one transaction. (seconds, changes);
        the phone's parsing of each body is neither timed nor profiled."""
        from fieldsync.clock import utcnow
        from fieldsync.sync.pull import pull

        count = 0
        elapsed = 0.0
        while True:
            if profiler is not None:
                profiler.enable()
            t0 = time.perf_counter()
            with self.services.sessionmaker() as s, s.begin():
                text = pull(
                    s,
                    principal=self._principal(s, phone),
                    cursor=phone.cursor,
                    limit=limit,
                    now=utcnow(),
                    config=self.config,
                )
            elapsed += time.perf_counter() - t0
            if profiler is not None:
                profiler.disable()
            changes, phone.cursor, has_more = _read_page(text)
            count += changes
            if not has_more:
                return elapsed, count

    def pull_all_http(self, phone: Phone, limit: int = 1000) -> tuple[float, int]:
        """The same through the Flask test client: GET /sync/pull until has_more is false."""
        count = 0
        elapsed = 0.0
        while True:
            query: dict[str, Any] = {"limit": limit}
            if phone.cursor:
                query["cursor"] = phone.cursor
            t0 = time.perf_counter()
            resp = self.bench.client.get(
                "/api/v1/sync/pull",
                headers={"Authorization": f"Bearer {phone.token}"},
                query_string=query,
            )
            elapsed += time.perf_counter() - t0
            assert resp.status_code == 200, resp.get_json()
            changes, phone.cursor, has_more = _read_page(resp.data)
            count += changes
            if not has_more:
                return elapsed, count

    def _timed(self, fn: Callable[[Any], Any]) -> float:
        t0 = time.perf_counter()
        with self.bench.engine.begin() as conn:
            fn(conn)
        return time.perf_counter() - t0

    def _template(self, entity_id: str) -> dict[str, Any]:
        with self.bench.engine.connect() as conn:
            row = conn.execute(
                select(self.inspections).where(self.inspections.c.id == uuid.UUID(entity_id))
            ).one()
        return dict(row._mapping)

    # --- push --------------------------------------------------------------------------------

    def run_push(self) -> None:
        from fieldsync.demo import demo_uuid

        # street B's officers push, so that street A's scope stays exactly the pull data set
        phone = self.pusher = self.phone("js_cg_xu")
        present = self.pusher_present = [
            str(demo_uuid("person", u)) for u in ("js_cg_xu", "js_cg_deng")
        ]
        warm = [new_inspection(phone, present, i) for i in range(20)]
        self.push(phone, warm)  # imports, caches, first connection
        size = len(json.dumps(warm[0], ensure_ascii=False).encode())

        for batch in (1, 100, 1000):
            repeats = self.sizes["push_single"] if batch == 1 else 5
            total = 0.0
            raw_total = 0.0
            for r in range(repeats):
                mutations = [new_inspection(phone, present, r * batch + i) for i in range(batch)]
                elapsed, body = self.push(phone, mutations)
                total += elapsed
                raw_total += self._raw_insert_like(body)
            n = batch * repeats
            self.report.add(
                Row(
                    self.db,
                    f"push {batch:>4} × ~{size} B inspections"
                    + (f" ({repeats} pushes)" if repeats > 1 else ""),
                    n / total,
                    "mut/s",
                    n / raw_total,
                    "INSERT same rows",
                    "service fn + commit",
                )
            )
            if batch == 1000:
                self.push_1000 = n / total
                floor = self._copied_by_the_database(body)
                self.report.add(
                    Row(
                        self.db,
                        f"push 1000: its rows copied by the database ({len(COPIED)} tables)",
                        batch / floor,
                        "mut/s",
                        note="INSERT … SELECT, no client, no commit: the floor",
                    )
                )
                validating = self._validating(mutations)
                self.report.add(
                    Row(
                        self.db,
                        "push 1000: validating its bodies alone",
                        batch / validating,
                        "mut/s",
                        note="the load of set, as push does; no database",
                    )
                )
                checking, serializing = self._rule_check_and_serialize(body)
                self.report.add(
                    Row(
                        self.db,
                        "push 1000: the rule check alone",
                        batch / checking,
                        "mut/s",
                        note="second-inspector rule and measures per record, as push does",
                    )
                )
                self.report.add(
                    Row(
                        self.db,
                        "push 1000: serializing its records alone",
                        batch / serializing,
                        "mut/s",
                        note="the wire form each result carries",
                    )
                )
                steps = validating + checking + serializing + floor
                self.report.add(
                    Row(
                        self.db,
                        "push 1000: ceiling of these steps + the floor",
                        batch / steps,
                        "mut/s",
                        note=f"nothing else done, no overlap: {steps * 1000:.0f} µs per mutation",
                    )
                )
        self._push_http(phone, present, size)

    def _copied_by_the_database(self, body: dict[str, Any]) -> float:
        """Seconds for the database itself to write again the rows this push wrote (its
        inspections, log rows, events, feed rows and payloads), copied by INSERT … SELECT under
        new ids in a transaction that is rolled back: what no client can go below. Best of
        three (a single run varied from one to two times the best)."""
        from fieldsync.db import Base

        ids = Table(
            "bench_copy_ids",
            MetaData(),
            Column("old", Uuid),
            Column("new", Uuid),
            Column("mutation", Uuid),
            prefixes=["TEMPORARY"],
        )
        best = float("inf")
        for _ in range(3):
            with self.bench.engine.connect() as conn:
                transaction = conn.begin()
                ids.create(conn)
                conn.execute(
                    insert(ids),
                    [
                        {"old": uuid.UUID(r["id"]), "new": uuid.uuid4(), "mutation": uuid.uuid4()}
                        for r in body["results"]
                    ],
                )
                if self.db == "postgresql":
                    conn.execute(text("ANALYZE bench_copy_ids"))  # a join plan for its size
                t0 = time.perf_counter()
                for name, key in COPIED.items():
                    table = Base.metadata.tables[name]
                    renamed = {"id": ids.c.new} if key == "id" else {key: ids.c.new}
                    if name == "sync_mutations":  # a log row of its own: new id, unused seq
                        renamed.update(id=ids.c.mutation, device_seq=table.c.device_seq + 10**12)
                    columns = [
                        c for c in table.c if not (c.primary_key and c.autoincrement is True)
                    ]
                    copy = select(*[renamed.get(c.name, c) for c in columns]).join(
                        ids, table.c[key] == ids.c.old
                    )
                    conn.execute(insert(table).from_select([c.name for c in columns], copy))
                best = min(best, time.perf_counter() - t0)
                transaction.rollback()
        return best

    def _rule_check_and_serialize(self, body: dict[str, Any]) -> tuple[float, float]:
        """Seconds push spends, alone, re-applying the rule to these records (reference data
        read once, as in a push) and serializing them; best of three each, nothing written."""
        from fieldsync.inspections.rule_check import check
        from fieldsync.org.reference import references_read_once
        from fieldsync.sync import registry

        spec = registry.entity("inspection")  # as `_validating`: the entity push applies
        assert spec is not None
        model: Any = spec.model
        ids = [uuid.UUID(r["id"]) for r in body["results"]]
        checking = serializing = float("inf")
        with self.services.sessionmaker() as s:
            records = list(s.scalars(select(model).where(model.id.in_(ids))))
            for _ in range(3):
                with references_read_once(s):
                    t0 = time.perf_counter()
                    for record in records:
                        check(s, record)
                    checking = min(checking, time.perf_counter() - t0)
                t0 = time.perf_counter()
                for record in records:
                    spec.serialize(record)
                serializing = min(serializing, time.perf_counter() - t0)
            s.rollback()
        return checking, serializing

    def _validating(self, mutations: list[dict[str, Any]]) -> float:
        """Seconds push spends validating these mutations' bodies, alone (best of three)."""
        from fieldsync.sync import registry
        from fieldsync.sync.push import _validated

        spec = registry.entity("inspection")
        assert spec is not None
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for m in mutations:
                _validated(spec, m)
            best = min(best, time.perf_counter() - t0)
        return best

    def _raw_insert_like(self, body: dict[str, Any]) -> float:
        """Time a Core executemany INSERT of the same inspection rows (new ids), one commit;
        the copies are deleted afterwards, untimed."""
        ids = [r["id"] for r in body["results"]]
        with self.bench.engine.connect() as conn:
            rows = [
                dict(m._mapping)
                for m in conn.execute(
                    select(self.inspections).where(
                        self.inspections.c.id.in_([uuid.UUID(i) for i in ids])
                    )
                )
            ]
        for row in rows:
            row["id"] = uuid.uuid4()
        elapsed = self._timed(lambda conn: conn.execute(insert(self.inspections), rows))
        with self.bench.engine.begin() as conn:
            conn.execute(
                delete(self.inspections).where(self.inspections.c.id.in_([r["id"] for r in rows]))
            )
        return elapsed

    def _push_http(self, phone: Phone, present: list[str], size: int) -> None:
        mutations = [new_inspection(phone, present, i) for i in range(1000)]
        t0 = time.perf_counter()
        resp = self.bench.client.post(
            "/api/v1/sync/push",
            headers={"Authorization": f"Bearer {phone.token}"},
            json={"protocol": 1, "device_id": phone.device_id, "mutations": mutations},
        )
        elapsed = time.perf_counter() - t0
        assert resp.status_code == 200, resp.get_json()
        self.report.add(
            Row(
                self.db,
                f"push 1000 × ~{size} B inspections, HTTP",
                1000 / elapsed,
                "mut/s",
                note="Flask test client: + JSON + schema",
            )
        )

    # --- pull --------------------------------------------------------------------------------

    def run_pull(self) -> None:
        from fieldsync.demo import demo_uuid

        n = self.sizes["first_pull"]
        writer = self.phone("cg_wang")
        present = [str(demo_uuid("person", u)) for u in ("cg_wang", "cg_liu")]
        _, body = self.push(writer, [new_inspection(writer, present, 0)])
        template = self._template(body["results"][0]["id"])
        street = template["street_id"]
        audience = f"staff:{street}"

        t0 = time.perf_counter()
        self.ids = self.populate(template, n - 1, audience)
        self.ids.insert(0, template["id"])
        populate_s = time.perf_counter() - t0

        self._settle()
        # three new phones, each pulling the whole scope: the median (one pull alone swings
        # by a third here); the first is also the first read of the rows
        pulls = []
        for _ in range(3):
            reader = self.phone("cg_chen")
            pulls.append(self.pull_all(reader))
        count = pulls[0][1]
        assert all(c == count for _, c in pulls), pulls
        elapsed = statistics.median(e for e, _ in pulls)
        raw = self._raw_select(
            lambda: select(self.inspections).where(self.inspections.c.street_id == street)
        )
        self.report.add(
            Row(
                self.db,
                f"first pull: {count:,} records ({n:,} inspections), limit 1000",
                count / elapsed,
                "rec/s",
                raw,
                "SELECT the inspections",
                f"median of 3 phones: {', '.join(f'{e:.2f}' for e, _ in pulls)} s; "
                "raw: one Core SELECT of the rows, JSON columns decoded",
            )
        )
        self.first_pull = count / elapsed
        http_elapsed, http_count = self.pull_all_http(self.phone("cg_chen"))
        assert http_count == count, (http_count, count)
        self.report.add(
            Row(
                self.db,
                f"first pull: {count:,} records, limit 1000, HTTP",
                count / http_elapsed,
                "rec/s",
                note=f"{http_elapsed:.2f} s; Flask test client: + auth hook, routing, query schema",
            )
        )
        self.report.notes.append(
            f"{self.db}: {n - 1:,} inspection rows + feed and payload rows bulk-inserted in "
            f"{populate_s:.1f} s"
        )

        small = self._incremental(writer, reader, "10k")
        push_small = self._push_into_feed()
        big_rows = self.sizes["big_feed"]
        t0 = time.perf_counter()
        feed_rows = self._feed_count()
        self.populate(template, big_rows - feed_rows, audience, lean=True)
        feed_rows = self._feed_count()
        populate_s = time.perf_counter() - t0
        self._settle()  # as at 10k: the statistics a live database would have by now
        # the reader has seen everything up to the top of the feed, as if it had pulled the
        # million rows: its cursor is the one the server hands out there
        reader.cursor = self._cursor_at_top(reader)
        big = self._incremental(writer, reader, "1M" if big_rows >= 1_000_000 else f"{big_rows:,}")
        push_big = self._push_into_feed()
        self.report.notes.append(
            f"{self.db}: feed grown to {feed_rows:,} rows (lean inspections, same audience as "
            f"the reader, positions below its cursor) in {populate_s:.1f} s"
        )
        ratio = big / small
        self.report.targets.append(
            Target(
                self.db,
                f"incremental pull time at {feed_rows:,} / at {self.small_rows:,} feed rows",
                ratio,
                "≤ 1.5×",
                ratio <= 1.5,
            )
        )
        ratio = push_big / push_small
        self.report.targets.append(
            Target(
                self.db,
                f"push time at {feed_rows:,} / at {self.small_rows:,} feed rows",
                ratio,
                "≤ 1.5×",
                ratio <= 1.5,
            )
        )
        self.report.targets.append(
            Target(
                self.db,
                "first pull records/s",
                self.first_pull,
                "≥ 40,000/s",
                self.first_pull >= 40_000,
            )
        )

    def _settle(self) -> None:
        """After the bulk load, what a live database has had done by autovacuum: statistics
        (and on PostgreSQL the visibility map and hint bits) for the rows just written."""
        tables = list(COPIED)
        if self.db == "postgresql":
            with self.bench.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            ) as conn:
                conn.execute(text(f"VACUUM ANALYZE {', '.join(tables)}"))
        else:
            with self.bench.engine.begin() as conn:
                conn.execute(text("ANALYZE"))

    def _incremental(self, writer: Phone, reader: Phone, label: str) -> float:
        """Median seconds to pull 100 changes made through push since the reader's cursor."""
        times = []
        raws = []
        rounds = self.sizes["rounds"]
        for r in range(rounds):
            targets = self.ids[:100]
            del self.ids[:100]
            self.push(writer, [edit(writer, t, 1, r) for t in targets])
            elapsed, count = self.pull_all(reader)
            assert count == 100, count
            times.append(elapsed)
            raws.append(
                self._raw_select(
                    lambda targets=targets: select(self.inspections).where(
                        self.inspections.c.id.in_(targets)
                    )
                )
            )
        median = statistics.median(times)
        feed_rows = self._feed_count()
        self.small_rows = getattr(self, "small_rows", feed_rows)
        self.report.add(
            Row(
                self.db,
                f"incremental pull: 100 changes, {feed_rows:,} feed rows",
                100 / median,
                "rec/s",
                statistics.median(raws),
                "SELECT the 100 rows",
                f"median {median * 1000:.1f} ms of {rounds}",
            )
        )
        return median

    def _push_into_feed(self) -> float:
        """Median seconds of a push of 100 new inspections into the feed as it is now (street
        B's officer: the reader's scope does not change). A push looks up its records' feed
        rows: that must cost the same at 10k rows as at 1M."""
        phone = self.pusher
        times = []
        rounds = self.sizes["rounds"]
        for r in range(rounds):
            n = 10_000 * (r + 1)
            mutations = [new_inspection(phone, self.pusher_present, n + i) for i in range(100)]
            times.append(self.push(phone, mutations)[0])
        median = statistics.median(times)
        self.report.add(
            Row(
                self.db,
                f"push 100 new inspections, {self._feed_count():,} feed rows",
                100 / median,
                "mut/s",
                note=f"median {median * 1000:.1f} ms of {rounds}",
            )
        )
        return median

    def _raw_select(self, stmt: Callable[[], Any]) -> float:
        """Rows per second of a Core SELECT fetching every row (median of three)."""
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            with self.bench.engine.connect() as conn:
                rows = conn.execute(stmt()).all()
            rates.append(len(rows) / (time.perf_counter() - t0))
        return statistics.median(rates)

    def _feed_count(self) -> int:
        with self.bench.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(self.feed)).scalar_one()

    def _cursor_at_top(self, phone: Phone) -> str:
        from fieldsync.sync.feed import decode_cursor, encode_cursor

        assert phone.cursor is not None
        cursor = decode_cursor(phone.cursor, secret=self.config.secret(), device_id=phone.device_id)
        with self.bench.engine.connect() as conn:
            top = conn.execute(select(self.counter.c.value)).scalar_one()
        moved = type(cursor)(
            cursor.device_id,
            {a: top for a in cursor.positions},
            {},
            int(time.time()),
        )
        return encode_cursor(moved, secret=self.config.secret())

    # --- bulk population ---------------------------------------------------------------------

    def _payload_text(self, row: dict[str, Any]) -> str:
        """The payload the feed would store for an inspection with these column values."""
        from fieldsync.inspections.entities import serialize_inspection
        from fieldsync.inspections.models import Inspection
        from fieldsync.sync.feed import wire_text

        return wire_text(serialize_inspection(Inspection(**row)))

    def _value(self, value: Any, type_: Any) -> Any:
        """A constant of the template row in the SELECT list; PostgreSQL needs its type said
        (an untyped NULL or string there is text), SQLite must not (CAST AS JSON is numeric)."""
        bound = literal(value, type_=type_)
        return cast(bound, type_) if self.db == "postgresql" else bound

    def populate(
        self, template: dict[str, Any], count: int, audience: str, *, lean: bool = False
    ) -> list[Any]:
        """Copies of a pushed inspection straight into `inspections`, `sync_feed` and
        `sync_payloads`, with the feed counter moved past them: Core INSERT … SELECT statements
        over a temporary table of new ids, so the database makes the rows (a million in
        seconds, not minutes).
        `lean`: no description, party or address (the million filler rows)."""
        if count <= 0:
            return []
        row = dict(template)
        if lean:
            row.update(description=None, party=None, address=None)
        filler = Table(
            "bench_filler",
            MetaData(),
            Column("id", Uuid()),
            Column("k", BigInteger),
            prefixes=["TEMPORARY"],
        )
        with self.bench.engine.begin() as conn:
            top = conn.execute(select(self.counter.c.value)).scalar_one()
            filler.create(conn)
            if self.db == "postgresql":
                conn.execute(
                    text(
                        "INSERT INTO bench_filler SELECT gen_random_uuid(), g"
                        " FROM generate_series(1, :n) AS g"
                    ),
                    {"n": count},
                )
            else:  # Uuid is CHAR(32) hex on SQLite
                conn.execute(
                    text(
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                        " WHERE i < :n) INSERT INTO bench_filler"
                        " SELECT lower(hex(randomblob(16))), i FROM n"
                    ),
                    {"n": count},
                )
            columns = [c for c in self.inspections.columns if c.name != "id"]
            conn.execute(
                insert(self.inspections).from_select(
                    ["id", *(c.name for c in columns)],
                    select(
                        filler.c.id,
                        *(self._value(row[c.name], c.type).label(c.name) for c in columns),
                    ),
                )
            )
            fixed = {
                "entity": "inspection",
                "audience": audience,
                "version": row["version"],
                "op": "upsert",
                "reason": None,
                "changed_at": datetime.now(UTC),
            }
            feed_values = {k: self._value(v, self.feed.c[k].type) for k, v in fixed.items()}
            conn.execute(
                insert(self.feed).from_select(
                    ["entity_id", "position", *feed_values],
                    select(
                        filler.c.id,
                        (filler.c.k + top).label("position"),
                        *(v.label(k) for k, v in feed_values.items()),
                    ),
                )
            )
            # the copies' wire form is the template's: `data` does not hold the id
            payload = {
                "entity": "inspection",
                "version": row["version"],
                "data": self._payload_text(row),
            }
            payload_values = {
                k: self._value(v, self.payloads.c[k].type) for k, v in payload.items()
            }
            conn.execute(
                insert(self.payloads).from_select(
                    ["entity_id", *payload_values],
                    select(filler.c.id, *(v.label(k) for k, v in payload_values.items())),
                )
            )
            conn.execute(update(self.counter).values(value=top + count))
            ids = list(conn.execute(select(filler.c.id).order_by(filler.c.k)).scalars())
            filler.drop(conn)
        # what a running server's database has done by the time it holds a million rows:
        # statistics gathered, and on SQLite the write-ahead log folded back into the file
        # (outside any transaction: the engine's own BEGIN IMMEDIATE would block both)
        raw = self.bench.engine.raw_connection()
        try:
            if self.db == "sqlite":
                cur = raw.cursor()
                cur.execute("ANALYZE")
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cur.close()
            else:
                raw.driver_connection.autocommit = True
                raw.driver_connection.execute("ANALYZE")
                raw.driver_connection.autocommit = False
        finally:
            raw.close()
        return ids


def run(bench: BenchApp, db: str, report: Report, *, quick: bool) -> None:
    sb = SyncBench(bench, db, report, quick=quick)
    sb.run_push()
    sb.run_pull()
    if db == "postgresql":
        value = getattr(sb, "push_1000", None)
        report.targets.append(
            Target(
                db,
                "1,000-mutation push mutations/s",
                value,
                "≥ 5,000/s",
                None if value is None else value >= 5000,
            )
        )
