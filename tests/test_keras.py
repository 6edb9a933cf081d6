"""The Keras 3 adapter (``cyclr.keras``) on whichever backend ``KERAS_BACKEND`` selects.

CI runs this file three times (``KERAS_BACKEND=tensorflow|jax|torch``); backend-specific checks
(``tf.function``/XLA, ``jax.jit``, TensorBoard) are skipped elsewhere with a reason.

What is checked, with real values:

1. ``cyclr.keras.Schedule`` equals the NumPy (float64) schedule at every step, eagerly and compiled
   (``tf.function``, XLA, ``jax.jit``), traced once for many steps.
2. The TensorFlow Addons classes equal TFA's formula written out here in NumPy.
3. Serialization: ``get_config``/``from_config``, ``keras.optimizers.schedules.serialize``, and
   ``model.save`` loaded in a fresh process without ``custom_objects``.
4. Cyclical momentum: the momentum/``beta_1`` actually used by each update, read back from the
   optimizer's slot variables; constant schedules reproduce Keras' own optimizers.
5. ``LRLogger``: per-batch values, ``History``, TensorBoard scalars.
6. Parity with Keras' ``CosineDecay`` (with and without warm-up) and ``CosineDecayRestarts``.
7. The seed document's three Keras examples in ``examples/``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import inspect
import json
import math
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

keras = pytest.importorskip("keras")

import cyclr  # noqa: E402
import cyclr.keras as ck  # noqa: E402
from conftest import n_examples  # noqa: E402

K = keras.ops
BACKEND = keras.backend.backend()
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "examples"

only_tf = pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function / XLA / TensorBoard: TensorFlow backend only")
only_jax = pytest.mark.skipif(BACKEND != "jax", reason="jax.jit: JAX backend only")

RTOL = 1e-6  # Keras evaluates in float32; the reference is NumPy float64


def to_np(x: object) -> np.ndarray:
    """A tensor, variable or number as float64 NumPy (without ``np.array(tensor)``, which warns
    about the ``copy`` keyword with NumPy 2 on every backend)."""
    if isinstance(x, keras.Variable):
        x = x.value
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu()
    if hasattr(x, "numpy"):  # torch, TensorFlow
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


def assert_close(got: object, want: object, peak: float, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=rtol * peak)


# ---------------------------------------------------------------------------------------- 1. Schedule
N = 3000
STEPS = np.arange(N)
#: step values for compiled scalar calls: boundaries of the cases below plus a spread
SCALAR_STEPS = sorted({0, 1, 2, 99, 100, 101, 149, 150, 199, 200, 250, 299, 300, 499, 500, 501, 899, 900, 1499, 2999})

SCHEDULES: dict[str, cyclr.Schedule] = {
    "one_cycle": cyclr.one_cycle(max_lr=0.1, total_steps=N),
    "one_cycle-3phase-linear": cyclr.one_cycle(max_lr=0.1, total_steps=N, three_phase=True, anneal="linear"),
    "triangular": cyclr.triangular(base_lr=1e-4, max_lr=1e-2, step_size=250),
    "triangular2": cyclr.triangular2(base_lr=1e-4, max_lr=1e-2, step_size=200, step_size_down=300),
    "exp_range": cyclr.exp_range(base_lr=1e-4, max_lr=1e-2, step_size=250, gamma=0.999),
    "sgdr-mult2": cyclr.sgdr(max_lr=0.1, period=100, min_lr=1e-3, period_mult=2),
    "sgdr-mult2-decay": cyclr.sgdr(max_lr=0.1, period=50, min_lr=1e-3, period_mult=2, decay=0.8),
    "warmup-cosine": cyclr.warmup(cyclr.cosine(max_lr=0.1, total_steps=2500, min_lr=1e-3), steps=500, start_lr=1e-4),
    "cyclic-sine-decay": cyclr.cyclic(base_lr=1e-3, max_lr=1e-2, step_size=150, shape="sine", decay=0.9),
    "cyclic-float-step": cyclr.cyclic(base_lr=1e-3, max_lr=1e-2, step_size=37.5, step_size_down=62.25),
    "mirror-one_cycle": cyclr.one_cycle(max_lr=0.1, total_steps=N).mirror(0.85, 0.95),
}


def _peak(s: cyclr.Schedule) -> float:
    return max(s.bounds)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_numpy_eager(name: str) -> None:
    s = SCHEDULES[name]
    lr = ck.Schedule(s)
    want = s(STEPS)
    assert want.dtype == np.float64
    assert_close(to_np(lr(STEPS)), want, _peak(s))
    # the optimizer calls it with one scalar step at a time (Python int or the iterations variable)
    for t in (0, 1, 150, 500, 2999):
        assert_close(to_np(lr(t)), s(t), _peak(s))
    # a wrong schedule would not pass: neighbouring steps differ by more than the tolerance
    assert np.max(np.abs(np.diff(want))) > 10 * RTOL * _peak(s)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["tf.function", "xla"])
@pytest.mark.parametrize("name", list(SCHEDULES))
@only_tf
def test_schedule_in_tf_function(name: str, jit_compile: bool) -> None:
    import tensorflow as tf

    s = SCHEDULES[name]
    lr = ck.Schedule(s)
    traces: list[object] = []

    @tf.function(jit_compile=jit_compile)
    def at(step: tf.Tensor) -> tf.Tensor:
        traces.append(step)  # Python side effect: runs once per trace
        return lr(step)

    got = [float(at(tf.constant(t, dtype=tf.int64))) for t in SCALAR_STEPS]
    assert len(traces) == 1, f"retraced {len(traces)} times for {len(SCALAR_STEPS)} step values"
    assert_close(got, s(np.array(SCALAR_STEPS)), _peak(s))

    vector = tf.function(lambda t: lr(t), jit_compile=jit_compile)
    assert_close(vector(tf.constant(STEPS, dtype=tf.int64)).numpy(), s(STEPS), _peak(s))


@pytest.mark.parametrize("name", list(SCHEDULES))
@only_jax
def test_schedule_in_jax_jit(name: str) -> None:
    import jax
    import jax.numpy as jnp

    s = SCHEDULES[name]
    lr = ck.Schedule(s)
    traces: list[object] = []

    @jax.jit
    def at(step: jax.Array) -> jax.Array:
        traces.append(step)
        return lr(step)

    got = [float(at(jnp.asarray(t, dtype=jnp.int32))) for t in SCALAR_STEPS]
    assert len(traces) == 1, f"retraced {len(traces)} times for {len(SCALAR_STEPS)} step values"
    assert_close(got, s(np.array(SCALAR_STEPS)), _peak(s))
    assert_close(np.asarray(jax.jit(lr)(jnp.asarray(STEPS, dtype=jnp.int32))), s(STEPS), _peak(s))


#: schedules whose cycle position is exact integer arithmetic (or snapped), so float32 keeps them
#: accurate at any step
LARGE_STEP_CASES = ["triangular", "triangular2", "exp_range", "sgdr-mult2", "cyclic-sine-decay", "one_cycle"]


@pytest.mark.parametrize("name", LARGE_STEP_CASES)
def test_schedule_near_int32_limit(name: str) -> None:
    """JAX and torch count optimizer updates in int32: values stay right up to 2**31 - 1."""
    s = SCHEDULES[name]
    steps = np.arange(2**31 - 1000, 2**31, dtype=np.int64)
    got = to_np(ck.Schedule(s)(K.convert_to_tensor(steps.astype("int32"))))
    assert_close(got, s(steps), _peak(s))


@pytest.mark.parametrize("name", LARGE_STEP_CASES)
@pytest.mark.skipif(BACKEND == "jax", reason="JAX without jax_enable_x64 has no int64 steps")
def test_schedule_at_int64_steps_beyond_int32(name: str) -> None:
    """TensorFlow counts updates in int64; an int64 step tensor must not be narrowed to int32."""
    s = SCHEDULES[name]
    steps = np.concatenate([np.arange(2**31, 2**31 + 300), np.arange(2**33 - 300, 2**33)]).astype(np.int64)
    tensor = K.convert_to_tensor(steps)
    assert "int64" in str(tensor.dtype)
    got = to_np(ck.Schedule(s)(tensor))
    assert_close(got, s(steps), _peak(s))


def test_schedule_as_optimizer_learning_rate() -> None:
    """The optimizer evaluates the schedule at ``iterations``: its learning_rate follows s(t)."""
    s = SCHEDULES["triangular2"]
    opt = keras.optimizers.SGD(learning_rate=ck.Schedule(s))
    w = keras.Variable(np.zeros(2, "float32"))
    seen = []
    for _ in range(5):
        seen.append(float(to_np(opt.learning_rate)))
        opt.apply_gradients([(K.ones((2,)), w)])
    assert_close(seen, s(np.arange(5)), _peak(s))
    # w moved by -sum(lr_t) with gradient 1
    assert_close(to_np(w), [-s(np.arange(5)).sum()] * 2, _peak(s))


def test_schedule_accepts_config_dict_and_rejects_junk() -> None:
    s = SCHEDULES["exp_range"]
    lr = ck.Schedule(s.to_config())
    assert lr.schedule == s
    with pytest.raises(ValueError, match="unknown schedule"):
        ck.Schedule({"name": "nope"})
    with pytest.raises(TypeError):
        ck.Schedule(0.1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- 2. TFA
TFA_N = 2500
TFA_STEPS = np.arange(TFA_N)


def tfa_lr(step: np.ndarray, init: float, peak: float, step_size: float, scale_fn, scale_mode: str) -> np.ndarray:
    """TensorFlow Addons' ``CyclicalLearningRate.__call__``, in NumPy (ANCHORS b1)."""
    step = np.asarray(step, dtype=np.float64)
    cycle = np.floor(1 + step / (2 * step_size))
    x = np.abs(step / step_size - 2 * cycle + 1)
    mode_step = cycle if scale_mode == "cycle" else step
    return init + (peak - init) * np.maximum(0.0, 1 - x) * scale_fn(mode_step)


