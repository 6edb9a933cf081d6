"""The framework-free part of the LR range test: the sweep, smoothing, the stop rule and the result.

A framework loop asks :class:`RangeTest` for the learning rate of each step, trains one step at
that rate, reports the loss, and stops when told to; :meth:`RangeTest.result` then holds the
curve, the suggestions and a complete schedule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import IntRange, NumberRange, OneOf, check
from ..schedules import OneCycle, Schedule, Triangular, Triangular2
from ._suggest import CALIBRATED, METHODS, NoDescentError, clean, smith_bounds, trend

__all__ = [
    "REPEATS",
    "Curve",
    "NoSafeLRError",
    "RangeTest",
    "RangeTestResult",
    "RangeTestWarning",
    "progress_bar",
    "repeat_batches",
]

#: Repeats whose suggestions (the default rule) span more than this factor disagree: a one-cycle
#: ``max_lr`` is usable over about one decade (the bench's constant grid spans one), so sweeps a
#: decade apart cannot both be right and the result says it cannot be trusted.
MAX_SPREAD = 10.0


#: Sweeps the CLI (``cyclr find``) and the bench's ``auto`` run by default: the calibration study
#: (``benchmarks/range_test_quality.py``) measured the median of 3 against a single sweep, and 3
#: sweeps of the default 100 steps cost 300 steps, under one epoch of full-size MNIST (469).
REPEATS = 3


class RangeTestWarning(UserWarning):
    """A range test whose answer should not be trusted as it is (repeats that disagree)."""


class NoSafeLRError(NoDescentError):
    """The sweeps do not agree on a learning rate (their spread is over :data:`MAX_SPREAD`, or
    some do not fall at all), so the test gives none rather than a number that may diverge or
    collapse training. Every rule's reading stays in ``result.suggestions`` and ``result.spread``."""


