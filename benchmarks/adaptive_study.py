"""Adaptive CLR against a grid, a bad start and the LR-free anchors, side by side in one bench.

One ``cyclr bench`` (resumable, parallel, every finished run stored) trains, per task, optimizer
and seed (3 seeds, 5 for RL):

- ``adaptive``: cyclr's closed-loop CLR started at the calibrated range test's ``max_lr``;
- ``adaptive_start``: the same, started at x0.1, x0.3, x3 and x10 of it (the robustness sweep);
- ``auto`` and ``one_cycle_start``: the range test's fixed one-cycle with its ``max_lr`` at
  x0.1 ... x10: the same sweep for a fixed schedule, and together a 5-point half-decade grid whose
  best point is the **grid-tuned one-cycle oracle** (picked on the same seeds it is scored on,
  so it is flattered; its cost is 5 runs and a range test);
- the LR-free anchors, their real packages at their documented defaults: Prodigy and
  D-Adaptation with a cosine, Schedule-Free (with warm-up, evaluated at its average), DoG on the
  SGD tasks, and torch's ReduceLROnPlateau from the range test's LR.

Then it prints, per task and optimizer: adaptive against the oracle (paired by seed, 95% t
interval), every start of both sweeps against the oracle, adaptive against each anchor (win /
tie / loss beyond seed noise), and each recipe's cost in training steps, range tests and grids
included; and the issue's three goals as plain yes/no lines.

    .venv/bin/python benchmarks/adaptive_study.py --workers 2            # run (resumes) and print
    .venv/bin/python benchmarks/adaptive_study.py --analyse-only         # re-print from the store
    .venv/bin/python benchmarks/adaptive_study.py --smoke --out /tmp/s   # CI's smoke test (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the study's tasks and budgets: each bench task at its own budget where 14 recipes x 3 seeds (5
#: for RL) fit a 2-core CPU, else on the calibration study's reduced budget (epochs, training
#: subset); cartpole-dqn (about 220 s a run, 70 runs) is left out
TASKS: dict[str, dict[str, int]] = {
    "digits": {},
    "diabetes": {},
    "airline-lstm": {},
    "sunspots-lstm": {},
    "transfer": {},
    "sms-spam-gru": {},
    "cartpole-pg": {},
    "mnist": {"epochs": 2, "subset": 8000},
    "fashion-mnist": {"epochs": 2, "subset": 8000},
    "mnist-keras": {"epochs": 2, "subset": 8000},
    "sms-spam": {"epochs": 3, "subset": 2000},
    "sunspots-gru": {"epochs": 10},
    "shakespeare-char": {"epochs": 1, "subset": 10000},
}
FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)
ANCHORS = ("prodigy", "dadaptation", "schedulefree", "dog", "plateau")
STRATEGIES = ("adaptive", "adaptive_start", "auto", "one_cycle_start", *ANCHORS)
SMOKE = {"tasks": ["digits"], "seeds": 2, "epochs": 1, "train_subset": 320}


def groups(names: str) -> list[dict[str, Any]]:
    """One bench per budget setting (``--epochs`` and ``--train-subset`` are per bench), all in
    the same folder."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in TASKS]
    if unknown:
        raise SystemExit(f"unknown study task(s) {', '.join(unknown)}; valid: {', '.join(TASKS)}")
    out: dict[tuple[int | None, int | None], list[str]] = {}
    for name in wanted:
        key = (TASKS[name].get("epochs"), TASKS[name].get("subset"))
        out.setdefault(key, []).append(name)
    return [{"tasks": tasks, "epochs": e, "train_subset": n} for (e, n), tasks in out.items()]


def adaptive_key(f: float) -> str:
    return "adaptive" if f == 1.0 else f"adaptive_start x{f:g}"


def fixed_key(f: float) -> str:
    return "auto" if f == 1.0 else f"one_cycle_start x{f:g}"


@dataclass
class Comparison:
    """``a - b`` on the final metric, paired by seed, in the metric's good direction."""

    mean: float
    lo: float
    hi: float
    seeds: int

    @property
    def verdict(self) -> str:
        if self.seeds < 2 or math.isnan(self.lo):
            return "tie?"  # one seed: no noise estimate
        if self.lo > 0:
            return "win"
        if self.hi < 0:
            return "loss"
        return "tie"


@dataclass
class TaskResult:
    task: str
    optimizer: str
    metric: str
    higher: bool
    steps: int
    range_test_steps: float
    oracle: str
    oracle_final: float
    oracle_edge: bool
    finals: dict[str, tuple[float, float]] = field(default_factory=dict)
    vs_oracle: dict[str, Comparison] = field(default_factory=dict)
    vs_anchor: dict[str, Comparison] = field(default_factory=dict)
    vs_auto: Comparison | None = None
    notes: list[str] = field(default_factory=list)


