"""Calibrating the LR range test: which rule, read from which curve, with what correction,
turns a range test into the one-cycle ``max_lr`` that a grid search would have found?

For every task: a one-cycle ``max_lr`` grid (half-decade steps, widened until its best point is
interior), several seeds, the bench's optimizer and momentum; per seed, a range test of 3 sweeps
(cyclr's defaults, fastai's settings) and the peers' own suggestions (torch-lr-finder's steepest
point and Lightning's ``Tuner.lr_find``, their real packages; fastai's valley, from the same
sweep as cyclr's, implemented from its source in ``cyclr.bench.peers``). Every rule is then read
off the recorded curves and judged by ``log10(grid best / suggestion)``: a rule and a fixed
correction factor are chosen by the smallest spread of that log-ratio across tasks, and judged
**leave-one-task-out** (chosen without the task it is scored on). A suggestion is a hit when it
is within 2x of the grid best, or when the grid's metric at it (interpolated in log LR) is
within the seeds' noise of the best. Finally each seed trains at its own calibrated suggestion
and at each peer's, for real, in the same run.

    .venv/bin/python benchmarks/range_test_quality.py --workers 2          # the full study (about 1 h)
    .venv/bin/python benchmarks/range_test_quality.py --smoke              # CI's smoke test (seconds)
    .venv/bin/python benchmarks/range_test_quality.py --analyse-only       # re-print from the saved runs

Every finished unit is appended to ``--out`` (JSON lines) as it ends, so an interrupted study
resumes where it stopped; ``--json`` writes the analysis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

#: per task: the optimizer (the bench's, SGD with momentum where the task offers it), the budget
#: (epochs, training subset), the seeds, and the grid's first guess (log10 of its centre)
SETTINGS: dict[str, dict[str, Any]] = {
    "digits": {"optimizer": "sgd", "epochs": 8, "centre": -1.5},
    "mnist": {"optimizer": "sgd", "epochs": 2, "subset": 8000, "centre": -1.5},
    "fashion-mnist": {"optimizer": "sgd", "epochs": 2, "subset": 8000, "centre": -1.5},
    "diabetes": {"optimizer": "sgd", "epochs": 10, "centre": -1.5},
    "transfer": {"optimizer": "sgd", "epochs": 10, "centre": -1.5},
    "sms-spam-gru": {"optimizer": "sgd", "epochs": 6, "centre": -1.0},
    "sunspots-lstm": {"optimizer": "sgd", "epochs": 10, "centre": -1.5},
    "airline-lstm": {"optimizer": "sgd", "epochs": 100, "centre": -1.5},
    "sms-spam": {"optimizer": "adam", "epochs": 3, "subset": 2000, "centre": -2.5},
    "shakespeare-char": {"optimizer": "adam", "epochs": 1, "subset": 10000, "centre": -2.5},
    "cartpole-pg": {"optimizer": "adam", "epochs": 5, "seeds": 5, "centre": -2.5},
}
#: CI's smoke test: three cheap tasks (two bundled), one seed, three grid points, no widening
SMOKE: dict[str, dict[str, Any]] = {
    "digits": {"optimizer": "sgd", "epochs": 2, "centre": -1.0, "points": 3, "seeds": 1, "widen": 0},
    "diabetes": {"optimizer": "sgd", "epochs": 5, "centre": -1.5, "points": 3, "seeds": 1, "widen": 0},
    "airline-lstm": {"optimizer": "sgd", "epochs": 20, "centre": -1.5, "points": 3, "seeds": 1, "widen": 0},
}
POINTS = 9  # grid points, half a decade apart
STEP = 0.5
MAX_WIDEN = 3  # extra points per side when the best sits at an edge
REPEATS = 3  # sweeps per range test (the rules are read from the first alone, and from all three)
MOMENTUM = (0.85, 0.95)
PEERS = ("torch-lr-finder", "lightning")
HIT = math.log10(2.0)


# ============================================================================ units of work
def _seeds(setting: dict[str, Any], default: int) -> list[int]:
    return list(range(setting.get("seeds", default)))


def _task_data(name: str, setting: dict[str, Any], data_dir: str | None) -> tuple[Any, Any]:
    from cyclr.bench.harness import _task_data

    return _task_data(name, setting.get("subset"), data_dir)


def run_unit(unit: tuple[Any, ...], settings: dict[str, dict[str, Any]], data_dir: str | None) -> dict[str, Any]:
    """One unit: ``('grid', task, seed, lr)`` trains a one-cycle run; ``('sweep', task, seed)``
    runs cyclr's range test (3 sweeps); ``('peer', task, seed, name)`` asks a peer package."""
    import torch

    torch.set_num_threads(int(os.environ.get("STUDY_THREADS", "1")))
    kind, name, seed = unit[0], unit[1], unit[2]
    setting = settings[name]
    task, data = _task_data(name, setting, data_dir)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"unit": list(unit)}
    if kind in ("grid", "check"):  # ('check', task, seed, label, lr): a suggestion trained for real
        out["metric"], out["diverged"] = one_cycle_metric(task, data, setting, seed, float(unit[-1]))
    elif kind == "sweep":
        from cyclr.bench.harness import runner_for

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = runner_for(task).range_test(task, data, setting["optimizer"], seed, repeats=REPEATS)
        out["curves"] = [
            {"lrs": c.lrs, "losses": [_finite(x) for x in c.losses], "smoothed": [_finite(x) for x in c.smoothed]}
            for c in result.curves
        ]
        out["steps_per_epoch"] = task.steps_per_epoch(data)
    elif kind == "peer":
        from cyclr.bench import peers

        out["lr"] = peers.SUGGESTERS[unit[3]](task, data, setting["optimizer"], seed)
    else:
        raise ValueError(f"unknown unit {unit!r}")
    out["seconds"] = time.perf_counter() - t0
    return out


