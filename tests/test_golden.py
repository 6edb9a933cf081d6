"""Golden values: every example against its closed form, written out here by hand.

The reference functions below restate each schedule's definition with the ``math`` module (and
plain loops where that is the clearest statement), independently of cyclr's implementation. Steps
cover 0, 1, a mid-cycle, phase/cycle boundaries, the horizon and past it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyclr
from conftest import ALL_CASES, EXAMPLES, STRATEGIES, n_examples

RTOL = 1e-12
Ref = Callable[[int], float]


# ------------------------------------------------------------------------------- closed forms
def ref_constant(lr: float) -> Ref:
    return lambda t: lr


def ref_cyclic(
    base: float,
    peak: float,
    up: float,
    down: float | None = None,
    shape: str = "triangular",
    decay: float = 1.0,
    every: str = "cycle",
    cycles: int | None = None,
) -> Ref:
    down = up if down is None else down

    def f(t: int) -> float:
        length = up + down
        k = math.floor(t / length)
        pos = t - k * length
        s = pos / up if pos <= up else (length - pos) / down  # triangle wave 0 -> 1 -> 0
        if shape == "sine":
            s = math.sin(math.pi * s / 2)
        elif shape == "cosine":
            s = (1 - math.cos(math.pi * s)) / 2
        if cycles is not None and k >= cycles:
            return base
        amp = decay ** (k if every == "cycle" else t)
        return base + (peak - base) * s * amp

    return f


def ref_sgdr(
    peak: float, period: float, floor: float = 0.0, mult: float = 1.0, decay: float = 1.0, cycles: int | None = None
) -> Ref:
    def f(t: int) -> float:
        if mult < 1 and t >= period / (1 - mult):  # all (infinitely many) shrinking cycles used up
            return floor
        start, length, k = 0.0, float(period), 0
        while t >= start + length:
            start, length, k = start + length, length * mult, k + 1
        if cycles is not None and k >= cycles:
            return floor
        return floor + (peak - floor) * decay**k * (1 + math.cos(math.pi * (t - start) / length)) / 2

    return f


def _anneal(kind: str, a: float, b: float, pct: float) -> float:
    if kind == "cos":
        return b + (a - b) * (1 + math.cos(math.pi * pct)) / 2
    return a + (b - a) * pct


def _phases(t: float, phases: list[tuple[float, float, float]], kind: str) -> float:
    """torch OneCycleLR's phase walk; after the last phase's end the final value holds."""
    start = 0.0
    for i, (end, a, b) in enumerate(phases):
        if t <= end or i == len(phases) - 1:
            return _anneal(kind, a, b, min((t - start) / (end - start), 1.0))
        start = end
    raise AssertionError


def ref_one_cycle(
    peak: float,
    total: int,
    pct: float = 0.3,
    div: float = 25.0,
    final_div: float = 1e4,
    anneal: str = "cos",
    three_phase: bool = False,
) -> Ref:
    init = peak / div
    floor = init / final_div
    if three_phase:
        phases = [(pct * total - 1, init, peak), (2 * pct * total - 2, peak, init), (total - 1, init, floor)]
    else:
        phases = [(pct * total - 1, init, peak), (total - 1, peak, floor)]
    return lambda t: _phases(t, phases, anneal)


def ref_one_cycle_momentum(total: int, low: float, high: float, pct: float = 0.3) -> Ref:
    phases = [(pct * total - 1, high, low), (total - 1, low, high)]
    return lambda t: _phases(t, phases, "cos")


def ref_cosine(peak: float, total: int, floor: float = 0.0) -> Ref:
    return lambda t: floor + (peak - floor) * (1 + math.cos(math.pi * min(t, total) / total)) / 2


def ref_step_decay(lr: float, size: int, gamma: float) -> Ref:
    return lambda t: lr * gamma ** (t // size)


def ref_multistep(lr: float, milestones: list[int], gamma: float) -> Ref:
    return lambda t: lr * gamma ** sum(1 for m in milestones if t >= m)


def ref_exponential(lr: float, gamma: float, every: int = 1, staircase: bool = False) -> Ref:
    return lambda t: lr * gamma ** (t // every if staircase else t / every)


def ref_polynomial(lr: float, total: int, power: float, end: float = 0.0) -> Ref:
    return lambda t: end + (lr - end) * (1 - min(t, total) / total) ** power


def ref_linear(start: float, end: float, total: int) -> Ref:
    return lambda t: start + (end - start) * min(t, total) / total


def ref_wsd(
    peak: float, warm: int, stable: int, decay: int, floor: float = 0.0, wshape: str = "linear", dshape: str = "cosine"
) -> Ref:
    def f(t: int) -> float:
        if t < warm:
            p = t / warm
            rise = {"linear": p, "cosine": (1 - math.cos(math.pi * p)) / 2, "1-sqrt": 1 - math.sqrt(1 - p)}[wshape]
            return floor + (peak - floor) * rise
        if t < warm + stable:
            return peak
        if t < warm + stable + decay:
            p = (t - warm - stable) / decay
            fall = {"linear": 1 - p, "cosine": (1 + math.cos(math.pi * p)) / 2, "1-sqrt": 1 - math.sqrt(p)}[dshape]
            return floor + (peak - floor) * fall
        return floor

    return f


def ref_warmup(inner: Ref, steps: int, start: float = 0.0, shape: str = "linear") -> Ref:
    target = inner(0)

    def f(t: int) -> float:
        if t >= steps:
            return inner(t - steps)
        p = t / steps
        if shape == "exponential":
            return start * (target / start) ** p
        if shape == "cosine":
            return start + (target - start) * (1 - math.cos(math.pi * p)) / 2
        return start + (target - start) * p

    return f


def ref_join(parts: list[Ref], boundaries: list[int]) -> Ref:
    def f(t: int) -> float:
        i = sum(1 for b in boundaries if t >= b)
        return parts[i](t - (boundaries[i - 1] if i else 0))

    return f


# ------------------------------------------------------------------------------- the table
# key -> (closed form, steps to check, expected horizon)
GOLDEN: dict[str, tuple[Ref, list[int], int | None]] = {
    "constant": (ref_constant(0.05), [0, 1, 10, 10**6], None),
    "cyclic": (
        ref_cyclic(1e-4, 1e-2, 7, 13, decay=0.9, cycles=4),
        [0, 1, 3, 7, 10, 19, 20, 27, 40, 47, 67, 79, 80, 90],
        80,
    ),
    "triangular": (ref_cyclic(1e-3, 6e-3, 10), [0, 1, 5, 10, 15, 20, 25, 10**6 + 5], None),
    "triangular2": (ref_cyclic(1e-3, 6e-3, 4, 6, decay=0.5), [0, 1, 4, 7, 10, 14, 24, 34, 1000], None),
    "exp_range": (ref_cyclic(1e-3, 1e-2, 5, decay=0.999, every="step"), [0, 1, 5, 7, 10, 1000, 1005], None),
    "cosine": (ref_cosine(0.1, 100, 1e-3), [0, 1, 25, 50, 99, 100, 110], 100),
    "sgdr": (
        ref_sgdr(0.1, 10, 1e-3, mult=2, decay=0.8, cycles=3),
        [0, 1, 5, 9, 10, 20, 29, 30, 50, 69, 70, 80],
        70,
    ),
    "one_cycle": (ref_one_cycle(0.1, 100), [0, 1, 15, 28, 29, 30, 64, 98, 99, 100, 110], 100),
    "step_decay": (ref_step_decay(0.1, 30, 0.5), [0, 1, 29, 30, 59, 60, 95, 3000], None),
    "multistep": (ref_multistep(0.1, [30, 80], 0.1), [0, 29, 30, 79, 80, 1000], None),
    "exponential": (ref_exponential(0.1, 0.99), [0, 1, 10, 100, 1000], None),
    "polynomial": (ref_polynomial(0.1, 100, 2.0, 1e-3), [0, 1, 50, 99, 100, 110], 100),
    "linear": (ref_linear(0.01, 0.1, 50), [0, 1, 25, 49, 50, 60], 50),
    "wsd": (ref_wsd(0.1, 10, 50, 40, 1e-3), [0, 1, 5, 9, 10, 35, 59, 60, 61, 80, 99, 100, 110], 100),
    "warmup": (ref_warmup(ref_cosine(0.1, 90, 1e-3), 10), [0, 1, 5, 9, 10, 11, 55, 99, 100, 110], 100),
    "join": (
        ref_join([ref_cyclic(1e-3, 1e-2, 5), ref_cosine(0.05, 40)], [25]),
        [0, 1, 5, 24, 25, 26, 45, 64, 65, 75],
        65,
    ),
    "mirror": (ref_one_cycle_momentum(100, 0.85, 0.95), [0, 1, 15, 29, 30, 64, 99, 100, 110], 100),
    # ---- variants
    "cyclic-seed": (ref_cyclic(1e-5, 1e-2, 5, decay=0.95), [0, 3, 5, 8, 10, 12, 15, 20, 25, 1005], None),
    "cyclic-sine": (ref_cyclic(1e-3, 1e-2, 6, shape="sine", cycles=3), [0, 1, 3, 6, 9, 12, 15, 35, 36, 46], 36),
    "cyclic-cosine-step-decay": (
        ref_cyclic(1e-3, 1e-2, 8, shape="cosine", decay=0.99, every="step"),
        [0, 1, 4, 8, 12, 16, 24, 100, 1000],
        None,
    ),
    "cyclic-float-step": (
        ref_cyclic(1e-3, 1e-2, 2.5, 4.25),
        [0, 1, 2, 3, 5, 6, 7, 13, 27, 28, 1000],
        None,
    ),
    "sgdr-mult3": (ref_sgdr(0.1, 10, mult=3), [0, 1, 9, 10, 11, 39, 40, 41, 129, 130, 131, 400, 1210], None),
    "sgdr-mult1.5": (
        ref_sgdr(0.1, 10, 1e-3, mult=1.5, decay=0.9),
        [0, 5, 9, 10, 11, 24, 25, 26, 47, 48, 81, 82, 1000],
        None,
    ),
    "sgdr-mult0.5": (ref_sgdr(0.1, 10, 1e-3, mult=0.5), [0, 5, 9, 10, 12, 14, 15, 16, 17, 18, 19, 20, 30], 20),
    "sgdr-mult1": (ref_sgdr(0.1, 7, decay=0.5), [0, 3, 6, 7, 10, 14, 21, 70, 700], None),
    "one_cycle-3phase-linear": (
        ref_one_cycle(0.1, 100, anneal="linear", three_phase=True),
        [0, 1, 15, 29, 30, 45, 58, 59, 60, 80, 99, 100, 110],
        100,
    ),
    "exponential-staircase": (ref_exponential(0.1, 0.5, 10, staircase=True), [0, 9, 10, 19, 20, 55, 1000], None),
    "wsd-1sqrt": (
        ref_wsd(0.1, 10, 20, 30, wshape="1-sqrt", dshape="1-sqrt"),
        [0, 1, 5, 9, 10, 29, 30, 31, 45, 59, 60, 70],
        60,
    ),
    "warmup-exponential": (
        ref_warmup(ref_step_decay(0.1, 20, 0.1), 10, 1e-4, "exponential"),
        [0, 1, 5, 9, 10, 29, 30, 100],
        None,
    ),
    "warmup-linear-sgdr": (ref_warmup(ref_sgdr(0.1, 10, mult=2), 5, 1e-3), [0, 1, 4, 5, 10, 15, 35, 75], None),
    "join-3": (
        ref_join(
            [ref_linear(0.0, 0.1, 10), ref_cyclic(1e-3, 0.1, 5, shape="sine"), ref_exponential(0.01, 0.9)], [10, 40]
        ),
        [0, 5, 9, 10, 12, 15, 39, 40, 41, 100],
        None,
    ),
    "mirror-triangular2": (
        lambda t: 0.9 - 0.1 * (ref_cyclic(1e-3, 1e-2, 5, decay=0.5)(t) - 1e-3) / (1e-2 - 1e-3),
        [0, 1, 5, 10, 15, 20, 25],
        None,
    ),
}


def test_golden_table_covers_every_case() -> None:
    assert set(GOLDEN) == set(ALL_CASES)


@pytest.mark.parametrize("key", list(GOLDEN))
def test_golden(key: str) -> None:
    s = ALL_CASES[key]
    ref, steps, horizon = GOLDEN[key]
    expected = np.array([ref(t) for t in steps])
    got_python = np.array([s(t) for t in steps])
    got_numpy = s(np.array(steps))
    np.testing.assert_allclose(got_python, expected, rtol=RTOL, atol=0, err_msg=f"{key} (python) at {steps}")
    np.testing.assert_allclose(got_numpy, expected, rtol=RTOL, atol=0, err_msg=f"{key} (numpy) at {steps}")
    assert s.horizon == horizon
    if horizon is not None:
        final = ref(horizon)
        for t in (horizon, horizon + 1, horizon + 10, horizon + 10**6):
            assert s(t) == pytest.approx(final, rel=RTOL, abs=0)


# ------------------------------------------------------------------------------- named facts
def test_seed_default() -> None:
    s = cyclr.from_config(cyclr.SEED_DEFAULT)
    assert s == cyclr.cyclic(base_lr=1e-5, max_lr=1e-2, step_size=5, decay=0.95)
    amp = 1e-2 - 1e-5
    expected = {
        0: 1e-5,
        1: 1e-5 + amp * 0.2,
        5: 1e-2,
        8: 1e-5 + amp * 0.4,
        10: 1e-5,
        15: 1e-5 + amp * 0.95,
        25: 1e-5 + amp * 0.95**2,
        35: 1e-5 + amp * 0.95**3,
    }
    for t, v in expected.items():
        assert s(t) == pytest.approx(v, rel=RTOL, abs=0), t
    # the second peak is 1e-5 + 0.95 * (1e-2 - 1e-5) = 0.0095005, not 0.0095 (the Cyclic docstring's claim)
    assert s(15) == pytest.approx(0.0095005, rel=RTOL)


@pytest.mark.parametrize(
    "module",
    ["cyclr", "cyclr.schedules._base", "cyclr.schedules._basic", "cyclr.schedules._cyclic", "cyclr.schedules._compose"],
)
def test_docstring_examples(module: str) -> None:
    """The printed values in the schedule docstrings are real values."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} failing doctest example(s) in {module} (see stdout)"


