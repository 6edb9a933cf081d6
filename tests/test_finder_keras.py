"""The Keras range test: the sweep inside the compiled step, every variable restored (run on the
TensorFlow, JAX and torch backends by `make test`)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

import cyclr
import cyclr.keras as ck
from cyclr.finder import NoDescentError


def _data(n: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype("float32")
    y = (x @ rng.standard_normal((8, 1)) + 0.1 * rng.standard_normal((n, 1))).astype("float32")
    return x, y


def _model(lr: object) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9), loss="mse")
    return model


def _values(variables: list[keras.Variable]) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v), copy=True) for v in variables]


@pytest.mark.parametrize("lr", [0.01, ck.Schedule(cyclr.one_cycle(0.05, 500))], ids=["float", "schedule"])
def test_restores_every_variable_and_the_schedule(lr: object) -> None:
    x, y = _data()
    model = _model(lr)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # optimizer slots and BN statistics exist
    lr_object = model.optimizer._learning_rate
    before, opt_before = _values(model.variables), _values(model.optimizer.variables)
    result = ck.lr_range_test(model, x, y, batch_size=64, num_steps=40, progress=False)
    assert result.steps <= 40 and len(result.lrs) == len(result.losses) == len(result.smoothed)
    assert result.lrs[0] == pytest.approx(1e-7) and result.lrs[1] > result.lrs[0]
    for a, b in zip(before, _values(model.variables)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(opt_before, _values(model.optimizer.variables)):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer._learning_rate is lr_object
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # trains on with its own LR
    assert np.isfinite(history.history["loss"][0])


def test_sweep_is_applied_and_finds_the_descent() -> None:
    x, y = _data()
    model = _model(0.01)
    result = ck.lr_range_test(model, x, y, batch_size=64, progress=False)
    lo, hi = result.bounds
    assert 1e-5 < lo < hi < 10
    assert result.stop_reason.startswith(("diverged", "completed", "non-finite"))
    assert result.info["steps_per_epoch"] == 2048 // 64
    schedule = result.schedule("one_cycle", epochs=3)
    assert isinstance(schedule, cyclr.OneCycle) and schedule.total_steps == 3 * 32


def test_restores_after_an_exception() -> None:
    x, y = _data()
    model = _model(0.01)
    before = _values(model.variables)

    def batches():  # a dataset that breaks after 5 batches
        for i in range(5):
            yield x[i * 64 : (i + 1) * 64], y[i * 64 : (i + 1) * 64]
        raise RuntimeError("data source failed")

    with pytest.raises(RuntimeError, match="data source failed"):
        ck.lr_range_test(model, batches(), num_steps=20, progress=False)
    for a, b in zip(before, _values(model.variables)):
        np.testing.assert_array_equal(a, b)


def test_model_with_nothing_to_learn_reports_no_descent() -> None:
    x, _ = _data()
    y = np.random.default_rng(1).standard_normal((len(x), 1)).astype("float32")  # targets unrelated to x
    model = _model(0.01)
    model.fit(x, y, batch_size=64, epochs=8, verbose=0)  # already predicts their mean
    result = ck.lr_range_test(model, x, y, batch_size=64, start_lr=1e-3, num_steps=40, progress=False)
    with pytest.raises(NoDescentError, match="does not fall"):
        _ = result.suggestions


def test_needs_a_compiled_model() -> None:
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="compile the model first"):
        ck.lr_range_test(model, *_data(64), progress=False)


@pytest.mark.parametrize(("rows", "batch", "epochs"), [(455, 32, 10), (353, 64, 5)])
def test_the_proposed_schedule_covers_every_update_keras_runs(rows: int, batch: int, epochs: int) -> None:
    """Issue 11: ``schedule("one_cycle", epochs=10)`` counted ``len(x) // batch_size`` steps per
    epoch while Keras runs ``ceil``: 140 scheduled against 150 run, the last 11 at the floor, with
    no warning. Now the schedule covers every update, and LRLogger warns when one does not."""
    import warnings

    x, y = _data(rows)
    model = _model(0.01)
    result = ck.lr_range_test(model, x, y, batch_size=batch, start_lr=1e-5, end_lr=1.0, num_steps=60, progress=False)
    per_epoch = -(-rows // batch)
    assert result.info["steps_per_epoch"] == per_epoch == cyclr.total_steps(1, dataset_size=rows, batch_size=batch)
    schedule = result.schedule("one_cycle", epochs=epochs)
    assert schedule.total_steps == per_epoch * epochs
    model.compile(optimizer=ck.SGD(ck.Schedule(schedule), momentum=0.9), loss="mse")
    logger = ck.LRLogger()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[logger])
    assert not [w for w in caught if "past the end" in str(w.message)]  # the schedule covers the run
    assert len(logger.history["lr"]) == per_epoch * epochs
    assert logger.history["lr"][-1] == pytest.approx(schedule(per_epoch * epochs - 1), rel=1e-5)

    short = cyclr.one_cycle(0.05, total_steps=(rows // batch) * epochs)  # the old floor count
    model.compile(optimizer=keras.optimizers.SGD(ck.Schedule(short)), loss="mse")
    with pytest.warns(UserWarning, match=r"plans \d+ updates, past the end of the learning-rate schedule"):
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[ck.LRLogger()])
