"""Device clock skew: recorded with every pushed mutation beside the server's receive time, and
flagged beyond the configured bound as part of the mutation's own change (one version, one
event), so that the push response is the stored record."""

from __future__ import annotations

import uuid
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

from sqlalchemy import select
from sync_phone import Phone  # type: ignore[import-not-found]

from fieldsync.clock import utcnow
from fieldsync.sync.hlc import HLC
from fieldsync.sync.models import Conflict, Event, MutationRecord


def _push_at(phone: Phone, offset: timedelta, *mutations: dict[str, Any]) -> dict[str, Any]:
    """Push with the device's clock `offset` from the server's (HTTP Date header)."""
    resp = phone.api.client.post(
        "/api/v1/sync/push",
        headers={**phone.headers, "Date": format_datetime(utcnow() + offset, usegmt=True)},
        json={"protocol": 1, "device_id": phone.device_id, "mutations": list(mutations)},
    )
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _skews(app: Any, phone: Phone) -> dict[int, int | None]:
    with app.extensions["fieldsync"].sessionmaker() as s:
        rows = s.execute(
            select(MutationRecord.device_seq, MutationRecord.clock_skew_ms).where(
                MutationRecord.device_id == uuid.UUID(phone.device_id)
            )
        )
        return {seq: skew for seq, skew in rows}


def _events(app: Any, entity_id: str) -> list[int]:
    with app.extensions["fieldsync"].sessionmaker() as s:
        return list(
            s.scalars(
                select(Event.version)
                .where(Event.entity_id == uuid.UUID(entity_id))
                .order_by(Event.id)
            )
        )


def test_skew_flag_is_part_of_the_change(app: Any, api: Any, demo: Any) -> None:
    phone = Phone(api, "cg_wang")
    iid = str(uuid.uuid4())
    body = _push_at(
        phone,
        timedelta(minutes=10),
        phone.mutation(entity_id=iid, set={"matter_code": "CG-001", "description": "快了"}),
        phone.mutation(entity_id=iid, base_version=1, set={"address": "东华门大街1号"}),
    )
    assert 595_000 <= body["clock_skew_ms"] <= 605_000
    first, second = body["results"]
    assert (first["version"], second["version"]) == (1, 2)
    assert [f["code"] for f in second["data"]["flags"]] == ["sync.clock_skew"]
    assert second["data"]["flags"][0]["params"]["seconds"] in range(595, 606)

    # what the phone was told is what the server holds: same version, same data
    [change] = [c for c in Phone(api, "cg_liu").pull_all() if c["id"] == iid]
    assert change["version"] == second["version"]
    assert change["data"] == second["data"]
    assert _events(app, iid) == [1, 2]  # one event per version, none for the flag alone

    skews = _skews(app, phone)
    assert set(skews) == {1, 2}
    assert all(595_000 <= s <= 605_000 for s in skews.values())


def test_skew_is_recorded_for_every_push(app: Any, api: Any, demo: Any) -> None:
    phone = Phone(api, "cg_wang")
    iid = phone.create()  # no Date header, device_time in the past: no skew known
    _push_at(phone, timedelta(seconds=-20), phone.mutation(entity_id=iid, base_version=1, set={}))
    body = _push_at(
        phone,
        timedelta(minutes=-30),
        phone.mutation(entity_id=iid, base_version=1, set={"description": "慢了"}),
    )
    [result] = body["results"]
    assert result["version"] == 2
    assert result["data"]["flags"][0]["code"] == "sync.clock_skew"
    assert result["data"]["flags"][0]["params"]["seconds"] in range(-1805, -1794)

    skews = _skews(app, phone)
    assert skews[1] is None
    assert -25_000 <= skews[2] <= -15_000  # within the bound: recorded, not flagged
    assert -1_805_000 <= skews[3] <= -1_795_000
    assert _events(app, iid) == [1, 2]


def _push_service(app: Any, phone: Phone, now: Any, *mutations: dict[str, Any]) -> dict[str, Any]:
    """One push through the service at a server time of the test's choosing."""
    from fieldsync.identity.service import authenticate
    from fieldsync.sync.push import push

    services = app.extensions["fieldsync"]
    with services.sessionmaker() as s, s.begin():
        principal = authenticate(s, authorization=f"Bearer {phone.token}", now=now)
        return push(
            s,
            principal=principal,
            device_id=uuid.UUID(phone.device_id),
            mutations=list(mutations),
            now=now,
            device_clock=None,
            config=services.config,
        )


def _clock(at: Any, node: str) -> str:
    return str(HLC(int(at.timestamp() * 1000), 0, node))


def test_a_clock_far_ahead_counts_as_server_time_plus_the_bound(
    app: Any, api: Any, demo: Any
) -> None:
    """A phone set a year ahead must not win every concurrent edit for a year: its clock counts
    as the server's time plus the skew bound, so a later edit from a phone with a right clock
    wins, and the far-ahead value is kept as the loser."""
    bound = app.extensions["fieldsync"].config.clock_skew_flag_seconds
    ahead, right = Phone(api, "cg_liu"), Phone(api, "cg_wang")
    iid = right.create()
    t = utcnow()
    far = ahead.mutation(
        entity_id=iid,
        base_version=1,
        set={"description": "一年之后"},
        hlc=_clock(t + timedelta(days=365), "ahead"),
    )
    [first] = _push_service(app, ahead, t, far)["results"]
    assert first["status"] == "applied"
    later = t + timedelta(seconds=bound + 60)
    [second] = _push_service(
        app,
        right,
        later,
        right.mutation(
            entity_id=iid, base_version=1, set={"description": "现在"}, hlc=_clock(later, "right")
        ),
    )["results"]
    assert second["status"] == "conflict", second
    assert second["data"]["description"] == "现在"
    with app.extensions["fieldsync"].sessionmaker() as s:
        conflict = s.get(Conflict, uuid.UUID(second["conflict_id"]))
        assert conflict.values["description"]["lost"] == "一年之后"
        # the log keeps the mutation as it came, with the clock the merge used beside it
        log = s.get(MutationRecord, uuid.UUID(far["mutation_id"]))
        assert log.payload["hlc"] == far["hlc"]
        assert HLC.parse(log.hlc).wall_ms == int(t.timestamp() * 1000) + bound * 1000


def test_a_clock_ahead_within_the_bound_is_taken_as_it_is(app: Any, api: Any, demo: Any) -> None:
    bound = app.extensions["fieldsync"].config.clock_skew_flag_seconds
    ahead, right = Phone(api, "cg_liu"), Phone(api, "cg_wang")
    iid = right.create()
    t = utcnow()
    _push_service(
        app,
        ahead,
        t,
        ahead.mutation(
            entity_id=iid,
            base_version=1,
            set={"description": "快一点"},
            hlc=_clock(t + timedelta(seconds=bound - 60), "ahead"),
        ),
    )
    # a right clock a little later than the server's now, yet before the phone's clock: the
    # phone ahead wins, as an HLC merge within the bound should
    later = t + timedelta(seconds=30)
    [result] = _push_service(
        app,
        right,
        later,
        right.mutation(
            entity_id=iid, base_version=1, set={"description": "现在"}, hlc=_clock(later, "right")
        ),
    )["results"]
    assert result["status"] == "conflict"
    assert result["data"]["description"] == "快一点"
