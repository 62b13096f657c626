"""Test fixtures: one database per run (SQLite or PostgreSQL), the app, clean tables per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fieldsync.config import Config

BACKEND = os.environ.get("FIELDSYNC_TEST_DB", "sqlite")
POSTGRES_URL = os.environ.get(
    "FIELDSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHARED = Path(
    os.environ.get("FIELDSYNC_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
)
PHOTOS = SHARED / "data" / "photos"


def pytest_report_header(config: Any) -> str:
    return f"fieldsync test database: {BACKEND}"


@contextmanager
def own_database(directory: Path) -> Iterator[str]:
    """A new empty database on this run's backend, dropped afterwards (PostgreSQL) or left in
    `directory` (SQLite)."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{directory / f'fieldsync-{uuid.uuid4().hex[:8]}.db'}"
        return
    if BACKEND != "postgresql":
        raise pytest.UsageError(f"FIELDSYNC_TEST_DB must be sqlite or postgresql, not {BACKEND}")
    name = f"fieldsync_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this run's own, created here and dropped at the end."""
    with own_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    from fieldsync.migrate import upgrade

    upgrade(database_url)
    return database_url


@pytest.fixture(scope="session")
def test_config(migrated_url: str, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return Config.from_env(
        database_url=migrated_url,
        data_dir=tmp_path_factory.mktemp("data"),
        password_time_cost=1,
        password_memory_kib=8,
        run_scheduler=False,
        testing=True,
    )


@pytest.fixture(scope="session")
def app(test_config: Config) -> Any:
    from fieldsync import create_app

    application = create_app(test_config)
    yield application
    application.extensions["fieldsync"].engine.dispose()


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts from empty tables (only for tests that use the database)."""
    yield
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    from fieldsync.cases.triggers import create_triggers, drop_triggers
    from fieldsync.db import Base

    engine = application.extensions["fieldsync"].engine
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # TRUNCATE fires no row triggers: archived materials go like the rest
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
        else:
            # SQLite's DELETE fires them (archived cases, custody): lifted while cleaning
            drop_triggers(conn)
            for table in reversed(tables):
                conn.execute(text(f'DELETE FROM "{table}"'))
            create_triggers(conn)


@pytest.fixture
def session(app: Any) -> Iterator[Any]:
    """A session for service tests; the test commits what it wants others to see."""
    with app.extensions["fieldsync"].sessionmaker() as s:
        yield s


@pytest.fixture
def demo(app: Any) -> Any:
    """The demo streets, roster and catalogue."""
    from fieldsync.demo import load_demo

    services = app.extensions["fieldsync"]
    with services.sessionmaker() as s, s.begin():
        return load_demo(s, hasher=services.hasher)


class ApiClient:
    """The Flask test client with sign-in and JSON helpers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = app.test_client()
        self.tokens: dict[str, str] = {}

    def login(
        self,
        username: str,
        password: str | None = None,
        *,
        device_id: str | None = None,
        device_name: str = "test phone",
    ) -> str:
        from fieldsync.demo import password_for

        resp = self.client.post(
            "/api/v1/auth/devices",
            json={
                "username": username,
                "password": password or password_for(username),
                "device_id": device_id or str(uuid.uuid4()),
                "device_name": device_name,
            },
        )
        assert resp.status_code == 201, resp.get_json()
        token = resp.get_json()["token"]
        self.tokens[username] = token
        return token

    def headers(self, who: str | None, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if who is not None:
            token = self.tokens.get(who) or self.login(who)
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        who: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        return self.client.open(
            "/api/v1" + path, method=method, headers=self.headers(who, **(headers or {})), **kwargs
        )

    def get(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.request("GET", path, who, **kw)

    def post(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.request("POST", path, who, **kw)

    def patch(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.request("PATCH", path, who, **kw)


@pytest.fixture
def api(app: Any) -> ApiClient:
    return ApiClient(app)


def error_of(resp: Any) -> str:
    body = resp.get_json()
    assert body is not None, resp.data[:200]
    return body["error"]
