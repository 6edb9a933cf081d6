"""The adaptive-CLR study's strategies: the LR-free anchors run their real packages over the task's
parameter groups (weight decay and discriminative-LR ratios kept), Schedule-Free is evaluated at
its averaged weights, ReduceLROnPlateau sees the epoch's mean loss, and the robustness sweep scales
exactly the range test's LR. None of them runs unless named."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cyclr.bench import get_task
from cyclr.bench.driver import OptimizerDriver, PlateauDriver
from cyclr.bench.harness import RUNNERS, BenchConfig, execute, plan_runs
from cyclr.bench.strategies import START_FACTORS, STRATEGIES, Context, get_strategies
from cyclr.bench.train import batchnorm_refresh

ANCHORS = ("prodigy", "dadaptation", "schedulefree", "dog", "plateau")
SWEEPS = ("adaptive_start", "one_cycle_start")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _context(task: Any, data: Any, optimizer: str, epochs: int = 1) -> Context:
    per_epoch = task.steps_per_epoch(data, task.batch_size)
    return Context(task, data, optimizer, epochs, per_epoch, 0, task.batch_size, RUNNERS[task.runner])


def test_the_study_strategies_run_only_when_named() -> None:
    default = {s.name for s in get_strategies(None)}
    assert not default & {*ANCHORS, *SWEEPS}
    assert {"adaptive", "auto", "one_cycle"} <= default
    assert {*ANCHORS, *SWEEPS} <= {s.name for s in get_strategies("all")}


def test_each_anchor_runs_where_its_optimizer_fits() -> None:
    specs = plan_runs(BenchConfig(tasks=["digits"], strategies=[*ANCHORS], seeds=1))
    got = {(s.optimizer, s.strategy) for s in specs}
    assert got == {
        ("adam", "prodigy"),  # Prodigy is an Adam
        ("adam", "dadaptation"),
        ("sgd", "dadaptation"),
        ("adam", "schedulefree"),
        ("sgd", "schedulefree"),
        ("sgd", "dog"),  # DoG is an SGD
        ("adam", "plateau"),
        ("sgd", "plateau"),
    }
    keras = plan_runs(BenchConfig(tasks=["mnist-keras"], strategies=[*ANCHORS], seeds=1))
    assert keras == []  # torch packages: never planned on a Keras task


@pytest.mark.parametrize(
    ("strategy", "optimizer", "cls", "group_lr"),
    [
        ("prodigy", "adam", "Prodigy", 1.0),
        ("dadaptation", "adam", "DAdaptAdam", 1.0),
        ("dadaptation", "sgd", "DAdaptSGD", 1.0),
        ("schedulefree", "adam", "AdamWScheduleFree", 0.0025),
        ("schedulefree", "sgd", "SGDScheduleFree", 1.0),
        ("dog", "sgd", "DoG", 1.0),
    ],
)
def test_an_anchor_is_its_real_optimizer_over_the_tasks_groups(
    strategy: str, optimizer: str, cls: str, group_lr: float
) -> None:
    task = get_task("digits")
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    groups = [(list(net[0].parameters()), 0.1), (list(net[1].parameters()), 1.0)]  # per-layer LRs
    context = _context(task, task.dataset(subset=64), optimizer)
    plan = STRATEGIES[strategy].build(context, STRATEGIES[strategy].variants(task, optimizer)[0])
    driver = plan.driver
    assert isinstance(driver, OptimizerDriver)
    opt = driver.make_optimizer(lambda lr: task.make_optimizer(optimizer, groups, lr))
    assert type(opt).__name__ == cls and type(opt).__module__.split(".")[0] in {
        "prodigyopt",
        "dadaptation",
        "schedulefree",
        "dog",
    }
    wd = 5e-4 if optimizer == "sgd" else 1e-4  # the bench optimizer's weight decay, kept
    assert [g["weight_decay"] for g in opt.param_groups] == [wd, wd]
    if strategy in ("prodigy", "dadaptation"):  # they refuse per-group LRs: the record says so
        assert [g["lr"] for g in opt.param_groups] == [1.0, 1.0]
        assert "dropped" in driver.to_config()["group_lr_ratios"]
    else:
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1 * group_lr, group_lr])  # ratios kept
        assert "group_lr_ratios" not in driver.to_config()
    driver.attach(opt)
    assert (driver.scheduler is not None) == (strategy in ("prodigy", "dadaptation"))


@pytest.mark.parametrize(
    ("strategy", "optimizer"), [("prodigy", "adam"), ("schedulefree", "adam"), ("dadaptation", "sgd"), ("dog", "sgd")]
)
def test_an_anchor_trains_a_bench_task(strategy: str, optimizer: str) -> None:
    task = get_task("digits")
    data = task.dataset(subset=640)  # 20 steps per epoch
    context = _context(task, data, optimizer, epochs=2)
    plan = STRATEGIES[strategy].build(context, STRATEGIES[strategy].variants(task, optimizer)[0])
    result = RUNNERS["torch"].run(task, data, plan.driver, optimizer=optimizer, epochs=2, seed=0)
    assert not result.diverged and all(lr > 0 for lr in result.lrs[1:])
    if strategy in ("prodigy", "dadaptation"):  # the effective LR is lr * d; d grows from 1e-6
        assert result.lrs[0] == pytest.approx(1e-6) and max(result.lrs) > 100 * result.lrs[0]
    elif strategy == "dog":  # its step size eta grows from reps_rel's tiny first step
        assert result.lrs[-1] > 10 * result.lrs[1]
    else:  # Schedule-Free AdamW at its default LR learns in 40 steps (10 classes: chance is 0.1)
        assert result.final > 0.5


def test_schedulefree_is_evaluated_at_its_average_and_trains_at_its_iterate() -> None:
    import schedulefree

    net = torch.nn.Linear(2, 1)
    opt = schedulefree.SGDScheduleFree(net.parameters(), lr=0.5)
    driver = OptimizerDriver(lambda groups: opt, {"optimizer": "sgd-sf"})
    driver.attach(opt)
    for _ in range(5):
        opt.zero_grad()
        net(torch.ones(1, 2)).pow(2).sum().backward()
        opt.step()
    training = net.weight.detach().clone()
    seen: list[torch.Tensor] = []
    refreshed: list[bool] = []
    driver.evaluate(lambda: seen.append(net.weight.detach().clone()) or 0.0, lambda: refreshed.append(True))
    assert not torch.equal(seen[0], training)  # evaluated at other (averaged) weights ...
    assert refreshed == [True]  # ... with BatchNorm statistics refreshed for them
    assert torch.equal(net.weight.detach(), training)  # and back to the training iterate after
    assert opt.param_groups[0]["train_mode"]


def test_a_plain_optimizer_evaluates_as_it_is() -> None:
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    driver = OptimizerDriver(lambda groups: opt, {})
    driver.attach(opt)
    assert driver.evaluate(lambda: 0.25, lambda: pytest.fail("no refresh without an average")) == 0.25


def test_plateau_steps_once_an_epoch_with_the_epochs_mean_loss() -> None:
    net = torch.nn.Linear(1, 1)
    ours = PlateauDriver(0.1, steps_per_epoch=3, patience=1)
    ours.attach(torch.optim.SGD(net.parameters(), lr=ours.initial_lr))
    theirs_opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs_opt, patience=1)
    losses = [3.0, 2.0, 1.0, 2.0, 2.0, 2.0, 2.5, 2.0, 2.0, 3.0, 3.0, 3.0]
    for epoch in range(4):
        chunk = losses[3 * epoch : 3 * epoch + 3]
        for loss in chunk:
            ours.observe(loss)
            ours.step()
        theirs.step(sum(chunk) / 3)
        assert ours.current()[0] == theirs_opt.param_groups[0]["lr"]
    assert ours.current()[0] == pytest.approx(0.01)  # it did reduce: means 2, 2, 2.17, 3
    with pytest.raises(ValueError, match="steps_per_epoch must be an integer >= 1; got 0"):
        PlateauDriver(0.1, steps_per_epoch=0)


def test_the_robustness_sweep_scales_the_range_tests_lr_and_nothing_else() -> None:
    task = get_task("digits")
    data = task.dataset(subset=640)
    context = _context(task, data, "sgd", epochs=2)
    auto = STRATEGIES["auto"].build(context, STRATEGIES["auto"].variants(task, "sgd")[0]).driver.to_config()
    adaptive = STRATEGIES["adaptive"].build(context, STRATEGIES["adaptive"].variants(task, "sgd")[0])
    for name in SWEEPS:
        variants = STRATEGIES[name].variants(task, "sgd")
        assert [v.lr for v in variants] == list(START_FACTORS)
        for v in variants:
            plan = STRATEGIES[name].build(context, v)
            assert plan.search_steps == adaptive.search_steps > 0  # the range test's cost counts
            if name == "one_cycle_start":
                got = plan.driver.to_config()["schedule"]
                want = auto["schedule"]
                assert got["max_lr"] == pytest.approx(want["max_lr"] * v.lr, rel=1e-12)
                assert {k: x for k, x in got.items() if k != "max_lr"} == {
                    k: x for k, x in want.items() if k != "max_lr"
                }
            else:
                got = plan.driver.to_config()["controller"]
                want = adaptive.driver.to_config()["controller"]
                assert got["max_lr"] == pytest.approx(want["max_lr"] * v.lr, rel=1e-12)
                assert {k: x for k, x in got.items() if k != "max_lr"} == {
                    k: x for k, x in want.items() if k != "max_lr"
                }


def test_an_anchor_runs_through_the_harness_and_is_stored() -> None:
    config = BenchConfig(tasks=["digits"], strategies=["dadaptation"], optimizers=["sgd"], seeds=1, epochs=1)
    (spec,) = plan_runs(config)
    record = execute(spec)
    assert record["status"] == "done", record.get("error")
    assert record["driver"] == {"kind": "optimizer", "optimizer": "dadaptation.DAdaptSGD", "scheduler": "cosine"}


def test_batchnorm_refresh_keeps_the_momentum_and_the_training_mode() -> None:
    task = get_task("digits")
    data = task.dataset(subset=256)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8))
    net.eval()
    batchnorm_refresh(net, data, 32, seed=0, n=3)
    bn = net[2]
    assert bn.momentum == 0.1 and not net.training
    assert int(bn.num_batches_tracked) == 3 and float(bn.running_mean.abs().sum()) > 0
