"""The LR range test: one shared core (sweep, smoothing, stop rule, suggestions, result) and thin
loops per framework (``cyclr.torch.lr_range_test``, ``cyclr.keras.lr_range_test``,
``cyclr.jax.lr_range_test``)."""

from ._core import MAX_SPREAD, REPEATS, Curve, NoSafeLRError, RangeTest, RangeTestResult, RangeTestWarning
from ._suggest import (
    CALIBRATED,
    METHODS,
    Calibration,
    NoDescentError,
    clean,
    minimum,
    smith_bounds,
    steepest,
    trend,
    valley,
)

__all__ = [
    "CALIBRATED",
    "MAX_SPREAD",
    "METHODS",
    "REPEATS",
    "Calibration",
    "Curve",
    "NoDescentError",
    "NoSafeLRError",
    "RangeTest",
    "RangeTestResult",
    "RangeTestWarning",
    "clean",
    "minimum",
    "smith_bounds",
    "steepest",
    "trend",
    "valley",
]


def __dir__() -> list[str]:
    """The public names only: `dir()` lists what `__all__` promises, not the helpers imported here."""
    return sorted(__all__)
