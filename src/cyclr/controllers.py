"""Controllers: learning-rate schedules that listen to the loss.

A schedule is a pure function of the step. A controller adds state that the training loss moves:
``init()`` makes the state, ``update(state, loss)`` folds in one step's loss, and ``values(state)``
gives the learning rate and the *level* (0 at the floor, 1 at the peak) that the next update uses,
so cyclical momentum mirrors it as it does for any cyclr schedule. The state is a flat dict of
numbers, so it saves and resumes exactly (``torch.save`` with ``weights_only=True``, a JSON
file, Keras variables, a JAX pytree) and shows in configs.

Every formula is written once against :class:`~cyclr._ops.Ops` and selects with ``where``, never
with a Python branch on a value, so one implementation runs on Python numbers, NumPy, torch
tensors, JAX arrays inside ``jax.jit`` and Keras variables inside a compiled step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from ._ops import Array, Ops, get_ops
from ._validation import Constraint, IntRange, InvalidParameterError, NumberRange, Optional, check, short_repr

__all__ = ["CONTROLLERS", "ClosedLoopCLR", "Controller", "adaptive", "controller_from_config"]

CONTROLLERS: dict[str, type[Controller]] = {}
_PY = get_ops("python")

State = dict[str, Array]


def _ops(xp: Ops | str | None) -> Ops:
    if isinstance(xp, Ops):
        return xp
    return get_ops(xp or "python")


class Controller:
    """Base of every controller: declarative validation (the schedules' error template), a
    registry by ``name`` and configuration as data. Subclasses are frozen dataclasses that list
    their state's keys in ``state_keys`` and implement :meth:`_init`, :meth:`_update` and
    :meth:`_values` with the operations of :class:`~cyclr._ops.Ops`."""

    name: ClassVar[str] = ""
    constraints: ClassVar[Mapping[str, Sequence[Constraint]]] = {}
    state_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            CONTROLLERS[cls.name] = cls

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            normal = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
            if isinstance(value, int) and not isinstance(value, bool):
                normal = value
            check(self.name, f.name, value, self.constraints.get(f.name, []))
            object.__setattr__(self, f.name, normal)
        self._check()

    def _check(self) -> None:
        """Cross-parameter checks; raise with :meth:`_invalid`."""

    def _invalid(self, param: str, value: Any, allowed: str) -> InvalidParameterError:
        return InvalidParameterError(self.name, param, value, allowed)

    # ------------------------------------------------------------------ the protocol
    def init(self, xp: Ops | str | None = None) -> State:
        """The state before any step."""
        return dict(self._init())

    def update(self, state: State, loss: Array, xp: Ops | str | None = None) -> State:
        """The state after one step whose loss was ``loss`` (NaN/inf are handled, not raised)."""
        if len(state) < len(self.state_keys) or any(k not in state for k in self.state_keys):
            missing = [k for k in self.state_keys if k not in state]
            raise ValueError(f"{self.name}: the state lacks {', '.join(missing)}; make it with init().")
        if xp is None or xp == "python" or xp is _PY:  # one value per step on the host: the float twin
            return self._update_python(state, float(loss))
        ops = _ops(xp)
        return self._update(dict(state), loss, ops)

    def _update_python(self, state: State, loss: float) -> State:
        """:meth:`_update` on Python floats, with ``if`` for ``where``: the same arithmetic in the
        same order (a test checks the two agree bit for bit), several times faster."""
        return self._update(dict(state), loss, _ops("python"))

    def values(self, state: State, xp: Ops | str | None = None) -> tuple[Array, Array]:
        """``(lr, level)`` for the next update."""
        return self._values(state, _ops(xp))

    def _init(self) -> dict[str, float]:
        raise NotImplementedError

    def _update(self, state: State, loss: Array, ops: Ops) -> State:
        raise NotImplementedError

    def _values(self, state: State, ops: Ops) -> tuple[Array, Array]:
        raise NotImplementedError

    # ------------------------------------------------------------------ configuration
    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}  # type: ignore[arg-type]

    def replace(self, **changes: Any) -> Controller:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def __repr__(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return f"{type(self).__name__}({args})"


def controller_from_config(config: Controller | Mapping[str, Any]) -> Controller:
    """A controller from ``controller.to_config()`` (or a hand-written dict like it)."""
    if isinstance(config, Controller):
        return config
    if not isinstance(config, Mapping) or not isinstance(config.get("name"), str):
        raise ValueError(f"a controller config must be a dict with a 'name'; got {short_repr(config)}.")
    cls = CONTROLLERS.get(config["name"])
    if cls is None:
        raise ValueError(f"unknown controller {short_repr(config['name'])}; valid names: {', '.join(CONTROLLERS)}.")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(config) - fields - {"name"})
    if unknown:
        raise ValueError(f"{cls.name}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}.")
    return cls(**{k: v for k, v in config.items() if k != "name"})


_POS = [NumberRange(0.0, closed="neither")]
_BIG = 1e30  # stands in for inf where it multiplies a parameter that may be 0


@dataclass(frozen=True, repr=False)
class ClosedLoopCLR(Controller):
    """Closed-loop cyclical learning rate: every rising half-cycle is a free range test.

    The rate follows a cosine cycle from ``max_lr / div`` up to ``max_lr`` and back over
    ``period`` steps, while a bias-corrected EMA (``smoothing``) of the loss is watched:

    - **Re-estimated bounds.** On the ascent, the LR at the lowest smoothed loss is recorded and so
      is whether the loss then rose by more than ``rise`` (relative). At the cycle's end the next
      ``max_lr`` is the LR at that lowest loss if the loss rose after it (the top was too high), or
      ``grow`` times the peak if it was still falling there; either way damped to x2 up or x1/2
      down per cycle. ``base_lr`` stays ``max_lr / div``.
    - **Spikes.** On the ascent (from ``1 / (1 - smoothing)`` steps into the cycle, once the EMA
      holds a memory's worth of it), a smoothed loss above the cycle's best by ``spike - 1`` times
      its magnitude (``spike`` times the best, for a positive loss), or at any time a non-finite loss,
      sends the cycle into its descent from the same level at once and halves the amplitude.
      Comparisons are relative to ``|best|``, or to the loss's noise (a bias-corrected EMA of
      ``|loss - smoothed loss|``, state ``dev``) where that is larger, so a loss that is negative
      or hovers near zero (a policy gradient's) is read by its own scale.
    - **Plateaus.** A cycle-end smoothed loss that has not improved by ``improve`` (relative) on the
      previous cycle's halves the amplitude and doubles the period (at most to the steps before
      the anneal).
    - **Budget.** With ``total_steps``, the last ``anneal`` fraction of the run anneals (cosine)
      from the LR reached there to ``max_lr / final_div``.

    ``max_lr=None`` takes the optimizer's current LR as the first guess (the adapter fills it in);
    ``period`` defaults to a quarter of the budget before the anneal (``total_steps`` needed), so a
    run holds about four cycles.
    """

    name = "closed_loop_clr"
    max_lr: float | None = None
    total_steps: int | None = None
    period: int | None = None
    div: float = 10.0
    smoothing: float = 0.9
    rise: float = 0.05
    grow: float = 1.5
    spike: float = 2.0
    improve: float = 0.01
    anneal: float = 0.1
    final_div: float = 100.0
    min_lr: float = 1e-8
    max_lr_cap: float = 100.0

    constraints: ClassVar[Mapping[str, Sequence[Constraint]]] = {
        "max_lr": [Optional(NumberRange(0.0, closed="neither"))],
        "total_steps": [Optional(IntRange(2))],
        "period": [Optional(IntRange(2))],
        "div": [NumberRange(1.0)],
        "smoothing": [NumberRange(0.0, 1.0, closed="left")],
        "rise": [NumberRange(0.0)],
        "grow": [NumberRange(1.0, 2.0)],
        "spike": [NumberRange(1.0, closed="neither")],
        "improve": [NumberRange(0.0, 1.0, closed="left")],
        "anneal": [NumberRange(0.0, 1.0, closed="left")],
        "final_div": [NumberRange(1.0)],
        "min_lr": _POS,
        "max_lr_cap": _POS,
    }
    state_keys: ClassVar[tuple[str, ...]] = (
        "step",
        "pos",
        "cycle",
        "period",
        "peak",
        "floor",
        "ema",
        "dev",
        "n",
        "best",
        "best_lr",
        "rose",
        "last_end",
        "anneal_lr",
        "spikes",
    )

    def _check(self) -> None:
        if self.period is None and self.total_steps is None:
            raise self._invalid("period", None, "a cycle length in steps (or give total_steps)")
        if self.max_lr is not None and self.max_lr > self.max_lr_cap:
            raise self._invalid("max_lr", self.max_lr, f"<= max_lr_cap ({self.max_lr_cap!r})")

    @cached_property
    def anneal_start(self) -> float:
        """The step at which the final anneal starts (``inf`` without a budget)."""
        if self.total_steps is None or self.anneal == 0:
            return math.inf
        return float(self.total_steps - max(1, round(self.anneal * self.total_steps)))

    @cached_property
    def memory(self) -> float:
        """The smoothed loss's memory in steps, ``1 / (1 - smoothing)``: a cycle's rise and spike
        tests wait that many steps into it (its best is a single noisy loss before)."""
        return 1.0 / (1.0 - self.smoothing)

    @cached_property
    def period_cap(self) -> float:
        """The longest a plateau may stretch a cycle: the steps before the anneal (``inf``
        without a budget)."""
        if self.total_steps is None:
            return math.inf
        start = self.anneal_start if math.isfinite(self.anneal_start) else float(self.total_steps)
        return float(max(2.0, start))

    @cached_property
    def first_period(self) -> float:
        if self.period is not None:
            return float(self.period)
        assert self.total_steps is not None
        cycling = self.anneal_start if math.isfinite(self.anneal_start) else float(self.total_steps)
        return float(max(2, math.ceil(cycling / 4)))

    def with_max_lr(self, max_lr: float) -> ClosedLoopCLR:
        """This controller starting from ``max_lr`` (what an adapter does with ``max_lr=None``)."""
        return dataclasses.replace(self, max_lr=float(max_lr))

    def _init(self) -> dict[str, float]:
        if self.max_lr is None:
            raise ValueError(
                f"{self.name}: max_lr is None; an adapter fills it from the optimizer's LR, or give max_lr= "
                "(or a range test's result.suggestion)."
            )
        return {
            "step": 0.0,
            "pos": 0.0,
            "cycle": 0.0,
            "period": self.first_period,
            "peak": float(self.max_lr),
            "floor": float(self.max_lr) / self.div,
            "ema": 0.0,
            "dev": 0.0,
            "n": 0.0,
            "best": math.inf,
            "best_lr": 0.0,
            "rose": 0.0,
            "last_end": math.inf,
            "anneal_lr": 0.0,
            "spikes": 0.0,
        }

    # ------------------------------------------------------------------ values
    def _cyclic(self, floor: Array, peak: Array, pos: Array, period: Array, ops: Ops) -> tuple[Array, Array]:
        """The cosine cycle's LR and level at ``pos`` of ``period``, from ``floor`` to ``peak``."""
        level = 0.5 - 0.5 * ops.cos(pos / period * (2.0 * math.pi))
        return floor + (peak - floor) * level, level

    def _values(self, state: State, ops: Ops) -> tuple[Array, Array]:
        peak, floor = state["peak"], state["floor"]
        lr, level = self._cyclic(floor, peak, state["pos"], state["period"], ops)
        start = self.anneal_start
        if not math.isfinite(start):
            return lr, level
        length = float(self.total_steps) - start  # type: ignore[arg-type]
        frac = ops.clip((state["step"] - start) / length, 0.0, 1.0)
        end = peak / self.final_div
        annealed = end + (state["anneal_lr"] - end) * (0.5 + 0.5 * ops.cos(frac * math.pi))
        a_level = ops.clip((annealed - floor) / ops.maximum(peak - floor, 1e-300), 0.0, 1.0)
        in_anneal = state["step"] >= start
        return ops.where(in_anneal, annealed, lr), ops.where(in_anneal, a_level, level)

    # ------------------------------------------------------------------ the loop
    def _lr_python(self, s: State) -> float:
        """:meth:`_values`' LR on Python floats (the same arithmetic)."""
        peak, floor = s["peak"], s["floor"]
        level = 0.5 - 0.5 * math.cos(s["pos"] / s["period"] * (2.0 * math.pi))
        lr: float = floor + (peak - floor) * level
        start = self.anneal_start
        if start == math.inf or s["step"] < start:
            return lr
        length = float(self.total_steps) - start  # type: ignore[arg-type]
        frac = (s["step"] - start) / length
        frac = frac if frac < 1.0 else 1.0
        end = peak / self.final_div
        annealed: float = end + (s["anneal_lr"] - end) * (0.5 + 0.5 * math.cos(frac * math.pi))
        return annealed

    def _update_python(self, s: State, loss: float) -> State:
        lr = self._lr_python(s)
        beta, inf = self.smoothing, math.inf
        finite = loss == loss and -inf < loss < inf
        n = s["n"] + (1.0 if finite else 0.0)
        ema = beta * s["ema"] + (1 - beta) * loss if finite else s["ema"]
        if beta > 0:
            denominator = 1.0 - float(beta) ** float(n)
            denominator = denominator if denominator > 1e-12 else 1e-12
            smooth = ema / denominator
        else:
            denominator = 1.0
            smooth = ema
        gap = loss - smooth if finite else 0.0
        dev = beta * s["dev"] + (1 - beta) * (gap if gap > -gap else -gap) if finite else s["dev"]
        noise = dev / denominator
        period, pos, step = s["period"], s["pos"], s["step"]
        ascent = pos < period / 2
        cycling = step < self.anneal_start
        better = finite and smooth < s["best"]
        best = smooth if better else s["best"]
        best_lr = lr if better and ascent else s["best_lr"]
        scale = best if best > -best else -best  # |best|: losses may be negative (policy gradients)
        scale = scale if scale > noise else noise
        scale = scale if scale < _BIG else _BIG  # finite, so 0 * scale is never NaN
        settled = ascent and pos >= self.memory
        rose = 1.0 if settled and finite and smooth - best > self.rise * scale and best_lr > 0 else s["rose"]
        spike = cycling and (not finite or (settled and smooth - best > (self.spike - 1) * scale))
        floor = s["floor"]
        peak = floor + (s["peak"] - floor) / 2 if spike else s["peak"]
        pos = (period - pos if spike and ascent else pos) + 1.0
        step = step + 1.0
        end = cycling and pos >= period
        target = best_lr if rose > 0.5 else self.grow * peak
        low, high = peak / 2, peak * 2
        new_peak = target if target > low else low
        new_peak = new_peak if new_peak < high else high
        new_peak = new_peak if new_peak > self.min_lr else self.min_lr
        new_peak = new_peak if new_peak < self.max_lr_cap else self.max_lr_cap
        last = s["last_end"]
        mag = last if last > -last else -last
        mag = mag if mag > noise else noise
        stalled = smooth > last - self.improve * (mag if mag < _BIG else _BIG)
        new_floor = new_peak / self.div
        if stalled:
            new_peak = new_floor + (new_peak - new_floor) / 2
        longer = period * 2 if period * 2 < self.period_cap else self.period_cap
        longer = longer if longer > period else period
        out: State = {
            "step": step,
            "pos": 0.0 if end else pos,
            "cycle": s["cycle"] + (1.0 if end else 0.0),
            "period": longer if end and stalled else period,
            "peak": new_peak if end else peak,
            "floor": new_floor if end else floor,
            "ema": ema,
            "dev": dev,
            "n": n,
            "best": inf if end else best,
            "best_lr": 0.0 if end else best_lr,
            "rose": 0.0 if end else rose,
            "last_end": smooth if end else s["last_end"],
            "anneal_lr": s["anneal_lr"],
            "spikes": s["spikes"] + (1.0 if spike else 0.0),
        }
        if cycling and step >= self.anneal_start:
            out["anneal_lr"] = self._cyclic(out["floor"], out["peak"], out["pos"], out["period"], _PY)[0]
        return out

    def _update(self, s: State, loss: Array, ops: Ops) -> State:
        lr, _ = self._values(s, ops)
        beta = self.smoothing
        finite = (loss == loss) & (loss < math.inf) & (loss > -math.inf)
        bad = ops.where(finite, 0.0, 1.0) > 0.5
        n = s["n"] + ops.where(finite, 1.0, 0.0)
        ema = ops.where(finite, beta * s["ema"] + (1 - beta) * ops.where(finite, loss, 0.0), s["ema"])
        denominator = ops.maximum(1.0 - ops.powc(beta, n), 1e-12) if beta > 0 else 1.0
        smooth = ema / denominator if beta > 0 else ema
        gap = ops.where(finite, ops.where(finite, loss, 0.0) - smooth, 0.0)
        dev = ops.where(finite, beta * s["dev"] + (1 - beta) * ops.maximum(gap, -gap), s["dev"])
        noise = dev / denominator
        period, pos = s["period"], s["pos"]
        ascent = pos < period / 2
        cycling = s["step"] < self.anneal_start

        # the ascent as a range test: the LR at the lowest loss, and whether the loss rose after it
        better = finite & (smooth < s["best"])
        best = ops.where(better, smooth, s["best"])
        best_lr = ops.where(better & ascent, lr, s["best_lr"])
        # |best| (losses may be negative: policy gradients), or the loss's noise where larger (a
        # loss near zero), finite so 0 * scale is never NaN
        scale = ops.minimum(ops.maximum(ops.maximum(best, -best), noise), _BIG)
        # the cycle's best is trusted once the EMA has a memory's worth of this cycle's losses
        settled = ascent & (pos >= self.memory)
        rising = settled & finite & (smooth - best > self.rise * scale) & (best_lr > 0)
        rose = ops.where(rising, 1.0, s["rose"])

        # a spike on the ascent, or a non-finite loss: into the descent from the same level, half
        # the amplitude (once a cycle for a spike: the descent is already bringing the LR down)
        spike = cycling & (bad | (settled & (smooth - best > (self.spike - 1) * scale)))
        floor = s["floor"]
        peak = ops.where(spike, floor + (s["peak"] - floor) / 2, s["peak"])
        pos = ops.where(spike & ascent, period - pos, pos) + 1.0
        step = s["step"] + 1.0

        # a cycle's end: the next peak from the ascent (damped x2 / x1/2), a plateau's shrink
        end = cycling & (pos >= period)
        target = ops.where(rose > 0.5, best_lr, self.grow * peak)
        new_peak = ops.clip(ops.minimum(ops.maximum(target, peak / 2), peak * 2), self.min_lr, self.max_lr_cap)
        last = s["last_end"]
        stalled = smooth > last - self.improve * ops.minimum(ops.maximum(ops.maximum(last, -last), noise), _BIG)
        new_floor = new_peak / self.div
        new_peak = ops.where(stalled, new_floor + (new_peak - new_floor) / 2, new_peak)
        longer = ops.maximum(ops.minimum(period * 2, self.period_cap), period)
        out: State = {
            "step": step,
            "pos": ops.where(end, 0.0, pos),
            "cycle": s["cycle"] + ops.where(end, 1.0, 0.0),
            "period": ops.where(end & stalled, longer, period),
            "peak": ops.where(end, new_peak, peak),
            "floor": ops.where(end, new_floor, floor),
            "ema": ema,
            "dev": dev,
            "n": n,
            "best": ops.where(end, math.inf, best),
            "best_lr": ops.where(end, 0.0, best_lr),
            "rose": ops.where(end, 0.0, rose),
            "last_end": ops.where(end, smooth, s["last_end"]),
            "anneal_lr": s["anneal_lr"],
            "spikes": s["spikes"] + ops.where(spike, 1.0, 0.0),
        }
        # entering the anneal: it starts from the LR the cycle would have given there
        entering = cycling & (step >= self.anneal_start)
        there, _ = self._cyclic(out["floor"], out["peak"], out["pos"], out["period"], ops)
        out["anneal_lr"] = ops.where(entering, there, s["anneal_lr"])
        return out


def adaptive(
    total_steps: int | None = None,
    *,
    max_lr: float | Any = None,
    period: int | None = None,
    **options: Any,
) -> ClosedLoopCLR:
    """The closed-loop CLR (:class:`ClosedLoopCLR`). ``max_lr`` is a number, a range test's
    result (its suggestion), or ``None``: the optimizer's current LR is the first guess."""
    if max_lr is not None and not isinstance(max_lr, (int, float)):
        suggestion = getattr(max_lr, "suggestion", None)
        if suggestion is None:
            raise InvalidParameterError(
                "adaptive", "max_lr", max_lr, "a positive number, a range test's result, or None (the optimizer's LR)"
            )
        max_lr = float(suggestion)
    return ClosedLoopCLR(max_lr=max_lr, total_steps=total_steps, period=period, **options)
