"""The bench report: per task and optimizer, every strategy's mean +- std over seeds, steps to
the target, speed-ups against the best constant LR (paired by seed, with a 95% interval), and a
plain verdict; written as Markdown, JSON and a self-contained HTML page with plots.

Two speed measures, both paired by seed against the best constant LR of the grid:

- **to target**: steps until the task's declared target metric (a strategy's range-test steps
  count). Only defined where both runs reach it.
- **to match**: steps until the strategy first equals the best constant's mean final metric;
  Smith's measure ("the same accuracy in fewer iterations"), defined even when the target is out
  of the budget's reach.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Row", "Table", "aggregate", "write_report"]

# two-sided 95% Student t quantiles by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def t95(n: int) -> float:
    """The two-sided 95% Student t quantile for ``n`` samples (n-1 degrees of freedom): the
    table up to 10, then the Cornish-Fisher expansion (Abramowitz & Stegun 26.7.5; relative
    error below 3e-6 from 10 degrees of freedom on)."""
    df = n - 1
    if df < 1:
        return math.nan
    if df in _T95:
        return _T95[df]
    z = 1.959963984540054
    g = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(gk / float(df) ** (k + 1) for k, gk in enumerate(g))


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval; the interval is (nan, nan) below two values."""
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean()) if arr.size else math.nan
    if arr.size < 2:
        return mean, math.nan, math.nan
    half = t95(arr.size) * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return mean, mean - half, mean + half


@dataclass
class Row:
    """One strategy (or constant-grid point) of a task and optimizer, over its seeds."""

    label: str
    strategy: str
    key: str
    seeds: int
    final: float
    final_std: float
    best: float
    reached: int
    steps_to_target: float | None  # mean over seeds, search cost included; None unless all reached
    steps_to_target_std: float | None
    seconds_to_target: float | None
    search_steps: float
    steps: float
    wall_seconds: float
    steps_to_match: float | None = None  # mean, None unless every seed matched
    matched: int = 0
    speedup_target: tuple[float, float, float] | None = None  # geometric mean and 95% interval
    speedup_match: tuple[float, float, float] | None = None
    #: the best constant missed the target in some seed (counted as the whole budget there), so
    #: ``speedup_target`` is a lower bound
    target_censored: bool = False
    final_diff: tuple[float, float, float] | None = None  # final - best constant, mean and 95% CI
    notes: list[str] = field(default_factory=list)
    #: end-of-run scores (a held-out test split), mean over seeds
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def beyond_noise(self) -> bool | None:
        """Whether the final-metric difference from the best constant exceeds seed noise."""
        if self.final_diff is None or math.isnan(self.final_diff[1]):
            return None
        return not (self.final_diff[1] <= 0.0 <= self.final_diff[2])


@dataclass
class Table:
    """All rows of one task and optimizer, with the reference constant and the verdict."""

    task: str
    optimizer: str
    metric: str
    higher_is_better: bool
    target: float
    steps_per_epoch: int
    total_steps: int
    rows: list[Row]
    best_constant: str
    default_constant: str | None
    match_level: float
    match_levels: dict[int, float] = field(default_factory=dict)
    verdict: str = ""
    domain: str = "vision"
    step_unit: str = "steps"
    #: reference scores without learning (naive forecasts), from the task
    baselines: dict[str, float] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("runs")
        return d


def _first(steps: Sequence[int], metrics: Sequence[float], level: float, higher: bool) -> int | None:
    for s, m in zip(steps, metrics):
        if (m >= level) if higher else (m <= level):
            return int(s)
    return None


def _paired_speedup(
    ref: dict[int, float | None], other: dict[int, float | None], cap: float | None = None
) -> tuple[tuple[float, float, float] | None, bool]:
    """Geometric mean of ref/other over the shared seeds, with its 95% interval. A seed where the
    reference never got there counts as ``cap`` (the budget) if given, and the result is then a
    lower bound (second value True). None if ``other`` is missing in any seed."""
    seeds = sorted(set(ref) & set(other))
    censored = False
    logs = []
    for s in seeds:
        r, o = ref[s], other[s]
        if o is None:
            return None, False
        if r is None:
            if cap is None:
                return None, False
            r, censored = cap, True
        logs.append(math.log(r / o))
    if not logs:
        return None, False
    mean, lo, hi = interval(logs)
    return (
        math.exp(mean),
        math.exp(lo) if not math.isnan(lo) else math.nan,
        math.exp(hi) if not math.isnan(hi) else math.nan,
    ), censored


