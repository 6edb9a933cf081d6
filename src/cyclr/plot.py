"""Plots of schedules: one or several on shared axes, and the gallery of every family."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._lazy import require
from .schedules import (
    SEED_DEFAULT,
    SGDR,
    WSD,
    Constant,
    Cosine,
    Cyclic,
    Exponential,
    ExpRange,
    Join,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    Schedule,
    StepDecay,
    Triangular,
    Triangular2,
    Warmup,
    from_config,
)
from .schedules import _base as _schedule_base

__all__ = [
    "PALETTE",
    "GalleryEntry",
    "default_steps",
    "figure_png",
    "gallery_entries",
    "plot_gallery",
    "plot_schedules",
    "summarize",
]

#: Colour-blind-safe palette (Okabe-Ito, reordered for contrast on white).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
MOMENTUM_COLOR = "#7F7F7F"
CYCLE_COLOR = "#E69F00"


def _plt() -> Any:
    matplotlib = require("matplotlib", "plot", "cyclr plotting")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def default_steps(schedules: Sequence[Schedule], fallback: int = 1000) -> int:
    """Enough steps to see every finite schedule end (plus 5%), else ``fallback``."""
    ends = [s.horizon for s in schedules if s.horizon is not None]
    return max(int(max(ends) * 1.05) + 1, 2) if ends else fallback


#: The most steps a plot or summary evaluates. Longer horizons are sampled at random (seeded)
#: steps, so cycles far shorter than the sample spacing fill their band instead of drawing an
#: aliasing moire as an even stride would, plus the first and last step and the steps around
#: every cycle start, so no restart is drawn as a slope (a billion-step cosine would otherwise
#: ask for 8 GB).
MAX_POINTS = 20_000


def plot_steps(schedules: Sequence[Schedule], steps: int) -> np.ndarray:
    """The steps to evaluate for a plot of ``steps`` steps: all of them, or a sample."""
    if steps <= MAX_POINTS:
        return np.arange(steps)
    sample = np.random.default_rng(0).integers(0, steps, size=MAX_POINTS, dtype=np.int64)
    picks = [sample, np.array([0, steps - 1], dtype=np.int64)]
    for s in schedules:
        starts = np.asarray(s.cycle_starts(steps), dtype=np.float64)
        picks += [np.floor(starts).astype(np.int64), np.ceil(starts).astype(np.int64) - 1]
    t = np.unique(np.concatenate(picks))
    return t[(t >= 0) & (t < steps)]


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, which="major", color="#E5E5E5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))


def _mark_cycles(ax: Any, schedule: Schedule, steps: int) -> None:
    starts = [s for s in schedule.cycle_starts(steps) if s > 0]
    if len(starts) > 60:  # too dense to read: mark every k-th
        starts = starts[:: len(starts) // 30 + 1]
    for s in starts:
        ax.axvline(s, color=CYCLE_COLOR, alpha=0.55, linewidth=0.8, linestyle=(0, (2, 3)), zorder=1)


def _draw(ax: Any, schedule: Schedule, steps: int, color: str, label: str | None, log: bool) -> None:
    t = plot_steps([schedule], steps)
    ax.plot(t, schedule(t), color=color, linewidth=1.6, label=label)
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.05 * float(schedule.bounds[1])))


def _momentum_axis(ax: Any) -> Any:
    twin = ax.twinx()
    twin.set_ylabel("momentum (dashed)", fontsize=8, color=MOMENTUM_COLOR)
    twin.tick_params(labelsize=7, colors=MOMENTUM_COLOR)
    twin.spines[["top"]].set_visible(False)
    return twin


def _draw_momentum(twin: Any, momentum: Schedule, steps: int, color: str) -> None:
    t = plot_steps([momentum], steps)
    twin.plot(t, momentum(t), color=color, linewidth=1.1, linestyle="--", alpha=0.75)


def plot_schedules(
    schedules: Sequence[Schedule | Mapping[str, Any]] | Mapping[str, Schedule | Mapping[str, Any]],
    steps: int | None = None,
    path: str | Path | None = None,
    *,
    momentum: tuple[float, float] | None = None,
    log: bool = False,
    title: str | None = None,
) -> Any:
    """Draw schedules on shared axes, cycle boundaries marked; save to ``path`` if given.

    ``momentum=(low, high)`` adds each schedule's mirrored momentum on a second axis.
    Returns the matplotlib figure.
    """
    plt = _plt()
    if isinstance(schedules, Mapping):
        items = [(str(k), from_config(v)) for k, v in schedules.items()]
    else:
        built = [from_config(v) for v in schedules]
        items = [(_label(s), s) for s in built]
    if not items:
        raise ValueError("plot_schedules needs at least one schedule.")
    steps = steps or default_steps([s for _, s in items])
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=120, layout="constrained")
    _style(ax)
    twin = _momentum_axis(ax) if momentum else None
    for i, (label, s) in enumerate(items):
        color = PALETTE[i % len(PALETTE)]
        _draw(ax, s, steps, color, label, log)
        if twin is not None and momentum is not None:
            _draw_momentum(twin, s.mirror(*momentum), steps, color)
        if i == 0:
            _mark_cycles(ax, s, steps)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_xlim(0, steps - 1)
    ax.set_title(
        _safe_text(title) or ("cyclr schedule" if len(items) == 1 else "cyclr schedules"), loc="left", fontsize=11
    )
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2)
    if path is not None:
        fig.savefig(path, facecolor="white")
    return fig


def _safe_text(text: str | None) -> str | None:
    """``text`` as matplotlib will draw it: mathtext (``$x^2$``) when it parses, else the literal
    characters (an unbalanced ``$`` would otherwise fail the whole savefig)."""
    if not text or "$" not in text:
        return text
    from matplotlib.mathtext import MathTextParser

    try:
        MathTextParser("path").parse(text)
    except ValueError:
        return text.replace("$", r"\$")
    return text


def _label(s: Schedule) -> str:
    cfg = s.to_config()
    parts = []
    for k, v in cfg.items():
        if k == "name" or isinstance(v, (dict, list)) or v is None:
            continue
        parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    text = f"{cfg['name']}(" + ", ".join(parts[:4]) + (", ..." if len(parts) > 4 else "") + ")"
    return text


@dataclass(frozen=True)
class GalleryEntry:
    title: str
    schedule: Schedule
    steps: int
    momentum: tuple[float, float] | None = None
    log: bool = False


def gallery_entries() -> list[GalleryEntry]:
    """Every schedule family, the seed's default cyclical schedule first."""
    warm = Warmup(Cosine(0.1, 900, min_lr=1e-3), 100)
    return [
        GalleryEntry("seed default: triangular, gamma 0.95/cycle", from_config(SEED_DEFAULT), 100),
        GalleryEntry("triangular", Triangular(1e-3, 1e-2, 100), 800),
        GalleryEntry("triangular2", Triangular2(1e-3, 1e-2, 100), 800),
        GalleryEntry("exp_range (gamma 0.998)", ExpRange(1e-3, 1e-2, 100, gamma=0.998), 800),
        GalleryEntry("cyclic, sine shape, uneven", Cyclic(1e-3, 1e-2, 60, step_size_down=140, shape="sine"), 800),
        GalleryEntry(
            "cyclic, cosine shape, 3 cycles", Cyclic(1e-3, 1e-2, 100, shape="cosine", decay=0.8, cycles=3), 800
        ),
        GalleryEntry("sgdr: period x2, decay 0.7", SGDR(0.1, 50, min_lr=1e-3, period_mult=2.0, decay=0.7), 750),
        GalleryEntry("sgdr: period x1.5, float", SGDR(0.1, 80, period_mult=1.5), 800),
        GalleryEntry("one_cycle + momentum", OneCycle(0.1, 1000), 1000, momentum=(0.85, 0.95)),
        GalleryEntry(
            "one_cycle, three-phase, linear", OneCycle(0.1, 1000, anneal="linear", three_phase=True), 1000, (0.85, 0.95)
        ),
        GalleryEntry("cosine", Cosine(0.1, 800, min_lr=1e-3), 1000),
        GalleryEntry("warmup + cosine", warm, 1000),
        GalleryEntry("wsd: warmup-stable-decay", WSD(0.1, 100, 600, 300, min_lr=1e-3), 1000),
        GalleryEntry(
            "join: warmup, triangular, cosine",
            Join((Linear(0.0, 0.05, 100), Triangular(0.01, 0.05, 100), Cosine(0.01, 300)), (100, 700)),
            1000,
        ),
        GalleryEntry("step_decay (x0.5 every 200)", StepDecay(0.1, 200, gamma=0.5), 1000),
        GalleryEntry("multistep (300, 600, 800)", MultiStep(0.1, (300, 600, 800)), 1000),
        GalleryEntry("exponential (gamma 0.995)", Exponential(0.1, 0.995), 1000, log=True),
        GalleryEntry("polynomial (power 2)", Polynomial(0.1, 900, power=2.0), 1000),
        GalleryEntry("linear", Linear(0.1, 0.001, 800), 1000),
        GalleryEntry("constant", Constant(0.01), 1000),
    ]


