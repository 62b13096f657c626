"""A real gunicorn server for the end-to-end tests: fieldsync on this run's database, several
worker processes, on a free port; stopped afterwards, and no ERROR in its log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Gunicorn:
    url: str  # http://127.0.0.1:<port>
    port: int
    data_dir: Path
    log: Path  # gunicorn's own log (stdout and stderr)


@contextmanager
def gunicorn(
    database_url: str,
    tmp_path: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[Gunicorn]:
    """Serve `fieldsync:create_app()` with `workers` processes until the block ends. `env` adds
    settings (FIELDSYNC_*), `args` gunicorn options (an access log, say)."""
    port = free_port()
    data_dir = tmp_path / "server"
    environment = {
        **os.environ,
        "FIELDSYNC_DATABASE_URL": database_url,
        "FIELDSYNC_DATA_DIR": str(data_dir),
        "FIELDSYNC_SECRET_KEY": "e2e-secret-key",
        "FIELDSYNC_PASSWORD_TIME_COST": "1",
        "FIELDSYNC_PASSWORD_MEMORY_KIB": "8",
        "FIELDSYNC_RUN_SCHEDULER": "0",
        **(env or {}),
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                "60",
                "--config",
                "python:fieldsync.serving",
                *args,
                "fieldsync:create_app()",
            ],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(proc, url, log_path)
            yield Gunicorn(url=url, port=port, data_dir=data_dir, log=log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    errors = [line for line in log_path.read_text().splitlines() if "ERROR" in line]
    assert not errors, errors[:5]


def _wait_until_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(url + "/api/v1/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"gunicorn did not answer /api/v1/health within {STARTUP_S} s")
        time.sleep(0.2)
