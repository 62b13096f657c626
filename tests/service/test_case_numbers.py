"""Case numbers (案件编号): always generated, unique per street and year, consecutive under
concurrent filing, the year of filing in Beijing, a legacy number never handed out twice."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from fieldsync.cases import service
from fieldsync.cases.models import Case
from fieldsync.clock import utcnow
from fieldsync.demo import STREET_A_CODE, demo_uuid
from fieldsync.identity.models import Device
from fieldsync.identity.service import Principal
from fieldsync.inspections.models import Inspection
from fieldsync.org.models import Person
from fieldsync.rules.case_states import DEFAULT_CASE_NUMBER_FORMAT

HANDLER = demo_uuid("person", "handler_chengguan")


def _awaiting_cases(app: Any, count: int) -> list[uuid.UUID]:
    """`count` chengguan cases awaiting filing, each from its own inspection (so that nothing
    but the case-number counter is shared between their filings)."""
    sessionmaker = app.extensions["fieldsync"].sessionmaker
    officer = demo_uuid("person", "cg_wang")
    now = utcnow()
    ids = []
    with sessionmaker() as s, s.begin():
        device = Device(
            id=uuid.uuid4(),
            person_id=officer,
            name="phone",
            token_hash=uuid.uuid4().hex * 2,
            token_expires_at=now + timedelta(days=1),
        )
        s.add(device)
        s.flush()
        for _ in range(count):
            inspection = Inspection(
                id=uuid.uuid4(),
                street_id=demo_uuid("street", STREET_A_CODE),
                created_by_id=officer,
                created_device_id=device.id,
                status="submitted",
                matter_code="CG-001",
                occurred_at=now,
                present=[str(officer)],
                findings=[],
                measures=[],
                evidence=[],
                flags=[],
                decisions=[],
                cases=[],
                created_at=now,
                updated_at=now,
            )
            s.add(inspection)
            s.flush()
            (case,) = service.divert(s, inspection=inspection, now=now, person_id=officer)
            ids.append(case.id)
    return ids


def _file(app: Any, case_id: uuid.UUID, *, now: datetime | None = None) -> str:
    with app.extensions["fieldsync"].sessionmaker() as s, s.begin():
        person = s.get(Person, HANDLER)
        principal = Principal(person=person, device=None, roles=person.roles)  # type: ignore[arg-type]
        case = service.act(
            s,
            case_id=case_id,
            action="file",
            principal=principal,
            payload={},
            now=now or utcnow(),
            case_number_format=DEFAULT_CASE_NUMBER_FORMAT,
        )
        assert case.number is not None
        return case.number


def test_concurrent_filings_get_distinct_consecutive_numbers(app: Any, demo: Any) -> None:
    count = 8
    first, *cases = _awaiting_cases(app, count + 1)
    at = datetime(2026, 6, 1, 2, tzinfo=UTC)
    # the year's counter row exists, so the filings race for its lock, not for its insert
    assert _file(app, first, now=at) == "京东华执〔2026〕第0001号"
    start = threading.Barrier(count)
    numbers: dict[uuid.UUID, str] = {}
    errors: list[BaseException] = []

    def file_one(case_id: uuid.UUID) -> None:
        try:
            start.wait()  # before any SQL: all sessions begin together, each on its connection
            numbers[case_id] = _file(app, case_id, now=at)
        except BaseException as error:  # noqa: BLE001  (reported below, on the test's thread)
            errors.append(error)

    threads = [threading.Thread(target=file_one, args=(c,)) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers.values()) == [f"京东华执〔2026〕第{n:04d}号" for n in range(2, 10)]
    with app.extensions["fieldsync"].sessionmaker() as s:
        stored = s.execute(select(Case.number, Case.number_year, Case.number_seq)).all()
    assert sorted(stored) == [(f"京东华执〔2026〕第{n:04d}号", 2026, n) for n in range(1, 10)]


def test_a_number_already_taken_is_skipped_not_reused(app: Any, demo: Any) -> None:
    """A number filed by hand before numbers were always generated (the audit's case: the next
    generated number) never makes a later filing fail: the counter moves past it."""
    legacy, fresh, later = _awaiting_cases(app, 3)
    year = datetime.now(UTC).astimezone(service.BEIJING).year
    with app.extensions["fieldsync"].sessionmaker() as s, s.begin():
        s.get(Case, legacy).number = f"京东华执〔{year}〕第0001号"
    assert _file(app, fresh) == f"京东华执〔{year}〕第0002号"
    assert _file(app, later) == f"京东华执〔{year}〕第0003号"


def test_the_year_is_the_year_of_filing_in_beijing(app: Any, demo: Any) -> None:
    december, january = _awaiting_cases(app, 2)
    # 23:59 on 31 December in UTC is already 7:59 on 1 January in Beijing
    assert _file(app, december, now=datetime(2026, 12, 31, 15, 59, tzinfo=UTC)) == (
        "京东华执〔2026〕第0001号"
    )
    assert _file(app, january, now=datetime(2026, 12, 31, 16, 0, tzinfo=UTC)) == (
        "京东华执〔2027〕第0001号"
    )
