"""The closed-loop CLR controller: validation, configuration as data, each rule on a loss stream
built to trigger it (checked against the closed form), one implementation giving the same numbers
on Python, NumPy, torch and JAX (jit, traced once), and the PyTorch adapter (observe, resume)."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import pytest

import cyclr
from cyclr._validation import InvalidParameterError
from cyclr.controllers import ClosedLoopCLR, adaptive, controller_from_config


def run(
    ctl: ClosedLoopCLR, losses: list[float], xp: str = "python", conv: Any = float
) -> tuple[list[float], dict[str, Any]]:
    """The LR used at each step of a loss stream, and the final state."""
    state = {k: conv(v) for k, v in ctl.init().items()}
    lrs = []
    for loss in losses:
        lrs.append(float(ctl.values(state, xp)[0]))
        state = ctl.update(state, conv(loss), xp)
    return lrs, state


def cosine_cycle(peak: float, div: float, pos: float, period: float) -> float:
    floor = peak / div
    return floor + (peak - floor) * (0.5 - 0.5 * math.cos(2 * math.pi * pos / period))


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_lr": -0.1, "period": 10}, "max_lr"),
        ({"max_lr": float("nan"), "period": 10}, "max_lr"),
        ({"max_lr": 0.1}, "period"),
        ({"max_lr": 0.1, "period": 1}, "period"),
        ({"max_lr": 0.1, "total_steps": 1}, "total_steps"),
        ({"max_lr": 0.1, "period": 10, "div": 0.5}, "div"),
        ({"max_lr": 0.1, "period": 10, "smoothing": 1.0}, "smoothing"),
        ({"max_lr": 0.1, "period": 10, "spike": 1.0}, "spike"),
        ({"max_lr": 0.1, "period": 10, "grow": 3.0}, "grow"),
        ({"max_lr": 0.1, "period": 10, "anneal": 1.0}, "anneal"),
        ({"max_lr": 0.1, "period": 10, "improve": -0.1}, "improve"),
        ({"max_lr": 1e3, "period": 10}, "max_lr"),
        ({"max_lr": 0.1, "period": 10.5}, "period"),
        ({"max_lr": 0.1, "period": True}, "period"),
    ],
)
def test_bad_parameters_name_themselves(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidParameterError) as err:
        ClosedLoopCLR(**kwargs)
    assert err.value.param == param and "closed_loop_clr" in str(err.value)


def test_config_round_trip_and_json_state() -> None:
    ctl = adaptive(total_steps=500, max_lr=0.2, div=20.0)
    config = ctl.to_config()
    assert json.loads(json.dumps(config)) == config
    assert controller_from_config(config) == ctl
    _, state = run(ctl, [1.0] * 50)
    assert json.loads(json.dumps(state)) == state
    with pytest.raises(ValueError, match="unknown controller 'nope'"):
        controller_from_config({"name": "nope"})
    with pytest.raises(ValueError, match="unknown parameter"):
        controller_from_config({**config, "warp": 1})


def test_max_lr_from_a_range_test_result_or_none() -> None:
    class Result:
        suggestion = 0.03

    assert adaptive(100, max_lr=Result()).max_lr == 0.03
    with pytest.raises(ValueError, match="max_lr is None"):
        adaptive(100).init()
    with pytest.raises(InvalidParameterError, match="max_lr"):
        adaptive(100, max_lr="fast")


# ----------------------------------------------------------------------------- the rules
def test_falling_loss_grows_the_peak_by_grow_each_cycle() -> None:
    """A loss still falling at the top of every ascent: the cycle is a cosine from max_lr/div to
    max_lr, and each cycle's peak is ``grow`` times the last."""
    ctl = ClosedLoopCLR(max_lr=0.1, period=20, grow=1.5)
    lrs, state = run(ctl, [1.0 / (1 + t) for t in range(60)])
    for t, lr in enumerate(lrs):
        peak = 0.1 * 1.5 ** (t // 20)
        assert lr == pytest.approx(cosine_cycle(peak, 10.0, t % 20, 20), rel=1e-12), t
    assert state["cycle"] == 3 and state["peak"] == pytest.approx(0.1 * 1.5**3)


def test_a_rise_on_the_ascent_sets_the_next_peak_to_the_lr_of_the_lowest_loss() -> None:
    ctl = ClosedLoopCLR(max_lr=0.1, period=20, smoothing=0.0, rise=0.05, spike=100.0)
    lrs = [cosine_cycle(0.1, 10.0, t, 20) for t in range(20)]
    # the loss falls until step 6, then rises 10% a step: the lowest loss was at lrs[6]
    losses = [1.0 - 0.05 * t if t <= 6 else 0.7 * 1.1 ** (t - 6) for t in range(10)] + [0.5] * 10
    got, state = run(ctl, losses)
    assert got == pytest.approx(lrs, rel=1e-12)
    assert state["peak"] == pytest.approx(max(lrs[6], 0.05), rel=1e-12)  # damped to x1/2 at most


def test_a_nan_on_the_ascent_turns_into_the_descent_and_halves_the_amplitude() -> None:
    ctl = ClosedLoopCLR(max_lr=0.1, period=20)
    losses = [1.0] * 5 + [math.nan] + [1.0] * 3
    got, state = run(ctl, losses)
    # after step 5 (pos 5 of 20, on the ascent) the position mirrors to 15, then steps to 16
    half = 0.01 + (0.1 - 0.01) / 2
    assert got[6] == pytest.approx(cosine_cycle(half, 10.0 * half / 0.1, 16, 20), rel=1e-12)
    assert state["spikes"] == 1 and state["peak"] == pytest.approx(half)
    assert math.isfinite(state["ema"])  # a NaN never enters the average


def test_a_spike_above_spike_times_the_best_is_a_spike() -> None:
    ctl = ClosedLoopCLR(max_lr=0.1, period=100, smoothing=0.0, spike=2.0)
    _, state = run(ctl, [1.0, 0.9, 1.7])
    assert state["spikes"] == 0
    _, state = run(ctl, [1.0, 0.9, 1.85])
    assert state["spikes"] == 1 and state["pos"] == 100 - 2 + 1


def test_a_spike_on_the_descent_is_left_to_the_descent() -> None:
    """Past the cycle's middle the LR is already falling: a smoothed-loss spike there halves
    nothing (before this rule, a loss that stayed high halved the amplitude every step)."""
    ctl = ClosedLoopCLR(max_lr=0.1, period=20, smoothing=0.0, spike=2.0)
    _, state = run(ctl, [1.0] * 11 + [5.0] * 8)  # steps 11-18: the descent
    assert state["spikes"] == 0 and state["peak"] == 0.1
    _, state = run(ctl, [1.0] * 11 + [math.nan])  # a non-finite loss is a spike anywhere
    assert state["spikes"] == 1


@pytest.mark.parametrize("offset", [0.0, -3.0])
def test_negative_losses_read_the_same_as_positive_ones(offset: float) -> None:
    """A policy-gradient loss can be negative: every rule compares to ``|best|``, so a stream
    shifted below zero rises, spikes and stalls where its magnitude says (not on every step)."""
    ctl = ClosedLoopCLR(max_lr=0.1, period=20, smoothing=0.0, spike=2.0)
    falling = [offset - 0.1 * t for t in range(40)]  # better and better, whatever its sign
    _, state = run(ctl, falling)
    assert state["spikes"] == 0 and state["cycle"] == 2
    assert state["peak"] == pytest.approx(0.1 * 1.5**2)  # still falling at each top: grow, twice
    # on the ascent, a loss above the best by more than (spike - 1) |best| is a spike, whatever the sign
    start = [offset + 1.0 - 0.1 * t for t in range(5)] if offset else [1.0 - 0.1 * t for t in range(5)]
    best = start[-1]
    _, state = run(ctl, [*start, best + 0.9 * abs(best)])
    assert state["spikes"] == 0
    _, state = run(ctl, [*start, best + 1.1 * abs(best)])
    assert state["spikes"] == 1


def test_no_spike_before_the_ema_holds_a_memory_of_the_cycle() -> None:
    """A noisy loss near zero (a policy gradient's) doubles from one step to the next: the first
    ``1 / (1 - smoothing)`` steps of a cycle never read that as a spike (before this rule, such a
    stream ended a cycle every step and drove the LR to ``min_lr``)."""
    ctl = ClosedLoopCLR(max_lr=0.1, period=100, smoothing=0.9)
    assert ctl.memory == pytest.approx(10.0)
    noisy = [0.05, 0.3] * 4  # 8 steps: within the memory
    _, state = run(ctl, noisy)
    assert state["spikes"] == 0 and state["cycle"] == 0
    _, state = run(ctl, [0.05] * 12 + [5.0] * 3)  # a real jump after the memory is a spike
    assert state["spikes"] == 1


def test_a_plateau_never_stretches_a_cycle_past_the_run() -> None:
    ctl = ClosedLoopCLR(max_lr=0.1, total_steps=400, smoothing=0.0, rise=10.0, grow=1.0, anneal=0.1)
    lrs, state = run(ctl, [1.0] * 400)
    assert ctl.first_period == 90 and ctl.period_cap == 360
    assert state["period"] <= 360 and state["peak"] >= ctl.min_lr
    assert all(math.isfinite(x) and x > 0 for x in lrs)


def test_a_plateau_halves_the_amplitude_and_doubles_the_period() -> None:
    ctl = ClosedLoopCLR(max_lr=0.1, period=10, smoothing=0.0, rise=10.0, grow=1.0, improve=0.01)
    _, state = run(ctl, [1.0] * 20)
    # cycle 1 ends no better than cycle 0: amplitude halved (peak -> floor + (peak - floor) / 2)
    assert state["cycle"] == 2 and state["period"] == 20
    assert state["peak"] == pytest.approx(0.01 + 0.09 / 2)


def test_the_budget_ends_in_a_cosine_anneal_to_max_lr_over_final_div() -> None:
    ctl = ClosedLoopCLR(max_lr=0.1, total_steps=100, anneal=0.2, final_div=100.0, grow=1.0)
    assert ctl.anneal_start == 80 and ctl.first_period == 20
    lrs, state = run(ctl, [1.0 / (1 + t) for t in range(101)])
    start = cosine_cycle(state["peak"], 10.0, 0, 20)  # the run enters the anneal at a cycle's start
    assert state["anneal_lr"] == pytest.approx(start)
    for t in range(80, 101):
        frac = (t - 80) / 20
        want = 0.1 / 100 + (start - 0.1 / 100) * (0.5 + 0.5 * math.cos(math.pi * frac))
        assert lrs[t] == pytest.approx(want, rel=1e-12), t
    assert lrs[100] == pytest.approx(0.001)


# ----------------------------------------------------------------------------- one implementation
def _stream(n: int = 300) -> list[float]:
    rng = np.random.default_rng(0)
    ctl = adaptive(total_steps=n, max_lr=0.1)
    state, out = ctl.init(), []
    for t in range(n):
        lr = ctl.values(state)[0]
        loss = 1.0 / (1 + 0.01 * t) + (5 * (lr - 0.3) if lr > 0.3 else 0) + 0.01 * float(rng.standard_normal())
        loss = math.nan if t == 150 else loss
        out.append(loss)
        state = ctl.update(state, loss)
    return out


def test_same_numbers_on_python_numpy_torch_and_jax() -> None:
    torch = pytest.importorskip("torch")
    ctl, stream = adaptive(total_steps=300, max_lr=0.1), _stream()
    want, state = run(ctl, stream)
    assert state["spikes"] >= 1 and state["cycle"] >= 2  # the stream exercises the rules
    got_np, _ = run(ctl, stream, "numpy", np.float64)
    got_torch, _ = run(ctl, stream, "torch", lambda v: torch.tensor(v, dtype=torch.float64))
    assert got_np == want and got_torch == want


def test_jax_jit_traces_once_and_matches() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    ctl, stream = adaptive(total_steps=300, max_lr=0.1), _stream()
    want, _ = run(ctl, stream)
    with jax.enable_x64(True):
        update = jax.jit(lambda s, loss: ctl.update(s, loss, "jax"))
        state = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in ctl.init().items()}
        got = []
        for loss in stream:
            got.append(float(ctl.values(state, "jax")[0]))
            state = update(state, jnp.asarray(loss, dtype=jnp.float64))
        assert update._cache_size() == 1
    assert got == pytest.approx(want, rel=1e-12, abs=0)


