"""Hugging Face ``Trainer``: any cyclr schedule, or one from cyclr's range test, in one call.

Examples:
    ```python
    trainer = transformers.Trainer(model=model, args=args, train_dataset=train)
    cyclr.hf.attach(trainer, "range_test")  # or any schedule, e.g. cyclr.triangular2(...)
    trainer.train()
    ```

:func:`attach` builds the optimizer the Trainer would build from its ``TrainingArguments``
(``optim``, ``learning_rate``, ``weight_decay`` without decay on biases and norms, betas, eps),
reads the run's length the way the Trainer does (``max_steps``, or ``num_train_epochs`` over
the training data with ``gradient_accumulation_steps``), and gives the Trainer the optimizer and a
:class:`cyclr.torch.Scheduler` as if they were passed as ``optimizers=(optimizer, scheduler)``.
Checkpoints save the scheduler as plain data (``scheduler.pt`` loads with ``weights_only=True``);
``trainer.train(resume_from_checkpoint=...)`` continues it step for step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ._lazy import require
from ._validation import InvalidParameterError
from .finder import REPEATS
from .schedules import Schedule, from_config

require("torch", "torch", "cyclr.hf")
transformers = require("transformers", "hf", "cyclr.hf")
import torch  # noqa: E402

from .torch import (  # noqa: E402
    RANGE_TEST_KINDS,
    Scheduler,
    _checked_state,
    check_momentum_option,
    check_range_test_options,
    lr_range_test,
    momentum_cycle,
    scheduler_from_range_test,
)

__all__ = ["attach", "range_test", "training_steps"]

ScheduleSpec = Schedule | Mapping[str, Any] | Callable[[int], Schedule] | str


def training_steps(trainer: Any) -> tuple[int, int | None]:
    """``(total optimizer updates, updates per epoch)`` of ``trainer.train()``, by the
    Trainer's own rule (``set_initial_training_values``): ``max_steps`` when it is set, else
    ``ceil(num_train_epochs x updates per epoch)``. Updates per epoch is ``None`` when the data
    has no length (then ``max_steps`` must be set)."""
    args = trainer.args
    if trainer.train_dataset is None:
        if args.max_steps > 0:
            return int(args.max_steps), None
        raise ValueError("cyclr.hf: the Trainer has no train_dataset and max_steps is not set: the run has no length.")
    loader = trainer.get_train_dataloader()
    try:
        batches = len(loader)
    except TypeError:
        if args.max_steps > 0:
            return int(args.max_steps), None
        raise ValueError(
            "cyclr.hf: the training data has no length and max_steps is not set: the run has no length."
        ) from None
    if hasattr(trainer, "set_initial_training_values"):  # the Trainer's own rule (transformers >= 4.50)
        _, per_epoch, *_, max_steps = trainer.set_initial_training_values(args, loader)
        return int(max_steps), int(per_epoch)
    accumulation = args.gradient_accumulation_steps
    per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
    return (int(args.max_steps) if args.max_steps > 0 else math.ceil(args.num_train_epochs * per_epoch)), per_epoch


def _loss_step(trainer: Any) -> Callable[[torch.nn.Module, Any], torch.Tensor]:
    def step(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        out = trainer.compute_loss(model, batch)
        loss: torch.Tensor = out[0] if isinstance(out, tuple) else out
        return loss

    return step


def range_test(trainer: Any, **kwargs: Any) -> Any:
    """cyclr's LR range test on what ``trainer.train()`` would run: its model, its training data
    loader (collator included), ``compute_loss`` (so a custom Trainer's loss is the one swept),
    ``gradient_accumulation_steps`` and device, with the optimizer :func:`attach` builds (created
    now if the Trainer has none). The model and the optimizer are restored exactly afterwards.
    ``kwargs`` go to :func:`cyclr.torch.lr_range_test` (``num_steps``, ``start_lr``, ``end_lr``,
    ``repeats``...); three sweeps by default, as ``cyclr find`` runs (``repeats=1`` for one).
    Returns the :class:`~cyclr.finder.RangeTestResult`."""
    check_range_test_options(
        "cyclr.hf.range_test", kwargs, provided=("train_data", "step_fn", "accumulation_steps", "device")
    )
    if trainer.train_dataset is None:
        raise ValueError("cyclr.hf.range_test needs the Trainer's train_dataset.")
    optimizer = trainer.optimizer if trainer.optimizer is not None else trainer.create_optimizer()
    was_training = trainer.model.training
    try:
        result = lr_range_test(
            trainer.model,
            optimizer,
            None,
            trainer.get_train_dataloader(),
            step_fn=_loss_step(trainer),
            accumulation_steps=trainer.args.gradient_accumulation_steps,
            device=trainer.args.device,
            **{"progress": not trainer.args.disable_tqdm, "repeats": REPEATS, **kwargs},
        )
    finally:
        trainer.model.train(was_training)
    return result


def attach(
    trainer: Any,
    schedule: ScheduleSpec = "range_test",
    *,
    kind: str = "one_cycle",
    momentum: str | tuple[float, float] | None = "auto",
    resume_from_checkpoint: str | None = None,
    **range_test_kwargs: Any,
) -> Scheduler:
    """Give ``trainer`` a cyclr schedule: call before ``trainer.train()``.

    Args:
        schedule: ``'range_test'`` (run :func:`range_test`, then the ``kind`` schedule its result
            gives for the whole run: ``'one_cycle'``, ``'triangular'``, ``'triangular2'``); a
            :class:`~cyclr.Schedule` or its config, used as it is; or a function of the run's
            optimizer updates that builds one, e.g. ``lambda n: cyclr.one_cycle(3e-4, total_steps=n)``.
        momentum: ``'auto'`` cycles momentum (Adam's beta1) 0.95-0.85 against the LR when the
            optimizer has one; ``(low, high)`` sets the range; ``None`` leaves it alone.
        resume_from_checkpoint: the checkpoint folder ``trainer.train(resume_from_checkpoint=...)``
            will resume from: no range test runs; the saved scheduler carries the schedule and
            its step.
        range_test_kwargs: for :func:`range_test` (``num_steps``, ``start_lr``...).

    The schedule's values are absolute learning rates (``args.learning_rate`` is replaced; param
    groups keep their ratios). Warm-up follows Hugging Face's convention when you build it inside
    the run: ``lambda n: cyclr.warmup(cyclr.cosine(lr, n - w), steps=w)``. Returns the scheduler
    (``scheduler.range_test`` holds the range test's result).
    """
    if trainer.lr_scheduler is not None and not isinstance(trainer.lr_scheduler, Scheduler):
        raise ValueError(
            f"cyclr.hf.attach: the Trainer already has a scheduler ({type(trainer.lr_scheduler).__name__}); "
            "leave optimizers=(None, None) or pass only the optimizer."
        )
    if kind not in RANGE_TEST_KINDS:
        raise InvalidParameterError("cyclr.hf.attach", "kind", kind, f"one of {list(RANGE_TEST_KINDS)}")
    if (isinstance(schedule, str) and schedule != "range_test") or not (
        isinstance(schedule, (str, Schedule, Mapping)) or callable(schedule)
    ):
        allowed = "'range_test', a cyclr schedule, its config, or a function of the run's steps"
        raise InvalidParameterError("cyclr.hf.attach", "schedule", schedule, allowed)
    check_momentum_option("cyclr.hf.attach", momentum)
    if schedule == "range_test" and resume_from_checkpoint is None:
        check_range_test_options(
            "cyclr.hf.attach", range_test_kwargs, provided=("train_data", "step_fn", "accumulation_steps", "device")
        )
    optimizer = trainer.optimizer if trainer.optimizer is not None else trainer.create_optimizer()
    cycle = momentum_cycle(optimizer, momentum, "cyclr.hf.attach")
    if resume_from_checkpoint is not None:
        state = torch.load(f"{resume_from_checkpoint}/scheduler.pt", weights_only=True)
        lr = _checked_state(state, optimizer)[0]
        scheduler = Scheduler(optimizer, lr, past_end="hold")  # train() loads the saved step into it
    else:
        total, per_epoch = training_steps(trainer)
        if schedule == "range_test":
            result = range_test(trainer, **range_test_kwargs)
            epochs = total // per_epoch if per_epoch and total % per_epoch == 0 else None
            scheduler = scheduler_from_range_test(
                optimizer, result, kind=kind, total_steps=total, epochs=epochs, momentum=momentum
            )
        else:
            if range_test_kwargs:
                raise TypeError(f"cyclr.hf.attach: {sorted(range_test_kwargs)} apply only to schedule='range_test'.")
            if isinstance(schedule, (Schedule, Mapping)):
                built = from_config(schedule)
            else:
                built = schedule(total)  # type: ignore[operator]
                if not isinstance(built, Schedule):
                    raise TypeError(f"cyclr.hf.attach: the schedule function returned {type(built).__name__}.")
            scheduler = Scheduler(optimizer, built, momentum=cycle, past_end="hold")
    trainer.optimizer, trainer.lr_scheduler = optimizer, scheduler
    return scheduler


def __dir__() -> list[str]:
    """The public names only: `dir()` lists what `__all__` promises, not the helpers imported here."""
    return sorted(__all__)
