"""Parity with the schedules users already know: torch.optim.lr_scheduler and transformers.

Each torch scheduler is stepped the ordinary way (``scheduler.step()`` once per batch) and the
optimizer's value is read *before* each step, i.e. the value used by optimizer update number t;
cyclr is evaluated once on ``np.arange(n)``. Hypothesis draws the parameters; every run covers at
least 10**4 steps.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch.optim import SGD, Adam
from torch.optim import lr_scheduler as tls

import cyclr
from conftest import n_examples

N = 10_000
RTOL = 1e-6
# No shrinking: one example costs 10**4 torch steps, and shrinking a failure would take minutes.
SETTINGS = settings(max_examples=n_examples(20), deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))

lrs = st.floats(1e-5, 1.0)
momenta = st.floats(0.5, 0.99)


def _optimizer(kind: str, lr: float = 0.1) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(1))]
    if kind == "adam":
        return Adam(params, lr=lr)
    return SGD(params, lr=lr, momentum=0.9)


def _run(
    opt: torch.optim.Optimizer, make: Callable[[torch.optim.Optimizer], tls.LRScheduler], n: int
) -> dict[str, np.ndarray]:
    """Step ``make(opt)`` n times; record lr and momentum (or beta1) before each step."""
    sched = make(opt)
    opt.step()  # no gradients, so nothing moves; keeps torch from warning about the call order
    group = opt.param_groups[0]
    lr, mom = np.empty(n), np.empty(n)
    for t in range(n):
        lr[t] = group["lr"]
        mom[t] = group["betas"][0] if "betas" in group else group.get("momentum", np.nan)
        sched.step()
    return {"lr": lr, "momentum": mom}


def _close(got: np.ndarray, want: np.ndarray, peak: float, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12 * peak)


# ------------------------------------------------------------------------------------ CyclicLR
@st.composite
def clr_params(draw: st.DrawFn) -> dict:
    base = draw(st.floats(0.0, 0.01))
    return {
        "base_lr": base,
        "max_lr": base + draw(st.floats(1e-4, 1.0)),
        # >= 5 steps per half cycle: torch's triangular2 computes 2.0**(cycle - 1), which
        # overflows (OverflowError, in torch) past 1024 cycles
        "up": draw(st.integers(5, 700)),
        "down": draw(st.none() | st.integers(5, 700)),
        "mode": draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
        "gamma": draw(st.floats(0.999, 1.0)),
        "base_m": (bm := draw(momenta)),
        "max_m": bm + draw(st.floats(0.0, 0.99 - bm)),
        "opt": draw(st.sampled_from(["sgd", "adam"])),
    }


@SETTINGS
@given(p=clr_params())
def test_cyclic_lr(p: dict) -> None:
    def make(opt: torch.optim.Optimizer) -> tls.LRScheduler:
        return tls.CyclicLR(
            opt,
            base_lr=p["base_lr"],
            max_lr=p["max_lr"],
            step_size_up=p["up"],
            step_size_down=p["down"],
            mode=p["mode"],
            gamma=p["gamma"],
            base_momentum=p["base_m"],
            max_momentum=p["max_m"],
        )

    ref = _run(_optimizer(p["opt"]), make, N)
    common = {"base_lr": p["base_lr"], "max_lr": p["max_lr"], "step_size": p["up"], "step_size_down": p["down"]}
    if p["mode"] == "triangular":
        s = cyclr.triangular(**common)
    elif p["mode"] == "triangular2":
        s = cyclr.triangular2(**common)
    else:
        s = cyclr.exp_range(**common, gamma=p["gamma"])
    t = np.arange(N)
    _close(s(t), ref["lr"], p["max_lr"])
    _close(s.mirror(p["base_m"], p["max_m"])(t), ref["momentum"], p["max_m"])


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_lr_asymmetric_fixed(mode: str) -> None:
    """A fixed case next to the random ones: 2000 up, 500 down (torch's docs example shape)."""
    make = lambda o: tls.CyclicLR(o, 1e-4, 1e-2, 2000, 500, mode=mode, gamma=0.9999)  # noqa: E731
    ref = _run(_optimizer("sgd"), make, 12_000)
    s = {
        "triangular": cyclr.triangular(base_lr=1e-4, max_lr=1e-2, step_size=2000, step_size_down=500),
        "triangular2": cyclr.triangular2(base_lr=1e-4, max_lr=1e-2, step_size=2000, step_size_down=500),
        "exp_range": cyclr.exp_range(base_lr=1e-4, max_lr=1e-2, step_size=2000, step_size_down=500, gamma=0.9999),
    }[mode]
    t = np.arange(12_000)
    _close(s(t), ref["lr"], 1e-2)
    _close(s.mirror(0.8, 0.9)(t), ref["momentum"], 0.9)


# ------------------------------------------------------------------------------------ OneCycleLR
@st.composite
def one_cycle_params(draw: st.DrawFn) -> dict:
    three = draw(st.booleans())
    return {
        "max_lr": draw(lrs),
        "total": draw(st.integers(N, N + 2000)),
        "pct": draw(st.floats(0.01, 0.45 if three else 0.95)),
        "div": draw(st.floats(1.0, 100.0)),
        "final_div": draw(st.floats(1.0, 1e5)),
        "anneal": draw(st.sampled_from(["cos", "linear"])),
        "three": three,
        "base_m": (bm := draw(momenta)),
        "max_m": bm + draw(st.floats(0.0, 0.99 - bm)),
        "opt": draw(st.sampled_from(["sgd", "adam"])),
    }


@SETTINGS
@given(p=one_cycle_params())
def test_one_cycle_lr(p: dict) -> None:
    def make(opt: torch.optim.Optimizer) -> tls.LRScheduler:
        return tls.OneCycleLR(
            opt,
            max_lr=p["max_lr"],
            total_steps=p["total"],
            pct_start=p["pct"],
            anneal_strategy=p["anneal"],
            div_factor=p["div"],
            final_div_factor=p["final_div"],
            three_phase=p["three"],
            base_momentum=p["base_m"],
            max_momentum=p["max_m"],
        )

    total = p["total"]
    ref = _run(_optimizer(p["opt"]), make, total)  # t = 0 .. T-1
    s = cyclr.one_cycle(
        max_lr=p["max_lr"],
        total_steps=total,
        pct_start=p["pct"],
        div_factor=p["div"],
        final_div_factor=p["final_div"],
        anneal=p["anneal"],
        three_phase=p["three"],
    )
    t = np.arange(total)
    _close(s(t), ref["lr"], p["max_lr"])
    _close(s.mirror(p["base_m"], p["max_m"])(t), ref["momentum"], p["max_m"])


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("three", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_defaults(opt: str, three: bool, anneal: str) -> None:
    make = lambda o: tls.OneCycleLR(o, max_lr=0.1, total_steps=N, anneal_strategy=anneal, three_phase=three)  # noqa: E731
    ref = _run(_optimizer(opt), make, N)
    s = cyclr.one_cycle(max_lr=0.1, total_steps=N, anneal=anneal, three_phase=three)
    t = np.arange(N)
    _close(s(t), ref["lr"], 0.1)
    _close(s.mirror(0.85, 0.95)(t), ref["momentum"], 0.95)
    assert ref["momentum"][0] == 0.95 and s.mirror(0.85, 0.95)(0) == 0.95


# ------------------------------------------------------------------------------------ SGDR
@SETTINGS
@given(
    base=lrs,
    floor_frac=st.floats(0.0, 0.5),
    t0=st.integers(1, 300),
    t_mult=st.integers(1, 3),
)
def test_cosine_annealing_warm_restarts(base: float, floor_frac: float, t0: int, t_mult: int) -> None:
    eta_min = base * floor_frac
    ref = _run(_optimizer("sgd", base), lambda o: tls.CosineAnnealingWarmRestarts(o, t0, t_mult, eta_min), N)
    s = cyclr.sgdr(max_lr=base, period=t0, min_lr=eta_min, period_mult=t_mult)
    _close(s(np.arange(N)), ref["lr"], base)


@pytest.mark.parametrize(("t0", "t_mult"), [(10, 1), (10, 2), (10, 3), (7, 4), (1, 2)])
def test_cosine_annealing_warm_restarts_fixed(t0: int, t_mult: int) -> None:
    ref = _run(_optimizer("sgd", 0.1), lambda o: tls.CosineAnnealingWarmRestarts(o, t0, t_mult, 1e-4), N)
    s = cyclr.sgdr(max_lr=0.1, period=t0, min_lr=1e-4, period_mult=t_mult)
    _close(s(np.arange(N)), ref["lr"], 0.1)
    _close(np.array([s(t) for t in range(N)]), ref["lr"], 0.1)


# ------------------------------------------------------------------------------------ cosine
@SETTINGS
@given(base=lrs, floor_frac=st.floats(0.0, 0.5), t_max=st.integers(N, N + 2000))
def test_cosine_annealing_lr(base: float, floor_frac: float, t_max: int) -> None:
    eta_min = base * floor_frac
    ref = _run(_optimizer("sgd", base), lambda o: tls.CosineAnnealingLR(o, t_max, eta_min), t_max + 1)
    s = cyclr.cosine(max_lr=base, total_steps=t_max, min_lr=eta_min)
    # torch's recursive form drifts by ~1e-12 of the peak near the floor: atol covers it
    _close(s(np.arange(t_max + 1)), ref["lr"], base)


@pytest.mark.parametrize(("t_max", "eta_min"), [(1, 0.0), (7, 0.0), (100, 1e-3), (N, 0.0), (N, 1e-4)])
def test_cosine_annealing_lr_closed_form(t_max: int, eta_min: float) -> None:
    """torch's own closed form (used by ``step(epoch)``) for every t <= T_max, to 1e-12."""
    opt = _optimizer("sgd", 0.1)
    sched = tls.CosineAnnealingLR(opt, t_max, eta_min)
    t = np.arange(t_max + 1)
    closed = np.empty(t.shape)
    for i in t:
        sched.last_epoch = int(i)
        closed[i] = sched._get_closed_form_lr()[0]
    s = cyclr.cosine(max_lr=0.1, total_steps=t_max, min_lr=eta_min)
    np.testing.assert_allclose(s(t), closed, rtol=1e-12, atol=1e-16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # step(epoch) is deprecated but still public
        sched.step(t_max // 2)
    assert opt.param_groups[0]["lr"] == pytest.approx(s(t_max // 2), rel=1e-12)


# ------------------------------------------------------------------------------------ simple decays
@SETTINGS
@given(base=lrs, step_size=st.integers(1, 3000), gamma=st.floats(0.05, 1.0))
def test_step_lr(base: float, step_size: int, gamma: float) -> None:
    ref = _run(_optimizer("sgd", base), lambda o: tls.StepLR(o, step_size, gamma), N)
    _close(cyclr.step_decay(lr=base, step_size=step_size, gamma=gamma)(np.arange(N)), ref["lr"], base)


@SETTINGS
@given(
    base=lrs,
    milestones=st.lists(st.integers(0, N + 100), min_size=1, max_size=6).map(sorted),
    gamma=st.floats(0.05, 1.0),
)
def test_multistep_lr(base: float, milestones: list[int], gamma: float) -> None:
    ref = _run(_optimizer("sgd", base), lambda o: tls.MultiStepLR(o, milestones, gamma), N)
    _close(cyclr.multistep(lr=base, milestones=milestones, gamma=gamma)(np.arange(N)), ref["lr"], base)


@SETTINGS
@given(base=lrs, gamma=st.floats(0.999, 1.0))
def test_exponential_lr(base: float, gamma: float) -> None:
    ref = _run(_optimizer("sgd", base), lambda o: tls.ExponentialLR(o, gamma), N)
    s = cyclr.exponential(lr=base, gamma=gamma)  # decay_steps=1
    np.testing.assert_allclose(s(np.arange(N)), ref["lr"], rtol=RTOL, atol=0)


@SETTINGS
@given(base=lrs, total=st.integers(1, N + 1000), power=st.floats(0.1, 4.0))
def test_polynomial_lr(base: float, total: int, power: float) -> None:
    ref = _run(_optimizer("sgd", base), lambda o: tls.PolynomialLR(o, total, power), N)
    _close(cyclr.polynomial(lr=base, total_steps=total, power=power)(np.arange(N)), ref["lr"], base)


@SETTINGS
@given(
    base=lrs,
    start=st.floats(0.01, 1.0),
    end=st.floats(0.0, 1.0),
    total=st.integers(1, N + 1000),
)
def test_linear_lr(base: float, start: float, end: float, total: int) -> None:
    ref = _run(_optimizer("sgd", base), lambda o: tls.LinearLR(o, start, end, total), N)
    s = cyclr.linear(start_lr=base * start, end_lr=base * end, total_steps=total)
    _close(s(np.arange(N)), ref["lr"], base)


# ------------------------------------------------------------------------------------ transformers
transformers_optimization = pytest.importorskip("transformers.optimization")


@SETTINGS
@given(
    peak=lrs,
    warm=st.integers(0, 3000),
    stable=st.integers(0, 4000),
    decay=st.integers(0, 4000),
    ratio=st.floats(0.0, 0.5),
    wtype=st.sampled_from(["linear", "cosine", "1-sqrt"]),
    dtype=st.sampled_from(["linear", "cosine", "1-sqrt"]),
)
def test_wsd_schedule(peak: float, warm: int, stable: int, decay: int, ratio: float, wtype: str, dtype: str) -> None:
    def make(opt: torch.optim.Optimizer) -> tls.LRScheduler:
        return transformers_optimization.get_wsd_schedule(
            opt,
            num_warmup_steps=warm,
            num_decay_steps=decay,
            num_stable_steps=stable,
            warmup_type=wtype,
            decay_type=dtype,
            min_lr_ratio=ratio,
        )  # num_cycles=0.5: the default half cosine

    n = max(N, warm + stable + decay + 100)
    ref = _run(_optimizer("adam", peak), make, n)
    s = cyclr.wsd(
        max_lr=peak,
        warmup_steps=warm,
        stable_steps=stable,
        decay_steps=decay,
        min_lr=ratio * peak,
        warmup_shape=wtype,
        decay_shape=dtype,
    )
    _close(s(np.arange(n)), ref["lr"], peak)


@SETTINGS
@given(
    lr_init=st.floats(1e-4, 1.0),
    end_frac=st.floats(0.0, 0.5),
    warm=st.integers(1, 3000),
    decay=st.integers(1, 8000),
    power=st.floats(0.5, 3.0),
)
def test_polynomial_decay_with_warmup(lr_init: float, end_frac: float, warm: int, decay: int, power: float) -> None:
    """transformers' LambdaLR multipliers of the optimizer lr, as absolute rates.

    ``get_polynomial_decay_schedule_with_warmup(opt(lr=L), W, T, lr_end=E, power=p)`` is exactly
    ``warmup(polynomial(lr=L, total_steps=T - W, power=p, end_lr=E), steps=W, start_lr=0)``:
    linear 0 -> L over W steps, then ``E + (L - E) * (1 - (t - W)/(T - W))**p``, then E after T.
    (``lr_end`` is an absolute rate there, not a multiplier; ``T`` counts the warm-up steps.)
    """
    lr_end = lr_init * end_frac
    total = warm + decay

    def make(opt: torch.optim.Optimizer) -> tls.LRScheduler:
        return transformers_optimization.get_polynomial_decay_schedule_with_warmup(
            opt, num_warmup_steps=warm, num_training_steps=total, lr_end=lr_end, power=power
        )

    n = max(N, total + 100)
    ref = _run(_optimizer("adam", lr_init), make, n)
    s = cyclr.warmup(cyclr.polynomial(lr=lr_init, total_steps=decay, power=power, end_lr=lr_end), steps=warm)
    _close(s(np.arange(n)), ref["lr"], lr_init)


@SETTINGS
@given(peak=lrs, warm=st.integers(1, 3000), decay=st.integers(N, N + 1000))
def test_cosine_with_warmup(peak: float, warm: int, decay: int) -> None:
    """``get_cosine_schedule_with_warmup(opt(lr=L), W, T)`` = ``warmup(cosine(L, T - W), W)`` for t <= T.

    Past T transformers' half cosine (num_cycles=0.5) turns back up; cyclr holds 0.
    """
    total = warm + decay

    def make(opt: torch.optim.Optimizer) -> tls.LRScheduler:
        return transformers_optimization.get_cosine_schedule_with_warmup(opt, warm, total)

    ref = _run(_optimizer("sgd", peak), make, total + 1)
    s = cyclr.warmup(cyclr.cosine(max_lr=peak, total_steps=decay), steps=warm)
    _close(s(np.arange(total + 1)), ref["lr"], peak)
    assert s(total + 50) == 0.0