def test_cyclic_shapes_at_quarter_points() -> None:
    base, peak = 0.0, 1.0
    sine = cyclr.cyclic(base_lr=base, max_lr=peak, step_size=4, shape="sine")
    cosine = cyclr.cyclic(base_lr=base, max_lr=peak, step_size=4, shape="cosine")
    tri = cyclr.cyclic(base_lr=base, max_lr=peak, step_size=4)
    for t, s in [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0), (6, 0.5), (8, 0.0)]:
        assert tri(t) == pytest.approx(s, rel=RTOL, abs=1e-15)
        assert sine(t) == pytest.approx(math.sin(math.pi * s / 2), rel=RTOL, abs=1e-15)
        assert cosine(t) == pytest.approx((1 - math.cos(math.pi * s)) / 2, rel=RTOL, abs=1e-15)
    assert sine(2) == pytest.approx(math.sqrt(0.5), rel=RTOL)
    assert cosine(2) == pytest.approx(0.5, rel=RTOL)


def test_cyclic_per_step_decay_and_cycle_limit() -> None:
    s = cyclr.cyclic(base_lr=0.01, max_lr=0.11, step_size=5, decay=0.9, decay_every="step", cycles=2)
    assert s(5) == pytest.approx(0.01 + 0.1 * 0.9**5, rel=RTOL)
    assert s(15) == pytest.approx(0.01 + 0.1 * 0.9**15, rel=RTOL)
    assert s(19) == pytest.approx(0.01 + 0.1 * 0.2 * 0.9**19, rel=RTOL)
    assert s.horizon == 20
    for t in (20, 25, 35, 10**9):  # base_lr after 2 cycles
        assert s(t) == 0.01
    np.testing.assert_array_equal(s(np.arange(20, 100)), np.full(80, 0.01))


