"""End to end: a real gunicorn server (3 workers) and a dozen reference clients syncing at once,
with lost push responses and a device killed mid-sync; then every device must equal the
database, and every mutation must have been applied exactly once."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from gunicorn_server import gunicorn  # type: ignore[import-not-found]
from sqlalchemy import func, select

from fieldsync.client.store import Crash
from fieldsync.client.sync import DeviceClient
from fieldsync.demo import password_for

pytestmark = pytest.mark.e2e

# officers of 东华门 (the demo's street A), one phone each
OFFICERS = [
    "captain",
    "vice_chengguan",
    "vice_police",
    "cg_wang",
    "cg_liu",
    "cg_chen",
    "cg_yang",
    "cg_zhao",
    "cg_huang",
    "police_li",
    "police_sun",
    "market_zhu",
]
SHARED = 3  # inspections that everyone edits
ROUNDS = 3
DEADLINE_S = 50  # the whole scenario; the test fails rather than hangs


@pytest.fixture
def server(migrated_url: str, demo: Any, tmp_path: Path) -> Iterator[str]:
    """gunicorn with 3 workers on this run's database (demo data loaded through the app)."""
    with gunicorn(migrated_url, tmp_path, workers=3) as served:
        yield served.url
    errors = [
        line for line in (tmp_path / "gunicorn.log").read_text().splitlines() if "ERROR" in line
    ]
    assert not errors, errors[:5]


