"""``cyclr bench``: every task x strategy on a tiny budget, runs paired by seed, the strategies'
definitions, the store (resume, ``kill -9``), failed runs, clear errors, the report's numbers and
the parallel path. Budgets are tiny: these check the harness, not the schedules' merits."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import json
import math
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from scipy import stats  # type: ignore[import-untyped]

from cyclr.bench import harness
from cyclr.bench.driver import ScheduleDriver
from cyclr.bench.harness import BenchConfig, RunSpec, execute, plan_runs, run_bench
from cyclr.bench.report import Row, aggregate, interval, t95
from cyclr.bench.store import Store
from cyclr.bench.strategies import HALF_DECADE, STRATEGIES, Context, Plan, framework_default_lr
from cyclr.bench.tasks import TASKS, Task, TaskData, get_task
from cyclr.bench.train import TorchRunner
from cyclr.bench.transfer import Transfer
from cyclr.cli import cli
from cyclr.finder import REPEATS
from cyclr.schedules import Constant, MultiStep, from_config

Record = dict[str, Any]
Events = list[tuple[str, Any]]

#: the torch tasks, with the training examples each uses here: 4 steps per epoch for the image and
#: text tasks (a one-cycle needs pct_start * total_steps > 1), the whole bundled set for digits
SUBSETS: dict[str, int | None] = {
    "digits": None,
    "mnist": 512,
    "fashion-mnist": 512,
    "transfer": 256,
    "sunspots-lstm": 128,
    "sunspots-gru": 128,
    "airline-lstm": 32,
    "sms-spam": 256,
    "sms-spam-gru": 256,
    "shakespeare-char": 48,
}
#: test examples kept for the downloaded tasks (their 10,000-image test sets cost more than training)
TEST_EXAMPLES = 1000
#: fewer for the sequence models, whose evaluation costs more per example
SHORT_TESTS = {"sms-spam": 256, "sms-spam-gru": 256, "shakespeare-char": 64}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _listener(events: Events) -> harness.Listener:
    return lambda event, payload: events.append((event, payload))


def _count(events: Events, name: str) -> int:
    return sum(event == name for event, _ in events)


def _rows(db: Path) -> dict[str, tuple[str, str, float]]:
    """key -> (status, record JSON text, finished time), read straight from the SQLite file."""
    with sqlite3.connect(db) as con:
        return {k: (s, r, f) for k, s, r, f in con.execute("SELECT key, status, record, finished FROM runs")}


# ---------------------------------------------------------------------- 1. every task x strategy
def _preload(monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[Task, TaskData]:
    """The task's data as the harness caches it, with the test split cut to TEST_EXAMPLES."""
    task = get_task(name)
    data = task.load().subset(SUBSETS[name])
    if name != "digits":
        n = SHORT_TESTS.get(name, TEST_EXAMPLES)
        data = TaskData(data.x_train, data.y_train, data.x_test[:n], data.y_test[:n], data.extra)
    monkeypatch.setitem(harness._DATA, (name, SUBSETS[name]), (task, data))
    return task, data


