"""Lightning users' LR workflow against cyclr's, end to end in the real Lightning Trainer.

Arms, each on the same module, data, seed and epochs (quality, not time: CPU noise is irrelevant):
- ``lightning``: Lightning's documented recipe: ``Tuner(trainer).lr_find(module)`` with its
  defaults, its ``suggestion()`` written to ``module.lr``, then ``fit`` at that constant LR;
- ``lightning+one_cycle``: Lightning's suggestion as the peak of a one-cycle schedule
  (``cyclr.lightning.OneCycle``), to separate the finder from the schedule;
- ``cyclr``: ``cyclr.lightning.RangeTest()`` with its defaults: the range test at fit start and the
  one-cycle schedule its result gives.

Prints each seed's suggestion and final metric, then the mean per arm; ``--out`` keeps the JSON.

    .venv/bin/python benchmarks/lightning_workflow.py                      # digits, 3 seeds, ~2 min
    .venv/bin/python benchmarks/lightning_workflow.py --task fashion-mnist --subset 12000 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.tuner import Tuner

import cyclr.lightning
from cyclr.bench.tasks import get_task

ARMS = ("lightning", "lightning+one_cycle", "cyclr")


class Module(pl.LightningModule):
    def __init__(self, task: Any, optimizer: str, lr: float) -> None:
        super().__init__()
        self.task, self.optimizer_name, self.lr = task, optimizer, lr
        self.net = task.model()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss: torch.Tensor = self.task.loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        return self.task.make_optimizer(self.optimizer_name, self.task.param_groups(self.net), self.lr)


def trainer(epochs: int, callbacks: list[Any]) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )


def run(task: Any, data: Any, arm: str, optimizer: str, epochs: int, seed: int) -> dict[str, Any]:
    pl.seed_everything(seed, verbose=False)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_train, data.y_train),
        batch_size=task.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    module = Module(task, optimizer, task.default_lr[optimizer])
    start = time.perf_counter()
    if arm == "cyclr":
        finder = cyclr.lightning.RangeTest(progress=False)
        trainer(epochs, [finder]).fit(module, loader)
        suggestion = float(finder.result.suggestion)
    else:
        found = Tuner(trainer(epochs, [])).lr_find(module, train_dataloaders=loader, update_attr=True)
        suggestion = float(found.suggestion()) if found is not None and found.suggestion() else float("nan")
        module = Module(task, optimizer, suggestion)
        pl.seed_everything(seed, verbose=False)
        callbacks = [cyclr.lightning.OneCycle(suggestion)] if arm == "lightning+one_cycle" else []
        trainer(epochs, callbacks).fit(module, loader)
    seconds = time.perf_counter() - start
    metric = float(task.evaluate(module.net.eval(), data))
    return {"arm": arm, "seed": seed, "suggestion": suggestion, "metric": metric, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="digits")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--epochs", type=int, default=None, help="default: the task's budget")
    parser.add_argument("--subset", type=int, default=None, help="training examples (default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the runs as JSON here")
    args = parser.parse_args()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    torch.set_num_threads(1)
    task = get_task(args.task)
    data = task.dataset(subset=args.subset)
    epochs = args.epochs or task.epochs
    print(
        f"task={args.task} optimizer={args.optimizer} epochs={epochs} train={data.n_train} "
        f"metric={task.metric_label} ({'higher' if task.higher_is_better else 'lower'} is better)"
    )
    runs = []
    print(f"{'arm':<22}{'seed':>5}{'suggested LR':>14}{'metric':>10}{'seconds':>9}")
    for seed in range(args.seeds):
        for arm in ARMS:
            r = run(task, data, arm, args.optimizer, epochs, seed)
            runs.append(r)
            print(f"{arm:<22}{seed:>5}{r['suggestion']:>14.3g}{r['metric']:>10.4f}{r['seconds']:>9.1f}", flush=True)
    print("\nmean over seeds (sd)")
    for arm in ARMS:
        values = [r["metric"] for r in runs if r["arm"] == arm]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        lrs = ", ".join(f"{r['suggestion']:.2g}" for r in runs if r["arm"] == arm)
        print(f"{arm:<22}{statistics.fmean(values):>10.4f} ({sd:.4f})   LRs: {lrs}")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
