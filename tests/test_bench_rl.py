"""The RL tasks (cartpole-dqn, cartpole-pg) on tiny budgets, through the harness."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

pytest.importorskip("gymnasium")

from cyclr.bench import TASKS, register
from cyclr.bench.driver import ScheduleDriver
from cyclr.bench.harness import BenchConfig, RunSpec, execute, plan_runs
from cyclr.bench.recorder import evaluation_steps
from cyclr.bench.rl import CartPoleDQN, CartPolePG, EpisodeRunner, RLTask, last_mean
from cyclr.bench.strategies import STRATEGIES, one_cycle_lr
from cyclr.schedules import Constant, from_config


class TinyDQN(CartPoleDQN):
    name = "test-cartpole-dqn"
    per_epoch = 1200
    learning_starts = 200
    exploration_steps = 600
    target_update_interval = 100
    evals_per_epoch = 4
    range_test_transitions = 500


class TinyPG(CartPolePG):
    name = "test-cartpole-pg"
    per_epoch = 24
    evals_per_epoch = 4


@pytest.fixture(scope="module", autouse=True)
def tiny_tasks() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: extra threads only add overhead
    for cls in (TinyDQN, TinyPG):
        register(cls)
    yield
    for cls in (TinyDQN, TinyPG):
        TASKS.pop(cls.name, None)
    torch.set_num_threads(threads)


def run(task: type[RLTask], strategy: str = "constant", lr: float | None = None, seed: int = 0) -> dict[str, Any]:
    if strategy == "constant" and lr is None:
        lr = task.default_lr["adam"]
    variant = f"constant lr={lr:.4g}" if strategy == "constant" else strategy
    record = execute(RunSpec(task.name, "adam", strategy, variant, seed, 1, task.batch_size, None, lr))
    assert record["status"] == "done", record.get("traceback")
    return record


TINY = [TinyDQN, TinyPG]


@pytest.mark.parametrize("task", TINY, ids=lambda t: t.name)
def test_constant_run_records_the_last_100_episode_mean(task: type[RLTask]) -> None:
    record = run(task)
    r = record["result"]
    total = task.per_epoch
    assert record["steps_per_epoch"] == total and r["steps"] == total and not r["diverged"]
    assert r["eval_steps"] == sorted(evaluation_steps(total, 1, task.evals_per_epoch))
    returns, ends = r["episode_returns"], r["episode_ends"]
    assert returns and len(returns) == len(ends) and ends == sorted(ends) and ends[-1] <= total
    for step, metric in zip(r["eval_steps"], r["metrics"]):
        done = [ret for ret, end in zip(returns, ends) if end <= step]
        expected = sum(done[-100:]) / 100  # missing episodes count as 0
        assert metric == pytest.approx(expected)
        assert metric == pytest.approx(last_mean(done))
    assert all(m < task.target for m in r["metrics"]) and r["steps_to_target"] is None
    if task is TinyPG:  # every episode is one schedule step
        assert ends == list(range(1, total + 1))
    else:  # every CartPole episode lasts at least 8 env steps
        assert sum(returns) <= total and min(b - a for a, b in zip([0, *ends], ends)) >= 8
    assert all(lr == pytest.approx(task.default_lr["adam"]) for lr in r["lrs"])
    assert r["trace_steps"][0] == 0 and len(r["trace_steps"]) == len(range(0, total, max(1, total // 200)))
    losses = [x for x in r["train_losses"] if x == x]
    assert losses and all(abs(x) < 1e6 for x in losses)


@pytest.mark.parametrize("task", TINY, ids=lambda t: t.name)
def test_same_seed_same_run_and_lr_matters(task: type[RLTask]) -> None:
    a, b = run(task)["result"], run(task)["result"]
    for key in ("metrics", "episode_returns", "episode_ends", "train_losses", "lrs"):
        assert a[key] == pytest.approx(b[key], nan_ok=True)
    c = run(task, lr=task.default_lr["adam"] * 10)["result"]
    assert c["train_losses"] != pytest.approx(a["train_losses"], nan_ok=True)
    d = run(task, seed=1)["result"]
    assert d["episode_returns"] != a["episode_returns"]


@pytest.mark.parametrize("task", TINY, ids=lambda t: t.name)
def test_auto_runs_the_range_tests_one_cycle(task: type[RLTask]) -> None:
    """auto: the range test's one-cycle; where the task's objective has a caveat (REINFORCE's),
    the test gives no LR, the run says why and peaks at the task's default LR instead."""
    record = run(task, "auto")
    r = record["result"]
    assert record["search_steps"] > 0
    schedule = from_config(record["driver"]["schedule"])
    if task.range_test_caveat:
        assert "no safe learning rate for this objective" in record["details"]["no_safe_lr"]
        assert task.range_test_caveat in record["details"]["no_safe_lr"]
        assert "suggestion" not in record["details"]
        assert schedule.max_lr == task.default_lr["adam"]  # type: ignore[attr-defined]
    else:
        assert record["details"]["suggestion"] > 0
    assert schedule.to_config()["name"] == "one_cycle"
    assert r["steps"] == task.per_epoch
    for step, lr, momentum in zip(r["trace_steps"], r["lrs"], r["momenta"]):
        assert lr == pytest.approx(float(schedule(step)), rel=1e-6)
        assert 0.85 - 1e-9 <= momentum <= 0.95 + 1e-9
    assert max(r["lrs"]) > 5 * min(r["lrs"])  # it really cycles


@pytest.mark.parametrize("task", TINY, ids=lambda t: t.name)
def test_peer_is_refused(task: type[RLTask]) -> None:
    """The peer recipe (torch-lr-finder) needs a data set: the plan leaves it out, and a run
    asked for directly fails with a message naming the runners it can drive."""
    assert "rl" not in STRATEGIES["peer"].runners
    assert "peer" not in {s.strategy for s in plan_runs(BenchConfig(tasks=[task.name], strategies=["peer", "cosine"]))}
    record = execute(RunSpec(task.name, "adam", "peer", "peer", 0, 1, task.batch_size))
    assert record["status"] == "failed"
    assert "strategy 'peer' cannot drive task" in record["error"] and "runs on: torch" in record["error"]
    # a torch scheduler driver would refuse a Keras optimizer too (its own check, not the loop's)
    driver = one_cycle_lr(0.1, 10)
    assert driver.runners == ("torch",)


@pytest.mark.parametrize("task", TINY, ids=lambda t: t.name)
def test_range_test_restores_the_model(task: type[RLTask], monkeypatch: pytest.MonkeyPatch) -> None:
    t = task()
    torch.manual_seed(3)
    model = t.model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr(t, "model", lambda: model)
    result = EpisodeRunner().range_test(t, t.load(), "adam", 0)
    assert result.steps > 5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_task_settings() -> None:
    for cls in (CartPoleDQN, CartPolePG):
        t = TASKS[cls.name]()
        assert t.domain == "rl" and t.higher_is_better and t.target == 475.0
        assert "peer" not in (t.strategies or ()) and t.optimizers == ("adam",)
        assert t.load() is None  # no data set: the agent collects its own experience
        assert not hasattr(t, "evaluate") and t.batch_size == (64 if cls is CartPoleDQN else None)
        assert t.steps_per_epoch(None) == cls.per_epoch and t.runner == "rl"
        assert t.metric_label == "mean return of the last 100 training episodes"
    assert CartPoleDQN.step_unit == "env steps" and CartPolePG.step_unit == "episodes"


def test_sgd_runs() -> None:
    t = TinyPG()
    result = EpisodeRunner().run(t, t.load(), ScheduleDriver(Constant(1e-3)), optimizer="sgd", epochs=1, seed=0)
    assert result.steps == TinyPG.per_epoch and result.lrs[0] == pytest.approx(1e-3)
