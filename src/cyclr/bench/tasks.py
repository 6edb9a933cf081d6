"""Benchmark tasks: each one is data, a model, a loss, a metric and a target behind one small
interface, so the harness (and ``cyclr find``) never special-cases a task.

Add your own with :func:`register`::

    @cyclr.bench.register
    class MyTask(cyclr.bench.Task):
        name = "my-task"
        ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from ..finder import RangeTestResult
    from .strategies import Plan
    from .train import RunResult

__all__ = [
    "CORE_STRATEGIES",
    "TASKS",
    "EpochBatches",
    "Task",
    "TaskData",
    "batches",
    "get_task",
    "predictions",
    "register",
]


#: the strategies the sequence, language and RL tasks run by default (the vision tasks run all):
#: the constant LRs, the decays practitioners use, the cyclical family, and the LR finders
CORE_STRATEGIES = (
    "constant",
    "cosine",
    "warmup_cosine",
    "triangular",
    "triangular2",
    "sine",
    "one_cycle",
    "auto",
    "peer",
)


@dataclass
class TaskData:
    """Preloaded tensors (no per-batch Python work beyond slicing). ``x_test``/``y_test`` is the
    split the metric is tracked on; ``extra`` holds anything else a task needs (a final test split)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    def subset(self, n: int | None, seed: int = 123) -> TaskData:
        """The first ``n`` training examples of a fixed shuffle (the test split is kept whole)."""
        if n is None or n >= self.n_train:
            return self
        idx = torch.randperm(self.n_train, generator=torch.Generator().manual_seed(seed))[:n]
        return TaskData(self.x_train[idx], self.y_train[idx], self.x_test, self.y_test, self.extra)


