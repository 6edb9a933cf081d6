"""JAX / optax adapter: cyclr schedules as optax schedules, and optimizers whose LR and momentum
(or Adam's ``b1``) follow schedules, readable from the optimizer state.

Examples:
    >>> import jax.numpy as jnp, optax, cyclr, cyclr.jax
    >>> opt = cyclr.jax.sgd(cyclr.one_cycle(0.1, total_steps=100), momentum=(0.85, 0.95))
    >>> params = {"w": jnp.zeros(3)}
    >>> state = opt.init(params)
    >>> _, state = opt.update({"w": jnp.ones(3)}, state, params)
    >>> {k: round(float(v), 4) for k, v in cyclr.jax.hyperparams(state).items()}
    {'learning_rate': 0.004, 'momentum': 0.95}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ._lazy import require
from ._ops import get_ops
from ._validation import InvalidParameterError
from .controllers import Controller, controller_from_config
from .schedules import Schedule, from_config, momentum_schedule

require("jax", "jax", "cyclr.jax")  # clear messages naming the extra if either is missing
require("optax", "jax", "cyclr.jax")
import jax  # noqa: E402
import optax  # noqa: E402

from .finder._jax import lr_range_test  # noqa: E402

_OPS = get_ops("jax")

__all__ = [
    "AdaptiveState",
    "OptaxSchedule",
    "adam",
    "adamw",
    "adaptive",
    "hyperparams",
    "lr_range_test",
    "schedule",
    "sgd",
]

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


class AdaptiveState(NamedTuple):
    """An adaptive optimizer's state: the controller's (a dict of scalars) and the inner one's."""

    controller: dict[str, Any]
    inner: Any


def adaptive(
    controller: Controller | Mapping[str, Any],
    optimizer: Callable[..., optax.GradientTransformation] = optax.sgd,
    momentum: tuple[float, float] | None = None,
    **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
    """An optax optimizer whose LR (and momentum, or Adam's ``b1``) an adaptive controller sets.

    ``update(grads, state, params, loss=loss)`` takes the step's loss as an extra argument: the
    update uses the LR the controller's state gives, then folds the loss into that state, the
    order of ``cyclr.torch.Scheduler``'s ``opt.step(); observe(loss); step()``, so a loss stream
    gives the same LRs in both. jit-safe: the state is a dict of scalars and every rule selects
    with ``where``, so one trace serves every step. ``optimizer`` is an optax factory taking
    ``learning_rate`` (``optax.sgd``, ``optax.adam``...); ``momentum=(low, high)`` cycles its
    ``momentum`` (or ``b1``) opposite to the LR; ``kwargs`` go to the factory. The controller
    needs its ``max_lr`` here (a number or a range test's suggestion).
    """
    ctl = controller_from_config(controller)
    if getattr(ctl, "max_lr", 0.0) is None:
        raise InvalidParameterError(
            "cyclr.jax.adaptive",
            "controller",
            ctl.to_config(),
            "a controller with max_lr set (optax has no LR to start from)",
        )
    slot = "b1" if "b1" in optimizer.__code__.co_varnames[: optimizer.__code__.co_argcount] else "momentum"
    first_lr, first_level = ctl.values(ctl.init())
    hyper: dict[str, Any] = {"learning_rate": float(first_lr)}
    if momentum is not None:
        low, high = (float(v) for v in momentum)
        if not 0.0 <= low <= high < 1.0:
            raise InvalidParameterError(
                "cyclr.jax.adaptive", "momentum", momentum, "(low, high) with 0 <= low <= high < 1"
            )
        hyper[slot] = high - (high - low) * float(first_level)
    inner = optax.inject_hyperparams(optimizer)(**hyper, **kwargs)

    def init_fn(params: Any) -> AdaptiveState:
        # strong (not weak) float dtypes throughout, so the first update's output has the input's
        # types and jit traces once
        dtype = jax.numpy.result_type(float)
        state = {k: jax.numpy.asarray(v, dtype=dtype) for k, v in ctl.init().items()}
        inner_state = inner.init(params)
        strong = {k: jax.numpy.asarray(v, dtype=jax.numpy.asarray(v).dtype) for k, v in inner_state.hyperparams.items()}
        return AdaptiveState(state, inner_state._replace(hyperparams=strong))

    def update_fn(updates: Any, state: AdaptiveState, params: Any = None, *, loss: Any, **extra: Any) -> Any:
        lr, level = ctl.values(state.controller, _OPS)
        values = dict(state.inner.hyperparams)
        values["learning_rate"] = jax.numpy.asarray(lr, dtype=jax.numpy.asarray(values["learning_rate"]).dtype)
        if momentum is not None:
            m = high - (high - low) * level
            values[slot] = jax.numpy.asarray(m, dtype=jax.numpy.asarray(values[slot]).dtype)
        updates, inner_state = inner.update(updates, state.inner._replace(hyperparams=values), params)
        dtype = jax.numpy.asarray(state.controller["step"]).dtype
        new = ctl.update(state.controller, jax.numpy.asarray(loss, dtype=dtype), _OPS)
        return updates, AdaptiveState({k: jax.numpy.asarray(v, dtype=dtype) for k, v in new.items()}, inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def __dir__() -> list[str]:
    """The public names only: `dir()` lists what `__all__` promises, not the helpers imported here."""
    return sorted(__all__)