def one_cycle_metric(task: Any, data: Any, setting: dict[str, Any], seed: int, max_lr: float) -> tuple[float, bool]:
    """The final tracked metric of a one-cycle run peaking at ``max_lr`` (torch's defaults, cycled
    momentum 0.85-0.95), as the bench's ``one_cycle`` strategy trains it."""
    import cyclr
    from cyclr.bench.driver import ScheduleDriver
    from cyclr.bench.harness import runner_for

    epochs = setting["epochs"]
    driver = ScheduleDriver(cyclr.one_cycle(max_lr, task.steps_per_epoch(data) * epochs), momentum=MOMENTUM)
    run = runner_for(task).run(task, data, driver, optimizer=setting["optimizer"], epochs=epochs, seed=seed)
    return (_finite(run.final), bool(run.diverged))


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


class Journal:
    """Finished units, one JSON line each; a rerun skips them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self.done[json.dumps(rec["unit"])] = rec

    def add(self, rec: dict[str, Any]) -> None:
        self.done[json.dumps(rec["unit"])] = rec
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def get(self, unit: Iterable[Any]) -> dict[str, Any] | None:
        return self.done.get(json.dumps(list(unit)))


def _call(args: tuple[tuple[Any, ...], dict[str, dict[str, Any]], str | None]) -> dict[str, Any]:
    """A unit that raises is recorded as failed (a grid point as diverged, a peer as no answer)."""
    try:
        return run_unit(*args)
    except Exception as err:
        unit = args[0]
        rec: dict[str, Any] = {"unit": list(unit), "error": f"{type(err).__name__}: {err}", "seconds": 0.0}
        rec.update(
            {"grid": {"metric": None, "diverged": True}, "sweep": {"curves": [], "steps_per_epoch": 1}}.get(
                unit[0], {"lr": None}
            )
        )
        return rec


def run_units(
    units: list[tuple[Any, ...]],
    journal: Journal,
    settings: dict[str, dict[str, Any]],
    data_dir: str | None,
    workers: int,
) -> None:
    todo = [u for u in units if journal.get(u) is None]
    if not todo:
        return
    print(f"  {len(todo)} units to run ({len(units) - len(todo)} already done)", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    if workers <= 1:
        results: Iterable[dict[str, Any]] = (_call((u, settings, data_dir)) for u in todo)
        for i, rec in enumerate(results, 1):
            journal.add(rec)
            _tick(i, len(todo), rec, t0)
        return
    with get_context("spawn").Pool(workers) as pool:
        for i, rec in enumerate(pool.imap_unordered(_call, [(u, settings, data_dir) for u in todo]), 1):
            journal.add(rec)
            _tick(i, len(todo), rec, t0)


def _tick(i: int, n: int, rec: dict[str, Any], t0: float) -> None:
    err = f" FAILED: {rec['error']}" if "error" in rec else ""
    print(
        f"  [{i}/{n}] {rec['unit']} {rec['seconds']:.1f}s{err} (elapsed {time.perf_counter() - t0:.0f}s)",
        file=sys.stderr,
        flush=True,
    )


# ============================================================================ the grid
def grid_points(setting: dict[str, Any], lo: int = 0, hi: int = 0) -> list[float]:
    """The grid's log10 LRs: ``POINTS`` half-decade steps around the centre, widened by ``lo``
    points below and ``hi`` above."""
    n = setting.get("points", POINTS)
    first = setting["centre"] - STEP * (n - 1) / 2
    return [round(first + STEP * k, 6) for k in range(-lo, n + hi)]


@dataclass
class Grid:
    """A task's grid: log10 LRs and, per point, the metric of each seed (``None``: diverged)."""

    log_lrs: list[float]
    metrics: list[list[float | None]]
    higher_is_better: bool

    def means(self) -> np.ndarray:
        """Mean over seeds; a diverged seed counts as the worst finite value of the whole grid."""
        finite = [m for row in self.metrics for m in row if m is not None]
        worst = (min(finite) if self.higher_is_better else max(finite)) if finite else 0.0
        return np.array([statistics.mean(worst if m is None else m for m in row) for row in self.metrics])

    def sign(self) -> float:
        return 1.0 if self.higher_is_better else -1.0

    def best_index(self) -> int:
        return int(np.argmax(self.sign() * self.means()))

    def best(self) -> float:
        return float(self.means()[self.best_index()])

    def noise(self) -> float:
        """Seed noise at the best point: the standard deviation over seeds (0 with one seed)."""
        row = [m for m in self.metrics[self.best_index()] if m is not None]
        return statistics.stdev(row) if len(row) > 1 else 0.0

    def interior(self) -> bool:
        return 0 < self.best_index() < len(self.log_lrs) - 1

    def best_log_lr(self) -> float:
        """The best ``log10 max_lr``: the vertex of a parabola through the best point and its two
        neighbours (within half a step of it), or the best point itself at an edge."""
        i, y, x = self.best_index(), self.sign() * self.means(), self.log_lrs
        if not self.interior():
            return x[i]
        a, b, c = y[i - 1], y[i], y[i + 1]
        curv = a - 2 * b + c
        if curv >= 0:
            return x[i]
        shift = 0.5 * (a - c) / curv * STEP
        return x[i] + float(np.clip(shift, -STEP / 2, STEP / 2))

    def metric_at(self, log_lr: float) -> float | None:
        """The mean metric at ``log_lr``, linear in log LR between grid points; ``None`` outside
        the grid (unknown, so never a hit by metric)."""
        x = self.log_lrs
        if not (x[0] - 1e-9 <= log_lr <= x[-1] + 1e-9):
            return None
        return float(np.interp(log_lr, x, self.means()))

    def hit(self, log_lr: float) -> bool:
        """Within 2x of the grid best, or the metric there within seed noise of the best."""
        if abs(self.best_log_lr() - log_lr) <= HIT:
            return True
        at = self.metric_at(log_lr)
        return at is not None and self.sign() * (self.best() - at) <= self.noise()