def _seed_steps(
    runs: Sequence[dict[str, Any]], what: str, levels: dict[int, float], higher: bool
) -> dict[int, float | None]:
    """Per seed: steps to the target (``what='target'``) or to that seed's ``levels`` value, with
    range-test steps added."""
    out: dict[int, float | None] = {}
    for r in runs:
        res = r["result"]
        if what == "target":
            s = res["steps_to_target"]
        else:
            level = levels.get(r["seed"])
            s = None if level is None else _first(res["eval_steps"], res["metrics"], level, higher)
        out[r["seed"]] = None if s is None else float(s + r.get("search_steps", 0))
    return out


def _label(record: dict[str, Any], default_key: str | None) -> str:
    if record["strategy"] != "constant":
        return str(record["strategy"])
    lr = float(record["lr"])
    return f"constant {lr:.3g}" + (" (default)" if record["variant"] == default_key else "")


def aggregate(records: Sequence[dict[str, Any]], plan: Sequence[str] | None = None) -> list[Table]:
    """Group finished runs by task and optimizer into :class:`Table` s (runs outside ``plan``, the
    keys of the current bench, are ignored when it is given)."""
    from .strategies import STRATEGIES, framework_default_lr
    from .tasks import TASKS

    wanted = set(plan) if plan is not None else None
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("status") == "done" and (wanted is None or r["key"] in wanted):
            groups[(r["task"], r["optimizer"])].append(r)
    tables = []
    for (task, opt), runs in groups.items():
        first = runs[0]
        higher = bool(first["higher_is_better"])
        sign = 1.0 if higher else -1.0
        by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in runs:
            by_key[r["variant"]].append(r)
        framework = TASKS[task].framework if task in TASKS else "torch"
        default_lr = framework_default_lr(framework, opt)
        default_key = f"constant lr={default_lr:.4g}"
        if default_key not in by_key:
            default_key = None  # type: ignore[assignment]
        finals = {
            k: float(np.mean([r["result"]["metrics"][-1] if r["result"]["metrics"] else math.nan for r in v]))
            for k, v in by_key.items()
        }
        constants = [k for k in by_key if by_key[k][0]["strategy"] == "constant"]
        if constants:
            best_key = max(constants, key=lambda k: sign * finals[k] if not math.isnan(finals[k]) else -math.inf)
        else:
            best_key = ""
        level = finals[best_key] if best_key else math.nan
        # Smith's measure, paired by seed: the best constant's final metric on that seed
        levels = {r["seed"]: (r["result"]["metrics"] or [math.nan])[-1] for r in by_key.get(best_key, [])}
        budget = float(int(first["epochs"]) * int(first["steps_per_epoch"]))  # planned (a diverged run stops early)

        rows = []
        for key, rs in by_key.items():
            res = [r["result"] for r in rs]
            finals_k = [x["metrics"][-1] if x["metrics"] else math.nan for x in res]
            bests = [(max if higher else min)(x["metrics"]) if x["metrics"] else math.nan for x in res]
            target_steps = _seed_steps(rs, "target", levels, higher)
            match_steps = _seed_steps(rs, "match", levels, higher)
            reached = [v for v in target_steps.values() if v is not None]
            matched = [v for v in match_steps.values() if v is not None]
            all_reached = len(reached) == len(rs)
            secs = [
                x["seconds_to_target"] + r.get("search_seconds", 0.0)
                for x, r in zip(res, rs)
                if x["seconds_to_target"] is not None
            ]
            row = Row(
                label=_label(rs[0], default_key),
                strategy=rs[0]["strategy"],
                key=key,
                seeds=len(rs),
                final=float(np.mean(finals_k)),
                final_std=float(np.std(finals_k, ddof=1)) if len(rs) > 1 else 0.0,
                best=float(np.mean(bests)),
                reached=len(reached),
                steps_to_target=float(np.mean(reached)) if all_reached else None,
                steps_to_target_std=float(np.std(reached, ddof=1)) if all_reached and len(reached) > 1 else None,
                seconds_to_target=float(np.mean(secs)) if all_reached else None,
                search_steps=float(np.mean([r.get("search_steps", 0) for r in rs])),
                steps=float(np.mean([x["steps"] for x in res])),
                wall_seconds=float(np.mean([r.get("wall_seconds", x["seconds"]) for x, r in zip(res, rs)])),
                steps_to_match=float(np.mean(matched)) if len(matched) == len(rs) else None,
                matched=len(matched),
            )
            if best_key:
                ref_target = _seed_steps(by_key[best_key], "target", levels, higher)
                row.speedup_target, row.target_censored = _paired_speedup(ref_target, target_steps, budget)
                ref_match = _seed_steps(by_key[best_key], "match", levels, higher)
                row.speedup_match, _ = _paired_speedup(ref_match, match_steps)
                ref = {r["seed"]: (r["result"]["metrics"] or [math.nan])[-1] for r in by_key[best_key]}
                diffs = [finals_k[i] - ref[r["seed"]] for i, r in enumerate(rs) if r["seed"] in ref]
                row.final_diff = interval(diffs) if diffs else None
            extras = [x.get("extra") or {} for x in res]
            row.extra = {k: float(np.mean([e[k] for e in extras if k in e])) for k in extras[0]} if extras else {}
            if any(x["diverged"] for x in res):
                row.notes.append(f"diverged in {sum(x['diverged'] for x in res)}/{len(rs)} seeds")
            rows.append(row)
        rows.sort(key=lambda r: (r.strategy != "constant", -sign * r.final if r.strategy == "constant" else 0))
        order = {name: i for i, name in enumerate(STRATEGIES)}  # the strategies' own order
        rows.sort(key=lambda r: order.get(r.strategy, 99))
        table = Table(
            task=task,
            optimizer=opt,
            metric=str(first["metric"]),
            higher_is_better=higher,
            target=float(first["target"]),
            steps_per_epoch=int(first["steps_per_epoch"]),
            total_steps=int(first["epochs"]) * int(first["steps_per_epoch"]),  # planned (a diverged run stops early)
            rows=rows,
            best_constant=best_key,
            default_constant=default_key,
            match_level=level,
            match_levels=levels,
            runs=dict(by_key),
            domain=str(first.get("domain") or (TASKS[task].domain if task in TASKS else "other")),
            step_unit=str(first.get("step_unit") or (TASKS[task].step_unit if task in TASKS else "steps")),
            baselines=dict(first.get("baselines") or {}),
        )
        table.verdict = verdict(table)
        tables.append(table)
    tables.sort(key=lambda t: (DOMAINS.index(t.domain) if t.domain in DOMAINS else 99, t.task, t.optimizer))
    return tables