# ----------------------------------------------------------------------------- PyTorch
def _loop(sched: Any, opt: Any, losses: list[float]) -> list[float]:
    out = []
    for loss in losses:
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.observe(loss)
        sched.step()
    return out


def test_torch_scheduler_follows_the_controller_and_resumes_exactly() -> None:
    torch = pytest.importorskip("torch")
    import cyclr.torch as ct

    stream = _stream()
    want, _ = run(adaptive(total_steps=300, max_lr=0.1), stream)

    def make() -> tuple[Any, Any]:
        p = torch.nn.Parameter(torch.zeros(3))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        return opt, ct.Scheduler(opt, cyclr.adaptive(total_steps=300), momentum=(0.85, 0.95))

    opt, sched = make()  # max_lr=None: the optimizer's LR, 0.1
    assert sched.controller.max_lr == 0.1  # type: ignore[union-attr]
    got = _loop(sched, opt, stream[:120])
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    opt2, sched2 = make()
    sched2.load_state_dict(torch.load(buf, weights_only=True))
    got += _loop(sched2, opt2, stream[120:])
    assert got == pytest.approx(want, rel=1e-12)
    level = (0.95 - opt2.param_groups[0]["momentum"]) / 0.1
    assert 0.0 <= level <= 1.0


def test_torch_observe_refuses_a_fixed_schedule_and_bad_losses() -> None:
    torch = pytest.importorskip("torch")
    import cyclr.torch as ct

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    fixed = ct.Scheduler(opt, cyclr.constant(0.1))
    with pytest.raises(TypeError, match=r"observe\(\) feeds an adaptive controller"):
        fixed.observe(1.0)
    sched = ct.Scheduler(opt, cyclr.adaptive(total_steps=10))
    with pytest.raises(InvalidParameterError, match="loss"):
        sched.observe("low")  # type: ignore[arg-type]
    sched.observe(torch.tensor(float("inf")))  # handled as a spike, not raised
    assert sched.controller_state["spikes"] == 1
    with pytest.raises(InvalidParameterError, match="momentum"):
        ct.Scheduler(opt, cyclr.adaptive(total_steps=10), momentum=cyclr.constant(0.9))
    bad = sched.state_dict()
    bad["controller_state"] = {**bad["controller_state"], "peak": math.nan}
    with pytest.raises(InvalidParameterError, match="controller_state"):
        sched.load_state_dict(bad)


