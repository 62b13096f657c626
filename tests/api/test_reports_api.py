"""Grid workers' reports (事件上报) in the back office: the street's list (filters, pages), one
with its trace, and assignment by the dispatcher or the captain — which moves the report off
the former assignee's phone (delete / out_of_scope) onto the new one's, and leaves nothing
behind when it is refused."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from conftest import BACKEND
from field_phone import Device, new_id, pid  # type: ignore[import-not-found]

from fieldsync.demo import demo_uuid, grid_code

DUOFU = "110101001001"
GRID_1, GRID_2 = (str(demo_uuid("grid", grid_code(DUOFU, n))) for n in (1, 2))
SHAOJIU_1 = str(demo_uuid("grid", grid_code("110101001002", 1)))
JIXIANG_1 = str(demo_uuid("grid", grid_code("110101002001", 1)))


def report(
    phone: Device,
    *,
    grid: str = GRID_1,
    at: str = "2026-11-20T02:00:00Z",
    submit: bool = True,
    description: str = "占道经营：水果摊",
) -> str:
    rid = new_id()
    values = {"description": description, "grid_id": grid, "occurred_at": at, "category": "市容"}
    made = phone.push_one(type="report.upsert", entity_id=rid, base_version=0, set=values)
    assert made["status"] == "applied", made
    if submit:
        done = phone.push_one(type="report.submit", entity_id=rid, base_version=1)
        assert done["data"]["status"] == "submitted", done
    return rid


def listed(api: Any, who: str, **query: Any) -> tuple[list[str], int]:
    resp = api.get("/reports", who, query_string=query)
    assert resp.status_code == 200, resp.get_json()
    return [r["id"] for r in resp.get_json()], json.loads(resp.headers["X-Pagination"])["total"]


def detail(api: Any, rid: str, who: str = "captain") -> dict[str, Any]:
    resp = api.get(f"/reports/{rid}", who)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def assign(
    api: Any,
    rid: str,
    to: str,
    who: str = "dispatcher",
    headers: dict[str, str] | None = None,
    **body: Any,
) -> Any:
    return api.post(
        f"/reports/{rid}/assign", who, json={"assignee_id": to, **body}, headers=headers
    )


def state(api: Any, rid: str, who: str = "captain") -> tuple[int, str, int]:
    """What a refused request must leave as it was: version, assignee, the trace's length."""
    data = detail(api, rid, who)
    return data["version"], data["assignee_id"], len(data["events"])


def of(changes: list[dict[str, Any]], rid: str) -> list[tuple[str, str | None]]:
    return [(c["op"], c.get("reason")) for c in changes if c["id"] == rid]


@pytest.fixture
def grid1(api: Any, demo: Any) -> Device:
    return Device(api, "grid_duofu1")


# --- the list ---------------------------------------------------------------------------------


def test_the_streets_reports_newest_first_with_filters_and_pages(api: Any, grid1: Device) -> None:
    first = report(grid1, at="2026-11-18T02:00:00Z")
    draft = report(grid1, at="2026-11-19T02:00:00Z", submit=False)
    other_grid = report(Device(api, "grid_shaojiu1"), grid=SHAOJIU_1, at="2026-11-20T02:00:00Z")
    last = report(grid1, grid=GRID_2, at="2026-11-21T02:00:00Z")
    report(Device(api, "js_grid_jixiang1"), grid=JIXIANG_1)  # 景山's: never in 东华门's list
    everything = [last, other_grid, draft, first]

    for who in ("dispatcher", "captain", "cg_wang", "reviewer_liang", "admin"):
        assert listed(api, who) == (everything, 4), who
    assert listed(api, "js_captain")[1] == 1

    assert listed(api, "dispatcher", status="draft") == ([draft], 1)
    assert listed(api, "dispatcher", status="submitted")[0] == [last, other_grid, first]
    assert listed(api, "dispatcher", assignee_id=pid("grid_shaojiu1")) == ([other_grid], 1)
    assert listed(api, "dispatcher", grid_id=GRID_2) == ([last], 1)
    # occurred_at in [from, to)
    window = {"from": "2026-11-19T02:00:00Z", "to": "2026-11-21T02:00:00Z"}
    assert listed(api, "dispatcher", **window) == ([other_grid, draft], 2)
    assert listed(api, "dispatcher", grid_id=GRID_1, status="submitted") == ([first], 1)

    pages = [listed(api, "dispatcher", page=n, page_size=3) for n in (1, 2)]
    assert pages == [(everything[:3], 4), (everything[3:], 4)]

    # a report deleted on the phone (a draft) is gone from the list
    gone = grid1.push_one(type="report.delete", entity_id=draft, base_version=1)
    assert gone["status"] == "applied", gone
    assert listed(api, "dispatcher") == ([last, other_grid, first], 3)


