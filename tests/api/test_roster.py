"""The roster's own rules: auxiliary forces never hold enforcement roles; a street always keeps
an active admin."""

from __future__ import annotations

from typing import Any

import pytest
from field_phone import pid  # type: ignore[import-not-found]


def _person(api: Any, username: str) -> dict[str, Any]:
    return api.get(f"/officers/{pid(username)}", "admin").get_json()


@pytest.mark.parametrize(
    ("username", "roles", "clash"),
    [
        ("grid_duofu1", ["grid_worker", "officer"], "officer"),
        ("grid_duofu1", ["grid_worker", "captain"], "captain"),
        ("cg_chen", ["officer", "grid_worker"], "officer"),
        ("handler_police", ["case_handler", "grid_worker"], "case_handler"),
    ],
)
def test_a_grid_worker_never_holds_an_enforcement_role(
    api: Any, demo: Any, username: str, roles: list[str], clash: str
) -> None:
    before = _person(api, username)
    resp = api.patch(f"/officers/{pid(username)}", "admin", json={"roles": roles})
    assert (resp.status_code, resp.get_json()["error"]) == (422, "org.auxiliary_cannot_enforce")
    assert clash in resp.get_json()["message"]
    assert _person(api, username) == before
    # so the rule never counts them: with cg_wang alone, CG-001 stays an investigation
    rule = api.post(
        "/rules/second-inspector",
        "cg_wang",
        json={
            "matter_code": "CG-001",
            "present": [pid("cg_wang"), pid("grid_duofu1")],
            "at": "2026-11-20T02:00:00Z",
        },
    ).get_json()
    assert rule["tier"] == "investigation"


def test_a_new_grid_worker_cannot_be_an_officer(api: Any, demo: Any) -> None:
    body = {
        "username": "grid_new",
        "password": "long enough password",
        "full_name": "新网格员",
        "roles": ["grid_worker", "officer"],
    }
    resp = api.post("/officers", "admin", json=body)
    assert (resp.status_code, resp.get_json()["error"]) == (422, "org.auxiliary_cannot_enforce")
    names = {p["username"] for p in api.get("/officers", "admin").get_json()}
    assert "grid_new" not in names
    assert (
        api.post("/officers", "admin", json={**body, "roles": ["grid_worker"]}).status_code == 201
    )
    # other roles go with grid_worker (a grid worker who also dispatches)
    both = {"roles": ["grid_worker", "dispatcher"]}
    assert api.patch(f"/officers/{pid('grid_duofu2')}", "admin", json=both).status_code == 200


@pytest.mark.parametrize(
    "change", [{"roles": ["officer"]}, {"active": False}, {"roles": ["reviewer"], "active": False}]
)
def test_the_last_admin_cannot_leave(api: Any, demo: Any, change: dict[str, Any]) -> None:
    me = pid("admin")
    resp = api.patch(f"/officers/{me}", "admin", json=change)
    assert (resp.status_code, resp.get_json()["error"]) == (409, "org.last_admin")
    assert "admin" in resp.get_json()["message"]
    after = _person(api, "admin")
    assert (after["roles"], after["active"]) == (["admin"], True)


def test_an_admin_can_leave_once_another_is_there(api: Any, demo: Any) -> None:
    # 景山's admin is another street's: it does not count for 东华门
    assert (
        api.patch(f"/officers/{pid('admin')}", "admin", json={"active": False}).status_code == 409
    )
    # an inactive admin does not count either
    promote = {"roles": ["reviewer", "admin"], "active": False}
    assert api.patch(f"/officers/{pid('reviewer_song')}", "admin", json=promote).status_code == 200
    assert (
        api.patch(f"/officers/{pid('admin')}", "admin", json={"active": False}).status_code == 409
    )
    resp = api.patch(f"/officers/{pid('reviewer_song')}", "admin", json={"active": True})
    assert resp.status_code == 200
    resp = api.patch(f"/officers/{pid('admin')}", "admin", json={"roles": ["dispatcher"]})
    assert resp.status_code == 200, resp.get_json()
    assert _person(api, "admin")["roles"] == ["dispatcher"]
    # and now reviewer_song is the last one
    again = api.patch(f"/officers/{pid('reviewer_song')}", "reviewer_song", json={"active": False})
    assert (again.status_code, again.get_json()["error"]) == (409, "org.last_admin")
