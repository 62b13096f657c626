"""The second-inspector rule (第二检查人, 前端统一执法, DOMAIN.md §4) as a pure function."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Tier(StrEnum):
    """The procedure the people on scene may follow."""

    ENFORCEMENT = "enforcement"  # 执法程序
    INSPECTION = "inspection"  # 现场检查程序
    INVESTIGATION = "investigation"  # 现场调查程序
    REFERRAL = "referral"  # 吹哨移交挂牌单位


class MeasureType(StrEnum):
    """A measure taken on site (现场措施)."""

    PHOTO_EVIDENCE = "photo_evidence"  # 拍照取证
    SUMMONS = "summons"  # 约谈违法相对人到综合执法队
    SEIZURE = "seizure"  # 暂扣物品
    ORDER_RECTIFICATION = "order_rectification"  # 责令改正
    ONSITE_PENALTY = "onsite_penalty"  # 当场处罚


class DepartmentKind(StrEnum):
    """Whether a department has staff on the street's team."""

    RESIDENT = "resident"  # 常驻单位 (城管 and the "5")
    LISTED = "listed"  # 挂牌单位 (the "N": they come when whistled)


# The law's table (DOMAIN.md §4). A matter in the catalogue may narrow it, never widen it.
DEFAULT_ALLOWED: dict[Tier, frozenset[MeasureType]] = {
    Tier.ENFORCEMENT: frozenset(MeasureType),
    Tier.INSPECTION: frozenset(
        {MeasureType.PHOTO_EVIDENCE, MeasureType.SUMMONS, MeasureType.SEIZURE}
    ),
    Tier.INVESTIGATION: frozenset({MeasureType.PHOTO_EVIDENCE, MeasureType.SUMMONS}),
    Tier.REFERRAL: frozenset({MeasureType.PHOTO_EVIDENCE}),
}

TIER_ZH: dict[Tier, str] = {
    Tier.ENFORCEMENT: "执法程序",
    Tier.INSPECTION: "现场检查程序",
    Tier.INVESTIGATION: "现场调查程序",
    Tier.REFERRAL: "吹哨移交",
}

MEASURE_ZH: dict[MeasureType, str] = {
    MeasureType.PHOTO_EVIDENCE: "拍照取证",
    MeasureType.SUMMONS: "约谈违法相对人",
    MeasureType.SEIZURE: "暂扣物品",
    MeasureType.ORDER_RECTIFICATION: "责令改正",
    MeasureType.ONSITE_PENALTY: "当场处罚",
}

# Only this role can ever count, as authority or as second inspector. A captain or case handler
# counts only if they also hold it: the roster, not the job title, says who enforces.
OFFICER_ROLE = "officer"
# Auxiliary forces (辅助力量) never count, whatever else the roster says of them (DOMAIN.md §2).
AUXILIARY_ROLES = frozenset({"grid_worker"})

