"""Your own task and strategy in `cyclr bench` and `cyclr find`, from the command line:

    cyclr bench --task examples/bench_plugin.py:WineMLP \\
        --strategies constant,one_cycle,auto,examples/bench_plugin.py:halve_on_plateau
    cyclr find --task examples/bench_plugin.py:WineMLP

A task is the problem only (data, model, loss, metric, target, budget); the bench trains it with
its supervised torch runner. A strategy turns the budget into a run driver; this one reads the
training loss (a feedback driver) and needs no change to any training loop.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

import cyclr.bench as cb


class WineMLP(cb.Task):
    """scikit-learn's bundled wine data (178 samples, 13 features, 3 cultivars): a small MLP,
    test accuracy on a fixed 30% split."""

    name = "wine-mlp"
    description = "wine (scikit-learn, bundled), 13-32-3 MLP"
    domain = "tabular"
    target = 0.95
    batch_size = 16
    epochs = 10
    evals_per_epoch = 2
    default_lr = {"sgd": 0.05, "adam": 3e-3}
    seeds = 2

    def load(self, data_dir: str | Path | None = None) -> cb.TaskData:
        from sklearn.datasets import load_wine

        x, y = load_wine(return_X_y=True)
        order = np.random.default_rng(0).permutation(len(x))
        test, train = order[:54], order[54:]
        mean, std = x[train].mean(0), x[train].std(0)
        xs = torch.from_numpy(((x - mean) / std).astype(np.float32))
        ys = torch.from_numpy(y.astype(np.int64))
        return cb.TaskData(xs[train], ys[train], xs[test], ys[test])

    def model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))


class HalveOnPlateau(cb.FeedbackDriver):
    """Halves the LR when the smoothed training loss has not improved for ``patience`` updates
    (a ReduceLROnPlateau that reads every update's loss)."""

    def __init__(self, lr: float, patience: int = 20, beta: float = 0.9) -> None:
        super().__init__(lr)
        self.patience, self.beta = patience, beta
        self.smooth = math.nan
        self.best = math.inf
        self.waited = 0

    def update(self, loss: float) -> tuple[float, float | None]:
        if not math.isfinite(loss):
            return self.lr / 2, None
        self.smooth = loss if math.isnan(self.smooth) else self.beta * self.smooth + (1 - self.beta) * loss
        if self.smooth < self.best:
            self.best, self.waited = self.smooth, 0
            return self.lr, None
        self.waited += 1
        if self.waited < self.patience:
            return self.lr, None
        self.waited = 0
        return self.lr / 2, None


@cb.strategy(family="adaptive", description="halve the LR when the smoothed loss plateaus (a feedback driver)")
def halve_on_plateau(c: cb.Context, v: object) -> cb.Plan:
    return cb.Plan(HalveOnPlateau(c.lr))
