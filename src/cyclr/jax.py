"""JAX / optax adapter: cyclr schedules as optax schedules, and optimizers whose LR and momentum
(or Adam's ``b1``) follow schedules, readable from the optimizer state.

>>> import jax.numpy as jnp, optax, cyclr, cyclr.jax
>>> opt = cyclr.jax.sgd(cyclr.one_cycle(0.1, total_steps=100), momentum=(0.85, 0.95))
>>> params = {"w": jnp.zeros(3)}
>>> state = opt.init(params)
>>> _, state = opt.update({"w": jnp.ones(3)}, state, params)
>>> {k: round(float(v), 4) for k, v in cyclr.jax.hyperparams(state).items()}
{'learning_rate': 0.004, 'momentum': 0.95}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._lazy import require
from ._ops import get_ops
from .schedules import Schedule, from_config, momentum_schedule

require("jax", "jax", "cyclr.jax")  # clear messages naming the extra if either is missing
require("optax", "jax", "cyclr.jax")
import jax  # noqa: E402
import optax  # noqa: E402

from .finder._jax import lr_range_test  # noqa: E402

_OPS = get_ops("jax")

__all__ = ["OptaxSchedule", "adam", "adamw", "hyperparams", "lr_range_test", "schedule", "sgd"]

ScheduleLike = Schedule | Mapping[str, Any]


class OptaxSchedule:
    """An optax schedule (``count -> value``) backed by a cyclr schedule.

    A small object rather than a closure, so it pickles. It is jit-safe: nothing depends on the
    value of ``count`` in Python, so one trace serves every step. Integer counts (optax's int32)
    locate the position inside a cycle with exact integer arithmetic, up to 2**31 - 1.
    """

    def __init__(self, schedule: ScheduleLike) -> None:
        self.schedule = from_config(schedule)

    def __call__(self, count: Any) -> Any:
        return self.schedule(jax.numpy.asarray(count), xp=_OPS)

    def __repr__(self) -> str:
        return f"OptaxSchedule({self.schedule!r})"


def schedule(s: ScheduleLike) -> OptaxSchedule:
    """``s`` as an optax schedule: pass it wherever optax takes a ``learning_rate`` schedule."""
    return OptaxSchedule(s)


def _hyper(value: Any, lr: Schedule, name: str) -> Any:
    """A float (or None) stays as it is; ``(low, high)`` or a schedule becomes an optax schedule."""
    schedule = momentum_schedule(value, lr, owner="cyclr.jax", param=name)
    return value if schedule is None else OptaxSchedule(schedule)


def sgd(
    learning_rate: ScheduleLike, momentum: Any = None, nesterov: bool = False
) -> optax.GradientTransformationExtraArgs:
    """``optax.sgd`` with the LR and momentum driven by schedules (``optax.inject_hyperparams``).

    ``momentum``: ``None``, a float, ``(low, high)`` (cycled opposite to the LR, as torch's
    ``OneCycleLR``/``CyclicLR``) or a schedule. The values in use are in :func:`hyperparams`.
    """
    lr = from_config(learning_rate)
    return optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))(
        learning_rate=OptaxSchedule(lr), momentum=_hyper(momentum, lr, "momentum"), nesterov=nesterov
    )


def adam(
    learning_rate: ScheduleLike, b1: Any = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformationExtraArgs:
    """``optax.adam`` with the LR and ``b1`` driven by schedules (``b1=(low, high)`` mirrors the LR)."""
    lr = from_config(learning_rate)
    return optax.inject_hyperparams(optax.adam)(
        learning_rate=OptaxSchedule(lr), b1=_hyper(b1, lr, "b1"), b2=b2, eps=eps
    )


def adamw(
    learning_rate: ScheduleLike, b1: Any = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-4
) -> optax.GradientTransformationExtraArgs:
    """``optax.adamw`` with the LR and ``b1`` driven by schedules."""
    lr = from_config(learning_rate)
    return optax.inject_hyperparams(optax.adamw)(
        learning_rate=OptaxSchedule(lr), b1=_hyper(b1, lr, "b1"), b2=b2, eps=eps, weight_decay=weight_decay
    )


def hyperparams(state: Any) -> dict[str, Any]:
    """The hyperparameters used by the last update, found anywhere in an optax state (inside
    ``optax.chain``, ``multi_transform``, ``MultiSteps``...); empty if no ``inject_hyperparams``
    state is there (optax #206, #964)."""
    if isinstance(state, optax.InjectStatefulHyperparamsState):
        return dict(state.hyperparams)
    parts = state.values() if isinstance(state, Mapping) else state if isinstance(state, (tuple, list)) else ()
    for part in parts:
        found = hyperparams(part)
        if found:
            return found
    return {}
