"""The Keras 3 loop of the LR range test (TensorFlow, JAX and torch backends)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from .._steps import total_steps
from .._validation import IntRange, check
from ._core import RangeTest, RangeTestResult, progress_bar, repeat_batches

__all__ = ["lr_range_test"]


class _Sweep(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """The sweep as a schedule of the optimizer's own step count, so that it is evaluated inside
    the compiled train step on every backend (a per-batch assignment from outside would be stale
    on the JAX backend, whose optimizer state is synced only between calls)."""

    def __init__(self, test: RangeTest, first_step: int) -> None:
        super().__init__()
        self.test, self.first_step = test, first_step

    def __call__(self, step: Any) -> Any:
        ops = keras.ops
        i = ops.cast(step, "float32") - float(self.first_step)
        frac = ops.clip(i / float(self.test.num_steps - 1), 0.0, 1.0)
        t = self.test
        if t.mode == "exp":
            return t.start_lr * ops.exp(frac * float(np.log(t.end_lr / t.start_lr)))
        return t.start_lr + frac * (t.end_lr - t.start_lr)

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - never saved
        raise NotImplementedError("the range test's sweep is temporary and is not saved")


class _State:
    """Every model and optimizer variable (weights, BatchNorm statistics, seed-generator states,
    slots, the step count), the optimizer's LR object, and the NumPy/Python RNGs."""

    def __init__(self, model: Any) -> None:
        self.model, self.optimizer = model, model.optimizer
        self.lr = self.optimizer._learning_rate
        self.model_values = [np.array(v.numpy(), copy=True) for v in model.variables]
        self.opt_values = [np.array(v.numpy(), copy=True) for v in self.optimizer.variables]
        self.rng = (np.random.get_state(), random.getstate())

    def restore(self) -> None:
        for v, value in zip(self.model.variables, self.model_values):
            v.assign(value)
        for v, value in zip(self.optimizer.variables, self.opt_values):
            v.assign(value)
        self.optimizer._learning_rate = self.lr
        self.model.train_function = None  # traced with the sweep: trace again on the next fit
        self.model.reset_metrics()
        np.random.set_state(self.rng[0])
        random.setstate(self.rng[1])


def _batches(x: Any, y: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    """Shuffled batches of arrays, repeating; or the batches of a dataset / iterable, repeating."""
    if isinstance(x, np.ndarray) or (
        hasattr(x, "shape") and hasattr(x, "__getitem__") and not hasattr(x, "element_spec")
    ):
        n = len(x)
        rng = np.random.default_rng(0)
        while True:
            order = rng.permutation(n)
            for i in range(0, n - batch_size + 1, batch_size):
                idx = order[i : i + batch_size]
                yield x[idx], (None if y is None else y[idx])
    else:
        for batch in repeat_batches(x):
            yield (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)


def lr_range_test(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    batch_size: int = 32,
    validation_data: tuple[Any, Any] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    smoothing: float = 0.98,
    diverge: float = 4.0,
    repeats: int = 1,
    progress: bool = True,
) -> RangeTestResult:
    """Smith's LR range test for a compiled Keras model; every variable is restored afterwards.

    ``x``/``y`` are arrays (shuffled into batches of ``batch_size``) or ``x`` is a dataset or
    iterable of ``(inputs, targets)`` batches. The model must be compiled with its optimizer and
    loss. The sweep replaces the optimizer's learning rate for the test only; the model's own
    schedule and all its state come back afterwards, also after divergence, NaN, an exception or
    Ctrl-C. ``validation_data=(x_val, y_val)`` evaluates the validation loss after every step.
    """
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise ValueError("lr_range_test: compile the model first (model.compile(optimizer=..., loss=...)).")
    check("lr_range_test", "batch_size", batch_size, [IntRange(1)])
    check("lr_range_test", "repeats", repeats, [IntRange(1)])
    sweep = RangeTest(start_lr, end_lr, num_steps, mode, smoothing, diverge)
    batches = _batches(x, y, batch_size)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    state = _State(model)
    # Keras' fit runs ceil(len(x) / batch_size) updates an epoch: the schedule must cover them all
    steps_per_epoch = None
    if hasattr(x, "__len__") and len(x) > 0:
        # arrays: ceil(len / batch_size) batches; a dataset or PyDataset: its length in batches
        steps_per_epoch = (
            total_steps(1, dataset_size=len(x), batch_size=batch_size) if y is not None else total_steps(1, len(x))
        )
    try:
        with progress_bar(progress, repeats * num_steps) as update:
            for _ in range(repeats):
                state.restore()
                model.optimizer._learning_rate = _Sweep(sweep, int(np.asarray(model.optimizer.iterations)))
                model.train_function = None
                sweep.begin()
                for i in range(num_steps):
                    xb, yb = next(batches)
                    model.reset_metrics()
                    logs = model.train_on_batch(xb, yb, return_dict=True)
                    val = None
                    if validation_data is not None:
                        val = float(
                            model.evaluate(*validation_data, batch_size=batch_size, verbose=0, return_dict=True)["loss"]
                        )
                    stop = sweep.record(sweep.lr(i), float(logs["loss"]), val)
                    update(1)
                    if stop:
                        update(0, skipped=num_steps - i - 1)
                        break
    finally:
        state.restore()
    info: dict[str, Any] = {"framework": "keras", "backend": keras.backend.backend()}
    if steps_per_epoch:
        info["steps_per_epoch"] = steps_per_epoch
    total = sum(len(c.lrs) for c in sweep.curves)
    info["seconds_per_step"] = sum(c.seconds for c in sweep.curves) / max(total, 1)
    return sweep.result(**info)