def triangular_fn(x: np.ndarray) -> np.ndarray:
    return np.ones_like(x)


def triangular2_fn(x: np.ndarray) -> np.ndarray:
    return 1 / (2.0 ** (x - 1))


def exp_fn(gamma: float):
    return lambda x: gamma**x


INIT, PEAK = 1e-4, 1e-2

#: (id, constructor of the cyclr.keras object, TFA scale_fn, TFA scale_mode, step_size)
TFA_CASES = [
    ("Triangular", lambda: ck.TriangularCyclicalLearningRate(INIT, PEAK, 100), triangular_fn, "cycle", 100),
    ("TriangularLearningRate", lambda: ck.TriangularLearningRate(INIT, PEAK, 100), triangular_fn, "cycle", 100),
    (
        "Triangular-float-step",
        lambda: ck.TriangularCyclicalLearningRate(INIT, PEAK, 62.5),
        triangular_fn,
        "cycle",
        62.5,
    ),
    ("Triangular2", lambda: ck.Triangular2CyclicalLearningRate(INIT, PEAK, 150), triangular2_fn, "cycle", 150),
    (
        "Exponential-default-iterations",
        lambda: ck.ExponentialCyclicalLearningRate(INIT, PEAK, 120, gamma=0.999),
        exp_fn(0.999),
        "iterations",
        120,
    ),
    (
        "Exponential-cycle",
        lambda: ck.ExponentialCyclicalLearningRate(INIT, PEAK, 120, scale_mode="cycle", gamma=0.8),
        exp_fn(0.8),
        "cycle",
        120,
    ),
    (
        "CLR-triangular-cycle",
        lambda: ck.CyclicalLearningRate(INIT, PEAK, 80, scale_fn="triangular"),
        triangular_fn,
        "cycle",
        80,
    ),
    (
        "CLR-triangular-iterations",
        lambda: ck.CyclicalLearningRate(INIT, PEAK, 80, scale_fn="triangular", scale_mode="iterations"),
        triangular_fn,
        "iterations",
        80,
    ),
    (
        "CLR-triangular2-cycle",
        lambda: ck.CyclicalLearningRate(INIT, PEAK, 80, scale_fn="triangular2", scale_mode="cycle"),
        triangular2_fn,
        "cycle",
        80,
    ),
    (
        "CLR-exp_range-iterations",
        lambda: ck.CyclicalLearningRate(
            INIT, PEAK, 90, scale_fn={"name": "exp_range", "gamma": 0.999}, scale_mode="iterations"
        ),
        exp_fn(0.999),
        "iterations",
        90,
    ),
    (
        "CLR-exp_range-cycle",
        lambda: ck.CyclicalLearningRate(INIT, PEAK, 90, scale_fn={"name": "exp_range", "gamma": 0.999}),
        exp_fn(0.999),
        "cycle",
        90,
    ),
]


@pytest.mark.parametrize(
    ("make", "scale_fn", "scale_mode", "step_size"), [c[1:] for c in TFA_CASES], ids=[c[0] for c in TFA_CASES]
)
def test_tfa_classes_match_tfa_formula(make, scale_fn, scale_mode: str, step_size: float) -> None:
    lr = make()
    want = tfa_lr(TFA_STEPS, INIT, PEAK, step_size, scale_fn, scale_mode)
    assert_close(to_np(lr(TFA_STEPS)), want, PEAK)
    for t in (0, int(step_size), 2 * int(step_size) + 1, TFA_N - 1):
        assert_close(to_np(lr(t)), want[t], PEAK)
    # the host-side value (what LRLogger reads) is the same formula
    assert_close(lr.schedule(TFA_STEPS), want, PEAK, rtol=1e-12)


