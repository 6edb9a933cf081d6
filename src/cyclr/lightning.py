"""Lightning callbacks: cyclr's range test at fit start, and any cyclr schedule sized to the run.

Examples:
    ```python
    import lightning as L, cyclr.lightning
    trainer = L.Trainer(max_epochs=5, callbacks=[cyclr.lightning.RangeTest()])
    trainer.fit(module, train_loader)
    ```

:class:`RangeTest` runs :func:`cyclr.torch.lr_range_test` on the module's own ``training_step``
(the trainer's data, optimizer and gradient accumulation), puts the model and the optimizer
back exactly, and attaches the schedule its result gives for ``trainer.estimated_stepping_batches``
updates. :class:`CyclicSchedule` (and :class:`OneCycle`) attach a schedule you choose, sized the
same way. The attached scheduler is a :class:`cyclr.torch.Scheduler` stepped per update; it is
saved in Lightning's checkpoints, and resuming (``ckpt_path=...``) continues it step for step
without running the test again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._lazy import require
from ._validation import InvalidParameterError
from .finder import REPEATS
from .schedules import OneCycle as _OneCycleSchedule
from .schedules import Schedule, from_config

require("torch", "torch", "cyclr.lightning")
require("lightning", "lightning", "cyclr.lightning")
import torch  # noqa: E402
from lightning.pytorch import Callback  # noqa: E402
from lightning.pytorch.utilities.types import LRSchedulerConfig  # noqa: E402

from .torch import (  # noqa: E402
    RANGE_TEST_KINDS,
    Scheduler,
    check_momentum_option,
    check_range_test_options,
    lr_range_test,
    momentum_cycle,
    scheduler_from_range_test,
)

__all__ = ["CyclicSchedule", "OneCycle", "RangeTest"]

ScheduleSpec = Schedule | Mapping[str, Any] | Callable[[int], Schedule]


def _the_optimizer(trainer: Any, owner: str) -> torch.optim.Optimizer:
    optimizers = trainer.optimizers
    if len(optimizers) != 1:
        raise ValueError(f"{owner} drives one optimizer; configure_optimizers gave {len(optimizers)}.")
    optimizer = optimizers[0]
    # Lightning may wrap it (LightningOptimizer); the scheduler needs the torch optimizer itself
    return getattr(optimizer, "optimizer", optimizer)  # type: ignore[no-any-return]


def _attach(trainer: Any, scheduler: Scheduler, owner: str) -> None:
    """Make ``scheduler`` the run's only LR scheduler, stepped after every optimizer update.

    A scheduler from ``configure_optimizers`` would fight it over the same LR: that is refused.
    """
    others = [c.scheduler for c in trainer.lr_scheduler_configs if not isinstance(c.scheduler, Scheduler)]
    if others:
        names = ", ".join(type(s).__name__ for s in others)
        raise ValueError(
            f"{owner} sets the learning rate, but configure_optimizers also returned a scheduler ({names}). "
            "Return only the optimizer, or drop the callback."
        )
    trainer.strategy.lr_scheduler_configs = [LRSchedulerConfig(scheduler, interval="step", frequency=1, name="cyclr")]


def _total_steps(trainer: Any, owner: str) -> int:
    total = trainer.estimated_stepping_batches
    if not isinstance(total, int) and (not isinstance(total, float) or total == float("inf")):
        raise ValueError(
            f"{owner} sizes the schedule from trainer.estimated_stepping_batches, which is {total!r}: "
            "set max_steps or max_epochs (with a data loader that has a length)."
        )
    return int(total)


def _epochs(trainer: Any) -> int | None:
    max_epochs = trainer.max_epochs
    return max_epochs if trainer.max_steps in (-1, None) and max_epochs and max_epochs > 0 else None


class _Attaches(Callback):  # type: ignore[misc]
    """Shared: resume from a checkpoint (the scheduler's state comes back through Lightning)."""

    def __init__(self) -> None:
        self.scheduler: Scheduler | None = None
        self._saved: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        if self.scheduler is None:
            return {}
        return {"lr": [s.to_config() for s in self.scheduler.lr_schedules], **self._extra_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved = dict(state_dict) if state_dict else None

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _resume(self, trainer: Any, owner: str) -> bool:
        """On ``fit(ckpt_path=...)``: attach a scheduler with the saved schedule; Lightning then
        loads its step (``restore_training_state`` runs after ``on_fit_start``)."""
        if self._saved is None:
            return False
        optimizer = _the_optimizer(trainer, owner)
        self.scheduler = Scheduler(optimizer, [from_config(c) for c in self._saved["lr"]], past_end="hold")
        _attach(trainer, self.scheduler, owner)
        self._saved = None
        return True


class CyclicSchedule(_Attaches):
    """Attach a cyclr schedule to the run, sized from ``trainer.estimated_stepping_batches``.

    Args:
        schedule: a :class:`~cyclr.Schedule` or its config (used as it is), or a function of the
            run's optimizer updates that builds one, e.g. ``lambda n: cyclr.triangular2(1e-4,
            1e-2, step_size=n // 8)``.
        momentum: ``(low, high)`` cycles momentum (or Adam's beta1) opposite to the LR; ``'auto'``
            cycles 0.95-0.85 when the optimizer has momentum; ``None`` (default) leaves it alone.

    Set ``configure_optimizers`` to return just the optimizer; the callback adds the scheduler
    (interval ``'step'``). A schedule shorter than the run holds its last value.
    """

    def __init__(self, schedule: ScheduleSpec, momentum: str | tuple[float, float] | None = None) -> None:
        super().__init__()
        check_momentum_option(type(self).__name__, momentum)
        if not (isinstance(schedule, (Schedule, Mapping)) or callable(schedule)):
            allowed = "a cyclr schedule, its config, or a function total_steps -> schedule"
            raise InvalidParameterError("CyclicSchedule", "schedule", schedule, allowed)
        self.schedule = from_config(schedule) if isinstance(schedule, (Schedule, Mapping)) else schedule
        self.momentum = momentum

    def _build(self, total: int) -> Schedule:
        if isinstance(self.schedule, Schedule):
            return self.schedule
        built = self.schedule(total)
        if not isinstance(built, Schedule):
            raise TypeError(f"CyclicSchedule: the schedule function returned {type(built).__name__}, not a schedule.")
        return built

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        owner = type(self).__name__
        if self._resume(trainer, owner):
            return
        schedule = self._build(_total_steps(trainer, owner))
        optimizer = _the_optimizer(trainer, owner)
        cycle = momentum_cycle(optimizer, self.momentum, owner)
        self.scheduler = Scheduler(optimizer, schedule, momentum=cycle, past_end="hold")
        _attach(trainer, self.scheduler, owner)


class OneCycle(CyclicSchedule):
    """Smith's one-cycle over the whole run (``trainer.estimated_stepping_batches`` updates),
    with momentum cycled 0.95 -> 0.85 -> 0.95 (``momentum=None`` leaves it alone). Other keyword
    arguments are :class:`cyclr.OneCycle`'s (``pct_start``, ``div_factor``, ...)."""

    def __init__(self, max_lr: float, momentum: str | tuple[float, float] | None = (0.85, 0.95), **kwargs: Any) -> None:
        _OneCycleSchedule(max_lr=max_lr, total_steps=10_000, **kwargs)  # bad arguments fail here, not at fit time
        super().__init__(lambda total: _OneCycleSchedule(max_lr=max_lr, total_steps=max(total, 2), **kwargs), momentum)


def _loss_of(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) and isinstance(output.get("loss"), torch.Tensor):
        loss: torch.Tensor = output["loss"]
        return loss
    raise ValueError(
        "RangeTest: training_step must return the loss (a tensor, or a dict with 'loss') during the range test; "
        f"it returned {type(output).__name__}."
    )


class _TrainingStep:
    """The module's own ``training_step`` as the range test's ``step_fn``: batches go to the
    device through the trainer's strategy (the module's transfer hooks), the step runs in the
    precision plugin's context, and ``self.log`` is muted so the test leaves no metrics behind."""

    def __init__(self, trainer: Any, module: Any) -> None:
        self.trainer, self.module, self.index = trainer, module, 0

    def __call__(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        batch = self.trainer.strategy.batch_to_device(batch)
        with self.trainer.precision_plugin.train_step_context():
            loss = _loss_of(self.module.training_step(batch, self.index))
        self.index += 1
        return loss

    def reset(self) -> None:
        self.index = 0


class RangeTest(_Attaches):
    """Lightning's ``LearningRateFinder`` done cyclr's way: at fit start, run the range test on
    the module's ``training_step`` and attach the schedule its result gives.

    Args:
        kind: ``'one_cycle'`` (default), ``'triangular'`` or ``'triangular2'`` (Smith's bounds).
        momentum: ``'auto'`` cycles momentum 0.95-0.85 when the optimizer has it; ``None`` never.
        range_test: keyword arguments for :func:`cyclr.torch.lr_range_test` (``num_steps``,
            ``start_lr``, ``end_lr``, ``repeats``, ``val_data``, ``progress``...). Three sweeps by
            default, as ``cyclr find`` and the bench run (``repeats=1`` for one): their median is
            steadier, and sweeps that disagree give no LR instead of a wrong one.

    The optimizer is whatever ``configure_optimizers`` returns (only the optimizer: the callback
    adds the scheduler); its LR is replaced by the schedule's, and each param group keeps its
    ratio to the largest. The test uses the trainer's ``accumulate_grad_batches``; gradient
    clipping and AMP's grad scaler are not applied during the sweep. ``callback.result`` holds
    the :class:`~cyclr.finder.RangeTestResult` (``.plot()``, ``.suggestions``);
    ``callback.scheduler`` the attached scheduler. Manual optimization is not supported.
    """

    def __init__(
        self, kind: str = "one_cycle", momentum: str | tuple[float, float] | None = "auto", **range_test: Any
    ) -> None:
        super().__init__()
        if kind not in RANGE_TEST_KINDS:
            raise InvalidParameterError("RangeTest", "kind", kind, f"one of {list(RANGE_TEST_KINDS)}")
        check_range_test_options("RangeTest", range_test, provided=("train_data", "step_fn", "accumulation_steps"))
        check_momentum_option("RangeTest", momentum)
        self.kind, self.momentum, self.range_test = kind, momentum, range_test
        self.result: Any = None

    def _extra_state(self) -> dict[str, Any]:
        summary = {} if self.result is None else self.result.to_config()
        return {"range_test": {k: summary[k] for k in ("suggestion", "suggestions", "stop_reason") if k in summary}}

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        owner = "RangeTest"
        if self._resume(trainer, owner):
            return
        if not pl_module.automatic_optimization:
            raise ValueError("RangeTest needs automatic optimization (the test steps the optimizer itself).")
        total = _total_steps(trainer, owner)  # also sets up the training data
        optimizer = _the_optimizer(trainer, owner)
        step = _TrainingStep(trainer, pl_module)
        muted = {name: getattr(pl_module, name) for name in ("log", "log_dict")}
        for name in muted:
            setattr(pl_module, name, lambda *args, **kwargs: None)
        try:
            self.result = lr_range_test(
                pl_module,
                optimizer,
                None,
                trainer.train_dataloader,
                step_fn=step,
                accumulation_steps=trainer.accumulate_grad_batches,
                **{
                    "progress": trainer.is_global_zero and trainer.progress_bar_callback is not None,
                    "repeats": REPEATS,
                    **self.range_test,
                },
            )
        finally:
            for name in muted:
                delattr(pl_module, name)  # the bound methods come back from the class
        self.scheduler = scheduler_from_range_test(
            optimizer, self.result, kind=self.kind, total_steps=total, epochs=_epochs(trainer), momentum=self.momentum
        )
        _attach(trainer, self.scheduler, owner)


def __dir__() -> list[str]:
    """The public names only: `dir()` lists what `__all__` promises, not the helpers imported here."""
    return sorted(__all__)
