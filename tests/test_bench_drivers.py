"""Run drivers: a feedback-driven driver plugs into every runner without touching a loop; the
trace is what the optimizer used; the knobs keep discriminative LR ratios; the harness runs a
user's own task and strategy; and the store and engine are interfaces."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, SupportsFloat

import numpy as np
import pytest
import torch

from cyclr.bench import FeedbackDriver, Plan, ScheduleDriver, TorchSchedulerDriver, get_task, strategy
from cyclr.bench.driver import TorchKnobs, knobs_for
from cyclr.bench.harness import RUNNERS, BenchConfig, LocalEngine, execute, plan_runs, run_bench
from cyclr.bench.records import RunRecord
from cyclr.bench.rl import CartPolePG
from cyclr.bench.store import RunStore
from cyclr.bench.strategies import STRATEGIES
from cyclr.bench.tasks import TASKS, register
from cyclr.schedules import Constant, OneCycle


class HalveOnRise(FeedbackDriver):
    """The toy of the bench-v2 issue: halve the LR whenever the loss rises. It records every loss
    it was given, to check what the loops hand it."""

    def __init__(self, lr: float) -> None:
        super().__init__(lr)
        self.seen: list[float] = []

    def update(self, loss: float) -> tuple[float, float | None]:
        rose = bool(self.seen) and loss > self.seen[-1]
        self.seen.append(loss)
        return (self.lr / 2 if rose else self.lr), None


def expected_lrs(lr: float, losses: list[float]) -> list[float]:
    """The LR before each update, given the losses the driver saw after each."""
    out = [lr]
    for prev, loss in zip([math.inf, *losses], losses):
        lr = lr / 2 if loss > prev else lr
        out.append(lr)
    return out[:-1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _check_feedback(result: Any, driver: HalveOnRise, updates: int, lr: float) -> None:
    assert len(driver.seen) == updates  # observe() got the loss of every update, once
    assert result.trace_steps == list(range(result.steps))  # short runs: traced at every step
    want = expected_lrs(lr, driver.seen)
    first_update = result.steps - updates  # an RL agent may start learning late
    assert result.lrs[first_update:] == pytest.approx(want, rel=1e-6)
    assert min(result.lrs) < lr  # the loss rose at least once: the driver really drove


def test_a_feedback_driver_runs_on_the_torch_runner_unchanged() -> None:
    task = get_task("digits")
    data = task.dataset(subset=320)  # 10 steps per epoch
    driver = HalveOnRise(0.05)
    result = RUNNERS["torch"].run(task, data, driver, optimizer="sgd", epochs=2, seed=0)
    _check_feedback(result, driver, 20, 0.05)
    # the losses it saw are the training losses the recorder averaged at each evaluation
    per_eval = [float(np.mean(driver.seen[a:b])) for a, b in ((0, 5), (5, 10), (10, 15), (15, 20))]
    assert result.train_losses == pytest.approx(per_eval, rel=1e-5)


def test_a_feedback_driver_runs_on_the_episode_runner_unchanged() -> None:
    class Tiny(CartPolePG):
        name = "test-driver-pg"
        per_epoch = 12
        evals_per_epoch = 2

    driver = HalveOnRise(3e-3)
    result = RUNNERS["rl"].run(Tiny(), None, driver, optimizer="adam", epochs=1, seed=0)
    _check_feedback(result, driver, 12, 3e-3)
    assert len(result.episode_returns) == 12


def test_a_feedback_driver_runs_on_the_keras_runner_unchanged() -> None:
    pytest.importorskip("keras")
    task = get_task("mnist-keras")
    data = task.dataset(subset=768)  # 6 steps of 128
    driver = HalveOnRise(0.05)
    result = RUNNERS["keras"].run(task, data, driver, optimizer="sgd", epochs=1, seed=0)
    _check_feedback(result, driver, 6, 0.05)
    # each update's own loss, recovered from Keras' running mean, averages to what fit reported
    a, b = result.eval_steps[-2], result.eval_steps[-1]
    assert result.train_losses[-1] == pytest.approx(float(np.mean(driver.seen[a:b])), rel=1e-4)


def test_keras_refuses_a_momentum_set_between_updates() -> None:
    pytest.importorskip("keras")
    from cyclr import keras as ck

    knobs = knobs_for(ck.SGD(learning_rate=0.1, momentum=0.9))
    knobs.set_lr(0.05)
    assert knobs.lr() == pytest.approx(0.05) and knobs.momentum() == pytest.approx(0.9)
    with pytest.raises(NotImplementedError, match="momentum schedule instead"):
        knobs.set_momentum(0.8)


def test_torch_knobs_keep_the_groups_ratios_and_set_momentum_or_beta1() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    for opt, slot in (
        (torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}], momentum=0.9), "momentum"),
        (torch.optim.AdamW([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}]), "betas"),
    ):
        knobs = knobs_for(opt)
        assert isinstance(knobs, TorchKnobs) and knobs.lr() == 0.1
        knobs.set_lr(0.5)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.5])
        knobs.set_momentum(0.8)
        assert knobs.momentum() == 0.8
        assert all((g["betas"][0] if slot == "betas" else g["momentum"]) == 0.8 for g in opt.param_groups)
    with pytest.raises(TypeError, match="torch or Keras optimizer"):
        knobs_for(object())


def test_a_torch_scheduler_driver_runs_any_torch_scheduler_and_refuses_keras() -> None:
    task = get_task("digits")
    data = task.dataset(subset=320)
    driver = TorchSchedulerDriver(
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5), {"scheduler": "StepLR"}, 0.08
    )
    result = RUNNERS["torch"].run(task, data, driver, optimizer="sgd", epochs=1, seed=0)
    assert result.lrs == pytest.approx([0.08 * 0.5 ** (t // 4) for t in range(10)])
    assert driver.to_config() == {"kind": "torch", "scheduler": "StepLR"}
    pytest.importorskip("keras")
    from cyclr import keras as ck

    with pytest.raises(TypeError, match="cannot drive a keras optimizer"):
        TorchSchedulerDriver(lambda o: o, {}).attach(ck.SGD(learning_rate=0.1))


def test_a_schedule_driver_traces_what_the_optimizer_used() -> None:
    task = get_task("digits")
    data = task.dataset(subset=320)
    schedule = OneCycle(max_lr=0.1, total_steps=10)
    driver = ScheduleDriver(schedule, momentum=(0.85, 0.95))
    result = RUNNERS["torch"].run(task, data, driver, optimizer="sgd", epochs=1, seed=0)
    assert result.lrs == pytest.approx([schedule(t) for t in range(10)], rel=1e-12)
    assert result.momenta == pytest.approx([schedule.mirror(0.85, 0.95)(t) for t in range(10)], rel=1e-12)
    assert driver.to_config() == {"kind": "schedule", "schedule": schedule.to_config(), "momentum": [0.85, 0.95]}
    with pytest.raises(RuntimeError, match="attach"):
        ScheduleDriver(Constant(0.1)).current()


@pytest.mark.parametrize("lr", [0.0, -1.0, math.nan, math.inf, "0.1"])
def test_a_feedback_driver_refuses_a_bad_lr(lr: Any) -> None:
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        HalveOnRise(lr)


# ---------------------------------------------------------------------- a user's strategy
@pytest.fixture
def halving() -> Iterator[str]:
    @strategy(family="adaptive", description="halves the LR when the loss rises")
    def toy_halving(c: Any, v: Any) -> Plan:
        return Plan(HalveOnRise(c.lr))

    yield "toy_halving"
    STRATEGIES.pop("toy_halving")


def test_a_registered_feedback_strategy_runs_through_the_harness(halving: str) -> None:
    assert STRATEGIES[halving].family == "adaptive"
    config = BenchConfig(
        tasks=["digits"], strategies=[halving], optimizers=["sgd"], seeds=1, epochs=1, train_subset=320
    )
    (spec,) = plan_runs(config)
    assert (spec.family, spec.label, spec.info is not None) == ("adaptive", halving, True)
    record = execute(spec)
    assert record["status"] == "done", record.get("traceback")
    assert record["driver"] == {"kind": "feedback", "driver": "HalveOnRise", "lr": record["result"]["lrs"][-1]}
    assert record["family"] == "adaptive" and record["metric_label"] == "test accuracy"


# ---------------------------------------------------------------------- store and engine interfaces
class MemoryStore:
    """A store kept in memory: the interface, and nothing SQLite."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.meta_: dict[str, Any] = {}
        self.closed = False

    def put(self, record: dict[str, Any]) -> None:
        self.rows[record["key"]] = record

    def done_keys(self) -> set[str]:
        return {k for k, r in self.rows.items() if r["status"] == "done"}

    def records(self, status: str | None = "done") -> Iterator[dict[str, Any]]:
        return iter([r for r in self.rows.values() if status is None or r["status"] == status])

    def set_meta(self, name: str, value: Any) -> None:
        self.meta_[name] = value

    def meta(self, name: str, default: Any = None) -> Any:
        return self.meta_.get(name, default)

    def close(self) -> None:
        self.closed = True


