"""The sequence and language tasks of ``cyclr bench`` (their data, models, metrics and targets
against hand computations), the tasks' own defaults in the plan, and the report grouped by domain
with its overview and the README block generated from it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from cyclr.bench import get_task
from cyclr.bench.harness import BenchConfig, load_records, plan_runs
from cyclr.bench.report import (
    README_END,
    README_START,
    aggregate,
    first_to_target,
    overview,
    recommend,
    update_readme,
)
from cyclr.bench.sequences import SeriesTask, naive_forecasts
from cyclr.bench.store import Store
from cyclr.bench.tasks import TaskData
from cyclr.bench.text import CharGPT, GRUClassifier, TransformerClassifier, tokenize
from cyclr.cli import cli
from cyclr.data import tiny_shakespeare


class _Zero(nn.Module):
    """Predicts 0 for every horizon (in the task's transformed units)."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), self.horizon)


# ---------------------------------------------------------------------- forecasting
def test_naive_forecasts_follow_their_definitions() -> None:
    y = np.arange(100.0) ** 1.5
    ends = np.array([20, 31, 57])
    out = naive_forecasts(y, ends, horizon=5, season=2)
    for i, t in enumerate(ends):
        assert list(out["naive"][i]) == [y[t]] * 5
        # y[t + h - season * ceil(h / season)]: the last observed value of the same phase
        assert list(out["seasonal-naive"][i]) == [y[t - 1], y[t], y[t - 1], y[t], y[t - 1]]


@pytest.mark.parametrize("name", ["sunspots-lstm", "airline-lstm"])
def test_series_splits_are_chronological_and_the_target_comes_from_the_naive_forecasts(name: str) -> None:
    task = get_task(name)
    assert isinstance(task, SeriesTask)
    data = task.load()
    n = len(task.raw())
    a, b = int(0.70 * n), int(0.85 * n)
    ends = task._ends
    assert ends["train"].max() + task.horizon < a  # every training target is before validation
    assert ends["val"].min() + 1 >= a and ends["val"].max() + task.horizon < b
    assert ends["test"].min() + 1 >= b and ends["test"].max() + task.horizon == n - 1
    assert len(data.x_train) == len(ends["train"]) and len(data.x_test) == len(ends["val"])
    assert data.extra["x_test"].shape == (len(ends["test"]), task.window)
    base = task.baselines(data)
    best = min(base["naive (val)"], base["seasonal-naive (val)"])
    assert task.target == pytest.approx(task.target_vs_naive * best, abs=0.01)
    assert not task.higher_is_better and task.domain == "sequences"


def test_a_zero_seasonal_difference_is_the_seasonal_naive_forecast() -> None:
    """airline-lstm predicts log y[t+h] - log y[t+h-12]: a model that outputs 0 must score exactly
    the seasonal-naive RMSE on both splits."""
    task = get_task("airline-lstm")
    data = task.load()
    base = task.baselines(data)
    model = _Zero(task.horizon)
    assert task.evaluate(model, data) == pytest.approx(base["seasonal-naive (val)"], rel=1e-9)
    assert task.final_metrics(model, data)["test rmse"] == pytest.approx(base["seasonal-naive (test)"], rel=1e-9)


def test_a_zero_standard_score_is_the_training_mean_forecast() -> None:
    task = get_task("sunspots-lstm")
    assert isinstance(task, SeriesTask)
    data = task.load()
    y = task.raw()
    mean = y[: int(0.70 * len(y))].mean()
    truth = np.stack([y[t + 1 : t + 13] for t in task._ends["val"]])
    assert task.evaluate(_Zero(12), data) == pytest.approx(float(np.sqrt(np.mean((truth - mean) ** 2))), rel=1e-6)


# ---------------------------------------------------------------------- language
def test_shakespeare_char_is_nanogpts_cpu_configuration() -> None:
    task = get_task("shakespeare-char")
    data = task.load()
    text = tiny_shakespeare()
    chars = sorted(set(text))
    assert len(chars) == 65
    model = task.model()
    assert isinstance(model, CharGPT)
    # nanoGPT's reported count leaves out the position embeddings: "number of parameters: 0.80M"
    n = sum(p.numel() for p in model.parameters()) - 64 * 128
    assert n == 795_904
    # validation is the last 10% of the text, read whole, targets shifted by one character
    cut = int(0.9 * len(text))
    first = "".join(chars[i] for i in data.x_test[0].tolist())
    assert first == text[cut : cut + 64]
    assert torch.equal(data.x_test[0, 1:], data.y_test[0, :-1])
    assert torch.equal(data.x_train[1, :-16], data.x_train[0, 16:])  # training windows every 16 characters
    assert task.steps_per_epoch(data) == 250 and task.epochs * 250 == 2000  # nanoGPT's max_iters
    # untrained, the loss is close to uniform over 65 characters
    torch.manual_seed(0)
    small = TaskData(data.x_train[:1], data.y_train[:1], data.x_test[:32], data.y_test[:32])
    assert task.evaluate(model, small) == pytest.approx(math.log(65), abs=0.15)
    opt = task.make_optimizer("adam", task.param_groups(model), 1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0] and opt.defaults["betas"] == (0.9, 0.99)
    assert task.grad_clip == 1.0


@pytest.mark.parametrize("make", [lambda: TransformerClassifier(50, 40), lambda: GRUClassifier(50)])
def test_classifiers_ignore_the_padding(make: Any) -> None:
    torch.manual_seed(0)
    model = make().eval()
    ids = torch.randint(1, 50, (3, 12))
    short = torch.cat([ids, torch.zeros(3, 8, dtype=torch.long)], 1)
    long = torch.cat([ids, torch.zeros(3, 28, dtype=torch.long)], 1)
    with torch.no_grad():
        assert torch.allclose(model(short), model(long), atol=1e-5)


def test_sms_spam_f1_and_tokens() -> None:
    assert tokenize("WIN £1000 now!! Call 08712") == ["win", "£1000", "now", "!", "!", "call", "08712"]
    task = get_task("sms-spam")
    y = torch.tensor([1, 1, 1, 0, 0, 0, 0, 1])
    pred = torch.tensor([1, 1, 0, 1, 0, 0, 0, 0])  # tp 2, fp 1, fn 2

    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.one_hot(pred[x[:, 0]], 2).float()

    data = TaskData(torch.zeros(1, 1), torch.zeros(1), torch.arange(8).unsqueeze(1), y)
    assert task.evaluate(Fixed(), data, batch_size=3) == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))


