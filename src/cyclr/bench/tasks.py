"""Benchmark tasks: each one is data, a model, a loss, a metric and a target behind one small
interface, so the harness (and ``cyclr find``) never special-cases a task.

Add your own with :func:`register`::

    @cyclr.bench.register
    class MyTask(cyclr.bench.Task):
        name = "my-task"
        ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

__all__ = [
    "CORE_STRATEGIES",
    "OPTIMIZERS",
    "TASKS",
    "BaseTask",
    "EpochBatches",
    "Task",
    "TaskData",
    "batches",
    "get_task",
    "make_optimizer",
    "predictions",
    "register",
    "task_from_reference",
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


OPTIMIZERS = ("sgd", "adam")


def make_optimizer(
    name: str, params: nn.Module | list[tuple[list[nn.Parameter], float]], lr: float
) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 and weight decay 5e-4, or AdamW (weight decay 1e-4). ``params`` is a
    model or a list of ``(parameters, lr multiplier)`` groups (discriminative LRs)."""
    groups = [(list(params.parameters()), 1.0)] if isinstance(params, nn.Module) else params
    param_groups: list[dict[str, Any]] = [{"params": p, "lr": lr * scale} for p, scale in groups]
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=0.9, weight_decay=5e-4)
    if name == "adam":
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=1e-4)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}.")


class BaseTask:
    """A benchmark problem and nothing about how it is trained: its data, model, metric and
    direction, target, budget, domain and default settings. The runner named by :attr:`runner`
    (supervised torch, Keras, RL episodes) trains it; see :class:`Task` for supervised tasks."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True
    #: the metric's units, shown beside it in the report
    units: ClassVar[str] = "fraction correct"
    #: the split the metric is tracked on during training ("test", "validation", "training episodes")
    tracked_on: ClassVar[str] = "test"
    target: ClassVar[float] = 0.0
    #: examples (or replayed transitions) per update; ``None`` where an update has no batch
    batch_size: ClassVar[int | None] = 128
    epochs: ClassVar[int] = 5
    #: the reference LR per optimizer: the centre of the constant-LR grid and the starting LR
    #: of the hand-set schedules (the "framework default" strategy uses the framework's own)
    default_lr: ClassVar[dict[str, float]] = {"sgd": 0.05, "adam": 1e-3}
    #: evaluations of the tracked metric per epoch (the resolution of steps-to-target)
    evals_per_epoch: ClassVar[int] = 1
    #: the library the model is written in (its optimizers' default LRs are the "default" constant)
    framework: ClassVar[str] = "torch"
    #: the runner that trains it: ``'torch'`` (supervised), ``'keras'`` or ``'rl'``
    runner: ClassVar[str] = "torch"
    #: the report's grouping: ``'vision'``, ``'sequences'``, ``'language'``, ``'tabular'`` or ``'rl'``
    domain: ClassVar[str] = "vision"
    #: what one schedule step is, in the report ("steps", "env steps", "episodes")
    step_unit: ClassVar[str] = "steps"
    #: the bench's defaults for this task when the command line names none: optimizers,
    #: why the LR range test cannot give a safe LR for this task's objective (``None``: it can),
    #: from the calibration study; a range test on the task then gives no suggestion but says so
    range_test_caveat: ClassVar[str | None] = None
    #: strategies (``None``: every one) and seeds
    optimizers: ClassVar[tuple[str, ...]] = ("sgd", "adam")
    strategies: ClassVar[tuple[str, ...] | None] = None
    seeds: ClassVar[int] = 3
    #: clip the gradient norm to this before each update (``None``: no clipping)
    grad_clip: ClassVar[float | None] = None

    def load(self, data_dir: str | Path | None = None) -> Any:
        raise NotImplementedError

    def dataset(self, data_dir: str | Path | None = None, subset: int | None = None) -> Any:
        """What the runner trains on (``subset``: the first n training examples, where that means
        something)."""
        return self.load(data_dir)

    def model(self) -> nn.Module:
        raise NotImplementedError

    def steps_per_epoch(self, data: Any, batch_size: int | None = None) -> int:
        raise NotImplementedError

    def final_metrics(self, model: Any, data: Any) -> dict[str, float]:
        """Scores measured once, after training (a held-out test split); none by default."""
        return {}

    def baselines(self, data: Any) -> dict[str, float]:
        """Reference scores without learning (naive forecasts) that the report shows; none by default."""
        return {}

    def reached(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target

    @property
    def metric_label(self) -> str:
        """The metric with the split it is tracked on, e.g. "test accuracy", "validation rmse"."""
        return self.metric if self.tracked_on in self.metric else f"{self.tracked_on} {self.metric}"

    def param_groups(self, model: nn.Module) -> list[tuple[list[nn.Parameter], float]]:
        """Parameter groups and their LR multipliers (discriminative LRs); default: one group."""
        return [(list(model.parameters()), 1.0)]

    def make_optimizer(self, name: str, groups: list[tuple[list[nn.Parameter], float]], lr: float) -> Any:
        """The optimizer ``name`` over ``groups`` (the bench's SGD/AdamW unless a task's recipe
        says otherwise)."""
        return make_optimizer(name, groups, lr)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model().parameters())


class Task(BaseTask):
    """A supervised task: tensors in a :class:`TaskData`, a loss and a metric on its test split.
    Subclasses set the class attributes and implement ``load`` and ``model``."""

    def dataset(self, data_dir: str | Path | None = None, subset: int | None = None) -> TaskData:
        data: TaskData = self.load(data_dir)
        return data.subset(subset)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, target)

    def evaluate(self, model: nn.Module, data: TaskData, batch_size: int = 256) -> float:
        """The task's metric on the test split (accuracy by default)."""
        correct = sum(int((out.argmax(1) == y).sum()) for out, y in predictions(model, data, batch_size))
        return correct / len(data.x_test)

    def steps_per_epoch(self, data: TaskData, batch_size: int | None = None) -> int:
        return data.n_train // (batch_size or self.batch_size or 1)


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