# ----------------------------------------------------------------------------- JAX / optax
def test_optax_adaptive_matches_the_stream_and_traces_once() -> None:
    """``cyclr.jax.adaptive``: the LR each update uses is the controller's for the losses passed
    as ``loss=`` (the same numbers as the torch Scheduler for the same stream), momentum mirrors
    the level, and one jit trace serves every step."""
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    import cyclr.jax as cj

    jnp = jax.numpy
    ctl, stream = adaptive(total_steps=300, max_lr=0.1), _stream()
    want, _ = run(ctl, stream)
    with jax.enable_x64(True):
        opt = cj.adaptive(ctl, optax.sgd, momentum=(0.85, 0.95))
        params = {"w": jnp.zeros(3)}
        state = opt.init(params)
        step = jax.jit(lambda st, loss: opt.update({"w": jnp.ones(3)}, st, params, loss=loss))
        got, moms = [], []
        for loss in stream:
            _, state = step(state, jnp.asarray(loss))
            used = cj.hyperparams(state)
            got.append(float(used["learning_rate"]))
            moms.append(float(used["momentum"]))
        assert step._cache_size() == 1
    assert got == pytest.approx(want, rel=1e-12)
    assert all(0.85 - 1e-12 <= m <= 0.95 + 1e-12 for m in moms) and len(set(moms)) > 10


