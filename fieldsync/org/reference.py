"""Reference data as the second-inspector rule reads it: matters and people as facts, the
roster as it was at a given time, each read once per unit of work that writes none of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldsync.errors import DomainError
from fieldsync.org.models import Matter, Person, RosterPeriod
from fieldsync.rules.second_inspector import (
    CertificateFacts,
    DepartmentKind,
    MatterFacts,
    PersonFacts,
)


def matter_facts(matter: Matter) -> MatterFacts:
    return MatterFacts(
        code=matter.code,
        department_code=matter.department.code,
        department_kind=DepartmentKind(matter.department.kind.value),
        allowed_measures=matter.allowed_measures or None,
    )


def person_facts(person: Person, period: RosterPeriod | None = None) -> PersonFacts:
    """The rule's view of a person: as of `period` (their roster at the time), else as now."""
    department = period.department if period is not None else person.department
    roles = period.roles if period is not None else [r.value for r in person.roles]
    return PersonFacts(
        id=str(person.id),
        department_code=department.code if department else None,
        department_kind=DepartmentKind(department.kind.value) if department else None,
        roles=frozenset(roles),
        certificates=tuple(
            CertificateFacts(c.number, c.valid_from, c.valid_to, c.revoked_at)
            for c in person.certificates
        ),
        active=period.active if period is not None else person.active,
    )


class ReferenceReads:
    """The matters and people one unit of work names, each read from the database once.

    Checking an inspection reads its matters (with their departments), the people present
    (with their certificates) and those people's roster history. A sync push checks every
    mutation, and an officer's batch names the same few matters and colleagues over and over;
    a push never writes reference data, so what it read stays true until it ends. Within a
    push (`references_read_once`) one instance answers every check, from a few batched reads;
    anywhere else `reference_reads` gives a fresh one, which reads what each call asks.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._matters: dict[str, Matter | None] = {}
        self._matter_facts: dict[str, MatterFacts] = {}
        self._people: dict[uuid.UUID, Person | None] = {}
        self._periods: dict[uuid.UUID, list[RosterPeriod]] = {}
        self._person_facts: dict[tuple[uuid.UUID, int | None], PersonFacts] = {}

    def read(self, *, matter_codes: Iterable[str] = (), person_ids: Iterable[Any] = ()) -> None:
        """Read, in batches, whichever of these are not known yet (unknown ones are remembered
        as unknown)."""
        codes = sorted({c for c in matter_codes if isinstance(c, str)} - self._matters.keys())
        for chunk in _chunks(codes):
            found = {
                m.code: m
                for m in self.session.scalars(select(Matter).where(Matter.code.in_(chunk)))
            }
            self._matters.update((c, found.get(c)) for c in chunk)
        ids = sorted({_as_uuid(i) for i in person_ids} - {None} - self._people.keys())
        for chunk in _chunks(ids):
            found_people = {
                p.id: p for p in self.session.scalars(select(Person).where(Person.id.in_(chunk)))
            }
            periods = self.session.scalars(
                select(RosterPeriod)
                .where(RosterPeriod.person_id.in_(chunk))
                .order_by(RosterPeriod.id)
            )
            for pid in chunk:
                self._people[pid] = found_people.get(pid)
                self._periods[pid] = []
            for period in periods:
                self._periods[period.person_id].append(period)

    def matters(self, codes: Iterable[str]) -> dict[str, Matter]:
        """These matters by code; an unknown one refuses (the first in code order)."""
        wanted = sorted(set(codes))
        self.read(matter_codes=wanted)
        for code in wanted:
            if self._matters.get(code) is None:
                raise DomainError("org.unknown_matter", code=code)
        return {code: self._matters[code] for code in wanted}  # type: ignore[misc]

    def matter_facts(self, code: str) -> MatterFacts:
        facts = self._matter_facts.get(code)
        if facts is None:
            facts = self._matter_facts[code] = matter_facts(self.matters([code])[code])
        return facts

    def people(self, ids: Sequence[Any], *, street_id: uuid.UUID) -> list[Person]:
        """These people of the street, in the order given; anyone else (unknown, or of another
        street) refuses, the first in that order."""
        people_ids = [uuid.UUID(str(i)) for i in ids]
        self.read(person_ids=people_ids)
        out = []
        for pid in people_ids:
            person = self._people.get(pid)
            if person is None or person.street_id != street_id:
                raise DomainError("inspection.unknown_person", id=str(pid))
            out.append(person)
        return out

    def present(
        self, ids: Sequence[Any], *, street_id: uuid.UUID, at: datetime
    ) -> list[PersonFacts]:
        """The people named present as the roster knew them at `at`, in the order given
        (duplicates kept: the rule counts once). Someone with no roster history (made outside
        the org service) is read as they are now."""
        out = []
        for person in self.people(ids, street_id=street_id):
            period = next(
                (
                    p
                    for p in self._periods.get(person.id, [])
                    if (p.valid_from is None or p.valid_from <= at)
                    and (p.valid_to is None or p.valid_to > at)
                ),
                None,
            )
            key = (person.id, period.id if period is not None else None)
            facts = self._person_facts.get(key)
            if facts is None:
                facts = self._person_facts[key] = person_facts(person, period)
            out.append(facts)
        return out


_READS = "fieldsync.reference_reads"


def reference_reads(session: Session) -> ReferenceReads:
    """The push's reads when within one (`references_read_once`), else fresh ones."""
    reads = session.info.get(_READS)
    return reads if reads is not None else ReferenceReads(session)


@contextmanager
def references_read_once(session: Session) -> Iterator[ReferenceReads]:
    """For a unit of work that writes no reference data (a sync push): every reference read
    within it is answered by one `ReferenceReads`."""
    reads = session.info[_READS] = ReferenceReads(session)
    try:
        yield reads
    finally:
        session.info.pop(_READS, None)


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None