@pytest.mark.parametrize(
    "query",
    [
        {"state": "submitted"},  # not a parameter of this list
        {"status": "archived"},
        {"assignee_id": "nobody"},
        {"from": "2026-11-19T02:00:00"},  # no offset
    ],
)
def test_a_bad_query_is_refused(api: Any, demo: Any, query: dict[str, str]) -> None:
    resp = api.get("/reports", "dispatcher", query_string=query)
    assert (resp.status_code, resp.get_json()["error"]) == (422, "request.invalid")


def test_grid_workers_use_their_phones_not_the_back_office_list(api: Any, grid1: Device) -> None:
    rid = report(grid1)
    for path in ("/reports", f"/reports/{rid}"):
        resp = api.get(path, "grid_duofu1")
        assert (resp.status_code, resp.get_json()["error"]) == (403, "auth.forbidden")


# --- one report and its trace -------------------------------------------------------------------


def test_one_report_with_its_trace(api: Any, grid1: Device) -> None:
    rid = report(grid1)
    resp = assign(api, rid, pid("grid_duofu2"), note="属二网格")
    assert resp.status_code == 200, resp.get_json()

    data = detail(api, rid)
    assert (data["id"], data["status"], data["version"]) == (rid, "submitted", 3)
    assert (data["created_by_id"], data["assignee_id"]) == (pid("grid_duofu1"), pid("grid_duofu2"))
    assert (data["grid_id"], data["description"]) == (GRID_1, "占道经营：水果摊")
    events = data["events"]
    assert [(e["action"], e["version"]) for e in events] == [
        ("report.upsert", 1),
        ("report.submit", 2),
        ("report.assign", 3),
    ]
    handover = events[-1]
    assert handover["person_id"] == pid("dispatcher")
    assert handover["changes"] == {
        "assignee_id": [pid("grid_duofu1"), pid("grid_duofu2")],
        "note": "属二网格",
    }
    assert handover["device_id"] and handover["server_time"]


def test_another_streets_report_does_not_exist(api: Any, grid1: Device) -> None:
    rid = report(grid1, description="东华门的秘密")
    for who in ("js_captain", "js_cg_xu", "admin_jingshan"):
        resp = api.get(f"/reports/{rid}", who)
        assert (resp.status_code, resp.get_json()["error"]) == (404, "report.not_found"), who
        body = resp.get_data(as_text=True)
        for secret in ("东华门的秘密", GRID_1, pid("grid_duofu1")):
            assert secret not in body, who


def test_a_deleted_report_is_not_found(api: Any, grid1: Device) -> None:
    rid = report(grid1, submit=False)
    grid1.push_one(type="report.delete", entity_id=rid, base_version=1)
    resp = api.get(f"/reports/{rid}", "captain")
    assert (resp.status_code, resp.get_json()["error"]) == (404, "report.not_found")
    resp = assign(api, rid, pid("grid_duofu2"))
    assert (resp.status_code, resp.get_json()["error"]) == (404, "report.not_found")


# --- assignment and what the phones see -------------------------------------------------------


