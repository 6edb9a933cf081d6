"""Suggestion rules: turn a range-test curve into learning rates.

Every rule takes ``(lrs, losses)``, already cleaned by :func:`clean` (finite points only,
smoothed without lag, edges trimmed), and returns a learning rate; :func:`smith_bounds` returns two. They raise
:class:`NoDescentError` rather than return a meaningless number when the curve never falls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CALIBRATED",
    "METHODS",
    "Calibration",
    "NoDescentError",
    "clean",
    "ema_points",
    "minimum",
    "smith_bounds",
    "steepest",
    "steepest_max",
    "trend",
    "valley",
]


class NoDescentError(ValueError):
    """The loss does not fall anywhere in the swept range, so no learning rate can be read off."""


def trend(losses: np.ndarray, window: float = 0.05, diverge: float | None = 4.0) -> np.ndarray:
    """Zero-lag smoothing: a bias-corrected EMA run forwards, then backwards over its output.

    The usual one-sided EMA (fastai's 0.98 over 100 steps) lags by ~50 steps, i.e. several
    decades of LR on an exponential sweep, and drags every suggestion to larger LRs; running it
    both ways cancels the lag. ``window`` is the EMA's span as a fraction of the curve. From the
    first non-finite loss on, the trend is NaN.

    Losses above ``diverge`` times the lowest forward-smoothed loss (the blow-up that ends a
    diverged sweep, or a wild spike) are capped there first. Run backwards, a single loss of 1e3
    after a descent near 2 would otherwise lift the trend over the last decade or two of LR and
    hide the descent there (``None``: no cap).
    """
    losses = np.asarray(losses, dtype=float)
    bad = ~np.isfinite(losses)
    n = int(np.argmax(bad)) if bad.any() else len(losses)
    beta = 1.0 - 1.0 / max(2.0, window * n)

    def ema(x: np.ndarray) -> np.ndarray:
        out, avg = np.empty_like(x), 0.0
        for i, v in enumerate(x):
            avg = beta * avg + (1 - beta) * v
            out[i] = avg / (1 - beta ** (i + 1))
        return out

    x = losses[:n]
    if diverge is not None and n > 1:
        best = float(ema(x).min())
        if best > 0:
            x = np.minimum(x, diverge * best)
    out = np.full(len(losses), np.nan)
    out[:n] = ema(ema(x)[::-1])[::-1]
    return out


def clean(
    lrs: np.ndarray, losses: np.ndarray, skip_start: float = 0.1, skip_end: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points before the first non-finite loss, smooth them with :func:`trend`, then
    trim the edges as fastai does (the first ``skip_start`` fraction is warm-up noise; the last
    ``skip_end`` points are the blow-up that stopped the test)."""
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    bad = ~np.isfinite(losses) | ~np.isfinite(lrs) | (lrs <= 0)
    n = int(np.argmax(bad)) if bad.any() else len(losses)
    lrs, losses = lrs[:n], trend(losses[:n])
    start = int(len(lrs) * skip_start)
    end = len(lrs) - skip_end if len(lrs) - skip_end - start >= 8 else len(lrs)
    lrs, losses = lrs[start:end], losses[start:end]
    if len(lrs) < 5:
        raise NoDescentError(
            f"only {len(lrs)} usable points on the curve (the loss diverged or was not finite almost at once): "
            "lower start_lr, or check the model and the data."
        )
    return lrs, losses


def ema_points(
    lrs: np.ndarray, smoothed: np.ndarray, skip_start: float = 0.1, skip_end: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """The sweep's own bias-corrected EMA (what the stop rule watched, fastai's smoothed loss),
    cut at the first non-finite value and trimmed like :func:`clean`. It lags the raw loss by
    about ``1 / (1 - smoothing)`` steps, so a rule read from it lands at higher LRs."""
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    bad = ~np.isfinite(smoothed) | ~np.isfinite(lrs) | (lrs <= 0)
    n = int(np.argmax(bad)) if bad.any() else len(smoothed)
    start = int(n * skip_start)
    end = n - skip_end if n - skip_end - start >= 8 else n
    if end - start < 5:
        raise NoDescentError(
            f"only {max(end - start, 0)} usable points on the curve (the loss diverged or was not finite almost "
            "at once): lower start_lr, or check the model and the data."
        )
    return lrs[start:end], smoothed[start:end]


def _check_descent(losses: np.ndarray, min_drop: float = 0.05) -> None:
    """The curve must fall: its minimum past the first tenth, and ``min_drop`` below the
    starting level (a trained model's flat-then-rising curve has nothing to suggest)."""
    low = int(np.argmin(losses))
    start = float(np.median(losses[: max(3, len(losses) // 10)]))
    if low < max(2, len(losses) // 10) or start - float(losses[low]) <= min_drop * max(abs(start), 1e-12):
        raise NoDescentError(
            f"the loss does not fall over the swept range (from about {start:.4g} to a minimum of "
            f"{float(losses[low]):.4g} at usable point {low + 1} of {len(losses)}): widen the range "
            "(a lower start_lr or a higher end_lr), run more steps, or check that the model can still "
            "learn from this data (an already trained model has nothing to find)."
        )


def steepest(lrs: np.ndarray, losses: np.ndarray) -> float:
    """Where the loss falls fastest against log(LR) (pytorch-lr-finder's and fastai's ``steep``),
    over a window of 5% of the points and within the final descent into the lowest loss (see
    :func:`smith_bounds`) when it is long enough, so that early noise cannot win."""
    _check_descent(losses)
    k = max(1, len(losses) // 20)
    first, low = _descent(losses)
    if low - first >= 2 * k:
        lrs, losses = lrs[first : low + 1], losses[first : low + 1]
    log_lr = np.log(lrs)
    grads = (losses[k:] - losses[:-k]) / (log_lr[k:] - log_lr[:-k])
    i = int(np.argmin(grads))
    return float(np.exp((log_lr[i] + log_lr[i + k]) / 2))


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's default: the middle of the longest stretch of strictly decreasing loss."""
    _check_descent(losses)
    n = len(losses)
    lds = np.ones(n, dtype=int)
    for i in range(1, n):
        earlier = losses[:i] > losses[i]
        if earlier.any():
            lds[i] = lds[:i][earlier].max() + 1
    end = int(np.argmax(lds))
    start = end - int(lds[end])
    sections = (end - start) / 3
    return float(lrs[start + int(sections) + int(sections / 2)])


def minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    """A tenth of the LR at the lowest loss (fastai's ``minimum``)."""
    _check_descent(losses)
    return float(lrs[int(np.argmin(losses))] / 10)


def smith_bounds(lrs: np.ndarray, losses: np.ndarray, threshold: float = 0.1) -> tuple[float, float]:
    """Smith's CLR bounds from the final descent into the lowest loss.

    ``base_lr``: where the loss starts to fall for good, the first point after the last one that
    is still within ``threshold`` of the total drop from the starting level (the median of the
    first fifth of the curve, robust to early noise). ``max_lr``: where it stops falling, the
    first point within ``threshold`` of the drop from the lowest loss.
    """
    _check_descent(losses)
    first_fall, low = _descent(losses, threshold)
    start = _start_level(losses, low)
    drop = start - float(losses[low])
    stops = int(np.argmax(losses[: low + 1] <= losses[low] + threshold * drop))
    stops = max(stops, first_fall + 1)
    return float(lrs[min(first_fall, len(lrs) - 2)]), float(lrs[min(stops, len(lrs) - 1)])


def _start_level(losses: np.ndarray, low: int) -> float:
    """The loss before training bites: the median of the curve's first tenth (as the descent
    check measures it), which the zero-lag trend already cleared of step-to-step noise."""
    return float(np.median(losses[: max(3, len(losses) // 10)]))


def _descent(losses: np.ndarray, threshold: float = 0.1) -> tuple[int, int]:
    """``(first, low)``: the final descent, from the first point after the last one still within
    ``threshold`` of the drop from the starting level, down to the lowest loss."""
    low = int(np.argmin(losses))
    start = _start_level(losses, low)
    drop = start - float(losses[low])
    if drop <= 0:
        raise NoDescentError("the loss never falls below its starting level.")
    above = np.flatnonzero(losses[:low] >= start - threshold * drop)
    return (int(above[-1]) + 1 if above.size else 0), low


#: The single-LR rules, by name.
METHODS = {"steepest": steepest, "valley": valley, "minimum": minimum}


def _smith_max(lrs: np.ndarray, losses: np.ndarray) -> float:
    return smith_bounds(lrs, losses)[1]


def steepest_max(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The geometric mean of :func:`steepest` and Smith's ``max_lr``: halfway, in log LR, between
    where the loss falls fastest and where it stops falling."""
    return float(np.sqrt(steepest(lrs, losses) * _smith_max(lrs, losses)))


#: Every single-LR rule a :class:`Calibration` may name.
RULES = {**METHODS, "max_lr": _smith_max, "steepest_max": steepest_max}


@dataclass(frozen=True)
class Calibration:
    """A measured rule for one-cycle's ``max_lr``: ``rule`` read from ``reading`` (``'trend'``,
    cyclr's zero-lag smoothing of the raw losses, or ``'ema'``, the sweep's lagging EMA), times
    ``factor``. ``benchmarks/range_test_quality.py`` chose it (see :data:`CALIBRATED`)."""

    reading: str
    rule: str
    factor: float

    def __call__(self, lrs: np.ndarray, raw: np.ndarray, smoothed: np.ndarray) -> float:
        points = clean(lrs, raw) if self.reading == "trend" else ema_points(lrs, smoothed)
        return RULES[self.rule](*points) * self.factor

    def describe(self) -> str:
        reading = "zero-lag trend" if self.reading == "trend" else "EMA"
        names = {"max_lr": "Smith's max_lr", "steepest_max": "geometric mean of steepest and Smith's max_lr"}
        rule = names.get(self.rule, self.rule)
        return f"{rule} of the {reading}" + (f" x {self.factor:.2g}" if self.factor != 1 else "")


#: The rule behind ``RangeTestResult.suggestion`` and ``schedule()``: chosen by the calibration
#: study (``benchmarks/range_test_quality.py``, README "LR range test quality": 11 tasks, 35
#: seeds) as the candidate whose log10(grid-best one-cycle max_lr / suggestion) varied least
#: across the tasks (0.68 decades), with the median of that ratio as the factor (-0.29 decades).
#: Read from the sweep's EMA, whose lag the factor absorbs.
CALIBRATED = Calibration("ema", "steepest_max", 0.518)
