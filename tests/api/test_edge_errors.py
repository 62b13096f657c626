"""The HTTP edge's answers to what the services cannot check: requests racing past a uniqueness
check, a database that is down, out-of-range times, unknown query parameters."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from conftest import BACKEND, error_of
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from fieldsync.api.errors import UNIQUE_CONSTRAINT_CODES, database_problem, handle_database_error
from fieldsync.clock import utcnow
from fieldsync.config import Config
from fieldsync.db import Base
from fieldsync.demo import STREET_A_CODE, demo_uuid
from fieldsync.identity.models import Device
from fieldsync.inspections.models import Inspection
from fieldsync.org.models import Certificate, Department, Person
from fieldsync.sync.models import MutationRecord

CG_WANG = demo_uuid("person", "cg_wang")
CG_LIU = demo_uuid("person", "cg_liu")


def engine_of(app: Any) -> Any:
    return app.extensions["fieldsync"].engine


def count(app: Any, column: Any, *where: Any) -> int:
    with engine_of(app).connect() as conn:
        return int(conn.scalar(select(func.count(column)).where(*where)) or 0)


def device_row(device_id: uuid.UUID, person_id: uuid.UUID = CG_WANG) -> dict[str, Any]:
    return {
        "id": device_id,
        "person_id": person_id,
        "name": "phone",
        "token_hash": uuid.uuid4().hex + uuid.uuid4().hex,
        "token_expires_at": utcnow() + timedelta(days=1),
    }


def person_row(username: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "username": username,
        "password_hash": "x",
        "full_name": "占位",
        "street_id": demo_uuid("street", STREET_A_CODE),
    }


def mutation_row(device_id: uuid.UUID, device_seq: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "device_id": device_id,
        "person_id": CG_WANG,
        "street_id": demo_uuid("street", STREET_A_CODE),
        "device_seq": device_seq,
        "type": "inspection.upsert",
        "status": "applied",
        "payload": {},
        "result": {},
    }


def certificate_row(number: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "person_id": CG_LIU,
        "number": number,
        "valid_from": utcnow(),
        "valid_to": utcnow() + timedelta(days=365),
    }


# --- which code a database error stands for (both backends) -----------------------------------


def integrity_error(app: Any, *statements: Any) -> IntegrityError:
    """The error the last statement raises; the transaction is rolled back, nothing stays."""
    with engine_of(app).connect() as conn:
        try:
            for statement in statements:
                conn.execute(statement)
        except IntegrityError as error:
            return error
        finally:
            conn.rollback()
    pytest.fail("the statements raised no integrity error")


def test_every_mapped_constraint_exists(app: Any) -> None:
    names = {c.name for t in Base.metadata.tables.values() for c in t.constraints}
    assert set(UNIQUE_CONSTRAINT_CODES) <= names


def test_unique_violations_map_to_their_domain_codes(app: Any, demo: Any) -> None:
    cert_of_wang = select(Certificate.number).where(Certificate.person_id == CG_WANG)
    with engine_of(app).connect() as conn:
        wang_number = conn.scalar(cert_of_wang)
    device_id = uuid.uuid4()
    cases = [
        (
            [update(Person).where(Person.id == CG_LIU).values(username="cg_wang")],
            "org.username_taken",
            {"username": "cg_wang"},
        ),
        (
            [insert(Person).values(**person_row("cg_wang"))],
            "org.username_taken",
            {"username": "cg_wang"},
        ),
        (
            [insert(Certificate).values(**certificate_row(wang_number))],
            "org.certificate_number_taken",
            {"number": wang_number},
        ),
        # a constraint without a code of its own: "send it again"
        (
            [
                insert(Device).values(**device_row(device_id)),
                insert(Device).values(**device_row(device_id)),
            ],
            "request.concurrent_write",
            {"id": str(device_id)},
        ),
        (
            [update(Department).where(Department.code == "police").values(code="chengguan")],
            "request.concurrent_write",
            {"code": "chengguan"},
        ),
        # a constraint over two columns (a device's mutation number)
        (
            [
                insert(Device).values(**device_row(device_id)),
                insert(MutationRecord).values(**mutation_row(device_id, 7)),
                insert(MutationRecord).values(**mutation_row(device_id, 7)),
            ],
            "request.concurrent_write",
            {"device_id": str(device_id), "device_seq": "7"},
        ),
    ]
    for statements, code, pg_values in cases:
        error = integrity_error(app, *statements)
        # PostgreSQL names the value; SQLite only the columns
        assert database_problem(error) == (code, pg_values if BACKEND == "postgresql" else {})
    assert count(app, Device.id, Device.id == device_id) == 0


def test_other_integrity_errors(app: Any, demo: Any) -> None:
    device_id, inspection_id = uuid.uuid4(), uuid.uuid4()
    sealed = [
        insert(Device).values(**device_row(device_id)),
        insert(Inspection).values(
            id=inspection_id,
            street_id=demo_uuid("street", STREET_A_CODE),
            created_by_id=CG_WANG,
            created_device_id=device_id,
            sealed_at=utcnow(),
        ),
        # the archive trigger raises "inspection.archived: …"
        update(Inspection).where(Inspection.id == inspection_id).values(description="changed"),
    ]
    assert database_problem(integrity_error(app, *sealed)) == ("inspection.archived", {})
    # one the edge does not understand stays a 500, raised like any other bug
    dangling = integrity_error(
        app, insert(Device).values(**device_row(uuid.uuid4(), person_id=uuid.uuid4()))
    )
    assert database_problem(dangling) == ("server.error", {})
    with app.test_request_context(), pytest.raises(IntegrityError):
        handle_database_error(dangling)


def test_the_response_of_a_mapped_error(app: Any, demo: Any) -> None:
    error = integrity_error(app, insert(Person).values(**person_row("cg_wang")))
    for language, fragment in (("en", "is taken"), ("zh-CN", "已被占用")):
        with app.test_request_context(headers={"Accept-Language": language}):
            payload, status, headers = handle_database_error(error)
        assert status == 409 and payload["error"] == "org.username_taken"
        assert fragment in payload["message"] and "{" not in payload["message"]


# --- racing requests on PostgreSQL ------------------------------------------------------------

only_postgresql = pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="SQLite serialises writers (BEGIN IMMEDIATE): the service's own check sees the row",
)


def wait_for_lock_wait(app: Any, deadline_s: float = 60) -> None:
    """Until some transaction of this database waits on a lock (our request on the blocker's
    row): a condition to wait for, not a speed to assert."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    end = time.monotonic() + deadline_s
    with engine_of(app).connect() as conn:
        while conn.scalar(query) == 0:
            if time.monotonic() > end:
                pytest.fail("the request never waited on the blocker's row")
            time.sleep(0.02)
            conn.rollback()


