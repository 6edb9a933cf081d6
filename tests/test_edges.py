"""Regression tests for issue 11's fault and bad-input sweep: numbers at the edges, configs that
try to hurt the loader, state that must not be trusted, and values that must come out as plain
Python. Each test names the defect it pins down; each failed before its fix."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cyclr
import cyclr.torch
from cyclr import InvalidParameterError
from cyclr.schedules._base import MAX_DEPTH, MAX_MARKS

# ------------------------------------------------------------------------------ configs as data


def _bomb(levels: int = 9) -> str:
    """The issue's "billion laughs" file: under 1 KB, 9**9 strings once its aliases expand."""
    lv = ["&l0 [" + ",".join(["lol"] * 9) + "]"]
    lv += [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "name: constant\nlr: [" + ", ".join(lv) + "]\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    assert path.stat().st_size < 1024
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"aliases \(\*l0\) are not allowed") as err:
        cyclr.load_config(path)
    assert time.perf_counter() - t0 < 10.0  # refused before any expansion (a wide margin for a loaded CI)
    assert len(str(err.value)) < 2000 and str(path) in str(err.value)


def test_an_error_message_never_expands_a_huge_value() -> None:
    """The ``{value!r}`` in the parameter error expanded the bomb's aliases; now it is bounded."""
    inner = ["lol"] * 9
    for _ in range(8):  # the bomb's shape, built in Python: shared lists, 9**9 leaves
        inner = [inner] * 9
    t0 = time.perf_counter()
    with pytest.raises(InvalidParameterError) as err:
        cyclr.constant(lr=inner)  # type: ignore[arg-type]
    # the unbounded repr took 234 s; bounded it takes well under a second (a wide margin for a loaded CI)
    assert time.perf_counter() - t0 < 30.0
    assert len(str(err.value)) < 500 and "parameter 'lr'" in str(err.value)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_deep_nesting_is_refused_with_a_message(tmp_path: Path, fmt: str) -> None:
    """200 levels of nesting gave a RecursionError."""
    path = tmp_path / f"deep.{fmt}"
    path.write_text('{"name": "constant", "lr": ' + "[" * 200 + "]" * 200 + "}")
    with pytest.raises(ValueError, match=f"nests deeper than {MAX_DEPTH} levels"):
        cyclr.load_config(path)
    deep: Any = {"name": "constant", "lr": 0.1}
    for _ in range(MAX_DEPTH + 5):
        deep = {"name": "warmup", "schedule": deep, "steps": 1}
    with pytest.raises(ValueError, match="nests deeper"):
        cyclr.load_config(deep)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("yaml", "name: constant\nlr: 0.1\nlr: 0.5\n"),
        ("json", '{"name": "constant", "lr": 0.1, "lr": 0.5}'),
    ],
)
def test_duplicate_keys_are_refused(tmp_path: Path, fmt: str, text: str) -> None:
    path = tmp_path / f"dup.{fmt}"
    path.write_text(text)
    with pytest.raises(ValueError, match="duplicate key 'lr'"):
        cyclr.load_config(path)


