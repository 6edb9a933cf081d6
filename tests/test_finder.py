"""The framework-free LR range test: the sweep, smoothing and stop rule, the suggestion rules on
synthetic curves whose answer is known, and what the result object offers.

References: fastai ``lr_find`` (sweep, bias-corrected EMA with beta 0.98, stop at 4x the best
smoothed loss, ``valley``/``steep``/``minimum``; ANCHORS b8), Smith (2017) for the CLR bounds.
"""

from __future__ import annotations

import json
import math
import warnings

import matplotlib
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conftest import n_examples
from cyclr.finder import (
    CALIBRATED,
    MAX_SPREAD,
    Calibration,
    Curve,
    NoDescentError,
    NoSafeLRError,
    RangeTest,
    RangeTestResult,
    RangeTestWarning,
    clean,
    minimum,
    smith_bounds,
    steepest,
    trend,
    valley,
)
from cyclr.finder._suggest import ema_points
from cyclr.schedules import OneCycle, Triangular

matplotlib.use("Agg")

SUGGESTION_KEYS = {"steepest", "valley", "minimum", "base_lr", "max_lr", "calibrated"}


# ----------------------------------------------------------------------------- synthetic curves
def sweep_lrs(n: int = 100, start: float = 1e-7, end: float = 10.0) -> np.ndarray:
    test = RangeTest(start, end, n)
    return np.array([test.lr(i) for i in range(n)])


def sigmoid_loss(lrs: np.ndarray, centre: float = -3.0, width: float = 0.3, blowup: float = 3.0) -> np.ndarray:
    """A plateau at 3, a sigmoid descent in log10(lr) centred at ``centre`` down to 1, then a
    quadratic blow-up beyond lr = 1e-1 (exactly zero below it, so the steepest descent of the
    whole curve is the sigmoid's centre, analytically)."""
    x = np.log10(lrs)
    return 1.0 + 2.0 / (1.0 + np.exp((x - centre) / width)) + blowup * np.maximum(0.0, x + 1.0) ** 2


def result_from(*curves_losses: np.ndarray, lrs: np.ndarray | None = None, **info: object) -> RangeTestResult:
    """A result whose (smoothed) curves are exactly the given losses."""
    curves = []
    for losses in curves_losses:
        xs = sweep_lrs(len(losses)) if lrs is None else lrs
        curves.append(
            Curve(lrs=list(map(float, xs)), losses=list(map(float, losses)), smoothed=list(map(float, losses)))
        )
        curves[-1].stop_reason = "completed"
    settings_ = {"start_lr": 1e-7, "end_lr": 10.0, "num_steps": 100, "mode": "exp", "smoothing": 0.98, "diverge": 4.0}
    return RangeTestResult(curves, settings_, dict(info))


def fastai_valley(lrs, losses):
    "Suggests a learning rate from the longest valley and returns its index"
    n = len(losses)
    max_start, max_end = 0, 0

    # find the longest valley
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]

    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)

    return float(lrs[idx]), idx


# ----------------------------------------------------------------------------- the sweep
@pytest.mark.parametrize(("start", "end", "n"), [(1e-7, 10.0, 100), (1e-5, 1.0, 101), (3e-4, 0.7, 6), (1e-8, 1e3, 51)])
def test_exp_sweep_is_geometric(start: float, end: float, n: int) -> None:
    test = RangeTest(start, end, n)
    mid = (n - 1) // 2
    assert test.lr(0) == start
    assert test.lr(mid) == start * (end / start) ** (mid / (n - 1))
    assert test.lr(n - 1) == end  # exactly, not the formula's last-ulp rounding
    lrs = sweep_lrs(n, start, end)
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, (end / start) ** (1 / (n - 1)), rtol=1e-12)


def test_last_exp_step_reaches_end_lr_exactly() -> None:
    # RangeTest.lr's docstring: "the last step reaches end_lr exactly".
    cases = [(1e-7, 10.0, 100), (1e-5, 1.0, 101), (3e-4, 0.7, 6), (0.3, 100.0, 51), (1e-8, 0.7, 100)]
    got = {(start, end, n): RangeTest(start, end, n).lr(n - 1) for start, end, n in cases}
    assert {k: v for k, v in got.items() if v != k[1]} == {}