def test_triangular_learning_rate_is_the_tfa_triangular() -> None:
    a = ck.TriangularLearningRate(initial_learning_rate=0.001, maximal_learning_rate=0.01, step_size=200)
    b = ck.TriangularCyclicalLearningRate(initial_learning_rate=0.001, maximal_learning_rate=0.01, step_size=200)
    np.testing.assert_array_equal(to_np(a(TFA_STEPS)), to_np(b(TFA_STEPS)))
    assert float(to_np(a(200))) == pytest.approx(0.01, rel=1e-6)
    assert float(to_np(a(100))) == pytest.approx(0.0055, rel=1e-6)
    assert a.name == "TriangularLearningRate"


def test_tfa_lambda_scale_fn_is_refused() -> None:
    with pytest.raises(TypeError, match=re.escape("tensorflow/addons#2380")):
        ck.CyclicalLearningRate(INIT, PEAK, 10, scale_fn=lambda x: 1.0)

    def halve(x: float) -> float:
        return 0.5**x

    with pytest.raises(TypeError, match="addons#2380"):
        ck.CyclicalLearningRate(INIT, PEAK, 10, scale_fn=halve)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale_fn": "cosine"}, "unknown shape 'cosine'"),
        ({"scale_fn": {"name": "nope"}}, "unknown shape"),
        ({"scale_fn": {"gamma": 0.9}}, "unknown shape"),
        ({"scale_fn": {"name": "triangular", "gamma": 0.9}}, "unexpected parameter"),
        ({"scale_fn": {"name": "exp_range", "gamma": 0.9, "beta": 1}}, "unexpected parameter"),
        ({"scale_mode": "epoch"}, "scale_mode"),
        ({"scale_fn": "triangular2", "scale_mode": "iterations"}, "scale_mode='cycle'"),
    ],
)
def test_tfa_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ck.CyclicalLearningRate(INIT, PEAK, 10, **kwargs)


# ---------------------------------------------------------------------------------------- 3. serialization
def _schedule_objects() -> dict[str, object]:
    return {
        "Schedule-one_cycle": ck.Schedule(cyclr.one_cycle(max_lr=0.1, total_steps=500), name="oc"),
        "Schedule-sgdr-config": ck.Schedule(SCHEDULES["sgdr-mult2-decay"].to_config()),
        "Schedule-warmup": ck.Schedule(SCHEDULES["warmup-cosine"]),
        "Schedule-mirror": ck.Schedule(SCHEDULES["mirror-one_cycle"]),
        "CyclicalLearningRate": ck.CyclicalLearningRate(
            INIT, PEAK, 30, scale_fn={"name": "exp_range", "gamma": 0.99}, scale_mode="cycle", name="clr"
        ),
        "CyclicalLearningRate-iterations": ck.CyclicalLearningRate(
            INIT, PEAK, 30, scale_fn="exp_range", scale_mode="iterations"
        ),
        "TriangularCyclicalLearningRate": ck.TriangularCyclicalLearningRate(INIT, PEAK, 25),
        "TriangularLearningRate": ck.TriangularLearningRate(0.001, 0.01, 200),
        "Triangular2CyclicalLearningRate": ck.Triangular2CyclicalLearningRate(INIT, PEAK, 20),
        "ExponentialCyclicalLearningRate": ck.ExponentialCyclicalLearningRate(INIT, PEAK, 20, gamma=0.995),
        "ExponentialCyclicalLearningRate-cycle": ck.ExponentialCyclicalLearningRate(
            INIT, PEAK, 20, scale_mode="cycle", gamma=0.7
        ),
    }


SER_STEPS = np.arange(800)


@pytest.mark.parametrize("name", list(_schedule_objects()))
def test_get_config_from_config_round_trip(name: str) -> None:
    obj = _schedule_objects()[name]
    config = obj.get_config()
    assert json.loads(json.dumps(config)) == config  # JSON-safe
    back = type(obj).from_config(json.loads(json.dumps(config)))
    assert type(back) is type(obj)
    assert back.get_config() == config
    assert back.schedule == obj.schedule
    np.testing.assert_array_equal(to_np(back(SER_STEPS)), to_np(obj(SER_STEPS)))
    assert np.ptp(to_np(obj(SER_STEPS))) > 0


@pytest.mark.parametrize("name", list(_schedule_objects()))
def test_keras_serialize_deserialize(name: str) -> None:
    obj = _schedule_objects()[name]
    data = keras.optimizers.schedules.serialize(obj)
    data = json.loads(json.dumps(data))
    assert data["registered_name"] == f"cyclr>{type(obj).__name__}"
    back = keras.optimizers.schedules.deserialize(data)
    assert type(back) is type(obj)
    np.testing.assert_array_equal(to_np(back(SER_STEPS)), to_np(obj(SER_STEPS)))
    # and through keras.saving as well
    back2 = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    np.testing.assert_array_equal(to_np(back2(SER_STEPS)), to_np(obj(SER_STEPS)))


LOAD_STEPS = [0, 1, 6, 7, 8, 25, 99, 250, 777]


def _tiny_model(optimizer: object, batches: int = 7) -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2 * batches, 3)).astype("float32")
    model.fit(x, x[:, :1] - x[:, 2:], batch_size=2, epochs=1, verbose=0, shuffle=False)
    return model


def _describe(opt: object, steps: list[int]) -> dict[str, object]:
    """What the subprocess prints for a loaded optimizer (the same code runs on both sides)."""
    out: dict[str, object] = {
        "class": type(opt).__name__,
        "iterations": int(K.convert_to_numpy(opt.iterations)),
        "lr_class": type(opt._learning_rate).__name__,
        "lr_config": opt._learning_rate.get_config(),
        "lr": [float(K.convert_to_numpy(opt._learning_rate(t))) for t in steps],
        "current_lr": float(K.convert_to_numpy(opt.learning_rate)),
        "variables": [np.asarray(K.convert_to_numpy(v)).ravel().tolist() for v in opt.variables],
    }
    for attr in ("momentum_schedule", "beta_1_schedule"):
        sched = getattr(opt, attr, None)
        if sched is not None:
            out[attr] = sched.to_config()
            out[attr + "_values"] = [float(sched(t)) for t in steps]
    for attr in ("momentum", "beta_1", "nesterov"):
        if hasattr(opt, attr):
            out[attr] = getattr(opt, attr)
    return out


LOADER = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras
import cyclr.keras
K = keras.ops
{describe}
out = {{}}
for key, path in json.loads(sys.argv[1]).items():
    model = keras.models.load_model(path)
    out[key] = _describe(model.optimizer, {steps!r})