def admin_headers(api: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.login('admin')}"}


RaceCase = tuple[Any, Callable[[Any], Any], str]


def race_cases(api: Any) -> dict[str, RaceCase]:
    """name -> (the blocker's insert, the request that collides with it, the expected code)."""
    admin = admin_headers(api)
    device_id = uuid.uuid4()
    officer = {"password": "longenough", "full_name": "新队员", "roles": ["officer"]}
    return {
        "add_certificate": (
            insert(Certificate).values(**certificate_row("RACE-1")),
            lambda c: c.post(
                f"/api/v1/officers/{CG_WANG}/certificates",
                headers=admin,
                json={
                    "number": "RACE-1",
                    "valid_from": "2026-01-01T00:00:00Z",
                    "valid_to": "2028-01-01T00:00:00Z",
                },
            ),
            "org.certificate_number_taken",
        ),
        "create_person": (
            insert(Person).values(**person_row("race_new")),
            lambda c: c.post(
                "/api/v1/officers", headers=admin, json={"username": "race_new", **officer}
            ),
            "org.username_taken",
        ),
        "update_person": (
            insert(Person).values(**person_row("race_renamed")),
            lambda c: c.patch(
                f"/api/v1/officers/{CG_LIU}", headers=admin, json={"username": "race_renamed"}
            ),
            "org.username_taken",
        ),
        "register_device": (
            insert(Device).values(**device_row(device_id)),
            lambda c: c.post(
                "/api/v1/auth/devices",
                json={
                    "username": "cg_wang",
                    "password": "fieldsync-demo",
                    "device_id": str(device_id),
                    "device_name": "phone",
                },
            ),
            "request.concurrent_write",
        ),
    }


