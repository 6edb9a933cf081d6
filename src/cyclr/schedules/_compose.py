"""Combinators: warm-up in front of any schedule, joins, and mirrors (cyclical momentum).

All are pure functions of the step (optax ``join_schedules`` style), so boundaries are exact and
nothing is shared or mutated between pieces (torch ``SequentialLR`` pain points).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from numbers import Real
from typing import Any

import numpy as np

from .._ops import Array, Ops
from .._validation import IntList, IntRange, InvalidParameterError, NumberRange, OneOf
from ._base import Mirror, Schedule, ScheduleList, ScheduleRef, finite_horizon, from_config
from ._basic import Constant

__all__ = ["Join", "Mirror", "Warmup", "momentum_schedule"]

_LR = [NumberRange(0.0)]


def _shift(horizon: int | None, by: float) -> int | None:
    return None if horizon is None else finite_horizon(by + horizon)


@dataclass(frozen=True, repr=False)
class Warmup(Schedule):
    r"""Ramp from ``start_lr`` to ``schedule(0)`` over ``steps`` steps, then run ``schedule``.

    For ``t < steps``, with :math:`p = t/steps`: linear :math:`p`, cosine
    :math:`\tfrac12(1-\cos\pi p)`, exponential :math:`start\,(target/start)^p`. From ``steps`` on,
    the value is ``schedule(t - steps)`` (the wrapped schedule starts after the warm-up).

    The warm-up adds ``steps`` to the wrapped schedule's length: ``warmup(cosine(lr, 10_000),
    steps=500)`` lasts 10,500 steps. Hugging Face counts the warm-up inside the total
    (``get_cosine_schedule_with_warmup(num_warmup_steps=500, num_training_steps=10_000)`` lasts
    10,000); the same schedule here is ``warmup(cosine(lr, 10_000 - 500), steps=500)``, equal step
    by step (tested against transformers).
    """

    name = "warmup"
    constraints = {
        "schedule": [ScheduleRef()],
        "steps": [IntRange(1)],
        "start_lr": _LR,
        "shape": [OneOf(("linear", "exponential", "cosine"))],
    }

    schedule: Schedule
    steps: int
    start_lr: float = 0.0
    shape: str = "linear"

    def _check(self) -> None:
        if self.shape == "exponential" and not (self.start_lr > 0 and self.target > 0):
            raise self._invalid(
                "start_lr", self.start_lr, f"> 0 with shape='exponential' (and the target {self.target!r} > 0)"
            )

    @cached_property
    def target(self) -> float:
        """The wrapped schedule's first value: where the ramp ends."""
        return float(self.schedule(0))

    def _ramp(self, x: Array, ops: Ops) -> Array:
        p = ops.clip(x / float(self.steps), 0.0, 1.0)
        if self.shape == "cosine":
            return 0.5 - 0.5 * ops.cos(p * math.pi)
        if self.shape == "exponential":
            # (e^(p r) - 1) / (e^r - 1), written so that neither part overflows for any ratio r
            # (a start_lr of 1e-300 makes r ~ 690, and e^r is past float32 and float64 alike)
            r = math.log(self.target) - math.log(self.start_lr)
            if r == 0.0:
                return p
            if r < 0.0:
                return ops.expm1(p * r) / math.expm1(r)
            return ops.exp((p - 1.0) * r) * (ops.expm1(p * -r) / math.expm1(-r))
        return p

    def _inner_t(self, t: Array, ops: Ops) -> Array:
        return ops.shift(t, self.steps)

    def _value(self, t: Array, ops: Ops) -> Array:
        x = ops.f(t)
        if self.shape == "exponential":  # start (target/start)^p: full relative precision at any ratio
            p = ops.clip(x / float(self.steps), 0.0, 1.0)
            ramp = self.start_lr * ops.exp(p * (math.log(self.target) - math.log(self.start_lr)))
        else:
            ramp = self.start_lr + (self.target - self.start_lr) * self._ramp(x, ops)
        return ops.where(x < float(self.steps), ramp, self.schedule._value(self._inner_t(t, ops), ops))

    def _level(self, t: Array, ops: Ops) -> Array:
        x = ops.f(t)
        first = float(self.schedule.level(0))
        ramp = self._ramp(x, ops) * first
        return ops.where(x < float(self.steps), ramp, self.schedule._level(self._inner_t(t, ops), ops))

    @property
    def bounds(self) -> tuple[float, float]:
        lo, hi = self.schedule.bounds
        return (min(lo, self.start_lr), max(hi, self.start_lr))

    @property
    def horizon(self) -> int | None:
        return _shift(self.schedule.horizon, self.steps)

    def cycle_starts(self, until: int) -> list[float]:
        return [0.0] + [self.steps + s for s in self.schedule.cycle_starts(until - self.steps)]