def test_optax_adaptive_drives_adams_b1_and_needs_max_lr() -> None:
    pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    import cyclr.jax as cj

    opt = cj.adaptive(adaptive(total_steps=50, max_lr=1e-3), optax.adam, momentum=(0.85, 0.95))
    state = opt.init({"w": np.zeros(2, np.float32)})
    _, state = opt.update({"w": np.ones(2, np.float32)}, state, None, loss=1.0)
    used = cj.hyperparams(state)
    assert float(used["learning_rate"]) == pytest.approx(1e-4) and float(used["b1"]) == pytest.approx(0.95)
    with pytest.raises(InvalidParameterError, match="max_lr"):
        cj.adaptive(adaptive(total_steps=50), optax.sgd)
    with pytest.raises(InvalidParameterError, match="momentum"):
        cj.adaptive(adaptive(total_steps=50, max_lr=0.1), optax.sgd, momentum=(0.9, 1.2))


# ----------------------------------------------------------------------------- the bench
def test_controller_driver_sets_what_the_controller_says() -> None:
    """The bench's ControllerDriver: after each observed loss, the optimizer holds the controller's
    LR and mirrored momentum for that stream, in every param group (ratios kept)."""
    torch = pytest.importorskip("torch")
    from cyclr.bench.driver import ControllerDriver

    stream = _stream(120)
    ctl = adaptive(total_steps=120, max_lr=0.1)
    want, _ = run(ctl, stream)
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}], momentum=0.9)
    driver = ControllerDriver(ctl, momentum=(0.85, 0.95))
    driver.attach(opt)
    got = []
    for loss in stream:
        got.append(opt.param_groups[0]["lr"])
        assert opt.param_groups[1]["lr"] == pytest.approx(got[-1] / 10, rel=1e-12)
        driver.observe(loss)
        driver.step()
    assert got == pytest.approx(want, rel=1e-12)
    level = (0.95 - opt.param_groups[0]["momentum"]) / 0.1
    assert 0 <= level <= 1
    config = driver.to_config()
    assert json.loads(json.dumps(config))["controller"] == ctl.to_config()