def test_yaml_reads_exponent_floats_as_numbers(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1e-2`` (no dot) as a string: a valid-looking config was refused."""
    path = tmp_path / "s.yaml"
    path.write_text("name: triangular\nbase_lr: 1e-4\nmax_lr: 1E-2\nstep_size: 2e3\n")
    s = cyclr.load_config(path)
    assert s == cyclr.triangular(base_lr=1e-4, max_lr=1e-2, step_size=2000.0)
    path.write_text("name: constant\nlr: .5\n")
    assert cyclr.load_config(path) == cyclr.constant(0.5)


def test_json_nan_and_infinity_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN is not a number"):
        cyclr.load_config('{"name": "constant", "lr": NaN}')


def test_a_long_short_form_is_not_tried_as_a_path() -> None:
    """A valid ``multistep`` with 60 milestones (over 255 characters) raised OSError: File name
    too long, because load_config tried it as a path first."""
    milestones = list(range(1000, 61000, 1000))
    spec = f"multistep:lr=0.1,milestones=[{','.join(map(str, milestones))}],gamma=0.9"
    assert len(spec) > 255
    s = cyclr.load_config(spec)
    assert s == cyclr.multistep(lr=0.1, milestones=milestones, gamma=0.9)
    assert s(60_000) == pytest.approx(0.1 * 0.9**60)


def test_numbers_out_of_float_range_get_the_parameter_error() -> None:
    with pytest.raises(InvalidParameterError, match=r"cosine: parameter 'max_lr' must be a finite number"):
        cyclr.cosine(max_lr=10**400, total_steps=10)
    with pytest.raises(InvalidParameterError, match=r"parameter 'total_steps' must be an integer in \[1, 2\*\*62\]"):
        cyclr.cosine(max_lr=0.1, total_steps=10**400)
    with pytest.raises(InvalidParameterError, match="parameter 'max_lr'"):
        cyclr.load_config("cosine:max_lr=1" + "0" * 400 + ",total_steps=10")


@pytest.mark.parametrize(
    ("build", "param"),
    [
        (lambda: cyclr.warmup({"name": ["x"]}, steps=3), "schedule"),  # was: unhashable type: 'list'
        (lambda: cyclr.warmup({"name": "cosine", "max_lr": -1, "total_steps": 5}, steps=3), "schedule"),
        (lambda: cyclr.join([{"name": "constant"}, cyclr.constant(0.1)], [5]), "schedules"),
    ],
)
def test_errors_in_nested_configs_name_the_outer_parameter(build: Any, param: str) -> None:
    with pytest.raises(InvalidParameterError) as err:
        build()
    assert err.value.param == param and f"parameter {param!r}" in str(err.value)


@pytest.mark.parametrize("bad", ["0.9", {"low": 0.8}, (0.9, 0.8), (0.5, 1.5), 1.5, -0.1, [0.8, 0.9, 0.95], ["x"]])
def test_a_bad_momentum_names_the_parameter(bad: Any) -> None:
    """A wrong momentum type said ``a schedule config must be a dict`` with no parameter named."""
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(InvalidParameterError) as err:
        cyclr.torch.Scheduler(opt, cyclr.cosine(0.1, 10), momentum=bad)
    assert err.value.param == "momentum", str(err.value)


# ------------------------------------------------------------------------------ numbers at the edges


def _check_finite_in_bounds(s: cyclr.Schedule, steps: list[int]) -> None:
    v = np.asarray(s(np.asarray(steps, dtype=np.int64)))
    lo, hi = s.bounds
    assert np.all(np.isfinite(v)), (s, v)
    assert np.all(v >= lo * (1 - 1e-12)) and np.all(v <= hi * (1 + 1e-12)), (s, v)
    np.testing.assert_allclose(v, [s(t) for t in steps], rtol=1e-12)


STEPS = [0, 1, 2, 10, 1000, 2**31, 2**53, 2**62]


def test_sgdr_with_a_horizon_past_every_float_does_not_overflow() -> None:
    """``sgdr(period_mult=2, cycles=1024)``: its horizon overflowed (2.0**1024)."""
    s = cyclr.sgdr(max_lr=0.1, period=1, period_mult=2, cycles=1024)
    assert s.horizon is None  # no run ends there
    _check_finite_in_bounds(s, STEPS)
    assert cyclr.sgdr(max_lr=0.1, period=10, period_mult=2, cycles=3).horizon == 70
    assert cyclr.cyclic(0.1, 0.2, step_size=1e300, cycles=10**6).horizon is None


@pytest.mark.parametrize(("start", "target"), [(1e-300, 0.1), (0.1, 1e-300), (1e-30, 1e30)])
def test_exponential_warmup_from_or_to_a_tiny_rate(start: float, target: float) -> None:
    """``warmup(shape='exponential')`` from 1e-300 overflowed ``exp(log(target / start))``."""
    s = cyclr.warmup(cyclr.constant(target), steps=10, start_lr=start, shape="exponential")
    _check_finite_in_bounds(s, list(range(12)))
    expected = [start * (target / start) ** (t / 10) for t in range(11)]
    np.testing.assert_allclose([s(t) for t in range(11)], expected, rtol=1e-9)
    level = np.asarray(s.level(np.arange(12)))
    assert np.all(np.isfinite(level)) and np.all((level >= 0) & (level <= 1))


def test_cycle_lengths_below_a_millionth_of_a_step_are_refused() -> None:
    """``step_size=5e-324`` overflowed ``step / period`` into NaN."""
    for build in (
        lambda: cyclr.cyclic(0.1, 1.0, step_size=5e-324),
        lambda: cyclr.triangular(0.1, 1.0, step_size=1e-9),
        lambda: cyclr.sgdr(0.1, period=5e-324),
        lambda: cyclr.sgdr(0.1, period=1, period_mult=1e-300),
    ):
        with pytest.raises(InvalidParameterError, match=r"must be a finite number (>= 1e-06|in \[0.001, 1e\+06\])"):
            build()
    for s in (cyclr.cyclic(0.1, 1.0, step_size=1e-6, decay=0.5), cyclr.sgdr(0.1, period=1e-6, period_mult=1e-3)):
        _check_finite_in_bounds(s, STEPS)


def test_one_cycle_is_exact_at_its_ends_however_far_apart() -> None:
    s = cyclr.one_cycle(1e308, total_steps=2**40, pct_start=0.25, div_factor=1e300, final_div_factor=1e300)
    assert s(0) == pytest.approx(1e8, rel=1e-12)
    assert s(2**40 - 1) == pytest.approx(1e-292, rel=1e-9)
    _check_finite_in_bounds(s, [0, 1, 2**38, 2**39, 2**40])


@pytest.mark.parametrize(
    "s",
    [
        cyclr.cyclic(0.1, 0.2, step_size=1e-5),
        cyclr.cyclic(0.1, 0.2, step_size=1e-6, cycles=10**12),
        cyclr.step_decay(0.1, step_size=1),
        cyclr.sgdr(0.1, period=1e-6),
        cyclr.warmup(cyclr.triangular(0.1, 0.2, step_size=1e-6), steps=3),
        cyclr.join([cyclr.step_decay(0.1, 1), cyclr.triangular(0.1, 0.2, 2)], [10**6]),
    ],
    ids=lambda s: s.name,
)
def test_cycle_starts_are_bounded(s: cyclr.Schedule) -> None:
    """``cycle_starts`` for ``step_size=1e-5`` built 50M floats; for 1e-300 it never returned."""
    t0 = time.perf_counter()
    marks = s.cycle_starts(10**9)
    assert time.perf_counter() - t0 < 10.0  # the length bound below is the real check; this one catches a hang
    assert len(marks) <= 2 * MAX_MARKS + 2
    assert cyclr.triangular(0.1, 0.2, step_size=5).cycle_starts(30) == [0.0, 10.0, 20.0]


def test_a_fractional_cycle_from_a_range_test_is_whole_steps() -> None:
    """``RangeTestResult.schedule('triangular')`` made fractional step sizes, which drift on
    float32 backends far into a run; it now makes whole ones that end the run at a floor."""
    from cyclr.finder import RangeTest

    test = RangeTest(1e-5, 1.0, num_steps=60)
    test.begin()
    for i in range(60):
        lr = test.lr(i)
        test.record(lr, 2.0 - math.log10(lr / 1e-5) / 5 if lr < 0.1 else 3.0)
    result = test.result(steps_per_epoch=37)
    for kind, epochs in (("triangular", 7), ("triangular2", 45), ("triangular", 3)):
        s = result.schedule(kind, epochs=epochs)
        assert float(s.step_size).is_integer(), s
        cycles = max(1, math.ceil(epochs / 20))
        assert 2 * cycles * s.step_size >= 37 * epochs > 2 * cycles * (s.step_size - 1)


# ------------------------------------------------------------------------------ plain Python values


def test_numpy_values_are_stored_as_python_values() -> None:
    """``np.str_`` (from ``np.random.choice``) and tuples of numpy ints were stored as they came;
    the scheduler's state then failed ``torch.load(weights_only=True)``."""
    shape = np.random.default_rng(0).choice(["triangular", "sine"])
    s = cyclr.cyclic(np.float32(1e-3), np.float64(0.1), np.int64(5), shape=shape, cycles=np.int32(3))
    m = cyclr.multistep(0.1, milestones=(np.int64(3), np.int64(7)))
    e = cyclr.exponential(0.1, 0.5, decay_steps=np.uint8(2), staircase=np.bool_(True))
    j = cyclr.join([cyclr.constant(0.1), cyclr.constant(0.2)], np.array([5]))
    for schedule in (s, m, e, j):
        config = schedule.to_config()
        json.dumps(config, allow_nan=False)
        for value in config.values():
            assert type(value) in (str, int, float, bool, list, dict, type(None)), (config, type(value))
    assert type(s.shape) is str and type(m.milestones[0]) is int and e.staircase is True

    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
    sched = cyclr.torch.Scheduler(opt, s, momentum=(np.float64(0.85), np.float32(0.95)))
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    sched.load_state_dict(state)


# ------------------------------------------------------------------------------ the torch Scheduler


def _opt(groups: int = 1) -> torch.optim.Optimizer:
    layers = [torch.nn.Linear(2, 1) for _ in range(groups)]
    return torch.optim.SGD([{"params": m.parameters()} for m in layers], lr=0.1, momentum=0.9)


def test_a_plain_momentum_number_is_applied_not_ignored() -> None:
    opt = _opt()
    cyclr.torch.Scheduler(opt, cyclr.cosine(0.1, 10), momentum=0.8)
    assert opt.param_groups[0]["momentum"] == 0.8


@pytest.mark.parametrize("bad", [2.5, True, -2, "3", None])
def test_last_epoch_must_be_a_whole_step(bad: Any) -> None:
    with pytest.raises(InvalidParameterError, match="parameter 'last_epoch'"):
        cyclr.torch.Scheduler(_opt(), cyclr.cosine(0.1, 10), last_epoch=bad)


def _state() -> dict[str, Any]:
    sched = cyclr.torch.Scheduler(_opt(), cyclr.one_cycle(0.1, total_steps=20), momentum=(0.85, 0.95))
    return sched.state_dict()


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"lr": [{"name": "constant", "lr": float("nan")}]}, "lr"),
        ({"lr": [{"name": "constant", "lr": -1.0}]}, "lr"),
        ({"lr": [{"name": "constant", "lr": 0.1}, {"name": "constant", "lr": 0.1}]}, "lr"),  # 2 groups into 1
        ({"momentum": [{"name": "constant", "lr": 5.0}]}, "momentum"),
        ({"momentum_slots": ["lr"]}, "momentum_slots"),
        ({"momentum_slots": ["momentum", "momentum"]}, "momentum_slots"),
        ({"scales": [float("inf")]}, "scales"),
        ({"scales": [-1.0]}, "scales"),
        ({"last_epoch": 2.5}, "last_epoch"),
        ({"last_epoch": -7}, "last_epoch"),
        ({"_step_count": "3"}, "_step_count"),
        ({"past_end": "explode"}, "past_end"),
        ({"warned_past_end": "no"}, "warned_past_end"),
        ({"lr": "cosine"}, "lr"),
    ],
)
def test_load_state_dict_validates_like_a_config(change: dict[str, Any], param: str) -> None:
    """A crafted state that loads with ``weights_only=True`` gave NaN, inf or negative LRs, wrote
    momentum 5.0 or into ``lr``, or loaded 2 groups into a 1-group optimizer. Now it is refused,
    and the scheduler and optimizer are left as they were."""
    opt = _opt()
    sched = cyclr.torch.Scheduler(opt, cyclr.cosine(0.1, 10), momentum=(0.8, 0.9))
    for _ in range(3):
        opt.step()
        sched.step()
    before = (dict(opt.param_groups[0]), sched.state_dict())
    state = {**_state(), **change}
    with pytest.raises(InvalidParameterError) as err:
        sched.load_state_dict(state)
    assert err.value.param == param, str(err.value)
    after = (dict(opt.param_groups[0]), sched.state_dict())
    assert after == before
    with pytest.raises(InvalidParameterError, match="missing"):
        sched.load_state_dict({k: v for k, v in _state().items() if k != "scales"})


