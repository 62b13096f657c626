"""`python -m bench.profile push|pull [--db sqlite|postgresql]`: cProfile one 1,000-mutation push
or one first pull of `--n` records (the function the view calls, the phone's parsing left out),
top functions by cumulative and own time."""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path

from bench.env import bench_database, make_app
from bench.sync import SyncBench, new_inspection
from bench.table import Report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("what", choices=["push", "pull"])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()
    from fieldsync.demo import demo_uuid

    with tempfile.TemporaryDirectory() as tmp, bench_database(args.db, Path(tmp)) as url:
        bench = make_app(url, Path(tmp) / "data")
        sb = SyncBench(bench, args.db, Report(), quick=True)
        writer = sb.phone("cg_wang")
        present = [str(demo_uuid("person", u)) for u in ("cg_wang", "cg_liu")]
        sb.push(writer, [new_inspection(writer, present, i) for i in range(20)])
        profiler = cProfile.Profile()
        if args.what == "push":
            mutations = [new_inspection(writer, present, i) for i in range(args.n)]
            profiler.enable()
            elapsed, _ = sb.push(writer, mutations)
            profiler.disable()
            print(f"push {args.n}: {elapsed:.3f} s = {args.n / elapsed:,.0f} mut/s")
        else:
            _, body = sb.push(writer, [new_inspection(writer, present, 0)])
            template = sb._template(body["results"][0]["id"])
            sb.populate(template, args.n, f"staff:{template['street_id']}")
            reader = sb.phone("cg_chen")
            elapsed, count = sb.pull_all(reader, profiler=profiler)
            print(f"pull {count}: {elapsed:.3f} s = {count / elapsed:,.0f} rec/s")
        bench.close()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
