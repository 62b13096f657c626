"""The roster's own rules: auxiliary forces never hold enforcement roles; a street always keeps
an active admin; changes count from their instant for the rule (the roster as of occurred_at)."""

from __future__ import annotations

from typing import Any

import pytest
from field_phone import Device, new_id, pid  # type: ignore[import-not-found]

from fieldsync.clock import isoformat, utcnow
from fieldsync.demo import demo_uuid


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


def test_a_later_transfer_never_changes_an_earlier_inspection(api: Any, demo: Any) -> None:
    """The audit's sequence: an enforcement-tier inspection by cg_wang and cg_liu; the admin
    moves cg_liu to police; a later edit on the phone re-runs the rule: still enforcement."""
    phone = Device(api, "cg_wang")
    iid = new_id()
    first = phone.push_one(
        type="inspection.upsert",
        entity_id=iid,
        base_version=0,
        set={
            "matter_code": "CG-001",
            "occurred_at": "2026-11-20T02:00:00Z",
            "present": [pid("cg_wang"), pid("cg_liu")],
        },
    )
    assert first["data"]["tier"] == "enforcement"
    police = str(demo_uuid("department", "police"))
    moved = api.patch(f"/officers/{pid('cg_liu')}", "admin", json={"department_id": police})
    assert moved.status_code == 200, moved.get_json()
    edited = phone.push_one(
        type="inspection.upsert", entity_id=iid, base_version=1, set={"description": "补充描述"}
    )
    assert edited["status"] == "applied", edited
    assert (edited["data"]["tier"], edited["data"]["flags"]) == ("enforcement", [])
    assert edited["data"]["decisions"][0]["authorised_ids"] == sorted(
        [pid("cg_wang"), pid("cg_liu")]
    )
    # an inspection after the transfer sees cg_liu in police: second inspector
    after = phone.push_one(
        type="inspection.upsert",
        entity_id=new_id(),
        base_version=0,
        set={
            "matter_code": "CG-001",
            "occurred_at": isoformat(utcnow()),
            "present": [pid("cg_wang"), pid("cg_liu")],
        },
    )
    assert (after["data"]["tier"], after["data"]["second_inspector_id"]) == (
        "inspection",
        pid("cg_liu"),
    )


def test_a_deactivated_officer_no_longer_counts(api: Any, demo: Any) -> None:
    phone = Device(api, "cg_wang")
    iid = new_id()
    earlier = {"matter_code": "CG-001", "present": [pid("cg_wang"), pid("cg_liu")]}
    phone.push_one(
        type="inspection.upsert",
        entity_id=iid,
        base_version=0,
        set={**earlier, "occurred_at": "2026-11-20T02:00:00Z"},
    )
    gone = api.patch(f"/officers/{pid('cg_liu')}", "admin", json={"active": False})
    assert gone.status_code == 200, gone.get_json()
    later = phone.push_one(
        type="inspection.upsert",
        entity_id=new_id(),
        base_version=0,
        set={**earlier, "occurred_at": isoformat(utcnow())},
    )
    assert later["data"]["tier"] == "investigation"
    reasons = {(r["code"], r["person_id"]) for r in later["data"]["decisions"][0]["reasons"]}
    assert ("person.inactive", pid("cg_liu")) in reasons
    kept = phone.push_one(
        type="inspection.upsert", entity_id=iid, base_version=1, set={"description": "补充"}
    )
    assert kept["data"]["tier"] == "enforcement"
