"""Every cyclr schedule: one formula each, evaluated on Python numbers, NumPy, torch and JAX."""

from ._base import REGISTRY, Mirror, Schedule, from_config, load_config, parse_short, registered
from ._basic import WSD, Constant, Cosine, Exponential, Linear, MultiStep, Polynomial, StepDecay
from ._compose import Join, Warmup, momentum_schedule
from ._cyclic import SEED_DEFAULT, SGDR, Cyclic, ExpRange, OneCycle, Triangular, Triangular2

__all__ = [
    "REGISTRY",
    "SEED_DEFAULT",
    "SGDR",
    "WSD",
    "Constant",
    "Cosine",
    "Cyclic",
    "ExpRange",
    "Exponential",
    "Join",
    "Linear",
    "Mirror",
    "MultiStep",
    "OneCycle",
    "Polynomial",
    "Schedule",
    "StepDecay",
    "Triangular",
    "Triangular2",
    "Warmup",
    "from_config",
    "load_config",
    "momentum_schedule",
    "parse_short",
    "registered",
]


def __dir__() -> list[str]:
    """The public names only: `dir()` lists what `__all__` promises, not the helpers imported here."""
    return sorted(__all__)