print("JSON:" + json.dumps(out))
"""


def test_model_save_and_load_in_fresh_process(tmp_path: Path) -> None:
    optimizers = {
        "keras-SGD": keras.optimizers.SGD(
            learning_rate=ck.Schedule(cyclr.one_cycle(max_lr=0.1, total_steps=1000)), momentum=0.9
        ),
        "cyclr-Adam-beta1": ck.Adam(
            learning_rate=cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=10),
            beta_1=cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=10).mirror(0.85, 0.95),
        ),
        "cyclr-AdamW-beta1": ck.AdamW(
            learning_rate=ck.ExponentialCyclicalLearningRate(1e-3, 1e-2, 5, gamma=0.99),
            beta_1=cyclr.cosine(max_lr=0.95, total_steps=50, min_lr=0.85),
            weight_decay=0.01,
        ),
        "cyclr-SGD-momentum": ck.SGD(
            learning_rate=ck.Triangular2CyclicalLearningRate(1e-3, 1e-2, 4),
            momentum=cyclr.cyclic(base_lr=0.8, max_lr=0.95, step_size=3).mirror(0.85, 0.95),
            nesterov=True,
        ),
    }
    paths, before = {}, {}
    for key, opt in optimizers.items():
        model = _tiny_model(opt)
        path = tmp_path / f"{key}.keras"
        model.save(path)
        paths[key] = str(path)
        before[key] = json.loads(json.dumps(_describe(opt, LOAD_STEPS)))
        assert before[key]["iterations"] == 7

    env = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = LOADER.format(describe=inspect.getsource(_describe), steps=LOAD_STEPS)
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(paths)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("JSON:"))
    after = json.loads(line[len("JSON:") :])

    for key, want in before.items():
        got = after[key]
        assert got["class"] == want["class"], key
        assert got["iterations"] == 7, key
        assert got["lr_class"] == want["lr_class"], key
        assert got["lr_config"] == want["lr_config"], key
        assert got["lr"] == pytest.approx(want["lr"], rel=1e-7), key
        assert got["current_lr"] == pytest.approx(want["current_lr"], rel=1e-7), key
        for attr in ("momentum_schedule", "beta_1_schedule", "nesterov", "momentum", "beta_1"):
            assert got.get(attr) == want.get(attr), (key, attr)
        assert got.get("momentum_schedule_values") == want.get("momentum_schedule_values"), key
        assert got.get("beta_1_schedule_values") == want.get("beta_1_schedule_values"), key
        # optimizer state (iteration count, momentum/velocity slots) came back too
        assert len(got["variables"]) == len(want["variables"]) > 0, key
        for i, values in enumerate(want["variables"]):
            assert got["variables"][i] == pytest.approx(values, rel=1e-7, abs=1e-12), (key, i)
    assert after["cyclr-SGD-momentum"]["momentum_schedule"]["name"] == "mirror"
    assert after["cyclr-Adam-beta1"]["beta_1_schedule"]["name"] == "mirror"
    assert after["cyclr-AdamW-beta1"]["beta_1_schedule"]["name"] == "cosine"
    assert after["keras-SGD"]["lr_config"]["schedule"]["name"] == "one_cycle"


# ---------------------------------------------------------------------------------------- 4. cyclical momentum
MOMENTUM = cyclr.cyclic(base_lr=0.8, max_lr=0.95, step_size=4, step_size_down=3).mirror(0.8, 0.95)
MOM_T = 21


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_schedule_is_the_momentum_used(nesterov: bool) -> None:
    lr = 0.1
    opt = ck.SGD(learning_rate=lr, momentum=MOMENTUM, nesterov=nesterov)
    w = keras.Variable(np.zeros((1,), "float32"))  # loss = w: gradient exactly 1
    v, ws = [], []
    for _ in range(MOM_T):
        opt.apply_gradients([(K.ones((1,)), w)])
        v.append(float(to_np(opt.momentums[0])[0]))
        ws.append(float(to_np(w)[0]))
    assert int(to_np(opt.iterations)) == MOM_T
    v, ws = np.array(v), np.array(ws)
    # update t (0-based iterations) computes v_t = m_t v_{t-1} - lr; v_{-1} = 0 hides m_0
    assert v[0] == pytest.approx(-lr, rel=1e-6)
    m = (v[1:] + lr) / v[:-1]
    want = MOMENTUM(np.arange(1, MOM_T))
    np.testing.assert_allclose(m, want, rtol=0, atol=2e-6)
    assert np.min(np.abs(np.diff(want))) > 0.01  # an off-by-one step would fail above
    # the weight moves by v_t (plain) or m_t v_t - lr (Nesterov)
    dw = np.diff(np.concatenate([[0.0], ws]))
    m_all = MOMENTUM(np.arange(MOM_T))
    expected = m_all * v - lr if nesterov else v
    np.testing.assert_allclose(dw, expected, rtol=1e-5, atol=1e-7)


def test_adam_beta_1_schedule_is_the_beta_1_used() -> None:
    beta_1 = cyclr.cyclic(base_lr=0.5, max_lr=0.95, step_size=3).mirror(0.5, 0.95)
    lr, beta_2, eps = 0.01, 0.999, 1e-7
    opt = ck.Adam(learning_rate=lr, beta_1=beta_1, beta_2=beta_2, epsilon=eps)
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(12, 3)).astype("float32")
    w0 = rng.normal(size=3).astype("float32")
    w = keras.Variable(w0)
    m = v = np.zeros(3)
    wn = w0.astype(np.float64)
    for t, g in enumerate(grads):
        opt.apply_gradients([(K.convert_to_tensor(g), w)])
        b1 = beta_1(t)
        m = b1 * m + (1 - b1) * g
        v = beta_2 * v + (1 - beta_2) * g.astype(np.float64) ** 2
        alpha = lr * math.sqrt(1 - beta_2 ** (t + 1)) / (1 - b1 ** (t + 1))
        wn = wn - alpha * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(to_np(opt._momentums[0]), m, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(to_np(opt._velocities[0]), v, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(to_np(w), wn, rtol=1e-5, atol=1e-6)
    assert len({round(beta_1(t), 6) for t in range(12)}) > 3  # the schedule really moves


def _run_steps(opt: object, steps: int = 10) -> np.ndarray:
    rng = np.random.default_rng(7)
    w = keras.Variable(rng.normal(size=(4, 3)).astype("float32"))
    b = keras.Variable(rng.normal(size=(3,)).astype("float32"))
    for _ in range(steps):
        gw = K.convert_to_tensor(rng.normal(size=(4, 3)).astype("float32"))
        gb = K.convert_to_tensor(rng.normal(size=(3,)).astype("float32"))
        opt.apply_gradients([(gw, w), (gb, b)])
    return np.concatenate([to_np(w).ravel(), to_np(b)])


CONST_CASES = {
    "Adam": (
        lambda: ck.Adam(learning_rate=0.01, beta_1=cyclr.constant(0.9)),
        lambda: keras.optimizers.Adam(learning_rate=0.01, beta_1=0.9),
    ),
    "Adam-amsgrad": (
        lambda: ck.Adam(learning_rate=0.01, beta_1=cyclr.constant(0.8), amsgrad=True),
        lambda: keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8, amsgrad=True),
    ),
    "Adam-float": (
        lambda: ck.Adam(learning_rate=0.01, beta_1=0.9),
        lambda: keras.optimizers.Adam(learning_rate=0.01, beta_1=0.9),
    ),
    "AdamW": (
        lambda: ck.AdamW(learning_rate=0.01, beta_1=cyclr.constant(0.9), weight_decay=0.05),
        lambda: keras.optimizers.AdamW(learning_rate=0.01, beta_1=0.9, weight_decay=0.05),
    ),
    "SGD": (
        lambda: ck.SGD(learning_rate=0.05, momentum=cyclr.constant(0.9)),
        lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
    ),
    "SGD-nesterov": (
        lambda: ck.SGD(learning_rate=0.05, momentum=cyclr.constant(0.9), nesterov=True),
        lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    ),
    "SGD-float-nesterov": (
        lambda: ck.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
        lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    ),
    "SGD-lr-schedule": (
        lambda: ck.SGD(learning_rate=cyclr.triangular(1e-3, 0.05, 3), momentum=cyclr.constant(0.5)),
        lambda: keras.optimizers.SGD(learning_rate=ck.Schedule(cyclr.triangular(1e-3, 0.05, 3)), momentum=0.5),
    ),
}


@pytest.mark.parametrize("name", list(CONST_CASES))
def test_constant_schedule_reproduces_keras_optimizer(name: str) -> None:
    ours, theirs = (make() for make in CONST_CASES[name])
    a, b = _run_steps(ours), _run_steps(theirs)
    start = _run_steps(keras.optimizers.SGD(learning_rate=0.0))
    assert np.max(np.abs(b - start)) > 1e-3  # the optimizers did move the weights
    # torch: Keras' own SGD there is a fused foreach version adding -lr*g and momentum*m to the
    # weight separately (Nesterov), a different rounding order: a few float32 ulps
    rtol = 5e-7 if BACKEND == "torch" and "nesterov" in name else 0.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-7)


def test_momentum_schedule_must_lie_in_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"parameter 'momentum' must be .*\[0, 1\)"):
        ck.SGD(momentum=cyclr.constant(1.0))
    with pytest.raises(ValueError, match=r"parameter 'beta_1' must be .*\[0, 1\)"):
        ck.Adam(beta_1=cyclr.linear(start_lr=0.9, end_lr=1.5, total_steps=10))
    with pytest.raises(ValueError, match="beta_1"):
        ck.AdamW(beta_1=cyclr.constant(1.0))


FIT_JIT = [False, True] if BACKEND == "tensorflow" else ["auto"]


@pytest.mark.parametrize("jit_compile", FIT_JIT)
def test_fit_with_scheduled_momentum(jit_compile: object) -> None:
    """``model.fit`` (compiled train step) uses lr(t) and momentum(t): w = sum_t v_t exactly."""
    steps = 20
    lr = cyclr.triangular(base_lr=0.01, max_lr=0.1, step_size=3)
    opt = ck.SGD(learning_rate=lr, momentum=MOMENTUM)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=opt, loss=lambda y_true, y_pred: K.mean(y_pred), jit_compile=jit_compile)
    x = np.ones((steps, 1), "float32")
    history = model.fit(x, np.zeros((steps, 1), "float32"), batch_size=1, epochs=1, verbose=0, shuffle=False)
    assert int(to_np(opt.iterations)) == steps
    v, w = 0.0, 0.0
    for t in range(steps):
        v = MOMENTUM(t) * v - lr(t)  # gradient of mean(w * 1) is 1
        w += v
    assert float(to_np(model.layers[0].kernel)[0, 0]) == pytest.approx(w, rel=1e-5)
    assert float(to_np(opt.momentums[0])[0, 0]) == pytest.approx(v, rel=1e-5)
    # with momentum fixed at its initial value (the schedule's peak) the result would differ
    v2, w2 = 0.0, 0.0
    for t in range(steps):
        v2 = 0.95 * v2 - lr(t)
        w2 += v2
    assert abs(w2 - w) > 1e-2 * abs(w)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("jit_compile", FIT_JIT)
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_fit_with_scheduled_beta_1(cls: str, jit_compile: object) -> None:
    """``model.fit`` with ``beta_1`` scheduled: one weight, gradient 1, Adam's recursion by hand."""
    steps, lr, beta_2, eps = 12, 0.01, 0.999, 1e-7
    beta_1 = cyclr.cyclic(base_lr=0.5, max_lr=0.95, step_size=3).mirror(0.5, 0.95)
    opt = getattr(ck, cls)(learning_rate=lr, beta_1=beta_1, beta_2=beta_2, epsilon=eps, weight_decay=0.0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
    model.compile(optimizer=opt, loss=lambda y_true, y_pred: K.mean(y_pred), jit_compile=jit_compile)
    x = np.ones((steps, 1), "float32")
    model.fit(x, np.zeros((steps, 1), "float32"), batch_size=1, epochs=1, verbose=0, shuffle=False)
    w, m, v = 1.0, 0.0, 0.0
    for t in range(steps):
        b1 = beta_1(t)
        m = b1 * m + (1 - b1)
        v = beta_2 * v + (1 - beta_2)
        w -= lr * math.sqrt(1 - beta_2 ** (t + 1)) / (1 - b1 ** (t + 1)) * m / (math.sqrt(v) + eps)
    assert float(to_np(model.layers[0].kernel)[0, 0]) == pytest.approx(w, rel=1e-5)
    assert float(to_np(opt._momentums[0])[0, 0]) == pytest.approx(m, rel=1e-5)


# ---------------------------------------------------------------------------------------- 5. LRLogger
def _fit_logged(optimizer: object, *extra: object, model: keras.Model | None = None) -> tuple[ck.LRLogger, object]:
    if model is None:
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 2)).astype("float32")
    logger = ck.LRLogger()
    history = model.fit(
        x, x.sum(1, keepdims=True), batch_size=2, epochs=2, verbose=0, shuffle=False, callbacks=[logger, *extra]
    )
    return logger, history