class CountingEngine(LocalEngine):
    def __init__(self) -> None:
        super().__init__(workers=1)
        self.ran: list[str] = []

    def run(self, todo: Any, data_dir: Any, finished: Any, notify: Any) -> None:
        self.ran += [s.key for s in todo]
        super().run(todo, data_dir, finished, notify)


def test_run_bench_takes_any_store_and_engine(tmp_path: Path) -> None:
    store, engine = MemoryStore(), CountingEngine()
    assert isinstance(store, RunStore)
    config = BenchConfig(
        tasks=["digits"],
        strategies=["constant"],
        optimizers=["adam"],
        seeds=1,
        epochs=1,
        train_subset=320,
        out=tmp_path,
    )
    outcome = run_bench(config, engine=engine, store=lambda c: store)
    assert outcome.done == 3 and store.closed and engine.ran == [s.key for s in plan_runs(config)]
    assert store.done_keys() == set(engine.ran) and (tmp_path / "report.html").exists()
    assert not (tmp_path / "runs.sqlite").exists()  # nothing went to the default store
    for d in store.records():
        record = RunRecord.from_dict(d)
        assert RunRecord.from_dict(record.to_dict()) == record  # plain data both ways
        assert record.environment["torch"] == torch.__version__


def test_tasks_register_only_task_classes() -> None:
    with pytest.raises(TypeError, match="task class"):
        register(object)  # type: ignore[type-var]
    assert "digits" in TASKS