@pytest.mark.parametrize(("start", "end", "n"), [(1e-7, 10.0, 100), (1e-3, 1.0, 11), (0.01, 0.7, 6)])
def test_linear_sweep(start: float, end: float, n: int) -> None:
    test = RangeTest(start, end, n, mode="linear")
    mid = (n - 1) // 2
    assert test.lr(0) == start
    assert test.lr(mid) == start + mid / (n - 1) * (end - start)
    assert test.lr(n - 1) == end
    np.testing.assert_allclose(np.diff([test.lr(i) for i in range(n)]), (end - start) / (n - 1), rtol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"start_lr": -1e-3}, "start_lr"),
        ({"start_lr": math.nan}, "start_lr"),
        ({"start_lr": 1e-3, "end_lr": 1e-3}, "end_lr"),
        ({"start_lr": 1e-3, "end_lr": 1e-4}, "end_lr"),
        ({"end_lr": math.inf}, "end_lr"),
        ({"num_steps": 5}, "num_steps"),
        ({"num_steps": 0}, "num_steps"),
        ({"num_steps": 10.5}, "num_steps"),
        ({"mode": "cosine"}, "mode"),
        ({"mode": "exponential"}, "mode"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"smoothing": -0.1}, "smoothing"),
        ({"smoothing": 1.5}, "smoothing"),
        ({"diverge": 1.0}, "diverge"),
        ({"diverge": 0.5}, "diverge"),
    ],
)
def test_invalid_settings_name_the_parameter(kwargs: dict[str, object], param: str) -> None:
    with pytest.raises(ValueError, match=f"'{param}'"):
        RangeTest(**kwargs)  # type: ignore[arg-type]


def test_valid_edge_settings() -> None:
    RangeTest(num_steps=6)
    RangeTest(smoothing=0.0)
    RangeTest(diverge=1.0001)
    RangeTest(mode="linear")


# ----------------------------------------------------------------------------- smoothing and stop
def hand_smoothed(losses: list[float], beta: float = 0.98) -> list[float]:
    avg, out = 0.0, []
    for n, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**n))
    return out


def test_smoothing_is_the_bias_corrected_ema() -> None:
    losses = [2.3, 2.1, 2.2, 1.9, 1.7, 1.8, 1.4, 1.2, 1.25, 1.0, 0.9, 0.95]
    test = RangeTest(num_steps=100)
    curve = test.begin()
    for i, loss in enumerate(losses):
        assert test.record(test.lr(i), loss) is False
    assert curve.losses == losses
    assert curve.lrs == [test.lr(i) for i in range(len(losses))]
    np.testing.assert_allclose(curve.smoothed, hand_smoothed(losses), rtol=1e-13)
    assert curve.smoothed[0] == pytest.approx(losses[0], rel=1e-13)  # debiased: the first value is the loss


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_smoothing_factor_is_used(beta: float) -> None:
    losses = [3.0, 1.0, 2.0, 0.5, 0.7]
    test = RangeTest(num_steps=10, smoothing=beta)
    curve = test.begin()
    for i, loss in enumerate(losses):
        test.record(test.lr(i), loss)
    np.testing.assert_allclose(curve.smoothed, hand_smoothed(losses, beta), rtol=1e-13)


def reference_stop(losses: list[float], beta: float, diverge: float, num_steps: int) -> tuple[int, str]:
    """Index of the step at which the sweep stops, and why (fastai / Lightning's rule)."""
    avg, best = 0.0, math.inf
    for n, loss in enumerate(losses, start=1):
        if not math.isfinite(loss):
            return n - 1, "non-finite loss"
        avg = beta * avg + (1 - beta) * loss
        smooth = avg / (1 - beta**n)
        if n > 1 and smooth > diverge * best:
            return n - 1, "diverged"
        best = min(best, smooth)
        if n >= num_steps:
            return n - 1, "completed"
    return len(losses), "running"


def run_records(losses: list[float], **kwargs: object) -> tuple[RangeTest, list[bool]]:
    test = RangeTest(**kwargs)  # type: ignore[arg-type]
    test.begin()
    stops = []
    for i, loss in enumerate(losses):
        stop = test.record(test.lr(min(i, test.num_steps - 1)), loss)
        stops.append(stop)
        if stop:
            break
    return test, stops


def test_stop_exactly_at_first_step_above_4x_best() -> None:
    losses = [1.0] * 10 + [0.5] * 20 + [0.5 * 1.6**k for k in range(1, 40)]
    expected, why = reference_stop(losses, 0.98, 4.0, 100)
    assert why == "diverged"
    test, stops = run_records(losses)
    assert stops == [False] * expected + [True]
    curve = test.curves[-1]
    assert len(curve.losses) == expected + 1
    assert curve.stop_reason.startswith("diverged")
    smoothed = curve.smoothed
    assert smoothed[-1] > 4 * min(smoothed[:-1])
    assert all(smoothed[i] <= 4 * min(smoothed[:i]) for i in range(1, len(smoothed) - 1))


def test_stop_rule_uses_best_so_far_not_the_first_loss() -> None:
    # Falls from 10 to 1, then rises to 3.9 (below 4x 1.0 with margin): must not stop; then to 4.5.
    losses = [10.0] + [1.0] * 200
    _, stops = run_records(losses, smoothing=0.0, num_steps=1000)
    assert not any(stops)
    _, stops = run_records([10.0, 1.0, 3.9, 3.99, 4.01, 1.0], smoothing=0.0, num_steps=1000)
    assert stops == [False, False, False, False, True]