def test_a_valid_state_still_round_trips() -> None:
    opt = _opt()
    sched = cyclr.torch.Scheduler(opt, cyclr.one_cycle(0.1, total_steps=20), momentum=(0.85, 0.95))
    for _ in range(5):
        opt.step()
        sched.step()
    other = cyclr.torch.Scheduler(_opt(), cyclr.constant(0.5))
    other.load_state_dict(sched.state_dict())
    assert other.last_epoch == 5 and other.get_last_lr() == sched.get_last_lr()
    assert other.optimizer.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]


# ------------------------------------------------------------------------------ SEED_DEFAULT


def test_seed_default_is_the_schedule_the_readme_describes() -> None:
    s = cyclr.SEED_DEFAULT
    assert isinstance(s, cyclr.Schedule)
    assert s == cyclr.cyclic(base_lr=1e-5, max_lr=1e-2, step_size=5, decay=0.95)
    assert s(5) == pytest.approx(1e-2) and s(15) == pytest.approx(1e-5 + (1e-2 - 1e-5) * 0.95)
    assert cyclr.from_config(s.to_config()) == s


# ------------------------------------------------------------------------------ the torch range test


class _WithBuffers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)
        self.register_buffer("calls", torch.zeros(()), persistent=False)
        self.register_buffer("ema", torch.zeros(4), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.ema.mul_(0.9).add_(0.1 * x.mean(0))
        return self.lin(x)


def _loader(n: int = 10, batch: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(batch, 4, generator=g), torch.randn(batch, 1, generator=g)) for _ in range(n)]