def test_assignment_moves_the_report_from_one_phone_to_another(api: Any, grid1: Device) -> None:
    grid2, officer, captain = (Device(api, u) for u in ("grid_duofu2", "cg_wang", "captain"))
    rid = report(grid1)
    for phone in (grid1, grid2, officer, captain):
        phone.pull_all()
    assert detail(api, rid)["version"] == 2

    resp = assign(api, rid, pid("grid_duofu2"), note="属二网格")
    assert resp.status_code == 200, resp.get_json()
    assert (resp.get_json()["version"], resp.get_json()["assignee_id"]) == (3, pid("grid_duofu2"))

    # the former assignee's phone: the report leaves it
    assert of(grid1.pull_all(), rid) == [("delete", "out_of_scope")]
    # the new one's: it arrives, at the new version
    arrived = [c for c in grid2.pull_all() if c["id"] == rid]
    assert [(c["op"], c["version"]) for c in arrived] == [("upsert", 3)]
    assert arrived[0]["data"]["assignee_id"] == pid("grid_duofu2")
    # the street's staff still have it, at the new version
    for phone in (officer, captain):
        assert phone.pulled(rid)["assignee_id"] == pid("grid_duofu2")

    # the former assignee's queued edit is refused now; the queue goes on
    late = grid1.push_one(
        type="report.upsert", entity_id=rid, base_version=2, set={"address": "多福巷 3 号"}
    )
    assert (late["status"], late["code"]) == ("rejected", "sync.not_in_scope")

    # the captain hands it to an officer, and back to a grid worker
    for to, version in (("cg_liu", 4), ("grid_duofu1", 5)):
        resp = assign(api, rid, pid(to), who="captain")
        assert (resp.status_code, resp.get_json()["version"]) == (200, version), resp.get_json()
    assert of(grid2.pull_all(), rid) == [("delete", "out_of_scope")]
    assert [c["version"] for c in grid1.pull_all() if c["id"] == rid] == [5]
    actions = [(e["action"], e["person_id"]) for e in detail(api, rid)["events"]]
    assert actions[-3:] == [
        ("report.assign", pid("dispatcher")),
        ("report.assign", pid("captain")),
        ("report.assign", pid("captain")),
    ]


@pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="SQLite serialises whole write transactions (BEGIN IMMEDIATE): two assignments never "
    "overlap",
)
def test_two_assignments_at_once_apply_one_after_the_other(
    api: Any, grid1: Device, monkeypatch: Any
) -> None:
    """The dispatcher's assignment holds the report; the captain's, sent meanwhile, waits for it
    and applies on top: each its own version and event, neither lost, the trace a chain."""
    from fieldsync.inspections import reports

    rid = report(grid1)
    decided = reports.decide_assignment
    first_holds, release = threading.Event(), threading.Event()

    def slow_first(**kwargs: Any) -> Any:
        if not first_holds.is_set():
            first_holds.set()  # the report is locked by now
            assert release.wait(timeout=30)
        return decided(**kwargs)

    monkeypatch.setattr(reports, "decide_assignment", slow_first)
    answers: dict[str, Any] = {}

    def send(who: str, to: str) -> None:
        answers[who] = assign(api, rid, pid(to), who=who)

    first = threading.Thread(target=send, args=("dispatcher", "grid_duofu2"))
    first.start()
    assert first_holds.wait(timeout=30)
    second = threading.Thread(target=send, args=("captain", "cg_liu"))
    second.start()
    second.join(timeout=1.0)
    waited = second.is_alive()
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert waited, "the second assignment did not wait for the first"
    assert (answers["dispatcher"].status_code, answers["captain"].status_code) == (200, 200)
    assert (
        answers["dispatcher"].get_json()["version"],
        answers["captain"].get_json()["version"],
    ) == (3, 4)

    shown = detail(api, rid)
    assert (shown["version"], shown["assignee_id"]) == (4, pid("cg_liu"))
    handovers = [
        (e["version"], e["person_id"], e["changes"]["assignee_id"])
        for e in shown["events"]
        if e["action"] == "report.assign"
    ]
    assert handovers == [
        (3, pid("dispatcher"), [pid("grid_duofu1"), pid("grid_duofu2")]),
        (4, pid("captain"), [pid("grid_duofu2"), pid("cg_liu")]),
    ]


def test_assigning_to_the_current_assignee_changes_nothing(api: Any, grid1: Device) -> None:
    grid2 = Device(api, "grid_duofu2")
    rid = report(grid1)
    assert assign(api, rid, pid("grid_duofu2")).status_code == 200
    for phone in (grid1, grid2):
        phone.pull_all()
    before = state(api, rid)

    for who in ("dispatcher", "captain"):
        resp = assign(api, rid, pid("grid_duofu2"), who=who, note="again")
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["version"] == before[0]
    assert state(api, rid) == before
    assert of(grid1.pull_all(), rid) == [] and of(grid2.pull_all(), rid) == []