TASKS: dict[str, type[BaseTask]] = {}

_REFERENCES: dict[str, type[BaseTask]] = {}

TaskType = TypeVar("TaskType", bound=type[BaseTask])


def register(cls: TaskType) -> TaskType:
    """Class decorator: make a task available by its ``name``."""
    if not isinstance(cls, type) or not issubclass(cls, BaseTask):
        raise TypeError(f"register() takes a cyclr.bench task class; got {cls!r}.")
    if not cls.name:
        raise ValueError(f"task class {cls.__name__} needs a name")
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> Any:
    """A task by its registered name, or by reference: ``path/to/file.py:Class`` or
    ``package.module:Class`` (loaded and registered on first use)."""
    if name not in TASKS and ":" in name:
        return task_from_reference(name)()
    if name not in TASKS:
        raise ValueError(
            f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}, "
            "or your own as path/to/file.py:Class or module:Class."
        )
    return TASKS[name]()


def task_from_reference(reference: str) -> type[BaseTask]:
    """Load ``file.py:Class`` or ``module:Class`` (once), register it under its name and
    return it."""
    from ._plugins import load_object

    if reference in _REFERENCES:
        return _REFERENCES[reference]
    cls = load_object(reference, "task")
    if not isinstance(cls, type) or not issubclass(cls, BaseTask):
        raise ValueError(f"task {reference!r}: {cls!r} is not a cyclr.bench.Task subclass.")
    if not cls.name:
        raise ValueError(f"task {reference!r}: the class needs a name (its `name` attribute).")
    TASKS[cls.name] = _REFERENCES[reference] = cls
    return cls


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
class Diabetes(Task):
    """scikit-learn's bundled diabetes regression (442 patients, 10 standardised features, disease
    progression after a year): a small tabular MLP, the kind of problem on which range tests read
    from image-classification curves go wrong. Bundled, no download; test RMSE in the target's
    units (a linear model reaches about 54 on this split)."""

    name = "diabetes"
    description = "diabetes (scikit-learn, bundled), 2-layer MLP regression"
    domain = "tabular"
    metric = "rmse"
    higher_is_better = False
    units = "disease progression score"
    target = 58.0
    batch_size = 32
    epochs = 40
    evals_per_epoch = 1
    default_lr = {"sgd": 0.01, "adam": 1e-3}

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True, scaled=False)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).numpy()
        test, train = order[:88], order[88:]
        mean, std = x[train].mean(0), x[train].std(0)
        y_mean, y_std = float(y[train].mean()), float(y[train].std())

        def features(idx: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(((x[idx] - mean) / std).astype(np.float32))

        def targets(idx: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(((y[idx] - y_mean) / y_std).astype(np.float32))

        return TaskData(features(train), targets(train), features(test), targets(test), {"y_std": torch.tensor(y_std)})

    def model(self) -> nn.Module:
        return nn.Sequential(
            nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1), nn.Flatten(0)
        )

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output, target)

    def evaluate(self, model: nn.Module, data: TaskData, batch_size: int = 256) -> float:
        """Test RMSE in the target's own units (the model learns the standardised target)."""
        sse = sum(float(((out - y) ** 2).sum()) for out, y in predictions(model, data, batch_size))
        return math.sqrt(sse / len(data.x_test)) * float(data.extra["y_std"])


ResultType = TypeVar("ResultType")


def with_caveat(task: Any, result: ResultType) -> ResultType:
    """``result`` carrying ``task``'s :attr:`BaseTask.range_test_caveat`, if it has one (then the
    result gives no suggestion and says why)."""
    caveat = getattr(task, "range_test_caveat", None)
    if caveat:
        result.info["no_safe_lr"] = caveat  # type: ignore[attr-defined]
    return result
