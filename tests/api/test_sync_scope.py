"""Records leaving a device's scope reach it as `op: delete, reason: out_of_scope` (PROTOCOL.md
§2): an officer moved to the other street, an officer whose roles change, a reassigned report.

The move to another street and a report's reassignment are made through the models here, to
prove the feed alone does it; POST /officers/{id}/transfer (test_transfer) and
POST /reports/{id}/assign (test_reports_api) drive them through the API. The role change goes
through PATCH /officers."""

from __future__ import annotations

import uuid
from typing import Any

from sync_phone import Phone  # type: ignore[import-not-found]

from fieldsync.demo import STREET_B_CODE, demo_uuid
from fieldsync.inspections.models import Report
from fieldsync.org.models import Person, Team


def _by_id(changes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in changes}


def _gone(change: dict[str, Any] | None) -> bool:
    return change is not None and (change["op"], change.get("reason")) == (
        "delete",
        "out_of_scope",
    )


def test_an_officer_moved_to_the_other_street(app: Any, api: Any, demo: Any) -> None:
    colleague, mover, there = Phone(api, "cg_wang"), Phone(api, "cg_liu"), Phone(api, "js_cg_xu")
    iid = colleague.create()
    for phone in (colleague, mover, there):
        phone.pull_all()
    liu, wang = str(demo_uuid("person", "cg_liu")), str(demo_uuid("person", "cg_wang"))

    with app.extensions["fieldsync"].sessionmaker() as s, s.begin():
        person = s.get(Person, uuid.UUID(liu))
        street_b = demo_uuid("street", STREET_B_CODE)
        person.street_id = street_b
        person.team_id = s.query(Team).filter_by(street_id=street_b).one().id
        person.grid_id = None

    # the street they left: the roster entry goes
    assert _gone(_by_id(colleague.pull_all()).get(liu))
    # the street they joined: it arrives
    assert _by_id(there.pull_all())[liu]["op"] == "upsert"
    # their own phone: the old street's inspections and roster go, the new street's arrive,
    # reference data of the whole district stays
    changes = _by_id(mover.pull_all())
    assert _gone(changes.get(iid))
    assert _gone(changes.get(wang))
    assert changes[str(demo_uuid("person", "js_cg_xu"))]["op"] == "upsert"
    assert str(demo_uuid("matter", "CG-001")) not in changes
    assert mover.pull_all() == []


def test_an_officer_who_is_no_longer_staff(app: Any, api: Any, demo: Any) -> None:
    colleague, changed = Phone(api, "cg_wang"), Phone(api, "cg_liu")
    iid = colleague.create()
    assert iid in _by_id(changed.pull_all())
    liu = str(demo_uuid("person", "cg_liu"))
    resp = api.patch(f"/officers/{liu}", "admin", json={"roles": ["grid_worker"]})
    assert resp.status_code == 200, resp.get_json()

    changes = _by_id(changed.pull_all())
    assert _gone(changes.get(iid))  # inspections are for the street's staff
    assert changes[liu]["op"] == "upsert"  # the roster is still theirs to see
    assert changed.pull_all() == []


def test_a_reassigned_report(app: Any, api: Any, demo: Any) -> None:
    first, second, officer = (
        Phone(api, "grid_duofu1"),
        Phone(api, "grid_duofu2"),
        Phone(api, "cg_wang"),
    )
    rid = str(uuid.uuid4())
    [made] = first.push(
        first.mutation(type="report.upsert", entity_id=rid, set={"description": "占道经营"})
    )
    assert made["status"] == "applied", made
    for phone in (first, second, officer):
        phone.pull_all()

    with app.extensions["fieldsync"].sessionmaker() as s, s.begin():
        s.get(Report, uuid.UUID(rid)).assignee_id = demo_uuid("person", "grid_duofu2")

    assert _gone(_by_id(first.pull_all()).get(rid))
    arrived = _by_id(second.pull_all())[rid]
    assert (arrived["op"], arrived["data"]["assignee_id"]) == (
        "upsert",
        str(demo_uuid("person", "grid_duofu2")),
    )
    assert _by_id(officer.pull_all())[rid]["op"] == "upsert"  # the street's staff still see it
