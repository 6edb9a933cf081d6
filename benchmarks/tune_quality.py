"""Search quality: does ``cyclr tune`` (30 trials, ASHA pruning) find a schedule within seed noise of
the best schedule of ``cyclr bench``'s full grid, at no more than half the bench's training steps?

For each task/optimizer pair of the committed bench (``results/bench``):

1. The grid: every run the bench stored for that pair (every default strategy, 3 seeds), its best
   row (the best mean final metric) and its cost (every run's steps, range tests included). One
   stored run is re-run first: if it does not reproduce its stored metric, the pair is marked so.
2. The search: ``cyclr tune`` on the pair (default space: every family, the LR around the task's
   reference, a warm-up share), 30 trials on seed 0, pruned by ASHA on the periodic evaluations.
   Its cost: every trial's steps, pruned ones included.
   When it does not (the transfer task's pretrained network has changed since), the grid is run
   again, here, and that run is used.
3. The check: the best schedule found, re-run on the bench's seeds (0, 1, 2), against the grid's
   best row on the same seeds: the paired difference and its 95% t-interval.

Finished pairs are kept in ``--out`` (one JSON each) and skipped when the script runs again.

    .venv/bin/python benchmarks/tune_quality.py --workers 2          # about 20 minutes
    .venv/bin/python benchmarks/tune_quality.py --analyse-only --text results/tune_quality.txt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [
    ("airline-lstm", "sgd"),
    ("airline-lstm", "adam"),
    ("sunspots-lstm", "sgd"),
    ("sunspots-lstm", "adam"),
    ("sms-spam-gru", "sgd"),
    ("sms-spam-gru", "adam"),
    ("transfer", "sgd"),
    ("transfer", "adam"),
]


def grid_records(bench: Path, task: str, opt: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(bench / "runs.sqlite")
    try:
        rows = db.execute(
            "SELECT record FROM runs WHERE task = ? AND optimizer = ? AND status = 'done'", (task, opt)
        ).fetchall()
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]


def final(record: dict[str, Any]) -> float:
    metrics = record["result"]["metrics"]
    return float(metrics[-1]) if metrics else math.nan


def best_row(records: list[dict[str, Any]], higher: bool) -> tuple[str, dict[int, float]]:
    by_label: dict[str, dict[int, float]] = defaultdict(dict)
    for r in records:
        by_label[r.get("label") or r["variant"]][int(r["seed"])] = final(r)
    seeds = max(len(v) for v in by_label.values())
    complete = {k: v for k, v in by_label.items() if len(v) == seeds}

    def score(item: tuple[str, dict[int, float]]) -> float:
        values = list(item[1].values())
        mean = sum(values) / len(values)
        if not math.isfinite(mean):
            return -math.inf
        return mean if higher else -mean

    label, per_seed = max(complete.items(), key=score)
    return label, per_seed


def reproduces(record: dict[str, Any], data_dir: str | None) -> tuple[bool, float]:
    from cyclr.bench.records import RunRecord
    from cyclr.bench.runs import execute

    spec = RunRecord.from_dict(record).spec
    again = execute(spec, data_dir)
    value = final(again) if again["status"] == "done" else math.nan
    stored = final(record)
    return math.isclose(value, stored, rel_tol=1e-6, abs_tol=1e-9), value


def rerun_grid(task: str, opt: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The bench's default grid for one pair, run now into ``--out/<task>-<opt>-grid``."""
    from cyclr.bench.harness import BenchConfig, run_bench

    out = args.out / f"{task}-{opt}-grid"
    config = BenchConfig(
        tasks=[task],
        optimizers=[opt],
        workers=args.workers,
        out=out,
        resume=(out / "runs.sqlite").exists(),
        data_dir=args.data_dir,
    )
    run_bench(config)
    return grid_records(out, task, opt)


