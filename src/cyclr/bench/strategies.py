"""Benchmark strategies: how each one turns a task's budget into an LR (and momentum) plan.

Hand-set strategies start from the task's reference LR ``lr`` (``Task.default_lr``) and span the
same range as the constant grid, ``lr / sqrt(10)`` to ``lr * sqrt(10)``:

- ``constant``: the framework's default LR, and the grid ``lr * 10**{-1/2, 0, 1/2}``;
- ``step``: ``lr``, divided by 10 at 50% and 75% of the budget;
- ``exponential``: ``lr`` decaying to ``lr / 100`` at the end;
- ``cosine``: ``lr`` annealed to 0;
- ``warmup_cosine``: nanoGPT's recipe, a linear warm-up over 5% of the budget to ``lr``, then a
  cosine to ``lr / 10``;
- ``sgdr``: warm restarts from ``lr``, periods T/7, 2T/7, 4T/7 (period_mult 2) filling the budget;
- ``triangular``: two cycles across the grid's range; ``triangular2``: three, halving;
- ``sine``: the seed's mode, three sine cycles across the range with its gamma 0.95 per cycle;
- ``one_cycle``: torch ``OneCycleLR``'s defaults with ``max_lr`` at the grid's top, momentum cycled;
- ``auto``: cyclr's LR range test (its steps and seconds count) -> its complete one-cycle schedule;
- ``peer``: the real ``torch-lr-finder``'s suggestion fed to torch's own ``OneCycleLR`` with its
  defaults, the recipe most PyTorch users follow (its range test counts too).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..schedules import (
    SGDR,
    Constant,
    Cosine,
    Cyclic,
    Exponential,
    MultiStep,
    OneCycle,
    Schedule,
    Triangular,
    Triangular2,
    Warmup,
)

__all__ = ["STRATEGIES", "Context", "Plan", "Strategy", "framework_default_lr", "get_strategies", "warmup_cosine"]

HALF_DECADE = math.sqrt(10.0)
GRID = (1 / HALF_DECADE, 1.0, HALF_DECADE)


@dataclass
class Context:
    """What a strategy may look at: the task, its data, the optimizer and the run's budget."""

    task: Any
    data: Any
    optimizer: str
    epochs: int
    steps_per_epoch: int
    seed: int
    batch_size: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def lr(self) -> float:
        return float(self.task.default_lr[self.optimizer])


@dataclass
class Plan:
    """One run's LR plan: a cyclr schedule (+ momentum), or torch's OneCycleLR at ``peer_max_lr``.
    ``search_steps``/``search_seconds`` are what choosing it cost (range tests)."""

    schedule: Schedule | None = None
    momentum: tuple[float, float] | None = None
    peer_max_lr: float | None = None
    search_steps: int = 0
    search_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One runnable setting of a strategy: ``label`` is shown, ``key`` identifies the run (two
    labels with the same key, such as a default LR that is also a grid point, share one run)."""

    strategy: str
    label: str
    key: str
    lr: float | None = None


Builder = Callable[[Context, Variant], Plan]


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    build: Builder
    frameworks: tuple[str, ...] = ("torch", "keras")

    def variants(self, task: Any, optimizer: str) -> list[Variant]:
        if self.name != "constant":
            return [Variant(self.name, self.name, self.name)]
        lr = float(task.default_lr[optimizer])
        default = framework_default_lr(task.framework, optimizer)
        points = [("default", default)] + [(f"lr={lr * g:.3g}", lr * g) for g in GRID]
        return [Variant("constant", label, f"constant lr={value:.4g}", value) for label, value in points]


def framework_default_lr(framework: str, optimizer: str) -> float:
    """The LR the framework's optimizer uses when none is given (read from the framework)."""
    if framework == "torch":
        import torch

        cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.AdamW
        return float(inspect.signature(cls.__init__).parameters["lr"].default)
    if framework == "keras":
        import keras

        kcls = keras.optimizers.SGD if optimizer == "sgd" else keras.optimizers.AdamW
        return float(inspect.signature(kcls.__init__).parameters["learning_rate"].default)
    raise ValueError(f"unknown framework {framework!r}")


def _range(c: Context) -> tuple[float, float]:
    return c.lr / HALF_DECADE, c.lr * HALF_DECADE


def _constant(c: Context, v: Variant) -> Plan:
    assert v.lr is not None
    return Plan(Constant(v.lr))


