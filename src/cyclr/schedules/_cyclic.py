"""Cyclical schedules: CLR (triangular, triangular2, exp_range, sine/cosine), SGDR, one-cycle."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

from .._ops import Array, Ops
from .._validation import Bool, Constraint, IntRange, NumberRange, OneOf, Optional
from ._base import MAX_MARKS, Schedule, _resolve, finite_horizon, marks

__all__ = ["SEED_DEFAULT", "SGDR", "Cyclic", "ExpRange", "OneCycle", "Triangular", "Triangular2"]

_LR = [NumberRange(0.0)]
#: Cycle and phase lengths, in steps. Below a millionth of a step a schedule only aliases (it is
#: read at whole steps), and ``step / period`` would overflow float64 near 5e-324.
MIN_PERIOD = 1e-6
_POSITIVE = [NumberRange(MIN_PERIOD)]
_DECAY = [NumberRange(0.0, 1.0, closed="right")]
SHAPES = ("triangular", "sine", "cosine")


def _shaped(ops: Ops, s: Array, shape: str) -> Array:
    """Map the triangle wave ``s`` in [0, 1] through the cycle's shape."""
    if shape == "sine":
        return ops.sin(s * (math.pi / 2.0))
    if shape == "cosine":
        return 0.5 - 0.5 * ops.cos(s * math.pi)
    return s


@dataclass(frozen=True, repr=False)
class Cyclic(Schedule):
    r"""Cyclical learning rate (Smith, `arXiv:1506.01186 <https://arxiv.org/abs/1506.01186>`_).

    The rate climbs from ``base_lr`` to ``max_lr`` over ``step_size`` steps and falls back over
    ``step_size_down`` (default: the same). With ``k`` the 0-based cycle and ``s`` in [0, 1] the
    triangle wave:

    .. math::

        lr(t) = base\_lr + (max\_lr - base\_lr)\cdot shape(s)\cdot decay^{k \text{ or } t}

    ``shape``: ``'triangular'`` (:math:`s`), ``'sine'`` (:math:`\sin(\pi s/2)`), ``'cosine'``
    (:math:`(1-\cos\pi s)/2`). ``decay`` is the seed's gamma, applied to the amplitude once per
    cycle (``decay_every='cycle'``: 0.5 is triangular2) or per step (``'step'``: exp_range).
    After ``cycles`` full cycles the rate holds ``base_lr``.

    Examples:
        >>> import cyclr
        >>> s = cyclr.cyclic(base_lr=1e-5, max_lr=1e-2, step_size=5, decay=0.95)
        >>> [round(s(t), 6) for t in (0, 5, 10, 15)]
        [1e-05, 0.01, 1e-05, 0.009501]
    """

    name = "cyclic"
    affine = True
    ordered = ("base_lr", "max_lr")
    constraints = {
        "base_lr": _LR,
        "max_lr": _LR,
        "step_size": _POSITIVE,
        "step_size_down": [Optional(NumberRange(MIN_PERIOD))],
        "shape": [OneOf(SHAPES)],
        "decay": _DECAY,
        "decay_every": [OneOf(("cycle", "step"))],
        "cycles": [Optional(IntRange(1))],
    }

    base_lr: float
    max_lr: float
    step_size: float
    step_size_down: float | None = None
    shape: str = "triangular"
    decay: float = 1.0
    decay_every: str = "cycle"
    cycles: int | None = None

    @property
    def _down(self) -> float:
        return self.step_size if self.step_size_down is None else self.step_size_down

    @property
    def cycle_length(self) -> float:
        return float(self.step_size + self._down)

    def _level(self, t: Array, ops: Ops) -> Array:
        up, down = float(self.step_size), float(self._down)
        total = self.cycle_length
        k, pos = ops.divmod(t, total)
        s = ops.where(pos <= up, pos / up, (total - pos) / down)
        s = _shaped(ops, s, self.shape)
        if self.decay != 1.0:
            s = s * ops.powc(self.decay, ops.f(t) if self.decay_every == "step" else k)
        if self.cycles is not None:
            s = ops.where(k >= float(self.cycles), 0.0 * s, s)
        return s

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.base_lr, self.max_lr)

    @property
    def horizon(self) -> int | None:
        return None if self.cycles is None else finite_horizon(self.cycles * self.cycle_length)

    def cycle_starts(self, until: int) -> list[float]:
        n = until / self.cycle_length
        if self.cycles is not None:
            n = min(n, self.cycles + 1)
        return marks(0.0, self.cycle_length, min(float(until), n * self.cycle_length))


