"""How long `lrcontrol report` takes on a store of 10 000 runs (docs/report.md quotes the result).

The store is built from a real store (the quick suite's, `make bench`) by replicating its runs under
distinct keys: every task twice (the copy named `<task>-copy1`) and every (task, method, LR) with more
seeds (seed + 3·k), until the store holds --runs runs. The trajectories are the real ones, so the figures
draw real curves; only their count is synthetic. Usage:

    python benchmarks/report_scale.py results/quick.db --runs 10000 --workdir /tmp/report-scale

Prints one JSON line: runs, tasks, wall and CPU seconds of the whole report (and of reading the store),
peak memory and the size of the HTML file.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import sys
import time
from pathlib import Path

from lrcontrol.bench.store import COLUMNS, Store, run_key


def replicate(source: Path, target: Path, runs: int, task_copies: int = 2) -> int:
    """Write `runs` runs into a new store at `target`, replicated from `source` under distinct keys."""
    target.unlink(missing_ok=True)
    Store(target).close()  # the schema
    rows = [dict(r) for r in _connect(source).execute(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY key")]
    seeds_per_config = max(r["seed"] for r in rows) + 1
    out = _connect(target)
    written, block = 0, 0
    with out:
        while written < runs:
            for row in rows:
                if written == runs:
                    break
                copy, shift = block % task_copies, block // task_copies
                new = dict(row)
                if copy:
                    new["task_name"] = f"{row['task_name']}-copy{copy}"
                    new["task"] = row["task"].replace(row["task_name"], new["task_name"], 1)
                new["seed"] = row["seed"] + seeds_per_config * shift
                trajectory = json.loads(row["trajectory"])
                trajectory["task"], trajectory["seed"] = new["task"], new["seed"]
                new["trajectory"] = json.dumps(trajectory, allow_nan=True)
                new["key"] = run_key(new["task"], row["spec"], new["seed"], row["budget"], row["horizon"])
                out.execute(
                    f"INSERT INTO runs ({', '.join(new)}) VALUES ({', '.join('?' for _ in new)})", list(new.values())
                )
                written += 1
            block += 1
    out.close()
    return written


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    return connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a real store, e.g. results/quick.db")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/report-scale"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    store, output = args.workdir / "scale.db", args.workdir / "scale.html"
    written = replicate(args.source, store, args.runs)

    from lrcontrol.report import build_report
    from lrcontrol.report.data import load

    wall, cpu = time.perf_counter(), time.process_time()
    data = load(store)
    data.close()
    load_wall, load_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    build_report(store, output, progress=lambda done, total, what: print(f"{done}/{total} {what}", file=sys.stderr))
    result = {
        "runs": written,
        "tasks": len(data.tasks),
        "methods": len(data.methods),
        "report_wall_s": round(time.perf_counter() - wall, 1),
        "report_cpu_s": round(time.process_time() - cpu, 1),
        "load_wall_s": round(load_wall, 1),
        "load_cpu_s": round(load_cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "html_mb": round(output.stat().st_size / 2**20, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