#: the report's sections, in order
DOMAINS = ("vision", "sequences", "language", "rl")
DOMAIN_TITLES = {"vision": "Vision", "sequences": "Sequences", "language": "Language", "rl": "Reinforcement learning"}


CYCLICAL = ("sgdr", "triangular", "triangular2", "sine", "one_cycle", "auto", "peer")


def _fmt(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _fmt_speed(s: tuple[float, float, float] | None, at_least: bool = False) -> str:
    if s is None:
        return "n/a"
    g, lo, hi = s
    ge = ">=" if at_least else ""
    return f"{ge}{g:.2f}x" if math.isnan(lo) else f"{ge}{g:.2f}x [{ge}{lo:.2f}, {hi:.2f}]"


def speed_text(r: Row) -> str:
    """The speed-up to the target (a lower bound where the best constant missed it), else to match."""
    if r.speedup_target is not None:
        return _fmt_speed(r.speedup_target, r.target_censored) + " to target"
    return _fmt_speed(r.speedup_match) + " to match"


def verdict(t: Table) -> str:
    """A plain sentence: who reached the target first, who finished best, and by how much."""
    sign = 1.0 if t.higher_is_better else -1.0
    best_const = t.row(t.best_constant) if t.best_constant else None
    parts = []
    full = [r for r in t.rows if r.steps_to_target is not None]
    if full:
        fastest = min(full, key=lambda r: r.steps_to_target or math.inf)
        sp = (
            f" ({_fmt_speed(fastest.speedup_target, fastest.target_censored)} vs the best constant)"
            if fastest.speedup_target
            else ""
        )
        parts.append(
            f"first to the target ({t.metric} {t.target:g}) in every seed: **{fastest.label}**, "
            f"{fastest.steps_to_target:.0f} {t.step_unit}{sp}"
        )
    else:
        parts.append(
            f"no strategy reached the target ({t.metric} {t.target:g}) in every seed "
            f"within {t.total_steps} {t.step_unit}"
        )
    top = max(t.rows, key=lambda r: sign * r.final)
    parts.append(f"best final {t.metric}: **{top.label}** {top.final:.4f} +- {top.final_std:.4f}")
    if best_const is not None:
        parts.append(f"best constant ({best_const.label}) {best_const.final:.4f} +- {best_const.final_std:.4f}")
        cyc = [r for r in t.rows if r.strategy in CYCLICAL]
        if cyc:
            top_cyc = max(cyc, key=lambda r: sign * r.final)
            diff = top_cyc.final_diff
            noise = {None: "one seed: noise unknown", True: "beyond seed noise", False: "within seed noise"}[
                top_cyc.beyond_noise
            ]
            if diff is not None:
                word = "beats" if sign * diff[0] > 0 else "loses to"
                parts.append(f"the best cyclical schedule ({top_cyc.label}) {word} it by {abs(diff[0]):.4f} ({noise})")
            losers = [
                r.label for r in cyc if r.final_diff is not None and r.beyond_noise and sign * r.final_diff[0] < 0
            ]
            if losers:
                parts.append(
                    "cyclical schedules that finish worse than the best constant beyond noise: " + ", ".join(losers)
                )
    return "; ".join(parts) + "."


# ---------------------------------------------------------------------- plots
def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _shown_rows(t: Table) -> list[Row]:
    """Rows drawn in the plots: every non-constant strategy, plus the best and the default constant."""
    return [r for r in t.rows if r.strategy != "constant" or r.key in (t.best_constant, t.default_constant)]


def plot_table(t: Table) -> dict[str, bytes]:
    """Learning curves, LR traces, steps-to-target bars and range-test curves for one table."""
    from ..plot import PALETTE, _plt, _style

    plt = _plt()
    rows = _shown_rows(t)
    colors = {r.key: PALETTE[i % len(PALETTE)] for i, r in enumerate(rows)}
    styles = {r.key: "-" if r.strategy in CYCLICAL else "--" for r in rows}
    out: dict[str, bytes] = {}

    fig, (ax_m, ax_l) = plt.subplots(1, 2, figsize=(12, 4.2))
    for r in rows:
        runs = t.runs[r.key]
        steps = runs[0]["result"]["eval_steps"]
        n = min(len(x["result"]["metrics"]) for x in runs)
        if n == 0:
            continue
        m = np.array([x["result"]["metrics"][:n] for x in runs])
        l_ = np.array([x["result"]["train_losses"][:n] for x in runs])
        for ax, arr in ((ax_m, m), (ax_l, l_)):
            mean = arr.mean(0)
            ax.plot(steps[:n], mean, styles[r.key], color=colors[r.key], label=r.label, lw=1.6)
            if len(runs) > 1:
                ax.fill_between(steps[:n], arr.min(0), arr.max(0), color=colors[r.key], alpha=0.12, lw=0)
    ax_m.axhline(t.target, color="#999999", lw=1, ls=":")
    ax_m.set_title(f"test {t.metric} (mean; band: min-max over seeds)", fontsize=10)
    ax_l.set_title("training loss (mean since the previous evaluation)", fontsize=10)
    lo, hi = _metric_range(t)
    ax_m.set_ylim(lo, hi)
    for ax in (ax_m, ax_l):
        _style(ax)
        ax.set_xlabel("optimizer step")
    ax_l.set_yscale("log")
    ax_m.legend(fontsize=7, ncol=2, frameon=False, loc="lower right" if t.higher_is_better else "upper right")
    fig.suptitle(f"{t.task} / {t.optimizer}: learning curves", fontsize=11)
    out["curves"] = _png(fig)

    fig, ax = plt.subplots(figsize=(12, 3.6))
    for r in rows:
        res = t.runs[r.key][0]["result"]
        search = t.runs[r.key][0].get("search_steps", 0)
        if res["trace_steps"]:
            ax.plot(
                np.asarray(res["trace_steps"]) + search,
                res["lrs"],
                styles[r.key],
                color=colors[r.key],
                label=r.label,
                lw=1.4,
            )
    _style(ax)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step (after any range test)")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=7, ncol=4, frameon=False)
    ax.set_title(f"{t.task} / {t.optimizer}: LR traces (seed 0)", fontsize=10)
    out["lr"] = _png(fig)

    fig, ax = plt.subplots(figsize=(12, 3.6))
    labels, means, errs, cols = [], [], [], []
    for r in t.rows:
        use = r.steps_to_target if r.steps_to_target is not None else r.steps_to_match
        if use is None:
            continue
        found = [_steps_for(x, t, r.steps_to_target is not None) for x in t.runs[r.key]]
        vals = [v for v in found if v is not None]
        labels.append(r.label + ("" if r.steps_to_target is not None else " (to match)"))
        means.append(float(np.mean(vals)))
        errs.append(float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0)
        cols.append(colors.get(r.key, "#BBBBBB"))
    if labels:
        ax.bar(range(len(labels)), means, yerr=errs, color=cols, capsize=3)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("steps (incl. range test)")
    _style(ax)
    ax.set_title(
        f"{t.task} / {t.optimizer}: steps to the target {t.target:g} (or to match the best constant's "
        f"final on each seed); mean +- std",
        fontsize=10,
    )
    out["steps"] = _png(fig)

    curves = [
        (r.label, t.runs[r.key][0]["details"]["curve"])
        for r in t.rows
        if r.strategy in ("auto", "peer") and t.runs[r.key][0].get("details", {}).get("curve")
    ]
    if curves:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for (label, curve), color in zip(curves, ("#0072B2", "#D55E00")):
            ax.plot(curve["lrs"], curve["losses"], color=color, lw=1.2, label=f"{label} range test")
            chosen = t.runs[next(r.key for r in t.rows if r.label == label)][0]
            pick = chosen.get("details", {}).get("suggestion")
            if pick:
                ax.axvline(pick, color=color, ls=":", lw=1.2)
        ax.set_xscale("log")
        finite = [v for _, c in curves for v in c["losses"] if v == v and v < 1e6]
        if finite:
            ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * float(np.median(finite))))
        _style(ax)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8, frameon=False)
        ax.set_title(f"{t.task} / {t.optimizer}: range tests (seed 0); dotted: the LR each chose", fontsize=10)
        out["range_test"] = _png(fig)
    return out