class Phone(DeviceClient):
    """A reference client whose network can lose a push response after the server applied it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drop_next_push_response = False
        self.dropped = 0

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        resp = super().send(method, url, **kwargs)
        if self.drop_next_push_response and url.endswith("/sync/push") and resp.ok:
            self.drop_next_push_response = False
            self.dropped += 1
            raise requests.ConnectionError("the response was lost on the way (test)")
        return resp


def _phone(profile: Path, server: str | None = None) -> Phone:
    return Phone(profile, server, max_attempts=8, backoff=0.05, max_backoff=0.5, timeout=30)


def _in_parallel(work: Callable[[int], None], n: int, deadline: float) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "clients still running at the deadline"
    if errors:
        raise errors[0]


def test_many_devices_converge_and_apply_every_mutation_once(
    server: str, app: Any, tmp_path: Path
) -> None:
    deadline = time.monotonic() + DEADLINE_S
    profiles = [tmp_path / f"phone-{name}" for name in OFFICERS]
    person_ids: dict[str, str] = {}
    stats: dict[str, dict[str, int]] = {
        name: {"upserts": 0, "submits": 0, "dropped": 0, "crashes": 0} for name in OFFICERS
    }

    def first_sync(i: int) -> None:
        phone = _phone(profiles[i], server)
        try:
            data = phone.login(OFFICERS[i], password_for(OFFICERS[i]))
            person_ids[OFFICERS[i]] = data["user"]["id"]
            phone.sync()
        finally:
            phone.close()

    _in_parallel(first_sync, len(OFFICERS), deadline)

    # the first officer records the inspections everyone will edit, and syncs them
    lead = _phone(profiles[0])
    shared = [
        lead.new_inspection(matter_code="CG-001", description=f"shared {k}", address="东华门大街")
        for k in range(SHARED)
    ]
    stats[OFFICERS[0]]["upserts"] += SHARED
    lead.sync()
    lead.close()

    def field_work(i: int) -> None:
        name = OFFICERS[i]
        rng = random.Random(i)
        phone = _phone(profiles[i])
        own: list[str] = []
        try:
            phone.sync()  # receives the shared inspections
            for round_ in range(ROUNDS):
                own.append(
                    phone.new_inspection(matter_code="CG-001", description=f"{name} round {round_}")
                )
                target = rng.choice(shared)
                phone.edit(
                    "inspection",
                    target,
                    set={"description": f"{name} says round {round_}"},
                    add={"present": [person_ids[name]]},
                )
                stats[name]["upserts"] += 2
                if round_ == ROUNDS - 1:
                    phone.submit("inspection", own[0])
                    stats[name]["submits"] += 1
                if (i + round_) % 4 == 0:
                    phone.drop_next_push_response = True
                if i % 3 == 1 and round_ == 1:
                    # killed after the server applied the push, before the results were stored:
                    # the restarted client re-sends from last_acked_seq + 1 and gets replays
                    def crash(point: str) -> None:
                        if point == "push.result_stored":
                            raise Crash(point)

                    phone.store.fault = crash
                    with pytest.raises(Crash):
                        phone.sync()
                    stats[name]["crashes"] += 1
                    stats[name]["dropped"] += phone.dropped
                    phone.close()
                    phone = _phone(profiles[i])
                phone.sync()
                assert time.monotonic() < deadline, "scenario ran past its deadline"
        finally:
            stats[name]["dropped"] += phone.dropped
            phone.close()

    _in_parallel(field_work, len(OFFICERS), deadline)

    # a final round: everything still queued goes out; then, with no writer left, every
    # device pulls what the others pushed
    def final_sync(i: int) -> None:
        phone = _phone(profiles[i])
        try:
            phone.sync()
        finally:
            phone.close()

    _in_parallel(final_sync, len(OFFICERS), deadline)
    _in_parallel(final_sync, len(OFFICERS), deadline)

    assert sum(s["dropped"] for s in stats.values()) >= 3
    assert sum(s["crashes"] for s in stats.values()) >= 3
    _check_against_database(app, profiles, stats)


def _check_against_database(app: Any, profiles: list[Path], stats: dict[str, dict]) -> None:
    from fieldsync.inspections.models import Inspection
    from fieldsync.sync import registry
    from fieldsync.sync.models import Conflict, Event, MutationRecord

    spec = registry.entity("inspection")
    assert spec is not None
    with app.extensions["fieldsync"].sessionmaker() as session:
        inspections = {
            str(i.id): (i.version, json.loads(json.dumps(spec.serialize(i))))
            for i in session.scalars(select(Inspection).where(Inspection.deleted_at.is_(None)))
        }
        mutations = list(session.scalars(select(MutationRecord)))
        events = list(
            session.execute(
                select(Event.device_id, Event.action, func.count()).group_by(
                    Event.device_id, Event.action
                )
            )
        )
        conflict_rows = list(session.scalars(select(Conflict)))
        conflicts = {str(c.id) for c in conflict_rows}
        # every description that ever made it into a record, or was set aside in a conflict
        kept_or_set_aside = {
            e.get("description") for e in session.scalars(select(Event.changes))
        } | {
            v.get(side)
            for c in conflict_rows
            for v in c.values.values()
            for side in ("kept", "lost")
            if isinstance(v, dict)
        }

    expected_inspections = SHARED + len(OFFICERS) * ROUNDS
    assert len(inspections) == expected_inspections

    by_device: dict[str, list[Any]] = {}
    for m in mutations:
        by_device.setdefault(str(m.device_id), []).append(m)
    events_of = {(str(d), a): n for d, a, n in events}
    conflict_results = 0

    for profile, name in zip(profiles, OFFICERS, strict=True):
        phone = DeviceClient(profile)
        try:
            store = phone.store
            # every device equals the database, inspection by inspection
            assert store.pending_count() == 0, name
            replica = store.records("inspection")
            assert set(replica) == set(inspections), name
            for rid, (version, data) in inspections.items():
                assert replica[rid] == (version, data), (name, rid)
                assert store.record("inspection", rid) == data, (name, rid)

            # exactly once: one log row per mutation this device made, no more, no less
            outbox = [store.outbox_entry(seq) for seq in range(1, store.last_seq + 1)]
            assert all(o is not None for o in outbox)
            logged = by_device.get(phone.device_id, [])
            assert sorted(m.device_seq for m in logged) == list(range(1, store.last_seq + 1))
            assert {str(m.id) for m in logged} == {o["mutation_id"] for o in outbox if o}
            assert store.last_seq == stats[name]["upserts"] + stats[name]["submits"], name
            assert all(m.status != "rejected" for m in logged), [
                (m.device_seq, m.code) for m in logged if m.status == "rejected"
            ]
            # the device stored each server result once, and it is the server's result
            for m, o in zip(sorted(logged, key=lambda m: m.device_seq), outbox, strict=True):
                assert o is not None and o["status"] == m.status, (name, m.device_seq)
            conflict_results += sum(1 for m in logged if m.status == "conflict")
            # nothing is lost: each description this device wrote is in the trace or a conflict
            for o in outbox:
                text = (o or {}).get("set", {}).get("description")
                assert text is None or text in kept_or_set_aside, (name, text)
            for m in logged:
                if m.status == "conflict":
                    assert m.result["conflict_id"] in conflicts

            # one event per accepted change: every upsert here changes or loses a value
            assert events_of.get((phone.device_id, "inspection.upsert"), 0) == sum(
                1 for m in logged if m.type == "inspection.upsert"
            ), name
            assert events_of.get((phone.device_id, "inspection.submit"), 0) == sum(
                1 for m in logged if m.type == "inspection.submit"
            ), name
        finally:
            phone.close()

    assert len(mutations) == sum(s["upserts"] + s["submits"] for s in stats.values())
    assert conflict_results == len(conflicts)
    assert conflicts, "concurrent edits of the shared inspections must have conflicted"
