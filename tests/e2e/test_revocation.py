"""End to end: a device revoked on one gunicorn worker is refused on its very next request by
every worker (PROTOCOL.md §1), with no cache in any process to wait out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from gunicorn_server import gunicorn  # type: ignore[import-not-found]

from fieldsync.demo import password_for

pytestmark = pytest.mark.e2e

WORKERS = 3
ME = "/api/v1/auth/me"


class Server:
    def __init__(self, url: str, access_log: Path) -> None:
        self.url = url
        self.access_log = access_log

    def answers(self, path: str, status: int) -> list[str]:
        """The pid of the worker for every answer to `path` with `status`, from gunicorn's
        access log ("<pid> <path> <status>" per request)."""
        pids = []
        for line in self.access_log.read_text().splitlines():
            pid, logged_path, logged_status = line.split()
            if logged_path == path and int(logged_status) == status:
                pids.append(pid)
        return pids

    def workers_that_answered(self, path: str, status: int, *, count: int) -> set[str]:
        """Once all `count` answers are logged (a worker logs just after it responds)."""
        deadline = time.monotonic() + 30
        while len(self.answers(path, status)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return set(self.answers(path, status))


@pytest.fixture
def server(migrated_url: str, demo: Any, tmp_path: Path) -> Iterator[Server]:
    """gunicorn with several workers on this run's database (demo data loaded through the app),
    logging the worker's pid for every request."""
    access_log = tmp_path / "access.log"
    args = ("--access-logfile", str(access_log), "--access-logformat", "%(p)s %(U)s %(s)s")
    with gunicorn(migrated_url, tmp_path, workers=WORKERS, args=args) as served:
        yield Server(served.url, access_log)


def sign_in(url: str, username: str, device_id: str) -> str:
    resp = requests.post(
        f"{url}/api/v1/auth/devices",
        json={
            "username": username,
            "password": password_for(username),
            "device_id": device_id,
            "device_name": f"{username}'s phone",
        },
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def burst(url: str, token: str, n: int) -> list[requests.Response]:
    """n calls, each on a fresh connection (so any worker may take it), several at a time (so
    that a busy worker leaves the next one to another)."""

    def call(_: int) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
        return requests.get(url + ME, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=WORKERS * 2) as pool:
        return list(pool.map(call, range(n)))


def test_revoked_device_is_refused_by_every_worker_on_its_next_request(server: Server) -> None:
    device_id = str(uuid.uuid4())
    token = sign_in(server.url, "cg_wang", device_id)
    admin = sign_in(server.url, "admin", str(uuid.uuid4()))

    # the device is known to (has been served by) every worker before it is revoked
    served = 0
    for _ in range(20):
        responses = burst(server.url, token, 12)
        assert [r.status_code for r in responses] == [200] * len(responses)
        served += len(responses)
        if len(server.workers_that_answered(ME, 200, count=served)) == WORKERS:
            break
    assert len(server.workers_that_answered(ME, 200, count=served)) == WORKERS, "a worker idled"

    resp = requests.post(
        f"{server.url}/api/v1/devices/{device_id}/revoke",
        headers={"Authorization": f"Bearer {admin}"},
        json={"reason": "lost phone"},
        timeout=30,
    )
    assert resp.status_code == 200 and resp.json()["revoked_at"], resp.text

    after = burst(server.url, token, 60)
    assert [r.status_code for r in after] == [401] * len(after)
    assert {r.json()["error"] for r in after} == {"auth.device_revoked"}
    assert len(server.workers_that_answered(ME, 401, count=len(after))) >= 2, "one worker only"