def _steps_for(run: dict[str, Any], t: Table, to_target: bool) -> float | None:
    res = run["result"]
    s = (
        res["steps_to_target"]
        if to_target
        else _first(res["eval_steps"], res["metrics"], t.match_levels.get(run["seed"], math.nan), t.higher_is_better)
    )
    return None if s is None else float(s + run.get("search_steps", 0))


def _metric_range(t: Table) -> tuple[float, float]:
    finals = [r.final for r in _shown_rows(t) if not math.isnan(r.final)]
    if not finals:
        return 0.0, 1.0
    lo, hi = min([*finals, t.target]), max([*finals, t.target])
    pad = max(hi - lo, 1e-3)
    return lo - 1.5 * pad, hi + 0.5 * pad


# ---------------------------------------------------------------------- text
def markdown_table(t: Table) -> str:
    extra = sorted({k for r in t.rows for k in r.extra})
    lines = [
        f"| strategy | final {t.metric} | best | "
        + "".join(f"{k} | " for k in extra)
        + f"reached target | {t.step_unit} to target | speed-up to target | "
        f"{t.step_unit} to match | speed-up to match | vs best constant (final) |",
        "|---|---|---|" + "---|" * len(extra) + "---|---|---|---|---|---|",
    ]
    for r in t.rows:
        mark = " **(best constant)**" if r.key == t.best_constant else ""
        sst = "n/a" if r.steps_to_target is None else f"{r.steps_to_target:.0f} +- {r.steps_to_target_std or 0:.0f}"
        diff = (
            ""
            if r.final_diff is None or r.key == t.best_constant
            else (
                f"{r.final_diff[0]:+.4g}"
                + ("" if r.beyond_noise is None else (" (beyond noise)" if r.beyond_noise else " (noise)"))
            )
        )
        search = f" (+{r.search_steps:.0f} search)" if r.search_steps else ""
        lines.append(
            f"| {r.label}{mark} | {_num(r.final)} +- {_num(r.final_std)} | {_num(r.best)} | "
            + "".join(f"{_num(r.extra[k]) if k in r.extra else 'n/a'} | " for k in extra)
            + f"{r.reached}/{r.seeds} | {sst}{search} | "
            f"{_fmt_speed(r.speedup_target, r.target_censored)} | "
            f"{'n/a' if r.steps_to_match is None else f'{r.steps_to_match:.0f}'} | "
            f"{_fmt_speed(r.speedup_match)} | {diff}{'; ' + '; '.join(r.notes) if r.notes else ''} |"
        )
    return "\n".join(lines)