class _Alias(Schedule):
    """A named special case of another schedule (same numbers, its own config name)."""

    def _build(self) -> Schedule:
        raise NotImplementedError

    @cached_property
    def _inner(self) -> Schedule:
        return self._build()

    def value_and_level(self, step: int) -> tuple[float, float]:
        return self._inner.value_and_level(step)

    def _value(self, t: Array, ops: Ops) -> Array:
        return self._inner._value(t, ops)

    def _level(self, t: Array, ops: Ops) -> Array:
        return self._inner._level(t, ops)

    @property
    def bounds(self) -> tuple[float, float]:
        return self._inner.bounds

    @property
    def horizon(self) -> int | None:
        return self._inner.horizon

    def cycle_starts(self, until: int) -> list[float]:
        return self._inner.cycle_starts(until)


_CLR_CONSTRAINTS: dict[str, Sequence[Constraint]] = {
    "base_lr": _LR,
    "max_lr": _LR,
    "step_size": _POSITIVE,
    "step_size_down": [Optional(NumberRange(MIN_PERIOD))],
}


@dataclass(frozen=True, repr=False)
class Triangular(_Alias):
    """Torch ``CyclicLR(mode='triangular')``: a constant-amplitude triangle wave."""

    name = "triangular"
    constraints = _CLR_CONSTRAINTS
    ordered = ("base_lr", "max_lr")

    base_lr: float
    max_lr: float
    step_size: float
    step_size_down: float | None = None

    def _build(self) -> Schedule:
        return Cyclic(self.base_lr, self.max_lr, self.step_size, self.step_size_down)


@dataclass(frozen=True, repr=False)
class Triangular2(Triangular):
    """Torch ``CyclicLR(mode='triangular2')``: the amplitude halves every cycle."""

    name = "triangular2"

    def _build(self) -> Schedule:
        return Cyclic(self.base_lr, self.max_lr, self.step_size, self.step_size_down, decay=0.5)


@dataclass(frozen=True, repr=False)
class ExpRange(Triangular):
    """Torch ``CyclicLR(mode='exp_range')``: the amplitude shrinks by ``gamma`` every step."""

    name = "exp_range"
    constraints = {**_CLR_CONSTRAINTS, "gamma": _DECAY}

    gamma: float = 1.0

    def _build(self) -> Schedule:
        return Cyclic(
            self.base_lr, self.max_lr, self.step_size, self.step_size_down, decay=self.gamma, decay_every="step"
        )


