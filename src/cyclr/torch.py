"""PyTorch adapter: any cyclr schedule as a ``torch.optim.lr_scheduler.LRScheduler``.

Examples:
    >>> import torch, cyclr, cyclr.torch
    >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
    >>> sched = cyclr.torch.Scheduler(opt, cyclr.one_cycle(0.1, total_steps=100), momentum=(0.85, 0.95))
    >>> opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]
    (0.004, 0.95)
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._lazy import require
from ._ops import get_ops
from ._validation import InvalidParameterError
from .controllers import CONTROLLERS, Controller, controller_from_config
from .schedules import Constant, Mirror, Schedule, from_config, momentum_schedule

torch = require("torch", "torch", "cyclr.torch")
from torch import Tensor  # noqa: E402
from torch.nn import Module  # noqa: E402
from torch.optim import Optimizer  # noqa: E402
from torch.optim.lr_scheduler import LRScheduler  # noqa: E402

from .finder._core import REPEATS as _REPEATS  # noqa: E402
from .finder._core import RangeTest as _Sweep  # noqa: E402
from .finder._torch import lr_range_test  # noqa: E402

__all__ = [
    "MOMENTUM_SLOTS",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "OneCycleLR",
    "Scheduler",
    "auto_scheduler",
    "check_momentum_option",
    "check_range_test_options",
    "lr_range_test",
    "momentum_cycle",
    "scheduler_from_range_test",
]

#: Where a param group keeps its momentum: SGD/RMSprop ``momentum``, Adam family ``betas[0]``.
MOMENTUM_SLOTS = ("momentum", "betas", "beta1")
PAST_END = ("warn", "hold", "raise")
ScheduleLike = Schedule | Mapping[str, Any]
_PY = get_ops("python")
_DIST = torch.distributed.is_available()


def _schedules(value: Any, n: int, param: str) -> list[Schedule]:
    """One schedule per param group, from a schedule, a config dict, or a list of either."""
    if isinstance(value, (Schedule, Mapping)):
        return [from_config(value)] * n
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        if len(value) != n:
            raise InvalidParameterError(
                "Scheduler", param, f"<{len(value)} schedules>", f"one schedule, or one per param group ({n})"
            )
        return [from_config(v) for v in value]
    raise InvalidParameterError("Scheduler", param, value, "a cyclr schedule, a config dict, or a list of them")


def _evaluator(lr: Schedule, momentum: Schedule | None) -> Callable[[int], tuple[float, float]]:
    """``t -> (lr, momentum)`` for one group's pair of schedules."""
    if momentum is None:
        value = lr._value
        return lambda t: (float(value(t, _PY)), 0.0)
    if isinstance(momentum, Mirror) and momentum.schedule == lr:
        both, high, span = lr.value_and_level, momentum.high, momentum.high - momentum.low

        def mirrored(t: int) -> tuple[float, float]:
            v, level = both(t)
            return float(v), high - span * float(level)

        return mirrored
    lr_value, m_value = lr._value, momentum._value
    return lambda t: (float(lr_value(t, _PY)), float(m_value(t, _PY)))


def _from_configs(configs: list[dict[str, Any]]) -> list[Schedule]:
    """Schedules from configs; equal configs share one object (evaluated once per step)."""
    built: dict[str, Schedule] = {}
    return [built.setdefault(repr(c), from_config(c)) for c in configs]


