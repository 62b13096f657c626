"""Measures taken on site (现场措施): validation of their details, the check against decisions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fieldsync.clock import parse_rfc3339
from fieldsync.errors import DomainError
from fieldsync.rules.second_inspector import MEASURE_ZH, TIER_ZH, Decision, MeasureType

MEASURE_FIELDS = frozenset({"id", "type", "details", "finding_id"})

DETAIL_FIELDS: dict[MeasureType, frozenset[str]] = {
    MeasureType.PHOTO_EVIDENCE: frozenset({"evidence"}),
    MeasureType.SUMMONS: frozenset({"appointment_at", "place"}),
    MeasureType.SEIZURE: frozenset({"items", "receipt_no"}),
    MeasureType.ORDER_RECTIFICATION: frozenset({"deadline", "requirement"}),
    MeasureType.ONSITE_PENALTY: frozenset({"amount", "party_kind", "legal_basis"}),
}
SEIZED_ITEM_FIELDS = frozenset({"item", "quantity", "unit"})

# 行政处罚法 (2021) 第五十一条: a fine decided on the spot is at most 200 yuan for a citizen and
# 3000 yuan for a legal person or other organisation; above that it needs the ordinary procedure.
ONSITE_PENALTY_LIMIT_YUAN: dict[str, Decimal] = {
    "individual": Decimal("200"),
    "organisation": Decimal("3000"),
}
PARTY_KIND_ZH = {"individual": "个人", "organisation": "单位"}

_SHA256 = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")  # ASCII: Decimal() takes any script's digits
_RFC3339_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_MEASURE_TYPES = frozenset(m.value for m in MeasureType)

Errors = dict[str, list[str]]


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _add(errors: Errors, key: str, message: str) -> None:
    errors.setdefault(key, []).append(message)


def _text(errors: Errors, details: Mapping[str, Any], key: str, prefix: str = "details") -> bool:
    """Check a required non-blank string; True when it is fine."""
    value = details.get(key)
    if not isinstance(value, str) or not value.strip():
        _add(errors, f"{prefix}.{key}", "Required: a non-empty string.")
        return False
    return True


def _unknown_keys(errors: Errors, obj: Mapping[str, Any], allowed: frozenset[str], prefix: str):
    for key in sorted(set(obj) - allowed, key=str):
        _add(errors, f"{prefix}.{key}" if prefix else str(key), "Unknown field.")


def parse_rfc3339_datetime(value: Any) -> datetime | None:
    """An RFC 3339 date-time with its offset, or None; naive times are refused."""
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def _positive_decimal(value: Any) -> Decimal | None:
    """A number > 0 given as a JSON number or a decimal string; None when it is not one."""
    if isinstance(value, bool):  # bool is an int in Python, never a quantity
        return None
    if isinstance(value, int | float | Decimal):
        text = str(value)
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        text = value
    else:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() and number > 0 else None


def _photo_evidence(details: Mapping[str, Any], errors: Errors) -> str | None:
    evidence = details.get("evidence")
    if not isinstance(evidence, list) or not evidence:
        _add(errors, "details.evidence", "At least one evidence SHA-256 is required.")
        return None
    for index, digest in enumerate(evidence):
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            _add(errors, f"details.evidence.{index}", "Must be 64 lowercase hex digits.")
    if len(set(map(str, evidence))) != len(evidence):
        _add(errors, "details.evidence", "Each evidence hash appears once.")
    return None


def _summons(details: Mapping[str, Any], errors: Errors) -> str | None:
    if parse_rfc3339_datetime(details.get("appointment_at")) is None:
        _add(errors, "details.appointment_at", "Required: an RFC 3339 date-time with offset.")
    _text(errors, details, "place")
    return None


def _seizure(details: Mapping[str, Any], errors: Errors) -> str | None:
    specific = None
    items = details.get("items")
    if items is None or items == []:
        _add(errors, "details.items", "At least one seized item is required.")
        specific = "measure.seizure_items_required"
    elif not isinstance(items, list):
        _add(errors, "details.items", "Must be a list of {item, quantity, unit}.")
    else:
        for index, entry in enumerate(items):
            prefix = f"details.items.{index}"
            if not isinstance(entry, Mapping):
                _add(errors, prefix, "Must be an object {item, quantity, unit}.")
                continue
            _unknown_keys(errors, entry, SEIZED_ITEM_FIELDS, prefix)
            _text(errors, entry, "item", prefix)
            _text(errors, entry, "unit", prefix)
            if _positive_decimal(entry.get("quantity")) is None:
                _add(errors, f"{prefix}.quantity", "Required: a number greater than 0.")
    _text(errors, details, "receipt_no")
    return specific


def _order_rectification(details: Mapping[str, Any], errors: Errors) -> str | None:
    deadline = details.get("deadline")
    is_date = isinstance(deadline, str) and _RFC3339_DATE.fullmatch(deadline)
    if is_date:
        try:
            date.fromisoformat(deadline)
        except ValueError:
            is_date = False
    if not is_date and parse_rfc3339_datetime(deadline) is None:
        _add(errors, "details.deadline", "Required: an RFC 3339 date or date-time with offset.")
    _text(errors, details, "requirement")
    return None


def _onsite_penalty(details: Mapping[str, Any], errors: Errors) -> str | None:
    specific = None
    amount = _positive_decimal(details.get("amount"))
    if amount is None:
        _add(errors, "details.amount", "Required: an amount in yuan greater than 0.")
    elif amount != amount.quantize(Decimal("0.01")):
        _add(errors, "details.amount", "At most two decimal places (fen).")
        amount = None
    if details.get("party_kind") not in ONSITE_PENALTY_LIMIT_YUAN:
        _add(errors, "details.party_kind", "Required: 'individual' or 'organisation'.")
    # An amount over the on-the-spot limit is not a shape error: the fine was imposed in the
    # field and is kept; the rule check flags it (penalties_over_limit) for the captain.
    if not _text(errors, details, "legal_basis"):
        # The legal basis outranks the limit: without it there is no penalty at all.
        specific = "measure.penalty_legal_basis_required"
    return specific


_VALIDATORS = {
    MeasureType.PHOTO_EVIDENCE: _photo_evidence,
    MeasureType.SUMMONS: _summons,
    MeasureType.SEIZURE: _seizure,
    MeasureType.ORDER_RECTIFICATION: _order_rectification,
    MeasureType.ONSITE_PENALTY: _onsite_penalty,
}


def validate_measure(measure: Mapping[str, Any]) -> None:
    """Raise DomainError unless `measure` is `{id, type, details[, finding_id]}` with valid details.

    `errors` maps dotted field paths (`details.items.0.quantity`) to messages. Unknown fields
    are rejected at every level: a phone sending a field we would silently drop is a bug.
    """
    if not isinstance(measure, Mapping):
        raise DomainError("measure.invalid", errors={"_schema": ["A measure is an object."]})
    errors: Errors = {}
    _unknown_keys(errors, measure, MEASURE_FIELDS, "")
    if not _is_uuid(measure.get("id")):
        _add(errors, "id", "Required: a UUID string (8-4-4-4-12 hex digits).")
    finding_id = measure.get("finding_id")
    if finding_id is not None and (not isinstance(finding_id, str) or not finding_id):
        _add(errors, "finding_id", "When given: a non-empty string.")
    kind = measure.get("type")
    if isinstance(kind, str) and kind not in _MEASURE_TYPES:
        _add(errors, "type", f"Unknown measure type; one of {', '.join(MeasureType)}.")
        raise DomainError("measure.unknown_type", errors=errors, type=kind)
    if not isinstance(kind, str):
        _add(errors, "type", f"Required: one of {', '.join(MeasureType)}.")
    if errors:
        raise DomainError("measure.invalid", errors=errors)

    measure_type = MeasureType(kind)
    details = measure.get("details")
    if not isinstance(details, Mapping):
        raise DomainError("measure.invalid_details", errors={"details": ["Must be an object."]})
    _unknown_keys(errors, details, DETAIL_FIELDS[measure_type], "details")
    specific = _VALIDATORS[measure_type](details, errors)
    if specific:
        raise DomainError(specific, errors=errors)
    if errors:
        raise DomainError("measure.invalid_details", errors=errors)


# --- measures against the decisions --------------------------------------------------------

FLAG_TEXT: dict[str, tuple[str, str]] = {
    "inspection.measure_not_allowed": (
        "Measure {measure_id} ({type}) is beyond what {scope} allows; it is kept and flagged "
        "for the captain.",
        "措施 {measure_id}（{type_zh}）超出了{scope_zh}允许的范围；已保留并标记，待队长审核。",
    ),
    "inspection.penalty_over_onsite_limit": (
        "Measure {measure_id}: an on-the-spot fine of {amount} yuan for a party of kind "
        "{party_kind} is over the limit of {limit} yuan (行政处罚法 第五十一条); it is kept and "
        "flagged for the captain.",
        "措施 {measure_id}：对{party_kind_zh}当场处以罚款 {amount} 元，超过 {limit} 元的上限"
        "（行政处罚法第五十一条）；已保留并标记，待队长审核。",
    ),
    "inspection.measure_unknown_finding": (
        "Measure {measure_id} names finding {finding_id}, which is not in the inspection.",
        "措施 {measure_id} 关联的问题 {finding_id} 不在本次检查中。",
    ),
    "inspection.measure_finding_required": (
        "Measure {measure_id} ({type}) names no finding of the inspection, and not every "
        "finding's decision allows it (not: {disallowed}); name the finding it serves.",
        "措施 {measure_id}（{type_zh}）未关联本次检查中的问题，而并非每个问题的判定都允许该措施"
        "（不允许：{disallowed}）；请注明该措施针对的问题。",
    ),
    "inspection.measure_evidence_not_attached": (
        "Measure {measure_id} (photo evidence) names photos that are not among the "
        "inspection's evidence: {missing}.",
        "措施 {measure_id}（拍照取证）所列照片不在本次检查的证据中：{missing}。",
    ),
}


@dataclass(frozen=True)
class Flag:
    """A mark on an inspection for the captain: what happened is kept, the doubt is recorded."""

    code: str
    message_en: str
    message_zh: str
    measure_id: str | None
    finding_id: str | None = None

    def message(self, lang: str = "en") -> str:
        return self.message_zh if lang.startswith("zh") else self.message_en

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "measure_id": self.measure_id,
            "finding_id": self.finding_id,
            "message_en": self.message_en,
            "message_zh": self.message_zh,
        }


def _flag(code: str, measure_id: Any, finding_id: Any, **params: str) -> Flag:
    en, zh = FLAG_TEXT[code]
    params = {"measure_id": str(measure_id), "finding_id": str(finding_id), **params}
    return Flag(
        code,
        en.format(**params),
        zh.format(**params),
        None if measure_id is None else str(measure_id),
        None if finding_id is None else str(finding_id),
    )


def _scope(decision: Decision) -> tuple[str, str]:
    return (
        f"the {decision.tier.value} tier for matter {decision.matter_code}",
        f"事项 {decision.matter_code} 的{TIER_ZH[decision.tier]}",
    )


def measures_beyond(
    decisions: Decision | Mapping[str, Decision], measures: Iterable[Mapping[str, Any]]
) -> list[Flag]:
    """Flags for the measures that the decisions do not allow, in the order of `measures`.

    With one Decision every measure is checked against it. With decisions by finding id, a
    measure naming its `finding_id` is checked against that finding's decision. A measure
    naming none may serve any finding, so it is checked conservatively: allowed only when
    every finding's decision allows it — when only some do, it is flagged
    (`inspection.measure_finding_required`) until the officer names the finding it serves;
    when none does, it is not allowed. A `finding_id` not among the decisions is flagged and
    then checked as naming none. Nothing is ever dropped here.
    """
    flags: list[Flag] = []
    per_finding = not isinstance(decisions, Decision)
    by_finding: Mapping[str, Decision] = {} if isinstance(decisions, Decision) else decisions
    every = [decisions] if isinstance(decisions, Decision) else list(decisions.values())
    for measure in measures:
        measure_id, kind = measure.get("id"), measure.get("type")
        finding_id = measure.get("finding_id")
        type_zh = MEASURE_ZH.get(kind, str(kind)) if isinstance(kind, str) else str(kind)
        text = {"type": str(kind), "type_zh": type_zh}
        if per_finding and isinstance(finding_id, str) and finding_id in by_finding:
            decision = by_finding[finding_id]
            if not decision.allows(kind):
                scope, scope_zh = _scope(decision)
                flags.append(
                    _flag(
                        "inspection.measure_not_allowed",
                        measure_id,
                        finding_id,
                        scope=scope,
                        scope_zh=scope_zh,
                        **text,
                    )
                )
            continue
        if per_finding and finding_id is not None:
            flags.append(_flag("inspection.measure_unknown_finding", measure_id, finding_id))
        disallowed = [(f, d) for f, d in by_finding.items() if not d.allows(kind)]
        if not any(d.allows(kind) for d in every):
            if len(every) == 1:
                scope, scope_zh = _scope(every[0])
            else:
                scope, scope_zh = "any finding's decision", "任何问题的判定"
            flags.append(
                _flag(
                    "inspection.measure_not_allowed",
                    measure_id,
                    finding_id,
                    scope=scope,
                    scope_zh=scope_zh,
                    **text,
                )
            )
        elif disallowed:
            flags.append(
                _flag(
                    "inspection.measure_finding_required",
                    measure_id,
                    finding_id,
                    disallowed=", ".join(
                        f"{f} ({d.matter_code}, {d.tier.value})" for f, d in disallowed
                    ),
                    **text,
                )
            )
    return flags


def photos_not_attached(
    measures: Iterable[Mapping[str, Any]], evidence: Iterable[str]
) -> list[Flag]:
    """Flags for photo-evidence measures naming photos the inspection does not hold: the photo
    a measure relies on must be among the evidence that is kept and reviewed."""
    attached = set(evidence)
    flags: list[Flag] = []
    for measure in measures:
        details = measure.get("details")
        if measure.get("type") != MeasureType.PHOTO_EVIDENCE or not isinstance(details, Mapping):
            continue
        named = details.get("evidence")
        missing = [h for h in named if h not in attached] if isinstance(named, list) else []
        if missing:
            flags.append(
                _flag(
                    "inspection.measure_evidence_not_attached",
                    measure.get("id"),
                    measure.get("finding_id"),
                    missing=", ".join(map(str, missing)),
                )
            )
    return flags


def check_measures(
    decisions: Decision | Mapping[str, Decision],
    measures: Iterable[Mapping[str, Any]],
    evidence: Iterable[str],
) -> list[Flag]:
    """Every flag the measures of an inspection get: beyond the decisions, fines over the
    on-the-spot limit, photos not among the evidence. What the server and a phone both run."""
    measures = list(measures)
    return [
        *measures_beyond(decisions, measures),
        *penalties_over_limit(measures),
        *photos_not_attached(measures, evidence),
    ]


def penalties_over_limit(measures: Iterable[Mapping[str, Any]]) -> list[Flag]:
    """Flags for on-the-spot fines above the legal limit (DOMAIN.md §4: kept, never dropped)."""
    flags: list[Flag] = []
    for measure in measures:
        details = measure.get("details")
        if measure.get("type") != MeasureType.ONSITE_PENALTY or not isinstance(details, Mapping):
            continue
        amount = _positive_decimal(details.get("amount"))
        party_kind = details.get("party_kind")
        if amount is None or party_kind not in ONSITE_PENALTY_LIMIT_YUAN:
            continue
        limit = ONSITE_PENALTY_LIMIT_YUAN[party_kind]
        if amount > limit:
            flags.append(
                _flag(
                    "inspection.penalty_over_onsite_limit",
                    measure.get("id"),
                    measure.get("finding_id"),
                    amount=str(details["amount"]),
                    limit=str(limit),
                    party_kind=party_kind,
                    party_kind_zh=PARTY_KIND_ZH[party_kind],
                )
            )
    return flags