# (en, zh) templates over {person_id} and {detail}.
REASON_TEXT: dict[str, tuple[str, str]] = {
    "tier.enforcement": (
        "Two or more officers present hold authority for the matter: enforcement procedure.",
        "现场两名及以上执法人员具有相应执法权，按执法程序处理。",
    ),
    "tier.inspection": (
        "Only one officer present holds authority and an officer of another resident unit acts "
        "as second inspector: on-site inspection procedure.",
        "现场仅一名执法人员具有相应执法权，由其他常驻单位执法人员作为第二检查人，履行现场检查程序。",
    ),
    "tier.investigation": (
        "No officer present holds authority and the matter belongs to a resident unit: on-site "
        "investigation procedure (photo evidence, summons).",
        "现场检查人员均不具有相应执法权，且该事项属于常驻单位执法事项，履行现场调查程序"
        "（拍照取证、约谈违法相对人）。",
    ),
    "tier.investigation_no_second_inspector": (
        "Only one officer present holds authority and no officer of another resident unit with "
        "a valid certificate is present to act as second inspector: on-site investigation "
        "procedure.",
        "现场仅一名执法人员具有相应执法权，且无其他持有效执法证的常驻单位执法人员可作为第二检查人，"
        "履行现场调查程序。",
    ),
    "tier.referral": (
        "No officer present holds authority and the matter belongs to a listed unit: photo "
        "evidence only; the matter is whistled to that unit.",
        "现场检查人员均不具有相应执法权，且该事项属于挂牌单位执法事项：仅可拍照取证，并向该单位吹哨。",
    ),
    "matter.measures_restricted": (
        "The matter allows fewer measures than the procedure does; not allowed for it: {detail}.",
        "该事项允许的措施少于该程序的默认范围；该事项不允许：{detail}。",
    ),
    "person.authorised": (
        "{person_id} holds authority for the matter: an officer of its owning department with "
        "a valid certificate ({detail}).",
        "{person_id} 具有该事项执法权：为主管部门执法人员，持有有效执法证（{detail}）。",
    ),
    "person.second_inspector": (
        "{person_id} acts as second inspector: an officer of a resident unit with a valid "
        "certificate, the lowest id among those eligible ({detail}).",
        "{person_id} 作为第二检查人：为持有效执法证的常驻单位执法人员，"
        "在符合条件者（{detail}）中编号最小。",
    ),
    "person.second_inspector_not_chosen": (
        "{person_id} could act as second inspector, but {detail} has the lowest id and acts.",
        "{person_id} 可作为第二检查人，但按编号最小规则由 {detail} 担任。",
    ),
    "person.listed_unit_not_second_inspector": (
        "{person_id} is an officer of a listed unit ({detail}) with no authority for the "
        "matter; an officer of a listed unit is never a second inspector.",
        "{person_id} 为挂牌单位（{detail}）执法人员，对该事项无执法权；"
        "挂牌单位人员不能作为第二检查人。",
    ),
    "person.other_department": (
        "{person_id} is an officer of another department ({detail}) and holds no authority "
        "for the matter.",
        "{person_id} 为其他部门（{detail}）执法人员，对该事项无执法权。",
    ),
    "person.not_an_officer": (
        "{person_id} is not an enforcement officer (grid worker, volunteer or other helper) "
        "and never counts.",
        "{person_id} 不是执法人员（网格员、志愿者等辅助力量或其他人员），不计入检查人员。",
    ),
    "person.inactive": (
        "{person_id} was not active on the roster at the time of the inspection and does not "
        "count.",
        "{person_id} 在检查时已在名册中停用，不计入检查人员。",
    ),
    "person.no_department": (
        "{person_id} belongs to no department and cannot count.",
        "{person_id} 不属于任何部门，不计入检查人员。",
    ),
    "person.duplicate": (
        "{person_id} is listed more than once and counts once.",
        "{person_id} 被重复列出，只计一次。",
    ),
    "certificate.missing": (
        "{person_id} holds no enforcement certificate.",
        "{person_id} 未持有执法证。",
    ),
    "certificate.expired": (
        "{person_id}'s certificate {detail} had expired at the time of the inspection.",
        "{person_id} 的执法证 {detail} 在检查时已过期。",
    ),
    "certificate.not_yet_valid": (
        "{person_id}'s certificate {detail} was not yet valid at the time of the inspection.",
        "{person_id} 的执法证 {detail} 在检查时尚未生效。",
    ),
    "certificate.revoked": (
        "{person_id}'s certificate {detail} had been revoked at the time of the inspection.",
        "{person_id} 的执法证 {detail} 在检查时已被吊销。",
    ),
}


