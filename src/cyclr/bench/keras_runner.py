"""The Keras 3 runner: ``model.fit`` under a run driver, with the same evaluation steps, loss
bookkeeping, divergence check and trace as the torch runner (one :class:`~.recorder.Recorder`).

A Keras task provides ``arrays(data)`` (NHWC train/test arrays), ``compiled(seed, optimizer)``,
``keras_optimizer(name, learning_rate)`` and ``keras_evaluate(model, x, y)``. Keras is imported
only inside the methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .driver import Driver
from .recorder import Recorder, RunResult
from .tasks import with_caveat

if TYPE_CHECKING:
    from ..finder import RangeTestResult

__all__ = ["KerasRunner"]


class _SeededEpochs:
    """Shuffled batches of arrays, one epoch per iteration, in an order fixed by ``seed`` (the
    range test's data; the last partial batch is dropped)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.rng.permutation(len(self.x))
        for i in range(0, len(self.x) - self.batch_size + 1, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield self.x[idx], self.y[idx]


def _driver_callback(driver: Driver, rec: Recorder, start: int) -> Any:
    """A Keras callback that makes the loop's per-update calls. Keras reports the running mean of
    the loss over the ``fit`` call; each update's own loss is recovered from it."""
    import keras

    class Drive(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.mean = 0.0

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            rec.before(start + batch)

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            mean = float((logs or {})["loss"])
            loss = (batch + 1) * mean - batch * self.mean if batch else mean
            self.mean = mean
            driver.observe(loss)
            driver.step()
            rec.loss(loss)

    return Drive()


class KerasRunner:
    """Trains a Keras task with ``model.fit``, one chunk of batches between evaluations."""

    name: ClassVar[str] = "keras"

    def run(self, task: Any, data: Any, driver: Driver, *, optimizer: str, epochs: int, seed: int) -> RunResult:
        batch_size = int(task.batch_size)
        x, y, x_test, y_test = task.arrays(data)
        per_epoch = task.steps_per_epoch(data, batch_size)
        if per_epoch < 1:
            raise ValueError(f"{task.name}: {data.n_train} training examples make no batch of {batch_size}.")
        opt = task.keras_optimizer(optimizer, driver.initial_lr)
        model = task.compiled(seed, opt)
        driver.attach(opt)
        rec = Recorder(
            driver, per_epoch=per_epoch, epochs=epochs, evals_per_epoch=task.evals_per_epoch, reached=task.reached
        )
        stops = sorted(rec.eval_at | {per_epoch * (e + 1) for e in range(epochs)})  # fit chunk ends
        rng = np.random.default_rng(seed)
        xe = ye = x  # this epoch's shuffled arrays
        step = 0
        for stop in stops:
            if step % per_epoch == 0:  # a new epoch: a fresh shuffle, the last partial batch dropped
                order = rng.permutation(len(x))[: per_epoch * batch_size]
                xe, ye = x[order], y[order]
            a, b = (step % per_epoch) * batch_size, ((stop - 1) % per_epoch + 1) * batch_size
            callback = _driver_callback(driver, rec, step)
            model.fit(xe[a:b], ye[a:b], batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
            step = stop
            if rec.after(step, lambda: task.keras_evaluate(model, x_test, y_test)):
                break
        return rec.finish(step)

    def range_test(self, task: Any, data: Any, optimizer: str, seed: int, **options: Any) -> RangeTestResult:
        """cyclr's Keras LR range test (fastai's defaults) on a fresh model of ``seed``, its
        batches in an order fixed by ``seed``."""
        from ..keras import lr_range_test

        x, y, _, _ = task.arrays(data)
        model = task.compiled(seed, task.keras_optimizer(optimizer, 1e-3))
        batches = _SeededEpochs(x, y, int(task.batch_size), seed)
        return with_caveat(task, lr_range_test(model, batches, **{"progress": False, **options}))
