"""Every endpoint × every role × own street vs the other street: allowed, or 403/404 with
nothing leaked. The expected table is written here, by hand, so a change of the code's
declarations that is not also made here fails."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from fieldsync.demo import demo_uuid

ROLES = {
    "officer": "cg_wang",
    "grid_worker": "grid_duofu1",
    "dispatcher": "dispatcher",
    "case_handler": "handler_chengguan",
    "reviewer": "reviewer_liang",
    "captain": "captain",  # also an officer
    "admin": "admin",
}
ALL = frozenset(ROLES)
BACK = frozenset({"dispatcher", "case_handler", "reviewer", "captain", "admin"})
ROSTER = frozenset({"admin", "captain", "dispatcher", "reviewer", "case_handler"})
PUBLIC = "public"

# (method, path rule) -> roles allowed (by any of the caller's roles)
EXPECTED: dict[tuple[str, str], Any] = {
    ("GET", "/api/v1/health"): PUBLIC,
    ("POST", "/api/v1/auth/devices"): PUBLIC,
    ("GET", "/api/v1/auth/me"): ALL,
    ("GET", "/api/v1/devices"): {"admin"},
    ("POST", "/api/v1/devices/<uuid:device_id>/revoke"): {"admin"},
    ("GET", "/api/v1/departments"): ALL,
    ("GET", "/api/v1/matters"): ALL,
    ("GET", "/api/v1/grids"): ALL,
    ("GET", "/api/v1/officers"): ROSTER,
    ("POST", "/api/v1/officers"): {"admin"},
    ("GET", "/api/v1/officers/<uuid:person_id>"): ROSTER,
    ("PATCH", "/api/v1/officers/<uuid:person_id>"): {"admin"},
    ("POST", "/api/v1/officers/<uuid:person_id>/certificates"): {"admin"},
    ("POST", "/api/v1/certificates/<uuid:certificate_id>/revoke"): {"admin"},
    ("GET", "/api/v1/sync/pull"): ALL,
    ("POST", "/api/v1/sync/push"): ALL,
    ("GET", "/api/v1/conflicts"): ALL,
    ("GET", "/api/v1/conflicts/<uuid:conflict_id>"): ALL,
    ("POST", "/api/v1/conflicts/<uuid:conflict_id>/resolve"): ALL,
    ("GET", "/api/v1/quarantine"): ALL,
}
# Endpoints added by later work declare their expectations in this module's extension table
# (tests/api/permissions_extra.py) so that each area keeps its own rows.
try:
    from permissions_extra import EXPECTED_EXTRA  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    EXPECTED_EXTRA = {}
EXPECTED.update(EXPECTED_EXTRA)


def _routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint.startswith("api-docs."):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return sorted(found)


def test_every_endpoint_is_in_the_table(app: Any) -> None:
    routes = set(_routes(app))
    assert routes - set(EXPECTED) == set(), "endpoints without an expected permission row"
    assert set(EXPECTED) - routes == set(), "rows for endpoints that do not exist"


def _ids(street: str) -> dict[str, str]:
    """Ids of demo objects of one street for each path parameter."""
    if street == "own":
        return {
            "person_id": str(demo_uuid("person", "cg_liu")),
            "certificate_id": "",  # filled in from the database
            "device_id": "",
        }
    return {
        "person_id": str(demo_uuid("person", "js_cg_xu")),
        "certificate_id": "",
        "device_id": "",
    }


@pytest.fixture
def ids(api: Any, demo: Any, app: Any) -> dict[str, dict[str, str]]:
    from sqlalchemy import select

    from fieldsync.org.models import Certificate

    out = {"own": _ids("own"), "other": _ids("other")}
    with app.extensions["fieldsync"].sessionmaker() as s:
        for side, person in (("own", "cg_liu"), ("other", "js_cg_xu")):
            out[side]["certificate_id"] = str(
                s.scalar(
                    select(Certificate.id).where(
                        Certificate.person_id == demo_uuid("person", person)
                    )
                )
            )
    # a device on each street
    for side, user in (("own", "cg_liu"), ("other", "js_cg_xu")):
        device_id = str(uuid.uuid4())
        api.login(user, device_id=device_id)
        out[side]["device_id"] = device_id
    return out


def _path(rule: str, values: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(2)
        return values.get(name) or str(uuid.uuid4())

    return re.sub(r"<(?:(\w+):)?(\w+)>", sub, rule)


# valid bodies, so that a call on another street's object reaches the lookup (and its 404)
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/devices/<uuid:device_id>/revoke"): {"reason": "matrix"},
    ("PATCH", "/api/v1/officers/<uuid:person_id>"): {"phone": "13800000000"},
    ("POST", "/api/v1/officers/<uuid:person_id>/certificates"): {
        "number": "MATRIX-1",
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_to": "2027-01-01T00:00:00Z",
    },
    ("POST", "/api/v1/certificates/<uuid:certificate_id>/revoke"): {"reason": "matrix"},
    ("POST", "/api/v1/conflicts/<uuid:conflict_id>/resolve"): {"resolution": "keep"},
}
try:
    from permissions_extra import BODIES_EXTRA  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    BODIES_EXTRA = {}
BODIES.update(BODIES_EXTRA)


def _call(api: Any, method: str, rule: str, path: str, who: str | None) -> Any:
    headers = api.headers(who)
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PATCH", "PUT"):
        kwargs["json"] = BODIES.get((method, rule), {})
    return api.client.open(path, method=method, **kwargs)


def test_unauthenticated_calls_are_refused(app: Any, api: Any) -> None:
    for method, rule in _routes(app):
        if EXPECTED.get((method, rule)) == PUBLIC or rule.startswith("/api/v1/uploads"):
            continue
        resp = _call(api, method, rule, _path(rule, {}), None)
        assert resp.status_code == 401, (method, rule)
        assert resp.get_json()["error"] == "auth.required"


@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_matrix(app: Any, api: Any, ids: dict[str, dict[str, str]], role: str) -> None:
    user = ROLES[role]
    other_street_markers = {
        ids["other"]["person_id"],
        ids["other"]["certificate_id"],
        ids["other"]["device_id"],
        str(demo_uuid("street", "110101002")),
    }
    for method, rule in _routes(app):
        allowed = EXPECTED[(method, rule)]
        if allowed == PUBLIC:
            continue
        roles_of_user = {role} | ({"officer"} if role == "captain" else set())
        permitted = bool(roles_of_user & set(allowed))
        for side in ("own", "other"):
            resp = _call(api, method, rule, _path(rule, ids[side]), user)
            body = resp.get_json(silent=True)
            body = body if isinstance(body, dict) else {}
            where = f"{role} {method} {rule} ({side})"
            if not permitted:
                assert resp.status_code == 403, where
                assert body.get("error") == "auth.forbidden", where
                continue
            assert body.get("error") != "auth.forbidden", where
            if side == "other" and "<" in rule:
                # another street's object does not exist for this caller
                assert (
                    resp.status_code == 404
                    or (method, rule) not in BODIES
                    and resp.status_code == 422
                ), (where, resp.status_code, body)
            text = resp.get_data(as_text=True)
            if resp.status_code < 400:
                leaked = [m for m in other_street_markers if m and m in text]
                assert not leaked, (where, leaked)
