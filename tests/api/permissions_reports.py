"""Permission rows of the reports area (事件上报 in the back office), merged by
permissions_extra for test_permissions."""

from __future__ import annotations

from typing import Any

BACK = frozenset({"dispatcher", "case_handler", "reviewer", "captain", "admin"})
REPORT = "/api/v1/reports/<uuid:report_id>"

EXPECTED: dict[tuple[str, str], Any] = {
    # whoever receives the street's reports on sync: all but grid workers (their phones)
    ("GET", "/api/v1/reports"): BACK | {"officer"},
    ("GET", REPORT): BACK | {"officer"},
    # the street grid center and the captain hand reports out
    ("POST", REPORT + "/assign"): {"dispatcher", "captain"},
}


def _assign(ctx: Any) -> dict[str, Any]:
    # the target street's second officer: on the caller's own street, a real handover
    return {"json": {"assignee_id": ctx.target.ids["person_id"], "note": "matrix"}}


REQUESTS: dict[tuple[str, str], Any] = {("POST", REPORT + "/assign"): _assign}
# a handover uses the report up (it is the officer's then): the next caller gets a fresh one
CONSUMES: dict[tuple[str, str], str] = {("POST", REPORT + "/assign"): "report_id"}
