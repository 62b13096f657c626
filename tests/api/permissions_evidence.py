"""Permission rows of the evidence area: tus uploads and evidence (merged by
permissions_extra for test_permissions)."""

from __future__ import annotations

from typing import Any

from permissions_world import TUS, UPLOADING_PHOTO, upload_headers  # type: ignore[import-not-found]

ALL = frozenset(
    {"officer", "grid_worker", "dispatcher", "case_handler", "reviewer", "captain", "admin"}
)
# the people who take photos and send them from their phones
UPLOADERS = frozenset({"officer", "captain", "grid_worker", "dispatcher"})
UPLOAD = "/api/v1/uploads/<uuid:upload_id>"
EVIDENCE = "/api/v1/evidence/<sha256>"

EXPECTED: dict[tuple[str, str], Any] = {
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
_VIEWS = ("", "/thumbnail", "/display", "/custody")
# an upload is its uploader's (the officer's, here) alone
_NOT_THE_UPLOADER = {"captain": 404, "grid_worker": 404, "dispatcher": 404}
OWN: dict[tuple[str, str], dict[str, int]] = {
    ("GET", UPLOAD): _NOT_THE_UPLOADER,
    ("PATCH", UPLOAD): _NOT_THE_UPLOADER,
    ("DELETE", UPLOAD): _NOT_THE_UPLOADER,
    # a grid worker sees the photos they took, not the officers'
    **{("GET", EVIDENCE + tail): {"grid_worker": 404} for tail in _VIEWS},
    # the original: the uploader and the reviewing back office (not the dispatcher)
    ("GET", EVIDENCE + "/original"): {"grid_worker": 403, "dispatcher": 403},
}


def _create(ctx: Any) -> dict[str, Any]:
    return {"headers": upload_headers(UPLOADING_PHOTO[ctx.caller.street])}


def _chunk(ctx: Any) -> dict[str, Any]:
    headers = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    return {"headers": headers, "data": UPLOADING_PHOTO[ctx.target.name].read_bytes()[:4096]}


REQUESTS: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/uploads"): _create,
    ("PATCH", UPLOAD): _chunk,
    ("DELETE", UPLOAD): {"headers": TUS},
    ("POST", EVIDENCE + "/review"): {"json": {"decision": "accept"}},
}
CONSUMES: dict[tuple[str, str], str] = {
    ("PATCH", UPLOAD): "upload_id",
    ("DELETE", UPLOAD): "upload_id",
}
