"""Non-cyclical schedules: the baselines every benchmark compares against."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._ops import Array, Ops
from .._validation import Bool, IntList, IntRange, NumberRange, OneOf
from ._base import Schedule, marks

__all__ = ["WSD", "Constant", "Cosine", "Exponential", "Linear", "MultiStep", "Polynomial", "StepDecay"]

_LR = [NumberRange(0.0)]
_STEPS = [IntRange(1)]
_GAMMA = [NumberRange(0.0, 1.0, closed="right")]


@dataclass(frozen=True, repr=False)
class Constant(Schedule):
    """A fixed learning rate."""

    name = "constant"
    constraints = {"lr": _LR}

    lr: float

    def _value(self, t: Array, ops: Ops) -> Array:
        return ops.full_like(t, self.lr)

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.lr, self.lr)


@dataclass(frozen=True, repr=False)
class Cosine(Schedule):
    r"""Cosine annealing from ``max_lr`` to ``min_lr`` over ``total_steps``, then ``min_lr``.

    .. math:: lr(t) = min\_lr + (max\_lr - min\_lr)\,\tfrac12\left(1 + \cos\frac{\pi \min(t, T)}{T}\right)

    Torch ``CosineAnnealingLR`` for ``t <= T_max`` (torch keeps following the cosine back up
    after ``T_max``; cyclr holds ``min_lr``). Keras ``CosineDecay`` with ``alpha = min_lr/max_lr``.
    """

    name = "cosine"
    affine = True
    ordered = ("min_lr", "max_lr")
    constraints = {"max_lr": _LR, "total_steps": _STEPS, "min_lr": _LR}

    max_lr: float
    total_steps: int
    min_lr: float = 0.0

    def _level(self, t: Array, ops: Ops) -> Array:
        total = float(self.total_steps)  # a float: JAX cannot hold an int >= 2**31 next to an int32 step
        frac = ops.minimum(ops.f(t), total) / total
        return 0.5 + 0.5 * ops.cos(frac * math.pi)

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)

    @property
    def horizon(self) -> int | None:
        return self.total_steps


@dataclass(frozen=True, repr=False)
class StepDecay(Schedule):
    """``lr * gamma ** (t // step_size)``: torch ``StepLR``."""

    name = "step_decay"
    constraints = {"lr": _LR, "step_size": _STEPS, "gamma": _GAMMA}

    lr: float
    step_size: int
    gamma: float = 0.1

    def _value(self, t: Array, ops: Ops) -> Array:
        k, _ = ops.divmod(t, self.step_size)
        return self.lr * ops.powc(self.gamma, k)

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, self.lr)

    def cycle_starts(self, until: int) -> list[float]:
        return marks(0.0, float(self.step_size), float(until))


@dataclass(frozen=True, repr=False)
class MultiStep(Schedule):
    """``lr * gamma ** (number of milestones <= t)``: torch ``MultiStepLR``."""

    name = "multistep"
    constraints = {"lr": _LR, "milestones": [IntList(0)], "gamma": _GAMMA}

    lr: float
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def _passed(self, t: Array, ops: Ops) -> Array:
        x = ops.f(t)
        zero = ops.full_like(t, 0.0)
        passed = zero
        for m in self.milestones:
            passed = passed + ops.where(x >= float(m), zero + 1.0, zero)
        return passed

    def _value(self, t: Array, ops: Ops) -> Array:
        return self.lr * ops.powc(self.gamma, self._passed(t, ops))

    def _level(self, t: Array, ops: Ops) -> Array:
        """``(gamma**p - gamma**K) / (1 - gamma**K)`` for ``p`` of ``K`` milestones passed, in a
        form that keeps float32 precision as ``gamma -> 1`` (the generic ``(value - low) / (high -
        low)`` divides two roundings of nearly equal numbers there, and a mirrored momentum
        inherits the error)."""
        k = len(self.milestones)
        if k == 0 or self.gamma in (0.0, 1.0):
            return super()._level(t, ops)
        log_gamma = math.log(self.gamma)
        scale = math.exp(k * log_gamma) / -math.expm1(k * log_gamma)
        return ops.clip(scale * ops.expm1((self._passed(t, ops) - float(k)) * log_gamma), 0.0, 1.0)

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.lr * self.gamma ** len(self.milestones), self.lr)

    def cycle_starts(self, until: int) -> list[float]:
        return [float(m) for m in self.milestones if m < until]


@dataclass(frozen=True, repr=False)
class Exponential(Schedule):
    """``lr * gamma ** (t / decay_steps)`` (floored with ``staircase``): torch ``ExponentialLR``
    with ``decay_steps=1``, Keras ``ExponentialDecay`` otherwise."""

    name = "exponential"
    constraints = {"lr": _LR, "gamma": _GAMMA, "decay_steps": _STEPS, "staircase": [Bool()]}

    lr: float
    gamma: float
    decay_steps: int = 1
    staircase: bool = False

    def _value(self, t: Array, ops: Ops) -> Array:
        if self.staircase:
            p, _ = ops.divmod(t, self.decay_steps)
        else:
            p = ops.f(t) / float(self.decay_steps)
        return self.lr * ops.powc(self.gamma, p)

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, self.lr)