def test_ddp_ranks_set_the_same_lr(tmp_path: Any) -> None:
    """Under DDP (2 gloo processes, torchrun) each rank has its own loss, the controller sees
    their average: both ranks use the same LRs, those of the controller on the averaged stream."""
    from conftest import torchrun_two_ranks

    torchrun_two_ranks("ddp_adaptive_worker.py", tmp_path)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == 2 and r0["losses"] != r1["losses"]
    assert r0["lrs"] == r1["lrs"] and r0["state"] == r1["state"]
    averaged = [(a + b) / 2 for a, b in zip(r0["losses"], r1["losses"])]
    want, _ = run(adaptive(total_steps=60, max_lr=0.05), averaged)
    assert r0["lrs"] == pytest.approx(want, rel=1e-9)
    assert max(want) > 3 * min(want)


# ----------------------------------------------------------------------------- the fast path
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import n_examples  # noqa: E402


@settings(max_examples=n_examples(60), deadline=None)
@given(
    losses=st.lists(
        st.one_of(st.floats(0.0, 10.0), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1e300])),
        min_size=1,
        max_size=250,
    ),
    total=st.one_of(st.none(), st.integers(2, 300)),
    smoothing=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
    grow=st.floats(1.0, 2.0),
)
def test_the_plain_float_update_is_the_ops_update_bit_for_bit(
    losses: list[float], total: int | None, smoothing: float, grow: float
) -> None:
    """``update`` on Python numbers takes a hand-written float path (observe() runs every step);
    it must give exactly the state and LRs of the one formula written with Ops."""
    from cyclr._ops import get_ops

    py = get_ops("python")
    ctl = ClosedLoopCLR(max_lr=0.1, total_steps=total, period=None if total else 17, smoothing=smoothing, grow=grow)
    fast, generic = ctl.init(), ctl.init()
    for loss in losses:
        assert ctl._lr_python(fast) == ctl.values(generic)[0]
        fast, generic = ctl.update(fast, loss), ctl._update(dict(generic), loss, py)
        assert fast == generic


def test_plot_and_show_refuse_a_controller_and_say_why(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from cyclr.cli import cli

    spec = tmp_path / "adaptive.json"
    spec.write_text(json.dumps(adaptive(total_steps=100, max_lr=0.1).to_config()))
    for command in (["plot", str(spec), "-o", str(tmp_path / "a.png")], ["show", str(spec)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2
        text = " ".join(result.output.split())
        assert "'closed_loop_clr' is an adaptive controller, not a schedule" in text and "recorded run" in text
    assert not (tmp_path / "a.png").exists()
    with pytest.raises(ValueError, match="adaptive controller"):
        cyclr.from_config({"name": "closed_loop_clr", "max_lr": 0.1, "period": 10})


def test_torch_restores_the_last_good_weights_on_a_non_finite_loss() -> None:
    """``restore_on_nan=True``: the parameters and optimizer state of the last cycle start come
    back when a non-finite loss is observed; the controller halves its amplitude as well."""
    torch = pytest.importorskip("torch")
    import cyclr.torch as ct

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = ct.Scheduler(opt, cyclr.adaptive(max_lr=0.1, period=10), restore_on_nan=True)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    for _ in range(13):  # past the first cycle's end (step 10): a copy was kept there
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched.controller_state["cycle"] == 0:
            kept = [p.detach().clone() for p in model.parameters()]
            kept_buffers = [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
        sched.observe(loss)
        sched.step()
    with torch.no_grad():
        model.weight.fill_(float("nan"))  # the blow-up
    sched.observe(float("nan"))
    assert sched.restores == 1 and sched.controller_state["spikes"] == 1
    for p, want in zip(model.parameters(), kept):
        assert torch.equal(p, want)
    for p, want in zip(model.parameters(), kept_buffers):
        assert torch.equal(opt.state[p]["momentum_buffer"], want)
    sched.step()
    assert math.isfinite(opt.param_groups[0]["lr"])
    with pytest.raises(InvalidParameterError, match="restore_on_nan"):
        ct.Scheduler(opt, cyclr.constant(0.1), restore_on_nan=True)
