"""Foundation: health, sign-in, tokens, devices, roster and catalogue, errors and bad input."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select

from fieldsync.db import Base
from fieldsync.demo import demo_uuid
from fieldsync.errors import CATALOGUE
from fieldsync.org.models import Certificate, Person


def count(app: Any, model: Any) -> int:
    with app.extensions["fieldsync"].sessionmaker() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_health(api: Any) -> None:
    resp = api.get("/health")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["database"] == "ok" and body["status"] == "ok" and body["version"]
    assert body["schema"] == "current" and body["schema_revision"]


def test_health_says_when_the_schema_is_behind(tmp_path: Any) -> None:
    """A server started on a database nobody migrated (or migrated by older code) says so."""
    from fieldsync import create_app
    from fieldsync.config import Config

    app = create_app(Config.from_env(data_dir=tmp_path, testing=True, run_scheduler=False))
    try:
        resp = app.test_client().get("/api/v1/health")
        body = resp.get_json()
        assert resp.status_code == 503 and resp.headers["Retry-After"]
        assert (body["database"], body["schema"], body["status"]) == ("ok", "behind", "degraded")
        assert body["schema_revision"] is None
    finally:
        app.extensions["fieldsync"].engine.dispose()


def test_admin_registers_device_and_lists_matters(api: Any, demo: Any) -> None:
    resp = api.post(
        "/auth/devices",
        json={
            "username": "admin",
            "password": "fieldsync-demo",
            "device_id": str(uuid.uuid4()),
            "device_name": "pc",
        },
    )
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["user"]["username"] == "admin" and "admin" in body["user"]["roles"]
    matters = api.client.get(
        "/api/v1/matters", headers={"Authorization": f"Bearer {body['token']}"}
    ).get_json()
    assert len(matters) >= 30
    assert {"enforcement", "referral"} <= set(matters[0]["allowed_measures"])


def test_wrong_password_and_unknown_user_look_the_same(api: Any, demo: Any) -> None:
    for username in ("admin", "nobody"):
        resp = api.post(
            "/auth/devices",
            json={
                "username": username,
                "password": "wrong",
                "device_id": str(uuid.uuid4()),
                "device_name": "x",
            },
        )
        assert resp.status_code == 401
        assert resp.get_json()["error"] == "auth.invalid_credentials"


def test_bad_tokens(api: Any, demo: Any) -> None:
    cases = {
        "Bearer fs1_forged-token-value": "auth.token_invalid",
        "Bearer not-our-format": "auth.token_invalid",
        "Basic YWRtaW46eA==": "auth.token_invalid",
        "Bearer": "auth.token_invalid",
    }
    for header, code in cases.items():
        resp = api.client.get("/api/v1/auth/me", headers={"Authorization": header})
        assert resp.status_code == 401, header
        assert resp.get_json()["error"] == code, header


def test_expired_token(api: Any, demo: Any, app: Any) -> None:
    from datetime import timedelta

    from fieldsync.clock import utcnow
    from fieldsync.identity.models import Device

    token = api.login("cg_wang")
    with app.extensions["fieldsync"].sessionmaker() as s, s.begin():
        for device in s.scalars(select(Device)):
            device.token_expires_at = utcnow() - timedelta(seconds=1)
    resp = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401 and resp.get_json()["error"] == "auth.token_expired"


def test_revoked_device_is_refused_on_next_request(api: Any, demo: Any) -> None:
    device_id = str(uuid.uuid4())
    token = api.login("cg_wang", device_id=device_id)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/v1/auth/me", headers=headers).status_code == 200
    resp = api.post(f"/devices/{device_id}/revoke", "admin", json={"reason": "lost phone"})
    assert resp.status_code == 200 and resp.get_json()["revoked_at"]
    resp = api.client.get("/api/v1/auth/me", headers=headers)
    assert resp.status_code == 401 and resp.get_json()["error"] == "auth.device_revoked"
    # signing in again on the revoked device is refused too
    again = api.post(
        "/auth/devices",
        json={
            "username": "cg_wang",
            "password": "fieldsync-demo",
            "device_id": device_id,
            "device_name": "x",
        },
    )
    assert again.get_json()["error"] == "auth.device_revoked"


def test_messages_follow_accept_language(api: Any) -> None:
    zh = api.client.get("/api/v1/nowhere", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    en = api.client.get("/api/v1/nowhere", headers={"Accept-Language": "en-US,en;q=0.8"})
    assert zh.status_code == en.status_code == 404
    assert zh.get_json()["error"] == en.get_json()["error"] == "request.not_found"
    assert zh.get_json()["message"] == "未找到。"
    assert en.get_json()["message"] == "Not found."


def test_405_413_and_422_in_both_languages(api: Any, app: Any, demo: Any) -> None:
    admin = api.headers("admin")
    big = b"{" + b" " * (app.extensions["fieldsync"].config.max_body_bytes + 10) + b"}"
    liu = demo_uuid("person", "cg_liu")
    calls = [
        ("DELETE", "/api/v1/health", {}, 405, "request.method_not_allowed"),
        ("PUT", f"/api/v1/officers/{liu}", {"json": {}}, 405, "request.method_not_allowed"),
        ("POST", "/api/v1/auth/devices", {"data": big}, 413, "request.too_large"),
        ("PATCH", f"/api/v1/officers/{liu}", {"data": big}, 413, "request.too_large"),
        ("PATCH", f"/api/v1/officers/{liu}", {"json": {"phone": 1}}, 422, "request.invalid"),
    ]
    with nothing_written(app):
        for method, path, kwargs, status, code in calls:
            for header, lang in (("zh-CN,zh;q=0.9", "zh"), ("en-GB,en;q=0.8", "en")):
                if "data" in kwargs:
                    kwargs = {**kwargs, "content_type": "application/json"}
                resp = api.client.open(
                    path, method=method, headers={**admin, "Accept-Language": header}, **kwargs
                )
                where = (method, path, lang)
                assert resp.status_code == status, (where, resp.get_json())
                body = resp.get_json()
                assert body["error"] == code and body["code"] == status, where
                assert body["message"] == CATALOGUE[code].message(lang, {}), where
                if status == 405:
                    assert "GET" in resp.headers["Allow"], where
                if status == 422:
                    assert "phone" in body["errors"]["json"], where


def snapshot(app: Any) -> dict[str, list[str]]:
    """Every row of every table, to show that a refused request wrote nothing anywhere."""
    with app.extensions["fieldsync"].engine.connect() as conn:
        return {
            t.name: sorted(repr(tuple(row)) for row in conn.execute(select(t)))
            for t in Base.metadata.sorted_tables
        }


@contextmanager
def nothing_written(app: Any) -> Iterator[None]:
    before = snapshot(app)
    yield
    after = snapshot(app)
    changed = [name for name in before if before[name] != after[name]]
    assert changed == [], f"tables written by refused requests: {changed}"


NOT_OBJECTS = [
    ("null", "request.invalid"),
    ("[]", "request.invalid"),
    ('[{"phone": "1"}]', "request.invalid"),
    ('"phone"', "request.invalid"),
    ("42", "request.invalid"),
    ('{"phone": "1"', "request.malformed_json"),
    ("{'phone': '1'}", "request.malformed_json"),
]


def test_bodies_that_are_not_json_objects(api: Any, app: Any, demo: Any) -> None:
    liu = demo_uuid("person", "cg_liu")
    admin = api.headers("admin")
    targets = [
        ("PATCH", f"/api/v1/officers/{liu}", admin),
        ("POST", "/api/v1/auth/devices", {}),
    ]
    with nothing_written(app):
        for method, path, headers in targets:
            for data, code in NOT_OBJECTS:
                resp = api.client.open(
                    path, method=method, headers=headers, data=data, content_type="application/json"
                )
                where = (method, path, data)
                assert resp.get_json()["error"] == code, (where, resp.get_json())
                assert resp.status_code == (400 if code == "request.malformed_json" else 422)
                if code == "request.invalid":
                    assert resp.get_json()["errors"]["json"] == {"_schema": ["Invalid input type."]}
            # a JSON object sent under another media type is not taken for an empty body
            as_text = {"data": '{"phone": "1"}', "content_type": "text/plain"}
            resp = api.client.open(path, method=method, headers=headers, **as_text)
            assert resp.status_code == 415, (method, path, resp.get_json())
            assert resp.get_json()["error"] == "request.unsupported_media_type"


def test_patch_officer_refuses_bad_fields_and_references(api: Any, app: Any, demo: Any) -> None:
    liu = demo_uuid("person", "cg_liu")
    api.headers("admin")
    other_street_grid = str(demo_uuid("grid", "110101002001-01"))
    cases = [
        ({"phone": "1", "salary": 1}, 422, "request.invalid", "salary"),
        ({"street_id": str(uuid.uuid4())}, 422, "request.invalid", "street_id"),
        ({"department_id": str(uuid.uuid4())}, 422, "org.unknown_department", None),
        ({"grid_id": other_street_grid}, 422, "org.unknown_grid", None),
        ({"grid_id": str(uuid.uuid4())}, 422, "org.unknown_grid", None),
        ({"username": "cg_wang", "phone": "1"}, 409, "org.username_taken", None),
        ({"roles": []}, 422, "request.invalid", "roles"),
        ({"roles": ["superuser"]}, 422, "request.invalid", "roles"),
    ]
    with nothing_written(app):
        for body, status, code, field in cases:
            resp = api.patch(f"/officers/{liu}", "admin", json=body)
            assert resp.status_code == status, (body, resp.get_json())
            assert resp.get_json()["error"] == code, body
            if field:
                assert field in resp.get_json()["errors"]["json"], body
    taken = api.patch(f"/officers/{liu}", "admin", json={"username": "cg_wang"})
    assert "cg_wang" in taken.get_json()["message"]


def test_username_taken_on_create(api: Any, app: Any, demo: Any) -> None:
    api.headers("admin")
    body = {"username": "cg_wang", "password": "longenough", "full_name": "x", "roles": ["officer"]}
    with nothing_written(app):
        resp = api.post("/officers", "admin", json=body, headers={"Accept-Language": "en"})
    assert resp.status_code == 409 and resp.get_json()["error"] == "org.username_taken"
    assert resp.get_json()["message"] == "The username cg_wang is taken."


def test_device_of_another_user_is_refused(api: Any, app: Any, demo: Any) -> None:
    device_id = str(uuid.uuid4())
    wang = api.login("cg_wang", device_id=device_id)
    with nothing_written(app):
        resp = api.post(
            "/auth/devices",
            json={
                "username": "cg_liu",
                "password": "fieldsync-demo",
                "device_id": device_id,
                "device_name": "borrowed",
            },
        )
        assert resp.status_code == 409, resp.get_json()
        assert resp.get_json()["error"] == "auth.device_owned_by_other"
    # the owner's token is untouched
    me = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {wang}"})
    assert me.status_code == 200 and me.get_json()["username"] == "cg_wang"


def test_disabled_account_cannot_sign_in_or_use_its_token(api: Any, app: Any, demo: Any) -> None:
    liu = demo_uuid("person", "cg_liu")
    token = api.login("cg_liu")
    api.headers("admin")
    resp = api.patch(f"/officers/{liu}", "admin", json={"active": False})
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    with nothing_written(app):
        resp = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401 and resp.get_json()["error"] == "auth.account_disabled"
        resp = api.post(
            "/auth/devices",
            json={
                "username": "cg_liu",
                "password": "fieldsync-demo",
                "device_id": str(uuid.uuid4()),
                "device_name": "new phone",
            },
        )
        assert resp.status_code == 401 and resp.get_json()["error"] == "auth.account_disabled"
    # a wrong password on a disabled account says nothing about the account
    resp = api.post(
        "/auth/devices",
        json={
            "username": "cg_liu",
            "password": "wrong",
            "device_id": str(uuid.uuid4()),
            "device_name": "x",
        },
    )
    assert resp.get_json()["error"] == "auth.invalid_credentials"


def test_malformed_json_and_wrong_types(api: Any, demo: Any, app: Any) -> None:
    before = count(app, Person)
    resp = api.post("/officers", "admin", data="{not json", content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"] == "request.malformed_json"
    resp = api.post(
        "/officers",
        "admin",
        json={"username": 42, "password": "longenough", "full_name": "x", "roles": ["officer"]},
    )
    assert resp.status_code == 422 and resp.get_json()["error"] == "request.invalid"
    assert "username" in resp.get_json()["errors"]["json"]
    resp = api.post(
        "/officers",
        "admin",
        json={
            "username": "newbie",
            "password": "longenough",
            "full_name": "x",
            "roles": ["officer"],
            "salary": 1,
        },
    )
    assert resp.status_code == 422 and "salary" in resp.get_json()["errors"]["json"]
    resp = api.post(
        "/officers",
        "admin",
        json={
            "username": "newbie",
            "password": "longenough",
            "full_name": "x",
            "roles": ["officer"],
            "department_id": str(uuid.uuid4()),
        },
    )
    assert resp.status_code == 422 and resp.get_json()["error"] == "org.unknown_department"
    assert count(app, Person) == before


def test_create_person_certificate_and_revoke(api: Any, demo: Any, app: Any) -> None:
    resp = api.post(
        "/officers",
        "admin",
        json={
            "username": "cg_new",
            "password": "longenough",
            "full_name": "新队员",
            "roles": ["officer"],
            "department_id": str(demo_uuid("department", "chengguan")),
        },
    )
    assert resp.status_code == 201, resp.get_json()
    person = resp.get_json()
    assert person["street_id"] == str(demo_uuid("street", "110101001"))
    cert = {
        "number": "京执字TEST0001",
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_to": "2029-01-01T00:00:00Z",
    }
    resp = api.post(f"/officers/{person['id']}/certificates", "admin", json=cert)
    assert resp.status_code == 201
    before = count(app, Certificate)
    dup = api.post(f"/officers/{person['id']}/certificates", "admin", json=cert)
    assert dup.status_code == 409 and dup.get_json()["error"] == "org.certificate_number_taken"
    naive = api.post(
        f"/officers/{person['id']}/certificates",
        "admin",
        json={**cert, "number": "X2", "valid_from": "2026-01-01T00:00:00"},
    )
    assert naive.status_code == 422
    backwards = api.post(
        f"/officers/{person['id']}/certificates",
        "admin",
        json={**cert, "number": "X3", "valid_to": "2025-01-01T00:00:00Z"},
    )
    assert backwards.get_json()["error"] == "org.certificate_invalid_period"
    assert count(app, Certificate) == before
    cert_id = resp.get_json()["id"]
    revoked = api.post(f"/certificates/{cert_id}/revoke", "admin", json={"reason": "调岗"})
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    twice = api.post(f"/certificates/{cert_id}/revoke", "admin", json={"reason": "again"})
    assert twice.status_code == 409


def test_scope_other_street_is_invisible(api: Any, demo: Any) -> None:
    other = demo_uuid("person", "js_cg_xu")
    resp = api.get(f"/officers/{other}", "admin")
    assert resp.status_code == 404 and resp.get_json()["error"] == "org.person_not_found"
    resp = api.patch(f"/officers/{other}", "admin", json={"full_name": "x"})
    assert resp.status_code == 404
    roster = api.get("/officers", "admin").get_json()
    assert all(p["street_id"] == str(demo_uuid("street", "110101001")) for p in roster)