def test_lr_logger_with_cyclr_sgd() -> None:
    lr = cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=3)
    opt = ck.SGD(learning_rate=lr, momentum=MOMENTUM)
    logger, history = _fit_logged(opt)
    assert len(logger.history["lr"]) == 10
    np.testing.assert_allclose(logger.history["lr"], lr(np.arange(10)), rtol=1e-12)
    np.testing.assert_allclose(logger.history["momentum"], MOMENTUM(np.arange(10)), rtol=1e-12)
    np.testing.assert_allclose(history.history["lr"], [lr(4), lr(9)], rtol=1e-12)
    np.testing.assert_allclose(history.history["momentum"], [MOMENTUM(4), MOMENTUM(9)], rtol=1e-12)
    assert len(history.history["loss"]) == 2


def test_lr_logger_with_keras_adam_and_keras_schedule() -> None:
    schedule = keras.optimizers.schedules.CosineDecay(initial_learning_rate=0.01, decay_steps=20, alpha=0.1)
    logger, history = _fit_logged(keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9))
    want = [0.01 * (0.9 * 0.5 * (1 + math.cos(math.pi * t / 20)) + 0.1) for t in range(10)]
    np.testing.assert_allclose(logger.history["lr"], want, rtol=1e-6)
    assert logger.history["momentum"] == [0.9] * 10
    assert history.history["momentum"] == [0.9, 0.9]
    np.testing.assert_allclose(history.history["lr"], [want[4], want[9]], rtol=1e-6)


