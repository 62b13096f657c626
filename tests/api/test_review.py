"""The back office's review of an inspection (issue 4 §3, issue 5 §7): flagged ones are the
captain's (acknowledge | overrule), submitted unflagged ones a reviewer's or the captain's
(accept | reject | more_needed); the queue holds both and the photos awaiting review; every
review is on the trace and reaches the device on its next pull."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from conftest import PHOTOS
from field_phone import Device, new_id, pid  # type: ignore[import-not-found]
from test_upload_bad_input import Tus, empty_data_dir  # noqa: F401  (autouse fixture)

SEIZURE = {"items": [{"item": "三轮车", "quantity": 1, "unit": "辆"}], "receipt_no": "Z-9"}


def flagged(phone: Device) -> str:
    """A lone officer's seizure: beyond the investigation tier, so flagged for the captain."""
    iid, finding = new_id(), new_id()
    result = phone.push_one(
        type="inspection.upsert",
        entity_id=iid,
        base_version=0,
        set={
            "occurred_at": "2026-11-20T02:00:00Z",
            "present": [pid("cg_wang")],
            "findings": [{"id": finding, "matter_code": "CG-001"}],
            "measures": [
                {"id": new_id(), "type": "seizure", "finding_id": finding, "details": SEIZURE}
            ],
        },
    )
    assert result["data"]["review_state"] == "awaiting_captain", result
    return iid


def submitted(phone: Device, **extra: Any) -> str:
    """Two 城管 officers, street vending: enforcement, nothing flagged; submitted."""
    iid = new_id()
    resp = phone.push(
        {
            "type": "inspection.upsert",
            "entity_id": iid,
            "base_version": 0,
            "set": {
                "matter_code": "CG-001",
                "occurred_at": "2026-11-20T02:00:00Z",
                "present": [pid("cg_wang"), pid("cg_liu")],
                **extra,
            },
        },
        {"type": "inspection.submit", "entity_id": iid, "base_version": 1},
    )
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["results"][1]["data"]
    assert (data["flags"], data["review_state"]) == ([], "pending"), data
    return iid


def review(api: Any, iid: str, who: str, decision: str, note: str | None = None) -> Any:
    return api.post(f"/inspections/{iid}/review", who, json={"decision": decision, "note": note})


def refused(resp: Any) -> tuple[int, str]:
    return resp.status_code, resp.get_json()["error"]


def queue(api: Any, who: str, **query: Any) -> tuple[list[dict[str, Any]], int]:
    resp = api.get("/review-queue", who, query_string=query)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json(), json.loads(resp.headers["X-Pagination"])["total"]


@pytest.fixture
def phone(api: Any, demo: Any) -> Device:
    return Device(api, "cg_wang")


@pytest.mark.parametrize(("decision", "note"), [("acknowledge", None), ("overrule", "无需暂扣")])
def test_the_captain_decides_a_flagged_inspection(
    api: Any, phone: Device, decision: str, note: str | None
) -> None:
    iid = flagged(phone)
    version = api.get(f"/inspections/{iid}", "captain").get_json()["version"]
    resp = review(api, iid, "captain", decision, note)
    assert resp.status_code == 200, resp.get_json()
    state = {"acknowledge": "acknowledged", "overrule": "overruled"}[decision]
    assert (resp.get_json()["review_state"], resp.get_json()["version"]) == (state, version + 1)
    seen = phone.pulled(iid)
    assert seen["review_state"] == state
    assert {k: seen["review"][k] for k in ("decision", "note", "by")} == {
        "decision": decision,
        "note": note,
        "by": pid("captain"),
    }
    assert len(seen["measures"]) == 1  # nothing done in the field is dropped
    events = api.get(f"/inspections/{iid}", "reviewer_liang").get_json()["events"]
    assert events[-1]["action"] == f"inspection.review.{decision}"
    assert events[-1]["changes"] == {"review_state": ["awaiting_captain", state], "note": note}
    assert events[-1]["person_id"] == pid("captain") and events[-1]["version"] == version + 1
    assert refused(review(api, iid, "captain", "acknowledge")) == (
        409,
        "inspection.review_not_pending",
    )


