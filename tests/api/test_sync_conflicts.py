"""A conflict concerns two officers: the one whose value was set aside and the one whose value
is in the record. Both see it and may resolve it, whichever side lost; reviewers and the
captain see the street's; nobody of another street sees it."""

from __future__ import annotations

from typing import Any

import pytest
from sync_phone import Phone, hlc  # type: ignore[import-not-found]

from fieldsync.demo import demo_uuid


def _conflict(api: Any, *, pusher_wins: bool) -> tuple[Phone, Phone, str, dict[str, Any]]:
    """A (cg_wang) and B (cg_liu) edit one description offline; A syncs first, then B. With
    `pusher_wins` B's clock is the later one (the quick tour: A's value is set aside on the
    server side), else A's is (B's own value is set aside)."""
    a, b = Phone(api, "cg_wang"), Phone(api, "cg_liu")
    iid = a.create(description="初稿")
    b.pull_all()
    edit_a = a.mutation(entity_id=iid, base_version=1, hlc=hlc(200 if pusher_wins else 300))
    edit_b = b.mutation(entity_id=iid, base_version=1, hlc=hlc(300 if pusher_wins else 200))
    [ra] = a.push({**edit_a, "set": {"description": "流动摊贩3处，已劝离"}})
    assert ra["status"] == "applied"
    [rb] = b.push({**edit_b, "set": {"description": "流动摊贩2处，已拍照"}})
    assert rb["status"] == "conflict", rb
    return a, b, iid, rb


def _person(username: str) -> str:
    return str(demo_uuid("person", username))


@pytest.mark.parametrize("pusher_wins", [True, False], ids=["server-value-lost", "device-lost"])
def test_both_officers_and_supervisors_see_it(api: Any, demo: Any, pusher_wins: bool) -> None:
    a, b, iid, result = _conflict(api, pusher_wins=pusher_wins)
    cid = result["conflict_id"]
    for phone in (a, b, Phone(api, "reviewer_liang"), Phone(api, "captain")):
        listed = phone.get("/conflicts", query_string={"open": "true"})
        assert listed.status_code == 200
        assert [c["id"] for c in listed.get_json()] == [cid], phone.username
        item = phone.get(f"/conflicts/{cid}")
        assert item.status_code == 200, phone.username
        body = item.get_json()
        assert body["entity_id"] == iid
        assert sorted(body["people"]) == sorted([_person("cg_wang"), _person("cg_liu")])
        lost = body["values"]["description"]
        assert lost["lost_side"] == ("server" if pusher_wins else "device")
        assert lost["lost"] == ("流动摊贩3处，已劝离" if pusher_wins else "流动摊贩2处，已拍照")
    # an officer of the street the conflict does not concern, and another street's users
    for username in ("police_li", "js_cg_xu", "js_captain"):
        phone = Phone(api, username)
        assert phone.get("/conflicts").get_json() == [], username
        missing = phone.get(f"/conflicts/{cid}")
        assert missing.status_code == 404
        assert missing.get_json()["error"] == "sync.conflict_not_found"


@pytest.mark.parametrize(
    ("who", "resolution"),
    [
        ("cg_wang", "take_lost"),
        ("cg_wang", "keep"),
        ("cg_liu", "take_lost"),
        ("cg_liu", "keep"),
        ("reviewer_liang", "take_lost"),
        ("captain", "keep"),
    ],
)
def test_each_may_resolve(api: Any, demo: Any, who: str, resolution: str) -> None:
    a, b, iid, result = _conflict(api, pusher_wins=True)
    cid = result["conflict_id"]
    phone = {"cg_wang": a, "cg_liu": b}.get(who) or Phone(api, who)
    resp = phone.post(f"/conflicts/{cid}/resolve", json={"resolution": resolution})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["resolution"] == resolution
    assert body["resolved_by_id"] == _person(who)

    record = next(c for c in a.pull_all() if c["id"] == iid)
    if resolution == "take_lost":
        assert record["data"]["description"] == "流动摊贩3处，已劝离"  # A's value is back
        assert record["version"] == result["version"] + 1
    else:
        assert record["data"]["description"] == "流动摊贩2处，已拍照"
        assert record["version"] == result["version"]
    for other in (a, b):
        assert other.get("/conflicts", query_string={"open": "true"}).get_json() == []
    again = b.post(f"/conflicts/{cid}/resolve", json={"resolution": "keep"})
    assert again.status_code == 409
    assert again.get_json()["error"] == "sync.conflict_resolved"


def test_another_street_cannot_resolve(api: Any, demo: Any) -> None:
    a, _b, iid, result = _conflict(api, pusher_wins=True)
    cid = result["conflict_id"]
    for username in ("js_captain", "js_cg_xu"):
        resp = Phone(api, username).post(
            f"/conflicts/{cid}/resolve", json={"resolution": "take_lost"}
        )
        assert resp.status_code == 404
        assert resp.get_json()["error"] == "sync.conflict_not_found"
    body = a.get(f"/conflicts/{cid}").get_json()
    assert body["resolved_at"] is None
    record = next(c for c in a.pull_all() if c["id"] == iid)
    assert record["version"] == result["version"]
    assert record["data"]["description"] == "流动摊贩2处，已拍照"
