"""The bench report: which schedule to use on each task, by how much and how sure, then per task
and optimizer every strategy's mean +- std over seeds, steps to the target, speed-ups against the
best constant LR (paired by seed, with a 95% interval) and plots.

Everything is computed from typed :class:`~.records.RunRecord` s (labels, families and the
task's facts were recorded when the runs were planned): this module imports no framework and no
registry. Markdown, HTML and terminal text are rendered from one table model (:class:`Grid`).

Two speed measures, both paired by seed against the best constant LR of the grid:

- **to target**: steps until the task's declared target metric (a strategy's range-test steps
  count). Only defined where both runs reach it.
- **to match**: steps until the strategy first equals the best constant's final metric on the
  same seed; Smith's measure ("the same accuracy in fewer iterations"), defined even when the
  target is out of the budget's reach.

**Beyond noise** has one meaning throughout: the paired 95% t-interval over seeds of the
difference (final metric) or of the log ratio (speed) excludes "no difference".
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .records import RunRecord, TaskInfo

__all__ = [
    "DOMAINS",
    "Grid",
    "Recommendation",
    "Row",
    "Table",
    "aggregate",
    "first_to_target",
    "interval",
    "overview",
    "recommend",
    "speed_text",
    "t95",
    "terminal_report",
    "update_readme",
    "write_report",
]

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


def beyond_noise(ci: tuple[float, float, float] | None, null: float = 0.0, lower_bound: bool = False) -> bool | None:
    """Whether a 95% interval excludes ``null`` (0 for a difference, 1 for a ratio); ``None``
    when it is unknown (one seed). A lower bound (censored speed-up) can only show "above"."""
    if ci is None or math.isnan(ci[1]):
        return None
    if lower_bound:
        return ci[1] > null
    return ci[1] > null or ci[2] < null


# ---------------------------------------------------------------------- aggregation
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
    family: str = ""
    rank: int = 0
    framework_default: bool = False
    #: the final metric per seed (for paired comparisons between any two rows)
    seed_finals: dict[int, float] = field(default_factory=dict)

    @property
    def beyond_noise(self) -> bool | None:
        """Whether the final-metric difference from the best constant is beyond seed noise."""
        return beyond_noise(self.final_diff)


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
    metric_label: str = ""
    units: str = ""
    description: str = ""
    runs: dict[str, list[RunRecord]] = field(default_factory=dict, repr=False)

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)

    @property
    def sign(self) -> float:
        return 1.0 if self.higher_is_better else -1.0

    @property
    def anchor(self) -> str:
        return _anchor(f"{self.task}-{self.optimizer}")

    @property
    def title(self) -> str:
        return f"{self.task} / {self.optimizer}"

    def family_row(self, family: str) -> Row | None:
        """The best row of a family (by final metric), if any."""
        rows = [r for r in self.rows if r.family == family and not math.isnan(r.final)]
        return max(rows, key=lambda r: self.sign * r.final) if rows else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("runs")
        for row in d["rows"]:
            row.pop("seed_finals")
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


def _metrics(r: RunRecord) -> tuple[list[int], list[float]]:
    res = r.result
    return (res.eval_steps, res.metrics) if res is not None else ([], [])


def _seed_steps(
    runs: Sequence[RunRecord], what: str, levels: dict[int, float], higher: bool
) -> dict[int, float | None]:
    """Per seed: steps to the target (``what='target'``) or to that seed's ``levels`` value, with
    range-test steps added."""
    out: dict[int, float | None] = {}
    for r in runs:
        if what == "target":
            s = r.result.steps_to_target if r.result is not None else None
        else:
            level = levels.get(r.seed)
            s = None if level is None else _first(*_metrics(r), level, higher)
        out[r.seed] = None if s is None else float(s + r.search_steps)
    return out


def _label(r: RunRecord) -> str:
    if r.spec.label:
        return r.spec.label
    if r.spec.family == "baseline" and r.spec.lr is not None:
        return f"constant {r.spec.lr:.3g}" + (" (default)" if r.spec.framework_default else "")
    return r.spec.strategy


def _as_record(r: RunRecord | dict[str, Any]) -> RunRecord:
    return r if isinstance(r, RunRecord) else RunRecord.from_dict(r)


def aggregate(records: Iterable[RunRecord | dict[str, Any]], plan: Sequence[str] | None = None) -> list[Table]:
    """Group finished runs by task and optimizer into :class:`Table` s (runs outside ``plan``, the
    keys of the current bench, are ignored when it is given)."""
    wanted = set(plan) if plan is not None else None
    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for raw in records:
        r = _as_record(raw)
        if r.status == "done" and r.result is not None and (wanted is None or r.key in wanted):
            groups[(r.spec.task, r.spec.optimizer)].append(r)
    tables = [_table(task, opt, runs) for (task, opt), runs in groups.items()]
    tables.sort(key=lambda t: (DOMAINS.index(t.domain) if t.domain in DOMAINS else 99, t.task, t.optimizer))
    return tables


def _table(task: str, opt: str, runs: list[RunRecord]) -> Table:
    first = runs[0]
    info: TaskInfo = first.info
    higher = info.higher_is_better
    sign = 1.0 if higher else -1.0
    by_key: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_key[r.spec.variant].append(r)
    defaults = [k for k, v in by_key.items() if v[0].spec.framework_default or "(default)" in v[0].spec.label]
    default_key = defaults[0] if defaults else None
    finals = {k: float(np.mean([r.final for r in v])) for k, v in by_key.items()}
    constants = [k for k in by_key if by_key[k][0].spec.family == "baseline"]
    if constants:
        best_key = max(constants, key=lambda k: sign * finals[k] if not math.isnan(finals[k]) else -math.inf)
    else:
        best_key = ""
    level = finals[best_key] if best_key else math.nan
    # Smith's measure, paired by seed: the best constant's final metric on that seed
    levels = {r.seed: r.final for r in by_key.get(best_key, [])}
    budget = float(first.budget)  # planned (a diverged run stops early)

    rows = []
    for key, rs in by_key.items():
        res = [r.result for r in rs if r.result is not None]
        finals_k = [r.final for r in rs]
        bests = [x.best(higher) for x in res]
        target_steps = _seed_steps(rs, "target", levels, higher)
        match_steps = _seed_steps(rs, "match", levels, higher)
        reached = [v for v in target_steps.values() if v is not None]
        matched = [v for v in match_steps.values() if v is not None]
        all_reached = len(reached) == len(rs)
        secs = [x.seconds_to_target + r.search_seconds for x, r in zip(res, rs) if x.seconds_to_target is not None]
        spec = rs[0].spec
        row = Row(
            label=_label(rs[0]),
            strategy=spec.strategy,
            key=key,
            seeds=len(rs),
            final=float(np.mean(finals_k)),
            final_std=float(np.std(finals_k, ddof=1)) if len(rs) > 1 else 0.0,
            best=float(np.mean(bests)),
            reached=len(reached),
            steps_to_target=float(np.mean(reached)) if all_reached else None,
            steps_to_target_std=float(np.std(reached, ddof=1)) if all_reached and len(reached) > 1 else None,
            seconds_to_target=float(np.mean(secs)) if all_reached else None,
            search_steps=float(np.mean([r.search_steps for r in rs])),
            steps=float(np.mean([x.steps for x in res])),
            wall_seconds=float(np.mean([r.wall_seconds or x.seconds for x, r in zip(res, rs)])),
            steps_to_match=float(np.mean(matched)) if len(matched) == len(rs) else None,
            matched=len(matched),
            family=spec.family,
            rank=spec.rank,
            framework_default=key == default_key,
            seed_finals={r.seed: r.final for r in rs},
        )
        if best_key:
            ref_target = _seed_steps(by_key[best_key], "target", levels, higher)
            row.speedup_target, row.target_censored = _paired_speedup(ref_target, target_steps, budget)
            ref_match = _seed_steps(by_key[best_key], "match", levels, higher)
            row.speedup_match, _ = _paired_speedup(ref_match, match_steps)
            diffs = [finals_k[i] - levels[r.seed] for i, r in enumerate(rs) if r.seed in levels]
            row.final_diff = interval(diffs) if diffs else None
        extras = [x.extra or {} for x in res]
        row.extra = {k: float(np.mean([e[k] for e in extras if k in e])) for k in extras[0]} if extras else {}
        if any(x.diverged for x in res):
            row.notes.append(f"diverged in {sum(x.diverged for x in res)}/{len(rs)} seeds")
        rows.append(row)
    rows.sort(key=lambda r: (r.rank, -sign * r.final if r.family == "baseline" else 0.0))
    table = Table(
        task=task,
        optimizer=opt,
        metric=info.metric,
        higher_is_better=higher,
        target=info.target,
        steps_per_epoch=first.steps_per_epoch,
        total_steps=first.budget,
        rows=rows,
        best_constant=best_key,
        default_constant=default_key,
        match_level=level,
        match_levels=levels,
        domain=info.domain,
        step_unit=info.step_unit,
        baselines=dict(first.baselines),
        metric_label=info.metric_label or info.metric,
        units=info.units,
        description=info.description,
        runs=dict(by_key),
    )
    table.verdict = verdict(table)
    return table


#: the report's sections, in order
DOMAINS = ("vision", "sequences", "language", "tabular", "rl")
DOMAIN_TITLES = {
    "vision": "Vision",
    "sequences": "Sequences",
    "language": "Language",
    "tabular": "Tabular",
    "rl": "Reinforcement learning",
}


# ---------------------------------------------------------------------- what to use
def _paired_diff(a: Row, b: Row) -> tuple[float, float, float] | None:
    """a - b on the final metric, paired by seed (mean and 95% interval)."""
    seeds = sorted(set(a.seed_finals) & set(b.seed_finals))
    if not seeds:
        return None
    return interval([a.seed_finals[s] - b.seed_finals[s] for s in seeds])


def _speed(r: Row) -> tuple[tuple[float, float, float] | None, str, bool]:
    """The row's speed-up vs the best constant: to the target where defined, else to match."""
    if r.speedup_target is not None:
        return r.speedup_target, "to target", r.target_censored
    return r.speedup_match, "to match", False