class Scheduler(LRScheduler):
    """Drive an optimizer's learning rate (and momentum) by cyclr schedules, one value per update.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        lr: a schedule or config dict for every param group, or a list with one per group.
        momentum: ``None`` (leave momentum alone); ``(low, high)`` to cycle momentum opposite to
            the LR (torch ``OneCycleLR``/``CyclicLR`` numbers); or a schedule, dict or list of them
            giving the momentum values directly.
        scale: ``'ratio'`` keeps each group's ratio to the largest group LR, so discriminative
            learning rates survive one shared schedule; ``'none'`` gives every group its schedule's
            values as they are; or a list of one multiplier per group. Default: ``'ratio'`` for one
            shared schedule, ``'none'`` when ``lr`` gives one schedule per group.
        momentum_slot: ``'momentum'``, ``'betas'`` (Adam's ``betas[0]``) or ``'beta1'``; found
            from the param groups when ``None``.
        past_end: after a finite schedule's last step: ``'warn'`` once and hold the final value
            (default), ``'hold'`` silently, or ``'raise'``.
        last_epoch: the last step already taken; ``-1`` (default) starts at step 0. Resuming with
            ``last_epoch=k`` needs nothing else from the optimizer (no ``initial_lr``).
        restore_on_nan: with an adaptive controller (``cyclr.adaptive(...)``), keep a copy of the
            parameters and the optimizer state at the start of every cycle, and put them back
            when :meth:`observe` sees a non-finite loss (the controller also halves the
            amplitude). Costs one copy of the model and the optimizer state in memory.

    ``lr`` and ``betas`` given as 0-d tensors are updated in place (``fill_``), so a
    ``torch.compile``-d optimizer step is compiled once, however the values cycle.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr: ScheduleLike | Sequence[ScheduleLike],
        momentum: tuple[float, float] | ScheduleLike | Sequence[ScheduleLike] | None = None,
        *,
        scale: str | Sequence[float] | None = None,
        momentum_slot: str | None = None,
        past_end: str = "warn",
        last_epoch: int = -1,
        restore_on_nan: bool = False,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"Scheduler needs a torch.optim.Optimizer; got {type(optimizer).__name__}.")
        groups = optimizer.param_groups
        self.controller: Controller | None = None
        self.controller_state: dict[str, float] = {}
        if not isinstance(restore_on_nan, bool):
            raise InvalidParameterError("Scheduler", "restore_on_nan", restore_on_nan, "True or False")
        self.restore_on_nan = restore_on_nan
        self.restores = 0
        #: the range test this schedule came from (:func:`scheduler_from_range_test`), else None
        self.range_test: Any = None
        self._good: tuple[list[Tensor], dict[str, Any]] | None = None
        if _is_controller(lr):
            lr = self._attach_controller(lr, groups, momentum)
        elif restore_on_nan:
            raise InvalidParameterError(
                "Scheduler", "restore_on_nan", restore_on_nan, "False with a fixed schedule (it needs cyclr.adaptive)"
            )
        self.lr_schedules = _schedules(lr, len(groups), "lr")
        self.momentum_schedules = self._momentum_schedules(momentum, len(groups))
        if scale is None:
            scale = "ratio" if isinstance(lr, (Schedule, Mapping)) else "none"
        self.scales = self._scales(scale, groups)
        self.momentum_slots = (
            [self._slot(g, i, momentum_slot, optimizer) for i, g in enumerate(groups)]
            if (self.momentum_schedules)
            else []
        )
        if past_end not in PAST_END:
            raise InvalidParameterError("Scheduler", "past_end", past_end, "one of " + ", ".join(map(repr, PAST_END)))
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or last_epoch < -1:
            raise InvalidParameterError("Scheduler", "last_epoch", last_epoch, "an integer >= -1 (the last step taken)")
        self.past_end = past_end
        self._warned_past_end = False
        self._prepare()
        if last_epoch >= 0:  # resume from the step alone: the schedule holds every constant it needs
            for group in groups:
                group.setdefault("initial_lr", group["lr"])
        super().__init__(optimizer, last_epoch)

    # ------------------------------------------------------------------ set-up
    def _attach_controller(self, lr: Any, groups: list[dict[str, Any]], momentum: Any) -> Schedule:
        """An adaptive controller drives every group (their LR ratios kept); with ``max_lr=None``
        the largest group LR is its first guess. The machinery below sees a constant stand-in."""
        controller = controller_from_config(lr)
        if getattr(controller, "max_lr", 0.0) is None:
            top = max(float(g["lr"]) for g in groups)
            if not top > 0:
                raise InvalidParameterError(
                    "Scheduler",
                    "lr",
                    controller.name,
                    "an optimizer LR > 0 to start from, or max_lr= on the controller",
                )
            controller = controller.with_max_lr(top)  # type: ignore[attr-defined]
        if momentum is not None and not (isinstance(momentum, tuple) and len(momentum) == 2):
            raise InvalidParameterError(
                "Scheduler", "momentum", momentum, "None or a (low, high) pair with an adaptive controller"
            )
        self.controller, self.controller_state = controller, controller.init()
        return Constant(float(self.controller.values(self.controller_state)[0]))

    def _momentum_schedules(self, momentum: Any, n: int) -> list[Schedule]:
        pair = isinstance(momentum, tuple) and all(_is_real(v) for v in momentum)
        if isinstance(momentum, Sequence) and not isinstance(momentum, str) and not pair:  # one per group
            out = [
                momentum_schedule(m, lr, owner="Scheduler", param="momentum", numbers="constant")
                for m, lr in zip(momentum, self.lr_schedules)
            ]
            if len(momentum) != n or any(m is None for m in out):
                raise InvalidParameterError("Scheduler", "momentum", momentum, f"one schedule per param group ({n})")
            return [m for m in out if m is not None]
        built: dict[int, Schedule | None] = {}  # groups sharing an LR schedule share its momentum
        out = [
            built.setdefault(
                id(lr), momentum_schedule(momentum, lr, owner="Scheduler", param="momentum", numbers="constant")
            )
            for lr in self.lr_schedules
        ]
        return [m for m in out if m is not None]

    @staticmethod
    def _scales(scale: str | Sequence[float], groups: list[dict[str, Any]]) -> list[float]:
        n = len(groups)
        if isinstance(scale, str):
            if scale == "none":
                return [1.0] * n
            if scale != "ratio":
                raise InvalidParameterError("Scheduler", "scale", scale, "'ratio', 'none' or a list of multipliers")
            lrs = [float(g.get("initial_lr", g["lr"])) for g in groups]
            top = max(lrs)
            return [v / top if top > 0 else 1.0 for v in lrs]
        values = [float(v) for v in scale]
        if len(values) != n or not all(math.isfinite(v) and v >= 0 for v in values):
            raise InvalidParameterError("Scheduler", "scale", list(scale), f"{n} finite multipliers >= 0")
        return values

    @staticmethod
    def _slot(group: dict[str, Any], i: int, slot: str | None, optimizer: Optimizer) -> str:
        if slot is not None:
            if slot not in MOMENTUM_SLOTS:
                raise InvalidParameterError("Scheduler", "momentum_slot", slot, "one of " + ", ".join(MOMENTUM_SLOTS))
            if slot not in group:
                raise ValueError(f"Scheduler: param group {i} of {type(optimizer).__name__} has no {slot!r} entry.")
            return slot
        for candidate in ("betas", "momentum", "beta1"):
            if candidate in group:
                return candidate
        keys = ", ".join(sorted(k for k in group if k != "params"))
        raise ValueError(
            f"Scheduler: momentum was given, but {type(optimizer).__name__} param group {i} has no momentum "
            f"slot ('momentum', 'betas' or 'beta1'; it has: {keys}). Pass momentum=None, or momentum_slot= "
            "naming the entry to drive."
        )

    # ------------------------------------------------------------------ stepping
    def _prepare(self) -> None:
        """Per-step constants: where the schedules end, and an evaluation plan in which every
        distinct (LR, momentum) pair is computed once per step, sharing one level evaluation
        when the momentum mirrors its group's LR schedule."""
        ends = [h for h in (s.horizon for s in self.lr_schedules) if h is not None]
        self._end = max(ends) if len(ends) == len(self.lr_schedules) else None
        momentum: list[Schedule | None] = list(self.momentum_schedules) or [None] * len(self.lr_schedules)
        index: dict[tuple[int, int], int] = {}
        self._evaluators: list[Callable[[int], tuple[float, float]]] = []
        self._plan: list[int] = []
        for s, m in zip(self.lr_schedules, momentum):
            key = (id(s), id(m))
            if key not in index:
                index[key] = len(self._evaluators)
                self._evaluators.append(_evaluator(s, m))
            self._plan.append(index[key])
        self._momentum_values: list[float] = []

    def _values(self, t: int) -> tuple[list[float], list[float]]:
        """LR and momentum per group at step ``t`` (from the controller's state, if adaptive)."""
        if self.controller is not None:
            lr, level = self.controller.values(self.controller_state)
            lrs = [k * float(lr) for k in self.scales]
            if not self.momentum_schedules:
                return lrs, []
            mirror = self.momentum_schedules[0]
            high, low = float(mirror.high), float(mirror.low)  # type: ignore[attr-defined]
            return lrs, [high - (high - low) * float(level)] * len(lrs)
        if len(self._plan) == 1:  # the common case, without the bookkeeping
            lr, m = self._evaluators[0](t)
            return [self.scales[0] * lr], ([m] if self.momentum_schedules else [])
        results = [f(t) for f in self._evaluators]
        lrs = [k * results[j][0] for k, j in zip(self.scales, self._plan)]
        return lrs, ([results[j][1] for j in self._plan] if self.momentum_schedules else [])

    def _check_end(self, t: int) -> None:
        # Stepping to t == horizon is the usual trailing step() after the last update; t > horizon
        # means an optimizer update already ran on a value past the end.
        if self._end is None or t <= self._end:
            return
        msg = f"cyclr Scheduler stepped to step {t}, past the end of its schedule ({self._end} steps)"
        if self.past_end == "raise":
            raise RuntimeError(msg + ".")
        if self.past_end == "warn" and not self._warned_past_end:
            self._warned_past_end = True
            warnings.warn(msg + "; holding the final value.", UserWarning, stacklevel=4)

    def get_lr(self) -> list[float | Tensor]:  # type: ignore[override]
        """The LRs for the current step (what :meth:`step` writes)."""
        return list(self._values(max(self.last_epoch, 0))[0])

    def get_last_momentum(self) -> list[float]:
        """The momentum (or beta1) values in use, one per param group (empty if not driven)."""
        return list(self._momentum_values)

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance one optimizer update and write its LR (and momentum) into the param groups.

        Same bookkeeping as torch's ``LRScheduler.step`` (``last_epoch``, ``_step_count``,
        ``get_last_lr()``, the warning when it runs before ``optimizer.step()``), in one pass.
        """
        if epoch is not None:
            raise TypeError(
                "cyclr Scheduler.step() takes no epoch (deprecated in torch); to jump to a step, "
                "load a state_dict or construct with last_epoch."
            )
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`: the first value "
                "of the schedule was skipped. Call optimizer.step() first.",
                UserWarning,
                stacklevel=2,
            )
        self._step_count += 1
        self.last_epoch += 1
        self._apply(self.last_epoch)

    def _apply(self, t: int) -> None:
        self._check_end(t)
        lrs, self._momentum_values = self._values(max(t, 0))
        for group, value in zip(self.optimizer.param_groups, lrs):
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(value)
            else:
                group["lr"] = value
        self._last_lr = lrs  # type: ignore[assignment]  # list[float] is what torch returns for float groups
        self._write_momentum()

    def _write_momentum(self) -> None:
        for group, slot, value in zip(self.optimizer.param_groups, self.momentum_slots, self._momentum_values):
            if slot == "betas":
                betas = group["betas"]
                if isinstance(betas[0], torch.Tensor):
                    betas[0].fill_(value)
                else:
                    group["betas"] = (value, *betas[1:])
            elif isinstance(group[slot], torch.Tensor):
                group[slot].fill_(value)
            else:
                group[slot] = value

    # ------------------------------------------------------------------ adaptive
    def observe(self, loss: float | Tensor) -> None:
        """Feed an adaptive controller the loss of the update just taken (call it after
        ``optimizer.step()``, before :meth:`step`). Under ``torch.distributed`` the loss is
        averaged over ranks first, so every rank sets the same LR. NaN/inf are handled by the
        controller (a spike), not raised."""
        if self.controller is None:
            raise TypeError(
                "Scheduler.observe() feeds an adaptive controller (cyclr.adaptive(...)); this Scheduler "
                "drives a fixed schedule, which needs no loss."
            )
        value: Any
        if type(loss) is float:  # the common case first: observe() runs every step
            value = loss
        elif isinstance(loss, Tensor):  # one element: .item() is the cheapest read
            value = loss.item() if loss.numel() == 1 else loss.detach().float().mean()
        elif isinstance(loss, numbers.Real) and not isinstance(loss, (bool, np.bool_)):
            value = float(loss)
        else:
            raise InvalidParameterError("Scheduler.observe", "loss", loss, "a number or a tensor")
        if _DIST and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            device = next((p.device for g in self.optimizer.param_groups for p in g["params"]), torch.device("cpu"))
            reduced = torch.as_tensor(value, dtype=torch.float64, device=device).clone()
            torch.distributed.all_reduce(reduced)
            value = reduced / torch.distributed.get_world_size()
        number = float(value)
        if self.restore_on_nan:
            if self._good is None:
                self._keep_good()
            if not math.isfinite(number):
                self._restore_good()
        cycle = self.controller_state.get("cycle")
        self.controller_state = self.controller.update(self.controller_state, number)
        if self.restore_on_nan and self.controller_state.get("cycle") != cycle:
            self._keep_good()

    def _keep_good(self) -> None:
        params = [p.detach().clone() for g in self.optimizer.param_groups for p in g["params"]]
        self._good = (params, copy.deepcopy(self.optimizer.state_dict()))

    def _restore_good(self) -> None:
        assert self._good is not None
        params, opt_state = self._good
        with torch.no_grad():
            for p, saved in zip((p for g in self.optimizer.param_groups for p in g["params"]), params):
                p.copy_(saved)
        self.optimizer.load_state_dict(copy.deepcopy(opt_state))
        self.restores += 1

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Plain data only (configs, the step, multipliers, an adaptive controller's config and
        state): loads with ``weights_only=True``."""
        extra = {}
        if self.controller is not None:
            extra = {"controller": self.controller.to_config(), "controller_state": dict(self.controller_state)}
        return {
            **extra,
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "lr": [s.to_config() for s in self.lr_schedules],
            "momentum": [s.to_config() for s in self.momentum_schedules],
            "scales": list(self.scales),
            "momentum_slots": list(self.momentum_slots),
            "past_end": self.past_end,
            "warned_past_end": self._warned_past_end,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the schedules and the step, and write their values into the optimizer.

        The state is checked as strictly as a new Scheduler's arguments before anything changes:
        one LR schedule (and momentum schedule, and slot) per param group of *this* optimizer,
        rates that are finite and >= 0, momentum in [0, 1) written only to a momentum slot the
        group has, and whole step counts. A bad state raises ``ValueError`` and leaves the
        scheduler and the optimizer as they were.
        """
        lr, momentum, scales, slots, past_end, warned, last_epoch, step_count = _checked_state(
            state_dict, self.optimizer
        )
        controller, controller_state = _checked_controller(state_dict)
        self.controller, self.controller_state = controller, controller_state
        self.lr_schedules, self.momentum_schedules = lr, momentum
        self.scales, self.momentum_slots, self.past_end = scales, slots, past_end
        self._prepare()
        self._warned_past_end = warned
        self.last_epoch = last_epoch
        self._step_count = step_count
        self._apply(self.last_epoch)


_STATE_KEYS = ("last_epoch", "_step_count", "lr", "momentum", "scales", "momentum_slots", "past_end", "warned_past_end")


def _checked_state(state: Any, optimizer: Optimizer) -> tuple[Any, ...]:
    """Validate a :meth:`Scheduler.state_dict` against ``optimizer``; return its parts."""

    def bad(key: str, value: Any, allowed: str) -> InvalidParameterError:
        return InvalidParameterError("Scheduler.load_state_dict", key, value, allowed)

    if not isinstance(state, Mapping):
        raise bad("state_dict", state, "a dict from Scheduler.state_dict()")
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise bad("state_dict", sorted(state), f"a dict with the keys {', '.join(_STATE_KEYS)} (missing {missing})")
    groups = optimizer.param_groups
    n = len(groups)

    def schedules(key: str, allowed_n: tuple[int, ...]) -> list[Schedule]:
        value = state[key]
        if not isinstance(value, list) or len(value) not in allowed_n:
            raise bad(key, value, f"a list of {' or '.join(map(str, allowed_n))} schedule configs ({n} param groups)")
        try:
            return _from_configs(list(value))
        except (ValueError, TypeError) as err:
            raise bad(key, value, f"valid schedule configs ({err})") from err

    lr = schedules("lr", (n,))
    for s in lr:
        lo, hi = s.bounds
        if not (math.isfinite(lo) and math.isfinite(hi) and lo >= 0):
            raise bad("lr", s.to_config(), "schedules with finite values >= 0")
    momentum = schedules("momentum", (0, n))
    for s in momentum:
        lo, hi = s.bounds
        if not 0.0 <= lo <= hi < 1.0:
            raise bad("momentum", s.to_config(), f"schedules with values in [0, 1) (range [{lo}, {hi}])")
    scales = state["scales"]
    if (
        not isinstance(scales, list)
        or len(scales) != n
        or not all(_is_real(v) and math.isfinite(float(v)) and float(v) >= 0 for v in scales)
    ):
        raise bad("scales", scales, f"a list of {n} finite multipliers >= 0")
    slots = state["momentum_slots"]
    if not isinstance(slots, list) or len(slots) != len(momentum):
        raise bad("momentum_slots", slots, f"a list of {len(momentum)} slot names (one per momentum schedule)")
    for i, (slot, group) in enumerate(zip(slots, groups)):
        if slot not in MOMENTUM_SLOTS or slot not in group:
            raise bad("momentum_slots", slots, f"slots among {MOMENTUM_SLOTS} that param group {i} has")
    if state["past_end"] not in PAST_END:
        raise bad("past_end", state["past_end"], "one of " + ", ".join(map(repr, PAST_END)))
    if not isinstance(state["warned_past_end"], bool):
        raise bad("warned_past_end", state["warned_past_end"], "True or False")
    last_epoch, step_count = state["last_epoch"], state["_step_count"]
    if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or last_epoch < -1:
        raise bad("last_epoch", last_epoch, "an integer >= -1")
    if isinstance(step_count, bool) or not isinstance(step_count, int) or step_count < 0:
        raise bad("_step_count", step_count, "an integer >= 0")
    return (
        lr,
        momentum,
        [float(v) for v in scales],
        list(slots),
        state["past_end"],
        state["warned_past_end"],
        (last_epoch),
        step_count,
    )


def _is_controller(value: Any) -> bool:
    return isinstance(value, Controller) or (isinstance(value, Mapping) and value.get("name") in CONTROLLERS)


def _checked_controller(state: Mapping[str, Any]) -> tuple[Controller | None, dict[str, float]]:
    """An adaptive controller and its state from a state dict (``None`` for a fixed schedule)."""
    if "controller" not in state:
        return None, {}

    def bad(key: str, value: Any, allowed: str) -> InvalidParameterError:
        return InvalidParameterError("Scheduler.load_state_dict", key, value, allowed)

    try:
        controller = controller_from_config(state["controller"])
    except (ValueError, TypeError) as err:
        raise bad("controller", state["controller"], f"a controller config ({err})") from err
    values = state.get("controller_state")
    if not isinstance(values, Mapping) or set(values) != set(controller.state_keys):
        raise bad("controller_state", values, f"a dict with the keys {', '.join(controller.state_keys)}")
    if not all(_is_real(v) and not math.isnan(float(v)) for v in values.values()):
        raise bad("controller_state", values, "numbers (inf allowed, not NaN)")
    return controller, {k: float(v) for k, v in values.items()}


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


# ---------------------------------------------------------------------- torch's own signatures
def _per_group(owner: str, name: str, value: Any, n: int) -> list[float]:
    """A number for every param group, or a list/tuple with one per group (torch's convention)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n or not all(_is_real(v) and math.isfinite(float(v)) for v in values):
        raise InvalidParameterError(owner, name, value, f"a finite number, or a list of {n} (one per param group)")
    return [float(v) for v in values]


def _group_lrs(optimizer: Optimizer, last_epoch: int) -> list[float]:
    """Each group's starting LR, as torch's schedulers read it (``initial_lr`` when resuming)."""
    key = "initial_lr" if last_epoch >= 0 else "lr"
    return [float(g.get(key, g["lr"])) for g in optimizer.param_groups]


class _TorchSignature(Scheduler):
    """A :class:`Scheduler` built from one of torch's scheduler signatures."""

    def __init__(
        self,
        optimizer: Optimizer,
        lr: Sequence[Schedule],
        momentum: Sequence[Schedule] | None,
        *,
        past_end: str,
        last_epoch: int,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs a torch.optim.Optimizer; got {type(optimizer).__name__}.")
        super().__init__(
            optimizer,
            list(lr),
            list(momentum) if momentum else None,
            scale="none",
            past_end=past_end,
            last_epoch=last_epoch,
        )


class CyclicLR(_TorchSignature):
    """torch's ``CyclicLR`` signature and defaults, cyclr's numbers (identical to torch's in every
    mode; tested against torch's class and its own test cases).

    Fixed: momentum cycles through Adam's ``betas[0]`` as well as SGD's ``momentum``; a custom
    ``scale_fn`` (code, which cyclr never stores) is refused at construction with a pointer to
    ``cyclr.Scheduler`` and a cyclr schedule; the state dict is plain data (``weights_only=True``).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        base_lr: float | list[float],
        max_lr: float | list[float],
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Any = None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.8,
        max_momentum: float | list[float] = 0.9,
        last_epoch: int = -1,
        *,
        past_end: str = "hold",
    ) -> None:
        from .schedules import ExpRange, Triangular, Triangular2

        if scale_fn is not None:
            raise InvalidParameterError(
                "CyclicLR",
                "scale_fn",
                scale_fn,
                "None: a Python function is code, not configuration; use mode='triangular2' / 'exp_range', or "
                "cyclr.torch.Scheduler with a cyclr schedule (cyclr.cyclic(..., decay=...))",
            )
        if scale_mode not in ("cycle", "iterations"):
            raise InvalidParameterError("CyclicLR", "scale_mode", scale_mode, "'cycle' or 'iterations'")
        builders: dict[str, Any] = {"triangular": Triangular, "triangular2": Triangular2, "exp_range": ExpRange}
        if mode not in builders:
            raise InvalidParameterError("CyclicLR", "mode", mode, "'triangular', 'triangular2' or 'exp_range'")
        n = len(optimizer.param_groups)
        bases = _per_group("CyclicLR", "base_lr", base_lr, n)
        tops = _per_group("CyclicLR", "max_lr", max_lr, n)
        extra = {"gamma": gamma} if mode == "exp_range" else {}
        lrs = [
            builders[mode](base_lr=b, max_lr=m, step_size=step_size_up, step_size_down=step_size_down, **extra)
            for b, m in zip(bases, tops)
        ]
        momentum = None
        if cycle_momentum:
            lows = _per_group("CyclicLR", "base_momentum", base_momentum, n)
            highs = _per_group("CyclicLR", "max_momentum", max_momentum, n)
            momentum = [s.mirror(lo, hi) for s, lo, hi in zip(lrs, lows, highs)]
        super().__init__(optimizer, lrs, momentum, past_end=past_end, last_epoch=last_epoch)


class OneCycleLR(_TorchSignature):
    """torch's ``OneCycleLR`` signature and defaults, cyclr's numbers (identical to torch's;
    tested against torch's class and its own test cases).

    Fixed: one ``step()`` past ``total_steps`` (the usual trailing call) holds the final LR instead
    of raising ``ValueError: Tried to step ... times``; ``past_end='warn'`` or ``'raise'`` if you
    want to hear about it. Momentum cycles through ``betas[0]`` for Adam as well.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
        *,
        past_end: str = "hold",
    ) -> None:
        from .schedules import OneCycle

        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise InvalidParameterError(
                    "OneCycleLR",
                    "total_steps",
                    total_steps,
                    "a positive integer, or None with both epochs and steps_per_epoch given",
                )
            for name, v in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
                if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                    raise InvalidParameterError("OneCycleLR", name, v, "a positive integer")
            total_steps = epochs * steps_per_epoch
        if anneal_strategy not in ("cos", "linear"):
            raise InvalidParameterError("OneCycleLR", "anneal_strategy", anneal_strategy, "'cos' or 'linear'")
        n = len(optimizer.param_groups)
        tops = _per_group("OneCycleLR", "max_lr", max_lr, n)
        lrs = [
            OneCycle(
                max_lr=m,
                total_steps=total_steps,
                pct_start=pct_start,
                div_factor=div_factor,
                final_div_factor=final_div_factor,
                anneal=anneal_strategy,
                three_phase=three_phase,
            )
            for m in tops
        ]
        momentum = None
        if cycle_momentum:
            lows = _per_group("OneCycleLR", "base_momentum", base_momentum, n)
            highs = _per_group("OneCycleLR", "max_momentum", max_momentum, n)
            momentum = [s.mirror(lo, hi) for s, lo, hi in zip(lrs, lows, highs)]
        super().__init__(optimizer, lrs, momentum, past_end=past_end, last_epoch=last_epoch)
        self.total_steps = total_steps


class CosineAnnealingWarmRestarts(_TorchSignature):
    """torch's ``CosineAnnealingWarmRestarts`` signature and defaults, cyclr's numbers (identical to
    torch's for integer ``T_mult``; tested against torch's class and its own test cases).

    Fixed: ``T_mult`` may be any real >= 1 (torch: integers only); ``decay`` (keyword, default 1)
    scales each restart's peak by ``decay ** k`` (SGDR's per-restart decay, absent in torch);
    ``step(epoch)`` with a fractional epoch (torch's documented per-batch pattern) is supported.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        T_0: int,
        T_mult: float = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
        *,
        decay: float = 1.0,
    ) -> None:
        from .schedules import SGDR

        if isinstance(T_0, bool) or not isinstance(T_0, int) or T_0 <= 0:
            raise InvalidParameterError("CosineAnnealingWarmRestarts", "T_0", T_0, "a positive integer")
        if not _is_real(T_mult) or not T_mult >= 1:
            raise InvalidParameterError("CosineAnnealingWarmRestarts", "T_mult", T_mult, "a number >= 1")
        lrs = [
            SGDR(max_lr=lr, period=T_0, min_lr=eta_min, period_mult=float(T_mult), decay=decay)
            for lr in _group_lrs(optimizer, last_epoch)
        ]
        super().__init__(optimizer, lrs, None, past_end="hold", last_epoch=last_epoch)
        self.T_0, self.T_mult, self.eta_min = T_0, T_mult, eta_min

    def step(self, epoch: float | None = None) -> None:  # type: ignore[override]
        """One step, or with ``epoch`` (fractional allowed: ``epoch + i / iters``) jump there."""
        if epoch is None:
            super().step()
            return
        if not _is_real(epoch) or epoch < 0:
            raise InvalidParameterError("CosineAnnealingWarmRestarts", "epoch", epoch, "a number >= 0")
        self._step_count += 1
        self.last_epoch = math.floor(epoch)
        self._apply_at(float(epoch))

    def _apply_at(self, t: float) -> None:
        lrs, _ = self._values(t)  # type: ignore[arg-type]  # SGDR is defined at real t
        for group, value in zip(self.optimizer.param_groups, lrs):
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(value)
            else:
                group["lr"] = value
        self._last_lr = lrs  # type: ignore[assignment]


class CosineAnnealingLR(_TorchSignature):
    """torch's ``CosineAnnealingLR`` signature and defaults, cyclr's numbers: identical to torch's
    for every step up to ``T_max`` (tested against torch's class and its own test cases).

    Changed on purpose: after ``T_max`` the LR stays at ``eta_min``. torch's recursive form climbs
    back to the initial LR over the next ``T_max`` steps, a surprise for anyone whose loop runs a
    little longer than planned; use :class:`CosineAnnealingWarmRestarts` for restarts.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        T_max: int,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        from .schedules import Cosine

        if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max <= 0:
            raise InvalidParameterError("CosineAnnealingLR", "T_max", T_max, "a positive integer")
        lrs: list[Schedule] = [
            Cosine(max_lr=lr, total_steps=T_max, min_lr=eta_min) for lr in _group_lrs(optimizer, last_epoch)
        ]
        super().__init__(optimizer, lrs, None, past_end="hold", last_epoch=last_epoch)
        self.T_max, self.eta_min = T_max, eta_min


# ------------------------------------------------------------------ range test -> attached schedule
RANGE_TEST_KINDS = ("one_cycle", "triangular", "triangular2")


def _has_momentum(optimizer: Optimizer) -> bool:
    """Whether cycling momentum means anything here: SGD with momentum, or an Adam-family beta1."""
    for group in optimizer.param_groups:
        if "betas" in group or "beta1" in group:
            return True
        if float(group.get("momentum", 0.0) or 0.0) > 0:
            return True
    return False


def check_momentum_option(owner: str, momentum: Any) -> None:
    """An integration's ``momentum`` option: ``'auto'``, ``None`` or ``(low, high)``."""
    pair = isinstance(momentum, tuple) and len(momentum) == 2 and all(_is_real(v) for v in momentum)
    if not (momentum == "auto" or momentum is None or pair):
        raise InvalidParameterError(owner, "momentum", momentum, "'auto', None or (low, high)")


def momentum_cycle(
    optimizer: Optimizer, momentum: Any, owner: str, auto: tuple[float, float] = (0.85, 0.95)
) -> tuple[float, float] | None:
    """The ``momentum=`` a :class:`Scheduler` gets from an integration's ``momentum`` option:
    ``'auto'`` is ``auto`` (Smith & Topin's 0.85-0.95) when the optimizer has a momentum to
    cycle, else ``None``; ``None`` and ``(low, high)`` pass through."""
    check_momentum_option(owner, momentum)
    if momentum == "auto":
        return auto if _has_momentum(optimizer) else None
    return momentum  # type: ignore[no-any-return]


def _check_run(
    owner: str, kind: str, total_steps: int | None, epochs: int | None, steps_per_epoch: int | None = None
) -> None:
    """The schedule options of the range-test paths, checked before any test runs."""
    if kind not in RANGE_TEST_KINDS:
        raise InvalidParameterError(owner, "kind", kind, f"one of {list(RANGE_TEST_KINDS)}")
    for name, value in (("total_steps", total_steps), ("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidParameterError(owner, name, value, "a positive integer or None")


def check_range_test_options(owner: str, options: Mapping[str, Any], provided: Sequence[str] = ()) -> None:
    """Check keyword arguments meant for :func:`lr_range_test` when they are given (a callback's
    constructor, a one-call helper), not after training has started: names ``provided`` by the
    caller are refused, an unknown name is named, and the sweep's own settings are validated."""
    known = [n for n in inspect.signature(lr_range_test).parameters if n not in ("model", "optimizer", "loss_fn")]
    for name, value in options.items():
        if name in provided:
            raise InvalidParameterError(owner, name, value, "unset: it is provided for you")
        if name not in known:
            allowed = ", ".join(n for n in known if n not in provided)
            raise InvalidParameterError(owner, name, value, f"one of the range test's options: {allowed}")
    sweep = ("start_lr", "end_lr", "num_steps", "mode", "smoothing", "diverge")
    _Sweep(**{k: options[k] for k in sweep if k in options})  # raises on a bad setting


def scheduler_from_range_test(
    optimizer: Optimizer,
    result: Any,
    *,
    kind: str = "one_cycle",
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    momentum: str | tuple[float, float] | None = "auto",
    past_end: str = "hold",
) -> Scheduler:
    """A :class:`Scheduler` on ``optimizer`` with the schedule a range test's ``result`` gives.

    The run's length comes from ``total_steps`` (optimizer updates; what Lightning's
    ``estimated_stepping_batches`` and Hugging Face's ``max_steps`` give) or from ``epochs`` x
    ``steps_per_epoch`` (``steps_per_epoch`` defaults to the length the test read from its data).
    ``momentum='auto'`` cycles momentum (or Adam's beta1) over ``result.momentum`` (0.85-0.95)
    when the optimizer has one, and leaves it alone otherwise; ``None`` never cycles it.
    The schedule is ``scheduler.lr_schedules[0]``; the test is ``scheduler.range_test``.
    """
    owner = "scheduler_from_range_test"
    _check_run(owner, kind, total_steps, epochs, steps_per_epoch)
    if total_steps is not None:
        # whole epochs when the run divides evenly into them (a triangular schedule then ends
        # each cycle on an epoch boundary); otherwise the run is one block of total_steps
        if epochs is not None and total_steps % epochs == 0:
            schedule = result.schedule(kind, steps_per_epoch=total_steps // epochs, epochs=epochs)
        else:
            schedule = result.schedule(kind, steps_per_epoch=total_steps, epochs=1)
    elif epochs is not None:
        schedule = result.schedule(kind, steps_per_epoch=steps_per_epoch, epochs=epochs)
    else:
        raise InvalidParameterError(owner, "total_steps", None, "the run's length: total_steps, or epochs")
    cycle = momentum_cycle(optimizer, momentum, owner, result.momentum)
    scheduler = Scheduler(optimizer, schedule, momentum=cycle, past_end=past_end)
    scheduler.range_test = result
    return scheduler


def auto_scheduler(
    model: Module,
    optimizer: Optimizer,
    loss_fn: Callable[..., Tensor] | None,
    train_data: Any,
    *,
    epochs: int | None = None,
    total_steps: int | None = None,
    kind: str = "one_cycle",
    momentum: str | tuple[float, float] | None = "auto",
    **range_test: Any,
) -> Scheduler:
    """fastai's ``lr_find(); fit_one_cycle(n)`` in one call, with the pieces in view.

    Runs :func:`lr_range_test` (``range_test`` keyword arguments go to it; three sweeps unless
    ``repeats`` says otherwise, as ``cyclr find`` runs; the model and the optimizer come back
    exactly as they were), then attaches the schedule its result gives for a run of ``epochs``
    over ``train_data`` (or ``total_steps`` updates). It is exactly::

        result = lr_range_test(model, optimizer, loss_fn, train_data, repeats=3, **range_test)
        scheduler = scheduler_from_range_test(optimizer, result, kind=kind, epochs=epochs)

    and the result stays at hand as ``scheduler.range_test`` (``.plot()``, ``.suggestions``,
    ``.confidence``). Step the scheduler once per optimizer update.
    """
    # every option is checked before the test spends its steps
    _check_run("auto_scheduler", kind, total_steps, epochs)
    if total_steps is None and epochs is None:
        raise InvalidParameterError("auto_scheduler", "epochs", None, "the run's length: epochs, or total_steps")
    check_momentum_option("auto_scheduler", momentum)
    check_range_test_options("auto_scheduler", range_test, provided=("train_data",))
    result = lr_range_test(model, optimizer, loss_fn, train_data, **{"repeats": _REPEATS, **range_test})
    return scheduler_from_range_test(
        optimizer, result, kind=kind, total_steps=total_steps, epochs=epochs, momentum=momentum
    )


def __dir__() -> list[str]:
    """The public names only: `dir()` lists what `__all__` promises, not the helpers imported here."""
    return sorted(__all__)