# --- refusals: a stable code, both languages, nothing changed ---------------------------------


def _deactivated(api: Any, username: str) -> str:
    resp = api.patch(f"/officers/{pid(username)}", "admin", json={"active": False})
    assert resp.status_code == 200, resp.get_json()
    return pid(username)


REFUSALS = [
    # (assignee, status, code)
    (lambda api: new_id(), 422, "report.assignee_unknown"),
    (lambda api: pid("js_grid_jixiang1"), 422, "report.assignee_unknown"),  # 景山's
    (lambda api: _deactivated(api, "grid_duofu3"), 422, "report.assignee_inactive"),
    (lambda api: pid("dispatcher"), 422, "report.assignee_not_eligible"),
    (lambda api: pid("reviewer_liang"), 422, "report.assignee_not_eligible"),
    (lambda api: pid("handler_chengguan"), 422, "report.assignee_not_eligible"),
    (lambda api: pid("admin"), 422, "report.assignee_not_eligible"),
]


@pytest.mark.parametrize(("assignee", "status", "code"), REFUSALS)
def test_a_refused_assignee_changes_nothing(
    api: Any, grid1: Device, assignee: Any, status: int, code: str
) -> None:
    rid = report(grid1)
    grid1.pull_all()
    to = assignee(api)
    before = state(api, rid)
    messages = set()
    for lang in ("zh-CN", "en"):
        resp = api.post(
            f"/reports/{rid}/assign",
            "dispatcher",
            json={"assignee_id": to},
            headers={"Accept-Language": lang},
        )
        assert (resp.status_code, resp.get_json()["error"]) == (status, code), resp.get_json()
        assert to in resp.get_json()["message"]
        messages.add(resp.get_json()["message"])
    assert len(messages) == 2  # one per language
    assert state(api, rid) == before
    assert of(grid1.pull_all(), rid) == []


def test_a_draft_is_not_assigned(api: Any, grid1: Device) -> None:
    rid = report(grid1, submit=False)
    grid1.pull_all()
    before = state(api, rid)
    resp = assign(api, rid, pid("grid_duofu2"), headers={"Accept-Language": "zh-CN"})
    assert (resp.status_code, resp.get_json()["error"]) == (409, "report.not_submitted")
    assert "草稿" in resp.get_json()["message"]
    assert state(api, rid) == before
    assert of(grid1.pull_all(), rid) == []
    # the author goes on writing it
    more = grid1.push_one(
        type="report.upsert", entity_id=rid, base_version=1, set={"address": "多福巷 3 号"}
    )
    assert more["status"] == "applied", more


def test_another_streets_report_is_not_assigned(api: Any, grid1: Device) -> None:
    rid = report(grid1)
    before = state(api, rid)
    for to in (pid("js_grid_jixiang1"), pid("grid_duofu2")):
        resp = assign(api, rid, to, who="js_captain")
        assert (resp.status_code, resp.get_json()["error"]) == (404, "report.not_found")
        assert pid("grid_duofu1") not in resp.get_data(as_text=True)
    assert state(api, rid) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"assignee_id": "nobody"},
        {"assignee_id": None},
        {"assignee_id": pid("grid_duofu2"), "note": "x" * 2001},
        {"assignee_id": pid("grid_duofu2"), "version": 2},  # unknown field
    ],
)
def test_a_malformed_assignment_changes_nothing(
    api: Any, grid1: Device, body: dict[str, Any]
) -> None:
    rid = report(grid1)
    before = state(api, rid)
    resp = api.post(f"/reports/{rid}/assign", "dispatcher", json=body)
    assert (resp.status_code, resp.get_json()["error"]) == (422, "request.invalid")
    assert state(api, rid) == before


@pytest.mark.parametrize("who", ["cg_wang", "reviewer_liang", "handler_chengguan", "admin"])
def test_only_the_dispatcher_and_the_captain_assign(api: Any, grid1: Device, who: str) -> None:
    rid = report(grid1)
    before = state(api, rid)
    resp = assign(api, rid, pid("grid_duofu2"), who=who)
    assert (resp.status_code, resp.get_json()["error"]) == (403, "auth.forbidden")
    assert state(api, rid) == before
