"""The rule reads each person as the roster knew them at occurred_at: a transfer, a deactivation
or a change of roles counts from its own instant, never backwards."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from fieldsync.demo import STREET_A_CODE, demo_uuid
from fieldsync.inspections.models import Inspection
from fieldsync.inspections.rule_check import check, second_inspector
from fieldsync.org.models import Person, Role, RosterPeriod
from fieldsync.org.service import update_person

JUNE = datetime(2026, 6, 1, tzinfo=UTC)  # the roster changes here
BEFORE, AFTER = datetime(2026, 5, 1, 2, tzinfo=UTC), datetime(2026, 7, 1, 2, tzinfo=UTC)


def person(username: str) -> uuid.UUID:
    return demo_uuid("person", username)


def change(session: Any, username: str, at: datetime, **changes: Any) -> None:
    who = session.get(Person, person(username))
    update_person(session, hasher=None, person=who, changes=changes, now=at)  # type: ignore[arg-type]
    session.commit()


def checked(session: Any, at: datetime, *present: str) -> Inspection:
    inspection = Inspection(
        id=uuid.uuid4(),
        street_id=demo_uuid("street", STREET_A_CODE),
        occurred_at=at,
        created_at=at,
        present=[str(person(p)) for p in present],
        findings=[{"id": str(uuid.uuid4()), "matter_code": "CG-001", "description": "占道"}],
        measures=[],
        flags=[],
        decisions=[],
    )
    check(session, inspection)
    return inspection


def reasons(inspection: Inspection) -> set[tuple[str, str | None]]:
    return {(r["code"], r["person_id"]) for r in inspection.decisions[0]["reasons"]}


@pytest.fixture
def police(session: Any, demo: Any) -> uuid.UUID:
    return demo_uuid("department", "police")


def test_a_transfer_counts_from_its_instant(session: Any, police: uuid.UUID) -> None:
    change(session, "cg_liu", JUNE, department_id=police)
    before = checked(session, BEFORE, "cg_wang", "cg_liu")
    assert before.tier == "enforcement"
    assert ("person.authorised", str(person("cg_liu"))) in reasons(before)
    after = checked(session, AFTER, "cg_wang", "cg_liu")
    assert (after.tier, after.second_inspector_id) == ("inspection", person("cg_liu"))
    # the endpoint phones ask reads the same history
    rule = second_inspector(
        session,
        matter_code="CG-001",
        present=[person("cg_wang"), person("cg_liu")],
        at=BEFORE,
        street_id=demo_uuid("street", STREET_A_CODE),
    )
    assert rule.tier.value == "enforcement"


def test_a_deactivation_counts_from_its_instant(session: Any, demo: Any) -> None:
    change(session, "cg_liu", JUNE, active=False)
    assert checked(session, BEFORE, "cg_wang", "cg_liu").tier == "enforcement"
    after = checked(session, AFTER, "cg_wang", "cg_liu")
    assert after.tier == "investigation"
    assert ("person.inactive", str(person("cg_liu"))) in reasons(after)


def test_a_change_of_roles_counts_from_its_instant(session: Any, demo: Any) -> None:
    change(session, "cg_liu", JUNE, roles=[Role.CASE_HANDLER])
    assert checked(session, BEFORE, "cg_wang", "cg_liu").tier == "enforcement"
    after = checked(session, AFTER, "cg_wang", "cg_liu")
    assert ("person.not_an_officer", str(person("cg_liu"))) in reasons(after)


def test_moved_away_and_back(session: Any, police: uuid.UUID) -> None:
    chengguan = demo_uuid("department", "chengguan")
    change(session, "cg_liu", JUNE, department_id=police)
    change(session, "cg_liu", datetime(2026, 8, 1, tzinfo=UTC), department_id=chengguan)
    tiers = [
        checked(session, datetime(2026, m, 1, 2, tzinfo=UTC), "cg_wang", "cg_liu").tier
        for m in (5, 7, 9)
    ]
    assert tiers == ["enforcement", "inspection", "enforcement"]
    periods = session.scalars(
        select(RosterPeriod)
        .where(RosterPeriod.person_id == person("cg_liu"))
        .order_by(RosterPeriod.id)
    ).all()
    assert [(p.valid_from, p.valid_to, p.department_id) for p in periods] == [
        (None, JUNE, chengguan),  # as first recorded: open towards the past
        (JUNE, datetime(2026, 8, 1, tzinfo=UTC), police),
        (datetime(2026, 8, 1, tzinfo=UTC), None, chengguan),
    ]


def test_a_change_the_rule_does_not_read_keeps_the_period(session: Any, demo: Any) -> None:
    change(session, "cg_liu", JUNE, phone="13800000000", title="组长")
    periods = session.scalars(
        select(RosterPeriod).where(RosterPeriod.person_id == person("cg_liu"))
    ).all()
    assert [(p.valid_from, p.valid_to, p.roles, p.active) for p in periods] == [
        (None, None, ["officer"], True)
    ]