@dataclass
class Recommendation:
    """What to use on one task and optimizer, how it compares and how sure the bench is."""

    table: Table
    pick: Row
    #: rows whose final metric is within noise of the best one's (the pick is the fastest of them)
    tied: list[Row]
    #: "clear", "likely", "none" (the best constant is the pick) or "unknown" (one seed, or no
    #: constant-LR baseline in the bench)
    confidence: str
    reason: str

    @property
    def vs_constant(self) -> tuple[float, float, float] | None:
        return self.pick.final_diff

    @property
    def peer(self) -> Row | None:
        return self.table.family_row("peer")


def _fastest_key(r: Row) -> tuple[int, float]:
    if r.steps_to_target is not None:
        return 0, r.steps_to_target
    if r.steps_to_match is not None:
        return 1, r.steps_to_match
    return 2, 0.0


def recommend(t: Table) -> Recommendation:
    """The schedule to use: the best mean final metric on the budget. ``tied`` lists the rows
    whose paired difference from it is within seed noise; ``confidence`` says how it compares
    with the best constant LR (the first thing anyone would try)."""
    rows = [r for r in t.rows if not math.isnan(r.final)]
    pick = max(rows, key=lambda r: (t.sign * r.final, -_fastest_key(r)[0], -_fastest_key(r)[1]))
    tied = [r for r in rows if r is not pick and beyond_noise(_paired_diff(r, pick)) is False]
    best_const = t.row(t.best_constant) if t.best_constant else None
    if pick.seeds < 2:
        return Recommendation(t, pick, tied, "unknown", "one seed: no noise estimate")
    if best_const is None:
        return Recommendation(t, pick, tied, "unknown", "no constant-LR baseline in this bench to compare with")
    if pick.key == best_const.key:
        return Recommendation(t, pick, tied, "none", "no schedule beat the best constant LR")
    diff = pick.final_diff
    speed, what, censored = _speed(pick)
    if beyond_noise(diff):
        return Recommendation(t, pick, tied, "clear", "better final metric than the best constant, beyond seed noise")
    if speed is not None and beyond_noise(speed, 1.0, censored) and speed[0] > 1.0:
        return Recommendation(t, pick, tied, "clear", f"as good a final metric, and faster {what} beyond seed noise")
    return Recommendation(t, pick, tied, "likely", "ahead of the best constant, but within seed noise")