def test_lr_logger_with_cyclr_adam_beta_1_and_constant_lr() -> None:
    beta_1 = cyclr.cosine(max_lr=0.95, total_steps=10, min_lr=0.85)
    logger, _ = _fit_logged(ck.Adam(learning_rate=0.003, beta_1=beta_1))
    np.testing.assert_allclose(logger.history["lr"], [0.003] * 10, rtol=1e-6)
    np.testing.assert_allclose(logger.history["momentum"], beta_1(np.arange(10)), rtol=1e-12)


def test_lr_logger_with_float_learning_rate_and_keras_sgd() -> None:
    logger, history = _fit_logged(keras.optimizers.SGD(learning_rate=0.05, momentum=0.9))
    np.testing.assert_allclose(logger.history["lr"], [0.05] * 10, rtol=1e-7)
    np.testing.assert_allclose(logger.history["momentum"], [0.9] * 10, rtol=1e-12)
    np.testing.assert_allclose(history.history["lr"], [0.05, 0.05], rtol=1e-7)


@pytest.mark.skipif(BACKEND == "torch", reason="Keras requires steps_per_execution=1 on the torch backend")
def test_lr_logger_with_steps_per_execution() -> None:
    """With ``steps_per_execution=5`` Keras calls the batch hooks once per 5 updates (``batch`` =
    4, 9); the epoch's last value must still be the LR of the epoch's last update."""
    lr = cyclr.linear(start_lr=0.01, end_lr=1.0, total_steps=100)
    opt = ck.SGD(learning_rate=lr)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=opt, loss="mse", steps_per_execution=5)
    logger, history = _fit_logged(opt, model=model)
    assert int(to_np(opt.iterations)) == 10
    np.testing.assert_allclose(history.history["lr"], [lr(4), lr(9)], rtol=1e-12)
    assert logger.history["lr"][-1] == pytest.approx(lr(9), rel=1e-12)


def test_lr_logger_with_loss_scale_optimizer() -> None:
    """Mixed precision wraps the optimizer in ``LossScaleOptimizer`` (``compile`` does it under a
    ``mixed_float16`` policy): the logger must report the wrapped optimizer's LR and momentum."""
    lr = cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=3)
    opt = keras.optimizers.LossScaleOptimizer(ck.SGD(learning_rate=lr, momentum=MOMENTUM))
    logger, _ = _fit_logged(opt)
    assert float(to_np(opt.learning_rate)) == pytest.approx(lr(10), rel=1e-6)  # training used the schedule
    np.testing.assert_allclose(logger.history["lr"], lr(np.arange(10)), rtol=1e-12)
    np.testing.assert_allclose(logger.history["momentum"], MOMENTUM(np.arange(10)), rtol=1e-12)


def test_lr_logger_resumes_from_optimizer_iterations() -> None:
    """A second ``fit`` continues at the optimizer's update count, not at 0."""
    lr = cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=4)
    opt = ck.SGD(learning_rate=lr)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=opt, loss="mse")
    first, _ = _fit_logged(opt, model=model)
    second, _ = _fit_logged(opt, model=model)
    np.testing.assert_allclose(first.history["lr"], lr(np.arange(10)), rtol=1e-12)
    np.testing.assert_allclose(second.history["lr"], lr(np.arange(10, 20)), rtol=1e-12)
    assert int(to_np(opt.iterations)) == 20


class _BatchLogs(keras.callbacks.Callback):
    """Records what later callbacks (TensorBoard, CSVLogger, ...) receive as batch logs."""

    def __init__(self) -> None:
        super().__init__()
        self.lr: list[float] = []
        self.momentum: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.lr.append(float(logs["lr"]))
        self.momentum.append(float(logs["momentum"]))


def test_lr_logger_puts_values_in_batch_logs() -> None:
    lr = cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=3)
    seen = _BatchLogs()
    _fit_logged(ck.SGD(learning_rate=lr, momentum=MOMENTUM), seen)
    np.testing.assert_allclose(seen.lr, lr(np.arange(10)), rtol=1e-12)
    np.testing.assert_allclose(seen.momentum, MOMENTUM(np.arange(10)), rtol=1e-12)


@only_tf
def test_lr_logger_feeds_tensorboard(tmp_path: Path) -> None:
    import tensorflow as tf

    pytest.importorskip("tensorboard", reason="tf.summary needs the tensorboard package")

    lr = cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=3)
    tb = keras.callbacks.TensorBoard(log_dir=str(tmp_path), update_freq="batch")
    _fit_logged(ck.SGD(learning_rate=lr, momentum=MOMENTUM), tb)
    scalars: dict[str, dict[int, float]] = {}
    for path in tmp_path.rglob("events.out.tfevents.*"):
        for raw in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor) if value.HasField("tensor") else np.array(value.simple_value)
                if array.dtype.kind == "f" and array.size == 1:  # scalars (not the model's config text)
                    scalars.setdefault(value.tag, {})[event.step] = float(array)
    assert "batch_lr" in scalars, sorted(scalars)
    assert "batch_momentum" in scalars, sorted(scalars)
    steps = sorted(scalars["batch_lr"])
    assert len(steps) == 10, steps
    np.testing.assert_allclose([scalars["batch_lr"][s] for s in steps], lr(np.arange(10)), rtol=1e-6)
    np.testing.assert_allclose([scalars["batch_momentum"][s] for s in steps], MOMENTUM(np.arange(10)), rtol=1e-6)
    assert "epoch_lr" in scalars  # the epoch's last value, from the epoch logs
    np.testing.assert_allclose(sorted(scalars["epoch_lr"].items()), [(0, lr(4)), (1, lr(9))], rtol=1e-6)


# ---------------------------------------------------------------------------------------- 6. Keras' schedules
PEER_N = 5000
PEER_STEPS = np.arange(PEER_N)
PEER = settings(max_examples=n_examples(20), deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))


