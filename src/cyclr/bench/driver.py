"""Run drivers: the one object a training loop talks to about hyperparameters.

Every loop (supervised torch, Keras, RL episodes) makes the same calls, in this order::

    driver.attach(optimizer)          # once, before the first update
    for each update:
        recorder.before(step)         # reads driver.current(): what the optimizer will use
        ... forward, backward, optimizer step ...
        driver.observe(loss)          # the training loss of this update
        driver.step()                 # values for the next update

A driver never sees the model, the data or the loop; a loop never knows which driver it runs.
Three kinds exist:

- :class:`ScheduleDriver`: a cyclr schedule (and cyclical momentum), evaluated by the framework
  itself (:class:`cyclr.torch.Scheduler`, or :class:`cyclr.keras.Schedule` in the graph);
- :class:`TorchSchedulerDriver`: any torch scheduler built by a factory (the ``peer`` recipe,
  torch's own ``OneCycleLR``, or any scheduler a user wants to compare);
- :class:`FeedbackDriver`: the base of drivers that read the loss and set the LR themselves
  (an adaptive CLR); subclasses implement :meth:`FeedbackDriver.update`, nothing else;
- :class:`OptimizerDriver`: another optimizer altogether (Prodigy, D-Adaptation, Schedule-Free,
  DoG: the LR-free anchors), built over the task's parameter groups, with its own scheduler;
- :class:`PlateauDriver`: torch's ``ReduceLROnPlateau``, fed the epoch's mean training loss.

A driver may also build the optimizer (:meth:`Driver.make_optimizer`; by default the task's own)
and wrap each evaluation (:meth:`Driver.evaluate`; Schedule-Free evaluates at its averaged
weights).

Drivers reach the optimizer through :class:`Knobs`, a thin per-framework handle that reads and
writes the LR and momentum of every param group (keeping the groups' LR ratios).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, SupportsFloat

from ..schedules import Schedule, from_config

__all__ = [
    "Driver",
    "FeedbackDriver",
    "KerasKnobs",
    "Knobs",
    "OptimizerDriver",
    "PlateauDriver",
    "ScheduleDriver",
    "TorchKnobs",
    "TorchSchedulerDriver",
    "knobs_for",
]


# ---------------------------------------------------------------------- optimizer handles
class Knobs(ABC):
    """The hyperparameters of one optimizer, read and written. ``lr()`` and ``momentum()`` are
    those of the group with the largest LR (the one a trace follows); ``set_lr`` keeps every
    group's ratio to it (discriminative LRs)."""

    framework: ClassVar[str] = ""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer = optimizer

    @abstractmethod
    def lr(self) -> float: ...

    @abstractmethod
    def momentum(self) -> float: ...

    @abstractmethod
    def set_lr(self, lr: float) -> None: ...

    @abstractmethod
    def set_momentum(self, momentum: float) -> None: ...

    @abstractmethod
    def install(self, schedule: Schedule, momentum: tuple[float, float] | None) -> Callable[[], None]:
        """Let the framework evaluate ``schedule`` (and momentum mirrored to it) at its own
        update count; returns what advances it by one update."""


class TorchKnobs(Knobs):
    framework = "torch"

    def __init__(self, optimizer: Any) -> None:
        super().__init__(optimizer)
        groups = optimizer.param_groups
        self.top = max(range(len(groups)), key=lambda i: float(groups[i]["lr"]))
        top_lr = float(groups[self.top]["lr"])
        self.ratios = [float(g["lr"]) / top_lr if top_lr > 0 else 1.0 for g in groups]

    def lr(self) -> float:
        return float(self.optimizer.param_groups[self.top]["lr"])

    def momentum(self) -> float:
        g = self.optimizer.param_groups[self.top]
        return float(g["betas"][0]) if "betas" in g else float(g.get("momentum", 0.0))

    def set_lr(self, lr: float) -> None:
        for g, ratio in zip(self.optimizer.param_groups, self.ratios):
            g["lr"] = lr * ratio

    def set_momentum(self, momentum: float) -> None:
        for g in self.optimizer.param_groups:
            if "betas" in g:
                g["betas"] = (momentum, *g["betas"][1:])
            else:
                g["momentum"] = momentum

    def install(self, schedule: Schedule, momentum: tuple[float, float] | None) -> Callable[[], None]:
        from ..torch import Scheduler

        return Scheduler(self.optimizer, schedule, momentum=momentum, past_end="hold").step