@only_postgresql
@pytest.mark.parametrize(
    "name", ["add_certificate", "create_person", "update_person", "register_device"]
)
def test_a_request_racing_past_the_check_gets_the_domain_code(
    app: Any, api: Any, demo: Any, name: str
) -> None:
    """The blocker inserts the same value first and commits only once the request waits on it:
    the request's own check saw nothing, its insert loses in the database."""
    blocker_insert, collide, code = race_cases(api)[name]
    people, certificates = count(app, Person.id), count(app, Certificate.id)
    result: dict[str, Any] = {}
    with engine_of(app).connect() as blocker:
        blocker.execute(blocker_insert)
        thread = threading.Thread(target=lambda: result.update(resp=collide(app.test_client())))
        thread.start()
        try:
            wait_for_lock_wait(app)
            blocker.commit()
        finally:
            thread.join(120)
    resp = result["resp"]
    assert resp.status_code == 409, resp.get_json()
    assert error_of(resp) == code
    # only the blocker's row: the request left nothing behind
    added_people = 1 if name in ("create_person", "update_person") else 0
    assert count(app, Person.id) == people + added_people
    assert count(app, Certificate.id) == certificates + (name == "add_certificate")
    assert count(app, Person.id, Person.username == "cg_liu") == 1


def twice_at_once(app: Any, call: Callable[[Any], Any]) -> list[Any]:
    """The same request from two threads, each with its own client, released together."""
    barrier = threading.Barrier(2)
    responses: list[Any] = []

    def run() -> None:
        client = app.test_client()
        barrier.wait()
        responses.append(call(client))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(responses) == 2
    return responses


def test_simultaneous_duplicates_one_wins_the_other_gets_its_code(
    app: Any, api: Any, demo: Any
) -> None:
    """Two threads against the app, released together, several rounds for each operation."""
    admin = admin_headers(api)
    officer = {"password": "longenough", "full_name": "新队员", "roles": ["officer"]}

    def certificate(n: int) -> Callable[[Any], Any]:
        body = {
            "number": f"TWIN-{n}",
            "valid_from": "2026-01-01T00:00:00Z",
            "valid_to": "2028-01-01T00:00:00Z",
        }
        path = f"/api/v1/officers/{CG_WANG}/certificates"
        return lambda c: c.post(path, headers=admin, json=body)

    def person(n: int) -> Callable[[Any], Any]:
        body = {"username": f"twin_{n}", **officer}
        return lambda c: c.post("/api/v1/officers", headers=admin, json=body)

    def device(n: int) -> Callable[[Any], Any]:
        body = {
            "username": "cg_wang",
            "password": "fieldsync-demo",
            "device_id": str(uuid.UUID(int=n + 1)),
            "device_name": "phone",
        }
        return lambda c: c.post("/api/v1/auth/devices", json=body)

    rounds = 5
    operations = {
        "certificate": (certificate, {201, 409}, "org.certificate_number_taken"),
        "person": (person, {201, 409}, "org.username_taken"),
        # the same user signing in twice on one new phone: re-registration is allowed, so the
        # later one is either a 201 (it came second) or "send it again" (it raced)
        "device": (device, {201}, "request.concurrent_write"),
    }
    for name, (make, statuses, code) in operations.items():
        for n in range(rounds):
            responses = twice_at_once(app, make(n))
            got = sorted(r.status_code for r in responses)
            where = (name, n, [r.get_json() for r in responses])
            assert 201 in got and set(got) <= statuses | {409}, where
            assert all(error_of(r) == code for r in responses if r.status_code == 409), where
            if statuses == {201, 409}:
                assert got == [201, 409], where
    assert count(app, Certificate.id, Certificate.number.like("TWIN-%")) == rounds
    assert count(app, Person.id, Person.username.like("twin_%")) == rounds
    assert count(app, Device.id, Device.id.in_([uuid.UUID(int=n + 1) for n in range(rounds)])) == (
        rounds
    )


