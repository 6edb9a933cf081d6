"""The peers' LR finders, each run as its users run it, on a supervised torch task.

- :func:`torch_lr_finder`: pytorch-lr-finder's documented recipe and its steepest-gradient point;
- :func:`lightning`: Lightning's ``Tuner.lr_find`` with its defaults and ``suggestion()``;
- :func:`fastai_valley`: fastai's default rule, ``valley``. fastai pins its own torch range, so it
  is not installed beside cyclr's pinned torch; the rule is implemented here from its source
  (``fastai/callback/schedule.py``) and read from the same sweep fastai's ``lr_find`` makes
  (1e-7 to 10 in 100 steps, the bias-corrected EMA 0.98 that its Recorder keeps, stopped at 4x
  the best), which is cyclr's default sweep.

Every function takes ``(task, data, optimizer, seed)`` and returns the suggested LR, so the bench
and ``benchmarks/range_test_quality.py`` ask them alike.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["SUGGESTERS", "fastai_valley", "fastai_valley_index", "lightning", "torch_lr_finder", "torch_lr_finder_run"]


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _loader(task: Any, data: Any, seed: int) -> Any:
    import torch

    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_train, data.y_train),
        batch_size=task.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def torch_lr_finder_run(task: Any, data: Any, optimizer: str, seed: int) -> tuple[float, int, dict[str, list[float]]]:
    """torch-lr-finder's documented recipe: ``LRFinder(model, optimizer, criterion)``,
    ``range_test(loader, end_lr=10, num_iter=100)``, then the steepest-gradient LR that its own
    ``plot(suggest_lr=True)`` reports. Returns the LR, the steps the test took and its curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from torch_lr_finder import LRFinder

    torch.manual_seed(seed)
    model = task.model()
    opt = task.make_optimizer(optimizer, task.param_groups(model), 1e-7)
    finder = LRFinder(model, opt, task.loss, device="cpu")
    with _quiet():
        finder.range_test(_loader(task, data, seed), end_lr=10, num_iter=100)
        fig, ax = plt.subplots()
        _, lr = finder.plot(suggest_lr=True, ax=ax)
        plt.close(fig)
    history = finder.history
    curve = {"lrs": [float(x) for x in history["lr"]], "losses": [float(x) for x in history["loss"]]}
    if lr is None:
        raise RuntimeError("torch-lr-finder gave no suggestion (its curve is too short).")
    return float(lr), len(history["lr"]), curve


def torch_lr_finder(task: Any, data: Any, optimizer: str, seed: int) -> float:
    return torch_lr_finder_run(task, data, optimizer, seed)[0]


def lightning(task: Any, data: Any, optimizer: str, seed: int) -> float:
    """Lightning's ``Tuner(trainer).lr_find(module)`` with its defaults (1e-8 to 1, 100 steps,
    exponential) and ``suggestion()`` (the steepest point of its EMA-smoothed loss)."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.tuner import Tuner  # type: ignore[attr-defined]

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = task.model()
            self.lr = 1e-3

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return task.loss(self.net(x), y)  # type: ignore[no-any-return]

        def configure_optimizers(self) -> Any:
            return task.make_optimizer(optimizer, task.param_groups(self.net), self.lr)

    torch.manual_seed(seed)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1000,
    )
    with _quiet():
        finder = Tuner(trainer).lr_find(Module(), train_dataloaders=_loader(task, data, seed), update_attr=False)
    found = finder.suggestion() if finder is not None else None
    if found is None:
        raise RuntimeError("Lightning's lr_find gave no suggestion.")
    return float(found)


def fastai_valley_index(losses: Sequence[float]) -> int:
    """fastai's ``valley``: the index 1/3 + 1/6 of the way into the longest run of decreasing
    loss (a longest decreasing subsequence, O(n^2), as fastai computes it)."""
    n = len(losses)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def fastai_valley(curve: dict[str, Sequence[float | None]], num_it: int = 100) -> float:
    """fastai ``lr_find``'s suggestion from a recorded sweep (``lrs`` and the EMA-smoothed
    ``smoothed`` losses its Recorder keeps): drop the first ``num_it // 10`` and the last 5
    points, cut at the first NaN, then :func:`fastai_valley_index`."""
    lrs = [float(x) for x in curve["lrs"] if x is not None][num_it // 10 : -5]
    losses = [math.nan if v is None else float(v) for v in curve["smoothed"]][num_it // 10 : -5]
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad:
        lrs, losses = lrs[: bad[0]], losses[: bad[0]]
    if not losses:
        raise ValueError("fastai's valley: no usable point on the curve.")
    return float(np.asarray(lrs)[fastai_valley_index(losses)])


#: peer name -> ``(task, data, optimizer, seed) -> LR``
SUGGESTERS: dict[str, Callable[[Any, Any, str, int], float]] = {
    "torch-lr-finder": torch_lr_finder,
    "lightning": lightning,
}