def test_sgdr_float_multipliers_hold_after_the_geometric_sum() -> None:
    for mult, period in [(0.5, 10), (0.25, 12), (0.75, 8)]:
        s = cyclr.sgdr(max_lr=1.0, period=period, min_lr=0.1, period_mult=mult)
        limit = period / (1 - mult)
        assert s.horizon == math.ceil(limit)
        tail = np.arange(math.ceil(limit), math.ceil(limit) + 1000)
        np.testing.assert_array_equal(s(tail), np.full(tail.shape, 0.1))
        assert s(math.ceil(limit) + 10**9) == 0.1
        assert s(period) == pytest.approx(1.0, rel=RTOL)  # the second cycle restarts at the peak
    s = cyclr.sgdr(max_lr=1.0, period=10, min_lr=0.0, period_mult=1.5, decay=0.5)
    assert s(10) == pytest.approx(0.5, rel=RTOL)  # cycle 1 (length 15) starts at 10 with amplitude 1/2
    assert s(25) == pytest.approx(0.25, rel=RTOL)  # cycle 2 (length 22.5) starts at 25
    assert s(10 + 7.5) == pytest.approx(0.25, rel=RTOL)  # mid cycle 1
    assert s.horizon is None


def test_warmup_shapes() -> None:
    inner = cyclr.constant(0.1)
    lin = cyclr.warmup(inner, steps=4, start_lr=0.02)
    cos = cyclr.warmup(inner, steps=4, start_lr=0.02, shape="cosine")
    exp = cyclr.warmup(inner, steps=4, start_lr=0.001, shape="exponential")
    assert [lin(t) for t in range(6)] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1, 0.1], rel=RTOL)
    half = 0.02 + 0.08 * (1 - math.cos(math.pi / 4)) / 2
    assert [cos(t) for t in range(6)] == pytest.approx([0.02, half, 0.06, 0.1 - (half - 0.02), 0.1, 0.1], rel=RTOL)
    # geometric: 1e-3, 1e-3*100**(1/4), 1e-2, ...
    assert [exp(t) for t in range(6)] == pytest.approx(
        [1e-3, 1e-3 * 100**0.25, 1e-2, 1e-3 * 100**0.75, 0.1, 0.1], rel=RTOL
    )
    assert exp.target == 0.1