def run_pair(task: str, opt: str, args: argparse.Namespace) -> dict[str, Any]:
    from cyclr.bench.records import RunSpec
    from cyclr.bench.report import interval
    from cyclr.bench.runs import describe, execute
    from cyclr.bench.tasks import get_task
    from cyclr.bench.tune import TuneConfig, run_tune

    the_task = get_task(task)
    higher = bool(the_task.higher_is_better)
    records = grid_records(args.bench, task, opt)
    probe = min(records, key=lambda r: (r["strategy"] != "constant", int(r["seed"]), r["variant"]))
    same, again = reproduces(probe, args.data_dir)
    if not same:  # the stored grid is not today's: run it again, here (kept, resumable)
        print(f"{task} {opt}: the stored grid does not reproduce ({final(probe):.4g} -> {again:.4g}); rerunning it")
        records = rerun_grid(task, opt, args)
    grid_steps = sum(int(r["result"]["steps"]) + int(r.get("search_steps") or 0) for r in records)
    label, grid_best = best_row(records, higher)

    out = args.out / f"{task}-{opt}"
    t0 = time.perf_counter()
    config = TuneConfig(
        task=task,
        trials=args.trials,
        storage=f"journal:///{(out / 'tune.log').resolve()}" if args.workers > 1 else None,
        study=f"quality-{task}-{opt}",
        workers=args.workers,
        out=out,
        pruner=args.pruner,
        optimizers=[opt],
        baselines=False,
        data_dir=args.data_dir,
    )
    outcome = run_tune(config)
    search_seconds = time.perf_counter() - t0
    assert outcome.best is not None
    schedule = json.dumps(outcome.best["schedule"], sort_keys=True)
    tuned: dict[int, float] = {}
    for seed in sorted(grid_best):
        spec = RunSpec(
            task, opt, "tuned", schedule, seed, int(outcome.best["epochs"]), the_task.batch_size, None, label="tuned"
        )
        record = execute(describe(spec, the_task), args.data_dir)
        tuned[seed] = final(record) if record["status"] == "done" else math.nan
    sign = 1.0 if higher else -1.0
    diffs = [sign * (tuned[s] - grid_best[s]) for s in sorted(grid_best)]
    mean, lo, hi = interval(diffs)
    verdict = "ahead" if lo > 0 else "behind" if hi < 0 else "within noise"
    return {
        "task": task,
        "optimizer": opt,
        "metric": the_task.metric,
        "higher_is_better": higher,
        "grid_runs": len(records),
        "grid_steps": grid_steps,
        "grid_best": label,
        "grid_best_per_seed": grid_best,
        "reproduced": same,
        "grid_source": str(args.bench) if same else str(args.out / f"{task}-{opt}-grid"),
        "probe": {"key": probe["key"], "stored": final(probe), "again": again},
        "trials": outcome.trials,
        "pruned": outcome.pruned,
        "search_steps": outcome.steps,
        "search_seconds": search_seconds,
        "best_trial": outcome.best,
        "tuned_per_seed": tuned,
        "difference": {"mean": mean, "low": lo, "high": hi},
        "verdict": verdict,
        "cost_ratio": outcome.steps / grid_steps,
    }


def analyse(results: list[dict[str, Any]]) -> str:
    lines = [
        "cyclr tune (30 trials, ASHA pruning, seed 0) against cyclr bench's full grid (every default strategy, "
        "3 seeds)",
        "difference: tuned minus the grid's best row on seeds 0-2, signed so that + is better, with its 95% t-interval",
        "",
        f"{'task':<14} {'opt':<5} {'grid best':<22} {'grid':>7} {'tuned':>7} {'difference [95% CI]':<27} "
        f"{'verdict':<13} {'steps':>7} {'grid steps':>10} {'ratio':>6} {'pruned':>7}",
    ]
    for r in results:
        g = sum(r["grid_best_per_seed"].values()) / len(r["grid_best_per_seed"])
        t = sum(r["tuned_per_seed"].values()) / len(r["tuned_per_seed"])
        d = r["difference"]
        ci = f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
        flag = "" if r["reproduced"] else " (grid rerun)"
        lines.append(
            f"{r['task']:<14} {r['optimizer']:<5} {r['grid_best'][:22]:<22} {g:>7.4f} {t:>7.4f} {ci:<27} "
            f"{r['verdict']:<13} {r['search_steps']:>7} {r['grid_steps']:>10} {r['cost_ratio']:>6.2f} "
            f"{r['pruned']:>3}/{r['trials']:<3}{flag}"
        )
    within = [r for r in results if r["verdict"] != "behind"]
    cheap = [r for r in results if r["cost_ratio"] <= 0.5]
    both = [r for r in results if r["verdict"] != "behind" and r["cost_ratio"] <= 0.5]
    n = len(results)
    lines += [
        "",
        f"within seed noise of the grid's best (or ahead): {len(within)}/{n} pairs "
        f"({sum(r['verdict'] == 'ahead' for r in results)} ahead, "
        f"{sum(r['verdict'] == 'behind' for r in results)} behind)",
        f"at no more than half the grid's training steps: {len(cheap)}/{n} pairs "
        f"(median ratio {sorted(r['cost_ratio'] for r in results)[n // 2]:.2f})"
        if n
        else "",
        f"goal (both, on every pair): {'met' if n and len(both) == n else 'missed'} ({len(both)}/{n} pairs)",
        "stored grid reproduced by re-running one of its runs (else the grid was run again here): "
        + ", ".join(f"{r['task']}/{r['optimizer']} {'yes' if r['reproduced'] else 'no'}" for r in results),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default=None, help="task:optimizer,... [default: the 8 cheapest bench pairs]")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--pruner", default="asha")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bench", type=Path, default=ROOT / "results" / "bench")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "tune")
    parser.add_argument("--data-dir", default=os.environ.get("CYCLR_DATA_DIR"))
    parser.add_argument("--analyse-only", action="store_true")
    parser.add_argument("--text", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")] if args.pairs else PAIRS
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for task, opt in pairs:
        path = args.out / f"{task}-{opt}.json"
        if not path.exists():
            if args.analyse_only:
                continue
            print(f"{task} {opt}: searching ...", flush=True)
            result = run_pair(task, opt, args)
            path.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
            print(f"{task} {opt}: {result['verdict']}, cost ratio {result['cost_ratio']:.2f}", flush=True)
        results.append(json.loads(path.read_text()))
    for r in results:  # JSON turned the seeds into strings
        r["grid_best_per_seed"] = {int(k): v for k, v in r["grid_best_per_seed"].items()}
        r["tuned_per_seed"] = {int(k): v for k, v in r["tuned_per_seed"].items()}
    text = analyse(results)
    print(text)
    if args.text:
        args.text.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