@pytest.mark.parametrize(
    ("who", "decision", "note"),
    [
        ("reviewer_liang", "accept", None),
        ("reviewer_song", "reject", "现场照片不清晰，无法认定"),
        ("captain", "more_needed", "请补充当事人身份信息"),
        ("captain", "accept", "  "),  # a note is optional for accept; blank is none
    ],
)
def test_a_reviewer_or_the_captain_decides_an_unflagged_inspection(
    api: Any, phone: Device, who: str, decision: str, note: str | None
) -> None:
    iid = submitted(phone)
    resp = review(api, iid, who, decision, note)
    assert resp.status_code == 200, resp.get_json()
    state = {"accept": "accepted", "reject": "rejected", "more_needed": "more_needed"}[decision]
    seen = phone.pulled(iid)
    assert (seen["review_state"], seen["review"]["decision"]) == (state, decision)
    assert seen["review"]["note"] == ((note or "").strip() or None)
    assert seen["review"]["by"] == pid(who)
    events = api.get(f"/inspections/{iid}", "captain").get_json()["events"]
    assert events[-1]["action"] == f"inspection.review.{decision}"
    assert events[-1]["changes"]["review_state"] == ["pending", state]
    assert refused(review(api, iid, "captain", "accept")) == (409, "inspection.review_not_pending")


def test_refusals_change_nothing(api: Any, phone: Device) -> None:
    flagged_id, pending_id = flagged(phone), submitted(phone)
    before = {
        i: api.get(f"/inspections/{i}", "captain").get_json() for i in (flagged_id, pending_id)
    }
    cases = [
        # a flagged inspection is the captain's alone, in the captain's words
        (flagged_id, "reviewer_liang", "acknowledge", None, 403, "inspection.review_captain_only"),
        (flagged_id, "reviewer_liang", "accept", None, 403, "inspection.review_captain_only"),
        (flagged_id, "captain", "accept", None, 409, "inspection.review_wrong_decision"),
        (flagged_id, "captain", "overrule", None, 422, "inspection.review_note_required"),
        (flagged_id, "captain", "overrule", "  ", 422, "inspection.review_note_required"),
        # an unflagged one is decided as evidence is
        (pending_id, "captain", "acknowledge", "ok", 409, "inspection.review_wrong_decision"),
        (pending_id, "reviewer_liang", "overrule", "x", 409, "inspection.review_wrong_decision"),
        (pending_id, "reviewer_liang", "reject", None, 422, "inspection.review_note_required"),
        (pending_id, "reviewer_liang", "more_needed", "", 422, "inspection.review_note_required"),
    ]
    for iid, who, decision, note, status, code in cases:
        assert refused(review(api, iid, who, decision, note)) == (status, code), (who, decision)
    for who in ("handler_chengguan", "cg_wang", "admin"):
        assert refused(review(api, pending_id, who, "accept")) == (403, "auth.forbidden")
    bad = api.post(f"/inspections/{pending_id}/review", "captain", json={"decision": "approve"})
    assert refused(bad) == (422, "request.invalid")
    for iid, was in before.items():
        assert api.get(f"/inspections/{iid}", "captain").get_json() == was


def test_a_draft_is_not_awaiting_review(api: Any, phone: Device) -> None:
    iid = new_id()
    phone.push_one(type="inspection.upsert", entity_id=iid, set={"matter_code": "CG-001"})
    assert refused(review(api, iid, "captain", "accept")) == (409, "inspection.review_not_pending")
    assert iid not in {item["id"] for item in queue(api, "captain")[0]}


def test_an_archived_inspection_is_never_reviewed(api: Any, phone: Device) -> None:
    iid = submitted(phone)
    (case,) = api.get("/cases", "captain", query_string={"inspection_id": iid}).get_json()
    for action, who, body in (
        ("file", "handler_chengguan", {}),
        ("conclude", "handler_chengguan", {"decision": "罚款", "summary": "已整改"}),
        ("archive", "captain", {}),
    ):
        assert api.post(f"/cases/{case['id']}/{action}", who, json=body).status_code == 200
    assert refused(review(api, iid, "reviewer_liang", "accept")) == (409, "inspection.archived")
    assert iid not in {item["id"] for item in queue(api, "reviewer_liang")[0]}
    assert api.get(f"/inspections/{iid}", "captain").get_json()["review_state"] == "pending"


