"""A schedule search as a worker sees it: the study's sampler and pruner, its budget, and how a
trial becomes a run (a schedule sampled from a :class:`~cyclr.space.SearchSpace`). ``cyclr tune``
(:mod:`.tune`) creates such studies; workers (:mod:`.worker`) run their trials."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..space import SearchSpace
from .records import RunSpec
from .storage import DUPLICATE, ERROR, OptunaStore

__all__ = ["PRUNERS", "SAMPLERS", "Search", "counts_toward_budget", "grid_points"]

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("asha", "hyperband", "median", "none")


def grid_points(space: SearchSpace, points: int, optimizers: list[str]) -> list[dict[str, Any]]:
    """Every combination of ``points`` values per searched parameter (log-spaced where the
    parameter is), family by family: the grid sampler's trials, as Optuna params."""
    import itertools

    def values(p: Any) -> list[Any]:
        if p.choices is not None:
            return list(p.choices)
        if p.fixed:
            return []
        lo, hi = float(p.low), float(p.high)
        xs = [
            math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * k / (points - 1))
            if p.log
            else lo + (hi - lo) * k / (points - 1)
            for k in range(points)
        ]
        return sorted({round(x) for x in xs}) if p.integer else xs

    out = []
    for family, params in space.families.items():
        axes = {f"{family}.{n}": values(p) for n, p in params.items() if values(p)}
        if space.warmup_pct is not None and not space.warmup_pct.fixed:
            axes["warmup_pct"] = values(space.warmup_pct)
        if len(optimizers) > 1:
            axes["optimizer"] = list(optimizers)
        for combo in itertools.product(*axes.values()):
            point = dict(zip(axes, combo, strict=True))
            if len(space.families) > 1:
                point["family"] = family
            out.append(point)
    return out


def _sampler(meta: dict[str, Any], parallel: bool) -> Any:
    import optuna

    seed = int(meta.get("seed", 0)) + (os.getpid() if parallel else 0)
    if meta["sampler"] == "tpe":
        startup = max(3, min(10, int(meta["trials"]) // 3))
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, group=True, constant_liar=True
        )
    return optuna.samplers.RandomSampler(seed=seed)  # grid: its points are queued trials


def _pruner(meta: dict[str, Any], total_steps: int) -> Any:
    import optuna

    kind = meta["pruner"]
    if kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, total_steps // 4), reduction_factor=3)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, total_steps // 9), max_resource=total_steps)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=total_steps // 4)
    return optuna.pruners.NopPruner()


def counts_toward_budget(t: Any) -> bool:
    """Trials a search's budget counts: all but duplicates, trials refused over budget, and
    trials failed as stale (their retry counts instead)."""
    from optuna.trial import TrialState

    if t.system_attrs.get(DUPLICATE) or t.system_attrs.get("cyclr:over_budget"):
        return False
    return bool(not (t.state == TrialState.FAIL and ERROR not in t.system_attrs))


@dataclass
class Search:
    """A search as a worker sees it: the study with its sampler and pruner, and how a trial
    becomes a run."""

    study: Any
    meta: dict[str, Any]
    data_dir: str | None = None

    @classmethod
    def from_meta(cls, meta: dict[str, Any], store: OptunaStore, data_dir: str | None = None) -> Search:
        import optuna

        task, data = _data(meta, data_dir)
        total = task.steps_per_epoch(data, task.batch_size) * int(meta["epochs"])
        study = optuna.load_study(
            study_name=store.name,
            storage=store.storage,
            sampler=_sampler(meta, parallel=bool(meta.get("parallel"))),
            pruner=_pruner(meta, total),
        )
        return cls(study, meta, data_dir)

    @property
    def prunes(self) -> bool:
        return bool(self.meta["pruner"] != "none")

    def _counted(self) -> list[Any]:
        return [t for t in self.study.get_trials(deepcopy=False) if counts_toward_budget(t)]

    def wants_more(self) -> bool:
        return len(self._counted()) < int(self.meta["trials"])

    def over_budget(self, frozen: Any) -> bool:
        """A new trial beyond the budget (two workers asked at once): it is not run."""
        if "failed_trial" in frozen.system_attrs:
            return False  # a retry replaces a counted trial
        before = [t for t in self._counted() if t.number < frozen.number]
        return len(before) >= int(self.meta["trials"])

    def spec(self, trial: Any) -> RunSpec:
        """The run a trial asks for: its optimizer and schedule, sampled from the space."""
        from .runs import describe

        task, data = _data(self.meta, self.data_dir)
        optimizers = list(self.meta["optimizers"])
        opt = optimizers[0] if len(optimizers) == 1 else trial.suggest_categorical("optimizer", optimizers)
        epochs = int(self.meta["epochs"])
        per_epoch = task.steps_per_epoch(data, task.batch_size)
        space = SearchSpace.from_data(self.meta["space"])
        schedule = space.sample(trial, per_epoch, epochs)
        params = trial.params
        family = params.get("family", next(iter(space.families)))
        spec = RunSpec(
            task.name,
            opt,
            "tuned",
            json.dumps(schedule.to_config(), sort_keys=True),
            int(self.meta["seed"]),
            epochs,
            task.batch_size,
            self.meta.get("train_subset"),
            label=f"trial {trial.number}: {family}",
            family="decay" if family == "cosine" else "cyclical",
        )
        return describe(spec, task)

    def reporter(self, trial: Any) -> Callable[[int, float], bool]:
        def report(step: int, metric: float) -> bool:
            trial.report(metric, step)
            return bool(trial.should_prune())

        return report


def _data(meta: dict[str, Any], data_dir: str | None) -> tuple[Any, Any]:
    from .runs import _task_data
    from .tasks import get_task

    for reference in meta.get("plugins", ()):
        get_task(reference)
    return _task_data(meta["task_name"], meta.get("train_subset"), data_dir)
