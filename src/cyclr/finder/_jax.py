"""The JAX/optax loop of the LR range test: functional, so nothing of the caller's changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._steps import total_steps
from .._validation import IntRange, check
from ._core import RangeTest, RangeTestResult, progress_bar, repeat_batches

__all__ = ["lr_range_test"]


def _sgd_momentum(learning_rate: Any) -> optax.GradientTransformation:
    return optax.sgd(learning_rate, momentum=0.9)


def lr_range_test(
    loss_fn: Callable[[Any, Any], Any],
    params: Any,
    data: Iterable[Any],
    *,
    optimizer: Callable[[Any], optax.GradientTransformation] = _sgd_momentum,
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
    from it); ``data`` yields batches and is re-iterated when it runs out. ``optimizer`` builds
    the optax transformation from a learning-rate schedule (default: SGD with momentum 0.9;
    e.g. ``lambda lr: optax.adamw(lr, weight_decay=1e-4)``): the sweep is that schedule, so one
    jit trace serves every step. ``val_data``, a batch, gives a validation loss per step.
    """
    check("lr_range_test", "repeats", repeats, [IntRange(1)])
    sweep = RangeTest(start_lr, end_lr, num_steps, mode, smoothing, diverge)
    log_ratio = float(np.log(end_lr / start_lr))

    def lr_of(count: Any) -> Any:
        frac = jnp.clip(count / (num_steps - 1), 0.0, 1.0)
        return start_lr * jnp.exp(frac * log_ratio) if mode == "exp" else start_lr + frac * (end_lr - start_lr)

    tx = optimizer(lr_of)

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
        "seconds_per_step": sum(c.seconds for c in sweep.curves) / max(total, 1),
    }
    if steps_per_epoch:
        info["steps_per_epoch"] = steps_per_epoch
    return sweep.result(**info)
