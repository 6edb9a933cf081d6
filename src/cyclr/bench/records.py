"""Typed bench records: what a run is (:class:`RunSpec`, with everything the report shows decided
when the run is planned) and what it produced (:class:`RunRecord`). Plain data both ways
(:meth:`RunRecord.to_dict` / :meth:`RunRecord.from_dict`), so a store, an engine in another
process or machine, and the report need nothing but this module."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .recorder import RunResult

__all__ = ["RunRecord", "RunSpec", "TaskInfo"]


@dataclass(frozen=True)
class TaskInfo:
    """The task's facts the report shows, read from the task when the run is planned."""

    name: str
    metric: str = "accuracy"
    #: the metric with the split it is tracked on ("test accuracy", "validation rmse")
    metric_label: str = ""
    units: str = ""
    higher_is_better: bool = True
    target: float = 0.0
    domain: str = "other"
    step_unit: str = "steps"
    description: str = ""
    runner: str = "torch"

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @classmethod
    def of(cls, task: Any) -> TaskInfo:
        return cls(
            name=task.name,
            metric=task.metric,
            metric_label=task.metric_label,
            units=task.units,
            higher_is_better=bool(task.higher_is_better),
            target=float(task.target),
            domain=task.domain,
            step_unit=task.step_unit,
            description=task.description,
            runner=task.runner,
        )


@dataclass(frozen=True)
class RunSpec:
    """One run: the fields up to ``lr`` decide its numbers (and its key in the store); the rest
    is how the report shows it, decided when the run was planned."""

    task: str
    optimizer: str
    strategy: str
    variant: str
    seed: int
    epochs: int
    batch_size: int | None = None
    train_subset: int | None = None
    lr: float | None = None
    label: str = ""
    family: str = ""
    #: the framework's own default LR (a constant run)
    framework_default: bool = False
    #: the task's reference LR for this optimizer (the centre of the hand-set strategies' range)
    reference_lr: float | None = None
    #: the strategy's place in the strategy registry (the report's row order)
    rank: int = 0
    info: TaskInfo | None = None

    @property
    def key(self) -> str:
        subset = f" n={self.train_subset}" if self.train_subset else ""
        batch = f" bs={self.batch_size}" if self.batch_size is not None else ""
        return f"{self.task} {self.optimizer} {self.variant} seed={self.seed} epochs={self.epochs}{batch}{subset}"


_SPEC_FIELDS = tuple(f.name for f in fields(RunSpec) if f.name != "info")


@dataclass
class RunRecord:
    """A run as stored: its spec, its status, its result and how it was driven."""

    spec: RunSpec
    status: str = "done"
    result: RunResult | None = None
    #: the run driver's config (:meth:`~.driver.Driver.to_config`)
    driver: dict[str, Any] | None = None
    search_steps: int = 0
    search_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    steps_per_epoch: int = 0
    baselines: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    threads: int | None = None
    workers: int | None = None
    error: str | None = None
    traceback: str | None = None

    # ------------------------------------------------------------------ shortcuts
    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def info(self) -> TaskInfo:
        return self.spec.info or TaskInfo(self.spec.task)

    @property
    def final(self) -> float:
        return self.result.final if self.result is not None else math.nan

    @property
    def budget(self) -> int:
        """The planned budget in steps (a diverged run stops early)."""
        return self.spec.epochs * self.steps_per_epoch

    # ------------------------------------------------------------------ plain data
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {name: getattr(self.spec, name) for name in _SPEC_FIELDS}
        d["key"] = self.key
        info = self.spec.info
        if info is not None:
            d.update({k: v for k, v in asdict(info).items() if k != "name"})
        d["status"] = self.status
        d["result"] = self.result.to_dict() if self.result is not None else None
        for name in (
            "driver",
            "search_steps",
            "search_seconds",
            "details",
            "steps_per_epoch",
            "baselines",
            "environment",
            "wall_seconds",
            "threads",
            "workers",
            "error",
            "traceback",
        ):
            d[name] = getattr(self, name)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """A record from its plain data, including those stored before the run driver existed
        (``schedule``/``momentum``/``peer_max_lr`` become the driver's config)."""
        info_fields = {f.name for f in fields(TaskInfo)} - {"name"}
        info = None
        if "metric" in d:
            info = TaskInfo(d["task"], **{k: d[k] for k in info_fields if k in d and d[k] is not None})
            if not info.metric_label:
                info = TaskInfo(**{**asdict(info), "metric_label": info.metric})
        spec = RunSpec(**{k: d[k] for k in _SPEC_FIELDS if k in d}, info=info)
        driver = d.get("driver")
        if driver is None and d.get("peer_max_lr") is not None:
            driver = {"kind": "torch", "scheduler": "OneCycleLR", "max_lr": d["peer_max_lr"]}
        elif driver is None and d.get("schedule") is not None:
            driver = {"kind": "schedule", "schedule": d["schedule"], "momentum": d.get("momentum")}
        result = RunResult.from_dict(d["result"]) if d.get("result") is not None else None
        return cls(
            spec=spec,
            status=d.get("status", "done"),
            result=result,
            driver=driver,
            search_steps=int(d.get("search_steps") or 0),
            search_seconds=float(d.get("search_seconds") or 0.0),
            details=dict(d.get("details") or {}),
            steps_per_epoch=int(d.get("steps_per_epoch") or 0),
            baselines=dict(d.get("baselines") or {}),
            environment=dict(d.get("environment") or {}),
            wall_seconds=float(d.get("wall_seconds") or 0.0),
            threads=d.get("threads"),
            workers=d.get("workers"),
            error=d.get("error"),
            traceback=d.get("traceback"),
        )