def test_join_boundaries_are_exact() -> None:
    a = cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=5)
    b = cyclr.cosine(max_lr=0.05, total_steps=40)
    c = cyclr.linear(start_lr=0.2, end_lr=0.3, total_steps=7)
    j = cyclr.join([a, b, c], [25, 40])
    assert j(24) == a(24)
    assert j(25) == b(0) == 0.05
    assert j(26) == b(1)
    assert j(39) == b(14)
    assert j(40) == c(0) == 0.2
    assert j(47) == c(7) == 0.3
    got = j(np.array([24, 25, 39, 40]))
    np.testing.assert_array_equal(got, [a(24), b(0), b(14), c(0)])


def test_mirror_of_one_cycle_is_one_cycle_momentum() -> None:
    lr = cyclr.one_cycle(max_lr=0.1, total_steps=100)
    m = lr.mirror(0.85, 0.95)
    assert m == cyclr.mirror(lr, 0.85, 0.95)
    assert m(0) == pytest.approx(0.95, rel=RTOL)
    assert m(29) == pytest.approx(0.85, rel=RTOL)  # lr peaks at pct_start*T - 1 = 29
    assert lr(29) == pytest.approx(0.1, rel=RTOL)
    assert m(99) == pytest.approx(0.95, rel=RTOL)
    assert m(10**6) == pytest.approx(0.95, rel=RTOL)
    t = np.arange(100)
    assert np.all(np.diff(m(t[:30])) < 0) and np.all(np.diff(m(t[29:])) > 0)
    np.testing.assert_allclose(m.level(t), 1 - lr.level(t), rtol=0, atol=1e-15)


