"""``mnist-keras``: the MNIST task trained by Keras 3, cyclr's schedules driving the optimizer
through :mod:`cyclr.keras` (its ``Schedule``, and its ``SGD``/``AdamW`` with a momentum or
``beta_1`` schedule).

Keras (and its backend) is imported only inside the methods: importing :mod:`cyclr.bench`
registers the task without loading Keras, and works where Keras is not installed.

The model is the torch task's CNN layer for layer (same widths, pooling and head), with torch's
initialisation and batch-norm constants, so the two frameworks start from equivalent models.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .tasks import MNIST, TaskData, register

if TYPE_CHECKING:
    from ..finder import RangeTestResult
    from .strategies import Plan
    from .train import RunResult

__all__ = ["MNISTKeras"]

#: the numpy arrays Keras trains on: NHWC float32 images and int64 labels (train, then test)
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _nhwc(x: Any) -> np.ndarray:
    """An NCHW torch tensor as an NHWC float32 array (no copy for channels-last memory)."""
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy(), dtype=np.float32)


def _share_threads() -> None:
    """Give TensorFlow the CPU threads the harness gave torch (its parallel workers split the
    cores with ``torch.set_num_threads``); settable only before TensorFlow's runtime starts."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf
    import torch

    threads = torch.get_num_threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime already runs (a later run in this process): keep its setting
        pass


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


