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
from typing import Any

import numpy as np

from .tasks import MNIST, TaskData, register

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


@register
class MNISTKeras(MNIST):
    """MNIST and the 3-block CNN in Keras 3 (TensorFlow by default, any backend); the same data,
    budget, metric and target as ``mnist``."""

    name = "mnist-keras"
    description = "MNIST, 3-block CNN (14k parameters), Keras 3"
    framework = "keras"
    runner = "keras"

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

    def compiled(self, seed: int, optimizer: Any) -> Any:
        """A fresh model of ``seed``, compiled with ``optimizer`` and the task's loss."""
        import keras

        model = self.keras_model(seed)
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def keras_evaluate(self, model: Any, x_test: np.ndarray, y_test: np.ndarray, batch_size: int = 1000) -> float:
        """Test accuracy of a Keras model."""
        logits = model.predict(x_test, batch_size=batch_size, verbose=0)
        return float(np.mean(np.argmax(logits, axis=1) == y_test))