def _noise_word(s: tuple[float, float, float] | None, censored: bool = False) -> str:
    """Whether a speed-up's 95% interval excludes 1 (a lower bound can only show it is above)."""
    if s is None or math.isnan(s[1]):
        return "n/a"
    if censored:
        return "yes" if s[1] > 1.0 else "no"
    return "yes" if s[1] > 1.0 or s[2] < 1.0 else "no"


def first_to_target(t: Table) -> tuple[str, str, str]:
    """The overview's three cells: who reached the target first in every seed, its speed-up vs
    the best constant (95% interval), and whether that is beyond seed noise. Where no strategy
    reached the target in every seed, the schedule fastest to match the best constant stands in."""
    unit = t.step_unit
    full = [r for r in t.rows if r.steps_to_target is not None]
    if full:
        f = min(full, key=lambda r: r.steps_to_target or math.inf)
        speed = _fmt_speed(f.speedup_target, f.target_censored)
        return f"{f.label}, {f.steps_to_target:.0f} {unit}", speed, _noise_word(f.speedup_target, f.target_censored)
    most = max(t.rows, key=lambda r: r.reached)
    first = "none in every seed" + (f" (most: {most.label}, {most.reached}/{most.seeds})" if most.reached else "")
    matched = [r for r in t.rows if r.speedup_match is not None and r.strategy != "constant"]
    if not matched:
        return first, "n/a", "n/a"
    m = max(matched, key=lambda r: r.speedup_match[0] if r.speedup_match else 0.0)
    return first, f"{m.label}: {_fmt_speed(m.speedup_match)} to match", _noise_word(m.speedup_match)