def test_losses_reach_observe_as_floats_or_tensors() -> None:
    seen: list[SupportsFloat] = []

    class Spy(HalveOnRise):
        def observe(self, loss: SupportsFloat) -> None:
            seen.append(loss)
            super().observe(loss)

    task = get_task("digits")
    RUNNERS["torch"].run(task, task.dataset(subset=320), Spy(0.05), optimizer="sgd", epochs=1, seed=0)
    assert len(seen) == 10 and all(isinstance(x, torch.Tensor) and x.ndim == 0 and not x.requires_grad for x in seen)


# ---------------------------------------------------------------------- your own task and strategy, by path
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bench_plugin.py"


@pytest.fixture(autouse=True)
def _registries_restored() -> Iterator[None]:
    """A plugin registers its task and strategy for the process: put the registries back after
    each test, so that no other test sees them."""
    from cyclr.bench import strategies as strategies_module
    from cyclr.bench import tasks as tasks_module

    saved: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (d, dict(d)) for d in (TASKS, STRATEGIES, tasks_module._REFERENCES, strategies_module._REFERENCES)
    ]
    yield
    for d, copy in saved:
        d.clear()
        d.update(copy)


def test_the_example_task_and_strategy_run_through_the_cli_in_parallel_workers(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cyclr.bench.store import Store
    from cyclr.cli import cli

    task, strat = f"{EXAMPLE}:WineMLP", f"{EXAMPLE}:halve_on_plateau"
    out = tmp_path / "bench"
    args = ["bench", "--task", task, "--strategies", f"constant,{strat}", "--optimizers", "sgd"]
    result = CliRunner().invoke(cli, [*args, "--seeds", "2", "--epochs", "2", "--workers", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Store(out) as store:
        records = list(store.records())
        assert {r["task"] for r in records} == {"wine-mlp"} and len(records) == 2 * (4 + 1)
        adaptive = [r for r in records if r["strategy"] == "halve_on_plateau"]
        assert len(adaptive) == 2 and {r["family"] for r in adaptive} == {"adaptive"}
        assert {r["driver"]["driver"] for r in adaptive} == {"HalveOnPlateau"}
        assert store.meta("commands") == [
            f"cyclr bench --task {task} --strategies constant,{strat} "
            f"--optimizers sgd --seeds 2 --epochs 2 --workers 2 --out {out}"
        ]
    assert "halve_on_plateau" in (out / "report.md").read_text()
    assert "Tabular" in (out / "report.md").read_text()

    # cyclr find takes the same reference
    png = tmp_path / "find.png"
    result = CliRunner().invoke(cli, ["find", "--task", task, "--num-steps", "30", "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.exists() and "one_cycle" in result.output


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("nowhere/missing.py:Task", "no such file"),
        (f"{EXAMPLE}:Nope", "has no 'Nope'; it defines"),
        (f"{EXAMPLE}:HalveOnPlateau", "is not a cyclr.bench.Task subclass"),
        ("no_such_module_xyz:Task", "no module 'no_such_module_xyz'"),
        (f"{EXAMPLE}:", "unknown task"),
    ],
)
def test_bad_task_references_are_clear_errors(reference: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BenchConfig(tasks=[reference])


def test_bad_strategy_references_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="neither a Strategy nor a function decorated"):
        BenchConfig(strategies=[f"{EXAMPLE}:WineMLP"])