def keras_values(schedule: object) -> np.ndarray:
    """A Keras schedule at every int step of PEER_STEPS, one scalar step at a time as an optimizer
    calls it (float32 inside Keras).

    TensorFlow: vectorized (``tf.vectorized_map`` where ``CosineDecay``'s warm-up branches with
    ``ops.cond`` on the step); JAX: ``jax.lax.map`` under ``jax.jit``, as in ``model.fit``; torch:
    vectorized, or a loop for the warm-up ``cond``.
    """
    steps = PEER_STEPS.astype("int32")
    warm = getattr(schedule, "warmup_target", None) is not None
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.jit(lambda s: jax.lax.map(schedule, s))(steps), dtype=np.float64)
    if not warm:
        return to_np(schedule(K.convert_to_tensor(steps)))
    if BACKEND == "torch":
        return np.array([float(to_np(schedule(int(t)))) for t in steps])
    return to_np(K.vectorized_map(schedule, K.convert_to_tensor(steps)))


EPS32 = float(np.finfo(np.float32).eps)


def restarts_float32_error(sgdr: cyclr.SGDR) -> np.ndarray:
    """Bound on the error of Keras' float32 position inside an SGDR cycle, per step of PEER_STEPS.

    Keras' ``CosineDecayRestarts`` computes ``f = step / first_decay_steps`` in float32 (error
    eps32 * f) and, for ``t_mul != 1``, the start of cycle ``i`` as ``(1 - t_mul**i) / (1 - t_mul)``
    with ``t_mul`` itself rounded to float32: relative to the cycle's length that adds about
    eps32 * (2 + i) / |t_mul - 1|. The rate moves at most pi/2 * amplitude per unit of position.
    """
    f = PEER_STEPS / sgdr.period
    m = sgdr.period_mult
    if m == 1.0:
        return EPS32 * f
    i = np.floor(np.log1p(f * (m - 1.0)) / math.log(m))
    return EPS32 * (f + (2.0 + i) / abs(m - 1.0))


def _assert_peer(
    keras_schedule: object,
    ours: cyclr.Schedule,
    peak: float,
    float32_position: bool = False,
    got: np.ndarray | None = None,
) -> list[int]:
    """Keras (float32) against cyclr (float64) at every step of PEER_STEPS, to rtol 1e-6 and
    atol 1e-6 * peak.

    ``float32_position`` (SGDR only) widens atol by Keras' float32 position error
    (:func:`restarts_float32_error`). For SGDR a mismatch is also accepted next to a restart where
    Keras put the step in the neighbouring cycle (:func:`_neighbour_cycle_steps`); those steps
    are returned.
    """
    if got is None:
        got = keras_values(keras_schedule)
    want = ours(PEER_STEPS)
    atol = RTOL * peak
    if float32_position:
        atol = atol + 2.0 * peak * restarts_float32_error(ours)
    bad = np.flatnonzero(np.abs(got - want) > atol + RTOL * np.abs(want))
    other = _neighbour_cycle_steps(bad, got, ours, atol) if isinstance(ours, cyclr.SGDR) else []
    bad = np.setdiff1d(bad, other)
    assert bad.size == 0, (
        f"{bad.size} step(s) differ, first {bad[:10].tolist()}: keras {got[bad[:5]].tolist()} "
        f"cyclr {want[bad[:5]].tolist()}"
    )
    return other


def _neighbour_cycle_steps(bad: np.ndarray, got: np.ndarray, sgdr: cyclr.SGDR, atol: object) -> list[int]:
    """Steps of ``bad`` within one step of a restart where Keras used the neighbouring cycle.

    Keras finds the cycle as ``floor(f)`` or ``floor(log(1 - f (1 - t_mul)) / log(t_mul))``; at
    (or next to) a restart the rounded quotient can land one cycle early or late, so Keras gives
    that step the previous cycle's floor instead of the new cycle's peak (or the reverse). Such a
    step is accepted only if Keras' value equals cyclr's formula continued in the other cycle.
    """
    atol = np.broadcast_to(atol, got.shape)
    starts = sgdr.cycle_starts(PEER_N + 1)
    amp = sgdr.max_lr - sgdr.min_lr
    out = []
    for t in bad.tolist():
        k = next((j for j, s in enumerate(starts) if j > 0 and abs(t - s) <= 1.0), None)
        if k is None:
            continue
        # cycle k-1 continued past its end, or cycle k extended before its start
        for j in (k - 1, k):
            length = sgdr.period * sgdr.period_mult**j
            alt = sgdr.min_lr + amp * sgdr.decay**j * 0.5 * (1 + math.cos(math.pi * (t - starts[j]) / length))
            if abs(got[t] - alt) <= atol[t] + RTOL * abs(alt):
                out.append(t)
                break
    return out


def keras_restarts_formula(
    step: np.ndarray, init: float, first: float, t_mul: float, m_mul: float, alpha: float, dtype: type = np.float64
) -> np.ndarray:
    """Keras 3 ``CosineDecayRestarts.__call__`` transcribed in NumPy (ANCHORS b4), in ``dtype``."""
    one = dtype(1.0)
    f = step.astype(dtype) / dtype(first)
    t = dtype(t_mul)
    if t_mul == 1.0:
        i = np.floor(f)
        fc = f - i
    else:
        i = np.floor(np.log(one - f * (one - t)) / np.log(t))
        fc = (f - (one - t**i) / (one - t)) / t**i
    decayed = (one - dtype(alpha)) * dtype(0.5) * dtype(m_mul) ** i * (one + np.cos(dtype(math.pi) * fc)) + dtype(alpha)
    return (dtype(init) * decayed).astype(np.float64)


@pytest.mark.parametrize(
    ("init", "decay_steps", "alpha"), [(0.1, 1000, 0.01), (0.01, 200, 0.0), (1.0, 4999, 0.5), (0.3, 1, 0.2)]
)
def test_keras_cosine_decay_equals_cyclr_cosine(init: float, decay_steps: int, alpha: float) -> None:
    ks = keras.optimizers.schedules.CosineDecay(initial_learning_rate=init, decay_steps=decay_steps, alpha=alpha)
    _assert_peer(ks, cyclr.cosine(max_lr=init, total_steps=decay_steps, min_lr=alpha * init), init)


@PEER
@given(
    init=st.floats(1e-4, 1.0),
    decay_steps=st.integers(1, 6000),
    alpha=st.floats(0.0, 0.99),
)
def test_keras_cosine_decay_equals_cyclr_cosine_random(init: float, decay_steps: int, alpha: float) -> None:
    ks = keras.optimizers.schedules.CosineDecay(initial_learning_rate=init, decay_steps=decay_steps, alpha=alpha)
    _assert_peer(ks, cyclr.cosine(max_lr=init, total_steps=decay_steps, min_lr=alpha * init), init)


@pytest.mark.parametrize(
    ("init", "target", "warmup_steps", "decay_steps", "alpha"),
    [(0.0, 0.1, 500, 3000, 0.01), (1e-4, 0.05, 100, 4000, 0.0), (0.02, 0.01, 1000, 2500, 0.3)],
)
def test_keras_cosine_decay_warmup_equals_cyclr_warmup_cosine(
    init: float, target: float, warmup_steps: int, decay_steps: int, alpha: float
) -> None:
    ks = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=init,
        decay_steps=decay_steps,
        alpha=alpha,
        warmup_target=target,
        warmup_steps=warmup_steps,
    )
    ours = cyclr.warmup(
        cyclr.cosine(max_lr=target, total_steps=decay_steps, min_lr=alpha * target), steps=warmup_steps, start_lr=init
    )
    _assert_peer(ks, ours, max(init, target))