def as_utc(value: datetime, what: str = "datetime") -> datetime:
    """`value` in UTC; a naive datetime is refused because its instant is unknown."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class CertificateFacts:
    """An enforcement certificate (执法证): valid on [valid_from, valid_to), until revoked."""

    number: str
    valid_from: datetime
    valid_to: datetime
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "valid_from", as_utc(self.valid_from, "valid_from"))
        object.__setattr__(self, "valid_to", as_utc(self.valid_to, "valid_to"))
        if self.revoked_at is not None:
            object.__setattr__(self, "revoked_at", as_utc(self.revoked_at, "revoked_at"))
        if self.valid_to <= self.valid_from:
            raise ValueError(f"certificate {self.number}: valid_to must be after valid_from")

    def valid_at(self, at: datetime) -> bool:
        """Valid at `at`; a revocation after `at` does not undo what was done before it."""
        return self.status_at(at) is None

    def status_at(self, at: datetime) -> str | None:
        """None when valid at `at`, else the reason code; revocation outranks the period."""
        at = as_utc(at, "at")
        if self.revoked_at is not None and self.revoked_at <= at:
            return "certificate.revoked"
        if at < self.valid_from:
            return "certificate.not_yet_valid"
        if at >= self.valid_to:
            return "certificate.expired"
        return None


@dataclass(frozen=True)
class PersonFacts:
    """A person named present on scene, as the roster knew them at the time (department, roles
    and `active` of that moment; certificates carry their own validity)."""

    id: str
    department_code: str | None
    department_kind: DepartmentKind | None
    roles: frozenset[str]
    certificates: tuple[CertificateFacts, ...] = ()
    active: bool = True  # a deactivated person (left the team, suspended) never counts

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "certificates", tuple(self.certificates))
        if self.department_kind is not None:
            object.__setattr__(self, "department_kind", DepartmentKind(self.department_kind))
        # A department without its kind would leave "may be second inspector" undecidable.
        if (self.department_code is None) != (self.department_kind is None):
            raise ValueError(f"person {self.id}: department_code and department_kind go together")

    @property
    def is_officer(self) -> bool:
        return OFFICER_ROLE in self.roles and not self.roles & AUXILIARY_ROLES


@dataclass(frozen=True)
class MatterFacts:
    """A matter (执法事项) of the catalogue and the one department that legally owns it."""

    code: str
    department_code: str
    department_kind: DepartmentKind
    # None: the law's table. A mapping narrows the tiers it names; the others keep the table.
    allowed_measures: Mapping[Tier, frozenset[MeasureType]] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "department_kind", DepartmentKind(self.department_kind))
        if self.allowed_measures is not None:
            narrowed = {
                Tier(tier): frozenset(MeasureType(m) for m in measures)
                for tier, measures in self.allowed_measures.items()
            }
            object.__setattr__(self, "allowed_measures", MappingProxyType(narrowed))

    def allowed_for(self, tier: Tier) -> frozenset[MeasureType]:
        """The measures this matter allows under `tier`: never more than the law's table."""
        default = DEFAULT_ALLOWED[tier]
        if self.allowed_measures is None or tier not in self.allowed_measures:
            return default
        return self.allowed_measures[tier] & default


@dataclass(frozen=True)
class Reason:
    """One line of the explanation of a decision, with a stable machine code."""

    code: str
    person_id: str | None = None
    detail: str = ""

    def message(self, lang: str = "en") -> str:
        en, zh = REASON_TEXT.get(self.code, (self.code, self.code))
        template = zh if lang.startswith("zh") else en
        return template.format(person_id=self.person_id or "", detail=self.detail)

    @property
    def message_en(self) -> str:
        return self.message("en")

    @property
    def message_zh(self) -> str:
        return self.message("zh")

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "person_id": self.person_id,
            "detail": self.detail,
            "message_en": self.message_en,
            "message_zh": self.message_zh,
        }


@dataclass(frozen=True)
class Decision:
    """What the people on scene may do for one matter, and why."""

    matter_code: str
    tier: Tier
    authorised_ids: tuple[str, ...]  # the people holding authority, sorted
    second_inspector_id: str | None  # 第二检查人, only for Tier.INSPECTION
    allowed_measures: frozenset[MeasureType]
    reasons: tuple[Reason, ...]

    def allows(self, measure_type: object) -> bool:
        """Whether a measure of this type (a MeasureType or its string) is allowed."""
        return isinstance(measure_type, str) and measure_type in {
            m.value for m in self.allowed_measures
        }

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "matter_code": self.matter_code,
            "tier": self.tier.value,
            "authorised_ids": list(self.authorised_ids),
            "second_inspector_id": self.second_inspector_id,
            "allowed_measures": sorted(m.value for m in self.allowed_measures),
            "reasons": [r.to_dict() for r in self.reasons],
        }


def _deduplicate(present: Iterable[PersonFacts]) -> tuple[dict[str, PersonFacts], set[str]]:
    people: dict[str, PersonFacts] = {}
    duplicates: set[str] = set()
    for person in present:
        if not isinstance(person, PersonFacts):
            raise TypeError(f"present holds PersonFacts, got {type(person).__name__}")
        seen = people.get(person.id)
        if seen is None:
            people[person.id] = person
        elif seen == person:
            duplicates.add(person.id)
        else:
            # Two different truths about one person: the caller built its facts wrongly.
            raise ValueError(f"person {person.id} is given twice with different facts")
    return people, duplicates


