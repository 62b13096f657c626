"""Evidence benchmarks (issue 5): tus upload throughput, thumbnails, memory while uploading."""

from __future__ import annotations

from pathlib import Path

from bench.table import Report


def run(report: Report, workdir: Path, *, quick: bool) -> None:
    report.notes.append("evidence: not yet")
