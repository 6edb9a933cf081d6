"""The range test's plot (matplotlib, imported on first use through :mod:`cyclr.plot`)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ..plot import PALETTE, _plt, _safe_text, _style
from ._suggest import NoDescentError, trend

__all__ = ["RULE_LABELS", "plot_range_test", "used_rule"]

#: each rule with its definition, as the plot's legend names it
RULE_LABELS = {
    "valley": "valley (middle of the longest descent)",
    "steepest": "steepest (fastest fall vs log LR)",
    "minimum": "minimum / 10 (a tenth of the lowest loss's LR)",
}


def plot_range_test(result: Any, path: str | Path | None = None, *, title: str | None = None) -> Any:
    """A range test's curve: raw losses faint, smoothed bold, extra repeats faint, a solid line at
    the LR that :meth:`~cyclr.finder.RangeTestResult.schedule` uses, each other rule dashed with
    its definition, and Smith's bounds shaded. The top of the y-axis comes from the stop rule's EMA
    (smooth by construction), the bottom from the lower of the EMA and the trend, so neither
    descent is clipped."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5), dpi=120, layout="constrained")
    _style(ax)
    ax.ticklabel_format(axis="y", style="plain")
    for k, curve in enumerate(result.curves[1:]):
        label = f"repeats ({len(result.curves) - 1} more sweeps)" if k == 0 else None
        ax.plot(curve.lrs, trend(np.asarray(curve.losses)), color=PALETTE[5], linewidth=0.8, alpha=0.35, label=label)
    watched = result.val_losses if len(result.val_losses) else result.losses
    ax.plot(result.lrs, watched, color=PALETTE[0], linewidth=0.8, alpha=0.3, label="loss")
    ax.plot(result.lrs, result.smoothed, color="#999999", linewidth=1.0, linestyle=":", label="EMA (stop rule)")
    ax.plot(result.lrs, result.trend, color=PALETTE[0], linewidth=2.0, label="trend (suggestions)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation loss" if len(result.val_losses) else "training loss")
    finite = result.smoothed[np.isfinite(result.smoothed)]
    if finite.size:
        # the top from the EMA's start (smooth by construction); the bottom low enough for both the
        # EMA and the trend, whose zero-lag descent reaches lower than the lagging EMA
        trend_finite = result.trend[np.isfinite(result.trend)]
        low = min(float(finite.min()), float(trend_finite.min()) if trend_finite.size else math.inf)
        first = float(finite[0])
        span = max(first - low, 0.05 * abs(low), 1e-3)  # a flat curve still gets a readable range
        ax.set_ylim(low - 0.1 * span, max(first, low) + 0.6 * span)
    note = result.stop_reason
    try:
        s = result.suggestions
        ax.axvspan(s["base_lr"], s["max_lr"], color=PALETTE[2], alpha=0.12, label="Smith bounds (base_lr to max_lr)")
        marks = {"valley": PALETTE[1], "steepest": PALETTE[3], "minimum": PALETTE[4]}
        for name, color in marks.items():
            ax.axvline(s[name], color=color, linewidth=1.0, linestyle="--", label=f"{RULE_LABELS[name]}: {s[name]:.2g}")
        used = result.suggestion
        ax.axvline(used, color="#000000", linewidth=2.0, label=f"used by schedule(): {used:.2g} ({used_rule(result)})")
        confidence = result.confidence
        if confidence["level"] != "single sweep":
            note = f"{note}; {confidence['level']} confidence: {confidence['reason']}"
    except NoDescentError as err:
        note = f"{note}; no suggestion: {err}"
    ax.set_title(_safe_text(title) or "LR range test", loc="left", fontsize=11)
    ax.text(0.0, -0.16, textwrap.fill(note, 150), transform=ax.transAxes, fontsize=8, color="#555555", va="top")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    if path is not None:
        fig.savefig(path, facecolor="white")
    return fig


def used_rule(result: Any) -> str:
    """The rule behind the suggestion, in words (the calibrated rule's definition)."""
    from ._suggest import CALIBRATED

    return f"calibrated: {CALIBRATED.describe()}" if result.default_rule == "calibrated" else result.default_rule