def build_grid(
    name: str, setting: dict[str, Any], journal: Journal, seeds: list[int], higher: bool
) -> tuple[Grid, int, int]:
    """The grid from the journal, and how many points it still needs below/above (0, 0 when its
    best is interior or it has widened ``MAX_WIDEN`` points on that side)."""
    lo = hi = 0
    while True:
        points = grid_points(setting, lo, hi)
        rows = []
        for p in points:
            recs = [journal.get(("grid", name, s, 10**p)) for s in seeds]
            if any(r is None for r in recs):
                return Grid([], [], higher), lo, hi  # not all run yet: the caller runs them first
            rows.append([None if r["diverged"] else r["metric"] for r in recs])  # type: ignore[index]
        grid = Grid(points, rows, higher)
        i, widen = grid.best_index(), setting.get("widen", MAX_WIDEN)
        if i == 0 and lo < widen:
            lo += 1
        elif i == len(points) - 1 and hi < widen:
            hi += 1
        else:
            return grid, 0, 0


# ============================================================================ the rules
def rule_table() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    from cyclr.finder import _suggest as s

    def smith_max(lrs: np.ndarray, losses: np.ndarray) -> float:
        return s.smith_bounds(lrs, losses)[1]

    def smith_base(lrs: np.ndarray, losses: np.ndarray) -> float:
        return s.smith_bounds(lrs, losses)[0]

    def at_minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
        return s.minimum(lrs, losses) * 10

    def steep_max(lrs: np.ndarray, losses: np.ndarray) -> float:
        return math.sqrt(s.steepest(lrs, losses) * smith_max(lrs, losses))

    return {
        "steepest": s.steepest,
        "valley": s.valley,
        "minimum/10": s.minimum,
        "at minimum": at_minimum,
        "smith max_lr": smith_max,
        "smith base_lr": smith_base,
        "geo(steepest, max_lr)": steep_max,
    }