def _worse(t: Table, diff: tuple[float, float, float] | None) -> bool:
    return diff is not None and bool(beyond_noise(diff)) and t.sign * diff[0] < 0


def _diff_text(t: Table, d: tuple[float, float, float] | None, word: bool = False) -> str:
    """A final-metric difference, ``*`` when beyond noise; ``word``: say whether it is better."""
    if d is None or math.isnan(d[0]):
        return "n/a"
    mark = " *" if beyond_noise(d) else ""
    if word and d[0] != 0:
        return f"{_signed(d[0])} ({'better' if t.sign * d[0] > 0 else 'worse'}){mark}"
    return f"{_signed(d[0])}{mark}"


def _signed(v: float) -> str:
    return f"{v:+.4g}" if abs(v) >= 10 else f"{v:+.4f}"


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


def first_to_target(t: Table) -> tuple[str, str, str]:
    """Who reached the target first in every seed, its speed-up vs the best constant (95%
    interval), and whether that is beyond seed noise ("yes"/"no"/"n/a"). Where no strategy reached
    the target in every seed, the schedule fastest to match the best constant stands in."""
    unit = t.step_unit
    full = [r for r in t.rows if r.steps_to_target is not None]

    def word(ci: tuple[float, float, float] | None, censored: bool = False) -> str:
        return {None: "n/a", True: "yes", False: "no"}[beyond_noise(ci, 1.0, censored)]

    if full:
        f = min(full, key=lambda r: r.steps_to_target or math.inf)
        speed = _fmt_speed(f.speedup_target, f.target_censored)
        return f"{f.label}, {f.steps_to_target:.0f} {unit}", speed, word(f.speedup_target, f.target_censored)
    most = max(t.rows, key=lambda r: r.reached)
    first = "none in every seed" + (f" (most: {most.label}, {most.reached}/{most.seeds})" if most.reached else "")
    matched = [r for r in t.rows if r.speedup_match is not None and r.family != "baseline"]
    if not matched:
        return first, "n/a", "n/a"
    m = max(matched, key=lambda r: r.speedup_match[0] if r.speedup_match else 0.0)
    return first, f"{m.label}: {_fmt_speed(m.speedup_match)} to match", word(m.speedup_match)