@dataclass(frozen=True, repr=False)
class Polynomial(Schedule):
    """``end_lr + (lr - end_lr) * (1 - min(t, T)/T) ** power``: torch ``PolynomialLR``
    (``end_lr=0``) and the decay part of transformers' polynomial schedule."""

    name = "polynomial"
    affine = True
    ordered = ("end_lr", "lr")
    constraints = {
        "lr": _LR,
        "total_steps": _STEPS,
        "power": [NumberRange(0.0, closed="neither")],
        "end_lr": _LR,
    }

    lr: float
    total_steps: int
    power: float = 1.0
    end_lr: float = 0.0

    def _level(self, t: Array, ops: Ops) -> Array:
        # (T - min(t, T)) / T, not 1 - min(t, T) / T: compilers rewrite x / T as x * (1 / T), and
        # the rounding left over at t >= T would survive a power < 1 (0.1 ** 0.1 ~ 0.8)
        total = float(self.total_steps)
        remaining = (total - ops.minimum(ops.f(t), total)) / total
        return ops.power(ops.maximum(remaining, 0.0), self.power)

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.end_lr, self.lr)

    @property
    def horizon(self) -> int | None:
        return self.total_steps


@dataclass(frozen=True, repr=False)
class Linear(Schedule):
    """Straight line from ``start_lr`` to ``end_lr`` over ``total_steps``, then ``end_lr``.

    Torch ``LinearLR`` is ``linear(base*start_factor, base*end_factor, total_iters)``.
    """

    name = "linear"
    affine = True
    constraints = {"start_lr": _LR, "end_lr": _LR, "total_steps": _STEPS}

    start_lr: float
    end_lr: float
    total_steps: int

    def _level(self, t: Array, ops: Ops) -> Array:
        total = float(self.total_steps)
        frac = ops.minimum(ops.f(t), total) / total
        return frac if self.end_lr >= self.start_lr else 1.0 - frac

    @property
    def bounds(self) -> tuple[float, float]:
        return (min(self.start_lr, self.end_lr), max(self.start_lr, self.end_lr))

    @property
    def horizon(self) -> int | None:
        return self.total_steps


WSD_WARMUP = ("linear", "cosine", "1-sqrt")


@dataclass(frozen=True, repr=False)
class WSD(Schedule):
    """Warmup-stable-decay (transformers ``get_wsd_schedule``), with absolute rates.

    Warm up from ``min_lr`` to ``max_lr`` over ``warmup_steps`` (linear, cosine or 1-sqrt), hold
    ``max_lr`` for ``stable_steps``, decay to ``min_lr`` over ``decay_steps``, then hold ``min_lr``.
    ``min_lr = min_lr_ratio * max_lr`` gives transformers' numbers.
    """

    name = "wsd"
    affine = True
    ordered = ("min_lr", "max_lr")
    constraints = {
        "max_lr": _LR,
        "warmup_steps": [IntRange(0)],
        "stable_steps": [IntRange(0)],
        "decay_steps": [IntRange(0)],
        "min_lr": _LR,
        "warmup_shape": [OneOf(WSD_WARMUP)],
        "decay_shape": [OneOf(WSD_WARMUP)],
    }

    max_lr: float
    warmup_steps: int
    stable_steps: int
    decay_steps: int
    min_lr: float = 0.0
    warmup_shape: str = "linear"
    decay_shape: str = "cosine"

    @staticmethod
    def _rise(ops: Ops, p: Array, shape: str) -> Array:
        """0 -> 1 as p goes 0 -> 1."""
        if shape == "cosine":
            return 0.5 - 0.5 * ops.cos(p * math.pi)
        if shape == "1-sqrt":
            return 1.0 - ops.sqrt(ops.maximum(1.0 - p, 0.0))
        return p

    @staticmethod
    def _fall(ops: Ops, p: Array, shape: str) -> Array:
        """1 -> 0 as p goes 0 -> 1."""
        if shape == "cosine":
            return 0.5 + 0.5 * ops.cos(p * math.pi)
        if shape == "1-sqrt":
            return 1.0 - ops.sqrt(ops.maximum(p, 0.0))
        return 1.0 - p

    def _level(self, t: Array, ops: Ops) -> Array:
        x = ops.f(t)
        w, s, d = float(self.warmup_steps), float(self.stable_steps), float(self.decay_steps)
        rise = self._rise(ops, ops.clip(x / max(w, 1.0), 0.0, 1.0), self.warmup_shape)
        fall = self._fall(ops, ops.clip((x - w - s) / max(d, 1.0), 0.0, 1.0), self.decay_shape)
        level = ops.where(x < w + s + d, fall, 0.0 * fall)
        level = ops.where(x < w + s, 1.0 + 0.0 * fall, level)
        return ops.where(x < w, rise, level)

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)

    @property
    def horizon(self) -> int | None:
        return self.warmup_steps + self.stable_steps + self.decay_steps

    def cycle_starts(self, until: int) -> list[float]:
        marks = [0, self.warmup_steps, self.warmup_steps + self.stable_steps]
        return [float(m) for m in marks if m < until]
