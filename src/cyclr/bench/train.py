"""One training run of a task under a schedule: the loop every benchmark shares."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..schedules import Schedule
from ..torch import Scheduler
from .tasks import Task, TaskData, batches

__all__ = ["RunResult", "make_optimizer", "train"]

OPTIMIZERS = ("sgd", "adam")


def make_optimizer(name: str, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """SGD with Nesterov-free momentum 0.9 and weight decay 5e-4, or AdamW (weight decay 1e-4)."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    if name == "adam":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}.")


@dataclass
class RunResult:
    """What one run measured: the metric at each evaluation, steps/seconds to the target."""

    eval_steps: list[int] = field(default_factory=list)
    metrics: list[float] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    diverged: bool = False

    @property
    def final(self) -> float:
        return self.metrics[-1] if self.metrics else float("nan")

    def best(self, higher_is_better: bool = True) -> float:
        if not self.metrics:
            return float("nan")
        return max(self.metrics) if higher_is_better else min(self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(
    task: Task,
    data: TaskData,
    schedule: Schedule,
    *,
    optimizer: str = "sgd",
    momentum: tuple[float, float] | None = None,
    epochs: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    evals_per_epoch: int = 1,
) -> RunResult:
    """Train a fresh model (initialised from ``seed``; batches drawn from ``seed`` too, so every
    schedule of a seed sees the same initialisation and data order) and evaluate it
    ``evals_per_epoch`` times per epoch."""
    epochs = epochs or task.epochs
    batch_size = batch_size or task.batch_size
    torch.manual_seed(seed)
    model = task.model()
    opt = make_optimizer(optimizer, model, float(schedule(0)))
    sched = Scheduler(opt, schedule, momentum=momentum, past_end="hold")
    per_epoch = task.steps_per_epoch(data, batch_size)
    if per_epoch < 1:
        raise ValueError(f"{task.name}: {data.n_train} training examples make no batch of {batch_size}.")
    total = per_epoch * epochs
    eval_at = {round(per_epoch * (k + 1) / evals_per_epoch) for k in range(evals_per_epoch * epochs)}
    stream = batches(data, batch_size, torch.Generator().manual_seed(seed))
    result = RunResult()
    model.train()
    running, count = 0.0, 0
    t0 = time.perf_counter()
    for step in range(1, total + 1):
        x, y = next(stream)
        loss = task.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        value = float(loss.detach())
        if value != value or value == float("inf"):
            result.diverged = True
            break
        running += value
        count += 1
        if step in eval_at:
            metric = task.evaluate(model, data)
            result.eval_steps.append(step)
            result.metrics.append(metric)
            result.train_losses.append(running / max(count, 1))
            running, count = 0.0, 0
            if result.steps_to_target is None and task.reached(metric):
                result.steps_to_target = step
                result.seconds_to_target = time.perf_counter() - t0
    result.steps = step
    result.seconds = time.perf_counter() - t0
    return result