def test_first_step_never_diverges() -> None:
    _, stops = run_records([1e9, 1e9], smoothing=0.0)
    assert stops == [False, False]


@pytest.mark.parametrize("diverge", [1.5, 4.0, 10.0])
def test_diverge_factor_is_the_threshold(diverge: float) -> None:
    losses = [1.0] * 5 + [1.0 + 0.25 * k for k in range(1, 60)]
    expected, why = reference_stop(losses, 0.0, diverge, 1000)
    assert why == "diverged"
    _, stops = run_records(losses, smoothing=0.0, diverge=diverge, num_steps=1000)
    assert len(stops) == expected + 1 and stops[-1]


@settings(max_examples=n_examples(60), deadline=None)
@given(
    st.lists(st.floats(0.01, 100.0) | st.sampled_from([math.nan, math.inf]), min_size=1, max_size=40),
    st.sampled_from([0.0, 0.5, 0.98]),
    st.sampled_from([1.5, 4.0]),
    st.integers(6, 30),
)
def test_stop_rule_matches_reference(losses: list[float], beta: float, diverge: float, num_steps: int) -> None:
    expected, why = reference_stop(losses, beta, diverge, num_steps)
    test, stops = run_records(losses, smoothing=beta, diverge=diverge, num_steps=num_steps)
    if why == "running":
        assert not any(stops) and len(stops) == len(losses)
        return
    assert stops == [False] * expected + [True]
    reason = test.curves[-1].stop_reason
    assert reason.startswith(why)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_stops_at_once(bad: float) -> None:
    test, stops = run_records([2.0, 1.9, 1.8, bad, 1.0])
    assert stops == [False, False, False, True]
    curve = test.curves[-1]
    assert curve.stop_reason == "non-finite loss"
    assert len(curve.losses) == 4 and math.isnan(curve.smoothed[-1])


def test_non_finite_validation_loss_stops() -> None:
    test = RangeTest()
    test.begin()
    assert test.record(1e-7, 1.0, 1.0) is False
    assert test.record(1e-6, 1.0, math.nan) is True
    assert test.curves[-1].stop_reason == "non-finite loss"


def test_validation_loss_drives_the_smoothing() -> None:
    test = RangeTest(num_steps=50)
    curve = test.begin()
    train = [5.0, 4.0, 3.0, 2.0]
    val = [1.0, 0.9, 0.8, 0.7]
    for i, (a, b) in enumerate(zip(train, val)):
        test.record(test.lr(i), a, b)
    assert curve.losses == train and curve.val_losses == val
    np.testing.assert_allclose(curve.smoothed, hand_smoothed(val), rtol=1e-13)


def test_reaching_num_steps_completes() -> None:
    test, stops = run_records([1.0] * 10, num_steps=6)
    assert stops == [False] * 5 + [True]
    assert test.curves[-1].stop_reason == "completed"
    result = test.result()
    assert result.stop_reason == "completed" and result.steps == 6
    assert result.settings["num_steps"] == 6


def test_each_sweep_starts_fresh() -> None:
    test = RangeTest(num_steps=10)
    test.begin()
    for i, loss in enumerate([1.0, 1.0, 100.0]):
        test.record(test.lr(i), loss)
    second = test.begin()
    assert test.record(test.lr(0), 2.0) is False
    assert second.smoothed == [pytest.approx(2.0)]
    assert len(test.curves) == 2


def test_result_of_no_step_raises() -> None:
    test = RangeTest()
    test.begin()
    with pytest.raises(ValueError, match="no step"):
        test.result()


# ----------------------------------------------------------------------------- clean()
def test_clean_trims_edges() -> None:
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs)
    a, b = clean(lrs, losses)
    np.testing.assert_array_equal(a, lrs[10:95])
    np.testing.assert_array_equal(b, trend(losses)[10:95])  # smoothed without lag, then trimmed
    a, b = clean(lrs[:60], losses[:60])  # stopped early: 10% of what was recorded
    np.testing.assert_array_equal(a, lrs[6:55])


def test_trend_has_no_lag() -> None:
    """The suggestions' smoother must not shift the curve to larger LRs (a one-sided EMA does)."""
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs)
    smooth = trend(losses)
    slope = np.diff(smooth)
    true = int(np.argmin(np.diff(losses)))
    assert abs(int(np.argmin(slope)) - true) <= 1
    np.testing.assert_allclose(trend(np.full(50, 3.0)), 3.0, rtol=1e-12)


