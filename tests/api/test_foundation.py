"""Foundation: health, sign-in, tokens, devices, roster and catalogue, errors and bad input."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from fieldsync.demo import demo_uuid
from fieldsync.org.models import Certificate, Person


def count(app: Any, model: Any) -> int:
    with app.extensions["fieldsync"].sessionmaker() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_health(api: Any) -> None:
    resp = api.get("/health")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["database"] == "ok" and body["status"] == "ok" and body["version"]


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


def test_405_and_413(api: Any, app: Any) -> None:
    resp = api.client.delete("/api/v1/health")
    assert resp.status_code == 405 and resp.get_json()["error"] == "request.method_not_allowed"
    big = b"{" + b" " * (app.extensions["fieldsync"].config.max_body_bytes + 10) + b"}"
    resp = api.client.post("/api/v1/auth/devices", data=big, content_type="application/json")
    assert resp.status_code == 413 and resp.get_json()["error"] == "request.too_large"


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