class KerasKnobs(Knobs):
    """A Keras 3 optimizer (cyclr's :class:`cyclr.keras.SGD` / ``AdamW`` for momentum). Keras
    keeps momentum as a Python float read when the update is traced, so only a schedule (installed
    before the first update) can move it; :meth:`set_momentum` refuses."""

    framework = "keras"

    def lr(self) -> float:
        return float(self.optimizer.learning_rate)

    def momentum(self) -> float:
        opt = self.optimizer
        schedule = getattr(opt, "momentum_schedule", None) or getattr(opt, "beta_1_schedule", None)
        if schedule is not None:
            return float(schedule(int(opt.iterations)))
        return float(getattr(opt, "momentum", getattr(opt, "beta_1", 0.0)))

    def set_lr(self, lr: float) -> None:
        self.optimizer.learning_rate = lr

    def set_momentum(self, momentum: float) -> None:
        raise NotImplementedError(
            "a Keras optimizer's momentum cannot be set between updates (Keras reads it when it traces "
            "the update step); give the driver a momentum schedule instead."
        )

    def install(self, schedule: Schedule, momentum: tuple[float, float] | None) -> Callable[[], None]:
        from .. import keras as ck

        opt = self.optimizer
        opt.learning_rate = ck.Schedule(schedule)
        if momentum is not None:
            mirrored = schedule.mirror(*momentum)
            if hasattr(opt, "momentum_schedule"):
                opt.momentum_schedule = mirrored
            elif hasattr(opt, "beta_1_schedule"):
                opt.beta_1_schedule = mirrored
            else:
                raise TypeError(f"{type(opt).__name__} cannot cycle its momentum; use cyclr.keras.SGD or AdamW.")
        return lambda: None  # Keras evaluates the schedule at its own update count


def knobs_for(optimizer: Any) -> Knobs:
    """The handle for a torch or Keras optimizer."""
    module = type(optimizer).__module__
    if hasattr(optimizer, "param_groups"):
        return TorchKnobs(optimizer)
    if module.startswith(("keras", "cyclr.keras")) or hasattr(optimizer, "iterations"):
        return KerasKnobs(optimizer)
    raise TypeError(f"no run driver support for {type(optimizer).__name__} (a torch or Keras optimizer is needed).")


# ---------------------------------------------------------------------- drivers
class Driver(ABC):
    """What a loop calls: :meth:`attach`, then per update :meth:`observe` and :meth:`step`;
    :meth:`current` reads back what the optimizer uses now."""

    #: the runners this kind of driver can drive (``'torch'``, ``'keras'``, ``'rl'``)
    runners: ClassVar[tuple[str, ...]] = ("torch", "keras", "rl")

    def __init__(self) -> None:
        self.knobs: Knobs | None = None

    @property
    @abstractmethod
    def initial_lr(self) -> float:
        """The LR to build the optimizer with (the first update's)."""

    def make_optimizer(self, build: Callable[[float], Any]) -> Any:
        """The optimizer the run trains with: by default the task's own, ``build(lr)`` at
        :attr:`initial_lr` (a driver that brings its own optimizer builds it from that one's
        parameter groups)."""
        return build(self.initial_lr)

    def evaluate(self, metric: Callable[[], float], refresh: Callable[[], None] | None = None) -> float:
        """The tracked metric now. ``refresh`` re-estimates normalisation statistics (BatchNorm)
        for the weights being evaluated; a driver that evaluates other weights than those it
        trains (an average) calls it."""
        return metric()

    def attach(self, optimizer: Any) -> None:
        """Take charge of ``optimizer`` before its first update."""
        self.knobs = knobs_for(optimizer)
        self._start(self.knobs)

    @abstractmethod
    def _start(self, knobs: Knobs) -> None: ...

    def observe(self, loss: SupportsFloat) -> None:
        """The training loss of the update just taken (a float or a 0-d tensor). Pure schedules
        ignore it, so a loop never pays a device sync for them."""
        return None

    @abstractmethod
    def step(self) -> None:
        """Move to the next update's values."""

    def current(self) -> tuple[float, float]:
        """``(lr, momentum)`` that the optimizer uses for its next update (its largest group)."""
        if self.knobs is None:
            raise RuntimeError("attach the driver to an optimizer first.")
        return self.knobs.lr(), self.knobs.momentum()

    @abstractmethod
    def to_config(self) -> dict[str, Any]:
        """Plain data that describes the driver (stored with each run)."""


