"""Back-end diversion (后段分流处置, DOMAIN.md §5): each finding to the unit owning its matter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fieldsync.rules.second_inspector import DepartmentKind, MatterFacts

RouteKind = Literal["case", "referral"]


@dataclass(frozen=True)
class Finding:
    """A problem found on site (检查问题), one per matter."""

    id: str
    matter: MatterFacts


@dataclass(frozen=True)
class Route:
    """Where a finding goes: a case (立案处置) for a resident unit, a whistle for a listed one."""

    finding_id: str
    kind: RouteKind
    department_code: str


def route(findings: Iterable[Finding]) -> list[Route]:
    """One route per finding, in the order given, by departmental duty and legal authority.

    The owner of the matter decides, not who was on scene: a resident unit (常驻单位) gets a case
    to file, a listed unit (挂牌单位) is whistled (吹哨) as a referral. A finding repeated with
    the same facts routes once, so a replayed submit cannot double it here; one id with two
    different matters is the caller's error.
    """
    seen: dict[str, Finding] = {}
    routes: list[Route] = []
    for finding in findings:
        earlier = seen.get(finding.id)
        if earlier is not None:
            if earlier != finding:
                raise ValueError(f"finding {finding.id} is given twice with different matters")
            continue
        seen[finding.id] = finding
        kind: RouteKind = (
            "case" if finding.matter.department_kind is DepartmentKind.RESIDENT else "referral"
        )
        routes.append(Route(finding.id, kind, finding.matter.department_code))
    return routes
