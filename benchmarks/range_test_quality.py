"""How good are LR range-test suggestions? For each task: a grid of one-cycle max_lr values
(log-spaced, same epochs, several seeds) against the max_lr that cyclr's range test suggests,
and, in the same run, the suggestions of the peers' real packages (torch-lr-finder's steepest
gradient, Lightning's Tuner.lr_find), each trained the same way.

    .venv/bin/python benchmarks/range_test_quality.py                  # the full comparison
    .venv/bin/python benchmarks/range_test_quality.py --smoke          # seconds: CI's smoke test
    .venv/bin/python benchmarks/range_test_quality.py --json out.json  # also write the numbers
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch

import cyclr
import cyclr.torch as ct
from cyclr.bench import EpochBatches, TaskData, get_task
from cyclr.bench.driver import ScheduleDriver
from cyclr.bench.train import make_optimizer, train
from cyclr.finder import NoDescentError

SETTINGS: dict[str, dict[str, Any]] = {
    # epochs and training subset per task: enough to rank max_lr values, small enough for 2 cores
    "digits": {"epochs": 8, "subset": None},
    "sms-spam": {"epochs": 10, "subset": None},
    "mnist": {"epochs": 2, "subset": 12000},
    "fashion-mnist": {"epochs": 3, "subset": 12000},
}
GRID = [10 ** (-3 + 0.5 * k) for k in range(7)]  # 1e-3 ... 1, half-decade steps


def subset(data: TaskData, n: int | None) -> TaskData:
    if n is None or n >= data.n_train:
        return data
    idx = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(123))[:n]
    return TaskData(data.x_train[idx], data.y_train[idx], data.x_test, data.y_test)


def cyclr_suggestion(task: Any, data: TaskData, seed: int) -> tuple[Any, float]:
    torch.manual_seed(seed)
    model = task.model()
    opt = make_optimizer("sgd", model, 0.01)
    loader = EpochBatches(data, task.batch_size, torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    result = ct.lr_range_test(model, opt, task.loss, loader, progress=False)
    return result, time.perf_counter() - t0


def torch_lr_finder_suggestion(task: Any, data: TaskData, seed: int) -> float:
    """torch-lr-finder's documented recipe: range_test(end_lr=10, num_iter=100), then the
    steepest-gradient point that its own plot() reports."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    torch.manual_seed(seed)
    model = task.model()
    opt = make_optimizer("sgd", model, 1e-7)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_train, data.y_train), batch_size=task.batch_size, shuffle=True
    )
    finder = LRFinder(model, opt, task.loss, device="cpu")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finder.range_test(loader, end_lr=10, num_iter=100)
        fig, ax = plt.subplots()
        _, lr = finder.plot(suggest_lr=True, ax=ax)
        plt.close(fig)
    return float(lr)


def lightning_suggestion(task: Any, data: TaskData, seed: int) -> float:
    """Lightning's Tuner.lr_find with its defaults (min 1e-8, max 1, 100 steps) and suggestion()."""
    import logging

    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    for logger in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(logger).setLevel(logging.ERROR)

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = task.model()
            self.lr = 0.01

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return task.loss(self.net(x), y)  # type: ignore[no-any-return]

        def configure_optimizers(self) -> Any:
            return make_optimizer("sgd", self.net, self.lr)

    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_train, data.y_train), batch_size=task.batch_size, shuffle=True
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1000,
    )
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        finder = Tuner(trainer).lr_find(Module(), train_dataloaders=loader, update_attr=False)
    return float(finder.suggestion())