class ScheduleDriver(Driver):
    """A cyclr schedule, with momentum mirrored between ``momentum=(low, high)`` if given."""

    def __init__(self, schedule: Schedule, momentum: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.schedule = from_config(schedule)
        self.momentum = momentum
        self._advance: Callable[[], None] = lambda: None

    @property
    def initial_lr(self) -> float:
        return float(self.schedule(0))

    def _start(self, knobs: Knobs) -> None:
        self._advance = knobs.install(self.schedule, self.momentum)

    def step(self) -> None:
        self._advance()

    def to_config(self) -> dict[str, Any]:
        return {
            "kind": "schedule",
            "schedule": self.schedule.to_config(),
            "momentum": list(self.momentum) if self.momentum else None,
        }


class TorchSchedulerDriver(Driver):
    """Any torch LR scheduler, built by ``factory(optimizer)`` and stepped once per update.
    ``config`` describes it for the record (e.g. ``{"scheduler": "OneCycleLR", "max_lr": 0.1}``)."""

    runners = ("torch",)

    def __init__(self, factory: Callable[[Any], Any], config: dict[str, Any], initial_lr: float = 1e-3) -> None:
        super().__init__()
        self.factory, self.config, self._initial_lr = factory, dict(config), initial_lr
        self.scheduler: Any = None

    @property
    def initial_lr(self) -> float:
        return self._initial_lr

    def _start(self, knobs: Knobs) -> None:
        if knobs.framework != "torch":
            raise TypeError(f"a torch scheduler cannot drive a {knobs.framework} optimizer.")
        self.scheduler = self.factory(knobs.optimizer)

    def step(self) -> None:
        self.scheduler.step()

    def to_config(self) -> dict[str, Any]:
        return {"kind": "torch", **self.config}


class PlateauDriver(TorchSchedulerDriver):
    """torch's ``ReduceLROnPlateau`` at its defaults (``factor=0.1``, ``patience=10``) from
    ``lr``, stepped once per epoch with the epoch's mean training loss (the metric it is given in
    torch's own examples is a validation loss; a run driver sees only the training loss)."""

    def __init__(self, lr: float, steps_per_epoch: int, **options: Any) -> None:
        def build(opt: Any) -> Any:
            import torch

            return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **options)

        super().__init__(build, {"scheduler": "ReduceLROnPlateau", "lr": lr, **options}, initial_lr=lr)
        if steps_per_epoch < 1:
            raise ValueError(f"PlateauDriver: steps_per_epoch must be an integer >= 1; got {steps_per_epoch!r}.")
        self.steps_per_epoch = steps_per_epoch
        self._sum, self._n, self._updates = 0.0, 0, 0

    def observe(self, loss: SupportsFloat) -> None:
        self._sum += float(loss)
        self._n += 1

    def step(self) -> None:
        self._updates += 1
        if self._updates % self.steps_per_epoch == 0 and self._n:
            self.scheduler.step(self._sum / self._n)
            self._sum, self._n = 0.0, 0


