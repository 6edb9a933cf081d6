"""One formula, four array kinds: Python numbers, NumPy, torch tensors and JAX (also under jit)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import cyclr
from conftest import ALL_CASES

N = 10_000
STEPS = np.arange(N)
CASES = list(ALL_CASES)


def _atol(s: cyclr.Schedule, rel: float, what: str = "value") -> float:
    """Absolute slack for values near the floor, relative to the peak (1 for levels)."""
    return rel * (1.0 if what == "level" else max(abs(s.bounds[1]), 1e-300))


@pytest.fixture(scope="module", params=["value", "level"])
def what(request: pytest.FixtureRequest) -> str:
    return request.param


def _eval(s: cyclr.Schedule, what: str, step):  # type: ignore[no-untyped-def]
    return s(step) if what == "value" else s.level(step)


@pytest.mark.parametrize("key", CASES)
def test_python_scalars_match_numpy(key: str, what: str) -> None:
    s = ALL_CASES[key]
    ref = _eval(s, what, STEPS)
    assert isinstance(ref, np.ndarray) and ref.dtype == np.float64 and ref.shape == (N,)
    got = [_eval(s, what, int(t)) for t in STEPS]
    assert all(type(v) is float for v in got)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=_atol(s, 1e-15, what))
    # float and NumPy scalar steps are the same steps
    for t in (0, 1, 37, N - 1):
        assert _eval(s, what, float(t)) == _eval(s, what, t)
        assert _eval(s, what, np.int64(t)) == _eval(s, what, t)
    if what == "level":
        assert np.all((ref >= 0) & (ref <= 1))


@pytest.mark.parametrize("key", CASES)
def test_numpy_float_steps_match_int_steps(key: str, what: str) -> None:
    s = ALL_CASES[key]
    ref = _eval(s, what, STEPS)
    np.testing.assert_allclose(_eval(s, what, STEPS.astype(np.float64)), ref, rtol=1e-10, atol=_atol(s, 1e-14, what))
    np.testing.assert_allclose(_eval(s, what, STEPS.astype(np.int32)), ref, rtol=1e-12, atol=0)
    two_d = _eval(s, what, STEPS[:100].reshape(10, 10))
    assert two_d.shape == (10, 10)
    np.testing.assert_array_equal(two_d.ravel(), ref[:100])


@pytest.mark.parametrize("key", CASES)
def test_torch_matches_numpy(key: str, what: str) -> None:
    s = ALL_CASES[key]
    ref = _eval(s, what, STEPS)
    for dtype in (torch.int64, torch.float64):
        out = _eval(s, what, torch.arange(N, dtype=dtype))
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (N,), dtype
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=_atol(s, 1e-14, what), err_msg=str(dtype))
    out32 = _eval(s, what, torch.arange(N, dtype=torch.float32))
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), ref, rtol=1e-5, atol=_atol(s, 1e-6, what), err_msg="float32")
    zero_d = _eval(s, what, torch.tensor(17))
    assert isinstance(zero_d, torch.Tensor) and zero_d.shape == ()
    assert float(zero_d) == pytest.approx(ref[17], rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("key", CASES)
def test_jax_jit_matches_numpy_and_traces_once(key: str, what: str) -> None:
    s = ALL_CASES[key]
    ref = _eval(s, what, STEPS)
    traces = []

    def f(count):  # type: ignore[no-untyped-def]
        traces.append(1)
        return _eval(s, what, count)

    jf = jax.jit(f)
    out = jf(jnp.arange(N))
    assert isinstance(out, jax.Array) and out.dtype == jnp.float32 and out.shape == (N,)
    np.testing.assert_allclose(np.asarray(out, dtype=np.float64), ref, rtol=1e-5, atol=_atol(s, 1e-6, what))
    # eager JAX gives the same numbers
    eager = np.asarray(_eval(s, what, jnp.arange(N)), dtype=np.float64)
    np.testing.assert_allclose(eager, ref, rtol=1e-5, atol=_atol(s, 1e-6, what))
    # a scalar count, as optax passes it: one trace for every value
    jf_count = jax.jit(f)
    traces.clear()
    for t in (0, 1, 5, 999, N - 1):
        v = jf_count(jnp.asarray(t, dtype=jnp.int32))
        assert float(v) == pytest.approx(ref[t], rel=1e-5, abs=_atol(s, 1e-6, what)), t
    assert len(traces) == 1


@pytest.mark.parametrize(
    "s",
    [
        cyclr.cyclic(base_lr=1e-3, max_lr=1e-2, step_size=37),
        cyclr.cyclic(base_lr=1e-3, max_lr=1e-2, step_size=37, step_size_down=61, shape="sine"),
        cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=37),
        cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=250, step_size_down=1000),
        # 4 * 536870787 = 2**31 - 500: a decay boundary inside the window
        cyclr.step_decay(lr=0.1, step_size=536870787, gamma=0.5),
    ],
    ids=["cyclic", "cyclic-sine", "triangular", "triangular-asym", "step_decay"],
)
def test_jax_int32_counts_near_2_31(s: cyclr.Schedule) -> None:
    steps = np.arange(2**31 - 1000, 2**31, dtype=np.int64)
    ref = s(steps.astype(np.float64))
    counts = jnp.asarray(steps.astype(np.int32))
    assert counts.dtype == jnp.int32 and int(counts[-1]) == 2**31 - 1
    for out in (jax.jit(s)(counts), s(counts)):
        np.testing.assert_allclose(np.asarray(out, dtype=np.float64), ref, rtol=1e-5, atol=0)
    assert np.ptp(ref) > 0.01 * s.bounds[1]  # the window really moves


@pytest.mark.parametrize(
    "s",
    [
        cyclr.exponential(lr=0.1, gamma=0.99),
        cyclr.exp_range(base_lr=0.0, max_lr=1.0, step_size=5, gamma=0.999),
        cyclr.cyclic(base_lr=0.0, max_lr=1.0, step_size=8, decay=0.9995, decay_every="step"),
    ],
    ids=["exponential", "exp_range", "cyclic-step-decay"],
)
def test_float32_per_step_decay_is_relatively_accurate(s: cyclr.Schedule) -> None:
    """gamma**t in float32 must not round gamma first: float32(0.999)**t is off by t * 1.3e-8 relatively.

    exp(t * log(gamma)) with log(gamma) taken in float64 stays within ~1e-6 over 10**4 steps.
    """
    ref = s(STEPS)
    keep = ref > 1e-30 * s.bounds[1]
    for out in (s(jnp.arange(N)), jax.jit(s)(jnp.arange(N)), s(torch.arange(N, dtype=torch.float32))):
        got = np.asarray(out, dtype=np.float64)
        np.testing.assert_allclose(got[keep], ref[keep], rtol=1e-5, atol=0, err_msg=type(out).__name__)


@pytest.mark.parametrize("key", CASES)
def test_numpy_million_steps(key: str) -> None:
    s = ALL_CASES[key]
    t = np.arange(1_000_000)
    v = s(t)
    assert v.shape == t.shape and v.dtype == np.float64
    lo, hi = s.bounds
    assert np.all(np.isfinite(v))
    assert np.all(v >= lo - 1e-12 * hi) and np.all(v <= hi * (1 + 1e-12))
    np.testing.assert_allclose(v[[0, 12_345, 999_999]], [s(0), s(12_345), s(999_999)], rtol=1e-12, atol=0)


@pytest.mark.parametrize("key", ["triangular", "one_cycle", "warmup", "join", "mirror"])
def test_negative_steps_raise_on_the_host_and_clamp_in_tensors(key: str) -> None:
    """A NumPy step is checked like a Python one (issue 11: arrays were clamped silently while a
    Python step raised); a tensor step may be traced or on a device, so it is clamped at 0."""
    s = ALL_CASES[key]
    for bad in (np.array([-5, -1, 0]), np.array([0.0, np.nan]), np.array([np.inf])):
        with pytest.raises(ValueError, match="step must hold finite numbers >= 0"):
            s(bad)
    np.testing.assert_array_equal(s(np.array([0, 0], dtype=np.uint8)), np.full(2, s(0)))
    assert torch.equal(s(torch.tensor([-3, 0])), torch.full((2,), s(0), dtype=torch.float64))


@pytest.mark.parametrize("bad", [-1, -1.5, -(2**40), math.nan, math.inf, -math.inf])
def test_bad_python_steps_raise_value_error(bad: float) -> None:
    s = ALL_CASES["triangular"]
    with pytest.raises(ValueError, match="step"):
        s(bad)
    with pytest.raises(ValueError, match="step"):
        s.level(bad)


@pytest.mark.parametrize("bad", [True, False])
def test_bool_step_raises_type_error(bad: bool) -> None:
    with pytest.raises(TypeError, match="bool"):
        ALL_CASES["cosine"](bad)


@pytest.mark.parametrize("bad", ["10", b"10", None, [1, 2], object()])
def test_unsupported_step_type_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="step must be"):
        ALL_CASES["cosine"](bad)


def test_numpy_string_array_raises_type_error() -> None:
    with pytest.raises(TypeError, match="dtype"):
        ALL_CASES["cosine"](np.array(["1", "2"]))


def test_explicit_namespace() -> None:
    s = ALL_CASES["one_cycle"]
    assert s(np.arange(5), xp="numpy").tolist() == [s(t) for t in range(5)]
    with pytest.raises(ValueError, match="unknown array namespace"):
        s(3, xp="tensorflow")