@dataclass(frozen=True, repr=False)
class Join(Schedule):
    """Run ``schedules[0]`` until ``boundaries[0]``, then ``schedules[1]`` from its own step 0, ...

    ``join([a, b], [100])(t)`` is ``a(t)`` for ``t < 100`` and ``b(t - 100)`` after (optax's
    ``join_schedules``).
    """

    name = "join"
    constraints = {"schedules": [ScheduleList()], "boundaries": [IntList(0, allow_empty=True)]}

    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def _check(self) -> None:
        if len(self.boundaries) != len(self.schedules) - 1:
            raise self._invalid(
                "boundaries",
                list(self.boundaries),
                f"a list of len(schedules) - 1 = {len(self.schedules) - 1} step(s)",
            )
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise self._invalid("boundaries", list(self.boundaries), "strictly increasing")

    def _join(self, t: Array, ops: Ops, level: bool) -> Array:
        x = ops.f(t)
        first = self.schedules[0]
        out = first._level(t, ops) if level else first._value(t, ops)
        for b, s in zip(self.boundaries, self.schedules[1:]):
            tb = ops.shift(t, b)
            out = ops.where(x < float(b), out, s._level(tb, ops) if level else s._value(tb, ops))
        return out

    def _value(self, t: Array, ops: Ops) -> Array:
        return self._join(t, ops, level=False)

    def _level(self, t: Array, ops: Ops) -> Array:
        return self._join(t, ops, level=True)

    @property
    def bounds(self) -> tuple[float, float]:
        los, his = zip(*(s.bounds for s in self.schedules))
        return (min(los), max(his))

    @property
    def horizon(self) -> int | None:
        return _shift(self.schedules[-1].horizon, self.boundaries[-1] if self.boundaries else 0)

    def cycle_starts(self, until: int) -> list[float]:
        starts = [0.0, *map(float, self.boundaries)]
        ends = [*map(float, self.boundaries), float(until)]
        out: list[float] = []
        for s, a, b in zip(self.schedules, starts, ends):
            out += [a + c for c in s.cycle_starts(math.ceil(b - a))] or [a]
        return sorted(set(v for v in out if v < until))


def momentum_schedule(
    value: Any, lr: Schedule | None, *, owner: str, param: str, numbers: str = "framework"
) -> Schedule | None:
    """What every adapter accepts for momentum (or Adam's beta1), as one schedule.

    ``None``: ``None``. A plain number: ``None`` when ``numbers='framework'`` (the framework's
    own float is used as it is), or a constant schedule when ``numbers='constant'`` (an adapter
    that would otherwise ignore it). ``(low, high)``: ``lr.mirror(low, high)``, opposite to the
    LR. A schedule or config dict: itself. Values must lie in ``[0, 1)`` (DeepSpeed #8589: a
    beta1 past 1 breaks Adam).
    """
    allowed = "None, a number in [0, 1), a (low, high) pair with 0 <= low <= high < 1, or a schedule or config dict"
    if value is None:
        return None
    if isinstance(value, Real) and not isinstance(value, (bool, np.bool_)):
        if not 0.0 <= float(value) < 1.0:
            raise InvalidParameterError(owner, param, value, allowed)
        return None if numbers == "framework" else Constant(float(value))
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and not any(isinstance(v, (Mapping, Schedule)) for v in value)
    ):
        if not all(isinstance(v, Real) and not isinstance(v, (bool, np.bool_)) for v in value):
            raise InvalidParameterError(owner, param, value, allowed)
        low, high = (float(v) for v in value)
        if not 0.0 <= low <= high < 1.0:
            raise InvalidParameterError(owner, param, value, allowed)
        if lr is None:
            raise ValueError(f"{owner} {param}: (low, high) mirrors a cyclr LR schedule, and none was given.")
        return lr.mirror(low, high)
    if not isinstance(value, (Schedule, Mapping)):
        raise InvalidParameterError(owner, param, value, allowed)
    try:
        schedule = from_config(value)
    except (ValueError, TypeError) as err:
        raise InvalidParameterError(owner, param, value, f"a valid schedule config ({err})") from err
    lo, hi = schedule.bounds
    if not 0.0 <= lo <= hi < 1.0:
        raise InvalidParameterError(
            owner, param, value, f"a schedule with values in [0, 1) (its range is [{lo}, {hi}])"
        )
    return schedule
