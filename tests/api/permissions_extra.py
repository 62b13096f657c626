"""Permission rows of endpoints added after the foundation, one module per area, merged here
for test_permissions. Each area module may define EXPECTED (who passes the role gate), OWN
(what a role that passes gets on its own street instead of a 2xx), REQUESTS (what a call
sends), PARAMS (which object a path parameter names) and CONSUMES (what a 2xx uses up)."""

from __future__ import annotations

from typing import Any

import permissions_cases  # type: ignore[import-not-found]
import permissions_evidence  # type: ignore[import-not-found]
import permissions_reports  # type: ignore[import-not-found]

AREAS = (permissions_cases, permissions_evidence, permissions_reports)


def merged(table: str) -> dict[tuple[str, str], Any]:
    return {key: value for area in AREAS for key, value in getattr(area, table, {}).items()}
