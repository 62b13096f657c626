"""Command line: which databases, which sizes; runs the sync and evidence benchmarks."""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from pathlib import Path

from bench import evidence, sync
from bench.env import POSTGRES_URL, bench_database, make_app, postgres_answers
from bench.table import Report, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--only", choices=["sync", "evidence", "all"], default="all", help="which part to run"
    )
    args = parser.parse_args(argv)

    report = Report()
    started = time.perf_counter()
    failed = False
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-") as tmp:
        for db in dbs if args.only in ("sync", "all") else []:
            if db == "postgresql" and not postgres_answers():
                report.notes.append(f"postgresql: SKIPPED, nothing answers at {POSTGRES_URL}")
                continue
            workdir = Path(tmp) / db
            workdir.mkdir()
            print(f"[bench] sync on {db} …", flush=True)
            t0 = time.perf_counter()
            try:
                with bench_database(db, workdir) as url:
                    bench = make_app(url, workdir / "data")
                    try:
                        sync.run(bench, db, report, quick=args.quick)
                    finally:
                        bench.close()
            except Exception:
                failed = True
                traceback.print_exc()
                report.notes.append(f"{db}: sync benchmark FAILED (traceback above)")
            print(f"[bench] sync on {db}: {time.perf_counter() - t0:.0f} s", flush=True)
        if args.only in ("evidence", "all"):
            print("[bench] evidence …", flush=True)
            try:
                evidence.run(report, Path(tmp) / "evidence", quick=args.quick, dbs=tuple(dbs))
            except Exception:
                failed = True
                traceback.print_exc()
                report.notes.append("evidence benchmark FAILED (traceback above)")
    report.notes.append(f"total bench time {time.perf_counter() - started:.0f} s")
    print()
    print(render(report))
    return 1 if failed else 0