def test_the_blow_up_that_ends_a_sweep_does_not_lift_the_trend_before_it() -> None:
    """Found drawing the docs' range-test figure: a final loss of 2745 after a descent to ~1.5
    lifted the zero-lag trend (run backwards) over the last decades of LR, so a falling sweep read
    as "not falling" and three agreeing sweeps gave no suggestion. Losses beyond 4x the best
    forward-smoothed loss are capped there before smoothing now."""
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs, blowup=0.0)  # plateau at 3, descent to 1, no rise
    blown = losses.copy()
    blown[-1] = 2745.0
    smooth, uncapped = trend(blown), trend(blown, diverge=None)
    assert uncapped[-15] > 5 * losses[-15] and uncapped[-25] > 1.4 * losses[-25]  # the old reading: lifted far back
    cap = 4.0 * 1.0  # the forward EMA's lowest value is about the floor of 1
    assert np.max(np.abs(smooth[:-1] - trend(losses)[:-1])) < 1.2 * (cap - 1.0)
    assert smooth[-25] < 1.05 * trend(losses)[-25]
    # the rule that reads the falling part finds the same steepest point with or without the spike
    assert steepest(*clean(lrs, blown)) == steepest(*clean(lrs, losses))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_clean_drops_from_first_non_finite(bad: float) -> None:
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs)
    losses[70] = bad
    losses[80] = 1.0  # finite again later: still dropped
    a, b = clean(lrs, losses)
    np.testing.assert_array_equal(a, lrs[7:65])
    np.testing.assert_array_equal(b, trend(losses[:70])[7:65])
    assert np.isfinite(b).all()


@pytest.mark.parametrize("n", [0, 1, 3, 4])
def test_clean_too_few_points(n: int) -> None:
    lrs = sweep_lrs(100)[:n]
    with pytest.raises(NoDescentError, match="usable points"):
        clean(lrs, np.ones(n))


def test_clean_nan_at_once_raises() -> None:
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs)
    losses[4] = math.nan
    with pytest.raises(NoDescentError, match="start_lr"):
        clean(lrs, losses)


# ----------------------------------------------------------------------------- the rules
CASES = [(-3.0, 0.3), (-4.0, 0.2), (-2.5, 0.25), (-4.5, 0.4)]


@pytest.mark.parametrize(("centre", "width"), CASES)
@pytest.mark.parametrize("noise", [0.0, 0.003])
def test_steepest_finds_the_sigmoid_centre(centre: float, width: float, noise: float) -> None:
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs, centre, width) + noise * np.random.default_rng(1).standard_normal(100)
    got = steepest(*clean(lrs, losses))
    true = 10**centre  # d loss / d log lr is most negative at the sigmoid's centre (blow-up is 0 there)
    assert true / 1.5 <= got <= true * 1.5, (got, true)


@pytest.mark.parametrize(("centre", "width"), CASES)
@pytest.mark.parametrize("noise", [0.0, 0.003])
def test_smith_bounds_on_known_curve(centre: float, width: float, noise: float) -> None:
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs, centre, width) + noise * np.random.default_rng(2).standard_normal(100)
    cl, cs = clean(lrs, losses)
    base, top = smith_bounds(cl, cs)
    steep = 10**centre
    descent_start = 10 ** (centre - width * math.log(99))  # 1% of the drop done
    assert descent_start < base < steep
    assert base < top
    low_lr = cl[int(np.argmin(cs))]
    assert steep < top <= low_lr
    clean_curve = sigmoid_loss(np.array([top]), centre, width)[0]
    floor = sigmoid_loss(np.array([low_lr]), centre, width)[0]
    start_level = 3.0
    assert clean_curve - floor <= 0.1 * (start_level - floor) + 0.02  # within the last 10% of the drop


@pytest.mark.parametrize(("centre", "width"), CASES)
def test_minimum_is_a_tenth_of_the_lowest(centre: float, width: float) -> None:
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs, centre, width)
    cl, cs = clean(lrs, losses)
    assert minimum(cl, cs) == cl[int(np.argmin(cs))] / 10


@pytest.mark.parametrize(("centre", "width"), CASES)
def test_valley_inside_the_descent(centre: float, width: float) -> None:
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs, centre, width)
    cl, cs = clean(lrs, losses)
    got = valley(cl, cs)
    assert got == fastai_valley(cl, cs)[0]
    assert cl[0] < got < cl[int(np.argmin(cs))]


@pytest.mark.parametrize(("centre", "width"), [(-5.5, 0.2), (-5.0, 0.4)])
def test_early_descent_then_long_floor(centre: float, width: float) -> None:
    """The descent is over within the first quarter of the usable curve, which then stays low
    until the blow-up (e.g. Adam on an easy task swept from 1e-7): steepest must still find the
    sigmoid's centre, and base_lr must sit before it, where the loss starts to fall."""
    lrs = sweep_lrs(100)
    cl, cs = clean(lrs, sigmoid_loss(lrs, centre, width))
    true = 10**centre
    got = steepest(cl, cs)
    base, _ = smith_bounds(cl, cs)
    assert (true / 1.5 <= got <= true * 1.5, base < true) == (True, True), (got, true, base)


