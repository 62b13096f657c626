"""Permission rows of issue 4 (inspections, review, cases, rules) for test_permissions."""

from __future__ import annotations

from typing import Any

ALL = frozenset(
    {"officer", "grid_worker", "dispatcher", "case_handler", "reviewer", "captain", "admin"}
)
BACK = frozenset({"dispatcher", "case_handler", "reviewer", "captain", "admin"})

EXPECTED_CASES: dict[tuple[str, str], Any] = {
    ("GET", "/api/v1/inspections"): BACK | {"officer"},
    ("GET", "/api/v1/inspections/<uuid:inspection_id>"): BACK | {"officer"},
    # the captain decides flagged inspections, a reviewer or the captain the others (the service
    # answers inspection.review_captain_only)
    ("POST", "/api/v1/inspections/<uuid:inspection_id>/review"): {"reviewer", "captain"},
    ("GET", "/api/v1/review-queue"): {"reviewer", "captain"},
    ("GET", "/api/v1/cases"): BACK,
    ("GET", "/api/v1/cases/<uuid:case_id>"): BACK,
    # the state machine, not the role gate, answers who may act (case.handler_only,
    # case.archive_captain_only), so every back-office role reaches it
    ("POST", "/api/v1/cases/<uuid:case_id>/file"): BACK,
    ("POST", "/api/v1/cases/<uuid:case_id>/decline"): BACK,
    ("POST", "/api/v1/cases/<uuid:case_id>/conclude"): BACK,
    ("POST", "/api/v1/cases/<uuid:case_id>/archive"): BACK,
    ("POST", "/api/v1/rules/second-inspector"): ALL,
    ("GET", "/api/v1/rules/vectors"): ALL,
}

# valid bodies, so that a call on another street's object reaches the lookup (and its 404)
BODIES_CASES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/inspections/<uuid:inspection_id>/review"): {"decision": "acknowledge"},
    ("POST", "/api/v1/cases/<uuid:case_id>/decline"): {"reason": "matrix"},
    ("POST", "/api/v1/cases/<uuid:case_id>/conclude"): {"decision": "d", "summary": "s"},
}