@register
class MNISTKeras(MNIST):
    """MNIST and the 3-block CNN in Keras 3 (TensorFlow by default, any backend); the same data,
    budget, metric and target as ``mnist``."""

    name = "mnist-keras"
    description = "MNIST, 3-block CNN (14k parameters), Keras 3"
    framework = "keras"

    def __init__(self) -> None:
        # id(data) -> (data, its arrays); the data is kept so that its id cannot be reused
        self._arrays_cache: dict[int, tuple[TaskData, Arrays]] = {}

    # ------------------------------------------------------------------ data and model
    def arrays(self, data: TaskData) -> Arrays:
        """``data`` as NHWC numpy arrays, converted once per data object."""
        hit = self._arrays_cache.get(id(data))
        if hit is not None and hit[0] is data:
            return hit[1]
        arrays = (
            _nhwc(data.x_train),
            data.y_train.numpy().astype(np.int64),
            _nhwc(data.x_test),
            data.y_test.numpy().astype(np.int64),
        )
        self._arrays_cache = {id(data): (data, arrays)}  # one data set at a time: no growth
        return arrays

    def keras_model(self, seed: int) -> Any:
        """The CNN as a Keras model, initialised from ``seed``: torch's default initialisation
        (uniform, bound ``1/sqrt(fan_in)``) and its batch-norm momentum (0.1, Keras 0.9) and
        epsilon (1e-5), so the model matches ``mnist``'s."""
        import keras
        from keras import layers

        _share_threads()
        keras.utils.set_random_seed(seed)
        torch_init = keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform")  # kaiming_uniform(a=sqrt(5))
        widths = (self.width, 2 * self.width, 2 * self.width)
        inputs = keras.Input((28, 28, 1))
        x = inputs
        for i, width in enumerate(widths):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=torch_init)(x)
            x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
            x = layers.ReLU()(x)
            if i < 2:
                x = layers.MaxPooling2D(2)(x)
        x = layers.GlobalAveragePooling2D()(x)
        bound = 1 / math.sqrt(widths[-1])
        outputs = layers.Dense(
            10, kernel_initializer=torch_init, bias_initializer=keras.initializers.RandomUniform(-bound, bound)
        )(x)
        return keras.Model(inputs, outputs, name="mnist_cnn")

    def keras_optimizer(self, name: str, learning_rate: Any, momentum: tuple[float, float] | None = None) -> Any:
        """``mnist``'s optimizers in Keras: SGD (momentum 0.9, weight decay 5e-4) or AdamW
        (weight decay 1e-4, torch's epsilon 1e-8); ``momentum=(low, high)`` cycles the momentum
        (or ``beta_1``) opposite to a cyclr ``learning_rate`` schedule."""
        from .. import keras as ck

        if name == "sgd":
            return ck.SGD(learning_rate=learning_rate, momentum=momentum or 0.9, weight_decay=5e-4)
        if name == "adam":
            return ck.AdamW(learning_rate=learning_rate, beta_1=momentum or 0.9, weight_decay=1e-4, epsilon=1e-8)
        raise ValueError(f"unknown optimizer {name!r}; valid: sgd, adam.")

    def _compiled(self, seed: int, optimizer: Any) -> Any:
        import keras

        model = self.keras_model(seed)
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def keras_evaluate(self, model: Any, x_test: np.ndarray, y_test: np.ndarray, batch_size: int = 1000) -> float:
        """Test accuracy of a Keras model."""
        logits = model.predict(x_test, batch_size=batch_size, verbose=0)
        return float(np.mean(np.argmax(logits, axis=1) == y_test))

    # ------------------------------------------------------------------ framework hooks
    def range_test(self, data: TaskData, optimizer: str, seed: int, batch_size: int | None = None) -> RangeTestResult:
        """cyclr's Keras LR range test (fastai's defaults) on a fresh model of ``seed``, its
        batches in an order fixed by ``seed``."""
        from ..keras import lr_range_test

        x, y, _, _ = self.arrays(data)
        model = self._compiled(seed, self.keras_optimizer(optimizer, 1e-3))
        batches = _SeededEpochs(x, y, batch_size or self.batch_size, seed)
        return lr_range_test(model, batches, progress=False)

    def run(self, data: TaskData, plan: Plan, *, optimizer: str, epochs: int, seed: int, batch_size: int) -> RunResult:
        """Train one run under ``plan`` with ``model.fit``, evaluating like :func:`~.train.train`:
        the same evaluation steps, mean training loss since the previous evaluation, divergence
        check and LR/momentum trace. Batches: a fresh shuffle per epoch from ``seed``."""
        from .. import keras as ck
        from .train import RunResult, evaluation_steps

        if plan.schedule is None:
            raise ValueError(f"{self.name}: a Keras task runs cyclr schedules only (the peer recipe is torch-only).")
        x, y, x_test, y_test = self.arrays(data)
        per_epoch = self.steps_per_epoch(data, batch_size)
        if per_epoch < 1:
            raise ValueError(f"{self.name}: {data.n_train} training examples make no batch of {batch_size}.")
        total = per_epoch * epochs
        evals = self.evals_per_epoch
        eval_at = evaluation_steps(per_epoch, epochs, evals)
        stops = sorted(eval_at | {per_epoch * (e + 1) for e in range(epochs)})  # fit chunk ends
        opt = self.keras_optimizer(optimizer, ck.Schedule(plan.schedule), plan.momentum)
        model = self._compiled(seed, opt)
        rng = np.random.default_rng(seed)
        result = RunResult()
        loss_sum, loss_steps = 0.0, 0
        xe = ye = x  # this epoch's shuffled arrays
        t0 = time.perf_counter()
        step = 0
        for stop in stops:
            if step % per_epoch == 0:  # a new epoch: a fresh shuffle, the last partial batch dropped
                order = rng.permutation(len(x))[: per_epoch * batch_size]
                xe, ye = x[order], y[order]
            a, b = (step % per_epoch) * batch_size, ((stop - 1) % per_epoch + 1) * batch_size
            history = model.fit(xe[a:b], ye[a:b], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
            loss_sum += float(history.history["loss"][-1]) * (stop - step)
            loss_steps += stop - step
            step = stop
            if step in eval_at or step == total:
                mean = loss_sum / loss_steps
                loss_sum, loss_steps = 0.0, 0
                if not math.isfinite(mean):
                    result.diverged = True
                    break
                if step not in eval_at:
                    continue
                metric = self.keras_evaluate(model, x_test, y_test)
                if not result.record(step, metric, mean, time.perf_counter() - t0, self.reached(metric)):
                    break
        result.steps = step
        result.seconds = time.perf_counter() - t0
        # the trace: the schedules' values at about 200 update counts (what the optimizer used)
        t = np.arange(0, step, max(1, total // 200))
        result.trace_steps = [int(s) for s in t]
        result.lrs = [float(v) for v in np.asarray(plan.schedule(t), dtype=float)]
        if plan.momentum is None:
            result.momenta = [0.9] * len(t)
        else:
            low, high = plan.momentum
            result.momenta = [float(v) for v in np.asarray(plan.schedule.mirror(low, high)(t), dtype=float)]
        return result