def compare(table: Any, a: str, b: str) -> Comparison | None:
    from cyclr.bench.report import interval

    keys = {r.key for r in table.rows}
    if a not in keys or b not in keys:
        return None
    ra, rb = table.row(a), table.row(b)
    seeds = sorted(set(ra.seed_finals) & set(rb.seed_finals))
    if not seeds:
        return None
    diffs = [table.sign * (ra.seed_finals[s] - rb.seed_finals[s]) for s in seeds]
    mean, lo, hi = interval(diffs)
    return Comparison(mean, lo, hi, len(seeds))


def analyse(tables: Sequence[Any], records: Sequence[Any]) -> list[TaskResult]:
    out = []
    for t in tables:
        keys = {r.key for r in t.rows}
        grid = [fixed_key(f) for f in FACTORS if fixed_key(f) in keys]
        if "adaptive" not in keys or not grid:
            continue
        best = max(grid, key=lambda k: t.sign * t.row(k).final)
        res = TaskResult(
            t.task,
            t.optimizer,
            t.metric_label or t.metric,
            t.higher_is_better,
            t.total_steps,
            t.row("adaptive").search_steps,
            best,
            t.row(best).final,
            best in (fixed_key(FACTORS[0]), fixed_key(FACTORS[-1])),
        )
        for r in t.rows:
            res.finals[r.key] = (r.final, r.final_std)
        for f in FACTORS:
            for key in (adaptive_key(f), fixed_key(f)):
                c = compare(t, key, best)
                if c is not None:
                    res.vs_oracle[key] = c
        res.vs_auto = compare(t, "adaptive", "auto")
        for anchor in ANCHORS:
            c = compare(t, "adaptive", anchor)
            if c is not None:
                res.vs_anchor[anchor] = c
        for r in records:
            if r.spec.task == t.task and r.spec.optimizer == t.optimizer and r.spec.strategy == "adaptive":
                reason = (r.details or {}).get("no_safe_lr")
                if reason and "no safe LR" not in " ".join(res.notes):
                    res.notes.append("the range test gave no safe LR: adaptive and auto started from the default LR")
        out.append(res)
    return out


def _pm(v: tuple[float, float]) -> str:
    mean, std = v
    return f"{mean:.4g} ± {std:.2g}"


def _diff(c: Comparison | None) -> str:
    if c is None:
        return "—"
    if math.isnan(c.lo):
        return f"{c.mean:+.3g} ({c.verdict})"
    return f"{c.mean:+.3g} [{c.lo:+.3g}, {c.hi:+.3g}] {c.verdict}"