@dataclass(frozen=True, repr=False)
class SGDR(Schedule):
    r"""Cosine annealing with warm restarts (Loshchilov & Hutter, `arXiv:1608.03983 <https://arxiv.org/abs/1608.03983>`_).

    Cycle ``k`` lasts ``period * period_mult**k`` steps (any ``period_mult > 0``, not only
    integers; below 1 the cycles shrink and the rate holds ``min_lr`` once their sum is used up)
    and its amplitude is ``decay**k`` of the first:

    .. math::

        lr(t) = min\_lr + (max\_lr - min\_lr)\cdot decay^k \cdot \tfrac12\left(1 + \cos\frac{\pi\,t_{cur}}{T_k}\right)

    With integer ``period_mult`` and ``decay=1`` it equals torch ``CosineAnnealingWarmRestarts``.
    ``decay`` scales the amplitude ``max_lr - min_lr``, as Keras' ``CosineDecayRestarts`` scales
    by ``m_mul`` while its floor ``alpha * initial_learning_rate`` stays put: ``sgdr(init,
    first_decay_steps, min_lr=alpha * init, period_mult=t_mul, decay=m_mul)`` is that schedule.
    timm's ``cycle_decay`` scales the peak instead; with ``min_lr=0`` the two agree. After
    ``cycles`` cycles the rate holds ``min_lr``.
    """

    name = "sgdr"
    affine = True
    ordered = ("min_lr", "max_lr")
    constraints = {
        "max_lr": _LR,
        "period": _POSITIVE,
        "min_lr": _LR,
        "period_mult": [NumberRange(1e-3, 1e6)],
        "decay": _DECAY,
        "cycles": [Optional(IntRange(1))],
    }

    max_lr: float
    period: float
    min_lr: float = 0.0
    period_mult: float = 1.0
    decay: float = 1.0
    cycles: int | None = None

    #: ``|period_mult - 1|`` below which cycle starts come from ``expm1``/``log1p``: there
    #: ``m**k - 1`` would cancel (float32 keeps none of 0.99999**k - 1's leading digits).
    NEAR_ONE: ClassVar[float] = 0.25

    def _start(self, k: float) -> float:
        """Where cycle ``k`` starts, in float64 (``inf`` once it is past any float)."""
        m, T0 = self.period_mult, float(self.period)
        if m == 1.0:
            return T0 * k
        if abs(m - 1.0) < self.NEAR_ONE:
            return T0 * math.expm1(k * math.log1p(m - 1.0)) / (m - 1.0)
        try:
            return T0 * (math.pow(m, k) - 1.0) / (m - 1.0)  # exact for integer m, as torch's restarts
        except OverflowError:
            return math.inf

    def _locate(self, t: Array, ops: Ops) -> tuple[Array, Array, Array, Array]:
        """Cycle index, position in it, its length, and whether the cycles are used up."""
        m, T0 = self.period_mult, float(self.period)
        if m == 1.0:
            k, pos = ops.divmod(t, T0)
            return k, pos, T0, pos < 0.0
        x = ops.f(t)
        d = m - 1.0  # exact in float64 for m near 1 (Sterbenz)
        if abs(d) < self.NEAR_ONE:
            return self._locate_near_one(x, ops, d)
        arg = 1.0 - (x / T0) * (1.0 - m)
        k = ops.maximum(ops.floor(ops.log(ops.maximum(arg, 1e-30)) / math.log(m)), 0.0)
        # Cycle k starts at S(k) = T0 (m^k - 1) / (m - 1). m^k comes from one exact power (not
        # exp/log, which would move integer boundaries by an ulp); the logarithm above can land
        # one cycle off at a boundary, so correct both ways with m^(k-1) = m^k / m, m^(k+1) = m m^k.
        pk = ops.power(m, k)
        if float(m).is_integer():  # m^k is an integer: undo any pow() rounding (TF's float32 pow)
            pk = ops.round(pk)
        start = T0 * (pk - 1.0) / d
        below = x < start
        k = ops.where(below, k - 1.0, k)
        pk = ops.where(below, pk / m, pk)
        start = T0 * (pk - 1.0) / d
        nxt = T0 * (pk * m - 1.0) / d
        above = x >= nxt
        k = ops.where(above, k + 1.0, k)
        pk = ops.where(above, pk * m, pk)
        start = ops.where(above, nxt, start)
        length = ops.maximum(T0 * pk, 1e-30)  # shrinking cycles (m < 1) underflow
        return k, x - start, length, arg <= 0.0

    def _locate_near_one(self, x: Array, ops: Ops, d: float) -> tuple[Array, Array, Array, Array]:
        """``_locate`` for ``m = 1 + d`` near 1, stable as ``d -> 0``: with ``L = log1p(d)``,
        cycle ``k`` starts at ``T0 expm1(k L) / d`` and lasts ``T0 exp(k L)``; its index is
        ``floor(log1p(x d / T0) / L)``. Every constant is formed in float64, once."""
        T0 = float(self.period)
        L = math.log1p(d)
        scale, inv_L, ratio = d / T0, 1.0 / L, T0 / d
        arg = x * scale  # > -1 while cycles remain (d < 0: they sum to T0 / -d)
        exhausted = arg <= -1.0
        k = ops.maximum(ops.floor(ops.log1p(ops.maximum(arg, -1.0 + 1e-7)) * inv_L), 0.0)

        def start(k: Array) -> Array:  # the first restart exactly at T0, as in float64
            return ops.where(k <= 1.0, k * T0, ops.expm1(k * L) * ratio)

        below = x < start(k)
        k = ops.where(below, k - 1.0, k)
        above = x >= start(k + 1.0)
        k = ops.where(above, k + 1.0, k)
        length = ops.maximum(T0 * ops.exp(k * L), 1e-30)
        return k, x - start(k), length, exhausted

    def _level(self, t: Array, ops: Ops) -> Array:
        k, pos, length, exhausted = self._locate(t, ops)
        frac = ops.clip(pos / length, 0.0, 1.0)
        level = 0.5 + 0.5 * ops.cos(frac * math.pi)
        if self.decay != 1.0:
            level = level * ops.powc(self.decay, k)
        if self.cycles is not None:
            level = ops.where(k >= float(self.cycles), 0.0 * level, level)
        if self.period_mult < 1.0:
            level = ops.where(exhausted, 0.0 * level, level)
        return level

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)

    @property
    def horizon(self) -> int | None:
        if self.cycles is not None:
            end = self._start(self.cycles)
        elif self.period_mult < 1.0:
            end = self.period / (1.0 - self.period_mult)
        else:
            return None
        return finite_horizon(end - 1e-9)

    def cycle_starts(self, until: int) -> list[float]:
        out: list[float] = []
        k = 0
        limit = self.cycles if self.cycles is not None else MAX_MARKS
        while k <= limit and len(out) <= MAX_MARKS:
            s = self._start(k)
            if s >= until or (k > 0 and s - out[-1] < 1.0):
                break
            out.append(s)
            k += 1
        return out if len(out) <= MAX_MARKS else []


