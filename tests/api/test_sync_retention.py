"""Retention: a cursor older than the window, or older than a tombstone the prune removed, gets
410 sync.cursor_expired; the prune keeps what people still need; the window is ≥ 30 days."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sync_phone import Phone, hlc  # type: ignore[import-not-found]

from fieldsync.clock import utcnow
from fieldsync.config import Config
from fieldsync.jobs import PRUNE_JOB, prune_sync
from fieldsync.sync.feed import decode_cursor, encode_cursor
from fieldsync.sync.models import FeedCounter, FeedEntry, MutationRecord


def _aged(app: Any, phone: Phone, days: float) -> str:
    """The phone's cursor as if the server had handed it out `days` ago."""
    config = app.extensions["fieldsync"].config
    assert phone.cursor is not None
    cursor = decode_cursor(phone.cursor, secret=config.secret(), device_id=phone.device_id)
    issued = int((utcnow() - timedelta(days=days)).timestamp())
    return encode_cursor(dataclasses.replace(cursor, issued_at=issued), secret=config.secret())


def _expired(resp: Any) -> bool:
    body = resp.get_json()
    return resp.status_code == 410 and body["error"] == "sync.cursor_expired"


def _prune(app: Any, *, days_from_now: float) -> int:
    return prune_sync(app.extensions["fieldsync"], now=utcnow() + timedelta(days=days_from_now))


def test_a_cursor_older_than_the_window_gets_410(app: Any, api: Any, demo: Any) -> None:
    window = app.extensions["fieldsync"].config.sync_retention_days
    phone = Phone(api, "cg_wang")
    phone.pull_all()
    assert phone.pull(cursor=_aged(app, phone, window - 1)).status_code == 200
    resp = phone.pull(cursor=_aged(app, phone, window + 1), headers={"Accept-Language": "en"})
    assert _expired(resp)
    assert "sync again from the start" in resp.get_json()["message"]
    # the client starts over without a cursor
    assert phone.pull().status_code == 200


def test_a_cursor_below_a_pruned_tombstone_gets_410(app: Any, api: Any, demo: Any) -> None:
    a, behind = Phone(api, "cg_wang"), Phone(api, "cg_liu")
    iid = a.create()
    behind.pull_all()  # holds the inspection; its cursor is below the delete to come
    stale = behind.cursor
    [deleted] = a.push(a.mutation(type="inspection.delete", entity_id=iid, base_version=1))
    assert deleted["status"] == "applied"
    current = Phone(api, "police_li")
    current.pull_all()  # after the delete: needs no tombstone
    with app.extensions["fieldsync"].sessionmaker() as s:
        tombstone = s.scalars(
            select(FeedEntry.position).where(
                FeedEntry.entity_id == uuid.UUID(iid), FeedEntry.op == "delete"
            )
        ).one()

    assert _prune(app, days_from_now=1) == 0  # within the window: nothing goes
    assert behind.pull(cursor=stale).status_code == 200

    assert _prune(app, days_from_now=91) >= 1
    with app.extensions["fieldsync"].sessionmaker() as s:
        rows = s.scalars(select(FeedEntry).where(FeedEntry.entity_id == uuid.UUID(iid))).all()
        assert rows == []
        assert s.get(FeedCounter, 1).pruned_through == tombstone
    assert _expired(behind.pull(cursor=stale))
    after = current.pull(cursor=current.cursor)
    assert after.status_code == 200, after.get_json()
    # starting over brings the device to the server's state: the record is simply not there
    behind.cursor = None
    assert iid not in {c["id"] for c in behind.pull_all()}


def test_prune_keeps_what_people_need(app: Any, api: Any, demo: Any) -> None:
    a, b = Phone(api, "cg_wang"), Phone(api, "cg_liu")
    iid = a.create(description="初稿")  # device_seq 1 of a: replay-only once applied
    b.pull_all()
    [rejected] = a.push(a.mutation(entity_id=iid, base_version=1, set={"matter_code": "XX-9"}))
    assert rejected["code"] == "org.unknown_matter"
    [kept] = a.push(a.mutation(entity_id=iid, base_version=1, hlc=hlc(900), set={"address": "1号"}))
    [conflict] = b.push(
        b.mutation(entity_id=iid, base_version=1, hlc=hlc(800), set={"address": "2号"})
    )
    assert (kept["status"], conflict["status"]) == ("applied", "conflict")

    assert _prune(app, days_from_now=91) >= 2
    with app.extensions["fieldsync"].sessionmaker() as s:
        left = {
            (str(d), seq)
            for d, seq in s.execute(select(MutationRecord.device_id, MutationRecord.device_seq))
        }
    # a's applied mutations went; its rejected one (the quarantine) and b's conflict stay
    a_id, b_id = uuid.UUID(a.device_id).hex, uuid.UUID(b.device_id).hex
    assert {(uuid.UUID(d).hex, seq) for d, seq in left} == {(a_id, 2), (b_id, 1)}
    assert [q["device_seq"] for q in a.get("/quarantine").get_json()] == [2]
    assert b.get(f"/conflicts/{conflict['conflict_id']}").status_code == 200

    # a replay of a pruned device_seq changes nothing and says why
    [replay] = a.push({"device_seq": 1, "type": "inspection.upsert", "entity_id": iid})
    assert {k: replay[k] for k in ("device_seq", "status", "code")} == {
        "device_seq": 1,
        "status": "rejected",
        "code": "sync.replay_unknown",
    }
    assert replay["message"] and replay["message_zh"]
    [record] = [c for c in Phone(api, "captain").pull_all() if c["id"] == iid]
    assert record["version"] == kept["version"]


def test_the_prune_is_a_scheduled_job(app: Any) -> None:
    result = app.test_cli_runner().invoke(args=["run-jobs"])
    assert result.exit_code == 0, result.output
    assert f"{PRUNE_JOB}: 0" in result.output.splitlines()


@pytest.mark.parametrize("days", [0, 7, 29])
def test_retention_below_30_days_is_refused(monkeypatch: Any, days: int) -> None:
    with pytest.raises(ValueError, match="FIELDSYNC_SYNC_RETENTION_DAYS .* at least 30 days"):
        Config.from_env(sync_retention_days=days)
    monkeypatch.setenv("FIELDSYNC_SYNC_RETENTION_DAYS", str(days))
    with pytest.raises(ValueError, match="at least 30 days"):
        Config()
    monkeypatch.setenv("FIELDSYNC_SYNC_RETENTION_DAYS", "30")
    assert Config().sync_retention_days == 30