class Task:
    """A benchmark task. Subclasses set the class attributes and implement ``load`` and ``model``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True
    target: ClassVar[float] = 0.0
    batch_size: ClassVar[int] = 128
    epochs: ClassVar[int] = 5
    #: the reference LR per optimizer: the centre of the constant-LR grid and the starting LR
    #: of the hand-set schedules (the "framework default" strategy uses the framework's own)
    default_lr: ClassVar[dict[str, float]] = {"sgd": 0.05, "adam": 1e-3}
    #: evaluations of the test metric per epoch (the resolution of steps-to-target)
    evals_per_epoch: ClassVar[int] = 1
    #: ``'torch'``, or another framework whose task overrides :meth:`run`
    framework: ClassVar[str] = "torch"
    #: the report's grouping: ``'vision'``, ``'sequences'``, ``'language'`` or ``'rl'``
    domain: ClassVar[str] = "vision"
    #: what one schedule step is, in the report ("steps", "env steps", "episodes")
    step_unit: ClassVar[str] = "steps"
    #: the bench's defaults for this task when the command line names none: optimizers,
    #: strategies (``None``: every one) and seeds
    optimizers: ClassVar[tuple[str, ...]] = ("sgd", "adam")
    strategies: ClassVar[tuple[str, ...] | None] = None
    seeds: ClassVar[int] = 3
    #: clip the gradient norm to this before each update (``None``: no clipping)
    grad_clip: ClassVar[float | None] = None

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        raise NotImplementedError

    def model(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, target)

    def evaluate(self, model: nn.Module, data: TaskData, batch_size: int = 256) -> float:
        """The task's metric on the test split (accuracy by default)."""
        correct = sum(int((out.argmax(1) == y).sum()) for out, y in predictions(model, data, batch_size))
        return correct / len(data.x_test)

    def final_metrics(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """Scores measured once, after training (a held-out test split); none by default."""
        return {}

    def baselines(self, data: TaskData) -> dict[str, float]:
        """Reference scores without learning (naive forecasts) that the report shows; none by default."""
        return {}

    def reached(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target

    def steps_per_epoch(self, data: TaskData, batch_size: int | None = None) -> int:
        return data.n_train // (batch_size or self.batch_size)

    def param_groups(self, model: nn.Module) -> list[tuple[list[nn.Parameter], float]]:
        """Parameter groups and their LR multipliers (discriminative LRs); default: one group."""
        return [(list(model.parameters()), 1.0)]

    def make_optimizer(self, name: str, groups: list[tuple[list[nn.Parameter], float]], lr: float) -> Any:
        """The optimizer ``name`` over ``groups`` (the harness's SGD/AdamW unless a task's recipe
        says otherwise)."""
        from .train import make_optimizer

        return make_optimizer(name, groups, lr)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model().parameters())

    # ------------------------------------------------------------ framework hooks (torch here)
    def range_test(self, data: TaskData, optimizer: str, seed: int, batch_size: int | None = None) -> RangeTestResult:
        """cyclr's LR range test on a fresh model of ``seed`` (fastai's defaults)."""
        from ..finder._torch import lr_range_test

        torch.manual_seed(seed)
        model = self.model()
        opt = self.make_optimizer(optimizer, self.param_groups(model), 1e-3)
        loader = EpochBatches(data, batch_size or self.batch_size, torch.Generator().manual_seed(seed))
        return lr_range_test(model, opt, self.loss, loader, progress=False)

    def run(self, data: TaskData, plan: Plan, *, optimizer: str, epochs: int, seed: int, batch_size: int) -> RunResult:
        """Train one run under ``plan`` (a cyclr schedule, or the peer's torch OneCycleLR)."""
        from .train import train

        if plan.peer_max_lr is None:
            return train(
                self,
                data,
                plan.schedule,
                optimizer=optimizer,
                momentum=plan.momentum,
                epochs=epochs,
                seed=seed,
                batch_size=batch_size,
            )
        total = self.steps_per_epoch(data, batch_size) * epochs
        peak = plan.peer_max_lr

        def one_cycle(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.OneCycleLR:
            top = max(float(g["lr"]) for g in opt.param_groups)
            max_lrs = [peak * float(g["lr"]) / top for g in opt.param_groups]  # keep the task's LR ratios
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lrs, total_steps=total)

        return train(
            self, data, scheduler=one_cycle, optimizer=optimizer, epochs=epochs, seed=seed, batch_size=batch_size
        )


def predictions(model: nn.Module, data: TaskData, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(model output, targets)`` over the test split in batches, in eval mode without gradients
    (the model's train/eval flag is put back afterwards)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(data.x_test), batch_size):
                yield model(data.x_test[i : i + batch_size]), data.y_test[i : i + batch_size]
    finally:
        model.train(was_training)


TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its ``name``."""
    if not cls.name:
        raise ValueError(f"task class {cls.__name__} needs a name")
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}.")
    return TASKS[name]()


def batches(data: TaskData, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches (the last partial batch of each epoch is dropped)."""
    n = data.n_train
    while True:
        order = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            yield data.x_train[idx], data.y_train[idx]


class EpochBatches:
    """One shuffled epoch per iteration, with ``len()`` = batches per epoch (for the range test,
    which reads ``steps_per_epoch`` from it)."""

    def __init__(self, data: TaskData, batch_size: int, generator: torch.Generator) -> None:
        self.data, self.batch_size, self.generator = data, batch_size, generator

    def __len__(self) -> int:
        return self.data.n_train // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(self.data.n_train, generator=self.generator)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.data.x_train[idx], self.data.y_train[idx]


def _images(x: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """Normalised NCHW images in channels-last memory (about twice as fast for conv nets on CPU)."""
    out = ((torch.from_numpy(x.astype(np.float32)) / 255.0 - mean) / std).unsqueeze(1)
    return out.contiguous(memory_format=torch.channels_last)


class _SmallCNN(nn.Module):
    """Three conv blocks with batch norm and global average pooling (14k parameters at width 16,
    56k at width 32)."""

    def __init__(self, width: int = 32, classes: int = 10, pool_first: bool = True) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, width),
            nn.MaxPool2d(2) if pool_first else nn.Identity(),
            *block(width, 2 * width),
            nn.MaxPool2d(2),
            *block(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


@register
class Digits(Task):
    """scikit-learn's bundled 8x8 digits (1,797 images): the embedded default, no download."""

    name = "digits"
    description = "8x8 digits (scikit-learn, bundled), small CNN"
    target = 0.97
    batch_size = 32
    epochs = 8
    evals_per_epoch = 2
    default_lr = {"sgd": 0.05, "adam": 1e-3}

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.from_numpy((digits.images / 16.0).astype(np.float32)).unsqueeze(1)
        y = torch.from_numpy(digits.target.astype(np.int64))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        test, train = order[:360], order[360:]
        return TaskData(x[train], y[train], x[test], y[test])

    def model(self) -> nn.Module:
        return _SmallCNN(width=16, pool_first=False)


@register
class MNIST(Task):
    """MNIST handwritten digits, a small CNN (< 120k parameters); target 99.0% test accuracy."""

    name = "mnist"
    description = "MNIST, 3-block CNN (14k parameters)"
    target = 0.99
    batch_size = 128
    epochs = 3
    evals_per_epoch = 4
    width: ClassVar[int] = 16

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        from ..data import mnist

        (x, y), (xt, yt) = mnist(data_dir)
        return TaskData(
            _images(x, 0.1307, 0.3081), torch.from_numpy(y), _images(xt, 0.1307, 0.3081), torch.from_numpy(yt)
        )

    def model(self) -> nn.Module:
        return _SmallCNN(width=self.width).to(memory_format=torch.channels_last)  # type: ignore[call-overload,no-any-return]


@register
class FashionMNIST(MNIST):
    """Fashion-MNIST, the same CNN; target 91% test accuracy (the best small CNNs reach ~92.5%)."""

    name = "fashion-mnist"
    description = "Fashion-MNIST, 3-block CNN (14k parameters)"
    target = 0.91

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        from ..data import fashion_mnist

        (x, y), (xt, yt) = fashion_mnist(data_dir)
        return TaskData(
            _images(x, 0.2860, 0.3530), torch.from_numpy(y), _images(xt, 0.2860, 0.3530), torch.from_numpy(yt)
        )


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
        from .. import one_cycle
        from .train import train

        source = MNIST()
        data = source.load(data_dir).subset(n)
        total = source.steps_per_epoch(data) * self.pretrain_epochs
        model = source.model()
        train(
            source,
            data,
            one_cycle(max_lr=0.2, total_steps=total),
            momentum=(0.85, 0.95),
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