def curve_points(curve: dict[str, Any], reading: str) -> tuple[np.ndarray, np.ndarray]:
    """The points a rule reads: ``'trend'`` is cyclr's zero-lag smoothing of the raw losses;
    ``'ema'`` the bias-corrected EMA the sweep recorded (fastai's smoothed loss, which lags)."""
    from cyclr.finder._suggest import clean

    lrs = np.asarray(curve["lrs"], dtype=float)
    raw = np.asarray([np.nan if v is None else v for v in curve["losses"]], dtype=float)
    if reading == "trend":
        return clean(lrs, raw)
    ema = np.asarray([np.nan if v is None else v for v in curve["smoothed"]], dtype=float)
    bad = ~np.isfinite(ema)
    n = int(np.argmax(bad)) if bad.any() else len(ema)
    start, end = n // 10, n - 5 if n - 5 - n // 10 >= 8 else n
    return lrs[start:end], ema[start:end]


def suggestions(curves: list[dict[str, Any]]) -> dict[str, float | None]:
    """Every candidate (reading x rule x first sweep / median of sweeps) for one seed's test:
    its log10 LR, or None where the rule finds no descent."""
    from cyclr.finder._suggest import NoDescentError

    out: dict[str, float | None] = {}
    rules = rule_table()
    if not curves:
        return {}
    for reading in ("trend", "ema"):
        per_sweep: list[dict[str, float | None]] = []
        for curve in curves:
            row: dict[str, float | None] = {}
            try:
                lrs, losses = curve_points(curve, reading)
            except NoDescentError:
                lrs = losses = None  # type: ignore[assignment]
            for rule, fn in rules.items():
                try:
                    row[rule] = math.log10(fn(lrs, losses)) if lrs is not None else None
                except (NoDescentError, ValueError):
                    row[rule] = None
            per_sweep.append(row)
        for rule in rules:
            out[f"{reading} | {rule} | first sweep"] = per_sweep[0][rule]
            values = [r[rule] for r in per_sweep if r[rule] is not None]
            out[f"{reading} | {rule} | median of {len(curves)}"] = statistics.median(values) if values else None
    return out


# ============================================================================ calibration
@dataclass
class TaskStudy:
    name: str
    grid: Grid
    suggested: list[dict[str, float | None]]  # per seed: candidate -> log10 LR
    peers: dict[str, list[float | None]]  # peer -> per seed log10 LR
    range_test_steps: float
    steps_per_epoch: int


def log_ratios(study: TaskStudy, candidate: str) -> list[float | None]:
    best = study.grid.best_log_lr()
    return [None if s.get(candidate) is None else best - s[candidate] for s in study.suggested]  # type: ignore[operator]


def calibrate(studies: list[TaskStudy], candidates: list[str]) -> tuple[str, float, float]:
    """``(candidate, correction, spread)``: the candidate whose per-task mean log-ratio varies
    least across tasks (standard deviation, in decades), and its correction, the median of those
    means. A candidate that finds no LR on some seed of a task is out (a rule must always answer
    where the curve falls)."""
    best: tuple[str, float, float] | None = None
    for cand in candidates:
        per_task = []
        for st in studies:
            r = log_ratios(st, cand)
            if any(x is None for x in r):
                break
            per_task.append(statistics.mean(r))  # type: ignore[arg-type]
        else:
            spread = statistics.pstdev(per_task) if len(per_task) > 1 else 0.0
            if best is None or spread < best[2]:
                best = (cand, statistics.median(per_task), spread)
    if best is None:
        raise RuntimeError("no candidate answers on every task")
    return best