# ---------------------------------------------------------------------- the tasks' defaults
def test_each_task_brings_its_own_optimizers_strategies_and_seeds() -> None:
    specs = plan_runs(BenchConfig(tasks=["shakespeare-char", "cartpole-pg", "airline-lstm"]))
    by_task: dict[str, list[Any]] = {}
    for s in specs:
        by_task.setdefault(s.task, []).append(s)
    lm = by_task["shakespeare-char"]
    assert {s.optimizer for s in lm} == {"adam"}
    assert {s.strategy for s in lm} == {"constant", "warmup_cosine", "one_cycle", "triangular", "auto"}
    assert {s.seed for s in lm} == {0, 1, 2}
    assert {s.seed for s in by_task["cartpole-pg"]} == set(range(5))  # RL: 5 seeds
    assert {s.optimizer for s in by_task["airline-lstm"]} == {"sgd", "adam"}
    # the command line overrides every task's defaults
    specs = plan_runs(BenchConfig(tasks=["shakespeare-char"], seeds=1, strategies=["cosine"], optimizers=["sgd"]))
    assert [(s.optimizer, s.strategy, s.seed) for s in specs] == [("sgd", "cosine", 0)]


# ---------------------------------------------------------------------- report by domain
def _record(task: str, domain: str, variant: str, seed: int, reached_at: int | None, final: float) -> dict[str, Any]:
    strategy = variant.split()[0]
    steps = [25, 50, 75, 100]
    metrics = [final - 0.1 * (3 - i) for i in range(4)]
    return {
        "status": "done",
        "key": f"{task} adam {variant} seed={seed}",
        "task": task,
        "optimizer": "adam",
        "variant": variant,
        "strategy": strategy,
        "family": "baseline" if strategy == "constant" else "cyclical",
        "lr": 0.01 if strategy == "constant" else None,
        "seed": seed,
        "epochs": 4,
        "steps_per_epoch": 25,
        "metric": "accuracy",
        "higher_is_better": True,
        "target": 0.9,
        "domain": domain,
        "step_unit": "episodes" if domain == "rl" else "steps",
        "search_steps": 0,
        "result": {
            "eval_steps": steps,
            "metrics": metrics,
            "train_losses": [1.0] * 4,
            "steps_to_target": reached_at,
            "seconds_to_target": None if reached_at is None else 1.0,
            "steps": 100,
            "seconds": 2.0,
            "diverged": False,
            "extra": {},
        },
    }