@st.composite
def noisy_curves(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(10, 70))
    tail = draw(st.integers(0, n // 3))
    noise = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n)))
    amp = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    base = np.concatenate([np.linspace(3.0, 1.0, n - tail), 1.0 + 0.5 * np.arange(1, tail + 1)])
    losses = base + amp * noise
    if draw(st.booleans()):  # coarse values: ties, which the strict comparison must not count
        losses = np.round(losses, 1)
    return np.geomspace(1e-6, 1.0, n), losses


@settings(max_examples=n_examples(150), deadline=None)
@given(noisy_curves())
def test_valley_is_fastai_valley(curve: tuple[np.ndarray, np.ndarray]) -> None:
    lrs, losses = curve
    try:
        got = valley(lrs, losses)
    except NoDescentError:
        assume(False)
    want, idx = fastai_valley(lrs, list(losses))
    assert got == want, (int(np.flatnonzero(lrs == got)[0]), idx)


@pytest.mark.parametrize("seed", range(6))
def test_noisy_early_plateau_does_not_fool_steepest_or_base(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lrs = sweep_lrs(100)
    losses = sigmoid_loss(lrs, -3.0, 0.3) + 0.002 * rng.standard_normal(100)
    spikes = rng.choice(np.arange(0, 20), size=8, replace=False)
    losses[spikes] += rng.choice([-1.0, 1.0], size=8) * rng.uniform(0.6, 1.5, size=8)
    cl, cs = clean(lrs, losses)
    steep = steepest(cl, cs)
    base, top = smith_bounds(cl, cs)
    plateau_end = lrs[19]
    assert steep > plateau_end and base > plateau_end
    assert 10**-3 / 1.5 <= steep <= 10**-3 * 1.5
    assert base < steep < top


# ----------------------------------------------------------------------------- no descent
def flat_curves() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "constant": np.full(100, 2.3),
        "tiny noise": 2.3 + 0.001 * rng.standard_normal(100),
        "rising": np.linspace(1.0, 2.0, 100),
        "flat then rising": np.concatenate([np.full(60, 0.05), np.linspace(0.05, 0.5, 40)]),
    }


@pytest.mark.parametrize("name", list(flat_curves()))
@pytest.mark.parametrize("rule", [steepest, valley, minimum, smith_bounds])
def test_no_descent_raises_from_every_rule(name: str, rule) -> None:
    lrs = sweep_lrs(100)
    with pytest.raises(NoDescentError, match=r"start_lr|end_lr"):
        rule(*clean(lrs, flat_curves()[name]))


@pytest.mark.parametrize("name", list(flat_curves()))
def test_no_descent_raises_from_result(name: str) -> None:
    result = result_from(flat_curves()[name])
    for attr in ("suggestions", "suggestion", "bounds", "spread"):
        with pytest.raises(NoDescentError) as info:
            getattr(result, attr)
        assert "start_lr" in str(info.value) or attr == "spread"
    with pytest.raises(NoDescentError):
        result.schedule("one_cycle", steps_per_epoch=10)
    assert isinstance(NoDescentError("x"), ValueError)


# ----------------------------------------------------------------------------- the result
@pytest.fixture
def result() -> RangeTestResult:
    lrs = sweep_lrs(100)
    return result_from(sigmoid_loss(lrs), framework="none")


def test_suggestions(result: RangeTestResult) -> None:
    s = result.suggestions
    assert set(s) == SUGGESTION_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in s.values())
    assert result.suggestion == s[result.default_rule]
    assert result.bounds == (s["base_lr"], s["max_lr"])
    assert s["base_lr"] < s["max_lr"]
    cl, cs = clean(result.lrs, result.losses)
    assert s["valley"] == valley(cl, cs) and s["steepest"] == steepest(cl, cs) and s["minimum"] == minimum(cl, cs)
    assert result.momentum == (0.85, 0.95)
    assert result.default_rule == "calibrated"
    assert s["calibrated"] == CALIBRATED(result.lrs, result.losses, result.smoothed)


@pytest.mark.parametrize("reading", ["trend", "ema"])
@pytest.mark.parametrize("rule", ["steepest", "valley", "minimum", "max_lr"])
def test_calibration_reads_its_curve_and_scales(reading: str, rule: str) -> None:
    """A calibration is its rule on its reading (the zero-lag trend of the raw losses, or the
    sweep's own EMA trimmed like fastai), times its factor."""
    lrs = sweep_lrs(100)
    raw = sigmoid_loss(lrs)
    ema = _ema(raw)
    rules = {"steepest": steepest, "valley": valley, "minimum": minimum, "max_lr": lambda a, b: smith_bounds(a, b)[1]}
    points = clean(lrs, raw) if reading == "trend" else ema_points(lrs, ema)
    want = rules[rule](*points)
    assert Calibration(reading, rule, 1.0)(lrs, raw, ema) == want
    assert Calibration(reading, rule, 0.5)(lrs, raw, ema) == pytest.approx(want * 0.5, rel=1e-12)
    assert np.array_equal(ema_points(lrs, ema)[1], ema[10:95])


