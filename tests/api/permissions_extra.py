"""Permission rows of endpoints added after the foundation, one module per area, merged here
for test_permissions (EXPECTED_EXTRA, BODIES_EXTRA)."""

from __future__ import annotations

from typing import Any

from permissions_cases import BODIES_CASES, EXPECTED_CASES  # type: ignore[import-not-found]
from permissions_evidence import (  # type: ignore[import-not-found]
    BODIES_EVIDENCE,
    EXPECTED_EVIDENCE,
)

EXPECTED_EXTRA: dict[tuple[str, str], Any] = {**EXPECTED_CASES, **EXPECTED_EVIDENCE}
BODIES_EXTRA: dict[tuple[str, str], dict[str, Any]] = {**BODIES_CASES, **BODIES_EVIDENCE}
