"""Invalid parameters raise InvalidParameterError at construction, with a message that names them.

The generic test is driven by each schedule's declared ``constraints``: a new schedule (or a new
constraint) is covered without touching this file.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import cyclr
from conftest import EXAMPLES
from cyclr import InvalidParameterError
from cyclr._validation import short_repr


def _cases() -> list[Any]:
    cases = []
    for name in sorted(cyclr.REGISTRY):
        for param, constraints in cyclr.REGISTRY[name].constraints.items():
            for c in constraints:
                for bad in c.invalid_examples():
                    cases.append(pytest.param(name, param, bad, id=f"{name}-{param}-{bad!r}"))
    return cases


def test_every_schedule_declares_constraints_for_every_parameter() -> None:
    import dataclasses

    for name, cls in cyclr.REGISTRY.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(cls.constraints) == fields, name
        for param, constraints in cls.constraints.items():
            assert constraints, (name, param)
            assert all(c.invalid_examples() for c in constraints), (name, param)


@pytest.mark.parametrize(("name", "param", "bad"), _cases())
def test_invalid_parameter_is_rejected_with_a_precise_message(name: str, param: str, bad: Any) -> None:
    config = EXAMPLES[name].to_config()
    config[param] = bad
    with pytest.raises(InvalidParameterError) as err:
        cyclr.from_config(config)
    msg = str(err.value)
    assert msg.startswith(f"{name}: "), msg
    assert f"parameter {param!r}" in msg, msg
    assert short_repr(bad) in msg, msg
    assert len(msg) < 600, msg  # bounded, whatever the value
    assert err.value.owner == name and err.value.param == param
    # and the same through the constructor
    kwargs = {k: v for k, v in config.items() if k != "name"}
    with pytest.raises(InvalidParameterError):
        cyclr.REGISTRY[name](**kwargs)


def test_invalid_parameter_error_is_a_value_error() -> None:
    assert issubclass(InvalidParameterError, ValueError)
    with pytest.raises(ValueError):
        cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=0)


def test_message_format() -> None:
    with pytest.raises(InvalidParameterError) as err:
        cyclr.cyclic(base_lr=1e-3, max_lr=1e-2, step_size=0)
    # cycle lengths start at a millionth of a step (below it they only alias, and overflow near 5e-324)
    assert str(err.value) == "cyclic: parameter 'step_size' must be a finite number >= 1e-06; got 0."


@pytest.mark.parametrize("name", ["cyclic", "triangular", "triangular2", "exp_range"])
def test_max_below_base(name: str) -> None:
    with pytest.raises(InvalidParameterError, match=rf"{name}: parameter 'max_lr' .*>= base_lr.*got 0\.001\."):
        cyclr.REGISTRY[name](base_lr=0.01, max_lr=0.001, step_size=5)
    cyclr.REGISTRY[name](base_lr=0.01, max_lr=0.01, step_size=5)  # equal is a constant: allowed


@pytest.mark.parametrize(
    ("make", "param"),
    [
        (lambda: cyclr.cosine(max_lr=0.01, total_steps=10, min_lr=0.1), "max_lr"),
        (lambda: cyclr.sgdr(max_lr=0.01, period=10, min_lr=0.1), "max_lr"),
        (lambda: cyclr.wsd(max_lr=0.01, warmup_steps=1, stable_steps=1, decay_steps=1, min_lr=0.1), "max_lr"),
        (lambda: cyclr.polynomial(lr=0.01, total_steps=10, end_lr=0.1), "lr"),
        (lambda: cyclr.mirror(cyclr.constant(0.1), 0.95, 0.85), "high"),
    ],
)
def test_peak_below_floor(make: Any, param: str) -> None:
    with pytest.raises(InvalidParameterError) as err:
        make()
    assert err.value.param == param


@pytest.mark.parametrize(
    "make",
    [
        lambda: cyclr.cyclic(base_lr=1e-3, max_lr=1e-2, step_size=0),
        lambda: cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=0),
        lambda: cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=5, step_size_down=0),
        lambda: cyclr.step_decay(lr=0.1, step_size=0),
        lambda: cyclr.sgdr(max_lr=0.1, period=0),
        lambda: cyclr.cosine(max_lr=0.1, total_steps=0),
    ],
)
def test_zero_step_size(make: Any) -> None:
    with pytest.raises(InvalidParameterError, match=r"got 0\."):
        make()


@pytest.mark.parametrize("pct", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf])
def test_pct_start_outside_open_unit_interval(pct: float) -> None:
    with pytest.raises(
        InvalidParameterError, match=r"one_cycle: parameter 'pct_start' must be a finite number in \(0, 1\); got "
    ):
        cyclr.one_cycle(max_lr=0.1, total_steps=100, pct_start=pct)


@pytest.mark.parametrize(("pct", "total"), [(0.1, 10), (0.01, 100), (0.3, 2), (0.5, 2)])
def test_pct_start_times_total_steps_at_most_one(pct: float, total: int) -> None:
    with pytest.raises(InvalidParameterError, match=r"pct_start \* total_steps > 1") as err:
        cyclr.one_cycle(max_lr=0.1, total_steps=total, pct_start=pct)
    assert err.value.param == "pct_start"
    assert f"total_steps={total}" in str(err.value)


def test_three_phase_needs_room_for_the_third_phase() -> None:
    with pytest.raises(InvalidParameterError, match="three phases"):
        cyclr.one_cycle(max_lr=0.1, total_steps=100, pct_start=0.6, three_phase=True)
    cyclr.one_cycle(max_lr=0.1, total_steps=100, pct_start=0.6)  # fine with two phases
    cyclr.one_cycle(max_lr=0.1, total_steps=100, pct_start=0.45, three_phase=True)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("constant", "lr"),
        ("cyclic", "max_lr"),
        ("cyclic", "step_size"),
        ("cyclic", "decay"),
        ("exp_range", "gamma"),
        ("sgdr", "period_mult"),
        ("one_cycle", "div_factor"),
        ("exponential", "gamma"),
        ("polynomial", "power"),
        ("warmup", "start_lr"),
        ("mirror", "low"),
    ],
)
def test_nan_and_inf(name: str, param: str, bad: float) -> None:
    config = EXAMPLES[name].to_config()
    config[param] = bad
    with pytest.raises(InvalidParameterError, match=rf"{name}: parameter '{param}' must be a finite number"):
        cyclr.from_config(config)


@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("cyclic", "shape"),
        ("cyclic", "decay_every"),
        ("one_cycle", "anneal"),
        ("wsd", "warmup_shape"),
        ("wsd", "decay_shape"),
        ("warmup", "shape"),
    ],
)
def test_unknown_shape(name: str, param: str) -> None:
    config = EXAMPLES[name].to_config()
    config[param] = "zigzag"
    with pytest.raises(InvalidParameterError, match=rf"{name}: parameter '{param}' must be one of .*got 'zigzag'"):
        cyclr.from_config(config)


def test_join_boundary_count_mismatch() -> None:
    a, b = cyclr.constant(0.1), cyclr.constant(0.2)
    with pytest.raises(InvalidParameterError, match=r"join: parameter 'boundaries' .*len\(schedules\) - 1 = 1"):
        cyclr.join([a, b], [5, 10])
    with pytest.raises(InvalidParameterError, match="boundaries"):
        cyclr.join([a, b, a], [5])


def test_join_boundaries_strictly_increasing() -> None:
    a, b, c = cyclr.constant(0.1), cyclr.constant(0.2), cyclr.constant(0.3)
    with pytest.raises(InvalidParameterError, match="strictly increasing"):
        cyclr.join([a, b, c], [5, 5])


def test_warmup_exponential_needs_positive_start_and_target() -> None:
    with pytest.raises(InvalidParameterError, match=r"warmup: parameter 'start_lr' must be > 0 .*got 0\.0\."):
        cyclr.warmup(cyclr.constant(0.1), steps=10, start_lr=0.0, shape="exponential")
    with pytest.raises(InvalidParameterError, match="start_lr"):  # target schedule(0) = 0
        cyclr.warmup(
            cyclr.linear(start_lr=0.0, end_lr=0.1, total_steps=10), steps=10, start_lr=1e-4, shape="exponential"
        )
    cyclr.warmup(cyclr.constant(0.1), steps=10, start_lr=1e-4, shape="exponential")


def test_int_parameters_reject_floats_and_bools() -> None:
    with pytest.raises(InvalidParameterError, match="total_steps"):
        cyclr.cosine(max_lr=0.1, total_steps=10.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="total_steps"):
        cyclr.one_cycle(max_lr=0.1, total_steps=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="three_phase"):
        cyclr.one_cycle(max_lr=0.1, total_steps=100, three_phase=1)  # type: ignore[arg-type]