def render(results: Sequence[TaskResult]) -> str:
    lines: list[str] = []
    add = lines.append
    add("# Adaptive CLR: against the grid-tuned oracle, a bad start, and the LR-free anchors")
    add("")
    add("Differences are in each metric's good direction (+ is better for the first named), paired")
    add("by seed with a 95% t interval; win/loss: the interval excludes 0; tie: within seed noise.")
    add("")
    add("## 1. As good as a grid, without the grid")
    add("")
    add(
        "task / optimizer | adaptive | oracle (grid point) | adaptive - oracle | adaptive - auto (same cost) "
        "| cost: adaptive, auto | cost: oracle"
    )
    add("---|---|---|---|---|---|---")
    ok = below = 0
    vs_auto: list[str] = []
    for r in results:
        c = r.vs_oracle.get("adaptive")
        ok += c is not None and c.verdict != "loss"
        below += c is not None and c.mean < 0
        a = r.vs_auto
        if a is not None:
            vs_auto.append(a.verdict)
        edge = " (grid edge)" if r.oracle_edge else ""
        rt = r.range_test_steps
        add(
            f"{r.task} / {r.optimizer} ({r.metric}) | {_pm(r.finals['adaptive'])} | "
            f"{r.oracle_final:.4g} ({r.oracle}{edge}) | {_diff(c)} | {_diff(a)} | "
            f"{r.steps + rt:.0f} ({r.steps} + {rt:.0f} range test) | "
            f"{5 * r.steps + rt:.0f} (5 x {r.steps} + {rt:.0f})"
        )
    add("")
    add(f"adaptive within seed noise of the oracle or better: {ok}/{len(results)} task/optimizer pairs")
    add(f"adaptive's mean below the oracle's: {below}/{len(results)} (the oracle is picked on the same seeds)")
    add(
        f"adaptive vs auto (the same range test, a fixed one-cycle, the same cost): {vs_auto.count('win')} win, "
        f"{vs_auto.count('tie') + vs_auto.count('tie?')} tie, {vs_auto.count('loss')} loss"
    )
    add("")
    add("## 2. Robust to a bad start (each start against the oracle)")
    add("")
    add(
        "task / optimizer | "
        + " | ".join(f"adaptive x{f:g}" for f in FACTORS)
        + " | "
        + " | ".join(f"one-cycle x{f:g}" for f in FACTORS)
    )
    add("---|" + "---|" * (2 * len(FACTORS) - 1) + "---")
    for r in results:
        cells = [r.vs_oracle[k].verdict if k in r.vs_oracle else "—" for k in map(adaptive_key, FACTORS)]
        cells += [r.vs_oracle[k].verdict if k in r.vs_oracle else "—" for k in map(fixed_key, FACTORS)]
        add(f"{r.task} / {r.optimizer} | " + " | ".join(cells))
    add("")
    n = len(results)
    for f in FACTORS:
        a = sum(1 for r in results if adaptive_key(f) in r.vs_oracle and r.vs_oracle[adaptive_key(f)].verdict != "loss")
        b = sum(1 for r in results if fixed_key(f) in r.vs_oracle and r.vs_oracle[fixed_key(f)].verdict != "loss")
        add(f"start x{f:g}: adaptive within noise of the oracle on {a}/{n}, fixed one-cycle on {b}/{n}")
    add("")
    add("## 3. Ahead of the anchors (adaptive - anchor)")
    add("")
    add("task / optimizer | " + " | ".join(ANCHORS))
    add("---|" + "---|" * (len(ANCHORS) - 1) + "---")
    for r in results:
        add(f"{r.task} / {r.optimizer} | " + " | ".join(_diff(r.vs_anchor.get(a)) for a in ANCHORS))
    add("")
    for a in ANCHORS:
        v = [r.vs_anchor[a].verdict for r in results if a in r.vs_anchor]
        if v:
            losses = [
                f"{r.task}/{r.optimizer}" for r in results if a in r.vs_anchor and r.vs_anchor[a].verdict == "loss"
            ]
            add(
                f"vs {a}: {v.count('win')} win, {v.count('tie') + v.count('tie?')} tie, {v.count('loss')} loss"
                + (f" (loses on {', '.join(losses)})" if losses else "")
            )
    add("")
    add("## Final metrics (mean ± sd over seeds) and cost per run")
    add("")
    for r in results:
        add(f"{r.task} / {r.optimizer}: {r.metric}, {r.steps} steps per run, range test {r.range_test_steps:.0f} steps")
        for key, v in r.finals.items():
            add(f"  {key:<24} {_pm(v)}")
        for note in r.notes:
            add(f"  note: {note}")
    add("")
    add("## Goals")
    add("")
    goal1 = ok == n
    robust = all(
        sum(1 for r in results if k in r.vs_oracle and r.vs_oracle[k].verdict != "loss") >= 0.8 * n
        for k in map(adaptive_key, FACTORS)
    )
    fixed_loses = sum(
        1
        for r in results
        if any(r.vs_oracle.get(fixed_key(f)) and r.vs_oracle[fixed_key(f)].verdict == "loss" for f in (0.1, 10.0))
    )
    anchor_ok = []
    for a in ANCHORS:
        v = [r.vs_anchor[a].verdict for r in results if a in r.vs_anchor]
        if v:
            anchor_ok.append(sum(x != "loss" for x in v) > len(v) / 2)
    add(f"- as good as the grid on every task/optimizer: {'yes' if goal1 else 'no'} ({ok}/{n})")
    add(
        f"- robust: within noise of the oracle on >= 80% at every start: {'yes' if robust else 'no'}; "
        f"the fixed one-cycle loses beyond noise at x0.1 or x10 on {fixed_loses}/{n}"
    )
    add(f"- wins or ties each anchor on most tasks: {'yes' if anchor_ok and all(anchor_ok) else 'no'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/adaptive", help="the bench's folder (runs.sqlite, report)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--analyse-only", action="store_true", help="print from the stored runs, train nothing")
    ap.add_argument("--smoke", action="store_true", help="one cheap task, 2 seeds, 1 epoch (CI)")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, from the study's tasks")
    ap.add_argument("--json", help="also write the analysis here")
    ap.add_argument("--text", help="also write the printed analysis here")
    args = ap.parse_args(argv)

    from cyclr.bench.harness import BenchConfig, load_records, run_bench
    from cyclr.bench.report import aggregate
    from cyclr.bench.store import Store

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not args.analyse_only:
        for settings in [SMOKE] if args.smoke else groups(args.tasks):
            config = BenchConfig(
                strategies=list(STRATEGIES), workers=args.workers, out=Path(args.out), resume=True, **settings
            )
            print(f"running: {config.command_line()}", file=sys.stderr)
            run_bench(config)
    if not (Path(args.out) / Store.FILENAME).exists():
        print(f"no runs stored in {args.out}; run without --analyse-only first.", file=sys.stderr)
        return 2
    records = load_records(Store(args.out))
    results = analyse(aggregate(records), records)
    text = render(results)
    print(text)
    if args.text:
        Path(args.text).write_text(text + "\n")
    if args.json:
        payload = [
            {
                **{k: v for k, v in r.__dict__.items() if k not in ("vs_oracle", "vs_anchor", "vs_auto")},
                "vs_auto": r.vs_auto.__dict__ | {"verdict": r.vs_auto.verdict} if r.vs_auto else None,
                "vs_oracle": {k: c.__dict__ | {"verdict": c.verdict} for k, c in r.vs_oracle.items()},
                "vs_anchor": {k: c.__dict__ | {"verdict": c.verdict} for k, c in r.vs_anchor.items()},
            }
            for r in results
        ]
        Path(args.json).write_text(json.dumps(payload, indent=1, allow_nan=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
