"""The case lifecycle (待立案 → 立案/不予立案 → 办结 → 归档) as a pure guarded state machine."""

from __future__ import annotations

import string
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from fieldsync.errors import DomainError


class CaseState(StrEnum):
    AWAITING_FILING = "awaiting_filing"  # 待立案
    FILED = "filed"  # 已立案
    DECLINED = "declined"  # 不予立案 (terminal)
    CONCLUDED = "concluded"  # 已办结
    ARCHIVED = "archived"  # 已归档 (terminal, immutable: 留存备查)


class CaseAction(StrEnum):
    FILE = "file"  # 立案, numbered by the service from the configured format
    DECLINE = "decline"  # 不予立案, needs a reason
    CONCLUDE = "conclude"  # 办结, needs the decision and a summary
    ARCHIVE = "archive"  # 归档, by the team captain only


STATE_ZH: dict[CaseState, str] = {
    CaseState.AWAITING_FILING: "待立案",
    CaseState.FILED: "已立案",
    CaseState.DECLINED: "不予立案",
    CaseState.CONCLUDED: "已办结",
    CaseState.ARCHIVED: "已归档",
}
ACTION_ZH: dict[CaseAction, str] = {
    CaseAction.FILE: "立案",
    CaseAction.DECLINE: "不予立案",
    CaseAction.CONCLUDE: "办结",
    CaseAction.ARCHIVE: "归档",
}

TRANSITIONS: dict[tuple[CaseState, CaseAction], CaseState] = {
    (CaseState.AWAITING_FILING, CaseAction.FILE): CaseState.FILED,
    (CaseState.AWAITING_FILING, CaseAction.DECLINE): CaseState.DECLINED,
    (CaseState.FILED, CaseAction.CONCLUDE): CaseState.CONCLUDED,
    (CaseState.CONCLUDED, CaseAction.ARCHIVE): CaseState.ARCHIVED,
}
TERMINAL_STATES = frozenset({CaseState.DECLINED, CaseState.ARCHIVED})

CASE_HANDLER_ROLE = "case_handler"
CAPTAIN_ROLE = "captain"

# What each action must carry in its payload: non-blank strings. Filing carries nothing: case
# numbers are always generated, one sequence per street and year, so none is ever taken twice.
REQUIRED_PAYLOAD: dict[CaseAction, tuple[str, tuple[str, ...]]] = {
    CaseAction.DECLINE: ("case.reason_required", ("reason",)),
    CaseAction.CONCLUDE: ("case.conclusion_required", ("decision", "summary")),
}

DEFAULT_CASE_NUMBER_FORMAT = "京{street_abbrev}执〔{year}〕第{seq:04d}号"
_CASE_NUMBER_FIELDS = frozenset({"street_abbrev", "year", "seq"})


def allowed_actions(state: str) -> frozenset[CaseAction]:
    """The actions the machine accepts from `state` (before any check of who acts)."""
    state = CaseState(state)
    return frozenset(action for (s, action) in TRANSITIONS if s is state)


def transition(
    state: str,
    action: str,
    *,
    actor_roles: frozenset[str],
    actor_department_code: str | None,
    case_department_code: str,
    payload: Mapping[str, Any],
) -> CaseState:
    """The state after `action`, or DomainError; checks in order: action, state, actor, payload.

    The state is checked before the actor, so a transition out of order answers 409 whoever
    asks. Filing, declining and concluding belong to a case handler (办案人员) of the resident
    unit owning the case; archiving belongs to the team captain (队长), whose street the
    service checks. A stored state that is not a CaseState is corruption: ValueError.
    """
    current = CaseState(state)
    if action not in {a.value for a in CaseAction}:
        raise DomainError("case.unknown_action", action=str(action))
    act = CaseAction(action)
    if current is CaseState.ARCHIVED:
        raise DomainError("case.archived")
    target = TRANSITIONS.get((current, act))
    if target is None:
        raise DomainError(
            "case.transition_not_allowed",
            state=current.value,
            action=act.value,
            state_zh=STATE_ZH[current],
            action_zh=ACTION_ZH[act],
        )

    roles = frozenset(actor_roles)
    if act is CaseAction.ARCHIVE:
        if CAPTAIN_ROLE not in roles:
            raise DomainError("case.archive_captain_only")
    else:
        if CASE_HANDLER_ROLE not in roles:
            raise DomainError("case.handler_only", action=act.value, action_zh=ACTION_ZH[act])
        if actor_department_code != case_department_code:
            raise DomainError("case.other_department", department=case_department_code)

    if act in REQUIRED_PAYLOAD:
        code, fields = REQUIRED_PAYLOAD[act]
        missing = {
            name: ["Required: a non-empty string."]
            for name in fields
            if not isinstance(payload.get(name), str) or not payload[name].strip()
        }
        if missing:
            raise DomainError(code, errors=missing)
    return target


def check_case_number_format(fmt: str) -> str:
    """`fmt` if it can number cases, else ValueError saying why (checked at startup).

    It may use only {street_abbrev}, {year} and {seq} (with a format spec), and must use {year}
    and {seq}: numbers are unique per street and year only if both are in them.
    """
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(fmt) if name is not None}
    except ValueError as error:
        raise ValueError(f"case number format {fmt!r}: {error}") from None
    if unknown := names - _CASE_NUMBER_FIELDS:
        raise ValueError(
            f"case number format {fmt!r}: unknown field {{{sorted(unknown)[0]}}}; "
            "use only {street_abbrev}, {year} and {seq}"
        )
    if missing := {"year", "seq"} - names:
        raise ValueError(
            f"case number format {fmt!r}: it must contain {{{sorted(missing)[0]}}}, or two "
            "cases of one street could get the same number"
        )
    try:
        fmt.format(street_abbrev="东华", year=2026, seq=1)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise ValueError(f"case number format {fmt!r}: {error}") from None
    return fmt


def format_case_number(
    fmt: str = DEFAULT_CASE_NUMBER_FORMAT, *, street_abbrev: str, year: int, seq: int
) -> str:
    """A case number (案件编号) such as 京东华执〔2026〕第0001号 (uniqueness: the service)."""
    check_case_number_format(fmt)
    if not street_abbrev:
        raise ValueError("street_abbrev is required")
    if seq < 1:
        raise ValueError("seq starts at 1")
    return fmt.format(street_abbrev=street_abbrev, year=year, seq=seq)