def verdict(t: Table) -> str:
    """A plain sentence: what to use, by how much, how sure; who reached the target first; and
    the cyclical schedules that lost to the best constant beyond noise."""
    rec = recommend(t)
    pick = rec.pick
    parts = [f"use **{pick.label}** ({pick.family or 'strategy'}; {rec.confidence}: {rec.reason})"]
    full = [r for r in t.rows if r.steps_to_target is not None]
    if full:
        fastest = min(full, key=lambda r: r.steps_to_target or math.inf)
        sp = f" ({_fmt_speed(fastest.speedup_target, fastest.target_censored)} vs the best constant)"
        parts.append(
            f"first to the target ({t.metric_label} {t.target:g}) in every seed: **{fastest.label}**, "
            f"{fastest.steps_to_target:.0f} {t.step_unit}" + (sp if fastest.speedup_target else "")
        )
    else:
        parts.append(
            f"no strategy reached the target ({t.metric_label} {t.target:g}) in every seed "
            f"within {t.total_steps} {t.step_unit}"
        )
    top = max(t.rows, key=lambda r: t.sign * r.final)
    parts.append(f"best final {t.metric_label}: **{top.label}** {_pm(top.final, top.final_std)}")
    if t.best_constant:
        bc = t.row(t.best_constant)
        parts.append(f"best constant: {bc.label} {_pm(bc.final, bc.final_std)}")
        losers = [r.label for r in t.rows if r.family == "cyclical" and _worse(t, r.final_diff)]
        if losers:
            parts.append(
                "cyclical schedules that finish worse than the best constant beyond noise: " + ", ".join(losers)
            )
    return "; ".join(parts) + "."


def _num(v: float) -> str:
    """4 significant figures: accuracies, F1 and losses read alike, RMSE and returns too."""
    return "n/a" if math.isnan(v) else f"{v:.4g}" if abs(v) >= 10 else f"{v:.4f}"


def _pm(mean: float, std: float) -> str:
    """``mean ± std`` with both at the mean's precision (4 significant figures, at most 4 decimals)."""
    if math.isnan(mean):
        return "n/a"
    digits = 4 if mean == 0 else min(4, max(0, 3 - math.floor(math.log10(abs(mean)))))
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


# ---------------------------------------------------------------------- the table model
@dataclass
class Cell:
    text: str
    strong: bool = False
    #: a link target (``#anchor``) for HTML and Markdown
    href: str = ""