def _log_median(values: Sequence[float]) -> float:
    """The median in log space: the middle value, or the geometric mean of the middle two (kept
    between them despite rounding)."""
    v = sorted(float(x) for x in values)
    n = len(v)
    if n % 2:
        return v[n // 2]
    a, b = v[n // 2 - 1], v[n // 2]
    return min(max(math.sqrt(a * b), a), b)


@dataclass
class Curve:
    """One sweep: learning rates, raw and smoothed losses (and validation losses if measured)."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    stop_reason: str = "not started"
    seconds: float = 0.0


class RangeTest:
    """Sweep state: exponential or linear LRs, bias-corrected EMA, the divergence stop.

    Defaults follow fastai: ``1e-7`` to ``10`` over 100 steps, smoothing 0.98, stop when the
    smoothed loss exceeds 4x the best (or is NaN/inf).
    """

    def __init__(
        self,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        num_steps: int = 100,
        mode: str = "exp",
        smoothing: float = 0.98,
        diverge: float = 4.0,
    ) -> None:
        check("lr_range_test", "start_lr", start_lr, [NumberRange(0.0, closed="neither")])
        check("lr_range_test", "end_lr", end_lr, [NumberRange(start_lr, closed="neither")])
        check("lr_range_test", "num_steps", num_steps, [IntRange(6)])
        check("lr_range_test", "mode", mode, [OneOf(("exp", "linear"))])
        check("lr_range_test", "smoothing", smoothing, [NumberRange(0.0, 1.0, closed="left")])
        check("lr_range_test", "diverge", diverge, [NumberRange(1.0, closed="neither")])
        self.start_lr, self.end_lr, self.num_steps = float(start_lr), float(end_lr), num_steps
        self.mode, self.smoothing, self.diverge = mode, smoothing, diverge
        self.curves: list[Curve] = []

    def lr(self, i: int) -> float:
        """The learning rate of step ``i`` (the last step reaches ``end_lr`` exactly)."""
        if i >= self.num_steps - 1:
            return self.end_lr
        frac = i / (self.num_steps - 1)
        if self.mode == "exp":
            return float(self.start_lr * (self.end_lr / self.start_lr) ** frac)
        return self.start_lr + frac * (self.end_lr - self.start_lr)

    def begin(self) -> Curve:
        """Start a sweep (one per repeat)."""
        self._avg, self._best, self._t0 = 0.0, math.inf, time.perf_counter()
        curve = Curve(stop_reason="interrupted")
        self.curves.append(curve)
        return curve

    def record(self, lr: float, loss: float, val_loss: float | None = None) -> bool:
        """Record one step's loss; True when the sweep must stop (diverged, non-finite, done)."""
        curve = self.curves[-1]
        n = len(curve.losses) + 1
        curve.lrs.append(lr)
        curve.losses.append(loss)
        if val_loss is not None:
            curve.val_losses.append(val_loss)
        watched = loss if val_loss is None else val_loss
        curve.seconds = time.perf_counter() - self._t0
        if not math.isfinite(watched):
            curve.smoothed.append(math.nan)
            curve.stop_reason = "non-finite loss"
            return True
        self._avg = self.smoothing * self._avg + (1 - self.smoothing) * watched
        smooth = self._avg / (1 - self.smoothing**n)
        curve.smoothed.append(smooth)
        if n > 1 and smooth > self.diverge * self._best:
            curve.stop_reason = f"diverged (smoothed loss > {self.diverge:g}x the best)"
            return True
        self._best = min(self._best, smooth)
        if n >= self.num_steps:
            curve.stop_reason = "completed"
            return True
        return False

    def result(self, **info: Any) -> RangeTestResult:
        """The result; a :class:`RangeTestWarning` when its repeats disagree (see
        :attr:`RangeTestResult.confidence`)."""
        settings = {
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "num_steps": self.num_steps,
            "mode": self.mode,
            "smoothing": self.smoothing,
            "diverge": self.diverge,
        }
        result = RangeTestResult(self.curves, settings, info)
        confidence = result.confidence
        if confidence["level"] == "low":
            import warnings

            warnings.warn(f"LR range test: {confidence['reason']}", RangeTestWarning, stacklevel=3)
        return result


def _watched(curve: Curve) -> np.ndarray:
    """The losses the suggestions read: validation losses when measured, else training losses."""
    return np.asarray(curve.val_losses if curve.val_losses else curve.losses, dtype=float)


class RangeTestResult:
    """What a range test found: the curve(s), suggested LRs, bounds and a complete schedule.

    With ``repeats > 1`` every sweep counts: each rule's suggestion is the median over the sweeps
    in log space, :attr:`spread` reports how they varied (on different batches) and
    :attr:`confidence` says whether they agree. The first sweep is the curve that is drawn.
    """

    def __init__(self, curves: Sequence[Curve], settings: dict[str, Any], info: dict[str, Any]) -> None:
        if not curves or not curves[0].lrs:
            raise ValueError("the range test recorded no step.")
        self.curves = list(curves)
        self.settings = settings
        self.info = info  # steps_per_epoch, seconds per epoch etc., when the loop knows them

    # --------------------------------------------------------------- the curve
    @property
    def lrs(self) -> np.ndarray:
        return np.asarray(self.curves[0].lrs)

    @property
    def losses(self) -> np.ndarray:
        return np.asarray(self.curves[0].losses)

    @property
    def smoothed(self) -> np.ndarray:
        return np.asarray(self.curves[0].smoothed)

    @property
    def val_losses(self) -> np.ndarray:
        return np.asarray(self.curves[0].val_losses)

    @property
    def trend(self) -> np.ndarray:
        """The zero-lag smoothed loss the suggestions are read from (NaN after a non-finite loss)."""
        return trend(_watched(self.curves[0]))

    @property
    def stop_reason(self) -> str:
        return self.curves[0].stop_reason

    @property
    def steps(self) -> int:
        """Training steps the test took, all repeats together."""
        return sum(len(c.lrs) for c in self.curves)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.curves)

    # --------------------------------------------------------------- suggestions
    def _suggest(self, curve: Curve) -> dict[str, float]:
        lrs, losses = clean(np.asarray(curve.lrs), _watched(curve))
        out = {name: rule(lrs, losses) for name, rule in METHODS.items()}
        out["base_lr"], out["max_lr"] = smith_bounds(lrs, losses)
        out["calibrated"] = CALIBRATED(np.asarray(curve.lrs), _watched(curve), np.asarray(curve.smoothed))
        return out

    def _per_sweep(self) -> list[dict[str, float]]:
        per = []
        for curve in self.curves:
            try:
                per.append(self._suggest(curve))
            except NoDescentError:
                continue
        return per

    @property
    def suggestions(self) -> dict[str, float]:
        """Every rule's LR, read from the curve smoothed without lag (:attr:`trend`): ``steepest``,
        ``valley``, ``minimum``, Smith's ``base_lr``/``max_lr``, and ``calibrated`` (the
        :data:`~cyclr.finder.CALIBRATED` rule, the :attr:`suggestion`); with repeats, each rule's
        median over the sweeps that fall (in log space). Raises :class:`NoDescentError` when no
        sweep falls."""
        if len(self.curves) == 1:
            return self._suggest(self.curves[0])
        return {k: med for k, (_, med, _) in self.spread.items()}

    #: The rule behind :attr:`suggestion` and one-cycle's ``max_lr``: the calibrated rule
    #: (:data:`cyclr.finder.CALIBRATED`), chosen by ``benchmarks/range_test_quality.py``; see the
    #: README for its figures.
    default_rule = "calibrated"

    @property
    def suggestion(self) -> float:
        """The one LR the test recommends (the :attr:`default_rule`), e.g. one-cycle's ``max_lr``.
        Raises :class:`NoSafeLRError` when the sweeps disagree (:attr:`confidence` ``'low'``)."""
        return self._trusted()[self.default_rule]

    @property
    def bounds(self) -> tuple[float, float]:
        """``(base_lr, max_lr)`` for a cyclical schedule (Smith's rule); :class:`NoSafeLRError`
        when the sweeps disagree."""
        s = self._trusted()
        return s["base_lr"], s["max_lr"]

    @property
    def clr_bounds(self) -> tuple[float, float]:
        """``(base_lr, max_lr)`` for the cyclical kinds of :meth:`schedule`: Smith's ``base_lr``
        and the calibrated ``max_lr`` (:attr:`suggestion`); a ``base_lr`` not below it becomes a
        tenth of it."""
        base, _ = self.bounds
        peak = self.suggestion
        return (base if base < peak else peak / 10), peak

    def _trusted(self) -> dict[str, float]:
        suggestions = self.suggestions  # NoDescentError when no sweep falls
        caveat = self.info.get("no_safe_lr")
        if caveat:
            raise NoSafeLRError(
                f"no safe learning rate for this objective: {caveat}. Each rule's reading is in "
                "result.suggestions; give the LR yourself."
            )
        confidence = self.confidence
        if confidence["level"] == "low":
            raise NoSafeLRError(
                f"no safe learning rate: {confidence['reason']}. Each rule's reading is in result.suggestions "
                "and result.spread; give the LR yourself, or rerun with more steps, a larger batch or a "
                "validation loss."
            )
        return suggestions

    @property
    def spread(self) -> dict[str, tuple[float, float, float]]:
        """Per rule, ``(min, median, max)`` of its suggestion over the repeats (the median in log
        space: for two sweeps, their geometric mean)."""
        per = self._per_sweep()
        if not per:
            raise NoDescentError(
                f"none of the {len(self.curves)} sweeps shows the loss falling: widen the range (a lower "
                "start_lr or a higher end_lr), run more steps, or check that the model can learn from this data."
            )
        return {k: (min(p[k] for p in per), _log_median([p[k] for p in per]), max(p[k] for p in per)) for k in per[0]}

    @property
    def confidence(self) -> dict[str, Any]:
        """How far to trust :attr:`suggestion`: ``level`` is ``'single sweep'`` (no repeats to
        compare), ``'high'`` (the sweeps that fall agree within :data:`MAX_SPREAD`) or ``'low'``
        (they disagree by more, or some sweeps do not fall at all, or none does); ``spread`` is
        max/min of the default rule over the sweeps, ``sweeps`` how many fell; ``reason`` says why."""
        per = self._per_sweep()
        n = len(self.curves)
        out: dict[str, Any] = {"sweeps": len(per), "of": n, "spread": math.nan}
        if not per:
            return {**out, "level": "low", "reason": "no sweep shows the loss falling"}
        if self.info.get("no_safe_lr"):
            return {**out, "level": "low", "reason": f"no safe LR for this objective: {self.info['no_safe_lr']}"}
        values = [p[self.default_rule] for p in per]
        out["spread"] = max(values) / min(values)
        if n == 1:
            return {**out, "level": "single sweep", "reason": "one sweep: repeats=3 would show how much it varies"}
        if len(per) < n:
            return {**out, "level": "low", "reason": f"only {len(per)} of {n} sweeps show the loss falling"}
        if out["spread"] > MAX_SPREAD:
            return {
                **out,
                "level": "low",
                "reason": f"the {n} sweeps' {self.default_rule} suggestions span {out['spread']:.0f}x "
                f"({min(values):.2g} to {max(values):.2g}), more than {MAX_SPREAD:g}x: the curve is too noisy "
                "to read (try more steps, a larger batch, or a validation loss)",
            }
        return {**out, "level": "high", "reason": f"the {n} sweeps agree within {out['spread']:.1f}x"}

    # --------------------------------------------------------------- schedules
    def schedule(
        self,
        kind: str = "one_cycle",
        steps_per_epoch: int | None = None,
        epochs: int = 1,
        *,
        cycle_epochs: int | None = None,
    ) -> Schedule:
        """A complete schedule from the test.

        ``'one_cycle'``: ``max_lr`` from :attr:`suggestion` (the calibrated rule), ``div_factor``
        from the bounds (so the start sits near Smith's ``base_lr``, clipped to 10-100), over the
        whole run. ``'triangular'``/``'triangular2'``: :attr:`clr_bounds` (Smith's ``base_lr``,
        the calibrated ``max_lr``), with ``step_size`` 2-10 epochs so the run holds a whole number
        of cycles (``cycle_epochs`` = epochs per half cycle overrides). Raises
        :class:`NoSafeLRError` where the test gives no safe LR.
        """
        check("schedule", "kind", kind, [OneOf(("one_cycle", "triangular", "triangular2"))])
        steps_per_epoch = steps_per_epoch or self.info.get("steps_per_epoch")
        if not steps_per_epoch:
            raise ValueError("schedule() needs steps_per_epoch (the loop could not tell the data's length).")
        check("schedule", "epochs", epochs, [IntRange(1)])
        total = steps_per_epoch * epochs
        base, peak = self.clr_bounds
        if kind == "one_cycle":
            div = float(np.clip(peak / max(self.bounds[0], 1e-12), 10.0, 100.0))
            return OneCycle(max_lr=peak, total_steps=max(total, 2), div_factor=div)
        cls = Triangular if kind == "triangular" else Triangular2
        if cycle_epochs is not None:
            return cls(base, peak, step_size=cycle_epochs * steps_per_epoch)
        # Smith: half cycles of 2-10 epochs, and stop at the end of a cycle. The fewest cycles
        # whose halves are at most 10 epochs; a run under 4 epochs gets one cycle.
        # Whole steps per half cycle: a fractional cycle length drifts on float32 backends (JAX,
        # Keras) far into a run; rounding up ends the run just before the last cycle's floor.
        cycles = max(1, math.ceil(epochs / 20))
        return cls(base, peak, step_size=max(math.ceil(total / (2 * cycles)), 1))

    @property
    def momentum(self) -> tuple[float, float]:
        """Momentum bounds to cycle with the LR (Smith & Topin): 0.85 to 0.95."""
        return (0.85, 0.95)

    # --------------------------------------------------------------- output
    def to_config(self) -> dict[str, Any]:
        """JSON-safe summary: settings, suggestions (or why there are none), and the curve."""
        out: dict[str, Any] = {
            "settings": dict(self.settings),
            "stop_reason": self.stop_reason,
            "steps": self.steps,
            "seconds": self.seconds,
            "curve": {
                "lrs": _json_floats(self.curves[0].lrs),
                "losses": _json_floats(self.curves[0].losses),
                "smoothed": _json_floats(self.curves[0].smoothed),
            },
        }
        out.update({k: v for k, v in self.info.items() if isinstance(v, (int, float, str))})
        try:
            out["suggestions"] = self.suggestions
            out["suggestion"] = self.suggestion  # NoSafeLRError when the sweeps disagree
            if self.info.get("steps_per_epoch"):
                out["schedule"] = self.schedule("one_cycle", epochs=1).to_config()
        except NoDescentError as err:
            out["error"] = str(err)
        if len(self.curves) > 1:
            try:
                out["spread"] = {k: list(v) for k, v in self.spread.items()}
            except NoDescentError as err:
                out["spread_error"] = str(err)
        confidence = self.confidence
        out["confidence"] = {**confidence, "spread": _json_floats([confidence["spread"]])[0]}
        return out

    def plot(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """The curve on a log-LR axis: raw losses faint, smoothed bold, repeats thin, the
        suggestions marked and Smith's bounds shaded. Returns the matplotlib figure."""
        from ._plot import plot_range_test

        return plot_range_test(self, path, title=title)

    def _repr_png_(self) -> bytes | None:
        """The curve, in a notebook (IPython's display formatter asks for it)."""
        from ..plot import figure_png

        try:
            return figure_png(self.plot())
        except ImportError:  # no matplotlib: the text repr stands
            return None

    def __repr__(self) -> str:
        try:
            s = self.suggestions
            found = ", ".join(f"{k}={v:.3g}" for k, v in s.items())
        except NoDescentError as err:
            found = f"no suggestion: {err}"
        return f"RangeTestResult({self.steps} steps, {self.stop_reason}; {found})"


def repeat_batches(data: Iterable[Any]) -> Iterator[Any]:
    """The batches of ``data`` again and again (a sweep may outlast one epoch)."""
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError("lr_range_test: the data yielded no batch.")


def _json_floats(values: Sequence[float]) -> list[float | None]:
    """Strict JSON has no NaN or infinity: those become null."""
    return [float(v) if math.isfinite(v) else None for v in values]


class progress_bar:
    """A rich progress bar (when rich is installed and asked for), else nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self._ctx: Any = nullcontext()

    def __enter__(self) -> Callable[..., None]:
        """``update(n, skipped=0)``: ``n`` steps done; ``skipped`` steps that will never run (a
        sweep that stopped early) leave the total, so the bar ends at the steps really run."""
        if self.enabled:
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
            except ImportError:
                self.enabled = False
        if not self.enabled:
            return lambda n, skipped=0: None
        self._ctx = Progress(
            TextColumn("LR range test"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn()
        )
        progress = self._ctx.__enter__()
        task = progress.add_task("sweep", total=self.total)

        def update(n: int, skipped: int = 0) -> None:
            if skipped:
                self.total -= skipped
                progress.update(task, total=self.total)
            progress.advance(task, n)

        return update

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