def plot_gallery(path: str | Path, entries: Sequence[GalleryEntry] | None = None, cols: int = 4) -> Any:
    """Every family in one PNG: one panel each, cycle boundaries marked, momentum dashed."""
    plt = _plt()
    entries = list(entries or gallery_entries())
    rows = -(-len(entries) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.9 * rows), dpi=110, layout="constrained")
    flat = np.atleast_1d(axes).ravel()
    for i, (ax, e) in enumerate(zip(flat, entries)):
        _style(ax)
        color = PALETTE[0] if i else PALETTE[1]
        _draw(ax, e.schedule, e.steps, color, None, e.log)
        if e.momentum:
            _draw_momentum(_momentum_axis(ax), e.schedule.mirror(*e.momentum), e.steps, MOMENTUM_COLOR)
        _mark_cycles(ax, e.schedule, e.steps)
        ax.set_title(e.title, loc="left", fontsize=10, fontweight="bold" if i == 0 else "normal")
        ax.set_xlim(0, e.steps - 1)
        if i % cols == 0:
            ax.set_ylabel("learning rate", fontsize=8)
        if i >= len(entries) - cols:
            ax.set_xlabel("optimizer step", fontsize=8)
    for ax in flat[len(entries) :]:
        ax.set_visible(False)
    fig.suptitle(
        "cyclr: every schedule family (dotted orange: cycle and phase starts; dashed grey: momentum)",
        fontsize=13,
        x=0.01,
        ha="left",
    )
    fig.savefig(path, facecolor="white")
    plt.close(fig)
    return fig