def test_the_lagging_ema_reads_later_than_the_trend() -> None:
    """The EMA lags: any rule read from it lands at a higher LR than from the zero-lag trend."""
    lrs = sweep_lrs(100)
    raw = sigmoid_loss(lrs)
    ema = _ema(raw)
    for rule in ("steepest", "max_lr"):
        assert Calibration("ema", rule, 1.0)(lrs, raw, ema) > Calibration("trend", rule, 1.0)(lrs, raw, ema)


def _ema(raw: np.ndarray, beta: float = 0.98) -> np.ndarray:
    out, avg = [], 0.0
    for i, v in enumerate(raw, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return np.asarray(out)


def test_suggestions_read_the_watched_losses() -> None:
    """The rules come from the raw losses (validation losses when measured), smoothed without
    lag by clean(); the calibrated suggestion reads the sweep's EMA of those same losses."""
    lrs = sweep_lrs(100)
    good = sigmoid_loss(lrs)
    curve = Curve(list(lrs), list(good), list(_ema(good)), stop_reason="completed")
    result = RangeTestResult([curve], {}, {})
    assert result.suggestions["valley"] == valley(*clean(lrs, good))
    curve = Curve(list(lrs), list(np.full(100, 7.0)), list(_ema(good)), list(good), stop_reason="completed")
    result = RangeTestResult([curve], {}, {})
    assert result.suggestions["steepest"] == steepest(*clean(lrs, good))


def test_spread_over_repeats() -> None:
    lrs = sweep_lrs(100)
    curves = [sigmoid_loss(lrs, c, 0.3) for c in (-3.4, -3.0, -2.7)]
    result = result_from(*curves)
    single = [result_from(c).suggestions for c in curves]
    spread = result.spread
    assert set(spread) == SUGGESTION_KEYS
    for key, (lo, med, hi) in spread.items():
        values = sorted(s[key] for s in single)
        assert (lo, hi) == (values[0], values[2]) and med == pytest.approx(values[1], rel=1e-12)
    # every sweep counts: each rule's suggestion is the median over the sweeps
    assert result.suggestions == {k: med for k, (_, med, _) in spread.items()}
    assert result.suggestion == spread["calibrated"][1] != single[0]["calibrated"]
    assert result.confidence["level"] == "high"
    assert result.steps == 300


def test_sweeps_that_disagree_give_no_lr_but_keep_every_reading() -> None:
    """Sweeps over 10x apart: no suggestion, no bounds, no schedule (NoSafeLRError, a
    NoDescentError, naming the spread), while each rule's reading stays inspectable."""
    lrs = sweep_lrs(100)
    result = result_from(*[sigmoid_loss(lrs, c, 0.3) for c in (-5.0, -3.0, -2.0)])
    assert result.confidence["level"] == "low" and result.confidence["spread"] > MAX_SPREAD
    assert set(result.suggestions) == SUGGESTION_KEYS
    for read in (lambda: result.suggestion, lambda: result.bounds, lambda: result.schedule("one_cycle", 10)):
        with pytest.raises(NoSafeLRError, match=r"no safe learning rate: the 3 sweeps.*span \d+x"):
            read()
    assert issubclass(NoSafeLRError, NoDescentError)
    config = result.to_config()
    assert config["confidence"]["level"] == "low" and "no safe learning rate" in config["error"]


def test_spread_skips_flat_repeats() -> None:
    lrs = sweep_lrs(100)
    result = result_from(sigmoid_loss(lrs, -3.0), np.full(100, 2.0), sigmoid_loss(lrs, -4.0))
    lo, med, hi = result.spread["valley"]
    values = sorted([result_from(sigmoid_loss(lrs, c)).suggestions["valley"] for c in (-3.0, -4.0)])
    assert (lo, hi) == (values[0], values[1])
    assert med == pytest.approx(math.sqrt(values[0] * values[1]), rel=1e-12)  # the median in log space
    assert result.confidence["level"] == "low" and "only 2 of 3 sweeps" in result.confidence["reason"]


def test_confidence_says_whether_the_repeats_agree() -> None:
    lrs = sweep_lrs(100)
    one = result_from(sigmoid_loss(lrs, -3.0))
    assert one.confidence["level"] == "single sweep" and one.confidence["sweeps"] == 1
    close = result_from(*(sigmoid_loss(lrs, c) for c in (-3.0, -2.9, -3.1)))
    assert close.confidence["level"] == "high" and close.confidence["spread"] < 2.0
    apart = result_from(*(sigmoid_loss(lrs, c) for c in (-5.0, -3.0, -2.0)))
    conf = apart.confidence
    assert conf["level"] == "low" and conf["spread"] > MAX_SPREAD == 10.0 and "span" in conf["reason"]
    values = [result_from(sigmoid_loss(lrs, c)).suggestion for c in (-5.0, -3.0, -2.0)]
    assert conf["spread"] == pytest.approx(max(values) / min(values), rel=1e-12)
    assert apart.to_config()["confidence"]["level"] == "low"
    flat = result_from(np.full(100, 2.0), np.full(100, 2.0))
    assert flat.confidence["level"] == "low" and flat.confidence["sweeps"] == 0


def test_repeats_that_disagree_warn_when_the_test_ends() -> None:
    lrs = sweep_lrs(100)
    test = RangeTest()
    for centre in (-5.0, -3.0, -2.0):
        test.begin()
        for lr, loss in zip(lrs, sigmoid_loss(lrs, centre)):
            if test.record(float(lr), float(loss)):
                break
    with pytest.warns(RangeTestWarning, match="more than 10x"):
        test.result()
    agree = RangeTest()
    for centre in (-3.0, -3.05):
        agree.begin()
        for lr, loss in zip(lrs, sigmoid_loss(lrs, centre)):
            if agree.record(float(lr), float(loss)):
                break
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agree.result()


def test_one_cycle_schedule(result: RangeTestResult) -> None:
    s = result.schedule("one_cycle", steps_per_epoch=50, epochs=4)
    assert isinstance(s, OneCycle)
    assert s.max_lr == result.suggestion
    assert s.total_steps == 200
    assert 10.0 <= s.div_factor <= 100.0
    base = result.bounds[0]
    assert s.div_factor == pytest.approx(float(np.clip(result.suggestion / base, 10, 100)))


def test_triangular_schedule(result: RangeTestResult) -> None:
    s = result.schedule("triangular", steps_per_epoch=50, epochs=8)
    assert isinstance(s, Triangular)
    assert (s.base_lr, s.max_lr) == result.clr_bounds == (result.bounds[0], result.suggestion)
    k = s.step_size / 50
    assert k == int(k) and 2 <= k <= 10
    assert 400 % (2 * s.step_size) == 0


@pytest.mark.parametrize("epochs", [4, 6, 8, 12, 20, 40, 60])
def test_triangular_longest_half_cycle_that_fits(epochs: int) -> None:
    lrs = sweep_lrs(100)
    s = result_from(sigmoid_loss(lrs)).schedule("triangular", steps_per_epoch=10, epochs=epochs)
    half = s.step_size / 10
    assert 2 <= half <= 10 and (epochs % (2 * half)) == 0
    assert not any(epochs % (2 * k) == 0 for k in range(int(half) + 1, 11))


@pytest.mark.parametrize("epochs", [5, 22])
def test_triangular_whole_cycles_for_any_run_length(epochs: int) -> None:
    # schedule()'s docstring: "step_size 2-10 epochs so the run holds a whole number of cycles".
    lrs = sweep_lrs(100)
    s = result_from(sigmoid_loss(lrs)).schedule("triangular", steps_per_epoch=50, epochs=epochs)
    total = 50 * epochs
    assert total % (2 * s.step_size) == 0, (s.step_size, total / (2 * s.step_size))


@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_short_run_gets_one_cycle(epochs: int, result: RangeTestResult) -> None:
    for kind in ("triangular", "triangular2"):
        s = result.schedule(kind, steps_per_epoch=50, epochs=epochs)
        assert 2 * s.step_size == 50 * epochs
        assert (s.base_lr, s.max_lr) == result.clr_bounds


def test_cycle_epochs_override(result: RangeTestResult) -> None:
    s = result.schedule("triangular2", steps_per_epoch=50, epochs=12, cycle_epochs=3)
    assert s.step_size == 150


def test_schedule_needs_steps_per_epoch(result: RangeTestResult) -> None:
    with pytest.raises(ValueError, match="steps_per_epoch"):
        result.schedule("one_cycle", epochs=4)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        result.schedule("triangular", epochs=8)
    with pytest.raises(ValueError, match="'kind'"):
        result.schedule("cosine", steps_per_epoch=5)
    with pytest.raises(ValueError, match="'epochs'"):
        result.schedule("one_cycle", steps_per_epoch=5, epochs=0)


def test_schedule_uses_the_loops_steps_per_epoch() -> None:
    lrs = sweep_lrs(100)
    result = result_from(sigmoid_loss(lrs), steps_per_epoch=30)
    assert result.schedule("one_cycle", epochs=2).total_steps == 60


def test_to_config_is_json(result: RangeTestResult) -> None:
    cfg = result.to_config()
    text = json.dumps(cfg, allow_nan=False)
    back = json.loads(text)
    assert back["suggestions"] == result.suggestions
    assert back["stop_reason"] == "completed"
    assert back["steps"] == 100
    assert back["settings"]["start_lr"] == 1e-7
    assert len(back["curve"]["lrs"]) == 100
    assert "error" not in back


def test_to_config_with_steps_per_epoch_and_repeats() -> None:
    lrs = sweep_lrs(100)
    result = result_from(sigmoid_loss(lrs, -3.0), sigmoid_loss(lrs, -3.5), steps_per_epoch=20)
    back = json.loads(json.dumps(result.to_config()))
    assert back["schedule"]["name"] == "one_cycle"
    assert back["schedule"]["max_lr"] == result.suggestion
    assert set(back["spread"]) == SUGGESTION_KEYS
    assert back["steps_per_epoch"] == 20


def test_to_config_of_a_flat_curve_has_the_error() -> None:
    result = result_from(np.full(100, 2.0))
    back = json.loads(json.dumps(result.to_config()))
    assert "suggestions" not in back
    assert "start_lr" in back["error"]


def test_to_config_after_non_finite_loss_round_trips() -> None:
    test = RangeTest(num_steps=50)
    test.begin()
    for i in range(20):
        test.record(test.lr(i), 2.0 - 0.05 * i)
    test.record(test.lr(20), math.nan)
    cfg = test.result().to_config()
    back = json.loads(json.dumps(cfg))
    assert back["stop_reason"] == "non-finite loss"
    assert back["curve"]["losses"][-1] is None or math.isnan(back["curve"]["losses"][-1])


def test_to_config_is_strict_json_after_non_finite_loss() -> None:
    # to_config() is documented as "JSON-safe" and the CLI writes it to a .json file: a NaN in
    # the curve must not become a bare NaN token (invalid JSON for every parser but Python's).
    test = RangeTest(num_steps=50)
    test.begin()
    for i in range(20):
        test.record(test.lr(i), 2.0 - 0.05 * i)
    test.record(test.lr(20), math.nan)
    json.dumps(test.result().to_config(), allow_nan=False)


def test_plot(result: RangeTestResult, tmp_path) -> None:
    import matplotlib.pyplot as plt

    path = tmp_path / "range.png"
    fig = result.plot(path)
    try:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        ax = fig.axes[0]
        assert ax.get_xscale() == "log"
        assert ax.get_xlabel() == "learning rate"
        vertical = {
            float(line.get_xdata()[0])
            for line in ax.get_lines()
            if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]
        }
        s = result.suggestions
        for name in ("valley", "steepest", "minimum"):
            assert s[name] in vertical, name
        # the LR that schedule() uses has its own labelled line; each rule is labelled with its definition
        labels = {line.get_label(): float(line.get_xdata()[0]) for line in ax.get_lines() if line in ax.lines}
        used = [v for k, v in labels.items() if k.startswith("used by schedule()")]
        assert used == [result.suggestion] and result.suggestion == result.schedule("one_cycle", 10).max_lr
        assert any(k.startswith("minimum / 10") for k in labels)
        # y-limits: the whole descent of the EMA and of the trend is inside
        lo, hi = ax.get_ylim()
        smooth = result.smoothed[np.isfinite(result.smoothed)]
        assert lo <= smooth.min() and hi >= smooth[0]
        assert lo <= np.nanmin(result.trend)
    finally:
        plt.close(fig)


