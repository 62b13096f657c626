"""The demo data: idempotent, deterministic ids, staffed per table 1, a usable catalogue."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import fieldsync.identity.models  # noqa: F401  (registers the devices table)
import fieldsync.org.models  # noqa: F401
from fieldsync.db import Base, make_engine, make_sessionmaker
from fieldsync.demo import (
    ADMIN,
    CAPTAIN,
    DEFAULT_MEASURES,
    DEMO_PASSWORD,
    EXPIRED_CERT_OFFICER,
    REVOKED_CERT_OFFICER,
    STREET_A_CODE,
    STREET_B_ADMIN,
    STREET_B_CAPTAIN,
    STREET_B_CODE,
    DemoAccount,
    demo_uuid,
    format_accounts,
    load_demo,
    password_for,
)
from fieldsync.identity.service import password_hasher, register_device
from fieldsync.org import service as org
from fieldsync.org.models import (
    Certificate,
    Community,
    Department,
    DepartmentKind,
    District,
    Grid,
    Matter,
    Person,
    PersonRole,
    Role,
    Street,
    Team,
)

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HASHER = password_hasher(time_cost=1, memory_kib=8)
TABLES = (
    District,
    Street,
    Community,
    Grid,
    Department,
    Team,
    Person,
    PersonRole,
    Certificate,
    Matter,
)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    Base.metadata.create_all(engine)
    try:
        with make_sessionmaker(engine)() as s:
            yield s
    finally:
        engine.dispose()


@pytest.fixture
def accounts(session: Session) -> list[DemoAccount]:
    with session.begin():
        return load_demo(session, hasher=HASHER)


def counts(session: Session) -> dict[str, int]:
    return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in TABLES}


def valid_at(certificate: Certificate, at: datetime) -> bool:
    return certificate.valid_from <= at < certificate.valid_to and (
        certificate.revoked_at is None or certificate.revoked_at > at
    )


def has_valid_certificate(person: Person, at: datetime = AT) -> bool:
    return any(valid_at(c, at) for c in person.certificates)


def street(session: Session, code: str) -> Street:
    row = session.scalar(select(Street).where(Street.code == code))
    assert row is not None
    return row


def person(session: Session, username: str) -> Person:
    row = session.scalar(select(Person).where(Person.username == username))
    assert row is not None, username
    return row


def test_second_load_changes_nothing(session: Session, accounts: list[DemoAccount]) -> None:
    before = counts(session)
    hashes = dict(session.execute(select(Person.username, Person.password_hash)).all())
    again = load_demo(session, hasher=HASHER)
    session.commit()
    assert again == accounts
    assert counts(session) == before
    assert dict(session.execute(select(Person.username, Person.password_hash)).all()) == hashes
    assert before["people"] == len(accounts)
    assert len({a.username for a in accounts}) == len(accounts)


def test_load_never_commits(session: Session) -> None:
    load_demo(session, hasher=HASHER)
    session.rollback()
    assert counts(session)["people"] == 0


def test_ids_are_deterministic(session: Session, accounts: list[DemoAccount]) -> None:
    assert street(session, STREET_A_CODE).id == demo_uuid("street", STREET_A_CODE)
    assert person(session, CAPTAIN).id == demo_uuid("person", CAPTAIN)
    assert session.get(Matter, demo_uuid("matter", "CG-001")) is not None
    assert session.get(Department, demo_uuid("department", "police")) is not None
    team = org.team_of_street(session, demo_uuid("street", STREET_A_CODE))
    assert team is not None and team.id == demo_uuid("team", STREET_A_CODE)
    # stable across machines: a name-based UUID, not a random one
    assert demo_uuid("person", CAPTAIN) == uuid.uuid5(
        uuid.uuid5(uuid.NAMESPACE_URL, "urn:fieldsync:demo"), "person:captain"
    )
    with pytest.raises(ValueError):
        demo_uuid("nonsense", "x")


def test_departments_are_one_plus_five_plus_n(session: Session, accounts: Any) -> None:
    departments = org.list_departments(session)
    resident = {d.code for d in departments if d.kind is DepartmentKind.RESIDENT}
    listed = {d.code for d in departments if d.kind is DepartmentKind.LISTED}
    assert resident == {"chengguan", "police", "market", "food_drug", "traffic", "fire"}
    assert len(listed) >= 5


def test_catalogue(session: Session, accounts: Any) -> None:
    matters = org.list_matters(session)
    assert len(matters) >= 36
    per_department = Counter(m.department.code for m in matters)
    assert per_department["chengguan"] >= 8
    for code in ("police", "market", "food_drug", "traffic", "fire"):
        assert per_department[code] >= 4, code
    listed_with_two = [
        m.department.code
        for m in matters
        if m.department.kind is DepartmentKind.LISTED and per_department[m.department.code] >= 2
    ]
    assert len(set(listed_with_two)) >= 3
    for m in matters:
        assert set(m.allowed_measures) == set(DEFAULT_MEASURES), m.code
        for tier, measures in m.allowed_measures.items():
            assert set(measures) <= set(DEFAULT_MEASURES[tier]), (m.code, tier)
            assert "photo_evidence" in measures, (m.code, tier)
        assert m.legal_basis and m.legal_basis.startswith("《"), m.code
        assert m.name_zh and m.name_en
    enforcement = [set(m.allowed_measures["enforcement"]) for m in matters]
    assert any("seizure" not in e for e in enforcement)
    assert any("onsite_penalty" not in e for e in enforcement)
    vending = org.get_matter(session, "CG-001")
    assert vending.allowed_measures == {k: list(v) for k, v in DEFAULT_MEASURES.items()}


def test_street_a_is_staffed_as_table_1(session: Session, accounts: Any) -> None:
    street_a = street(session, STREET_A_CODE)
    assert (street_a.name_zh, street_a.case_abbrev) == ("东华门街道", "东华")
    team = org.team_of_street(session, street_a.id)
    assert team is not None
    members = [p for p in org.list_people(session, street_id=street_a.id) if p.team_id == team.id]

    captains = [p for p in members if Role.CAPTAIN in p.roles]
    assert [(p.username, p.title) for p in captains] == [(CAPTAIN, "队长")]
    captain = captains[0]
    assert Role.OFFICER in captain.roles and captain.department is not None
    assert captain.department.code == "chengguan" and has_valid_certificate(captain)

    vice = [p for p in members if p.title == "副队长"]
    assert sorted(p.department.code for p in vice if p.department) == ["chengguan", "police"]
    assert all(Role.OFFICER in p.roles and has_valid_certificate(p) for p in vice)

    # the resident staff proper (leadership aside), with valid certificates today
    staff = Counter(
        p.department.code
        for p in members
        if Role.OFFICER in p.roles
        and p.department is not None
        and p.title not in ("队长", "副队长")
        and has_valid_certificate(p)
    )
    assert staff["chengguan"] >= 6
    assert (
        staff["police"],
        staff["market"],
        staff["food_drug"],
        staff["traffic"],
        staff["fire"],
    ) == (2, 2, 1, 1, 2)


def test_one_expired_and_one_revoked_certificate(session: Session, accounts: Any) -> None:
    invalid = [
        p.username
        for p in session.scalars(select(Person).where(Person.role_rows.any(role=Role.OFFICER)))
        if not has_valid_certificate(p)
    ]
    assert sorted(invalid) == sorted([EXPIRED_CERT_OFFICER, REVOKED_CERT_OFFICER])
    (expired,) = person(session, EXPIRED_CERT_OFFICER).certificates
    assert expired.valid_to.year == 2025 and expired.revoked_at is None
    (revoked,) = person(session, REVOKED_CERT_OFFICER).certificates
    assert revoked.revoked_at == datetime(2026, 6, 1, tzinfo=UTC) and revoked.revoked_reason
    assert has_valid_certificate(
        person(session, REVOKED_CERT_OFFICER), datetime(2026, 5, 1, tzinfo=UTC)
    )
    for cert in session.scalars(select(Certificate)):
        assert cert.number.startswith("京执字110101")


def test_grid_workers_and_back_office(session: Session, accounts: Any) -> None:
    street_a = street(session, STREET_A_CODE)
    grids = list(
        session.scalars(select(Grid).join(Community).where(Community.street_id == street_a.id))
    )
    communities = {g.community_id for g in grids}
    assert len(communities) == 2
    assert all(2 <= sum(g.community_id == c for g in grids) <= 3 for c in communities)
    workers = org.list_people(session, street_id=street_a.id, role=Role.GRID_WORKER)
    assert sorted(w.grid_id for w in workers) == sorted(g.id for g in grids)  # one per grid
    assert all(w.department_id is None and w.team_id is None for w in workers)
    assert all(not w.certificates for w in workers)

    handlers = org.list_people(session, street_id=street_a.id, role=Role.CASE_HANDLER)
    assert sorted(h.department.code for h in handlers if h.department) == sorted(
        ["chengguan", "police", "market", "food_drug", "traffic", "fire"]
    )
    assert len(org.list_people(session, street_id=street_a.id, role=Role.REVIEWER)) == 2
    assert len(org.list_people(session, street_id=street_a.id, role=Role.DISPATCHER)) == 1
    assert person(session, ADMIN).roles == frozenset({Role.ADMIN})


def test_street_b_has_its_own_team(session: Session, accounts: Any) -> None:
    street_a, street_b = street(session, STREET_A_CODE), street(session, STREET_B_CODE)
    assert (street_b.name_zh, street_b.case_abbrev) == ("景山街道", "东景")
    assert street_b.district_id == street_a.district_id
    team_b = org.team_of_street(session, street_b.id)
    team_a = org.team_of_street(session, street_a.id)
    assert team_b is not None and team_a is not None and team_b.id != team_a.id
    people_b = org.list_people(session, street_id=street_b.id)
    names_b = {p.username for p in people_b}
    assert {STREET_B_CAPTAIN, STREET_B_ADMIN} <= names_b
    assert CAPTAIN not in names_b and ADMIN not in names_b
    officers_b = Counter(
        p.department.code
        for p in people_b
        if Role.OFFICER in p.roles and Role.CAPTAIN not in p.roles and p.department
    )
    assert officers_b == Counter({"chengguan": 2, "police": 1, "market": 1})
    assert all(p.team_id == team_b.id for p in people_b if Role.OFFICER in p.roles)
    assert len(org.list_people(session, street_id=street_b.id, role=Role.GRID_WORKER)) == 1
    # scope: a 景山 id does not resolve for 东华门
    with pytest.raises(Exception, match="org.person_not_found"):
        org.get_person(
            session, person_id=person(session, STREET_B_CAPTAIN).id, street_id=street_a.id
        )


def test_demo_accounts_sign_in_with_the_printed_password(
    session: Session, accounts: list[DemoAccount]
) -> None:
    captain = next(a for a in accounts if a.username == CAPTAIN)
    assert captain.password == DEMO_PASSWORD == password_for(CAPTAIN)
    assert captain.roles == ("captain", "officer") and captain.street_code == STREET_A_CODE
    with session.begin():
        device, token = register_device(
            session,
            hasher=HASHER,
            username=CAPTAIN,
            password=captain.password,
            device_id=uuid.uuid4(),
            device_name="demo phone",
            now=AT,
            lifetime=timedelta(days=1),
        )
    assert token and device.person_id == demo_uuid("person", CAPTAIN)
    for a in accounts:
        assert HASHER.verify(person(session, a.username).password_hash, a.password)


def test_format_accounts(accounts: list[DemoAccount]) -> None:
    text = format_accounts(accounts)
    assert DEMO_PASSWORD in text.splitlines()[0]
    for a in accounts:
        assert a.username in text
    assert "东华门街道" in text and "景山街道" in text
    assert all(not line.endswith(" ") for line in text.splitlines())