def overview(tables: Sequence[Table]) -> str:
    """One line per task and optimizer, grouped by domain: the first to the target with its
    speed-up over the best constant and whether it is beyond noise; the best final; auto and peer."""
    lines = [
        "| domain | task | optimizer | first to target | speed-up vs best constant [95% CI] | beyond noise "
        "| best final | best constant | auto | peer |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tables:
        first, speed, noise = first_to_target(t)
        sign = 1.0 if t.higher_is_better else -1.0
        top = max(t.rows, key=lambda r: sign * r.final)
        bc = t.row(t.best_constant) if t.best_constant else None

        def cell(name: str, t: Table = t) -> str:
            r = next((x for x in t.rows if x.strategy == name), None)
            if r is None:
                return "n/a"
            return f"{_num(r.final)}; {speed_text(r)}"

        lines.append(
            f"| {DOMAIN_TITLES.get(t.domain, t.domain)} | {t.task} | {t.optimizer} | {first} | {speed} | {noise} "
            f"| {top.label} {_num(top.final)} | {bc.label + ' ' + _num(bc.final) if bc else 'n/a'} "
            f"| {cell('auto')} | {cell('peer')} |"
        )
    return "\n".join(lines)


def _num(v: float) -> str:
    """4 significant figures: accuracies, F1 and losses read alike, RMSE and returns too."""
    return "n/a" if math.isnan(v) else f"{v:.4g}" if abs(v) >= 10 else f"{v:.4f}"


_INTRO = """Runs are paired by seed: every strategy of a seed starts from the same initialisation and sees
the same batches, on the same budget. Speed-ups are geometric means over seeds of (best constant's
steps / strategy's steps) with a 95% t-interval; range-test steps count against `auto` and `peer`.
"to target": steps until the declared target; "to match": steps until the best constant's mean
final metric (Smith's measure). "noise": the final-metric difference from the best constant is
inside its 95% interval over seeds."""


def atomic_write(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a kill) sees the old file or the new one,
    never a half-written one: a temporary file beside it, flushed, then renamed over it."""
    import os
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(store: Any, out: str | Path) -> Path | None:
    """Write report.md, report.json and report.html (plots embedded) for the stored runs."""
    out = Path(out)
    tables = aggregate(list(store.records()), store.meta("plan"))
    if not tables:
        return None
    config = store.meta("config", {})
    failed = list(store.records("failed"))
    md = ["# cyclr bench report\n", _INTRO, "\n## Overview\n", overview(tables)]
    domain = None
    for t in tables:
        if t.domain != domain:
            domain = t.domain
            md.append(f"\n## {DOMAIN_TITLES.get(domain, domain)}\n")
        md += [f"\n### {t.task} / {t.optimizer}\n", _budget_line(t) + "\n", t.verdict + "\n", markdown_table(t)]
    if failed:
        md.append("\n## Failed runs (rerun with --resume)\n")
        md += [f"- {r['key']}: {r.get('error')}" for r in failed]
    md.append(f"\nSettings: `{json.dumps(config)}`\n")
    threads = sorted({r.get("threads") for r in store.records() if r.get("threads") is not None})
    if threads:  # 1 and 2 threads round float sums differently: a mixed bench says so
        md.append(f"torch threads per run: {', '.join(map(str, threads))} (set by --workers; stored with each run).\n")
    atomic_write(out / "report.md", "\n".join(md) + "\n")
    atomic_write(
        out / "report.json",
        json.dumps({"config": config, "tables": [t.to_dict() for t in tables]}, indent=1, default=str),
    )
    _write_html(out / "report.html", tables, config, failed)
    return out / "report.md"


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;max-width:1180px;margin:2em auto;color:#222}
body{padding:0 1em}table{border-collapse:collapse;font-size:13px;margin:1em 0}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}tr.best{background:#eef6ff}
.verdict{background:#f7f7f2;border-left:4px solid #E69F00;padding:.6em 1em}img{max-width:100%}
code{background:#f3f3f3;padding:1px 4px}"""


def _md_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _html_table(md: str, best_label: str | None = None) -> str:
    lines = md.splitlines()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _md_cells(lines[0]))
    body = []
    for line in lines[2:]:
        cells = _md_cells(line)
        cls = ' class="best"' if best_label and cells[0].startswith(best_label) else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c).replace('**', '')}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


