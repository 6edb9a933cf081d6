"""The JAX/optax loop of the LR range test: functional, so nothing of the caller's changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._steps import total_steps
from .._validation import IntRange, InvalidParameterError, check
from ._core import RangeTest, RangeTestResult, progress_bar, repeat_batches

__all__ = ["OPTIMIZERS", "lr_range_test"]


#: The optimizers a range test names by string, with optax's defaults (SGD: momentum 0.9, the
#: momentum a cyclical schedule starts from). Any other: pass ``lambda lr: optax.<name>(lr, ...)``.
OPTIMIZERS: dict[str, Callable[[Any], optax.GradientTransformation]] = {
    "sgd": lambda lr: optax.sgd(lr),
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
    "adam": lambda lr: optax.adam(lr),
    "adamw": lambda lr: optax.adamw(lr),
    "nadam": lambda lr: optax.nadam(lr),
    "rmsprop": lambda lr: optax.rmsprop(lr),
    "lion": lambda lr: optax.lion(lr),
}


def _optimizer(optimizer: Any) -> tuple[Callable[[Any], optax.GradientTransformation], str]:
    """The factory (``lr schedule -> transformation``) and the name the result records."""
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer], optimizer
    if callable(optimizer) and not isinstance(optimizer, optax.GradientTransformation):
        return optimizer, getattr(optimizer, "__name__", type(optimizer).__name__)
    allowed = f"one of {sorted(OPTIMIZERS)} or a factory such as `lambda lr: optax.adamw(lr, weight_decay=1e-4)`"
    if isinstance(optimizer, optax.GradientTransformation):
        allowed += " (a built transformation has its LR fixed already: pass the function that builds it)"
    raise InvalidParameterError("lr_range_test", "optimizer", optimizer, allowed)


def lr_range_test(
    loss_fn: Callable[[Any, Any], Any],
    params: Any,
    data: Iterable[Any],
    *,
    optimizer: str | Callable[[Any], optax.GradientTransformation],
    val_data: Any = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    smoothing: float = 0.98,
    diverge: float = 4.0,
    repeats: int = 1,
    steps_per_epoch: int | None = None,
    progress: bool = True,
) -> RangeTestResult:
    """Smith's LR range test for an optax train step.

    ``loss_fn(params, batch) -> scalar loss``; ``params`` is never modified (every sweep starts
    from it); ``data`` yields batches and is re-iterated when it runs out.

    ``optimizer`` is required, because the best LR depends on it: a name from
    :data:`OPTIMIZERS` (``'momentum'`` is SGD with momentum 0.9, ``'adam'``, ``'adamw'``...,
    with optax's defaults) or a factory that builds the optax transformation from a learning-rate
    schedule, e.g. ``lambda lr: optax.adamw(lr, weight_decay=1e-4)``. The sweep is that schedule,
    so one jit trace serves every step. ``result.info['optimizer']`` records which was used.
    ``val_data``, a batch, gives a validation loss per step.
    """
    make_tx, optimizer_name = _optimizer(optimizer)
    check("lr_range_test", "repeats", repeats, [IntRange(1)])
    sweep = RangeTest(start_lr, end_lr, num_steps, mode, smoothing, diverge)
    log_ratio = float(np.log(end_lr / start_lr))

    def lr_of(count: Any) -> Any:
        frac = jnp.clip(count / (num_steps - 1), 0.0, 1.0)
        return start_lr * jnp.exp(frac * log_ratio) if mode == "exp" else start_lr + frac * (end_lr - start_lr)

    tx = make_tx(lr_of)
    if not isinstance(tx, optax.GradientTransformation):
        raise InvalidParameterError(
            "lr_range_test",
            "optimizer",
            optimizer,
            f"a factory that returns an optax GradientTransformation (it returned {type(tx).__name__})",
        )

    @jax.jit
    def train_step(p: Any, state: Any, batch: Any) -> tuple[Any, Any, Any]:
        loss, grads = jax.value_and_grad(loss_fn)(p, batch)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    evaluate = jax.jit(loss_fn)
    batches = repeat_batches(data)
    if steps_per_epoch is None and isinstance(data, Sized) and len(data) > 0:
        steps_per_epoch = total_steps(1, len(data))  # the same rule as cyclr.total_steps everywhere
    with progress_bar(progress, repeats * num_steps) as update:
        for _ in range(repeats):
            p, state = params, tx.init(params)
            sweep.begin()
            for i in range(num_steps):
                p, state, loss = train_step(p, state, next(batches))
                val = float(evaluate(p, val_data)) if val_data is not None else None
                stop = sweep.record(sweep.lr(i), float(loss), val)
                update(1)
                if stop:
                    update(0, skipped=num_steps - i - 1)
                    break
    total = sum(len(c.lrs) for c in sweep.curves)
    info: dict[str, Any] = {
        "framework": "jax",
        "optimizer": optimizer_name,
        "seconds_per_step": sum(c.seconds for c in sweep.curves) / max(total, 1),
    }
    if steps_per_epoch:
        info["steps_per_epoch"] = steps_per_epoch
    return sweep.result(**info)
