"""The LR range test: one shared core (sweep, smoothing, stop rule, suggestions, result) and thin
loops per framework (``cyclr.torch.lr_range_test``, ``cyclr.keras.lr_range_test``,
``cyclr.jax.lr_range_test``)."""

from ._core import Curve, RangeTest, RangeTestResult
from ._suggest import METHODS, NoDescentError, clean, minimum, smith_bounds, steepest, trend, valley

__all__ = [
    "METHODS",
    "Curve",
    "NoDescentError",
    "RangeTest",
    "RangeTestResult",
    "clean",
    "minimum",
    "smith_bounds",
    "steepest",
    "trend",
    "valley",
]