def test_plot_of_a_flat_curve_says_why(tmp_path) -> None:
    import warnings

    import matplotlib.pyplot as plt

    result = result_from(np.full(100, 2.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = result.plot(tmp_path / "flat.png")
    try:
        assert (tmp_path / "flat.png").stat().st_size > 0
        ax = fig.axes[0]
        notes = [t for t in ax.texts if "no suggestion" in t.get_text()]
        assert notes, "the plot should say why there is no suggestion"
        # readable: a y range on the scale of the loss (not 1e-12 wide), the note inside the figure
        lo, hi = ax.get_ylim()
        assert lo <= 2.0 <= hi and hi - lo >= 0.01 * 2.0, (lo, hi)
        renderer = fig.canvas.get_renderer()
        box, page = notes[0].get_window_extent(renderer), fig.bbox
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0, (box, page)
        assert not [w for w in caught if "constrained_layout" in str(w.message)]
    finally:
        plt.close(fig)


def test_repr_mentions_stop_reason(result: RangeTestResult) -> None:
    text = repr(result)
    assert "completed" in text and "100 steps" in text and "valley=" in text
    test, _ = run_records([1.0] * 20 + [1e3] * 5, num_steps=100)
    text = repr(test.result())
    assert "diverged" in text and "no suggestion" in text


def test_an_objective_with_a_caveat_gives_no_lr_and_says_why() -> None:
    """A loop (the bench's runners, from a task's ``range_test_caveat``) may mark an objective on
    which the test is known to mislead: the sweep is kept, but no LR or schedule comes out."""
    lrs = sweep_lrs(100)
    result = result_from(sigmoid_loss(lrs), no_safe_lr="measured 10x too high here")
    assert result.confidence["level"] == "low" and "measured 10x too high here" in result.confidence["reason"]
    with pytest.raises(NoSafeLRError, match="no safe learning rate for this objective: measured 10x too high"):
        result.schedule("one_cycle", 10)
    assert set(result.suggestions) == SUGGESTION_KEYS