class OptimizerDriver(Driver):
    """Another optimizer over the task's parameter groups: ``factory(groups)`` gets the groups of
    the task's own optimizer as torch param-group dicts (``params``, ``weight_decay``, ``lr``
    scaled so the largest group's is 1: discriminative LRs keep their ratios) and returns the
    optimizer; ``scheduler(optimizer)`` (optional) a torch scheduler stepped once per update.
    An optimizer with ``eval()``/``train()`` (Schedule-Free) is switched to ``eval()`` around each
    evaluation, with BatchNorm statistics refreshed there, as its authors prescribe.
    ``group_ratios=False``: every group gets ``lr=1`` (Prodigy and D-Adaptation refuse different
    LRs per group); the record then says the task's per-group ratios were dropped."""

    runners = ("torch", "rl")

    def __init__(
        self,
        factory: Callable[[list[dict[str, Any]]], Any],
        config: dict[str, Any],
        scheduler: Callable[[Any], Any] | None = None,
        group_ratios: bool = True,
    ) -> None:
        super().__init__()
        self.factory, self.scheduler_factory, self.config = factory, scheduler, dict(config)
        self.group_ratios = group_ratios
        self.optimizer: Any = None
        self.scheduler: Any = None

    @property
    def initial_lr(self) -> float:
        return 1.0  # the task's optimizer is only built to read its groups

    def make_optimizer(self, build: Callable[[float], Any]) -> Any:
        template = build(1.0)
        if not hasattr(template, "param_groups"):
            raise TypeError(f"{self.config.get('optimizer', 'this optimizer')} needs a torch task.")
        top = max(float(g["lr"]) for g in template.param_groups)
        groups = [
            {"params": g["params"], "weight_decay": g.get("weight_decay", 0.0), "lr": float(g["lr"]) / top}
            for g in template.param_groups
        ]
        if not self.group_ratios and len({g["lr"] for g in groups}) > 1:
            self.config["group_lr_ratios"] = "dropped: the optimizer refuses different LRs per group"
            groups = [{**g, "lr": 1.0} for g in groups]
        self.optimizer = self.factory(groups)
        return self.optimizer

    def _start(self, knobs: Knobs) -> None:
        if knobs.framework != "torch":
            raise TypeError(f"an OptimizerDriver cannot drive a {knobs.framework} optimizer.")
        self.optimizer = knobs.optimizer
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        self.scheduler = self.scheduler_factory(self.optimizer) if self.scheduler_factory else None

    def step(self) -> None:
        if self.scheduler is not None:
            self.scheduler.step()

    def evaluate(self, metric: Callable[[], float], refresh: Callable[[], None] | None = None) -> float:
        opt = self.optimizer
        if not (hasattr(opt, "eval") and callable(opt.eval)):
            return metric()
        opt.eval()
        try:
            if refresh is not None:
                refresh()
            return metric()
        finally:
            opt.train()

    def current(self) -> tuple[float, float]:
        """The effective LR: the group's ``lr`` times the optimizer's own estimate of the scale
        (``d`` for Prodigy and D-Adaptation; DoG keeps its step size in ``eta``)."""
        lr, momentum = super().current()
        group = self.optimizer.param_groups[0]
        scale = group.get("d")
        if scale is None and "eta" in group:
            eta = group["eta"]
            scale = float(max(eta)) if isinstance(eta, (list, tuple)) and eta else None
            return (scale if scale is not None else lr), momentum
        return lr * float(scale if scale is not None else 1.0), momentum

    def to_config(self) -> dict[str, Any]:
        return {"kind": "optimizer", **self.config}


class FeedbackDriver(Driver):
    """A driver that reads the loss: :meth:`update` gets each update's loss and returns the next
    LR (and momentum, or ``None`` to leave it). Non-finite losses reach it as they are."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"{type(self).__name__}: lr must be a finite number > 0; got {lr!r}.")
        self.lr = float(lr)
        self.momentum: float | None = None
        self._loss: float | None = None

    @property
    def initial_lr(self) -> float:
        return self.lr

    def _start(self, knobs: Knobs) -> None:
        knobs.set_lr(self.lr)

    def observe(self, loss: SupportsFloat) -> None:
        self._loss = float(loss)

    def step(self) -> None:
        if self._loss is None:  # an update without a loss (no learning yet): keep the values
            return
        lr, momentum = self.update(self._loss)
        self._loss = None
        assert self.knobs is not None
        if lr != self.lr:
            self.lr = lr
            self.knobs.set_lr(lr)
        if momentum is not None and momentum != self.momentum:
            self.momentum = momentum
            self.knobs.set_momentum(momentum)

    @abstractmethod
    def update(self, loss: float) -> tuple[float, float | None]:
        """The LR (and momentum) for the next update, given this update's loss."""

    def to_config(self) -> dict[str, Any]:
        return {"kind": "feedback", "driver": type(self).__name__, "lr": self.lr}


class ControllerDriver(FeedbackDriver):
    """An adaptive cyclr controller (e.g. :func:`cyclr.adaptive`) as a run driver: each update's
    loss goes into the controller's state, whose LR (and mirrored momentum) the next update uses."""

    def __init__(self, controller: Any, momentum: tuple[float, float] | None = None) -> None:
        from ..controllers import controller_from_config

        self.controller = controller_from_config(controller)
        self.state = self.controller.init()
        lr, level = self.controller.values(self.state)
        super().__init__(float(lr))
        self.momentum_range = momentum
        self.momentum = self._momentum(level)

    def _momentum(self, level: float) -> float | None:
        if self.momentum_range is None:
            return None
        low, high = self.momentum_range
        return high - (high - low) * float(level)

    def _start(self, knobs: Knobs) -> None:
        super()._start(knobs)
        if self.momentum is not None:
            knobs.set_momentum(self.momentum)

    def update(self, loss: float) -> tuple[float, float | None]:
        self.state = {k: float(v) for k, v in self.controller.update(self.state, loss).items()}
        lr, level = self.controller.values(self.state)
        return float(lr), self._momentum(level)

    def to_config(self) -> dict[str, Any]:
        state = {k: (v if math.isfinite(v) else str(v)) for k, v in self.state.items()}
        return {**super().to_config(), "controller": self.controller.to_config(), "final_state": state}
