"""Unit tests of the case lifecycle: 待立案 → 立案/不予立案 → 办结 → 归档."""

import pytest

from fieldsync.errors import CATALOGUE, DomainError
from fieldsync.rules.case_states import (
    DEFAULT_CASE_NUMBER_FORMAT,
    TERMINAL_STATES,
    CaseAction,
    CaseState,
    allowed_actions,
    format_case_number,
    transition,
)

HANDLER = {"actor_roles": frozenset({"case_handler"}), "actor_department_code": "market"}
CAPTAIN = {"actor_roles": frozenset({"captain"}), "actor_department_code": None}
PAYLOAD = {
    "file": {},
    "decline": {"reason": "不属于本单位职责"},
    "conclude": {"decision": "罚款200元", "summary": "当事人已缴纳罚款并整改"},
    "archive": {},
}


def act(state, action, actor=None, payload=None):
    actor = actor or (CAPTAIN if action == "archive" else HANDLER)
    return transition(
        state,
        action,
        **actor,
        case_department_code="market",
        payload=PAYLOAD[action] if payload is None else payload,
    )


def refused(*args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as info:
        act(*args, **kwargs)
    assert info.value.code in CATALOGUE
    return info.value


def test_the_whole_life_of_a_case():
    state = CaseState.AWAITING_FILING
    for action, expected in [
        ("file", CaseState.FILED),
        ("conclude", CaseState.CONCLUDED),
        ("archive", CaseState.ARCHIVED),
    ]:
        state = act(state, action)
        assert state is expected
    assert state in TERMINAL_STATES


def test_declining_ends_the_case():
    assert act("awaiting_filing", "decline") is CaseState.DECLINED
    assert allowed_actions("declined") == frozenset()
    error = refused("declined", "file")
    assert (error.code, error.status) == ("case.transition_not_allowed", 409)


def test_allowed_actions():
    assert allowed_actions("awaiting_filing") == {CaseAction.FILE, CaseAction.DECLINE}
    assert allowed_actions("filed") == {CaseAction.CONCLUDE}
    assert allowed_actions("concluded") == {CaseAction.ARCHIVE}
    assert allowed_actions("archived") == frozenset()


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("awaiting_filing", "conclude"),
        ("awaiting_filing", "archive"),
        ("filed", "file"),
        ("filed", "decline"),
        ("filed", "archive"),
        ("concluded", "conclude"),
        ("concluded", "file"),
        ("declined", "decline"),
        ("declined", "archive"),
    ],
)
def test_transitions_out_of_order(state, action):
    error = refused(state, action)
    assert (error.code, error.status) == ("case.transition_not_allowed", 409)
    assert action in error.message("en")
    assert "状态" in error.message("zh")


@pytest.mark.parametrize("action", [a.value for a in CaseAction])
def test_an_archived_case_never_changes(action):
    error = refused("archived", action)
    assert (error.code, error.status) == ("case.archived", 409)


@pytest.mark.parametrize("roles", [{"case_handler"}, {"admin"}, {"reviewer"}, {"officer"}, set()])
def test_only_the_captain_archives(roles):
    actor = {"actor_roles": frozenset(roles), "actor_department_code": "market"}
    error = refused("concluded", "archive", actor)
    assert (error.code, error.status) == ("case.archive_captain_only", 403)


def test_order_is_checked_before_the_actor():
    actor = {"actor_roles": frozenset({"officer"}), "actor_department_code": "market"}
    assert refused("filed", "archive", actor).code == "case.transition_not_allowed"


@pytest.mark.parametrize("action", ["file", "decline"])
def test_only_a_case_handler_files_or_declines(action):
    for roles in [{"captain"}, {"officer"}, {"admin"}]:
        actor = {"actor_roles": frozenset(roles), "actor_department_code": "market"}
        error = refused("awaiting_filing", action, actor)
        assert (error.code, error.status) == ("case.handler_only", 403)


def test_only_the_owning_units_case_handler_acts():
    for department in ["chengguan", None]:
        actor = {"actor_roles": frozenset({"case_handler"}), "actor_department_code": department}
        error = refused("filed", "conclude", actor)
        assert (error.code, error.status) == ("case.other_department", 403)
        assert "market" in error.message("zh")


@pytest.mark.parametrize(
    ("state", "action", "payload", "code", "fields"),
    [
        ("awaiting_filing", "decline", {}, "case.reason_required", {"reason"}),
        ("awaiting_filing", "decline", {"reason": None}, "case.reason_required", {"reason"}),
        ("awaiting_filing", "decline", {"reason": ""}, "case.reason_required", {"reason"}),
        ("awaiting_filing", "decline", {"reason": 7}, "case.reason_required", {"reason"}),
        ("filed", "conclude", {"decision": "罚款"}, "case.conclusion_required", {"summary"}),
        ("filed", "conclude", {}, "case.conclusion_required", {"decision", "summary"}),
    ],
)
def test_payload_is_required(state, action, payload, code, fields):
    error = refused(state, action, payload=payload)
    assert (error.code, error.status) == (code, 422)
    assert set(error.errors) == fields


def test_unknown_action_and_state():
    assert refused("filed", "reopen", payload={}).code == "case.unknown_action"
    with pytest.raises(ValueError):
        transition(
            "lost",
            "file",
            **HANDLER,
            case_department_code="market",
            payload=PAYLOAD["file"],
        )


def test_case_number_default_format():
    assert (
        format_case_number(DEFAULT_CASE_NUMBER_FORMAT, street_abbrev="东华", year=2026, seq=1)
        == "京东华执〔2026〕第0001号"
    )
    assert (
        format_case_number(street_abbrev="东华", year=2026, seq=12345)
        == "京东华执〔2026〕第12345号"
    )


def test_case_number_custom_format():
    fmt = "{street_abbrev}-{year}-{seq:06d}"
    assert format_case_number(fmt, street_abbrev="DH", year=2027, seq=42) == "DH-2027-000042"


@pytest.mark.parametrize(
    ("fmt", "kwargs"),
    [
        ("京{street}执{year}", {}),
        ("{0}{year}", {}),
        ("{year.real}{seq}", {}),
        (DEFAULT_CASE_NUMBER_FORMAT, {"seq": 0}),
        (DEFAULT_CASE_NUMBER_FORMAT, {"street_abbrev": ""}),
        ("京{street_abbrev}执第{seq:04d}号", {}),  # no year: 2026's 0001 and 2027's collide
        ("京{street_abbrev}执〔{year}〕", {}),  # no seq: every case gets the same number
        ("{year}-{seq:04x", {}),  # not a format at all
        ("{year}-{seq:q}", {}),  # a spec an int does not take
    ],
)
def test_case_number_bad_input(fmt, kwargs):
    args = {"street_abbrev": "东华", "year": 2026, "seq": 1, **kwargs}
    with pytest.raises(ValueError):
        format_case_number(fmt, **args)


def test_filing_needs_no_payload():
    assert act("awaiting_filing", "file", payload={}) is CaseState.FILED


@pytest.mark.parametrize(
    "fmt", ["{seq}", "京{street_abbrev}执{seq:04d}", "{year}{seq:q}", "{year}{sequence}"]
)
def test_a_bad_configured_format_stops_the_server_at_startup(fmt, tmp_path):
    from fieldsync.config import Config

    with pytest.raises(ValueError, match="FIELDSYNC_CASE_NUMBER_FORMAT"):
        Config.from_env(case_number_format=fmt, data_dir=tmp_path)
    assert Config.from_env(case_number_format="{year}/{seq}", data_dir=tmp_path)