def _short_range_tests(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    """Both range tests (cyclr's for auto, torch-lr-finder's for peer) sweep ``steps`` steps, not 100."""
    from torch_lr_finder import LRFinder

    import cyclr.finder._torch as cyclr_finder

    monkeypatch.setattr(cyclr_finder, "lr_range_test", functools.partial(cyclr_finder.lr_range_test, num_steps=steps))
    peer = LRFinder.range_test

    def range_test(self: Any, *args: Any, **kwargs: Any) -> Any:
        return peer(self, *args, **{**kwargs, "num_iter": steps})

    monkeypatch.setattr(LRFinder, "range_test", range_test)


def _torch_one_cycle(max_lr: float, total: int) -> list[float]:
    """The LR torch's own OneCycleLR (defaults) gives each of ``total`` steps."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total)
    lrs = []
    for _ in range(total):
        lrs.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return lrs


def _check_record(task: Task, spec: RunSpec, record: Record, per_epoch: int, sweep: int) -> None:
    res = record["result"]
    total = spec.epochs * per_epoch
    assert record["steps_per_epoch"] == per_epoch
    assert res["steps"] == total and not res["diverged"]
    bounded = task.metric in ("accuracy", "f1")
    assert res["metrics"] and all(math.isfinite(m) and m >= 0.0 and (m <= 1.0 or not bounded) for m in res["metrics"])
    assert all(math.isfinite(x) and x > 0 for x in res["train_losses"])
    assert res["eval_steps"][-1] == total
    assert res["trace_steps"] == list(range(total))  # short runs: the LR is traced at every step
    lrs = res["lrs"]
    lr = task.default_lr[spec.optimizer]
    sweeps = 1 if spec.strategy == "peer" else REPEATS  # cyclr's range tests run REPEATS sweeps
    if spec.strategy in ("auto", "peer", "adaptive"):
        assert 0 < record["search_steps"] <= sweeps * sweep and record["search_seconds"] > 0
        details = record["details"]
        assert details.get("suggestion", details.get("start_max_lr", 0)) > 0 or "no_safe_lr" in details
    else:
        assert record["search_steps"] == 0
    driver = record["driver"]
    if spec.strategy == "adaptive":  # the closed loop: it starts from the range test's LR
        assert driver["kind"] == "feedback" and driver["controller"]["max_lr"] == record["details"]["start_max_lr"]
        assert all(math.isfinite(x) and x > 0 for x in lrs) and len(set(lrs)) > 3
        return
    if spec.strategy == "peer":
        assert driver["kind"] == "torch" and driver["scheduler"] == "OneCycleLR"
        peak = driver["max_lr"]
        assert peak == record["details"]["suggestion"]
        assert lrs == pytest.approx(_torch_one_cycle(peak, total), rel=1e-9)
        assert lrs[0] == pytest.approx(peak / 25, rel=1e-12)
        return
    assert driver["kind"] == "schedule"
    schedule = from_config(driver["schedule"])
    assert lrs == pytest.approx([schedule(t) for t in range(total)], rel=1e-9)  # what the optimizer used
    if spec.strategy == "constant":
        assert len(set(lrs)) == 1 and lrs[0] == pytest.approx(spec.lr, rel=1e-12)
        assert res["momenta"] == [0.9] * total  # SGD's momentum and AdamW's beta1 as set
    elif spec.strategy == "one_cycle":
        assert driver["schedule"]["max_lr"] == pytest.approx(lr * HALF_DECADE, rel=1e-12)
        assert max(lrs) == pytest.approx(max(schedule(t) for t in range(total)), rel=1e-12)
        assert abs(lrs.index(max(lrs)) - (0.3 * total - 1)) < 1  # torch's peak, at pct_start * total - 1
        assert lrs[0] == pytest.approx(lr * HALF_DECADE / 25, rel=1e-12)
        assert res["momenta"][0] == pytest.approx(0.95) and min(res["momenta"]) == pytest.approx(0.85, abs=0.02)
    elif spec.strategy == "warmup_cosine":
        w = max(1, round(0.05 * total))
        assert lrs[0] == pytest.approx(lr / (w + 1), rel=1e-12)  # nanoGPT's lr * (t + 1) / (w + 1)
        assert lrs[w] == pytest.approx(lr, rel=1e-12)
    elif spec.strategy in ("step", "exponential", "cosine", "sgdr"):
        assert lrs[0] == pytest.approx(lr, rel=1e-12)


@pytest.mark.parametrize("name", list(SUBSETS))
def test_every_strategy_runs_on_every_task(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CYCLR_CACHE_DIR", str(tmp_path / "cache"))  # the transfer task's pretrained weights
    monkeypatch.setattr(Transfer, "pretrain_examples", 512)
    monkeypatch.setattr(Transfer, "pretrain_epochs", 1)
    task, data = _preload(monkeypatch, name)
    sweep = 100 if name == "digits" else 40  # the recipes' own 100-step range tests on digits, shorter elsewhere
    if sweep != 100:
        _short_range_tests(monkeypatch, sweep)
    config = BenchConfig(tasks=[name], seeds=1, epochs=1, train_subset=SUBSETS[name], optimizers=["sgd", "adam"])
    specs = plan_runs(config)
    # the task's own set when none is named, else every default one (the study's sweeps and
    # anchors run only when named: tests/test_bench_anchors.py)
    strategies = set(task.strategies or [n for n, s in STRATEGIES.items() if s.default])
    assert {s.strategy for s in specs} == strategies
    constants = sum(len({v.key for v in STRATEGIES["constant"].variants(task, o)}) for o in ("sgd", "adam"))
    assert len(specs) == 2 * (len(strategies) - 1) + constants  # a default LR on the grid is one run
    assert constants in (7, 8)  # 4 + 4, or 4 + 3 where AdamW's default LR is a grid point
    per_epoch = task.steps_per_epoch(data)
    assert per_epoch == (44 if name == "digits" else 4)
    for spec in specs:
        record = execute(spec)
        assert record["status"] == "done", record.get("traceback")
        assert record["key"] == spec.key and record["metric"] == task.metric
        _check_record(task, spec, record, per_epoch, sweep)
    if name == "transfer":
        cached = list((tmp_path / "cache" / "pretrained").glob("*.pt"))
        assert [p.name for p in cached] == ["mnist-cnn-w16-1ep-512.pt"]


# ---------------------------------------------------------------------- 2. paired by seed
def test_a_seed_fixes_the_initialisation_and_the_data_order() -> None:
    task = get_task("digits")
    data = task.load().subset(320)  # 10 steps of 32

    def run(driver: ScheduleDriver, seed: int) -> Any:
        return TorchRunner().run(task, data, driver, optimizer="sgd", epochs=1, seed=seed)

    a = run(ScheduleDriver(Constant(0.05)), 0)
    same_values = run(ScheduleDriver(MultiStep(0.05, milestones=(10**6,))), 0)  # another schedule, the same LRs
    again = run(ScheduleDriver(Constant(0.05)), 0)
    other_seed = run(ScheduleDriver(Constant(0.05)), 1)
    assert len(a.metrics) == 2
    for b in (again, same_values):
        assert (b.metrics, b.train_losses, b.lrs) == (a.metrics, a.train_losses, a.lrs)
    assert other_seed.train_losses[0] != a.train_losses[0]
    assert other_seed.train_losses != a.train_losses

    # the harness runs the same thing, and a range test before a run (auto) leaves it unchanged
    spec = RunSpec("digits", "sgd", "constant", "constant lr=0.05", 0, 1, 32, 320, 0.05)
    assert execute(spec)["result"]["train_losses"] == a.train_losses
    auto = execute(RunSpec("digits", "sgd", "auto", "auto", 0, 1, 32, 320))
    assert auto["status"] == "done" and auto["search_steps"] > 0
    low, high = auto["driver"]["momentum"]
    direct = run(ScheduleDriver(from_config(auto["driver"]["schedule"]), momentum=(low, high)), 0)
    assert direct.train_losses == auto["result"]["train_losses"]
    assert direct.metrics == auto["result"]["metrics"]


# ---------------------------------------------------------------------- 3. strategy definitions
def _plan(strategy: str, total: int = 840, lr: float = 0.05) -> Plan:
    ctx = Context(SimpleNamespace(default_lr={"sgd": lr}), None, "sgd", 1, total, 0, 32)
    return STRATEGIES[strategy].build(ctx, STRATEGIES[strategy].variants(SimpleNamespace(), "sgd")[0])


def _values(plan: Plan, steps: list[float]) -> list[float]:
    assert plan.schedule is not None
    return [float(plan.schedule(t)) for t in steps]


def approx(values: list[float]) -> Any:
    return pytest.approx(values, rel=1e-9, abs=1e-15)


def test_hand_set_strategies_match_their_closed_forms() -> None:
    lr, total = 0.05, 840
    lo, hi = lr / math.sqrt(10), lr * math.sqrt(10)

    # step: lr, /10 at 50% and /100 at 75% of the budget
    assert _values(_plan("step"), [0, 419, 420, 629, 630, 839]) == approx(
        [lr, lr, lr / 10, lr / 10, lr / 100, lr / 100]
    )
    # exponential: lr down to lr/100 at the last step, geometric in between
    assert _values(_plan("exponential"), [0, 839 / 2, 839]) == approx([lr, lr / 10, lr / 100])
    # cosine: lr annealed to 0 at the end of the budget
    assert _values(_plan("cosine"), [0, 210, 420, 840]) == approx([lr, lr * (1 + math.sqrt(0.5)) / 2, lr / 2, 0.0])
    # sgdr: restarts at T/7 and 3T/7 (periods T/7, 2T/7, 4T/7), half-way down mid-period
    assert _values(_plan("sgdr"), [0, 60, 120, 240, 360, 600]) == approx([lr, lr / 2, lr, lr / 2, lr, lr / 2])
    cos = [lr * (1 + math.cos(math.pi * (p - 1) / p)) / 2 for p in (120, 240, 480)]  # the last step of each period
    assert _values(_plan("sgdr"), [119, 359, 839]) == approx(cos)
    # triangular: two cycles between lr/sqrt(10) and lr*sqrt(10), peaks at T/4 and 3T/4
    assert _values(_plan("triangular"), [0, 105, 210, 420, 630, 840]) == approx([lo, (lo + hi) / 2, hi, lo, hi, lo])
    # triangular2: three cycles, the amplitude halving each cycle (peaks at T/6, T/2, 5T/6)
    amp = hi - lo
    assert _values(_plan("triangular2"), [0, 140, 280, 420, 560, 700, 840]) == approx(
        [lo, hi, lo, lo + amp / 2, lo, lo + amp / 4, lo]
    )
    # sine: three sine-shaped cycles, gamma 0.95 per cycle
    assert _values(_plan("sine"), [0, 70, 140, 280, 420, 700]) == approx(
        [lo, lo + amp * math.sin(math.pi / 4), hi, lo, lo + 0.95 * amp, lo + 0.95**2 * amp]
    )
    # one_cycle: torch's OneCycleLR defaults with max_lr at the grid's top, momentum 0.95 -> 0.85
    plan = _plan("one_cycle")
    assert plan.momentum == (0.85, 0.95)
    peak = 0.3 * total - 1
    assert _values(plan, [0, peak, total - 1]) == approx([hi / 25, hi, hi / 25 / 1e4])
    assert _values(plan, list(range(total))) == approx(_torch_one_cycle(hi, total))
    # warmup_cosine: nanoGPT's get_lr (train.py) with warmup_iters = 5% of the budget, min_lr = lr/10
    warm, floor = round(0.05 * total), lr / 10

    def nanogpt(it: int) -> float:
        if it < warm:
            return lr * (it + 1) / (warm + 1)
        ratio = (it - warm) / (total - warm)
        return floor + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - floor)

    assert _values(_plan("warmup_cosine"), list(range(total + 1))) == approx([nanogpt(t) for t in range(total + 1)])
    # the same definitions scale with the budget
    assert _values(_plan("step", total=100), [49, 50, 75]) == approx([lr, lr / 10, lr / 100])
    hand_set = ("step", "exponential", "cosine", "warmup_cosine", "sgdr", "triangular", "triangular2", "sine")
    for name in (*hand_set, "one_cycle"):
        plan = _plan(name)
        assert plan.search_steps == 0 and isinstance(plan.driver, ScheduleDriver)
        # every hand-set schedule stays inside the grid's range
        assert max(_values(plan, list(range(total)))) <= hi * (1 + 1e-12)


# ---------------------------------------------------------------------- 4. the constant grid
def test_the_constant_grid_shares_the_run_of_a_default_that_is_a_grid_point() -> None:
    sgd_default = inspect.signature(torch.optim.SGD.__init__).parameters["lr"].default
    adam_default = inspect.signature(torch.optim.AdamW.__init__).parameters["lr"].default
    assert framework_default_lr("torch", "sgd") == sgd_default == 1e-3
    assert framework_default_lr("torch", "adam") == adam_default == 1e-3

    specs = plan_runs(BenchConfig(tasks=["digits"], strategies=["constant"], seeds=2))
    lrs = {opt: sorted(s.lr or 0.0 for s in specs if s.optimizer == opt and s.seed == 0) for opt in ("sgd", "adam")}
    assert lrs["adam"] == pytest.approx([1e-3 / HALF_DECADE, 1e-3, 1e-3 * HALF_DECADE], rel=1e-12)
    assert lrs["sgd"] == pytest.approx([1e-3, 0.05 / HALF_DECADE, 0.05, 0.05 * HALF_DECADE], rel=1e-12)
    assert len(specs) == 2 * (3 + 4)
    assert len({s.key for s in specs}) == len(specs)

    variants = STRATEGIES["constant"].variants(get_task("digits"), "adam")
    assert [v.label for v in variants] == ["constant 0.001 (default)", "constant 0.000316", "constant 0.00316"]
    assert variants[0].key == "constant lr=0.001" and variants[0].framework_default
    assert not any(v.framework_default for v in variants[1:])
    labels = {s.label for s in specs if s.optimizer == "adam" and s.seed == 0}
    assert labels == {"constant 0.001 (default)", "constant 0.000316", "constant 0.00316"}
    with pytest.raises(ValueError, match="unknown framework 'jax'"):
        framework_default_lr("jax", "sgd")


# ---------------------------------------------------------------------- 5. store and resume
def test_runs_are_stored_and_a_resumed_bench_runs_nothing_twice(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    config = BenchConfig(
        tasks=["digits"],
        strategies=["constant", "cosine"],
        optimizers=["adam"],
        seeds=2,
        epochs=1,
        train_subset=320,
        out=out,
    )
    keys = {s.key for s in plan_runs(config)}
    assert len(keys) == 2 * (3 + 1)

    events: Events = []
    outcome = run_bench(config, _listener(events))
    assert (outcome.out, outcome.planned, outcome.done, outcome.failed) == (out, 8, 8, 0)
    assert outcome.report == out / "report.md" and outcome.report.exists()
    assert _count(events, "done") == _count(events, "start") == 8
    assert events[0] == ("plan", (plan_runs(config), 0))
    with Store(out) as store:
        assert len(store) == 8 and store.done_keys() == keys
        assert set(store.meta("plan")) == keys
        assert store.meta("config")["seeds"] == 2
        assert {r["environment"]["torch"] for r in store.records()} == {torch.__version__}  # with every run
    first = _rows(out / "runs.sqlite")
    assert {status for status, _, _ in first.values()} == {"done"}
    assert {json.loads(text)["key"] for _, text, _ in first.values()} == keys

    events.clear()
    run_bench(dataclasses.replace(config, resume=True), _listener(events))
    assert events[0] == ("plan", ([], 8))
    assert _count(events, "done") == 0
    assert _rows(out / "runs.sqlite") == first  # not one record rewritten

    events.clear()
    run_bench(config, _listener(events))  # not resumed: a fresh bench, the old store kept aside
    assert _count(events, "done") == 8
    (kept,) = out.glob("runs-*.sqlite")
    assert re.fullmatch(rf"runs-\d{{8}}-\d{{6}}-{os.getpid()}\.sqlite", kept.name)
    assert _rows(kept) == first
    again = _rows(out / "runs.sqlite")
    assert again.keys() == first.keys()
    for key, (_, text, finished) in again.items():
        assert finished > first[key][2]
        old, new = json.loads(first[key][1])["result"], json.loads(text)["result"]
        assert (new["metrics"], new["train_losses"]) == (old["metrics"], old["train_losses"])  # deterministic


# ---------------------------------------------------------------------- 6. kill -9
def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0) as con:
            return int(con.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0])
    except sqlite3.OperationalError:  # the file exists, its tables not yet
        return 0


def test_kill_9_loses_no_finished_run_and_resume_runs_only_the_rest(tmp_path: Path, runner: CliRunner) -> None:
    out = tmp_path / "bench"
    args = ["bench", "--task", "digits", "--strategies", "constant,cosine,one_cycle", "--optimizers", "sgd"]
    args += ["--seeds", "3", "--epochs", "3", "--out", str(out)]
    config = BenchConfig(
        tasks=["digits"], strategies=["constant", "cosine", "one_cycle"], optimizers=["sgd"], seeds=3, epochs=3
    )
    plan = {s.key for s in plan_runs(config)}
    assert len(plan) == 3 * (4 + 2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cyclr.cli", *args],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 600
        while _stored(out / "runs.sqlite") < 2:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"the bench ended before it was killed: {err}")
            assert time.monotonic() < deadline, "the bench stored no 2 runs in 10 minutes"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    before = _rows(out / "runs.sqlite")
    k = len(before)
    assert 2 <= k < len(plan)
    for key, (status, text, _) in before.items():
        record = json.loads(text)  # intact JSON
        assert status == record["status"] == "done" and record["key"] == key and key in plan
        assert record["result"]["steps"] == 3 * 44 and len(record["result"]["metrics"]) == 3 * 2

    result = runner.invoke(cli, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert f"{len(plan) - k} runs to go ({k} already done)" in result.output
    assert result.output.count("✓") == len(plan) - k
    after = _rows(out / "runs.sqlite")
    assert after.keys() == plan
    assert {status for status, _, _ in after.values()} == {"done"}
    assert all(after[key] == before[key] for key in before)  # the finished runs were kept, not rerun
    assert (out / "report.md").exists()


# ---------------------------------------------------------------------- 7. a failing run
def test_a_failing_run_is_stored_as_failed_and_the_bench_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = STRATEGIES["cosine"]

    def build(c: Context, v: Any) -> Plan:
        if c.seed == 1:
            raise RuntimeError("no cosine for seed 1")
        return original.build(c, v)

    monkeypatch.setitem(STRATEGIES, "cosine", dataclasses.replace(original, build=build))
    out = tmp_path / "bench"
    config = BenchConfig(
        tasks=["digits"],
        strategies=["constant", "cosine"],
        optimizers=["adam"],
        seeds=2,
        epochs=1,
        train_subset=320,
        out=out,
    )
    events: Events = []
    run_bench(config, _listener(events))
    records = [p for e, p in events if e == "done"]
    assert len(records) == 8
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["key"] for r in failed] == ["digits adam cosine seed=1 epochs=1 bs=32 n=320"]
    assert failed[0]["error"] == "RuntimeError: no cosine for seed 1"
    assert "raise RuntimeError" in failed[0]["traceback"]
    with Store(out) as store:
        assert len(store) == 7
        assert [r["key"] for r in store.records("failed")] == [failed[0]["key"]]
    md = (out / "report.md").read_text()
    assert "## Failed runs (rerun with --resume)" in md
    assert f"`{failed[0]['key']}`: RuntimeError: no cosine for seed 1" in md
    assert failed[0]["key"] in (out / "report.html").read_text()
    (table,) = json.loads((out / "report.json").read_text())["tables"]
    assert {r["key"]: r["seeds"] for r in table["rows"]}["cosine"] == 1

    monkeypatch.setitem(STRATEGIES, "cosine", original)
    events.clear()
    run_bench(dataclasses.replace(config, resume=True), _listener(events))
    todo, skipped = events[0][1]
    assert [s.key for s in todo] == [failed[0]["key"]] and skipped == 7
    assert [p["status"] for e, p in events if e == "done"] == ["done"]
    with Store(out) as store:
        assert len(store) == 8 and list(store.records("failed")) == []
    assert "Failed runs" not in (out / "report.md").read_text()


# ---------------------------------------------------------------------- 8. clear errors
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tasks": ["nope"]}, "unknown task 'nope'; valid tasks: " + ", ".join(sorted(TASKS))),
        ({"strategies": ["cosine", "nope"]}, "unknown strategy 'nope'; valid strategies: " + ", ".join(STRATEGIES)),
        ({"optimizers": ["rmsprop"]}, "unknown optimizer 'rmsprop'; valid optimizers: sgd, adam"),
        ({"seeds": 0}, "seeds must be an integer >= 1; got 0"),
        ({"workers": 0}, "workers must be an integer >= 1; got 0"),
        ({"epochs": -1}, "epochs must be an integer >= 1; got -1"),
    ],
)
def test_bad_settings_name_the_valid_ones(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        BenchConfig(**settings)
    assert message in str(err.value)


def test_the_cli_rejects_an_unknown_task_with_exit_code_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["bench", "--task", "nope", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "unknown task 'nope'" in result.output
    for name in TASKS:
        assert name in result.output
    result = runner.invoke(cli, ["bench", "--strategies", "cosine,warp", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "unknown strategy 'warp'" in result.output and "one_cycle" in result.output
    assert runner.invoke(cli, ["bench", "--seeds", "0", "--out", str(tmp_path / "b")]).exit_code == 2
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------------- 9. the report
@pytest.fixture(scope="module")
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real digits bench: 4 strategies, both optimizers, 2 seeds, 2 short epochs, with the
    target lowered within reach so steps to the target and the speed-ups are defined."""
    out = tmp_path_factory.mktemp("report") / "bench"
    config = BenchConfig(
        tasks=["digits"],
        strategies=["constant", "cosine", "one_cycle", "auto"],
        seeds=2,
        epochs=2,
        train_subset=640,
        out=out,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(get_task("digits")), "target", 0.7)
        run_bench(config)
    return out


def _mean_or_none(values: list[float | None], n: int) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.mean(found) if len(found) == n else None


def _to_target(r: Record) -> float | None:
    s = r["result"]["steps_to_target"]
    return None if s is None else s + r["search_steps"]


def _to_level(r: Record, level: float) -> float | None:
    """Steps (range test included) to the first evaluation at ``level`` or better."""
    res = r["result"]
    s = next((s for s, m in zip(res["eval_steps"], res["metrics"]) if m >= level), None)
    return None if s is None else s + r["search_steps"]


def test_report_files_are_written_and_self_contained(small_bench: Path) -> None:
    md = (small_bench / "report.md").read_text()
    page = (small_bench / "report.html").read_text()
    data = json.loads((small_bench / "report.json").read_text())
    assert page.count("data:image/png;base64,") == 2 * 4  # per table: curves, LR traces, steps, range tests
    assert 'src="http' not in page and "src='http" not in page and "<script" not in page
    overview = md.split("## Which schedule should I use?\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in overview.splitlines() if line.startswith("| [digits](#digits-")]
    assert [line.split("|")[2].strip() for line in lines] == ["adam", "sgd"]
    assert "- [digits / adam](#digits-adam)" in md  # the table of contents links every section
    assert "id='digits-adam'" in page and "href='#digits-adam'" in page
    assert [(t["task"], t["optimizer"]) for t in data["tables"]] == [("digits", "adam"), ("digits", "sgd")]
    assert data["config"]["strategies"] == ["constant", "cosine", "one_cycle", "auto"]
    for t in data["tables"]:
        assert t["total_steps"] == 2 * 20 and t["target"] == 0.7
        assert f"## digits / {t['optimizer']}" in md and t["verdict"] in md
    sections = md.split("### digits / ")[1:]
    assert sum(line.count("| baseline |") for part in sections for line in part.splitlines()) == 4 + 3


def test_aggregate_numbers_equal_hand_computed_ones(small_bench: Path) -> None:
    with Store(small_bench) as store:
        records = list(store.records())
        tables = aggregate(records, store.meta("plan"))
    assert [(t.task, t.optimizer) for t in tables] == [("digits", "adam"), ("digits", "sgd")]
    reached_somewhere = speedups = 0
    for t in tables:
        by_key: dict[str, list[Record]] = defaultdict(list)
        for r in records:
            if r["optimizer"] == t.optimizer:
                by_key[r["variant"]].append(r)
        assert {row.key for row in t.rows} == set(by_key) and len(by_key) == (3 if t.optimizer == "adam" else 4) + 3
        finals = {k: [r["result"]["metrics"][-1] for r in rs] for k, rs in by_key.items()}
        constants = {k: statistics.mean(v) for k, v in finals.items() if k.startswith("constant")}
        assert t.best_constant == max(constants, key=lambda k: constants[k])
        assert t.match_level == pytest.approx(constants[t.best_constant], rel=1e-12)
        assert t.default_constant == "constant lr=0.001"
        ref = {r["seed"]: r for r in by_key[t.best_constant]}
        # Smith's "to match" is paired by seed: the best constant's own final metric on that seed
        assert t.match_levels == {seed: r["result"]["metrics"][-1] for seed, r in ref.items()}
        for row in t.rows:
            rs = by_key[row.key]
            assert row.seeds == 2 and sorted(r["seed"] for r in rs) == [0, 1]
            assert row.final == pytest.approx(statistics.mean(finals[row.key]), rel=1e-12)
            assert row.final_std == pytest.approx(statistics.stdev(finals[row.key]), rel=1e-9, abs=1e-15)
            hits = [_to_target(r) for r in rs]
            assert row.reached == sum(h is not None for h in hits)
            expected = _mean_or_none(hits, 2)
            assert row.steps_to_target == (None if expected is None else pytest.approx(expected, rel=1e-12))
            assert row.search_steps == statistics.mean(r["search_steps"] for r in rs)
            assert (row.search_steps > 0) == (row.strategy == "auto")
            reached_somewhere += row.reached
            # speed-up: the geometric mean over seeds of (best constant's steps / this row's steps)
            # a seed where the best constant missed the target counts as the whole budget, and the
            # speed-up is then a lower bound (target_censored)
            pairs = [(_to_target(ref[r["seed"]]), _to_target(r)) for r in rs]
            if all(b is not None for _, b in pairs):
                budget = float(t.total_steps)  # the planned budget
                ratios = [(budget if a is None else a) / b for a, b in pairs]  # type: ignore[operator]
                assert row.speedup_target is not None
                assert row.speedup_target[0] == pytest.approx(math.sqrt(ratios[0] * ratios[1]), rel=1e-12)
                assert row.target_censored == any(a is None for a, _ in pairs)
                speedups += 1
            else:
                assert row.speedup_target is None and not row.target_censored
            # to match: the first evaluation at the best constant's final on the same seed (no cap)
            to_match = {r["seed"]: _to_level(r, t.match_levels[r["seed"]]) for r in rs}
            ref_match = {seed: _to_level(r, t.match_levels[seed]) for seed, r in ref.items()}
            assert row.matched == sum(v is not None for v in to_match.values())
            expected = _mean_or_none(list(to_match.values()), 2)
            assert row.steps_to_match == (None if expected is None else pytest.approx(expected, rel=1e-12))
            if all(v is not None for v in to_match.values()):
                ratios = [ref_match[s] / to_match[s] for s in (0, 1)]  # type: ignore[operator]
                assert row.speedup_match is not None
                assert row.speedup_match[0] == pytest.approx(math.sqrt(ratios[0] * ratios[1]), rel=1e-12)
            else:
                assert row.speedup_match is None
            diffs = [f - ref[r["seed"]]["result"]["metrics"][-1] for f, r in zip(finals[row.key], rs)]
            assert row.final_diff is not None
            assert row.final_diff == pytest.approx(interval(diffs), rel=1e-12, abs=1e-15)
            if row.key == t.best_constant:
                assert row.final_diff == (0.0, 0.0, 0.0) and row.beyond_noise is False
                assert row.speedup_target in (None, (1.0, 1.0, 1.0))
        assert t.row(t.best_constant).matched == 2  # it reaches its own final on every seed
        auto = next(row for row in t.rows if row.strategy == "auto")
        assert auto.search_steps >= 50  # the range test's steps count against auto
        if auto.steps_to_target is not None:
            plain = statistics.mean(r["result"]["steps_to_target"] for r in by_key["auto"])
            assert auto.steps_to_target == pytest.approx(plain + auto.search_steps, rel=1e-12)
    assert reached_somewhere > 0 and speedups > 0  # the lowered target makes these non-vacuous


def test_aggregate_uses_the_planned_budget_and_only_the_planned_runs(small_bench: Path) -> None:
    with Store(small_bench) as store:
        records = list(store.records())
        plan = store.meta("plan")
    sgd = [copy.deepcopy(r) for r in records if r["optimizer"] == "sgd"]
    sgd[0]["result"].update(steps=7, diverged=True)  # the first run stopped early (diverged)
    stray = copy.deepcopy(sgd[1])
    stray.update(key="from an older bench", optimizer="adam")
    (table,) = aggregate([*sgd, stray], plan)
    assert table.optimizer == "sgd" and table.total_steps == 2 * 20
    assert table.row(sgd[0]["variant"]).notes == ["diverged in 1/2 seeds"]
    assert table.row(sgd[0]["variant"]).steps == (7 + 40) / 2

    # a seed where the best constant misses the target counts as the planned budget, not the
    # length of whichever run came first
    best = table.best_constant
    for r in sgd:
        hit = {best: (30, None), "cosine": (20, 25)}.get(r["variant"])
        if hit is not None:
            steps = hit[r["seed"]]
            r["result"].update(steps_to_target=steps, seconds_to_target=None if steps is None else steps / 100)
    (table,) = aggregate(sgd, plan)
    cosine = table.row("cosine")
    assert cosine.target_censored and cosine.speedup_target is not None
    assert cosine.speedup_target[0] == pytest.approx(math.sqrt(30 / 20 * 40 / 25), rel=1e-12)
    assert table.row(best).speedup_target is None  # missing itself in seed 1


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 12, 25, 40])
def test_interval_is_the_student_t_interval(n: int) -> None:
    values = [0.91, 0.93, 0.9, 0.95, 0.92, 0.94][:n] if n <= 6 else [0.9 + 0.001 * (i * 7 % 13) for i in range(n)]
    mean, lo, hi = interval(values)
    sd = statistics.stdev(values)
    expected = stats.t.interval(0.95, n - 1, loc=statistics.mean(values), scale=sd / math.sqrt(n))
    assert mean == pytest.approx(statistics.mean(values), rel=1e-12)
    assert (lo, hi) == pytest.approx(expected, rel=1e-4)
    assert t95(n) == pytest.approx(stats.t.ppf(0.975, n - 1), rel=2e-4)


def test_interval_of_one_value_has_no_bounds() -> None:
    mean, lo, hi = interval([0.5])
    assert mean == 0.5 and math.isnan(lo) and math.isnan(hi)
    assert interval([0.5, 0.5]) == (0.5, 0.5, 0.5)


def _row(final_diff: tuple[float, float, float] | None) -> Row:
    return Row("x", "cosine", "cosine", 2, 0.9, 0.01, 0.9, 0, None, None, None, 0.0, 10.0, 1.0, final_diff=final_diff)


@pytest.mark.parametrize(
    ("diff", "beyond"),
    [
        ((0.02, 0.01, 0.03), True),
        ((-0.02, -0.03, -0.01), True),
        ((0.02, -0.01, 0.05), False),
        ((0.01, 0.0, 0.02), False),  # zero on the interval's edge is within noise
        ((0.0, math.nan, math.nan), None),  # one seed: noise unknown
        (None, None),
    ],
)
def test_beyond_noise_asks_whether_zero_is_outside_the_interval(
    diff: tuple[float, float, float] | None, beyond: bool | None
) -> None:
    assert _row(diff).beyond_noise is beyond


# ---------------------------------------------------------------------- 10. no arguments
def test_bench_without_arguments_runs_the_default_bench(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[BenchConfig] = []
    monkeypatch.setattr(
        harness,
        "run_bench",
        lambda config, listener: (
            seen.append(config) or harness.BenchOutcome(config.out, report=config.out / "report.md")
        ),
    )
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["bench"])
    assert result.exit_code == 0, result.output
    (config,) = seen
    # the task's own defaults: digits declares every strategy, SGD and AdamW, 3 seeds
    assert config.tasks == ["digits"] and config.strategies is None and config.optimizers is None
    assert config.seeds is None and config.workers == 1
    digits = get_task("digits")
    assert digits.strategies is None and digits.optimizers == ("sgd", "adam") and digits.seeds == 3
    assert config.epochs is None and config.train_subset is None and not config.resume
    assert config.out == Path("cyclr-bench")
    specs = plan_runs(config)
    assert len(specs) == 3 * ((4 + 12) + (3 + 12))
    assert {s.epochs for s in specs} == {get_task("digits").epochs}
    assert [s.seed for s in specs[:31]] == [0] * 31  # seed-major: a bench stopped early has whole seeds

    listing = runner.invoke(cli, ["bench", "--list"])
    assert listing.exit_code == 0
    for name in [*TASKS, *STRATEGIES]:
        assert name in listing.output


# ---------------------------------------------------------------------- 11. parallel workers
def test_parallel_workers_give_the_same_runs(tmp_path: Path) -> None:
    """Runs are bit-identical with 1 or 2 workers when they use as many torch threads (the thread
    count changes the order of float sums: 1 and 2 threads differ in the 4th digit of the loss)."""

    def bench(workers: int) -> dict[str, Record]:
        config = BenchConfig(
            tasks=["digits"],
            strategies=["cosine", "one_cycle"],
            optimizers=["sgd"],
            seeds=1,
            epochs=1,
            workers=workers,
            out=tmp_path / f"w{workers}",
        )
        events: Events = []
        run_bench(config, _listener(events))
        assert _count(events, "start") == _count(events, "done") == 2
        with Store(config.out) as store:
            return {r["key"]: r for r in store.records()}

    threads = max(1, (os.cpu_count() or 1) // 2)  # what each of 2 workers gets
    torch.set_num_threads(threads)
    try:
        serial = bench(1)
    finally:
        torch.set_num_threads(1)  # as the module runs
    parallel = bench(2)
    assert serial.keys() == parallel.keys() and len(serial) == 2
    for key, record in serial.items():
        assert record["threads"] == parallel[key]["threads"] == threads
        a, b = record["result"], parallel[key]["result"]
        assert b["steps"] == a["steps"] == 44
        assert (b["lrs"], b["metrics"], b["train_losses"]) == (a["lrs"], a["metrics"], a["train_losses"])
