"""One recorder for every loop: periodic evaluation, metric and loss curves, steps to the target,
divergence, episode returns and the LR/momentum trace read back from the optimizer."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, SupportsFloat

from .driver import Driver

__all__ = ["Recorder", "RunResult", "evaluation_steps", "reporting"]

#: ``hook(step, metric) -> stop``: hears each periodic evaluation of the runs started inside
#: :func:`reporting`; True stops the run there, marked ``pruned`` (a search's pruner).
_REPORT: ContextVar[Callable[[int, float], bool] | None] = ContextVar("cyclr_report", default=None)


@contextmanager
def reporting(hook: Callable[[int, float], bool]) -> Iterator[None]:
    """Within the block, every run's periodic evaluations go to ``hook(step, metric)``; when
    it returns True the run stops after that evaluation, its result marked ``pruned``. This is
    how ``cyclr tune`` feeds Optuna's pruners, whatever loop (torch, Keras, RL) trains the run."""
    token = _REPORT.set(hook)
    try:
        yield
    finally:
        _REPORT.reset(token)


def evaluation_steps(per_epoch: int, epochs: int, evals_per_epoch: int) -> set[int]:
    """The steps after which a run evaluates: ``evals_per_epoch`` evenly spaced per epoch (never 0)."""
    if not evals_per_epoch:
        return set()
    return {round(per_epoch * (k + 1) / evals_per_epoch) for k in range(evals_per_epoch * epochs)} - {0}


@dataclass
class RunResult:
    """What one run measured: the metric and the mean training loss at each evaluation, steps and
    seconds to the target, a trace of the LR (of the fastest param group) and momentum as the
    optimizer used them, and, for RL, every training episode's return and the step it ended at."""

    eval_steps: list[int] = field(default_factory=list)
    metrics: list[float] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)
    trace_steps: list[int] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    momenta: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    diverged: bool = False
    #: the task's end-of-run scores (:meth:`Task.final_metrics`)
    extra: dict[str, float] = field(default_factory=dict)
    episode_returns: list[float] = field(default_factory=list)
    episode_ends: list[int] = field(default_factory=list)
    #: stopped early by a search's pruner (:func:`reporting`)
    pruned: bool = False

    @property
    def final(self) -> float:
        return self.metrics[-1] if self.metrics else float("nan")

    def best(self, higher_is_better: bool = True) -> float:
        if not self.metrics:
            return float("nan")
        return max(self.metrics) if higher_is_better else min(self.metrics)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.episode_returns:  # supervised runs store what they always stored
            del d["episode_returns"], d["episode_ends"]
        if not self.pruned:
            del d["pruned"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class Recorder:
    """The bookkeeping every loop shares. A loop calls :meth:`before` ahead of each update,
    :meth:`loss` with each update's loss, :meth:`episode` when an episode ends (RL), and
    :meth:`after` once the update is done; :meth:`after` evaluates when due and says when to stop.

    ``evaluate()`` gives the tracked metric; ``reached(metric)`` says whether it meets the target.
    The mean training loss since the previous evaluation is stored with each evaluation; a
    non-finite mean, or a NaN metric, marks the run diverged and stops it.
    """

    def __init__(
        self,
        driver: Driver,
        *,
        per_epoch: int,
        epochs: int,
        evals_per_epoch: int,
        reached: Callable[[float], bool],
        trace_points: int = 200,
    ) -> None:
        if per_epoch < 1:
            raise ValueError(f"a run needs at least one update per epoch; got {per_epoch}.")
        self.driver, self.reached = driver, reached
        self.total = per_epoch * epochs
        self.eval_at = evaluation_steps(per_epoch, epochs, evals_per_epoch)
        self.trace_every = max(1, self.total // trace_points)
        self.result = RunResult()
        self._losses: list[Any] = []
        self.t0 = time.perf_counter()

    def before(self, step: int) -> None:
        """Before update ``step`` (0-based): trace the LR and momentum the optimizer will use."""
        if step % self.trace_every == 0:
            lr, momentum = self.driver.current()
            self.result.trace_steps.append(step)
            self.result.lrs.append(lr)
            self.result.momenta.append(momentum)

    def loss(self, value: SupportsFloat) -> None:
        """One update's training loss (a tensor is kept as it is: no device sync per step)."""
        detach = getattr(value, "detach", None)
        self._losses.append(detach() if detach is not None else float(value))

    def episode(self, end_step: int, ret: float) -> None:
        self.result.episode_returns.append(ret)
        self.result.episode_ends.append(end_step)

    def _mean_loss(self) -> float:
        if not self._losses:
            return math.nan
        if isinstance(self._losses[0], float):
            mean = float(sum(self._losses)) / len(self._losses)
        else:
            import torch

            mean = float(torch.stack(self._losses).mean())
        self._losses.clear()
        return mean

    def after(self, step: int, evaluate: Callable[[], float]) -> bool:
        """After ``step`` updates: evaluate if due; True when the run must stop (diverged)."""
        if step not in self.eval_at and step != self.total:
            return False
        trained = bool(self._losses)  # RL: no update yet before learning starts
        mean = self._mean_loss()
        if trained and not math.isfinite(mean):
            self.result.diverged = True
            return True
        if step not in self.eval_at:
            return False
        metric = float(evaluate())
        if metric != metric:
            self.result.diverged = True
            return True
        elapsed = time.perf_counter() - self.t0
        r = self.result
        r.eval_steps.append(step)
        r.metrics.append(metric)
        r.train_losses.append(mean)
        r.eval_seconds.append(elapsed)
        if r.steps_to_target is None and self.reached(metric):
            r.steps_to_target, r.seconds_to_target = step, elapsed
        hook = _REPORT.get()
        if hook is not None and step != self.total and hook(step, metric):
            r.pruned = True
            return True
        return False

    def finish(self, steps: int) -> RunResult:
        self.result.steps = steps
        self.result.seconds = time.perf_counter() - self.t0
        return self.result