# ------------------------------------------------------------------------------- properties
FAR = [0, 1, 2**20, 2**31 - 1, 2**31, 2**40, 2**53]


@pytest.mark.parametrize("name", sorted(cyclr.REGISTRY))
def test_far_steps_finite_nonnegative_in_bounds(name: str) -> None:
    @settings(max_examples=n_examples(25), deadline=None)
    @given(s=STRATEGIES[name], extra=st.integers(0, 2**53))
    def check(s: cyclr.Schedule, extra: int) -> None:
        lo, hi = s.bounds
        tol = 1e-9 * max(abs(hi), 1e-300)
        steps = [*FAR, extra]
        for got in ([s(t) for t in steps], s(np.array(steps, dtype=np.int64)), s(np.array(steps, dtype=np.float64))):
            v = np.asarray(got, dtype=np.float64)
            assert np.all(np.isfinite(v)), (s, steps, v)
            assert np.all(v >= 0), (s, steps, v)
            assert np.all(v >= lo - tol) and np.all(v <= hi + tol), (s, s.bounds, steps, v)
            level = np.asarray(s.level(np.array(steps, dtype=np.int64)))
            assert np.all((level >= 0) & (level <= 1)), (s, steps, level)

    check()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_horizon_holds(name: str) -> None:
    s = EXAMPLES[name]
    if s.horizon is None:
        return
    t = np.arange(s.horizon, s.horizon + 500)
    v = s(t)
    np.testing.assert_array_equal(v, np.full(t.shape, v[0]))
    assert s(2**40) == v[0]