def _photo(api: Any, name: str) -> str:
    data = (PHOTOS / name).read_bytes()
    assert Tus(api, "cg_wang").upload(data, filename=name).status_code == 204
    return hashlib.sha256(data).hexdigest()


def test_the_queue_holds_what_each_role_may_decide(api: Any, phone: Device) -> None:
    first_photo = _photo(api, "jpg_gps_DSCN0010.jpg")
    waiting = submitted(phone)
    captains = flagged(phone)
    second_photo = _photo(api, "jpg_gps_DSCN0012.jpg")

    items, total = queue(api, "captain")
    assert total == 4
    assert [(i["kind"], i["id"]) for i in items[:1]] == [("inspection", captains)]  # flagged first
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {captains, waiting, first_photo, second_photo}
    assert by_id[captains]["decisions"] == ["acknowledge", "overrule"]
    assert by_id[captains]["review_state"] == "awaiting_captain"
    assert by_id[waiting]["decisions"] == ["accept", "reject", "more_needed"]
    assert by_id[waiting]["inspection"]["id"] == waiting and "evidence" not in by_id[waiting]
    assert by_id[first_photo]["kind"] == "evidence"
    assert by_id[first_photo]["evidence"]["sha256"] == first_photo
    assert by_id[first_photo]["review_state"] == "pending"
    # after the flagged one, oldest first: the first photo came before the inspection
    assert [i["id"] for i in items[1:]] == [first_photo, waiting, second_photo]

    # a reviewer never sees what only the captain may decide
    items, total = queue(api, "reviewer_liang")
    assert total == 3 and captains not in {i["id"] for i in items}

    # pages: the total counts both kinds, and every item comes once
    seen = []
    for page in (1, 2, 3):
        items, total = queue(api, "captain", page=page, page_size=2)
        assert total == 4
        seen += [i["id"] for i in items]
    assert seen == [captains, first_photo, waiting, second_photo]

    # decided, an item leaves the queue
    assert review(api, captains, "captain", "acknowledge").status_code == 200
    assert review(api, waiting, "reviewer_liang", "accept").status_code == 200
    done = api.post(
        f"/evidence/{first_photo}/review", "reviewer_liang", json={"decision": "accept"}
    )
    assert done.status_code == 200, done.get_json()
    items, total = queue(api, "captain")
    assert (total, [i["id"] for i in items]) == (1, [second_photo])


def test_more_needed_comes_back_when_the_officer_brings_more(api: Any, phone: Device) -> None:
    iid = submitted(phone)
    assert review(api, iid, "reviewer_liang", "more_needed", "请补拍").status_code == 200
    assert iid not in {i["id"] for i in queue(api, "reviewer_liang")[0]}
    assert phone.pulled(iid)["review_state"] == "more_needed"
    photo = _photo(api, "jpg_gps_DSCN0021.jpg")
    version = api.get(f"/inspections/{iid}", "captain").get_json()["version"]
    # submitted: the phone's addition is set aside as a conflict for the back office
    pushed = phone.push_one(
        type="inspection.upsert", entity_id=iid, base_version=version, add={"evidence": [photo]}
    )
    assert pushed["status"] == "conflict", pushed
    taken = api.post(
        f"/conflicts/{pushed['conflict_id']}/resolve",
        "reviewer_liang",
        json={"resolution": "take_lost"},
    )
    assert taken.status_code == 200, taken.get_json()
    seen = phone.pulled(iid)
    assert (seen["evidence"], seen["review_state"]) == ([photo], "pending")
    assert iid in {i["id"] for i in queue(api, "reviewer_liang")[0]}


def test_the_flagged_filter_and_review_states(api: Any, phone: Device) -> None:
    captains, waiting = flagged(phone), submitted(phone)

    def ids(**query: Any) -> set[str]:
        return {i["id"] for i in api.get("/inspections", "captain", query_string=query).get_json()}

    assert ids(flagged="true") == {captains}
    assert ids(flagged="false") == {waiting}
    assert ids(review_state="pending") == {waiting}
    review(api, waiting, "reviewer_liang", "accept")
    review(api, captains, "captain", "overrule", "不应暂扣")
    assert ids(review_state="accepted") == {waiting}
    assert ids(flagged="true") == {captains}
    assert ids(review_state="overruled") == {captains}
