"""Moving a person to another street (调动, POST /officers/{id}/transfer): the admin of the street
they leave moves them; their phones lose that street's records (`delete / out_of_scope`) and
get the new street's; the reports they are responsible for are handed to a named colleague, on
each report's trace; a refused move leaves everything as it was."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from conftest import BACKEND
from sqlalchemy import select
from sync_phone import Phone  # type: ignore[import-not-found]

from fieldsync.demo import STREET_A_CODE, STREET_B_CODE, demo_uuid, grid_code
from fieldsync.inspections.models import Report
from fieldsync.org.models import Person, RosterPeriod, Team
from fieldsync.sync.models import DeviceSyncState, Event

STREET_A = str(demo_uuid("street", STREET_A_CODE))
STREET_B = str(demo_uuid("street", STREET_B_CODE))
DUOFU_1 = str(demo_uuid("grid", grid_code("110101001001", 1)))
JIXIANG_1 = str(demo_uuid("grid", grid_code("110101002001", 1)))


def pid(username: str) -> str:
    return str(demo_uuid("person", username))


def by_id(changes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in changes}


def gone(change: dict[str, Any] | None) -> bool:
    return change is not None and (change["op"], change.get("reason")) == ("delete", "out_of_scope")


def transfer(api: Any, username: str, who: str = "admin", **body: Any) -> Any:
    return api.post(
        f"/officers/{pid(username)}/transfer", who, json={"street_id": STREET_B, **body}
    )


def a_report(phone: Phone, *, submit: bool = True) -> str:
    rid = str(uuid.uuid4())
    values = {"description": "占道经营：水果摊", "grid_id": DUOFU_1, "category": "市容"}
    [made] = phone.push(phone.mutation(type="report.upsert", entity_id=rid, set=values))
    assert made["status"] == "applied", made
    if submit:
        [done] = phone.push(phone.mutation(type="report.submit", entity_id=rid, base_version=1))
        assert done["data"]["status"] == "submitted", done
    return rid


def snapshot(app: Any) -> dict[str, Any]:
    """What a refused transfer must leave as it was."""
    with app.extensions["fieldsync"].sessionmaker() as s:
        people = s.execute(select(Person.id, Person.street_id, Person.team_id, Person.grid_id))
        return {
            "people": sorted(tuple(map(str, row)) for row in people),
            "reports": sorted(
                (str(r.id), str(r.assignee_id), r.version) for r in s.scalars(select(Report))
            ),
            "events": len(s.scalars(select(Event.id)).all()),
            "roster": len(s.scalars(select(RosterPeriod.id)).all()),
        }


def test_an_officer_moves_and_every_phone_follows(app: Any, api: Any, demo: Any) -> None:
    colleague, mover, there = Phone(api, "cg_wang"), Phone(api, "cg_liu"), Phone(api, "js_cg_xu")
    iid = colleague.create()
    for phone in (colleague, mover, there):
        phone.pull_all()

    resp = transfer(api, "cg_liu")
    assert resp.status_code == 200, resp.get_json()
    moved = resp.get_json()
    with app.extensions["fieldsync"].sessionmaker() as s:
        team_b = s.scalar(select(Team.id).where(Team.street_id == uuid.UUID(STREET_B)))
    assert (moved["street_id"], moved["team_id"]) == (STREET_B, str(team_b))
    assert moved["department_id"] == str(demo_uuid("department", "chengguan"))
    assert moved["certificates"]  # the certificate is the officer's own: it goes with them

    liu = pid("cg_liu")
    assert gone(by_id(colleague.pull_all()).get(liu))  # the street they left
    assert by_id(there.pull_all())[liu]["op"] == "upsert"  # the street they joined
    changes = by_id(mover.pull_all())  # their own phone
    assert gone(changes.get(iid)) and gone(changes.get(pid("cg_wang")))
    assert changes[pid("js_cg_xu")]["op"] == "upsert"
    assert mover.pull_all() == []
    # the roster of each street, as its admin sees it
    assert api.get(f"/officers/{liu}", "admin").status_code == 404
    assert api.get(f"/officers/{liu}", "admin_jingshan").get_json()["street_id"] == STREET_B
    # and the new street's admin may move them on
    back = api.post(f"/officers/{liu}/transfer", "admin_jingshan", json={"street_id": STREET_A})
    assert back.status_code == 200, back.get_json()


def test_an_edit_queued_before_the_move_reaches_the_street_that_holds_the_record(
    api: Any, demo: Any
) -> None:
    colleague, mover = Phone(api, "cg_wang"), Phone(api, "cg_liu")
    iid = colleague.create()
    mover.pull_all()
    # written offline on the old street; the phone syncs after the move
    queued = mover.mutation(entity_id=iid, base_version=1, set={"address": "东华门大街 9 号"})
    assert transfer(api, "cg_liu").status_code == 200

    [result] = mover.push(queued)
    assert (result["status"], result["code"]) == ("rejected", "sync.not_in_scope")

    def listed(who: str) -> list[str]:
        resp = api.get("/quarantine", who, query_string={"page_size": "100"})
        assert resp.status_code == 200, resp.get_json()
        return [m["mutation_id"] for m in resp.get_json()]

    # the street that holds the inspection sees what its former officer wrote, to take it up;
    # the street they joined does not hold the record, nor the phone's address for it
    assert listed("captain") == [queued["mutation_id"]]
    assert listed("js_captain") == []
    # the phone sees its own rejection, where it went
    mine = mover.get("/quarantine").get_json()
    assert [(m["mutation_id"], m["code"]) for m in mine] == [
        (queued["mutation_id"], "sync.not_in_scope")
    ]
    assert mine[0]["payload"]["set"] == {"address": "东华门大街 9 号"}


def test_a_grid_worker_hands_over_their_reports(app: Any, api: Any, demo: Any) -> None:
    leaving, taking = Phone(api, "grid_duofu1"), Phone(api, "grid_duofu2")
    rids = [a_report(leaving), a_report(leaving)]
    leaving.pull_all()
    taking.pull_all()
    before = snapshot(app)

    refused = transfer(api, "grid_duofu1", grid_id=JIXIANG_1)
    assert refused.status_code == 409
    assert refused.get_json()["error"] == "org.transfer_holds_reports"
    assert "2" in refused.get_json()["message"]
    for to in (pid("grid_duofu1"), pid("js_grid_jixiang1"), pid("reviewer_liang")):
        resp = transfer(api, "grid_duofu1", grid_id=JIXIANG_1, reports_to=to)
        assert resp.status_code in (409, 422), (to, resp.get_json())
    assert snapshot(app) == before

    resp = transfer(api, "grid_duofu1", grid_id=JIXIANG_1, reports_to=pid("grid_duofu2"))
    assert resp.status_code == 200, resp.get_json()
    assert (resp.get_json()["street_id"], resp.get_json()["grid_id"]) == (STREET_B, JIXIANG_1)
    for rid in rids:
        shown = api.get(f"/reports/{rid}", "captain").get_json()
        assert shown["assignee_id"] == pid("grid_duofu2")
        [handover] = [e for e in shown["events"] if e["action"] == "report.assign"]
        assert handover["changes"]["assignee_id"] == [pid("grid_duofu1"), pid("grid_duofu2")]
    left, arrived = by_id(leaving.pull_all()), by_id(taking.pull_all())
    assert all(gone(left.get(rid)) for rid in rids)
    assert all(arrived[rid]["data"]["assignee_id"] == pid("grid_duofu2") for rid in rids)


def test_a_draft_report_waits_for_its_phone(app: Any, api: Any, demo: Any) -> None:
    writer = Phone(api, "grid_duofu1")
    a_report(writer, submit=False)
    before = snapshot(app)
    resp = transfer(api, "grid_duofu1", reports_to=pid("grid_duofu2"))
    assert (resp.status_code, resp.get_json()["error"]) == (409, "org.transfer_draft_reports")
    assert "1 件上报草稿" in resp.get_json()["message"]  # zh: the default language
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("username", "who", "body", "status", "code"),
    [
        ("cg_liu", "admin", {"street_id": STREET_A}, 409, "org.transfer_same_street"),
        ("cg_liu", "admin", {"street_id": str(uuid.uuid4())}, 422, "org.unknown_street"),
        ("grid_duofu1", "admin", {"grid_id": DUOFU_1}, 422, "org.unknown_grid"),  # A's grid
        ("admin", "admin", {}, 409, "org.last_admin"),
        ("cg_liu", "captain", {}, 403, "auth.forbidden"),
        ("js_cg_xu", "admin", {}, 404, "org.person_not_found"),  # not the admin's street
        ("cg_liu", "admin", {"colour": "red"}, 422, "request.invalid"),
    ],
)
def test_a_refused_transfer_changes_nothing(
    app: Any, api: Any, demo: Any, username: str, who: str, body: dict, status: int, code: str
) -> None:
    before = snapshot(app)
    resp = transfer(api, username, who, **body)
    assert (resp.status_code, resp.get_json()["error"]) == (status, code), resp.get_json()
    assert snapshot(app) == before


@pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="SQLite serialises whole write transactions (BEGIN IMMEDIATE): a push's request "
    "holds the write lock from the moment it reads its caller, so no transfer commits in between",
)
def test_a_push_that_waited_for_a_transfer_is_sent_again(
    app: Any, api: Any, demo: Any, monkeypatch: Any
) -> None:
    """The mover's push read them (on the old street) before the transfer committed, and got its
    device's lock after: it writes nothing and is refused as a concurrent write; sent again, it
    goes by the street they are on now."""
    from fieldsync.sync import push as push_module

    phone = Phone(api, "cg_liu")
    phone.pull_all()
    with app.extensions["fieldsync"].sessionmaker() as s:
        team_b = s.scalar(select(Team.id).where(Team.street_id == uuid.UUID(STREET_B)))
    locked = push_module._lock_device_state

    def moved_meanwhile(session: Any, device_id: Any) -> Any:
        state = locked(session, device_id)
        with app.extensions["fieldsync"].sessionmaker() as other, other.begin():
            person = other.get(Person, uuid.UUID(pid("cg_liu")))
            person.street_id, person.team_id = uuid.UUID(STREET_B), team_b
        return state

    iid = str(uuid.uuid4())
    mutation = phone.mutation(entity_id=iid, set={"matter_code": "CG-001", "description": "占道"})
    before = snapshot(app)
    monkeypatch.setattr(push_module, "_lock_device_state", moved_meanwhile)
    resp = phone.send([mutation])
    monkeypatch.undo()
    assert (resp.status_code, resp.get_json()["error"]) == (409, "request.concurrent_write")
    after = snapshot(app)
    assert after["reports"] == before["reports"] and after["events"] == before["events"]
    [result] = phone.push(mutation)
    assert result["status"] == "applied", result
    assert result["data"]["street_id"] == STREET_B


@pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="SQLite serialises whole write transactions (BEGIN IMMEDIATE): no push is in flight "
    "while a transfer runs",
)
def test_a_transfer_waits_for_a_push_in_flight(app: Any, api: Any, demo: Any) -> None:
    """A push of the mover's that holds its device's lock and is writing a report of the old
    street: the transfer waits for it to commit, and hands that report over too."""
    phone = Phone(api, "grid_duofu1")
    first = a_report(phone)
    mover = uuid.UUID(pid("grid_duofu1"))
    in_flight = app.extensions["fieldsync"].sessionmaker()
    in_flight.begin()
    in_flight.execute(
        select(DeviceSyncState)
        .where(DeviceSyncState.device_id == uuid.UUID(phone.device_id))
        .with_for_update()
    ).all()
    second = uuid.uuid4()
    in_flight.add(
        Report(
            id=second,
            street_id=uuid.UUID(STREET_A),
            created_by_id=mover,
            created_device_id=uuid.UUID(phone.device_id),
            assignee_id=mover,
            status="submitted",
            description="路面塌陷",
            grid_id=uuid.UUID(DUOFU_1),
        )
    )
    in_flight.flush()

    answers: list[Any] = []
    move = threading.Thread(
        target=lambda: answers.append(
            transfer(api, "grid_duofu1", grid_id=JIXIANG_1, reports_to=pid("grid_duofu2"))
        )
    )
    move.start()
    move.join(timeout=1.0)
    waited = move.is_alive()
    in_flight.commit()
    in_flight.close()
    move.join(timeout=30)
    assert waited, "the transfer did not wait for the push in flight"
    [resp] = answers
    assert resp.status_code == 200, resp.get_json()
    for rid in (first, str(second)):
        assert api.get(f"/reports/{rid}", "captain").get_json()["assignee_id"] == pid("grid_duofu2")
