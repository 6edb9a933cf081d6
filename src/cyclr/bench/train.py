"""The supervised PyTorch runner: one training run of a :class:`~.tasks.Task` under a run driver,
and the task's LR range test."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .driver import Driver
from .recorder import Recorder, RunResult, evaluation_steps
from .tasks import OPTIMIZERS, EpochBatches, Task, TaskData, batches, make_optimizer, with_caveat

if TYPE_CHECKING:
    from ..finder import RangeTestResult

__all__ = ["OPTIMIZERS", "RunResult", "TorchRunner", "evaluation_steps", "make_optimizer", "train"]


def train(
    task: Task,
    data: TaskData,
    driver: Driver,
    *,
    optimizer: str = "sgd",
    epochs: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    evals_per_epoch: int | None = None,
    model: torch.nn.Module | None = None,
    trace_points: int = 200,
) -> RunResult:
    """Train a fresh model (initialised from ``seed``; batches drawn from ``seed`` too, so every
    driver of a seed sees the same initialisation and data order) and evaluate it
    ``evals_per_epoch`` times per epoch (the task's own number by default; 0: never).

    The loop does nothing per step beyond the training step, the driver and the recorder."""
    epochs = epochs or task.epochs
    batch_size = batch_size or task.batch_size or 1
    evals = task.evals_per_epoch if evals_per_epoch is None else evals_per_epoch
    torch.manual_seed(seed)
    model = model if model is not None else task.model()
    groups = task.param_groups(model)
    opt = driver.make_optimizer(lambda lr: task.make_optimizer(optimizer, groups, lr))
    driver.attach(opt)
    per_epoch = task.steps_per_epoch(data, batch_size)
    if per_epoch < 1:
        raise ValueError(f"{task.name}: {data.n_train} training examples make no batch of {batch_size}.")
    rec = Recorder(
        driver,
        per_epoch=per_epoch,
        epochs=epochs,
        evals_per_epoch=evals,
        reached=task.reached,
        trace_points=trace_points,
    )
    stream = batches(data, batch_size, torch.Generator().manual_seed(seed))

    def refresh() -> None:
        batchnorm_refresh(model, data, batch_size, seed)

    model.train()
    step = 0
    for step in range(1, rec.total + 1):
        rec.before(step - 1)
        x, y = next(stream)
        loss = task.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if task.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), task.grad_clip)
        opt.step()
        driver.observe(loss.detach())
        driver.step()
        rec.loss(loss)
        if rec.after(step, lambda: driver.evaluate(lambda: task.evaluate(model, data), refresh)):
            break
    result = rec.finish(step)
    if not result.diverged:
        final: dict[str, float] = {}

        def metrics() -> float:
            final.update(task.final_metrics(model, data))
            return 0.0

        driver.evaluate(metrics, refresh)
        result.extra = final
    return result


def batchnorm_refresh(model: torch.nn.Module, data: TaskData, batch_size: int, seed: int, n: int = 50) -> None:
    """Re-estimate a model's BatchNorm statistics from ``n`` training batches (in train mode, no
    gradients), as Schedule-Free prescribes before evaluating its averaged weights. The batches
    come from their own generator, so the run's data order is untouched."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training, momenta = model.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the n batches
    stream = batches(data, batch_size, torch.Generator().manual_seed(seed + 1))
    model.train()
    with torch.no_grad():
        for _ in range(n):
            x, _y = next(stream)
            model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


class TorchRunner:
    """Trains a supervised torch :class:`~.tasks.Task`."""

    name: ClassVar[str] = "torch"

    def run(self, task: Any, data: Any, driver: Driver, *, optimizer: str, epochs: int, seed: int) -> RunResult:
        return train(task, data, driver, optimizer=optimizer, epochs=epochs, seed=seed, batch_size=task.batch_size)

    def range_test(self, task: Any, data: Any, optimizer: str, seed: int, **options: Any) -> RangeTestResult:
        """cyclr's LR range test on a fresh model of ``seed`` (fastai's defaults unless ``options``
        say otherwise: ``start_lr``, ``end_lr``, ``num_steps``, ``repeats``, ``progress``)."""
        from ..finder._torch import lr_range_test

        torch.manual_seed(seed)
        model = task.model()
        opt = task.make_optimizer(optimizer, task.param_groups(model), 1e-3)
        loader = EpochBatches(data, task.batch_size, torch.Generator().manual_seed(seed))
        return with_caveat(task, lr_range_test(model, opt, task.loss, loader, **{"progress": False, **options}))