# --- the database is down ---------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when we return: nothing listens there


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_database_down_answers_503_with_retry_after(tmp_path: Any, backend: str) -> None:
    from fieldsync import create_app

    url = (
        f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/fieldsync"
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'no-such-directory' / 'fieldsync.db'}"
    )
    config = Config.from_env(
        database_url=url,
        data_dir=tmp_path / "data",
        run_scheduler=False,
        testing=True,
        password_time_cost=1,
        password_memory_kib=8,
    )
    app = create_app(config)
    client = app.test_client()
    try:
        health = client.get("/api/v1/health")
        assert health.status_code == 503
        assert health.get_json()["status"] == "degraded"
        assert health.get_json()["database"] == "unreachable"
        assert health.headers["Retry-After"].isdigit()
        calls = [
            client.get("/api/v1/auth/me", headers={"Authorization": "Bearer fs1_" + "x" * 43}),
            client.get("/api/v1/matters", headers={"Authorization": "Bearer fs1_" + "y" * 43}),
            client.post(
                "/api/v1/auth/devices",
                json={
                    "username": "admin",
                    "password": "fieldsync-demo",
                    "device_id": str(uuid.uuid4()),
                    "device_name": "pc",
                },
            ),
        ]
        for resp in calls:
            assert resp.status_code == 503, resp.get_json()
            assert error_of(resp) == "server.unavailable"
            assert int(resp.headers["Retry-After"]) > 0
    finally:
        app.extensions["fieldsync"].engine.dispose()


