"""Transfer learning: the MNIST CNN, pretrained once (cached) and fine-tuned on a small
Fashion-MNIST subset with discriminative LRs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ..schedules import OneCycle
from .driver import ScheduleDriver
from .tasks import MNIST, FashionMNIST, Task, TaskData, register
from .train import train

__all__ = ["Transfer"]


@register
class Transfer(Task):
    """Transfer learning: the MNIST CNN, pretrained by the harness (cached), fine-tuned on a small
    Fashion-MNIST subset with discriminative LRs (deeper layers learn faster, the new head fastest).
    """

    name = "transfer"
    description = "MNIST-pretrained CNN fine-tuned on 2,000 Fashion-MNIST images, per-layer LRs"
    target = 0.80
    batch_size = 64
    epochs = 10
    evals_per_epoch = 1
    default_lr = {"sgd": 0.05, "adam": 1e-3}
    #: fine-tuning examples (a fixed subset of the Fashion-MNIST training set)
    finetune_examples: ClassVar[int] = 2000
    #: the pretraining run on MNIST (one-cycle SGD, seed 0), cached by these settings
    pretrain_epochs: ClassVar[int] = 2
    pretrain_examples: ClassVar[int | None] = None
    #: LR multipliers of the conv blocks 1-3 and the head
    layer_scales: ClassVar[tuple[float, float, float, float]] = (0.1, 0.2, 0.5, 1.0)

    def __init__(self) -> None:
        self._weights: dict[str, torch.Tensor] | None = None

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        self._weights = self.pretrained(data_dir)
        return FashionMNIST().load(data_dir).subset(self.finetune_examples)

    def pretrained(self, data_dir: str | Path | None = None) -> dict[str, torch.Tensor]:
        """The pretrained feature weights: from the cache, or trained now and cached."""
        from ..data import cache_dir

        n = self.pretrain_examples
        path = cache_dir() / "pretrained" / f"mnist-cnn-w{MNIST.width}-{self.pretrain_epochs}ep-{n or 'all'}.pt"
        if path.exists():
            return dict(torch.load(path, weights_only=True))
        source = MNIST()
        data = source.load(data_dir).subset(n)
        total = source.steps_per_epoch(data) * self.pretrain_epochs
        model = source.model()
        train(
            source,
            data,
            ScheduleDriver(OneCycle(max_lr=0.2, total_steps=total), momentum=(0.85, 0.95)),
            epochs=self.pretrain_epochs,
            seed=0,
            model=model,
            evals_per_epoch=0,
        )
        weights = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(weights, tmp)
        os.replace(tmp, path)  # atomic: parallel workers never read half a file
        return weights

    def model(self) -> nn.Module:
        if self._weights is None:
            raise RuntimeError("transfer: call load() first (it provides the pretrained weights).")
        model = MNIST().model()
        model.load_state_dict(self._weights, strict=False)  # the head stays freshly initialised
        return model

    def param_groups(self, model: nn.Module) -> list[tuple[list[nn.Parameter], float]]:
        features: nn.Sequential = model.features  # type: ignore[assignment]
        head: nn.Module = model.head  # type: ignore[assignment]
        blocks = [features[0:4], features[4:8], features[8:], head]
        return [(list(b.parameters()), scale) for b, scale in zip(blocks, self.layer_scales)]
