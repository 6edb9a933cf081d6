"""Configuration as data: to_config/from_config round trips, files, short form, errors, safe YAML."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import cyclr
from conftest import ALL_CASES, EXAMPLES, STRATEGIES

STEPS = np.arange(2000)


def test_examples_cover_every_registered_schedule() -> None:
    assert set(EXAMPLES) == set(cyclr.REGISTRY)
    assert set(STRATEGIES) == set(cyclr.REGISTRY)
    for name, s in EXAMPLES.items():
        assert type(s) is cyclr.REGISTRY[name]
        assert s.name == name


def test_registered_is_sorted_registry() -> None:
    assert cyclr.registered() == sorted(cyclr.REGISTRY)


@pytest.mark.parametrize("key", list(ALL_CASES))
def test_json_round_trip(key: str) -> None:
    s = ALL_CASES[key]
    config = s.to_config()
    assert config["name"] == s.name
    back = cyclr.from_config(json.loads(json.dumps(config)))
    assert back == s
    assert type(back) is type(s)
    assert back.to_config() == config
    np.testing.assert_array_equal(back(STEPS), s(STEPS))
    np.testing.assert_array_equal(back.level(STEPS), s.level(STEPS))
    assert back.horizon == s.horizon
    assert back.bounds == s.bounds


@pytest.mark.parametrize("key", list(ALL_CASES))
def test_load_config_dict_and_inline_json(key: str) -> None:
    s = ALL_CASES[key]
    assert cyclr.load_config(s.to_config()) == s
    assert cyclr.load_config(json.dumps(s.to_config())) == s
    assert cyclr.load_config("  " + json.dumps(s.to_config()) + "\n") == s


def test_from_config_accepts_a_schedule() -> None:
    s = EXAMPLES["cosine"]
    assert cyclr.from_config(s) is s


def test_yaml_file(tmp_path) -> None:
    path = tmp_path / "sched.yaml"
    path.write_text(
        "name: warmup\n"
        "steps: 10\n"
        "shape: cosine\n"
        "schedule:\n"
        "  name: triangular\n"
        "  base_lr: 1.0e-4\n"
        "  max_lr: 0.01\n"
        "  step_size: 20\n",
        encoding="utf-8",
    )
    expected = cyclr.warmup(cyclr.triangular(base_lr=1e-4, max_lr=0.01, step_size=20), steps=10, shape="cosine")
    assert cyclr.load_config(path) == expected
    assert cyclr.load_config(str(path)) == expected
    yml = tmp_path / "sched.yml"
    yml.write_text(yaml.safe_dump(EXAMPLES["join"].to_config()), encoding="utf-8")
    assert cyclr.load_config(yml) == EXAMPLES["join"]


@pytest.mark.parametrize("key", list(EXAMPLES))
def test_json_file(tmp_path, key: str) -> None:
    path = tmp_path / f"{key}.json"
    path.write_text(json.dumps(EXAMPLES[key].to_config(), indent=2), encoding="utf-8")
    assert cyclr.load_config(path) == EXAMPLES[key]


def test_missing_file_raises(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        cyclr.load_config(tmp_path / "absent.yaml")


def test_short_form() -> None:
    s = cyclr.load_config("triangular:base_lr=1e-4,max_lr=0.01,step_size=20")
    assert s == cyclr.triangular(base_lr=1e-4, max_lr=0.01, step_size=20)
    assert isinstance(s.step_size, int)
    assert s(20) == pytest.approx(0.01, rel=1e-15)
    assert s(0) == pytest.approx(1e-4, rel=1e-15)


def test_short_form_strings_lists_and_bools() -> None:
    s = cyclr.load_config("cyclic: base_lr=1e-4, max_lr=0.01, step_size=20, shape=sine, decay_every=step")
    assert s == cyclr.cyclic(base_lr=1e-4, max_lr=0.01, step_size=20, shape="sine", decay_every="step")
    m = cyclr.load_config("multistep:lr=0.1,milestones=[30,80],gamma=0.5")
    assert m == cyclr.multistep(lr=0.1, milestones=(30, 80), gamma=0.5)
    assert m.milestones == (30, 80)
    o = cyclr.load_config("one_cycle:max_lr=0.1,total_steps=100,three_phase=true,anneal=linear")
    assert o == cyclr.one_cycle(max_lr=0.1, total_steps=100, three_phase=True, anneal="linear")


def test_short_form_non_finite_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        cyclr.load_config("constant:lr=Infinity")


def test_short_form_missing_equals() -> None:
    with pytest.raises(ValueError, match="key=value"):
        cyclr.load_config("constant:0.1")


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="no_such_schedule") as err:
        cyclr.from_config({"name": "no_such_schedule", "lr": 0.1})
    for name in cyclr.REGISTRY:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="valid names"):
        cyclr.load_config("no_such_schedule:lr=0.1")


def test_missing_name_key() -> None:
    with pytest.raises(ValueError, match="name") as err:
        cyclr.from_config({"lr": 0.1})
    assert "triangular" in str(err.value)


def test_unknown_parameter() -> None:
    with pytest.raises(ValueError, match="unknown parameter") as err:
        cyclr.from_config({"name": "cosine", "max_lr": 0.1, "total_steps": 10, "warmup_steps": 3})
    msg = str(err.value)
    assert "cosine" in msg and "warmup_steps" in msg
    assert "max_lr" in msg and "total_steps" in msg and "min_lr" in msg  # the valid ones


def test_missing_parameter() -> None:
    with pytest.raises(ValueError, match="missing required parameter") as err:
        cyclr.from_config({"name": "triangular", "base_lr": 1e-4, "max_lr": 0.01})
    assert "step_size" in str(err.value)
    assert "base_lr" not in str(err.value).split("parameter(s)")[1]


def test_config_must_be_a_mapping() -> None:
    with pytest.raises(TypeError):
        cyclr.from_config([("name", "constant")])  # type: ignore[arg-type]


def test_nested_config_dicts_are_built() -> None:
    cfg = {
        "name": "join",
        "schedules": [{"name": "constant", "lr": 0.1}, {"name": "cosine", "max_lr": 0.1, "total_steps": 10}],
        "boundaries": [5],
    }
    s = cyclr.from_config(cfg)
    assert s.schedules == (cyclr.constant(0.1), cyclr.cosine(max_lr=0.1, total_steps=10))
    assert s(4) == 0.1
    assert s(15) == 0.0


def test_yaml_is_loaded_safely(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(
        f"!!python/object/apply:os.system ['touch {marker}']\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="not a valid schedule YAML file"):
        cyclr.load_config(path)
    assert not marker.exists()

    obj = tmp_path / "obj.yaml"
    obj.write_text("!!python/object:cyclr.Constant {lr: 0.1}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid schedule YAML file"):
        cyclr.load_config(obj)