README_START = "<!-- cyclr bench overview: generated by `cyclr bench --report-only --readme`; do not edit -->"
README_END = "<!-- end of cyclr bench overview -->"


def update_readme(path: str | Path, tables: Sequence[Table], command: str) -> None:
    """Replace the block between :data:`README_START` and :data:`README_END` in ``path`` with the
    overview table and the command that produced it (the README's headline is never hand-copied)."""
    path = Path(path)
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{path}: no overview block (add the lines {README_START!r} and {README_END!r}).")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = f"{README_START}\n\n```sh\n{command}\n```\n\n{overview(tables)}\n\n{README_END}"
    atomic_write(path, head + block + tail)


def _budget_line(t: Table) -> str:
    line = f"{t.total_steps} {t.step_unit} ({t.steps_per_epoch} per epoch); target {t.metric} {t.target:g}."
    if t.baselines:
        line += " Baselines without learning: " + ", ".join(f"{k} {v:.4g}" for k, v in t.baselines.items()) + "."
    return line


def _write_html(path: Path, tables: Sequence[Table], config: dict[str, Any], failed: Sequence[dict[str, Any]]) -> None:
    import re

    def bold(text: str) -> str:
        return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))

    parts = [
        f"<!doctype html><meta charset='utf-8'><title>cyclr bench report</title><style>{_CSS}</style>",
        "<h1>cyclr bench report</h1>",
        f"<p>{html.escape(_INTRO)}</p>",
        "<h2>Overview</h2>",
        _html_table(overview(tables)),
    ]
    domain = None
    for t in tables:
        if t.domain != domain:
            domain = t.domain
            parts.append(f"<h2>{html.escape(DOMAIN_TITLES.get(domain, domain))}</h2>")
        best = t.row(t.best_constant).label if t.best_constant else None
        parts += [
            f"<h3>{html.escape(t.task)} / {html.escape(t.optimizer)}</h3>",
            f"<p>{html.escape(_budget_line(t))}</p>",
            f"<p class='verdict'>{bold(t.verdict)}</p>",
            _html_table(markdown_table(t), best),
        ]
        try:
            images = plot_table(t)
        except ImportError:
            images = {}
        for name, png in images.items():
            data = base64.b64encode(png).decode()
            parts.append(f"<img alt='{html.escape(t.task)} {name}' src='data:image/png;base64,{data}'>")
    if failed:
        parts.append(
            "<h2>Failed runs (rerun with --resume)</h2><ul>"
            + "".join(f"<li>{html.escape(r['key'])}: {html.escape(str(r.get('error')))}</li>" for r in failed)
            + "</ul>"
        )
    parts.append(f"<p>Settings: <code>{html.escape(json.dumps(config))}</code></p>")
    atomic_write(path, "\n".join(parts))