def test_a_failing_commit_is_answered_for_too(
    app: Any, api: Any, demo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection can go between the view and the commit at the edge."""
    headers = {"Authorization": f"Bearer {api.login('cg_wang')}"}

    def lose_connection(self: Session) -> None:
        raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(Session, "commit", lose_connection)
    resp = api.client.get("/api/v1/auth/me", headers=headers)
    assert resp.status_code == 503 and error_of(resp) == "server.unavailable"
    assert int(resp.headers["Retry-After"]) > 0


# --- times ------------------------------------------------------------------------------------


def test_times_out_of_range_or_not_rfc3339_are_422_on_every_datetime_input(
    app: Any, api: Any, demo: Any
) -> None:
    before = count(app, Certificate.id)
    too_late, too_early = "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+08:00"
    # ISO 8601 forms that are not RFC 3339: basic, week date, ordinal date, digits of
    # another script (FULLWIDTH DIGIT TWO)
    other_forms = (
        "20261125T080000Z",
        "2026-W48-3T08:00:00Z",
        "2026-329T08:00:00Z",
        "\uff12026-11-25T08:00:00Z",
    )
    for when in (too_late, too_early, *other_forms):
        cert = {
            "number": "RANGE-1",
            "valid_from": "2026-01-01T00:00:00Z",
            "valid_to": when,
        }
        resp = api.post(f"/officers/{CG_LIU}/certificates", "admin", json=cert)
        assert resp.status_code == 422 and error_of(resp) == "request.invalid", resp.get_json()
        assert "valid_to" in resp.get_json()["errors"]["json"]
        resp = api.post(
            "/rules/second-inspector",
            "cg_wang",
            json={"matter_code": "CG-001", "present": [str(CG_WANG)], "at": when},
        )
        assert resp.status_code == 422 and "at" in resp.get_json()["errors"]["json"]
        for path in ("/inspections", "/cases"):
            resp = api.get(path, "captain", query_string={"from": when})
            assert resp.status_code == 422, (path, resp.get_json())
            assert "from" in resp.get_json()["errors"]["query"]
    assert count(app, Certificate.id) == before
    # the last moment Python can hold, in UTC, is still a time
    resp = api.post(
        f"/officers/{CG_LIU}/certificates",
        "admin",
        json={
            "number": "RANGE-2",
            "valid_from": "2026-01-01T00:00:00+08:00",
            "valid_to": "9999-12-31T23:59:59Z",
        },
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["valid_from"].startswith("2025-12-31T16:00:00")


# --- query parameters -------------------------------------------------------------------------


def test_unknown_query_parameters_are_refused(api: Any, demo: Any) -> None:
    refused = [
        ("/matters", "cg_wang", {"foo": "1"}),
        ("/departments", "cg_wang", {"department_id": "x"}),  # a view without a query schema
        ("/officers", "admin", {"role": "officer", "sort": "name"}),
        ("/cases", "captain", {"page": "1", "colour": "red"}),  # beside pagination
        ("/review-queue", "captain", {"page_size": "5", "bogus": "x", "extra": "1"}),
        ("/health", None, {"verbose": "1"}),
    ]
    for path, who, query in refused:
        resp = api.get(path, who, query_string=query)
        assert resp.status_code == 422, (path, resp.get_json())
        assert error_of(resp) == "request.invalid"
        known = {"page", "page_size", "role"}
        assert set(resp.get_json()["errors"]["query"]) == set(query) - known, path
    accepted = [
        ("/matters", "cg_wang", {"department_id": str(demo_uuid("department", "chengguan"))}),
        ("/cases", "captain", {"page": "2", "page_size": "5", "state": "filed"}),
        ("/inspections", "captain", {"from": "2026-01-01T00:00:00Z", "page": "1"}),
        ("/review-queue", "captain", {"page": "1", "page_size": "5"}),
        ("/sync/pull", "cg_wang", {"limit": "10"}),
    ]
    for path, who, query in accepted:
        resp = api.get(path, who, query_string=query)
        assert resp.status_code == 200, (path, resp.get_json())


def test_query_integers_are_ascii_digits(api: Any, demo: Any) -> None:
    # Python's int() reads all of these; a client that sends them has a bug to be told about
    for loose in ("１０", "1_0", " 10", "10 ", "+10", "٣", "1e1", "10.0", ""):
        for path, who, name in (
            ("/sync/pull", "cg_wang", "limit"),
            ("/cases", "captain", "page"),
            ("/review-queue", "captain", "page_size"),
        ):
            resp = api.get(path, who, query_string={name: loose})
            assert resp.status_code == 422, (path, name, loose, resp.get_json())
            assert error_of(resp) == "request.invalid"
            assert resp.get_json()["errors"]["query"] == {name: ["Not a valid integer."]}
    # a negative number is an integer, out of range: the schema's own message
    resp = api.get("/cases", "captain", query_string={"page": "-1"})
    assert resp.status_code == 422 and "page" in resp.get_json()["errors"]["query"]
    assert resp.get_json()["errors"]["query"]["page"] != ["Not a valid integer."]
    for path, who, query in (
        ("/sync/pull", "cg_wang", {"limit": "10"}),
        ("/cases", "captain", {"page": "01", "page_size": "5"}),
    ):
        assert api.get(path, who, query_string=query).status_code == 200, path


def test_unknown_query_parameter_does_not_bypass_sign_in(api: Any) -> None:
    resp = api.get("/matters", query_string={"foo": "1"})
    assert resp.status_code == 401 and error_of(resp) == "auth.required"


def test_department_filters_name_a_known_department(api: Any, demo: Any) -> None:
    unknown = str(uuid.uuid4())
    for path, who in (("/matters", "cg_wang"), ("/officers", "admin")):
        resp = api.get(path, who, query_string={"department_id": unknown})
        assert resp.status_code == 422, (path, resp.get_json())
        assert error_of(resp) == "org.unknown_department"
        assert resp.get_json()["id"] == unknown
    chengguan = str(demo_uuid("department", "chengguan"))
    matters = api.get("/matters", "cg_wang", query_string={"department_id": chengguan})
    assert matters.status_code == 200 and matters.get_json()
    assert {m["department_id"] for m in matters.get_json()} == {chengguan}


def test_every_mapped_constraint_names_a_catalogue_code_and_a_real_constraint() -> None:
    import fieldsync.models  # noqa: F401
    from fieldsync.api.errors import UNIQUE_CONSTRAINT_CODES
    from fieldsync.db import Base
    from fieldsync.errors import CATALOGUE

    names = {
        c.name for t in Base.metadata.sorted_tables for c in t.constraints if c.name is not None
    }
    for constraint, code in UNIQUE_CONSTRAINT_CODES.items():
        assert code in CATALOGUE, code
        assert constraint in names, constraint
