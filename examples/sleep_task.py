"""A task whose runs only sleep: for measuring an engine (``cyclr bench --storage`` with workers,
``cyclr worker``) rather than training, so that 2 cores can show whether 4 workers reach 4x.

Each run is one update of a 2x2 linear model, then one evaluation that sleeps
``CYCLR_SLEEP_SECONDS`` (default 1) seconds. Use it as ``examples/sleep_task.py:SleepTask``::

    CYCLR_SLEEP_SECONDS=1 cyclr bench --task examples/sleep_task.py:SleepTask \\
        --strategies constant --seeds 8 --storage journal:///tmp/sleep.log --workers 4
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from cyclr.bench import Task
from cyclr.bench.tasks import TaskData


class SleepTask(Task):
    name: ClassVar[str] = "sleep"
    description: ClassVar[str] = "one update, then an evaluation that sleeps (an engine probe)"
    domain: ClassVar[str] = "tabular"
    batch_size: ClassVar[int | None] = 4
    epochs: ClassVar[int] = 1
    optimizers: ClassVar[tuple[str, ...]] = ("sgd",)
    seeds: ClassVar[int] = 1
    target: ClassVar[float] = 0.5

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, 2, generator=g)
        y = torch.tensor([0, 1, 0, 1])
        return TaskData(x, y, x, y)

    def model(self) -> nn.Module:
        return nn.Linear(2, 2)

    def evaluate(self, model: nn.Module, data: Any, batch_size: int = 256) -> float:
        time.sleep(float(os.environ.get("CYCLR_SLEEP_SECONDS", "1")))
        return super().evaluate(model, data, batch_size)