def test_the_overview_is_grouped_by_domain_and_names_the_first_to_the_target() -> None:
    records = []
    for seed, (c, o) in enumerate([(100, 50), (100, 25), (75, 25)]):
        records.append(_record("zz-vision", "vision", "constant lr=0.01", seed, c, 0.95))
        records.append(_record("zz-vision", "vision", "one_cycle", seed, o, 0.97))
        records.append(_record("aa-rl", "rl", "constant lr=0.01", seed, None, 0.5))
        records.append(_record("aa-rl", "rl", "sine", seed, None, 0.6))
    tables = aggregate(records)
    assert [t.task for t in tables] == ["zz-vision", "aa-rl"]  # vision before RL, whatever the names
    first, speed, noise = first_to_target(tables[0])
    assert first == "one_cycle, 33 steps"  # mean of 50, 25, 25
    ratios = [100 / 50, 100 / 25, 75 / 25]
    geo = math.exp(sum(map(math.log, ratios)) / 3)
    assert speed.startswith(f"{geo:.2f}x [") and noise == "yes"  # every seed faster: the interval is above 1
    first, speed, noise = first_to_target(tables[1])
    assert first == "none in every seed" and tables[1].step_unit == "episodes"
    lines = overview(tables).splitlines()  # what to use, vision before RL
    assert lines[2].startswith("| zz-vision | adam | **one_cycle** | cyclical | +0.0200 (better) * |")
    assert lines[3].startswith("| aa-rl | adam | **sine** | cyclical | +0.1000 (better) * |")
    assert [recommend(t).confidence for t in tables] == ["clear", "clear"]  # the same gain on every seed


def test_records_without_a_domain_take_the_tasks(tmp_path: Path) -> None:
    """A record stored before a field existed is brought up to date from the registries when it
    is loaded (the report itself reads only the record); the stored numbers are kept."""
    record = _record("mnist", "vision", "one_cycle", 0, 50, 0.9)
    del record["domain"], record["step_unit"]
    record["target"] = 0.5  # as stored: not the task's current 0.99
    with Store(tmp_path) as store:
        store.put(record)
        (table,) = aggregate(load_records(store))
    assert table.domain == "vision" and table.step_unit == "steps" and table.target == 0.5
    assert table.metric_label == "test accuracy" and table.rows[0].family == "cyclical"
    del record["family"]
    (bare,) = aggregate([record])  # without the registries: the record's own facts only
    assert bare.domain == "other" and bare.metric_label == "accuracy" and bare.rows[0].family == ""


def test_the_readme_block_is_generated_and_replaced(tmp_path: Path) -> None:
    tables = aggregate([_record("zz", "vision", "constant lr=0.01", 0, 50, 0.95)])
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\noutro\n")
    update_readme(readme, tables, "cyclr bench --task zz")
    once = readme.read_text()
    assert once.startswith("intro\n") and once.endswith("\noutro\n") and "old" not in once
    assert "cyclr bench --task zz" in once and overview(tables) in once
    update_readme(readme, tables, "cyclr bench --task zz")
    assert readme.read_text() == once  # idempotent
    readme.write_text("no block")
    with pytest.raises(ValueError, match="no overview block"):
        update_readme(readme, tables, "x")
    result = CliRunner().invoke(cli, ["bench", "--readme", str(readme), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--readme goes with --report-only" in result.output


def test_cyclr_find_runs_an_rl_tasks_own_range_test(tmp_path: Path) -> None:
    """RL has no data set: `cyclr find` uses the task's range test (DQN's TD loss on collected
    transitions) and proposes a schedule over the task's budget in its own units."""
    out = tmp_path / "find.json"
    result = CliRunner().invoke(
        cli,
        ["find", "--task", "cartpole-dqn", "--optimizer", "adam", "-o", str(tmp_path / "f.png"), "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    proposed = json.loads(out.read_text())["proposed"]
    task = get_task("cartpole-dqn")
    assert proposed["lr"]["total_steps"] == task.epochs * task.steps_per_epoch(task.load())


def test_cyclr_find_on_reinforce_sweeps_the_real_objective_and_gives_no_lr(tmp_path: Path) -> None:
    """REINFORCE's range test runs on the real objective, but the calibration study measured it
    3x-30x too high on every seed: `cyclr find` shows the sweeps, says why it proposes no LR, and
    exits 1; the JSON keeps the curve and the reason."""
    out = tmp_path / "find.json"
    result = CliRunner().invoke(
        cli, ["find", "--task", "cartpole-pg", "--optimizer", "adam", "-o", str(tmp_path / "f.png"), "--json", str(out)]
    )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "no LR proposed: no safe learning rate for this objective" in text and "REINFORCE" in text
    saved = json.loads(out.read_text())
    assert "proposed" not in saved and "REINFORCE" in saved["error"] and len(saved["curve"]["lrs"]) > 10
    assert (tmp_path / "f.png").stat().st_size > 0
