"""Unit tests of the report assignment rule (事件上报的分派): no app, no database."""

import uuid

import pytest

from fieldsync.errors import CATALOGUE, DomainError
from fieldsync.inspections.reports import ASSIGNEE_ROLES, Candidate, decide_assignment
from fieldsync.org.models import Role

STREET, OTHER_STREET = uuid.uuid4(), uuid.uuid4()
NOW_ASSIGNED, TO = uuid.uuid4(), uuid.uuid4()


def person(*roles, street=STREET, active=True):
    return Candidate(TO, street, frozenset(roles), active)


def decide(candidate, *, status="submitted", to=TO):
    return decide_assignment(
        status=status, street_id=STREET, assignee_id=NOW_ASSIGNED, to=to, candidate=candidate
    )


@pytest.mark.parametrize("role", sorted(ASSIGNEE_ROLES))
def test_field_roles_take_reports(role):
    assert decide(person(role)) is True


def test_the_current_assignee_is_no_change_whoever_they_are_now():
    assert decide(person(Role.ADMIN, active=False), to=NOW_ASSIGNED) is False
    assert decide(None, to=NOW_ASSIGNED) is False


@pytest.mark.parametrize(
    ("candidate", "status", "code"),
    [
        (person(Role.GRID_WORKER), "draft", "report.not_submitted"),
        (None, "submitted", "report.assignee_unknown"),
        (person(Role.GRID_WORKER, street=OTHER_STREET), "submitted", "report.assignee_unknown"),
        (person(Role.GRID_WORKER, active=False), "submitted", "report.assignee_inactive"),
        (person(Role.DISPATCHER), "submitted", "report.assignee_not_eligible"),
        (person(Role.REVIEWER, Role.CASE_HANDLER), "submitted", "report.assignee_not_eligible"),
        (person(), "submitted", "report.assignee_not_eligible"),
    ],
)
def test_refusals(candidate, status, code):
    with pytest.raises(DomainError) as refused:
        decide(candidate, status=status)
    assert refused.value.code == code
    problem = CATALOGUE[code]
    assert problem.en and problem.zh
    if "{id}" in problem.en:
        assert str(TO) in refused.value.message("en") and str(TO) in refused.value.message("zh")


def test_a_draft_is_refused_before_anything_else():
    with pytest.raises(DomainError) as refused:
        decide(None, status="draft", to=NOW_ASSIGNED)
    assert refused.value.code == "report.not_submitted"
