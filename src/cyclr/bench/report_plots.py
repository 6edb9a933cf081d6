"""The bench report's plots (matplotlib): learning curves, LR traces, steps to the target and
to match, and range-test curves. One colour and line style per strategy across the whole report."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..plot import _plt, _style
from .report import Row, Table, recommend

__all__ = ["Styles", "plot_table", "plot_tables"]

#: Okabe-Ito's colour-blind-safe colours, then Tol's muted set: 15 distinct hues
COLOURS = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#882255",
    "#117733",
    "#332288",
    "#999933",
    "#AA4499",
    "#44AA99",
    "#88CCEE",
    "#661100",
)
LINESTYLES = ("-", "--", "-.", ":")


class Styles:
    """Colour and line style by strategy label, assigned once for the whole report (so a
    colour means the same strategy in every section and every plot)."""

    def __init__(self, tables: Sequence[Table]) -> None:
        labels: dict[str, tuple[int, str]] = {}
        for t in tables:
            for r in shown_rows(t):
                labels.setdefault(_name(t, r), (r.rank, r.label))
        order = sorted(labels, key=lambda k: labels[k])
        self.style = {
            name: (COLOURS[i % len(COLOURS)], LINESTYLES[(i // len(COLOURS)) % len(LINESTYLES)])
            for i, name in enumerate(order)
        }

    def __call__(self, t: Table, r: Row) -> dict[str, Any]:
        colour, ls = self.style.get(_name(t, r), ("#777777", "-"))
        return {"color": colour, "linestyle": ls}


def _name(t: Table, r: Row) -> str:
    """The key a colour follows: the best constant is one colour everywhere, whatever its LR."""
    if r.key == t.best_constant:
        return "best constant"
    if r.framework_default:
        return "framework default"
    return r.label


def _legend(t: Table, r: Row) -> str:
    if r.key == t.best_constant:
        return f"{r.label} (best constant)"
    return r.label


def shown_rows(t: Table) -> list[Row]:
    """Rows drawn in the plots: every non-constant strategy, the best and the default constant,
    and whichever row the report recommends or found first to the target (never left out)."""
    keep = {t.best_constant, t.default_constant, recommend(t).pick.key}
    full = [r for r in t.rows if r.steps_to_target is not None]
    if full:
        keep.add(min(full, key=lambda r: r.steps_to_target or math.inf).key)
    return [r for r in t.rows if r.family != "baseline" or r.key in keep]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _metric_range(t: Table, rows: Sequence[Row], drawn: Sequence[float]) -> tuple[float, float]:
    """Zoomed on the finals and the target (where the strategies differ), never past the values
    drawn: a metric that cannot go below 0 is not given a negative axis."""
    finals = [r.final for r in rows if not math.isnan(r.final)]
    if not finals:
        return 0.0, 1.0
    lo, hi = min([*finals, t.target]), max([*finals, t.target])
    pad = max(hi - lo, 1e-3 * max(abs(hi), 1.0))
    lo, hi = (lo - 1.5 * pad, hi + 0.5 * pad) if t.higher_is_better else (lo - 0.5 * pad, hi + 1.5 * pad)
    values = [v for v in drawn if math.isfinite(v)] + [t.target]
    span = max(values) - min(values) or 1.0
    return max(lo, min(values) - 0.05 * span), min(hi, max(values) + 0.05 * span)


def plot_table(t: Table, styles: Styles) -> dict[str, bytes]:
    plt = _plt()
    rows = shown_rows(t)
    out: dict[str, bytes] = {}
    direction = "higher is better" if t.higher_is_better else "lower is better"
    units = f", {t.units}" if t.units else ""

    fig, (ax_m, ax_l) = plt.subplots(1, 2, figsize=(12, 4.4))
    losses_positive = True
    drawn: list[float] = []
    for r in rows:
        runs = t.runs[r.key]
        results = [x.result for x in runs if x.result is not None]
        n = min(len(x.metrics) for x in results) if results else 0
        if n == 0:
            continue
        steps = results[0].eval_steps[:n]
        m = np.array([x.metrics[:n] for x in results])
        lo = np.array([x.train_losses[:n] for x in results])
        losses_positive &= bool(np.all(lo[np.isfinite(lo)] > 0))
        st = styles(t, r)
        drawn += [float(v) for v in m.mean(0)]
        for ax, arr in ((ax_m, m), (ax_l, lo)):
            ax.plot(steps, arr.mean(0), label=_legend(t, r), lw=1.6, **st)
            if len(results) > 1:
                ax.fill_between(steps, arr.min(0), arr.max(0), color=st["color"], alpha=0.10, lw=0)
    ax_m.axhline(t.target, color="#999999", lw=1, ls=":")
    ax_m.set_title(
        f"{t.metric_label}\n({units.lstrip(', ')}{'; ' if units else ''}{direction}; dotted: target)", fontsize=9
    )
    ax_l.set_title("training loss\n(mean since the previous evaluation)", fontsize=9)
    ax_m.set_ylim(*_metric_range(t, rows, drawn))
    for ax in (ax_m, ax_l):
        _style(ax)
        ax.set_xlabel(f"{t.step_unit} (band: min-max over seeds)")
    if losses_positive:  # a loss that can be negative (REINFORCE's surrogate) stays on a linear axis
        ax_l.set_yscale("log")
    handles, labels = ax_m.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        fontsize=8,
        ncol=min(6, len(labels)),
        frameon=False,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.02),
    )
    fig.suptitle(f"{t.title}: learning curves (mean over seeds)", fontsize=11, y=1.05)
    out["learning curves"] = _png(fig)

    fig, ax = plt.subplots(figsize=(12, 3.6))
    top: float = 0.0
    floor: float = math.inf
    for r in rows:
        run = t.runs[r.key][0]
        res = run.result
        if res is None or not res.trace_steps:
            continue
        lrs = np.asarray(res.lrs, dtype=float)
        ax.plot(np.asarray(res.trace_steps) + run.search_steps, lrs, label=_legend(t, r), lw=1.4, **styles(t, r))
        positive = lrs[lrs > 0]
        if positive.size:
            top, floor = max(top, float(positive.max())), min(floor, float(positive.min()))
    _style(ax)
    ax.set_yscale("log")
    if top > 0:  # warm-restart dips to ~0 would squash every trace into the top of the axis
        ax.set_ylim(max(floor, top / 1e3) / 1.5, top * 1.5)
    ax.set_xlabel(f"{t.step_unit} (after any range test)")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(
        f"{t.title}: LR traces as the optimizer used them (seed 0; clipped at 1/1000 of the peak)", fontsize=10
    )
    out["LR traces"] = _png(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, what in zip(axes, ("target", "match")):
        _steps_panel(ax, t, rows, what, styles)
    fig.suptitle(
        f"{t.title}: {t.step_unit} to get there (range tests counted); bar: mean, dots: seeds; "
        "(k/n): seeds that got there, faint bar: not all",
        fontsize=10,
        y=1.02,
    )
    out["steps"] = _png(fig)

    curves = [
        (r, t.runs[r.key][0])
        for r in t.rows
        if r.family in ("finder", "peer") and t.runs[r.key][0].details.get("curve")
    ]
    if curves:
        fig, ax = plt.subplots(figsize=(8, 3.8))
        finite: list[float] = []
        for r, run in curves:
            curve = run.details["curve"]
            st = styles(t, r)
            ax.plot(curve["lrs"], curve["losses"], color=st["color"], lw=1.2, label=f"{r.label} range test")
            pick = run.details.get("suggestion")
            if pick:
                ax.axvline(pick, color=st["color"], ls=":", lw=1.4, label=f"{r.label} chose {pick:.2g}")
            finite += [float(v) for v in curve["losses"] if v == v and abs(v) < 1e6]
        ax.set_xscale("log")
        if finite:
            low, high, med = float(np.min(finite)), float(np.max(finite)), float(np.median(finite))
            cap = low + 4 * (med - low)
            ax.set_ylim(low - 0.05 * abs(low), max(min(high, cap), low + 1e-6))
        _style(ax)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8, frameon=False)
        ax.set_title(f"{t.title}: range tests (seed 0); dotted: the LR each chose", fontsize=10)
        out["range tests"] = _png(fig)
    return out


def _steps_panel(ax: Any, t: Table, rows: Sequence[Row], what: str, styles: Styles) -> None:
    """Per row: a bar at the mean over seeds, a dot per seed and a line from the fewest to the
    most steps (never below 0); rows that got there in no seed say so instead of vanishing."""
    labels: list[str] = []
    missing: list[int] = []
    drawn = 0
    for i, r in enumerate(rows):
        vals = []
        for run in t.runs[r.key]:
            res = run.result
            if res is None:
                continue
            if what == "target":
                s = res.steps_to_target
            else:
                level = t.match_levels.get(run.seed, math.nan)
                hit = [
                    st
                    for st, m in zip(res.eval_steps, res.metrics)
                    if (m >= level if t.higher_is_better else m <= level)
                ]
                s = hit[0] if hit else None
            if s is not None:
                vals.append(float(s + run.search_steps))
        st = styles(t, r)
        n = len(t.runs[r.key])
        labels.append(f"{_legend(t, r)} ({len(vals)}/{n})")
        if not vals:
            missing.append(i)
            continue
        drawn += 1
        ax.bar(i, float(np.mean(vals)), color=st["color"], alpha=0.35 if len(vals) < n else 0.8, width=0.7)
        ax.plot([i] * len(vals), vals, "o", color="#222222", ms=3)
        ax.vlines(i, min(vals), max(vals), color="#222222", lw=1)
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=7)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(t.step_unit)
    _style(ax)
    for i in missing if drawn else []:
        ax.text(i, 0, " none", rotation=90, va="bottom", ha="center", fontsize=7, color="#777777")
    if not drawn:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no strategy got there in any seed", transform=ax.transAxes, ha="center", color="#555555")
    title = f"to the target ({t.target:g})" if what == "target" else "to match the best constant's final"
    ax.set_title(title, fontsize=10)


def plot_tables(tables: Sequence[Table]) -> dict[str, dict[str, bytes]]:
    """The plots of every table, by the table's anchor."""
    styles = Styles(tables)
    return {t.anchor: plot_table(t, styles) for t in tables}