RESTARTS = [(t, m) for t in (1.0, 2.0, 1.5) for m in (1.0, 0.8)]


@pytest.mark.parametrize(("t_mul", "m_mul"), RESTARTS)
def test_keras_cosine_decay_restarts_equals_cyclr_sgdr(t_mul: float, m_mul: float) -> None:
    init, first, alpha = 0.1, 97, 0.05
    ks = keras.optimizers.schedules.CosineDecayRestarts(
        initial_learning_rate=init, first_decay_steps=first, t_mul=t_mul, m_mul=m_mul, alpha=alpha
    )
    ours = cyclr.sgdr(max_lr=init, period=first, min_lr=alpha * init, period_mult=t_mul, decay=m_mul)
    # cyclr is Keras' formula exactly (both in float64) ...
    f64 = keras_restarts_formula(PEER_STEPS, init, first, t_mul, m_mul, alpha)
    assert _assert_peer(None, ours, init, got=f64) == []
    np.testing.assert_allclose(ours(PEER_STEPS), f64, rtol=1e-9, atol=1e-12)
    # ... and Keras' own float32 evaluation agrees up to its rounding (on JAX, XLA's float32
    # division puts 97 * 2**j / 97 just below the integer: Keras stays at the floor for that step)
    _assert_peer(ks, ours, init, float32_position=True)
    if t_mul != 1.0:  # growing cycles keep step / first_decay_steps small: the plain 1e-6 holds
        _assert_peer(ks, ours, init)


def test_keras_restarts_float32_drift_is_keras_own() -> None:
    """With ``t_mul=1`` and a short period, Keras drifts past 1e-6 of the peak late in training.

    The drift is Keras' float32 ``step / first_decay_steps`` (error up to eps32 * step / period):
    cyclr equals the float64 transcription of Keras' formula, and (where division is correctly
    rounded, i.e. not under XLA on JAX) a float32 transcription reproduces Keras' values.
    """
    init, first = 1e-3, 5
    ks = keras.optimizers.schedules.CosineDecayRestarts(initial_learning_rate=init, first_decay_steps=first, t_mul=1.0)
    got = keras_values(ks)
    ours = cyclr.sgdr(max_lr=init, period=first)
    want = ours(PEER_STEPS)
    drift = np.abs(got - want) / init
    misplaced = _assert_peer(ks, ours, init, float32_position=True)  # within the float32 bound
    drift[misplaced] = 0.0
    assert drift[:50].max() < 2e-6
    assert drift[-1000:].max() > 1e-5  # e.g. 3.6e-5 of the peak near step 5000: beyond rtol 1e-6
    f64 = keras_restarts_formula(PEER_STEPS, init, first, 1.0, 1.0, 0.0)
    np.testing.assert_allclose(want, f64, rtol=1e-9, atol=1e-15)
    if BACKEND != "jax":
        f32 = keras_restarts_formula(PEER_STEPS, init, first, 1.0, 1.0, 0.0, dtype=np.float32)
        assert np.abs(got - f32).max() / init < 2e-6


@PEER
@given(
    init=st.floats(1e-3, 1.0),
    first=st.integers(5, 800),
    t_mul=st.sampled_from([1.0, 2.0, 1.5, 3.0]) | st.floats(1.05, 3.0),
    m_mul=st.sampled_from([1.0, 0.8]) | st.floats(0.3, 1.0),
    alpha=st.floats(0.0, 0.5),
)
def test_keras_cosine_decay_restarts_equals_cyclr_sgdr_random(
    init: float, first: int, t_mul: float, m_mul: float, alpha: float
) -> None:
    ks = keras.optimizers.schedules.CosineDecayRestarts(
        initial_learning_rate=init, first_decay_steps=first, t_mul=t_mul, m_mul=m_mul, alpha=alpha
    )
    ours = cyclr.sgdr(max_lr=init, period=first, min_lr=alpha * init, period_mult=t_mul, decay=m_mul)
    f64 = keras_restarts_formula(PEER_STEPS, init, first, t_mul, m_mul, alpha)
    misplaced = _assert_peer(None, ours, init, got=f64)
    keep = np.setdiff1d(PEER_STEPS, misplaced)
    np.testing.assert_allclose(ours(PEER_STEPS)[keep], f64[keep], rtol=1e-9, atol=1e-12 * init)
    _assert_peer(ks, ours, init, float32_position=True)


def test_keras_restarts_misplaced_restart_step() -> None:
    """Keras' logarithm puts some exact restart steps in the previous cycle (cyclr restarts).

    t_mul=3, first_decay_steps=5: cycles start at 5 (3**k - 1) / 2 = 5, 20, 65, 200, 605, ...;
    in float64, log(243) / log(3) = 4.999999999999999 so Keras' formula gives step 605 the floor
    alpha * initial_learning_rate instead of restarting at the peak.
    """
    init, first, alpha = 1.0, 5, 0.25
    ours = cyclr.sgdr(max_lr=init, period=first, min_lr=alpha * init, period_mult=3.0)
    f64 = keras_restarts_formula(PEER_STEPS, init, first, 3.0, 1.0, alpha)
    assert 605 in ours.cycle_starts(PEER_N)
    assert ours(605) == pytest.approx(1.0) and f64[605] == pytest.approx(0.25)
    assert _assert_peer(None, ours, init, got=f64) == [605]


# ---------------------------------------------------------------------------------------- 7. seed examples
def _cosine_decay(init: float, decay_steps: int, alpha: float, t: int) -> float:
    s = min(t, decay_steps)
    return init * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha)


SEED_EXAMPLES = {
    "seed_cosine_sgd.py": lambda t: _cosine_decay(0.1, 1000, 0.01, t),
    "seed_triangular_adam.py": lambda t: float(tfa_lr(np.array([t]), 0.001, 0.01, 200, triangular_fn, "cycle")[0]),
    "seed_cosine_adam.py": lambda t: _cosine_decay(0.01, 200, 0.0, t),
}


@pytest.mark.parametrize("script", list(SEED_EXAMPLES))
def test_seed_example_runs(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES_DIR / script), run_name="__main__")
    out = capsys.readouterr().out
    match = re.search(r"steps=(\d+) loss=(\S+) lr=(\S+)", out)
    assert match, out
    steps, loss, lr = int(match[1]), float(match[2]), float(match[3])
    assert steps == 10
    assert math.isfinite(loss) and loss > 0
    assert lr == pytest.approx(SEED_EXAMPLES[script](steps), rel=1e-6)
    assert lr != pytest.approx(SEED_EXAMPLES[script](0), rel=1e-6)  # the schedule did move
