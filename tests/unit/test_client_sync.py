"""DeviceClient's network behaviour against a scripted server: bounded retries with backoff,
sequence gaps, an expired cursor, the Date header."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from fieldsync.client.sync import DeviceClient, Offline

Handler = Callable[[str, str, dict[str, Any]], Any]


def _response(status: int, body: Any) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body).encode()
    resp.headers["Content-Type"] = "application/json"
    return resp


class Scripted(DeviceClient):
    def __init__(self, profile: Path, handler: Handler) -> None:
        self.delays: list[float] = []
        super().__init__(
            profile, "http://127.0.0.1:9", max_attempts=4, backoff=1.0, sleep=self.delays.append
        )
        self.handler = handler
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.store.set(token="t", username="cg_wang")

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        path = url.split("/api/v1", 1)[1]
        self.calls.append((method, path, kwargs))
        result = self.handler(method, path, kwargs)
        if isinstance(result, Exception):
            raise result
        return _response(*result)


def _ok_push(kwargs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    muts = kwargs["json"]["mutations"]
    return 200, {
        "protocol": 1,
        "last_device_seq": muts[-1]["device_seq"],
        "server_time": "2026-11-25T08:00:00Z",
        "results": [
            {
                "device_seq": m["device_seq"],
                "status": "applied",
                "entity": "inspection",
                "id": m["entity_id"],
                "version": 1,
                "data": m.get("set", {}),
            }
            for m in muts
        ],
    }


def test_network_errors_are_retried_with_growing_jittered_delays_then_reported(
    tmp_path: Path,
) -> None:
    phone = Scripted(tmp_path, lambda *_: requests.ConnectionError("no signal"))
    phone.new_inspection(matter_code="CG-001", description="x")
    with pytest.raises(Offline) as raised:
        phone.push()
    assert len(phone.calls) == 4  # bounded
    assert len(phone.delays) == 3
    assert all(0 <= d <= cap for d, cap in zip(phone.delays, [1.0, 2.0, 4.0], strict=True))
    assert "1 change is kept on this phone" in raised.value.hint
    assert phone.store.pending_count() == 1


def test_a_5xx_then_success_pushes_once_and_sends_a_date_header(tmp_path: Path) -> None:
    answers = iter([(503, {"error": "server.unavailable"}), None])

    def handler(method: str, path: str, kwargs: dict[str, Any]) -> Any:
        return next(answers) or _ok_push(kwargs)

    phone = Scripted(tmp_path, handler)
    phone.new_inspection(matter_code="CG-001", description="x")
    summary = phone.push()
    assert summary.statuses == {"applied": 1}
    assert phone.store.pending_count() == 0
    headers = phone.calls[-1][2]["headers"]
    assert parsedate_to_datetime(headers["Date"]).tzinfo is not None
    assert headers["Authorization"] == "Bearer t"


def test_a_sequence_gap_resends_from_the_expected_device_seq(tmp_path: Path) -> None:
    state = {"server_last": 0, "lost": False}

    def handler(method: str, path: str, kwargs: dict[str, Any]) -> Any:
        muts = kwargs["json"]["mutations"]
        if muts[0]["device_seq"] > state["server_last"] + 1:
            return 409, {"error": "sync.sequence_gap", "expected_device_seq": 1}
        state["server_last"] = muts[-1]["device_seq"]
        return _ok_push(kwargs)

    phone = Scripted(tmp_path, handler)
    phone.new_inspection(matter_code="CG-001", description="one")
    phone.push()
    state["server_last"] = 0  # the server's database was restored from an older backup
    phone.new_inspection(matter_code="CG-001", description="two")
    phone.push()
    sent = [[m["device_seq"] for m in c[2]["json"]["mutations"]] for c in phone.calls]
    assert sent == [[1], [2], [1, 2]]
    assert phone.store.pending_count() == 0


def test_an_expired_cursor_drops_the_replica_keeps_the_outbox_and_starts_over(
    tmp_path: Path,
) -> None:
    rid = str(uuid.uuid4())
    pages = iter(
        [
            (410, {"error": "sync.cursor_expired"}),
            (
                200,
                {
                    "cursor": "fresh",
                    "has_more": True,
                    "server_time": "2026-11-25T08:00:00Z",
                    "changes": [
                        {"entity": "matter", "id": rid, "version": 1, "op": "upsert", "data": {}}
                    ],
                },
            ),
            (200, {"cursor": "fresher", "has_more": False, "changes": []}),
        ]
    )
    phone = Scripted(tmp_path, lambda *_: next(pages))
    phone.store.apply_pull_page(
        {
            "cursor": "old",
            "changes": [
                {
                    "entity": "matter",
                    "id": str(uuid.uuid4()),
                    "version": 1,
                    "op": "upsert",
                    "data": {},
                }
            ],
        },
        now=phone.now(),
    )
    phone.new_inspection(matter_code="CG-001", description="kept")
    summary = phone.pull()
    assert summary.restarted and summary.pages == 2
    assert [c[2]["params"].get("cursor") for c in phone.calls] == ["old", None, "fresh"]
    assert set(phone.store.records("matter")) == {rid}
    assert phone.store.pending_count() == 1
    assert phone.store.cursor == "fresher"


def test_a_concurrent_write_is_sent_again(tmp_path: Path) -> None:
    # the server's "send yours again" (a transfer of the officer committed while the push
    # waited, or a unique constraint raced): retried like a 5xx, applied once
    answers = iter([(409, {"error": "request.concurrent_write"}), None])

    def handler(method: str, path: str, kwargs: dict[str, Any]) -> Any:
        return next(answers) or _ok_push(kwargs)

    phone = Scripted(tmp_path, handler)
    phone.new_inspection(matter_code="CG-001", description="x")
    assert phone.push().statuses == {"applied": 1}
    assert len(phone.calls) == 2 and len(phone.delays) == 1
    assert phone.store.pending_count() == 0


def test_a_concurrent_write_that_keeps_coming_is_reported(tmp_path: Path) -> None:
    phone = Scripted(tmp_path, lambda *_: (409, {"error": "request.concurrent_write"}))
    phone.new_inspection(matter_code="CG-001", description="x")
    with pytest.raises(Offline) as raised:
        phone.push()
    assert len(phone.calls) == 4
    assert "keeps failing" in str(raised.value) and "request.concurrent_write" in str(raised.value)
    assert phone.store.pending_count() == 1