def test_the_range_test_restores_non_persistent_buffers_and_state_in_place() -> None:
    """Non-persistent buffers (not in ``state_dict``) were not restored, and the optimizer's state
    tensors were replaced rather than written back (a compiled step then recompiled)."""
    model = _WithBuffers()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = _loader()
    for x, y in data[:3]:  # optimizer state exists
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    calls, ema = model.calls.clone(), model.ema.clone()
    state_tensors = {id(t): t.clone() for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)}
    cyclr.torch.lr_range_test(model, opt, torch.nn.functional.mse_loss, data, num_steps=20, progress=False)
    assert torch.equal(model.calls, calls) and torch.equal(model.ema, ema)
    after = {id(t): t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)}
    assert after.keys() == state_tensors.keys()  # the same tensor objects
    for key, value in after.items():
        assert torch.equal(value, state_tensors[key])


@pytest.mark.parametrize(("batches", "accumulation", "per_epoch"), [(10, 3, 4), (10, 1, 10), (9, 3, 3)])
def test_the_torch_range_test_counts_steps_as_total_steps_does(batches: int, accumulation: int, per_epoch: int) -> None:
    """The torch range test's ``schedule()`` used ``len(loader) // accumulation`` (floor) where
    ``cyclr.total_steps`` uses ceil: one rule now."""
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    result = cyclr.torch.lr_range_test(
        model,
        opt,
        torch.nn.functional.mse_loss,
        _loader(batches),
        num_steps=12,
        accumulation_steps=accumulation,
        progress=False,
    )
    assert result.info["steps_per_epoch"] == per_epoch == cyclr.total_steps(1, batches, accumulation=accumulation)


