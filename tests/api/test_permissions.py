"""Every endpoint × every role × a caller of each street × the caller's own street's real
object and the other street's: the real 2xx, or 403/404 with nothing of the other street in
the body. The expected table is written here and in the area modules (permissions_*.py), by
hand, so a change of the code's declarations that is not also made here fails."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from permissions_extra import merged  # type: ignore[import-not-found]
from permissions_world import TUS, Caller, Street, World  # type: ignore[import-not-found]
from sqlalchemy import text

from fieldsync.demo import password_for

ROLES = ("officer", "grid_worker", "dispatcher", "case_handler", "reviewer", "captain", "admin")
ALSO = {"captain": {"officer"}}  # the demo captains are officers in the field too
ALL = frozenset(ROLES)
ROSTER = frozenset({"admin", "captain", "dispatcher", "reviewer", "case_handler"})
PUBLIC = "public"
OK = "2xx"

TRANSFER = "/api/v1/officers/<uuid:person_id>/transfer"
# (method, path rule) -> roles the role gate lets through
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
    ("POST", TRANSFER): {"admin"},
    ("POST", "/api/v1/certificates/<uuid:certificate_id>/revoke"): {"admin"},
    ("GET", "/api/v1/sync/pull"): ALL,
    ("POST", "/api/v1/sync/push"): ALL,
    ("GET", "/api/v1/conflicts"): ALL,
    ("GET", "/api/v1/conflicts/<uuid:conflict_id>"): ALL,
    ("POST", "/api/v1/conflicts/<uuid:conflict_id>/resolve"): ALL,
    ("GET", "/api/v1/quarantine"): ALL,
}
CONFLICT = "/api/v1/conflicts/<uuid:conflict_id>"
# on the caller's own street, what a role the gate lets through gets instead of a 2xx
OWN: dict[tuple[str, str], dict[str, int]] = {
    # a device sees its own user's conflicts (the officer's, here); reviewers and the captain
    # the street's
    ("GET", CONFLICT): {r: 404 for r in ("grid_worker", "dispatcher", "case_handler", "admin")},
    ("POST", CONFLICT + "/resolve"): {
        r: 404 for r in ("grid_worker", "dispatcher", "case_handler", "admin")
    },
    # a move to the street the person is on: the gate and the lookup are what is tested here,
    # a real move (which would take the person out of the table's world) in test_transfer
    ("POST", TRANSFER): {"admin": 409},
}


class Ctx:
    """What a request builder knows: the caller, the street of the object, a counter."""

    def __init__(self, caller: Caller, target: Street, counter: Iterator[int]) -> None:
        self.caller, self.target, self.counter = caller, target, counter


def _new_officer(ctx: Ctx) -> dict[str, Any]:
    username = f"matrix_{ctx.caller.street}_{next(ctx.counter)}"
    body = {"username": username, "password": password_for(username)}
    return {"json": {**body, "full_name": "矩阵", "roles": ["officer"]}}


def _new_certificate(ctx: Ctx) -> dict[str, Any]:
    number = f"MATRIX-NEW-{ctx.caller.street}-{next(ctx.counter)}"
    period = {"valid_from": "2026-01-01T00:00:00Z", "valid_to": "2027-01-01T00:00:00Z"}
    return {"json": {"number": number, **period}}


def _push(ctx: Ctx) -> dict[str, Any]:
    return {"json": {"protocol": 1, "device_id": ctx.caller.device_id, "mutations": []}}


# what each call sends (a valid body, headers), so that an allowed call gets its real 2xx
REQUESTS: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/devices/<uuid:device_id>/revoke"): {"json": {"reason": "matrix"}},
    ("POST", "/api/v1/officers"): _new_officer,
    ("PATCH", "/api/v1/officers/<uuid:person_id>"): {"json": {"phone": "13800000000"}},
    ("POST", "/api/v1/officers/<uuid:person_id>/certificates"): _new_certificate,
    ("POST", "/api/v1/certificates/<uuid:certificate_id>/revoke"): {"json": {"reason": "调岗"}},
    ("POST", "/api/v1/sync/push"): _push,
    ("POST", TRANSFER): lambda ctx: {"json": {"street_id": ctx.target.ids["street"]}},
    ("POST", CONFLICT + "/resolve"): {"json": {"resolution": "keep"}},
}
# which object a parameter stands for when it is not the parameter's own (a case in a state)
PARAMS: dict[tuple[str, str], dict[str, str]] = {}
# the object a 2xx uses up, made again for the next caller
CONSUMES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/certificates/<uuid:certificate_id>/revoke"): "certificate_id",
    ("POST", CONFLICT + "/resolve"): "conflict_id",
}

# each area keeps its rows in its own module, merged by permissions_extra
EXPECTED.update(merged("EXPECTED"))
OWN.update(merged("OWN"))
REQUESTS.update(merged("REQUESTS"))
PARAMS.update(merged("PARAMS"))
CONSUMES.update(merged("CONSUMES"))


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
    for table in (OWN, REQUESTS, PARAMS, CONSUMES):
        assert set(table) <= routes, "rows for endpoints that do not exist"


def _path(method: str, rule: str, street: Street) -> str:
    keys = PARAMS.get((method, rule), {})
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: street.ids[keys.get(m.group(1), m.group(1))], rule)


def _request(method: str, rule: str, ctx: Ctx) -> dict[str, Any]:
    spec = REQUESTS.get((method, rule), {})
    kwargs = dict(spec(ctx) if callable(spec) else spec)
    if method in ("POST", "PATCH", "PUT") and not {"json", "data"} & set(kwargs):
        kwargs["json"] = {}
    return kwargs


def expected(role: str, method: str, rule: str, side: str) -> Any:
    allowed = EXPECTED[(method, rule)]
    if not ({role} | ALSO.get(role, set())) & set(allowed):
        return 403
    if side == "other":
        return 404  # another street's object does not exist for the caller
    return OWN.get((method, rule), {}).get(role, OK)


@pytest.fixture
def sealed_cleanup(app: Any) -> Iterator[None]:
    """Archived cases and sealed inspections refuse DELETE (SQLite's DELETE FROM fires the
    triggers; PostgreSQL's TRUNCATE does not): lift the triggers to clean up, then restore."""
    yield
    from fieldsync.cases.triggers import create_triggers, drop_triggers

    with app.extensions["fieldsync"].engine.begin() as conn:
        drop_triggers(conn)
        conn.execute(text("DELETE FROM case_officers"))
        conn.execute(text("DELETE FROM cases"))
        conn.execute(text("DELETE FROM inspections"))
        create_triggers(conn)


@pytest.fixture
def world(app: Any, api: Any, demo: Any, sealed_cleanup: None) -> World:
    from fieldsync.jobs import make_derivatives

    return World(api.client, lambda: make_derivatives(app.extensions["fieldsync"]))


def test_unauthenticated_calls_are_refused(app: Any, api: Any) -> None:
    for method, rule in _routes(app):
        if EXPECTED.get((method, rule)) == PUBLIC:
            continue
        path = re.sub(r"<uuid:\w+>", lambda _: str(uuid.uuid4()), rule).replace(
            "<sha256>", "0" * 64
        )
        resp = api.client.open(path, method=method, headers=TUS)
        assert resp.status_code == 401, (method, rule, resp.status_code)
        assert resp.get_json()["error"] == "auth.required", (method, rule)


def markers_are_real(world: World) -> None:
    """Each street's objects are visible to its own people: their absence from the other
    street's answers means something."""
    for street in world.streets.values():
        c = street.callers
        reads = [
            (c["officer"], "/sync/pull"),
            (c["captain"], "/sync/pull"),
            (c["captain"], "/inspections?page_size=100"),
            (c["captain"], "/reports?page_size=100"),
            (c["captain"], "/cases?page_size=100"),
            (c["captain"], "/conflicts?page_size=100"),
            (c["captain"], "/quarantine?page_size=100"),
            (c["captain"], "/evidence"),
            (c["captain"], f"/evidence/{street.ids['sha256']}"),
            (c["admin"], "/devices"),
            (c["admin"], "/officers"),
            (c["officer"], f"/uploads/{street.ids['upload_id']}"),
            (c["officer"], f"/uploads/{street.ids['upload:done']}"),
        ]
        seen = "".join(world.ok(who, "GET", path).get_data(as_text=True) for who, path in reads)
        assert {m for m in street.markers if m not in seen} == set(), street.name
    assert world.streets["A"].markers.isdisjoint(world.streets["B"].markers)


def test_permission_matrix(app: Any, world: World) -> None:
    markers_are_real(world)
    counter = itertools.count()
    failures = []
    for role in ROLES:
        for caller_street, street in world.streets.items():
            caller = street.callers[role]
            for method, rule in _routes(app):
                if EXPECTED[(method, rule)] == PUBLIC:
                    continue
                # a path naming an object: the caller's street's, then the other street's
                targets = (street, world.streets[other_of(caller_street)])
                for target in targets if "<" in rule else targets[:1]:
                    failures += _check(world, role, caller, method, rule, target, counter)
    assert failures == [], "\n" + "\n".join(failures)


def _check(
    world: World,
    role: str,
    caller: Caller,
    method: str,
    rule: str,
    target: Street,
    counter: Iterator[int],
) -> list[str]:
    """One call: its status against the table, and nothing of the other street in its body
    but what the caller named itself."""
    side = "own" if target.name == caller.street else "other"
    path = _path(method, rule, target)
    resp = world.call(caller, method, path, **_request(method, rule, Ctx(caller, target, counter)))
    want, got = expected(role, method, rule, side), resp.status_code
    body = resp.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    where = f"{caller.username} {method} {path} ({side})"
    failures = []
    if (want == OK and not 200 <= got < 300) or (want != OK and got != want):
        failures.append(f"{where}: {got} {error}, expected {want}")
    elif want == 403 and role not in OWN.get((method, rule), {}) and error != "auth.forbidden":
        failures.append(f"{where}: 403 {error}, expected auth.forbidden")
    data = resp.get_data()
    markers = world.streets[other_of(caller.street)].markers
    leaked = [m for m in markers if m.encode() in data and m not in path]
    if leaked:
        failures.append(f"{where}: leaks {leaked}")
    if 200 <= got < 300 and (method, rule) in CONSUMES:
        world.renew(target, CONSUMES[(method, rule)])
    return failures


def other_of(street: str) -> str:
    return "B" if street == "A" else "A"