def score(study: TaskStudy, logs: list[float | None]) -> dict[str, Any]:
    """Per seed: hit or miss; and the mean |log10 ratio| and the metric at the suggestion."""
    grid, best = study.grid, study.grid.best_log_lr()
    hits, errors, metrics = [], [], []
    for x in logs:
        if x is None:
            hits.append(False)
            continue
        hits.append(grid.hit(x))
        errors.append(best - x)
        metrics.append(grid.metric_at(x))
    return {
        "hits": sum(hits),
        "of": len(logs),
        "log_ratio": statistics.mean(errors) if errors else None,
        "metric": statistics.mean(m for m in metrics if m is not None) if any(m is not None for m in metrics) else None,
    }


def leave_one_out(studies: list[TaskStudy], candidates: list[str]) -> dict[str, dict[str, Any]]:
    """For each task: the rule and correction chosen on the other tasks, scored on this one."""
    out = {}
    for st in studies:
        others = [o for o in studies if o is not st and o.grid.log_lrs]
        cand, corr, spread = calibrate(others, candidates)
        logs = [None if s.get(cand) is None else s[cand] + corr for s in st.suggested]  # type: ignore[operator]
        out[st.name] = {"candidate": cand, "correction": corr, "spread": spread, "logs": logs, **score(st, logs)}
    return out


