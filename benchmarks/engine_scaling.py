"""Engine scaling and storage overhead: real ``cyclr worker`` processes on runs that only sleep
(``examples/sleep_task.py``), so the 2 cores measure the engine, not training.

For each storage (Optuna's journal file; PostgreSQL, a throwaway cluster started here with
``initdb``/``pg_ctl``, fsync on) and for 1 and 4 workers, it queues ``runs_per_worker x workers``
runs of ``--seconds`` each and measures, from the trials' own timestamps in the storage:

- throughput: runs per second from the first run's start to the last run's end (worker start-up,
  mostly importing torch, is outside that window), and 4 workers' throughput over 1's;
- storage overhead: per worker, the time between its first run's start and its last run's end
  that is not spent inside a run (popping a trial, heartbeats, writing the record, checking stale
  trials), as a share of the time spent in runs.

The same runs on the local engine (a process pool into runs.sqlite) are the reference.

    .venv/bin/python benchmarks/engine_scaling.py --text results/engine_scaling.txt --json results/engine_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASK = "examples/sleep_task.py:SleepTask"


def _specs(n: int, out: Path, url: str | None, study: str | None) -> Any:
    from cyclr.bench.harness import BenchConfig, plan_runs

    # the constant strategy has 4 LRs: n runs are n / 4 seeds of it
    config = BenchConfig(tasks=[TASK], strategies=["constant"], seeds=max(1, n // 4), out=out, storage=url, study=study)
    return config, plan_runs(config)[:n]


def measure_optuna(url: str, workers: int, runs: int, seconds: float, tag: str) -> dict[str, Any]:
    from optuna.trial import TrialState

    from cyclr.bench.storage import OptunaStore
    from cyclr.bench.worker import prepare_bench

    study = f"scale-{tag}-{workers}"
    with tempfile.TemporaryDirectory() as tmp:
        config, specs = _specs(runs, Path(tmp), url, study)
        with OptunaStore(url, study) as store:
            prepare_bench(store, [], config.plugins)  # the study, empty: the workers start and wait
        env = {**os.environ, "CYCLR_SLEEP_SECONDS": str(seconds), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "cyclr", "worker", "--storage", url, "--study", study, "--threads", "1"]
        procs = [
            subprocess.Popen([*cmd, "--wait", "600"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(workers)
        ]
        for p in procs:  # every worker up (torch imported, storage open) and idle
            assert p.stdout is not None
            while "waiting for runs" not in p.stdout.readline():
                pass
        with OptunaStore(url, study) as store:
            prepare_bench(store, specs, config.plugins)
            while len(store.trials((TrialState.COMPLETE,))) < runs:
                time.sleep(0.5)
            trials = [t for t in store.trials() if t.datetime_complete is not None]
        for p in procs:
            p.terminate()
            p.communicate()
    assert len(trials) == runs, f"{len(trials)} of {runs} runs finished"
    start = min(t.datetime_start.timestamp() for t in trials)
    end = max(t.datetime_complete.timestamp() for t in trials)
    by_worker: dict[str, list[Any]] = defaultdict(list)
    for t in trials:
        by_worker[t.user_attrs["record"]["worker"]].append(t)
    busy = outside = 0.0
    for ts in by_worker.values():
        span = max(t.datetime_complete.timestamp() for t in ts) - min(t.datetime_start.timestamp() for t in ts)
        inside = sum(t.user_attrs["record"]["wall_seconds"] for t in ts)
        busy += inside
        outside += span - inside
    return {
        "storage": tag,
        "workers": workers,
        "runs": runs,
        "seconds": end - start,
        "throughput": runs / (end - start),
        "overhead": outside / busy,
        "per_run_overhead_ms": 1000 * outside / runs,
        "workers_used": len(by_worker),
        "runs_per_worker": sorted(len(ts) for ts in by_worker.values()),
    }


def measure_local(workers: int, runs: int, seconds: float) -> dict[str, Any]:
    from cyclr.bench.harness import run_bench

    os.environ["CYCLR_SLEEP_SECONDS"] = str(seconds)
    with tempfile.TemporaryDirectory() as tmp:
        config, _ = _specs(runs, Path(tmp), None, None)
        config.workers = workers
        # only these runs: plan_runs of the config is a superset when runs is not a multiple of 4
        config.seeds = max(1, runs // 4)
        t0 = time.perf_counter()
        starts: list[float] = []
        ends: list[float] = []
        walls: list[float] = []

        def listener(event: str, payload: Any) -> None:
            if event == "done":
                ends.append(time.perf_counter())
                walls.append(payload["wall_seconds"])
            elif event == "start":
                starts.append(time.perf_counter())

        run_bench(config, listener)
        total = time.perf_counter() - t0
    # the pool's start-up (spawning, importing torch) is inside `total`; count from the first end
    # minus that run's own time, as for the storages
    first = min(ends) - walls[0]
    span = max(ends) - first
    return {
        "storage": "local pool",
        "workers": workers,
        "runs": len(walls),
        "seconds": span,
        "throughput": len(walls) / span,
        "overhead": None,
        "per_run_overhead_ms": None,
        "total": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="each run's sleep")
    parser.add_argument("--runs-per-worker", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--text", type=Path, default=None)
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from cyclr.bench.pgcluster import TempPostgres

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, TempPostgres(fsync=True) as pg:
        for tag, url in (("journal", f"journal:///{tmp}/scale.log"), ("postgresql", pg.url)):
            for workers in (1, 4):
                rows.append(measure_optuna(url, workers, workers * args.runs_per_worker, args.seconds, tag))
                print(_line(rows[-1]), flush=True)
        leaked = pg.connections()
    for workers in (1, 4):
        rows.append(measure_local(workers, workers * args.runs_per_worker, args.seconds))
        print(_line(rows[-1]), flush=True)
    lines = [
        f"engine scaling: runs that sleep {args.seconds:g} s, {args.runs_per_worker} per worker, "
        f"on {os.cpu_count()} cores (python benchmarks/engine_scaling.py)",
        "",
        f"{'storage':<12} {'workers':>7} {'runs':>5} {'runs/s':>8} {'overhead':>9} {'per run':>9}  runs by worker",
    ]
    lines += [_line(r) for r in rows]
    lines.append("")
    for tag in ("journal", "postgresql", "local pool"):
        one, four = (next(r for r in rows if r["storage"] == tag and r["workers"] == w) for w in (1, 4))
        ratio = four["throughput"] / one["throughput"]
        worst = max(r["overhead"] for r in (one, four)) if one["overhead"] is not None else None
        goal = f"; storage overhead at most {100 * worst:.2f}% of a {args.seconds:g}-s run" if worst is not None else ""
        verdict = "" if tag == "local pool" else (" (goal >= 3.5x: " + ("met" if ratio >= 3.5 else "missed") + ")")
        lines.append(f"{tag}: 4 workers = {ratio:.2f}x the throughput of 1{verdict}{goal}")
    lines.append(f"PostgreSQL connections left open after the workers exited: {leaked}")
    text = "\n".join(lines)
    print("\n" + text)
    if args.text:
        args.text.write_text(text + "\n")
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "leaked_connections": leaked, "seconds": args.seconds}, indent=2)
        )


def _line(r: dict[str, Any]) -> str:
    overhead = f"{100 * r['overhead']:.2f}%" if r["overhead"] is not None else "-"
    per_run = f"{r['per_run_overhead_ms']:.0f} ms" if r["per_run_overhead_ms"] is not None else "-"
    split = "/".join(map(str, r.get("runs_per_worker", []))) or "-"
    return (
        f"{r['storage']:<12} {r['workers']:>7} {r['runs']:>5} {r['throughput']:>8.3f} {overhead:>9} {per_run:>9}"
        f"  {split}"
    )


if __name__ == "__main__":
    main()
