"""The JAX/optax range test: functional (the caller's params never change), one jit trace."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import cyclr
import cyclr.jax as cj


def _problem() -> tuple[dict[str, jnp.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 8)).astype("float32")
    y = (x @ rng.standard_normal((8, 1))).astype("float32")
    params = {"w": jnp.zeros((8, 1)), "b": jnp.zeros(1)}
    return params, [(x[i : i + 64], y[i : i + 64]) for i in range(0, 2048, 64)]


def _loss(p: dict[str, jnp.ndarray], batch: tuple[np.ndarray, np.ndarray]) -> jnp.ndarray:
    x, y = batch
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


def test_params_untouched_and_lrs_follow_the_sweep() -> None:
    params, data = _problem()
    copy = jax.tree_util.tree_map(np.array, params)
    result = cj.lr_range_test(_loss, params, data, optimizer="momentum", num_steps=60, progress=False)
    jax.tree_util.tree_map(np.testing.assert_array_equal, copy, jax.tree_util.tree_map(np.array, params))
    expected = 1e-7 * (10.0 / 1e-7) ** (np.arange(len(result.lrs)) / 59)
    np.testing.assert_allclose(result.lrs, expected, rtol=1e-12)
    assert result.info["steps_per_epoch"] == len(data)


def test_first_loss_is_the_initial_loss_and_sweeps_are_independent() -> None:
    params, data = _problem()
    result = cj.lr_range_test(_loss, params, data, optimizer="momentum", num_steps=30, repeats=2, progress=False)
    # the loss recorded for step 0 is computed at the initial parameters, before the update
    assert result.curves[0].losses[0] == pytest.approx(float(_loss(params, data[0])), rel=1e-6)
    used = len(result.curves[0].lrs)  # the first sweep may stop early (divergence)
    assert result.curves[1].losses[0] == pytest.approx(float(_loss(params, data[used % len(data)])), rel=1e-6)


def test_finds_the_descent_and_a_schedule() -> None:
    params, data = _problem()
    result = cj.lr_range_test(_loss, params, data, optimizer=lambda lr: optax.adam(lr), progress=False)
    lo, hi = result.bounds
    assert 1e-6 < lo < hi < 10
    sched = result.schedule("triangular", epochs=8)
    assert isinstance(sched, cyclr.Triangular) and sched.step_size == 4 * len(data)


def test_one_trace_for_the_whole_sweep() -> None:
    params, data = _problem()
    traces = []

    def loss(p: dict[str, jnp.ndarray], batch: tuple[np.ndarray, np.ndarray]) -> jnp.ndarray:
        traces.append(1)  # runs at trace time only
        return _loss(p, batch)

    cj.lr_range_test(loss, params, data, optimizer="adam", num_steps=40, progress=False)
    assert len(traces) <= 2  # the train step's grad trace (+ evaluate is unused without val_data)


def test_the_optimizer_is_named_and_recorded() -> None:
    params, data = _problem()
    with pytest.raises(TypeError, match="optimizer"):
        cj.lr_range_test(_loss, params, data, num_steps=10, progress=False)  # type: ignore[call-arg]
    with pytest.raises(cyclr.InvalidParameterError, match=r"'optimizer' must be one of \['adam'.*got 'sgdd'"):
        cj.lr_range_test(_loss, params, data, optimizer="sgdd", progress=False)
    with pytest.raises(cyclr.InvalidParameterError, match="pass the function that builds it"):
        cj.lr_range_test(_loss, params, data, optimizer=optax.adam(1e-3), progress=False)  # type: ignore[arg-type]
    with pytest.raises(cyclr.InvalidParameterError, match="returned int"):
        cj.lr_range_test(_loss, params, data, optimizer=lambda lr: 3, progress=False)  # type: ignore[arg-type,return-value]
    by_name = cj.lr_range_test(_loss, params, data, optimizer="adam", num_steps=20, progress=False)
    by_factory = cj.lr_range_test(_loss, params, data, optimizer=optax.adam, num_steps=20, progress=False)
    assert by_name.info["optimizer"] == "adam" and by_factory.info["optimizer"] == "adam"
    np.testing.assert_array_equal(by_name.losses, by_factory.losses)  # the name means optax's defaults
    sgd = cj.lr_range_test(_loss, params, data, optimizer="sgd", num_steps=20, progress=False)
    assert not np.array_equal(sgd.losses[1:], by_name.losses[1:])  # the optimizer really changes the sweep
