"""Search spaces as data: checked on load (every error names where it is), sampled through a real
Optuna trial into the cyclr schedule the parameters say, conditional by family."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import n_examples
from cyclr.controllers import ClosedLoopCLR
from cyclr.schedules import SGDR, Cosine, Cyclic, OneCycle, Warmup
from cyclr.space import FAMILIES, SearchSpace, default_space

optuna = pytest.importorskip("optuna")


def fixed(params: dict[str, Any]) -> Any:
    return optuna.trial.FixedTrial(params)


def test_a_fixed_trial_builds_exactly_the_schedule_its_parameters_say() -> None:
    space = default_space(0.1)
    s = space.sample(
        fixed(
            {"family": "cyclic", "cyclic.max_lr": 0.3, "cyclic.div": 10.0, "cyclic.cycle_epochs": 2, "warmup_pct": 0.0}
        ),
        steps_per_epoch=50,
        epochs=8,
    )
    assert isinstance(s, Cyclic)
    assert s.to_config() == Cyclic(0.03, 0.3, step_size=100, shape="triangular", decay=1.0).to_config()
    s = space.sample(
        fixed({"family": "one_cycle", "one_cycle.max_lr": 0.2, "one_cycle.pct_start": 0.25, "warmup_pct": 0.05}),
        steps_per_epoch=50,
        epochs=8,
    )
    assert isinstance(s, Warmup) and s.steps == 20  # 5% of 400 steps, inside the run
    assert s.schedule.to_config() == OneCycle(0.2, 380, pct_start=0.25, div_factor=25.0).to_config()
    assert float(s(399)) == pytest.approx(0.2 / 25 / 1e4, rel=1e-6)  # the one-cycle ends with the run


def test_sgdr_cycles_fill_the_run() -> None:
    space = SearchSpace.from_data({"families": {"sgdr": {"max_lr": 0.1, "cycles": 3, "period_mult": 2.0}}})
    s = space.sample(fixed({}), steps_per_epoch=10, epochs=7)  # one family, nothing searched
    assert isinstance(s, SGDR) and s.period == pytest.approx(10.0)  # 10 + 20 + 40 = 70 steps
    assert float(s(69)) == pytest.approx(1e-4, abs=2e-4) and float(s(70)) == pytest.approx(0.1)


def test_a_real_study_samples_only_valid_schedules_of_each_family() -> None:
    space = default_space(0.05)
    seen: set[str] = set()

    def objective(trial: Any) -> float:
        s = space.sample(trial, steps_per_epoch=20, epochs=5)
        seen.add(trial.params.get("family"))
        if isinstance(s, ClosedLoopCLR):  # the closed loop: its first guess within the range, its budget the run
            assert 0.05 / 30 <= (s.max_lr or 0) <= 0.05 * 30 and s.total_steps == 100
            assert set(trial.params) == {"family", "adaptive.max_lr"}  # no warm-up for the controller
            return float(s.max_lr or 0)
        values = np.asarray(s(np.arange(100)))
        assert np.all(np.isfinite(values)) and np.all(values >= 0) and values.max() <= 0.05 * 30 * (1 + 1e-9)
        family = trial.params.get("family")
        seen.add(family)
        assert all(k == "family" or k == "warmup_pct" or k.startswith(f"{family}.") for k in trial.params)
        return float(values.mean())

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=60)
    assert seen == set(FAMILIES)
    only = default_space(0.05, ("cosine",))  # one family: no "family" parameter to sample
    assert isinstance(only.sample(fixed({"cosine.max_lr": 0.1, "warmup_pct": 0.0}), 10, 2), Cosine)


def test_files_round_trip_yaml_and_json(tmp_path: Path) -> None:
    data = default_space(0.01).to_data()
    (tmp_path / "s.json").write_text(json.dumps(data))
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    assert SearchSpace.load(tmp_path / "s.json") == SearchSpace.load(tmp_path / "s.yaml") == default_space(0.01)
    (tmp_path / "s.txt").write_text("{}")
    with pytest.raises(ValueError, match=re.escape("the file name is 's.txt'; allowed: a .yaml, .yml or .json")):
        SearchSpace.load(tmp_path / "s.txt")
    (tmp_path / "evil.yaml").write_text("!!python/object/apply:os.system ['echo hi']")
    with pytest.raises(yaml.YAMLError):  # the safe loader: configuration is data, never code
        SearchSpace.load(tmp_path / "evil.yaml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "the top level is []"),
        ({"families": {}}, "families is {}"),
        ({"families": {"nope": {}}}, "a family is 'nope'; allowed: cyclic, one_cycle, sgdr, cosine"),
        ({"families": {"cyclic": {"lr": 0.1}}}, "families.cyclic is ['lr']; allowed: parameters max_lr"),
        ({"families": {"cyclic": {"max_lr": {"low": 1, "high": 0.1}}}}, "allowed: low < high"),
        ({"families": {"cyclic": {"max_lr": {"low": 0, "high": 1, "log": True}}}}, "max_lr.low is 0; allowed: > 0"),
        ({"families": {"cyclic": {"max_lr": {"low": 1e-3, "high": math.inf}}}}, "max_lr.high is inf"),
        ({"families": {"cyclic": {"max_lr": -0.1}}}, "families.cyclic.max_lr is -0.1; allowed: > 0"),
        ({"families": {"cyclic": {"div": 0.5}}}, "families.cyclic.div is 0.5; allowed: >= 1"),
        ({"families": {"cyclic": {"mode": "square"}}}, "families.cyclic.mode is 'square'; allowed: triangular"),
        ({"families": {"cyclic": {"cycle_epochs": {"low": 1.5, "high": 4, "int": True}}}}, "whole numbers"),
        ({"families": {"one_cycle": {"pct_start": 1.5}}}, "pct_start is 1.5; allowed: in (0, 1]"),
        ({"families": {"sgdr": {"period_mult": {"choices": []}}}}, "period_mult.choices is []"),
        ({"families": {"cosine": {}}, "warmup_pct": 1.0}, "warmup_pct is 1.0; allowed: a share of the run"),
        ({"families": {"cosine": {}}, "extra": 1}, "the top level is ['extra']"),
    ],
)
def test_bad_spaces_are_clear_errors(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=r"^search space: ") as err:
        SearchSpace.from_data(data)
    assert message in str(err.value)


_LRS = st.floats(1e-5, 1.0)


@st.composite
def spaces(draw: Any) -> dict[str, Any]:
    """Valid spaces: any non-empty subset of families, each parameter fixed or a range inside its domain."""
    families: dict[str, Any] = {}
    for family in draw(st.sets(st.sampled_from(sorted(FAMILIES)), min_size=1)):
        lo = draw(_LRS)
        params: dict[str, Any] = {
            "max_lr": draw(
                st.one_of(st.just(lo), st.just({"low": lo, "high": lo * draw(st.floats(1.5, 100)), "log": True}))
            )
        }
        if family == "cyclic":
            params["cycle_epochs"] = draw(st.one_of(st.integers(1, 5), st.just({"low": 1, "high": 6, "int": True})))
            params["gamma"] = draw(st.floats(0.5, 1.0))
            params["mode"] = draw(st.sampled_from(["triangular", "sine", "cosine"]))
        if family == "one_cycle":
            params["pct_start"] = draw(st.floats(0.05, 0.95))
        if family == "sgdr":
            params["cycles"] = draw(st.integers(1, 4))
        families[family] = params
    data: dict[str, Any] = {"families": families}
    if draw(st.booleans()):
        data["warmup_pct"] = {"low": 0.0, "high": draw(st.floats(0.01, 0.5))}
    return data


@given(spaces(), st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**16))
@settings(max_examples=n_examples(60), deadline=None)
def test_any_valid_space_samples_schedules_that_fill_the_run_exactly(
    data: dict[str, Any], per_epoch: int, epochs: int, seed: int
) -> None:
    space = SearchSpace.from_data(data)
    assert SearchSpace.from_data(json.loads(json.dumps(space.to_data()))) == space  # data round trip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    s = space.sample(trial, per_epoch, epochs)
    total = per_epoch * epochs
    if isinstance(s, ClosedLoopCLR):
        assert s.total_steps == max(2, total)
        return
    values = np.asarray(s(np.arange(total + 1)), dtype=float)
    assert np.all(np.isfinite(values)) and np.all(values >= 0)
    peak = (
        max(v for k, v in trial.params.items() if k.endswith("max_lr"))
        if any(k.endswith("max_lr") for k in trial.params)
        else None
    )
    if peak is not None:
        assert values.max() <= peak * (1 + 1e-9)
    inner, warm = (s.schedule, s.steps) if isinstance(s, Warmup) else (s, 0)
    assert warm < total  # the warm-up is inside the run: the schedule after it fills the rest
    length = getattr(inner, "total_steps", None)
    if isinstance(inner, OneCycle):  # at least long enough for a warm-up phase of one step
        assert length == max(2, total - warm, math.floor(1 / inner.pct_start) + 1)
    elif length is not None:
        assert length == max(1, total - warm)