def summarize(schedule: Schedule, steps: int, momentum: tuple[float, float] | None = None) -> dict[str, Any]:
    """Numbers that describe a schedule over ``steps`` steps (for the CLI's tables; past
    :data:`MAX_POINTS` steps, over a sample that keeps every cycle start)."""
    t = plot_steps([schedule], steps)
    v = np.asarray(schedule(t))
    row: dict[str, Any] = {
        "name": schedule.name,
        "steps": steps,
        "first": float(v[0]),
        "peak": float(v.max()),
        "peak_step": int(t[v.argmax()]),
        "min": float(v.min()),
        "last": float(v[-1]),
        "mean": float(v.mean()),
        "cycles": len(schedule.cycle_starts(steps)),
    }
    if momentum is not None:
        m = np.asarray(schedule.mirror(*momentum)(t))
        row["momentum"] = (float(m.min()), float(m.max()))
    return row


def figure_png(fig: Any) -> bytes:
    """A figure as PNG bytes (then closed)."""
    import io

    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    plt.close(fig)
    return buf.getvalue()


def _schedule_png(schedule: Schedule) -> bytes | None:
    """A schedule's notebook picture: :func:`plot_schedules` of it alone (``None`` without matplotlib)."""
    try:
        return figure_png(plot_schedules([schedule]))
    except ImportError:
        return None


_schedule_base.DISPLAY["png"] = _schedule_png
