"""One training run of a task under a schedule: the loop every benchmark shares."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..schedules import Schedule
from ..torch import Scheduler
from .tasks import Task, TaskData, batches

__all__ = ["OPTIMIZERS", "RunResult", "make_optimizer", "train"]

OPTIMIZERS = ("sgd", "adam")

#: builds the LR scheduler for an optimizer (the peer recipe uses torch's own OneCycleLR)
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


def make_optimizer(
    name: str, params: torch.nn.Module | list[tuple[list[torch.nn.Parameter], float]], lr: float
) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 and weight decay 5e-4, or AdamW (weight decay 1e-4). ``params`` is a
    model or a list of ``(parameters, lr multiplier)`` groups (discriminative LRs)."""
    groups = [(list(params.parameters()), 1.0)] if isinstance(params, torch.nn.Module) else params
    param_groups: list[dict[str, Any]] = [{"params": p, "lr": lr * scale} for p, scale in groups]
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=0.9, weight_decay=5e-4)
    if name == "adam":
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=1e-4)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}.")


def evaluation_steps(per_epoch: int, epochs: int, evals_per_epoch: int) -> set[int]:
    """The steps after which a run evaluates: ``evals_per_epoch`` evenly spaced per epoch (never 0)."""
    if not evals_per_epoch:
        return set()
    return {round(per_epoch * (k + 1) / evals_per_epoch) for k in range(evals_per_epoch * epochs)} - {0}


def _momentum(group: dict[str, Any]) -> float:
    return float(group["betas"][0]) if "betas" in group else float(group.get("momentum", 0.0))


@dataclass
class RunResult:
    """What one run measured: the metric and the mean training loss at each evaluation, steps and
    seconds to the target, and a trace of the LR (of the fastest param group) and momentum."""

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

    @property
    def final(self) -> float:
        return self.metrics[-1] if self.metrics else float("nan")

    def best(self, higher_is_better: bool = True) -> float:
        if not self.metrics:
            return float("nan")
        return max(self.metrics) if higher_is_better else min(self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def record(self, step: int, metric: float, mean_loss: float, elapsed: float, reached: bool) -> bool:
        """Log one evaluation (and the first time the target is reached); False if it diverged."""
        if metric != metric:
            self.diverged = True
            return False
        self.eval_steps.append(step)
        self.metrics.append(metric)
        self.train_losses.append(mean_loss)
        self.eval_seconds.append(elapsed)
        if self.steps_to_target is None and reached:
            self.steps_to_target, self.seconds_to_target = step, elapsed
        return True

    def trace(self, step: int, opt: torch.optim.Optimizer, group: int) -> None:
        """Log the LR and momentum of param group ``group`` before update ``step`` (0-based)."""
        g = opt.param_groups[group]
        self.trace_steps.append(step)
        self.lrs.append(float(g["lr"]))
        self.momenta.append(_momentum(g))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def train(
    task: Task,
    data: TaskData,
    schedule: Schedule | None = None,
    *,
    optimizer: str = "sgd",
    momentum: tuple[float, float] | None = None,
    epochs: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    evals_per_epoch: int | None = None,
    model: torch.nn.Module | None = None,
    scheduler: SchedulerFactory | None = None,
    trace_points: int = 200,
) -> RunResult:
    """Train a fresh model (initialised from ``seed``; batches drawn from ``seed`` too, so every
    schedule of a seed sees the same initialisation and data order) and evaluate it
    ``evals_per_epoch`` times per epoch (the task's own number by default; 0: never).

    The LR comes from ``schedule`` through :class:`cyclr.torch.Scheduler` (``momentum`` as there),
    or from ``scheduler(optimizer)``, any torch scheduler stepped once per update. The loop does
    nothing per step beyond the training step, the scheduler and reading the loss."""
    if (schedule is None) == (scheduler is None):
        raise ValueError("train() needs exactly one of schedule and scheduler.")
    epochs = epochs or task.epochs
    batch_size = batch_size or task.batch_size
    evals = task.evals_per_epoch if evals_per_epoch is None else evals_per_epoch
    torch.manual_seed(seed)
    model = model if model is not None else task.model()
    start_lr = float(schedule(0)) if schedule is not None else 1e-3
    opt = task.make_optimizer(optimizer, task.param_groups(model), start_lr)
    sched = Scheduler(opt, schedule, momentum=momentum, past_end="hold") if schedule is not None else scheduler(opt)  # type: ignore[misc]
    per_epoch = task.steps_per_epoch(data, batch_size)
    if per_epoch < 1:
        raise ValueError(f"{task.name}: {data.n_train} training examples make no batch of {batch_size}.")
    total = per_epoch * epochs
    eval_at = evaluation_steps(per_epoch, epochs, evals)
    trace_every = max(1, total // trace_points)
    top = max(range(len(opt.param_groups)), key=lambda i: float(opt.param_groups[i]["lr"]))
    stream = batches(data, batch_size, torch.Generator().manual_seed(seed))
    result = RunResult()
    model.train()
    losses: list[torch.Tensor] = []
    t0 = time.perf_counter()
    step = 0
    for step in range(1, total + 1):
        if (step - 1) % trace_every == 0:
            result.trace(step - 1, opt, top)
        x, y = next(stream)
        loss = task.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if task.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), task.grad_clip)
        opt.step()
        sched.step()
        losses.append(loss.detach())
        if step in eval_at or step == total:
            mean = float(torch.stack(losses).mean())
            losses.clear()
            if mean != mean or mean == float("inf"):
                result.diverged = True
                break
            if step not in eval_at:
                continue
            metric = task.evaluate(model, data)
            if not result.record(step, metric, mean, time.perf_counter() - t0, task.reached(metric)):
                break
    result.steps = step
    result.seconds = time.perf_counter() - t0
    if not result.diverged:
        result.extra = task.final_metrics(model, data)
    return result