def _certificate_reasons(person: PersonFacts, at: datetime) -> list[Reason]:
    """Why a person holds no valid certificate: one reason per certificate, oldest first."""
    if not person.certificates:
        return [Reason("certificate.missing", person.id)]
    ordered = sorted(person.certificates, key=lambda c: (c.valid_from, c.number))
    return [Reason(c.status_at(at) or "", person.id, c.number) for c in ordered]


def _valid_certificate(person: PersonFacts, at: datetime) -> CertificateFacts | None:
    valid = [c for c in person.certificates if c.valid_at(at)]
    return min(valid, key=lambda c: c.number) if valid else None


def decide(matter: MatterFacts, present: Sequence[PersonFacts], at: datetime) -> Decision:
    """Apply the rule for `matter` to the people `present` at the instant `at`.

    A = present active officers (role `officer`, no auxiliary role) of the matter's department
    with a certificate valid at `at`. |A| >= 2: enforcement. |A| = 1 and an officer of another
    *resident* unit with a valid certificate is present: inspection, with that officer as
    second inspector — among several, the lowest id by Unicode code point (plain string
    order, not locale order).
    |A| = 1 otherwise: investigation (two inspectors are the legal minimum, 行政处罚法 第四十二条).
    |A| = 0: investigation for a resident unit's matter, referral for a listed unit's.
    """
    at = as_utc(at, "at")
    people, duplicates = _deduplicate(present)

    valid_certificate: dict[str, CertificateFacts] = {}
    disqualified: dict[str, list[Reason]] = {}
    for pid, person in people.items():
        if not person.active:
            disqualified[pid] = [Reason("person.inactive", pid)]
        elif not person.is_officer:
            disqualified[pid] = [Reason("person.not_an_officer", pid)]
        elif person.department_code is None:
            disqualified[pid] = [Reason("person.no_department", pid)]
        elif (certificate := _valid_certificate(person, at)) is None:
            disqualified[pid] = _certificate_reasons(person, at)
        else:
            valid_certificate[pid] = certificate

    authorised = sorted(
        pid for pid in valid_certificate if people[pid].department_code == matter.department_code
    )
    candidates = sorted(
        pid
        for pid in valid_certificate
        if pid not in authorised and people[pid].department_kind is DepartmentKind.RESIDENT
    )
    seeking_second = len(authorised) == 1
    second: str | None = None
    if len(authorised) >= 2:
        tier, tier_code = Tier.ENFORCEMENT, "tier.enforcement"
    elif seeking_second and candidates:
        second = candidates[0]
        tier, tier_code = Tier.INSPECTION, "tier.inspection"
    elif seeking_second:
        tier, tier_code = Tier.INVESTIGATION, "tier.investigation_no_second_inspector"
    elif matter.department_kind is DepartmentKind.RESIDENT:
        tier, tier_code = Tier.INVESTIGATION, "tier.investigation"
    else:
        tier, tier_code = Tier.REFERRAL, "tier.referral"

    allowed = matter.allowed_for(tier)
    reasons = [Reason(tier_code)]
    if withheld := DEFAULT_ALLOWED[tier] - allowed:
        reasons.append(Reason("matter.measures_restricted", detail=", ".join(sorted(withheld))))
    for pid in sorted(people):
        person = people[pid]
        if pid in disqualified:
            reasons.extend(disqualified[pid])
        elif pid in authorised:
            reasons.append(Reason("person.authorised", pid, valid_certificate[pid].number))
        elif seeking_second and pid == second:
            reasons.append(Reason("person.second_inspector", pid, ", ".join(candidates)))
        elif seeking_second and pid in candidates:
            reasons.append(Reason("person.second_inspector_not_chosen", pid, second or ""))
        elif seeking_second and person.department_kind is DepartmentKind.LISTED:
            reasons.append(
                Reason("person.listed_unit_not_second_inspector", pid, person.department_code or "")
            )
        else:
            reasons.append(Reason("person.other_department", pid, person.department_code or ""))
        if pid in duplicates:
            reasons.append(Reason("person.duplicate", pid))

    return Decision(
        matter_code=matter.code,
        tier=tier,
        authorised_ids=tuple(authorised),
        second_inspector_id=second,
        allowed_measures=allowed,
        reasons=tuple(reasons),
    )


def decide_findings(
    matters: Sequence[MatterFacts], present: Sequence[PersonFacts], at: datetime
) -> list[Decision]:
    """One decision per finding's matter, in the order given: the people are the same for all."""
    present = tuple(present)
    return [decide(matter, present, at) for matter in matters]
