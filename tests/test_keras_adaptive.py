"""The adaptive controller in Keras 3 (``cyclr.keras.AdaptiveSchedule`` + ``AdaptiveCallback``), on
whichever backend ``KERAS_BACKEND`` selects (CI runs it on TensorFlow, JAX and torch): the LR each
compiled update applies is the controller's for the batch losses it was fed, momentum mirrors the
level, and the state saves and loads with the model."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import cyclr  # noqa: E402
import cyclr.keras as ck  # noqa: E402
from cyclr._validation import InvalidParameterError  # noqa: E402


class Weights(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        self.values.append(float(np.asarray(self.model.layers[0].kernel.numpy()).ravel()[0]))


def test_each_compiled_update_applies_the_controllers_lr() -> None:
    """One weight, ``w -> w - lr * 2 (w - 1)`` on x = y = 1 (MSE, plain SGD): the LR every update
    applied is read back from the weights, and equals the controller's replayed on the losses
    the callback fed it; the logger records the same values."""
    keras.utils.set_random_seed(0)
    x = np.ones((64, 1), "float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    ctl = cyclr.adaptive(total_steps=40, max_lr=0.02)
    model.compile(ck.SGD(learning_rate=ctl), "mse")
    feed, weights, log = ck.AdaptiveCallback(), Weights(), ck.LRLogger()
    model.fit(x, x, batch_size=8, epochs=5, verbose=0, shuffle=False, callbacks=[feed, weights, log])
    w = [0.0, *weights.values]
    applied = [(w[i] - w[i + 1]) / (2 * (w[i] - 1)) for i in range(40)]
    state, want = ctl.init(), []
    for loss in feed.losses:
        want.append(ctl.values(state)[0])
        state = ctl.update(state, loss)
    assert len(feed.losses) == 40
    np.testing.assert_allclose(applied, want, rtol=2e-3)  # float32 weights
    np.testing.assert_allclose(log.history["lr"], want, rtol=1e-5)
    assert max(want) > 3 * min(want)  # it cycles


def test_momentum_mirrors_the_level_and_the_state_saves_with_the_model(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 4)).astype("float32")
    y = (x @ np.array([1.0, 2.0, 3.0, 4.0], "float32"))[:, None]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(ck.SGD(learning_rate=cyclr.adaptive(total_steps=64, max_lr=0.05), momentum=(0.85, 0.95)), "mse")
    log, feed = ck.LRLogger(), ck.AdaptiveCallback()
    model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[feed, log])
    schedule = model.optimizer._learning_rate
    ctl, replay = schedule.controller, schedule.controller.init()
    levels = []
    for loss in feed.losses:
        levels.append(ctl.values(replay)[1])
        replay = ctl.update(replay, loss)
    np.testing.assert_allclose(log.history["momentum"], 0.95 - 0.1 * np.asarray(levels), rtol=1e-5)
    assert np.ptp(log.history["momentum"]) > 0.05  # it moves
    state = schedule.state()
    floor, peak = state["floor"], state["peak"]
    assert state["step"] == 32
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer._learning_rate, ck.AdaptiveSchedule)
    assert loaded.optimizer._learning_rate.state() == pytest.approx(state)
    assert loaded.optimizer.momentum_schedule.to_config() == [0.85, 0.95]
    assert (floor, peak) == (state["floor"], state["peak"])
    # training resumes from the loaded state: both models continue the same, batch for batch
    more = [ck.AdaptiveCallback(), ck.AdaptiveCallback()]
    for m, cb in zip((model, loaded), more):
        m.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False, callbacks=[cb])
    np.testing.assert_allclose(more[1].losses, more[0].losses, rtol=1e-5)
    resumed = loaded.optimizer._learning_rate.state()
    assert resumed == pytest.approx(schedule.state(), rel=1e-5) and resumed["step"] == 40


def test_clear_errors() -> None:
    with pytest.raises(InvalidParameterError, match="max_lr"):
        ck.AdaptiveSchedule(cyclr.adaptive(total_steps=10))
    with pytest.raises(InvalidParameterError, match="momentum"):
        ck.SGD(learning_rate=cyclr.adaptive(total_steps=10, max_lr=0.1), momentum=(0.9, 1.5))
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    with pytest.raises(TypeError, match="AdaptiveSchedule"):
        model.fit(np.ones((4, 1)), np.ones((4, 1)), verbose=0, callbacks=[ck.AdaptiveCallback()])
