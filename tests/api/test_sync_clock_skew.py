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
from fieldsync.sync.models import Event, MutationRecord


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