def test_the_progress_bar_ends_at_the_steps_really_run(capsys: pytest.CaptureFixture[str]) -> None:
    """It showed 100/100 when the test stopped at step 91."""
    from cyclr.finder._core import progress_bar

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    result = cyclr.torch.lr_range_test(model, opt, torch.nn.functional.mse_loss, _loader(), end_lr=1e6, num_steps=100)
    assert result.stop_reason != "completed" and result.steps < 100
    shown = capsys.readouterr().out
    assert f"{result.steps}/{result.steps}" in shown and "100/100" not in shown

    bar = progress_bar(True, 100)
    with bar as update:
        for _ in range(91):
            update(1)
        update(0, skipped=9)
        task = bar._ctx.tasks[0]
        assert (task.completed, task.total) == (91, 91)


def test_long_plots_are_sampled_and_keep_every_restart() -> None:
    """``cyclr plot 'cosine:max_lr=0.1,total_steps=1000000000'`` asked for a 7.8 GiB array."""
    from cyclr.plot import MAX_POINTS, plot_schedules, plot_steps

    s = cyclr.sgdr(0.1, period=10**6, period_mult=2)
    starts = s.cycle_starts(10**9)
    t = plot_steps([s], 10**9)
    assert len(t) <= MAX_POINTS + 2 + 2 * len(starts) and t[0] == 0 and t[-1] == 10**9 - 1
    assert np.all(np.diff(t) > 0)
    for start in starts[1:]:  # the floor before each restart and the restart itself are drawn
        assert {math.ceil(start) - 1, math.ceil(start)} <= set(t.tolist())
    np.testing.assert_array_equal(plot_steps([s], 500), np.arange(500))
    t0 = time.perf_counter()
    fig = plot_schedules([cyclr.cosine(0.1, total_steps=10**9), s])
    assert time.perf_counter() - t0 < 20
    import matplotlib.pyplot as plt

    plt.close(fig)
