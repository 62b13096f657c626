"""A benchmark's own database (created here, dropped at the end) and an app over it."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "FIELDSYNC_BENCH_POSTGRES_URL",
    os.environ.get(
        "FIELDSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
)


def postgres_answers(url: str = POSTGRES_URL) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@contextmanager
def bench_database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database URL: a file under `workdir`, or fieldsync_bench_<random>."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    name = f"fieldsync_bench_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class BenchApp:
    app: Any
    services: Any
    client: Any
    url: str

    @property
    def engine(self) -> Any:
        return self.services.engine

    def login(self, username: str) -> tuple[str, str]:
        """A new device for a demo user: (device_id, token)."""
        from fieldsync.demo import password_for

        device_id = str(uuid.uuid4())
        resp = self.client.post(
            "/api/v1/auth/devices",
            json={
                "username": username,
                "password": password_for(username),
                "device_id": device_id,
                "device_name": "bench phone",
            },
        )
        assert resp.status_code == 201, resp.get_json()
        return device_id, resp.get_json()["token"]

    def close(self) -> None:
        self.services.engine.dispose()


def make_app(url: str, data_dir: Path) -> BenchApp:
    from fieldsync import create_app
    from fieldsync.config import Config
    from fieldsync.demo import load_demo
    from fieldsync.migrate import upgrade
    from fieldsync.serving import settle_heap

    upgrade(url)
    config = Config.from_env(
        database_url=url,
        data_dir=data_dir,
        password_time_cost=1,
        password_memory_kib=8,
        run_scheduler=False,
        secret_key="bench-secret",
    )
    app = create_app(config)
    services = app.extensions["fieldsync"]
    with services.sessionmaker() as s, s.begin():
        load_demo(s, hasher=services.hasher)
    settle_heap()  # as a gunicorn worker does once it has loaded the app
    return BenchApp(app=app, services=services, client=app.test_client(), url=url)
