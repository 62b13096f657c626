"""Permission rows of issue 4 (inspections, review, cases, rules) for test_permissions."""

from __future__ import annotations

from typing import Any

ALL = frozenset(
    {"officer", "grid_worker", "dispatcher", "case_handler", "reviewer", "captain", "admin"}
)
BACK = frozenset({"dispatcher", "case_handler", "reviewer", "captain", "admin"})
CASE = "/api/v1/cases/<uuid:case_id>"
REVIEW = "/api/v1/inspections/<uuid:inspection_id>/review"

EXPECTED: dict[tuple[str, str], Any] = {
    ("GET", "/api/v1/inspections"): BACK | {"officer"},
    ("GET", "/api/v1/inspections/<uuid:inspection_id>"): BACK | {"officer"},
    # the captain decides flagged inspections, a reviewer or the captain the others (the service
    # answers inspection.review_captain_only)
    ("POST", REVIEW): {"reviewer", "captain"},
    ("GET", "/api/v1/review-queue"): {"reviewer", "captain"},
    ("GET", "/api/v1/cases"): BACK,
    ("GET", CASE): BACK,
    # the state machine, not the role gate, answers who may act (case.handler_only,
    # case.archive_captain_only), so every back-office role reaches it
    ("POST", CASE + "/file"): BACK,
    ("POST", CASE + "/decline"): BACK,
    ("POST", CASE + "/conclude"): BACK,
    ("POST", CASE + "/archive"): BACK,
    ("POST", "/api/v1/rules/second-inspector"): ALL,
    ("GET", "/api/v1/rules/vectors"): ALL,
}
_NOT_HANDLER = {"dispatcher": 403, "reviewer": 403, "captain": 403, "admin": 403}
OWN: dict[tuple[str, str], dict[str, int]] = {
    ("POST", CASE + "/file"): _NOT_HANDLER,
    ("POST", CASE + "/decline"): _NOT_HANDLER,
    ("POST", CASE + "/conclude"): _NOT_HANDLER,
    ("POST", CASE + "/archive"): {r: 403 for r in BACK - {"captain"}},
    # the matrix's inspection is flagged: the captain's to decide (inspection.review_captain_only)
    ("POST", REVIEW): {"reviewer": 403},
}


def _rule_check(ctx: Any) -> dict[str, Any]:
    present = [ctx.target.ids["person_id"]]  # an officer of the caller's street
    return {"json": {"matter_code": "CG-001", "present": present, "at": "2026-11-20T02:00:00Z"}}


REQUESTS: dict[tuple[str, str], Any] = {
    ("POST", REVIEW): {"json": {"decision": "acknowledge"}},
    ("POST", CASE + "/decline"): {"json": {"reason": "matrix"}},
    ("POST", CASE + "/conclude"): {"json": {"decision": "d", "summary": "s"}},
    ("POST", "/api/v1/rules/second-inspector"): _rule_check,
}
PARAMS: dict[tuple[str, str], dict[str, str]] = {
    ("POST", CASE + "/file"): {"case_id": "case_id:awaiting_filing"},
    ("POST", CASE + "/decline"): {"case_id": "case_id:awaiting_filing"},
    ("POST", CASE + "/conclude"): {"case_id": "case_id:filed"},
    ("POST", CASE + "/archive"): {"case_id": "case_id:concluded"},
}
CONSUMES: dict[tuple[str, str], str] = {
    ("POST", REVIEW): "inspection_id",
    **{key: param["case_id"] for key, param in PARAMS.items()},
}