@dataclass
class Grid:
    """One table, rendered alike as Markdown, HTML and terminal text. ``align`` is ``'l'`` or
    ``'r'`` per column; ``marked`` rows are highlighted; ``short`` is the subset of columns a
    narrow terminal shows (``None``: all)."""

    columns: list[str]
    rows: list[list[Cell]]
    align: list[str]
    marked: set[int] = field(default_factory=set)
    short: list[int] | None = None
    #: columns for the terminal only (left out of Markdown and HTML)
    hidden: set[int] = field(default_factory=set)

    def _shown(self) -> list[int]:
        return [i for i in range(len(self.columns)) if i not in self.hidden]

    def markdown(self, links: bool = True) -> str:
        def cell(c: Cell) -> str:
            text = c.text.replace("|", "\\|")
            text = f"[{text}]({c.href})" if c.href and links else text
            return f"**{text}**" if c.strong and text else text

        cols = self._shown()
        lines = ["| " + " | ".join(self.columns[i] for i in cols) + " |"]
        lines.append("|" + "|".join("---:" if self.align[i] == "r" else "---" for i in cols) + "|")
        lines += ["| " + " | ".join(cell(row[i]) for i in cols) + " |" for row in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        def cell(c: Cell, a: str) -> str:
            text = html.escape(c.text)
            text = f"<a href='{html.escape(c.href)}'>{text}</a>" if c.href else text
            text = f"<b>{text}</b>" if c.strong and text else text
            return f"<td class='{a}'>{text}</td>"

        cols = self._shown()
        head = "".join(f"<th class='{self.align[i]}'>{html.escape(self.columns[i])}</th>" for i in cols)
        body = []
        for k, row in enumerate(self.rows):
            cls = " class='mark'" if k in self.marked else ""
            body.append(f"<tr{cls}>" + "".join(cell(row[i], self.align[i]) for i in cols) + "</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def terminal(self, width: int = 100) -> str:
        """Plain text within ``width`` columns: the short columns, cells wrapped to fit."""
        keep = self.short if self.short is not None else list(range(len(self.columns)))
        cols = [self.columns[i] for i in keep]
        rows = [[row[i].text for i in keep] for row in self.rows]
        align = [self.align[i] for i in keep]
        widths = [max([len(c)] + [len(r[j]) for r in rows]) for j, c in enumerate(cols)]
        room = width - 3 * (len(cols) - 1)
        while sum(widths) > room and max(widths) > 8:
            widest = widths.index(max(widths))
            widths[widest] -= 1
        out = []

        def emit(cells: list[str], mark: bool = False) -> None:
            wrapped = [textwrap.wrap(c, w) or [""] for c, w in zip(cells, widths)]
            for k in range(max(len(w) for w in wrapped)):
                parts = []
                for w, lines, a in zip(widths, wrapped, align):
                    text = lines[k] if k < len(lines) else ""
                    parts.append(text.rjust(w) if a == "r" else text.ljust(w))
                out.append(" | ".join(parts).rstrip())

        emit(cols)
        out.append("-+-".join("-" * w for w in widths))
        for row in rows:
            emit(row)
        return "\n".join(out)


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def recommendation_grid(tables: Sequence[Table]) -> Grid:
    """Per task and optimizer: what to use, its gain over the best constant (final metric and
    speed), how sure, and how it compares with the peer recipe."""
    columns = [
        "task",
        "optimizer",
        "use",
        "family",
        "final vs best constant",
        "speed vs best constant [95% CI]",
        "how sure",
        "vs peer (final)",
        "speed",
    ]
    rows = []
    marked = set()
    for i, t in enumerate(tables):
        rec = recommend(t)
        p = rec.pick
        speed, what, censored = _speed(p)
        peer = rec.peer
        if peer is None or peer.key == p.key:
            vs_peer = "n/a" if peer is None else "is the peer"
        else:
            vs_peer = _diff_text(t, _paired_diff(p, peer), word=True)
        const = p.key == t.best_constant
        ge = ">=" if censored else ""
        rows.append(
            [
                Cell(t.task, href=f"#{t.anchor}"),
                Cell(t.optimizer),
                Cell(p.label, strong=True),
                Cell(p.family),
                Cell("—" if const else _diff_text(t, p.final_diff, word=True)),
                Cell("—" if const or speed is None else f"{_fmt_speed(speed, censored)} {what}"),
                Cell(rec.confidence),
                Cell(vs_peer),
                Cell("—" if const or speed is None else f"{ge}{speed[0]:.2f}x {what}"),
            ]
        )
        if rec.confidence == "clear":
            marked.add(i)
    align = ["l", "l", "l", "l", "r", "r", "l", "r", "r"]
    return Grid(columns, rows, align, marked, short=[0, 1, 2, 4, 8, 6], hidden={8})


def _verdict_counts(t: Table, row: Row, ref: Row | None) -> str | None:
    """'win', 'tie' or 'loss' of ``row`` against ``ref`` on the final metric (paired)."""
    if ref is None or ref.key == row.key:
        return None
    d = _paired_diff(row, ref)
    noise = beyond_noise(d)
    if d is None or noise is None:
        return None
    if not noise:
        return "tie"
    return "win" if t.sign * d[0] > 0 else "loss"


def headline(tables: Sequence[Table]) -> str:
    """One paragraph over every table: which families were picked, how often the pick beat the
    best constant beyond noise, and how the cyclical schedules fared against the peer."""
    recs = [recommend(t) for t in tables]
    n = len(recs)
    families: dict[str, int] = defaultdict(int)
    for r in recs:
        families[r.pick.family or "other"] += 1
    picked = ", ".join(f"{k} {v}" for k, v in sorted(families.items(), key=lambda kv: -kv[1]))
    clear = sum(r.confidence == "clear" for r in recs)
    none = sum(r.confidence == "none" for r in recs)
    text = (
        f"Over {n} task/optimizer pairs, the pick is (by family): {picked}. It beats the best constant LR "
        f"clearly (beyond seed noise) on {clear} of {n}; on {none} no schedule beats the best constant."
    )
    cyc_vs_peer = [0, 0, 0]
    for t in tables:
        best = t.family_row("cyclical")
        v = _verdict_counts(t, best, t.family_row("peer")) if best is not None else None
        if v is not None:
            cyc_vs_peer[("win", "tie", "loss").index(v)] += 1
    if sum(cyc_vs_peer):
        w, tie, loss = cyc_vs_peer
        text += (
            f" The best cyclical schedule against the peer recipe (torch-lr-finder + OneCycleLR): "
            f"{w} wins, {tie} ties, {loss} losses."
        )
    return text


def summary_grid(tables: Sequence[Table]) -> Grid:
    """Across tasks, per strategy: wins, ties and losses (final metric, paired, beyond noise)
    against the best constant and against the peer recipe, and how often it was the pick."""
    stats: dict[str, dict[str, Any]] = {}
    for t in tables:
        pick = recommend(t).pick.label
        peer = t.family_row("peer")
        best = t.row(t.best_constant) if t.best_constant else None
        for r in t.rows:
            if r.family == "baseline" and r.key != t.best_constant:
                continue
            name = "best constant" if r.key == t.best_constant else r.label
            s = stats.setdefault(
                name,
                {"family": r.family, "rank": r.rank, "n": 0, "c": [0, 0, 0], "p": [0, 0, 0], "picked": 0, "speed": []},
            )
            s["n"] += 1
            s["picked"] += pick == r.label
            for k, ref in (("c", best), ("p", peer)):
                v = _verdict_counts(t, r, ref)
                if v is not None:
                    s[k][("win", "tie", "loss").index(v)] += 1
            sp, _, _ = _speed(r)
            if sp is not None and r.key != t.best_constant:
                s["speed"].append(sp[0])
    rows = []
    for name, s in sorted(stats.items(), key=lambda kv: (kv[1]["rank"], kv[0])):
        c, p = s["c"], s["p"]
        speed = f"{float(np.median(s['speed'])):.2f}x" if s["speed"] else "n/a"
        rows.append(
            [
                Cell(name, strong=name == "best constant"),
                Cell(s["family"]),
                Cell(str(s["n"])),
                Cell(str(s["picked"])),
                Cell("—" if name == "best constant" else f"{c[0]} / {c[1]} / {c[2]}"),
                Cell(f"{p[0]} / {p[1]} / {p[2]}" if sum(p) else "—"),
                Cell(speed),
            ]
        )
    columns = ["strategy", "family", "tables", "picked", "vs best constant W/T/L", "vs peer W/T/L", "median speed-up"]
    return Grid(columns, rows, ["l", "l", "r", "r", "r", "r", "r"])


def compact_grid(t: Table) -> Grid:
    """One table for a terminal: strategy, final metric, seeds at the target, the speed-up (to
    the target, else to match) and the difference from the best constant."""
    pick = recommend(t).pick.key
    rows = []
    for r in t.rows:
        best = r.key == t.best_constant
        mark = " [best]" if best else " [use]" if r.key == pick else ""
        note = f" ({'; '.join(r.notes)})" if r.notes else ""
        rows.append(
            [
                Cell(r.label + mark + note),
                Cell(_pm(r.final, r.final_std)),
                Cell(f"{r.reached}/{r.seeds}"),
                Cell("" if best else speed_text(r)),
                Cell("" if best or r.final_diff is None else _diff_text(t, r.final_diff)),
            ]
        )
    columns = ["strategy", f"final {t.metric}", "at target", "speed-up vs best constant", "Δ final"]
    return Grid(columns, rows, ["l", "r", "r", "r", "r"])


def task_grid(t: Table) -> Grid:
    """Every row of one table."""
    extra = sorted({k for r in t.rows for k in r.extra})
    unit = t.step_unit
    columns = [
        "strategy",
        "family",
        f"final {t.metric_label}",
        "best",
        *extra,
        "reached target",
        f"{unit} to target",
        "speed-up to target",
        f"{unit} to match",
        "speed-up to match",
        f"Δ final vs best constant ({'higher' if t.higher_is_better else 'lower'} is better)",
        "notes",
    ]
    rows = []
    marked = set()
    pick = recommend(t).pick.key
    for i, r in enumerate(t.rows):
        best = r.key == t.best_constant
        sst = "n/a" if r.steps_to_target is None else f"{r.steps_to_target:.0f} ± {r.steps_to_target_std or 0:.0f}"
        search = f" (+{r.search_steps:.0f} search)" if r.search_steps else ""
        diff = "" if best or r.final_diff is None else _diff_text(t, r.final_diff)
        notes = ["best constant"] if best else []
        notes += ["recommended"] if r.key == pick else []
        rows.append(
            [
                Cell(r.label, strong=best or r.key == pick),
                Cell(r.family),
                Cell(_pm(r.final, r.final_std)),
                Cell(_num(r.best)),
                *[Cell(_num(r.extra[k]) if k in r.extra else "n/a") for k in extra],
                Cell(f"{r.reached}/{r.seeds}"),
                Cell(sst + search),
                Cell(_fmt_speed(r.speedup_target, r.target_censored)),
                Cell("n/a" if r.steps_to_match is None else f"{r.steps_to_match:.0f}"),
                Cell(_fmt_speed(r.speedup_match)),
                Cell(diff),
                Cell("; ".join(notes + r.notes)),
            ]
        )
        if best or r.key == pick:
            marked.add(i)
    n = len(columns)
    align = ["l", "l"] + ["r"] * (n - 3) + ["l"]
    short = [0, 2, 4 + len(extra), 7 + len(extra), 10 + len(extra)]
    return Grid(columns, rows, align, marked, short=[c for c in short if c < n])


def overview(tables: Sequence[Table]) -> str:
    """The recommendations as a Markdown table (the README's headline; without the links into
    the report)."""
    return recommendation_grid(tables).markdown(links=False)


def budget_line(t: Table) -> str:
    units = f" ({t.units})" if t.units else ""
    direction = "higher is better" if t.higher_is_better else "lower is better"
    line = (
        f"Metric: {t.metric_label}{units}, {direction}; target {t.target:g}. Budget: {t.total_steps} "
        f"{t.step_unit} ({t.steps_per_epoch} per epoch)."
    )
    if t.baselines:
        line += " Baselines without learning: " + ", ".join(f"{k} {v:.4g}" for k, v in t.baselines.items()) + "."
    return line


# ---------------------------------------------------------------------- documents
_METHOD = [
    "Runs are paired by seed: every strategy of a seed starts from the same initialisation and sees "
    "the same batches, on the same budget.",
    "Speed-ups are geometric means over seeds of (best constant's steps / strategy's steps) with a 95% "
    "t-interval; range-test steps count against the `finder` and `peer` families.",
    '"to target": steps until the declared target; "to match": steps until the best constant\'s final '
    "metric on the same seed (Smith's measure); `>=`: a lower bound (the best constant missed the "
    "target in some seed and counts as the whole budget there).",
    "**Beyond noise** means one thing throughout: the paired 95% interval over seeds excludes no "
    "difference (0 for a metric difference, 1x for a speed-up). A `*` after a difference marks it.",
    "**What to use** is the best final metric; among the strategies tied with it (within noise) the "
    "fastest. **How sure**: `clear` = better than the best constant LR beyond noise (final metric, or "
    "speed without a worse final); `likely` = ahead, within noise; `none` = the best constant LR is "
    "as good; `unknown` = one seed.",
    "W/T/L: wins, ties and losses on the final metric, paired by seed, beyond noise.",
]


def _md_text(text: str) -> str:
    return text


def _html_text(text: str) -> str:
    """Inline Markdown (``**bold**``, backtick code) as HTML, everything else escaped."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _plain_text(text: str) -> str:
    return text.replace("**", "").replace("`", "")


@dataclass
class _Section:
    title: str
    anchor: str
    level: int
    paragraphs: list[str] = field(default_factory=list)
    grid: Grid | None = None
    table: Table | None = None


def _sections(tables: Sequence[Table], failed: Sequence[RunRecord]) -> list[_Section]:
    out = [
        _Section("Which schedule should I use?", "recommendations", 2, [headline(tables)], recommendation_grid(tables)),
        _Section("Across tasks", "across-tasks", 2, [], summary_grid(tables)),
    ]
    domain = None
    for t in tables:
        if t.domain != domain:
            domain = t.domain
            title = DOMAIN_TITLES.get(domain, domain.title())
            out.append(_Section(title, _anchor("domain-" + domain), 2))
        paragraphs = [p for p in (t.description, budget_line(t), t.verdict) if p]
        out.append(_Section(t.title, t.anchor, 3, paragraphs, task_grid(t), t))
    out.append(_Section("How to read this report", "method", 2, list(_METHOD)))
    if failed:
        lines = [f"`{r.key}`: {r.error}" for r in failed]
        out.append(_Section("Failed runs (rerun with --resume)", "failed", 2, lines))
    return out


def _environment_lines(records: Sequence[RunRecord]) -> list[str]:
    envs = {json.dumps(r.environment, sort_keys=True) for r in records if r.environment}
    threads = sorted({r.threads for r in records if r.threads is not None})
    lines = [f"Environment: `{e}`" for e in sorted(envs)][:5]
    if threads:  # 1 and 2 threads round float sums differently: a mixed bench says so
        lines.append(f"torch threads per run: {', '.join(map(str, threads))} (set by --workers; stored with each run).")
    return lines


def render_markdown(
    tables: Sequence[Table], failed: Sequence[RunRecord], config: dict[str, Any], env: list[str]
) -> str:
    sections = _sections(tables, failed)
    md = ["# cyclr bench report", "", "## Contents", ""]
    for s in sections:
        md.append(f"{'  ' * (s.level - 2)}- [{s.title}](#{s.anchor})")
    for s in sections:
        md += ["", f"<a id='{s.anchor}'></a>", "", f"{'#' * s.level} {s.title}", ""]
        md += [_md_text(p) + "\n" for p in s.paragraphs]
        if s.grid is not None:
            md.append(s.grid.markdown())
    md += ["", f"Settings: `{json.dumps(config)}`", ""] + [x + "\n" for x in env]
    return "\n".join(md) + "\n"


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;max-width:1240px;margin:2em auto}
body{color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:13px;margin:.8em 0}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;vertical-align:top}
th{background:#f6f6f6;position:sticky;top:0}.r{text-align:right;white-space:nowrap}.l{text-align:left}
li.sub{margin-left:1.5em}
tr.mark{background:#eef6ff}nav ul{columns:2;font-size:14px}
.verdict{background:#f7f7f2;border-left:4px solid #E69F00;padding:.6em 1em}img{max-width:100%}
code{background:#f3f3f3;padding:1px 4px}h3{margin-top:2em;border-top:1px solid #ddd;padding-top:.8em}"""


def render_html(
    tables: Sequence[Table],
    failed: Sequence[RunRecord],
    config: dict[str, Any],
    env: list[str],
    images: dict[str, dict[str, bytes]],
) -> str:
    sections = _sections(tables, failed)
    parts = [
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>cyclr bench report</title><style>{_CSS}</style>",
        "<h1>cyclr bench report</h1>",
        "<nav><b>Contents</b><ul>",
    ]
    for s in sections:
        cls = " class='sub'" if s.level > 2 else ""
        parts.append(f"<li{cls}><a href='#{s.anchor}'>{html.escape(s.title)}</a></li>")
    parts.append("</ul></nav>")
    for s in sections:
        parts.append(f"<h{s.level} id='{s.anchor}'>{html.escape(s.title)}</h{s.level}>")
        for p in s.paragraphs:
            cls = " class='verdict'" if s.table is not None and p == s.table.verdict else ""
            parts.append(f"<p{cls}>{_html_text(p)}</p>")
        if s.grid is not None:
            parts.append(s.grid.html())
        if s.table is not None:
            for name, png in images.get(s.table.anchor, {}).items():
                data = base64.b64encode(png).decode()
                alt = html.escape(f"{s.table.title}: {name}")
                parts.append(f"<img alt='{alt}' src='data:image/png;base64,{data}'>")
    parts.append(f"<p>Settings: <code>{html.escape(json.dumps(config))}</code></p>")
    parts += [f"<p>{_html_text(line)}</p>" for line in env]
    return "\n".join(parts) + "\n</html>\n"


def terminal_report(tables: Sequence[Table], width: int = 100) -> str:
    """What ``cyclr bench`` prints: per table its compact grid and verdict, then the
    recommendations; every line within ``width`` columns."""
    out = []
    for t in tables:
        out.append("")
        out += textwrap.wrap(
            f"{t.title}: {t.total_steps} {t.step_unit}, target {t.metric_label} {t.target:g} "
            f"({'higher' if t.higher_is_better else 'lower'} is better)",
            width,
        )
        out.append(compact_grid(t).terminal(width))
        out += textwrap.wrap(_plain_text(t.verdict), width)
    out += ["", "Which schedule should I use?", recommendation_grid(tables).terminal(width)]
    out += textwrap.wrap(
        "[best]: the best constant LR; [use]: the recommendation; *: beyond seed noise (paired 95% interval); "
        "speed-ups vs the best constant LR, paired by seed; the full tables and plots are in report.html.",
        width,
    )
    return "\n".join(out).lstrip("\n") + "\n"


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


def write_report(
    records: Iterable[RunRecord | dict[str, Any]],
    plan: Sequence[str] | None,
    config: dict[str, Any],
    out: str | Path,
    plots: Callable[[Sequence[Table]], dict[str, dict[str, bytes]]] | None = None,
) -> Path | None:
    """Write report.md, report.json, report.html and summary.txt for the runs; ``None`` when
    no run finished. ``plots(tables)`` gives PNGs by table anchor to embed in the HTML
    (:func:`cyclr.bench.report_plots.plot_tables`)."""
    out = Path(out)
    typed = [_as_record(r) for r in records]
    tables = aggregate(typed, plan)
    if not tables:
        return None
    failed = [r for r in typed if r.status != "done" and (plan is None or r.key in set(plan))]
    env = _environment_lines([r for r in typed if r.status == "done"])
    atomic_write(out / "report.md", render_markdown(tables, failed, config, env))
    recs = [recommend(t) for t in tables]
    atomic_write(
        out / "report.json",
        json.dumps(
            {
                "config": config,
                "recommendations": [
                    {
                        "task": r.table.task,
                        "optimizer": r.table.optimizer,
                        "use": r.pick.label,
                        "family": r.pick.family,
                        "confidence": r.confidence,
                        "reason": r.reason,
                        "tied": [x.label for x in r.tied],
                    }
                    for r in recs
                ],
                "tables": [t.to_dict() for t in tables],
            },
            indent=1,
            default=str,
        ),
    )
    try:
        images = plots(tables) if plots is not None else {}
    except ImportError:  # matplotlib missing: the report without plots
        images = {}
    atomic_write(out / "report.html", render_html(tables, failed, config, env, images))
    atomic_write(out / "summary.txt", terminal_report(tables))
    return out / "report.md"


README_START = "<!-- cyclr bench overview: generated by `cyclr bench --report-only --readme`; do not edit -->"
README_END = "<!-- end of cyclr bench overview -->"


def update_readme(path: str | Path, tables: Sequence[Table], command: str) -> None:
    """Replace the block between :data:`README_START` and :data:`README_END` in ``path`` with the
    recommendations and the command that produced them (the README's headline is never
    hand-copied)."""
    path = Path(path)
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{path}: no overview block (add the lines {README_START!r} and {README_END!r}).")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = f"{README_START}\n\n```sh\n{command}\n```\n\n{overview(tables)}\n\n{README_END}"
    atomic_write(path, head + block + tail)