# ============================================================================ the study
def plan(
    settings: dict[str, dict[str, Any]], journal: Journal, seeds_default: int, peers: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """The units still missing for the next round: range tests, peers, and the grid (widened
    where its best is at an edge)."""
    from cyclr.bench import get_task
    from cyclr.bench.peers import SUGGESTERS

    units: list[tuple[Any, ...]] = []
    for name, setting in settings.items():
        task = get_task(name)
        seeds = _seeds(setting, seeds_default)
        for s in seeds:
            units.append(("sweep", name, s))
            if task.runner == "torch":
                units += [("peer", name, s, p) for p in peers if p in SUGGESTERS]
        grid, lo, hi = build_grid(name, setting, journal, seeds, task.higher_is_better)
        points = grid_points(setting, lo, hi) if not grid.log_lrs or lo or hi else []
        units += [("grid", name, s, 10**p) for p in points for s in seeds]
    return units


def analyse(
    settings: dict[str, dict[str, Any]], journal: Journal, seeds_default: int, peers: tuple[str, ...]
) -> tuple[list[TaskStudy], dict[str, Any]]:
    from cyclr.bench import get_task
    from cyclr.bench.peers import fastai_valley

    studies = []
    for name, setting in settings.items():
        task = get_task(name)
        seeds = _seeds(setting, seeds_default)
        grid, _, _ = build_grid(name, setting, journal, seeds, task.higher_is_better)
        sweeps = [journal.get(("sweep", name, s)) for s in seeds]
        suggested = [suggestions(r["curves"]) for r in sweeps]  # type: ignore[index]
        peer_logs: dict[str, list[float | None]] = {}
        for p in peers:
            recs = [journal.get(("peer", name, s, p)) for s in seeds]
            if all(r is not None for r in recs):
                peer_logs[p] = [math.log10(r["lr"]) if r["lr"] else None for r in recs]  # type: ignore[index]
        peer_logs["fastai valley"] = [_log(fastai_valley(r["curves"][0])) for r in sweeps]  # type: ignore[index]
        steps = statistics.mean(len(c["lrs"]) for r in sweeps for c in r["curves"])  # type: ignore[index]
        studies.append(TaskStudy(name, grid, suggested, peer_logs, steps, sweeps[0]["steps_per_epoch"]))  # type: ignore[index]
    candidates = list(studies[0].suggested[0])
    table = {}
    for cand in candidates:
        per_task = {}
        for st in studies:
            r = [x for x in log_ratios(st, cand) if x is not None]
            per_task[st.name] = statistics.mean(r) if r else None
        found = [v for v in per_task.values() if v is not None]
        table[cand] = {
            "per_task": per_task,
            "answers": len(found),
            "spread": statistics.pstdev(found) if len(found) > 1 else None,
            "median": statistics.median(found) if found else None,
        }
    chosen = calibrate(studies, candidates) if len(studies) > 1 else (candidates[0], 0.0, 0.0)
    return studies, {
        "candidates": table,
        "chosen": {"candidate": chosen[0], "correction": chosen[1], "factor": 10 ** chosen[1], "spread": chosen[2]},
        "leave_one_out": leave_one_out(studies, candidates) if len(studies) > 2 else {},
    }


def check_units(studies: list[TaskStudy], analysis: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each seed's own suggestion trained for real: cyclr's (the rule and factor chosen without
    the task) and each peer's, so the interpolated grid is not the only judge."""
    units: list[tuple[Any, ...]] = []
    for st in studies:
        loto = analysis["leave_one_out"].get(st.name)
        candidates = {"cyclr": loto["logs"]} if loto else {}
        candidates.update(st.peers)
        for label, logs in candidates.items():
            units += [("check", st.name, s, label, 10**x) for s, x in enumerate(logs) if x is not None]
    return units


def checked(studies: list[TaskStudy], analysis: dict[str, Any], journal: Journal) -> dict[str, dict[str, Any]]:
    """Per task and candidate: the mean metric of the real runs at each seed's suggestion (a seed
    with no suggestion, or a diverged run, counts as the grid's worst value)."""
    out: dict[str, dict[str, Any]] = {}
    for st in studies:
        worst = float(min(st.grid.means()) if st.grid.higher_is_better else max(st.grid.means()))
        row: dict[str, Any] = {}
        for unit in check_units([st], analysis):
            rec = journal.get(unit)
            if rec is None:
                continue
            row.setdefault(unit[3], []).append(worst if rec["diverged"] or rec["metric"] is None else rec["metric"])
        out[st.name] = {label: statistics.mean(v) for label, v in row.items()}
    return out


def _log(x: float | None) -> float | None:
    return math.log10(x) if x else None


# ============================================================================ printing
def report(studies: list[TaskStudy], analysis: dict[str, Any], seeds_default: int) -> str:
    lines: list[str] = []
    add = lines.append
    add("## Grids (one-cycle max_lr -> final metric, mean over seeds)")
    for st in studies:
        g = st.grid
        where = "interior" if g.interior() else "AT THE EDGE"
        add(
            f"{st.name}: best max_lr {10 ** g.best_log_lr():.3g} ({where}), metric {g.best():.4g} "
            f"+- {g.noise():.2g} (seed sd); range test {st.range_test_steps:.0f} steps per sweep = "
            f"{st.range_test_steps / st.steps_per_epoch:.2f} epochs"
        )
        add("    " + "  ".join(f"{10**x:.2g}:{m:.4g}" for x, m in zip(g.log_lrs, g.means())))
    add("")
    add("## Candidates: mean log10(grid best / suggestion) per task; spread = sd across tasks (decades)")
    ranked = sorted(analysis["candidates"].items(), key=lambda kv: (-kv[1]["answers"], kv[1]["spread"] or 9))
    names = [st.name for st in studies]
    add(f"{'candidate':<44}{'spread':>7}{'median':>8}  " + " ".join(f"{n[:8]:>8}" for n in names))
    for cand, row in ranked:
        vals = " ".join("    none" if row["per_task"][n] is None else f"{row['per_task'][n]:>+8.2f}" for n in names)
        sp = "-" if row["spread"] is None else f"{row['spread']:.2f}"
        md = "-" if row["median"] is None else f"{row['median']:+.2f}"
        add(f"{cand:<44}{sp:>7}{md:>8}  {vals}")
    ch = analysis["chosen"]
    add("")
    add(
        f"chosen on all tasks: {ch['candidate']} x {ch['factor']:.3g} (correction {ch['correction']:+.2f} decades, "
        f"spread {ch['spread']:.2f} decades)"
    )
    if analysis["leave_one_out"]:
        add("")
        add("## Leave-one-task-out: the rule and factor chosen without the task, judged on it")
        add(
            f"{'task':<18}{'rule chosen on the others':<46}{'factor':>8}{'hits':>7}"
            f"{'log10 err':>11}{'metric':>10}{'grid best':>11}"
        )
        total = of = 0
        for st in studies:
            r = analysis["leave_one_out"][st.name]
            total, of = total + r["hits"], of + r["of"]
            err = "-" if r["log_ratio"] is None else f"{r['log_ratio']:+.2f}"
            met = "-" if r["metric"] is None else f"{r['metric']:.4g}"
            add(
                f"{st.name:<18}{r['candidate']:<46}{10 ** r['correction']:>8.3g}{r['hits']:>4}/{r['of']:<2}"
                f"{err:>11}{met:>10}{st.grid.best():>11.4g}"
            )
        add(f"hits: {total}/{of} seeds (within 2x of the grid best, or within seed noise of its metric)")
        add("")
        add("## Peers, same curves and grid (hits per seed; log10 err = mean log10(grid best / suggestion))")
        peer_names = sorted({p for st in studies for p in st.peers})
        add(f"{'task':<18}{'cyclr (LOTO)':>16}" + "".join(f"{p:>22}" for p in peer_names))
        for st in studies:
            r = analysis["leave_one_out"][st.name]
            cells = [f"{r['hits']}/{r['of']} {_fmt(r['log_ratio'])}"]
            for p in peer_names:
                if p in st.peers:
                    s = score(st, st.peers[p])
                    cells.append(f"{s['hits']}/{s['of']} {_fmt(s['log_ratio'])}")
                else:
                    cells.append("n/a")
            add(f"{st.name:<18}{cells[0]:>16}" + "".join(f"{c:>22}" for c in cells[1:]))
    return "\n".join(lines)


def report_checks(studies: list[TaskStudy], real: dict[str, dict[str, Any]]) -> str:
    """The suggestions trained for real: mean metric per task; '*' where it is worse than the
    grid best beyond the seeds' noise; '<' where cyclr is worse than that peer beyond noise."""
    labels = sorted({label for row in real.values() for label in row}, key=lambda x: (x != "cyclr", x))
    lines = [
        "## Trained at each seed's own suggestion (mean final metric; * = below the grid best beyond seed noise;",
        "   < = cyclr below this peer beyond seed noise)",
        f"{'task':<18}{'grid best':>12}{'noise':>8}" + "".join(f"{label:>18}" for label in labels),
    ]
    worse_than_peer = 0
    for st in studies:
        row, g = real.get(st.name, {}), st.grid
        cells = []
        for label in labels:
            if label not in row:
                cells.append("n/a")
                continue
            v = row[label]
            mark = "*" if g.sign() * (g.best() - v) > g.noise() else ""
            if label != "cyclr" and "cyclr" in row and g.sign() * (v - row["cyclr"]) > g.noise():
                mark += "<"
                worse_than_peer += 1
            cells.append(f"{v:.4g}{mark}")
        lines.append(f"{st.name:<18}{g.best():>12.4g}{g.noise():>8.2g}" + "".join(f"{c:>18}" for c in cells))
    lines.append(f"cyclr below a peer beyond seed noise: {worse_than_peer} task-peer pairs")
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "   -" if x is None else f"{x:+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(SETTINGS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per task (a task's setting may ask more)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma list; empty for none")
    parser.add_argument("--smoke", action="store_true", help="3 cheap tasks, 1 seed, 3 grid points (CI)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="results/range_test_study.jsonl", help="the journal of finished units")
    parser.add_argument("--json", default=None, help="write the analysis here")
    parser.add_argument("--analyse-only", action="store_true")
    parser.add_argument("--check", action="store_true", help="also train at every seed's own suggestions")
    args = parser.parse_args()
    settings = dict(SMOKE) if args.smoke else {t: SETTINGS[t] for t in args.tasks.split(",")}
    peers = tuple(p for p in args.peers.split(",") if p)
    journal = Journal(Path(args.out))
    while not args.analyse_only:
        units = plan(settings, journal, args.seeds, peers)
        if not [u for u in units if journal.get(u) is None]:
            break
        run_units(units, journal, settings, args.data_dir, args.workers)
    studies, analysis = analyse(settings, journal, args.seeds, peers)
    text = report(studies, analysis, args.seeds)
    if args.check and analysis["leave_one_out"]:
        if not args.analyse_only:
            run_units(check_units(studies, analysis), journal, settings, args.data_dir, args.workers)
        analysis["checked"] = checked(studies, analysis, journal)
        text += "\n\n" + report_checks(studies, analysis["checked"])
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(analysis, indent=2, default=str))


if __name__ == "__main__":
    np.seterr(all="ignore")
    with contextlib.suppress(BrokenPipeError):
        main()