@dataclass(frozen=True, repr=False)
class OneCycle(Schedule):
    r"""The one-cycle policy (Smith & Topin, `arXiv:1708.07120 <https://arxiv.org/abs/1708.07120>`_).

    Same numbers as torch ``OneCycleLR``. The default is fastai's two phases: from
    ``max_lr/div_factor`` up to ``max_lr`` over the first ``pct_start`` of ``total_steps``, then
    down to ``max_lr/div_factor/final_div_factor``. ``three_phase=True`` is the paper's version:
    up, symmetric down to the start, then a short final annihilation. Phase boundaries sit at
    ``pct_start*total_steps - 1`` (and ``2*pct_start*total_steps - 2``) exactly as in torch.
    After ``total_steps`` the final value holds (torch raises).

    ``convention='optax'`` places the boundaries as optax's ``cosine_onecycle_schedule`` and
    ``linear_onecycle_schedule`` do: the peak at ``int(pct_start*total_steps)``, the end of the
    second phase at ``int(pct_final*total_steps)`` and the final value at ``total_steps``.
    ``pct_final`` (three phases only) ends the second phase early instead of symmetrically
    (optax's linear one-cycle uses 0.85).
    """

    name = "one_cycle"
    constraints = {
        "max_lr": _LR,
        "total_steps": [IntRange(2)],
        "pct_start": [NumberRange(0.0, 1.0, closed="neither")],
        "div_factor": [NumberRange(1.0)],
        "final_div_factor": [NumberRange(1.0)],
        "anneal": [OneOf(("cos", "linear"))],
        "three_phase": [Bool()],
        "pct_final": [Optional(NumberRange(0.0, 1.0, closed="neither"))],
        "convention": [OneOf(("torch", "optax"))],
    }

    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal: str = "cos"
    three_phase: bool = False
    pct_final: float | None = None
    convention: str = "torch"

    def _ends(self) -> tuple[float, float, float]:
        """Last step of each phase (the second unused with two phases)."""
        T, p = self.total_steps, self.pct_start
        if self.convention == "optax":
            second = float(math.floor((self.pct_final if self.pct_final is not None else 2 * p) * T))
            return float(math.floor(p * T)), float(second), float(T)
        second = self.pct_final * T - 1 if self.pct_final is not None else 2 * p * T - 2
        return p * T - 1, second, T - 1.0

    def _check(self) -> None:
        if self.pct_final is not None and not self.three_phase:
            raise self._invalid("pct_final", self.pct_final, "None unless three_phase=True")
        if self.pct_final is not None and self.pct_final <= self.pct_start:
            raise self._invalid("pct_final", self.pct_final, f"> pct_start ({self.pct_start!r})")
        b1, b2, b3 = self._ends()
        if b1 <= 0:
            raise self._invalid(
                "pct_start",
                self.pct_start,
                f"large enough that pct_start * total_steps > 1 (total_steps={self.total_steps}), "
                "so the warm-up phase has at least one step",
            )
        if self.three_phase and not b1 < b2 < b3:
            raise self._invalid(
                "pct_start",
                self.pct_start,
                f"small enough for three phases of at least one step each (total_steps={self.total_steps}, "
                f"pct_final={self.pct_final!r}: phase ends {b1:g}, {b2:g}, {b3:g})",
            )

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def min_lr(self) -> float:
        return self.initial_lr / self.final_div_factor

    @cached_property
    def _table(self) -> list[tuple[float, float, float, float, float, float]]:
        """``(start, end, start_lr, end_lr, start_level, end_level)``, last phase first."""
        phases = self._phases()
        starts = [0.0] + [ph[0] for ph in phases[:-1]]
        return [(st, *ph) for ph, st in zip(phases, starts)][::-1]

    def _phases(self) -> list[tuple[float, float, float, float, float]]:
        """``(end_step, start_lr, end_lr, start_level, end_level)`` per phase, as torch."""
        lo, hi, init = self.min_lr, self.max_lr, self.initial_lr
        b1, b2, b3 = self._ends()
        if self.three_phase:
            return [(b1, init, hi, 0.0, 1.0), (b2, hi, init, 1.0, 0.0), (b3, init, lo, 0.0, 0.0)]
        return [(b1, init, hi, 0.0, 1.0), (b3, hi, lo, 1.0, 0.0)]

    def _weight(self, ops: Ops, pct: Array) -> Array:
        """Share of a phase's start value still in effect: 1 at its start, 0 at its end (torch's
        ``_annealing_cos``/``_annealing_linear`` written as ``end + (start - end) * weight``)."""
        if self.anneal == "cos":
            return (ops.cos(pct * math.pi) + 1.0) / 2.0
        return 1.0 - pct

    def _piecewise(self, t: Array, ops: Ops) -> tuple[Array, Array]:
        """Value and level together: one pass over the phases (last phase first)."""
        x = ops.minimum(ops.f(t), self._ends()[2])  # hold the final value
        value = level = None
        for start, end, a, b, la, lb in self._table:
            # exactly 1 at the phase's end: in float32, (x - start) / (end - start) with the
            # denominator folded in float64 can miss 1 by 1e-6, which a steep last phase
            # (pct_start 0.99) turns into an end value off by 1e-6 * max_lr
            pct = ops.clip((x - start) / (end - start), 0.0, 1.0)
            w = self._weight(ops, ops.where(x >= end, 1.0 + 0.0 * pct, pct))
            # a w + b (1 - w): torch's b + (a - b) w to an ulp, and exact at both ends even when
            # a and b are decades apart (div_factor=1e300 would cancel to 0 in torch's form)
            v, lv = a * w + b * (1.0 - w), la * w + lb * (1.0 - w)
            if value is None:
                value, level = v, lv
            else:
                inside = x <= end
                value, level = ops.where(inside, v, value), ops.where(inside, lv, level)
        return value, level

    def _value(self, t: Array, ops: Ops) -> Array:
        return self._piecewise(t, ops)[0]

    def _level(self, t: Array, ops: Ops) -> Array:
        return self._piecewise(t, ops)[1]

    def value_and_level(self, step: int) -> tuple[float, float]:
        value, level = self._piecewise(step, _resolve(step, "python"))
        return float(value), float(level)

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)

    @property
    def horizon(self) -> int | None:
        return self.total_steps

    def cycle_starts(self, until: int) -> list[float]:
        return [s for s in [0.0] + [ph[0] for ph in self._phases()[:-1]] if s < until]


#: The seed document's suggested starting point (section 3.1), as a schedule: lr_base 1e-5,
#: lr_max 1e-2, 10 iterations per cycle, gamma 0.95 per cycle, triangular mode.
#: ``cyclr.SEED_DEFAULT(3)`` is its LR at step 3; ``SEED_DEFAULT.to_config()`` is its config.
SEED_DEFAULT: Schedule = Cyclic(base_lr=1e-5, max_lr=1e-2, step_size=5, shape="triangular", decay=0.95)