def _step(c: Context, v: Variant) -> Plan:
    t = c.total_steps
    return Plan(MultiStep(c.lr, milestones=(max(1, t // 2), max(2, (3 * t) // 4)), gamma=0.1))


def _exponential(c: Context, v: Variant) -> Plan:
    return Plan(Exponential(c.lr, gamma=0.01 ** (1 / max(c.total_steps - 1, 1))))


def _cosine(c: Context, v: Variant) -> Plan:
    return Plan(Cosine(c.lr, total_steps=c.total_steps))


def _warmup_cosine(c: Context, v: Variant) -> Plan:
    return Plan(warmup_cosine(c.lr, c.total_steps))


def warmup_cosine(lr: float, total_steps: int, warmup: float = 0.05, floor: float = 0.1) -> Schedule:
    """nanoGPT's schedule: ``lr * (t + 1) / (w + 1)`` for ``t < w`` (``w`` = 5% of the budget, its
    100 of 2,000), then a cosine from ``lr`` to ``floor * lr`` at the end of the budget."""
    w = max(1, round(warmup * total_steps))
    return Warmup(Cosine(lr, max(1, total_steps - w), min_lr=floor * lr), steps=w, start_lr=lr / (w + 1))


def _sgdr(c: Context, v: Variant) -> Plan:
    return Plan(SGDR(c.lr, period=c.total_steps / 7, period_mult=2.0))


def _triangular(c: Context, v: Variant) -> Plan:
    lo, hi = _range(c)
    return Plan(Triangular(lo, hi, step_size=c.total_steps / 4))


def _triangular2(c: Context, v: Variant) -> Plan:
    lo, hi = _range(c)
    return Plan(Triangular2(lo, hi, step_size=c.total_steps / 6))


def _sine(c: Context, v: Variant) -> Plan:
    lo, hi = _range(c)
    return Plan(Cyclic(lo, hi, step_size=c.total_steps / 6, shape="sine", decay=0.95))


def _one_cycle(c: Context, v: Variant) -> Plan:
    return Plan(OneCycle(max_lr=_range(c)[1], total_steps=c.total_steps), momentum=(0.85, 0.95))


def _auto(c: Context, v: Variant) -> Plan:
    result = c.task.range_test(c.data, c.optimizer, c.seed, c.batch_size)
    schedule = result.schedule("one_cycle", c.steps_per_epoch, c.epochs)
    details = {
        "suggestion": result.suggestion,
        "suggestions": result.suggestions,
        "bounds": list(result.bounds),
        "curve": {"lrs": [float(x) for x in result.lrs], "losses": [float(x) for x in result.losses]},
    }
    return Plan(
        schedule, momentum=result.momentum, search_steps=result.steps, search_seconds=result.seconds, details=details
    )


def _peer(c: Context, v: Variant) -> Plan:
    t0 = time.perf_counter()
    lr, steps, curve = torch_lr_finder_suggestion(c)
    return Plan(
        peer_max_lr=lr,
        search_steps=steps,
        search_seconds=time.perf_counter() - t0,
        details={"suggestion": lr, "curve": curve},
    )


def torch_lr_finder_suggestion(c: Context) -> tuple[float, int, dict[str, list[float]]]:
    """torch-lr-finder's documented recipe: ``LRFinder(model, optimizer, criterion)``,
    ``range_test(loader, end_lr=10, num_iter=100)``, then the steepest-gradient LR that its own
    ``plot(suggest_lr=True)`` reports. Returns the LR, the steps the test took and its curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from torch_lr_finder import LRFinder

    torch.manual_seed(c.seed)
    model = c.task.model()
    opt = c.task.make_optimizer(c.optimizer, c.task.param_groups(model), 1e-7)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(c.data.x_train, c.data.y_train),
        batch_size=c.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(c.seed),
    )
    finder = LRFinder(model, opt, c.task.loss, device="cpu")
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        finder.range_test(loader, end_lr=10, num_iter=100)
        fig, ax = plt.subplots()
        _, lr = finder.plot(suggest_lr=True, ax=ax)
        plt.close(fig)
    history = finder.history
    curve = {"lrs": [float(x) for x in history["lr"]], "losses": [float(x) for x in history["loss"]]}
    if lr is None:
        raise RuntimeError("torch-lr-finder gave no suggestion (its curve is too short).")
    return float(lr), len(history["lr"]), curve


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("constant", "framework default LR, and the best of a 3-point grid", _constant),
        Strategy("step", "step decay: /10 at 50% and 75%", _step),
        Strategy("exponential", "exponential decay to lr/100", _exponential),
        Strategy("cosine", "cosine annealing to 0", _cosine),
        Strategy("warmup_cosine", "nanoGPT: 5% linear warm-up, cosine to lr/10", _warmup_cosine),
        Strategy("sgdr", "cosine warm restarts, period x2", _sgdr),
        Strategy("triangular", "CLR triangular, 2 cycles", _triangular),
        Strategy("triangular2", "CLR triangular2, 3 halving cycles", _triangular2),
        Strategy("sine", "the seed's sine mode, 3 cycles, gamma 0.95", _sine),
        Strategy("one_cycle", "one-cycle, torch defaults, max_lr at the grid top", _one_cycle),
        Strategy("auto", "cyclr range test -> one-cycle (its cost counted)", _auto),
        Strategy("peer", "torch-lr-finder suggestion -> torch OneCycleLR (its cost counted)", _peer, ("torch",)),
    )
}


def get_strategies(names: str | list[str] | None) -> list[Strategy]:
    """Strategies by name (comma-separated or a list; ``None`` or ``'all'``: every one)."""
    if names is None or names == "all":
        return list(STRATEGIES.values())
    wanted = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    unknown = [n for n in wanted if n not in STRATEGIES]
    if unknown or not wanted:
        raise ValueError(
            f"unknown strategy {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"valid strategies: {', '.join(STRATEGIES)}, or 'all'."
        )
    return [STRATEGIES[n] for n in dict.fromkeys(wanted)]
