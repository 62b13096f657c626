"""Permission rows of the evidence area: tus uploads and evidence (merged by
permissions_extra for test_permissions)."""

from __future__ import annotations

from typing import Any

ALL = frozenset(
    {"officer", "grid_worker", "dispatcher", "case_handler", "reviewer", "captain", "admin"}
)
# the people who take photos and send them from their phones
UPLOADERS = frozenset({"officer", "captain", "grid_worker", "dispatcher"})
UPLOAD = "/api/v1/uploads/<uuid:upload_id>"
EVIDENCE = "/api/v1/evidence/<sha256>"

EXPECTED_EVIDENCE: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/uploads"): UPLOADERS,
    ("GET", UPLOAD): UPLOADERS,
    ("PATCH", UPLOAD): UPLOADERS,
    ("DELETE", UPLOAD): UPLOADERS,
    ("GET", "/api/v1/evidence"): ALL,
    ("GET", EVIDENCE): ALL,
    # who may download the original is decided per photo (roles or the uploader): 403 there
    ("GET", EVIDENCE + "/original"): ALL,
    ("GET", EVIDENCE + "/thumbnail"): ALL,
    ("GET", EVIDENCE + "/display"): ALL,
    ("GET", EVIDENCE + "/custody"): ALL,
    ("POST", EVIDENCE + "/review"): {"reviewer", "captain"},
}
BODIES_EVIDENCE: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", EVIDENCE + "/review"): {"decision": "accept"},
}
