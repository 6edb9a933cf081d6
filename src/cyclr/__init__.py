"""cyclr: cyclical learning rates, one definition for PyTorch, Keras 3 and JAX/optax.

Schedules are pure functions of the 0-based optimizer step::

    >>> import cyclr
    >>> s = cyclr.one_cycle(max_lr=0.1, total_steps=1000)
    >>> round(s(0), 6), round(s(299), 6), round(s(999), 9)
    (0.004, 0.1, 4e-07)

Framework adapters live in ``cyclr.torch``, ``cyclr.keras`` and ``cyclr.jax``; each imports its
framework only when it is imported. ``cyclr.finder`` holds the LR range test's core and
``cyclr.bench`` the benchmark.
"""

from __future__ import annotations

from . import plot as _plot  # noqa: F401  (registers how a schedule draws itself in a notebook)
from ._steps import total_steps
from ._validation import InvalidParameterError
from .controllers import ClosedLoopCLR, Controller, adaptive, controller_from_config
from .recorder import Recorder
from .schedules import (
    REGISTRY,
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
    Mirror,
    MultiStep,
    OneCycle,
    Polynomial,
    Schedule,
    StepDecay,
    Triangular,
    Triangular2,
    Warmup,
    from_config,
    load_config,
    registered,
)

__version__ = "0.1.0"

# lower-case constructors: the names used in configs and in the docs
constant = Constant
cyclic = Cyclic
triangular = Triangular
triangular2 = Triangular2
exp_range = ExpRange
cosine = Cosine
sgdr = SGDR
one_cycle = OneCycle
step_decay = StepDecay
multistep = MultiStep
exponential = Exponential
polynomial = Polynomial
linear = Linear
wsd = WSD
warmup = Warmup
join = Join
mirror = Mirror

__all__ = [
    "REGISTRY",
    "SEED_DEFAULT",
    "SGDR",
    "WSD",
    "ClosedLoopCLR",
    "Constant",
    "Controller",
    "Cosine",
    "Cyclic",
    "ExpRange",
    "Exponential",
    "InvalidParameterError",
    "Join",
    "Linear",
    "Mirror",
    "MultiStep",
    "OneCycle",
    "Polynomial",
    "Recorder",
    "Schedule",
    "StepDecay",
    "Triangular",
    "Triangular2",
    "Warmup",
    "adaptive",
    "constant",
    "controller_from_config",
    "cosine",
    "cyclic",
    "exp_range",
    "exponential",
    "from_config",
    "join",
    "linear",
    "load_config",
    "mirror",
    "multistep",
    "one_cycle",
    "polynomial",
    "registered",
    "sgdr",
    "step_decay",
    "total_steps",
    "triangular",
    "triangular2",
    "warmup",
    "wsd",
]

#: the public submodules (the adapters import their framework on first use)
_SUBMODULES = (
    "bench",
    "controllers",
    "data",
    "finder",
    "hf",
    "jax",
    "keras",
    "lightning",
    "plot",
    "recorder",
    "schedules",
    "space",
    "torch",
)


def __dir__() -> list[str]:
    """The public names and submodules only: ``dir(cyclr)`` lists no helper imported here."""
    return sorted({*__all__, "__version__", *_SUBMODULES})