def one_cycle_score(task: Any, data: TaskData, max_lr: float, epochs: int, seeds: list[int]) -> tuple[float, float]:
    """Mean (and seconds per epoch) of the final metric of one-cycle runs at ``max_lr``."""
    steps = task.steps_per_epoch(data) * epochs
    values, seconds = [], []
    for seed in seeds:
        driver = ScheduleDriver(cyclr.one_cycle(max_lr, steps), momentum=(0.85, 0.95))
        run = train(task, data, driver, epochs=epochs, seed=seed)
        values.append(run.final if not run.diverged else (0.0 if task.higher_is_better else math.inf))
        seconds.append(run.seconds / epochs)
    return statistics.mean(values), statistics.mean(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="digits,sms-spam,mnist,fashion-mnist")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--peers", default="torch-lr-finder,lightning", help="comma list; empty for none")
    parser.add_argument("--smoke", action="store_true", help="digits only, 1 seed, 3 grid points, 2 epochs")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="write all numbers here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    tasks = ["digits"] if args.smoke else args.tasks.split(",")
    seeds = [0] if args.smoke else list(range(args.seeds))
    grid = [1e-2, 1e-1, 1.0] if args.smoke else GRID
    peers = [p for p in args.peers.split(",") if p]
    report: dict[str, Any] = {}
    for name in tasks:
        task = get_task(name)
        setting = SETTINGS.get(name, {"epochs": task.epochs, "subset": None})
        epochs = 2 if args.smoke else setting["epochs"]
        data = subset(task.load(args.data_dir), setting["subset"])
        result, rt_seconds = cyclr_suggestion(task, data, seed=0)
        try:
            rules = result.suggestions
        except NoDescentError as err:
            rules = {}
            print(f"{name}: cyclr found no suggestion: {err}")
        scores = {lr: one_cycle_score(task, data, lr, epochs, seeds) for lr in grid}
        pick = max if task.higher_is_better else min
        best_lr = pick(scores, key=lambda lr: scores[lr][0])
        epoch_seconds = statistics.mean(s for _, s in scores.values())
        entry: dict[str, Any] = {
            "metric": task.metric,
            "epochs": epochs,
            "train_size": data.n_train,
            "grid": {f"{lr:.4g}": scores[lr][0] for lr in grid},
            "grid_best_lr": best_lr,
            "grid_best": scores[best_lr][0],
            "range_test_steps": result.steps,
            "range_test_seconds": rt_seconds,
            "epoch_steps": task.steps_per_epoch(data),
            "epoch_seconds": epoch_seconds,
            "rules": rules,
            "candidates": {},
        }
        candidates = {f"cyclr {rule}": lr for rule, lr in rules.items() if rule != "base_lr"}
        if rules:
            candidates["cyclr schedule()"] = result.schedule("one_cycle", epochs=epochs).max_lr  # type: ignore[attr-defined]
        if "torch-lr-finder" in peers:
            candidates["torch-lr-finder"] = torch_lr_finder_suggestion(task, data, seed=0)
        if "lightning" in peers:
            candidates["lightning"] = lightning_suggestion(task, data, seed=0)
        for label, lr in candidates.items():
            score, _ = one_cycle_score(task, data, lr, epochs, seeds)
            entry["candidates"][label] = {"max_lr": lr, "ratio": lr / best_lr, "score": score}
        report[name] = entry
        print_task(name, entry, len(seeds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


def print_task(name: str, e: dict[str, Any], n_seeds: int) -> None:
    print(
        f"\n{name}: one-cycle, SGD momentum 0.85-0.95, {e['epochs']} epochs on {e['train_size']} examples, "
        f"{e['metric']} (mean of {n_seeds} seeds)"
    )
    grid = "  ".join(f"{lr}:{v:.4f}" for lr, v in e["grid"].items())
    print(f"  grid max_lr -> {e['metric']}: {grid}")
    print(f"  grid best: max_lr {e['grid_best_lr']:.4g} -> {e['grid_best']:.4f}")
    print(f"  {'suggestion':<22}{'max_lr':>10}{'/ grid best':>13}{e['metric']:>10}{'vs grid best':>14}")
    for label, c in e["candidates"].items():
        within = "" if 0.5 <= c["ratio"] <= 2 else "  (outside 2x)"
        delta = c["score"] - e["grid_best"]
        print(f"  {label:<22}{c['max_lr']:>10.3g}{c['ratio']:>12.2f}x{c['score']:>10.4f}{delta:>+14.4f}{within}")
    rt, ep = e["range_test_seconds"], e["epoch_seconds"]
    print(
        f"  range test: {e['range_test_steps']} steps, {rt:.1f} s; one epoch: {e['epoch_steps']} steps, {ep:.1f} s "
        f"(test / epoch: {e['range_test_steps'] / e['epoch_steps']:.2f} in steps, {rt / ep:.2f} in seconds)"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
