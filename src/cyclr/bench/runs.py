"""One run, in any process: the runners, a spec described from the registries, the task's data
(loaded once per process) and :func:`execute`, which runs a spec and returns its record as plain
data. The local pool, the Optuna workers and ``cyclr tune`` all run specs through here."""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import replace
from typing import Any

import torch

from .keras_runner import KerasRunner
from .records import RunRecord, RunSpec, TaskInfo
from .rl import EpisodeRunner
from .strategies import STRATEGIES, Context, Variant
from .tasks import get_task
from .train import TorchRunner

__all__ = ["RUNNERS", "describe", "execute", "runner_for"]

#: the runners, by the name a task gives in ``Task.runner``
RUNNERS: dict[str, Any] = {"torch": TorchRunner(), "keras": KerasRunner(), "rl": EpisodeRunner()}


def runner_for(task: Any) -> Any:
    """The runner that trains ``task``."""
    if task.runner not in RUNNERS:
        raise ValueError(f"task {task.name!r}: unknown runner {task.runner!r}; valid runners: {', '.join(RUNNERS)}.")
    return RUNNERS[task.runner]


def _rank(name: str) -> int:
    names = list(dict.fromkeys(s.name for s in STRATEGIES.values()))
    return names.index(name) if name in names else len(names)


def describe(spec: RunSpec, task: Any, stored: dict[str, Any] | None = None) -> RunSpec:
    """``spec`` with what the report shows filled in from the task and strategy registries:
    label, family, framework-default flag, reference LR, rank and the task's facts. Fields
    already set are kept; for a record ``stored`` by an earlier cyclr, the task's facts it holds
    (metric, direction, target) are kept as stored and only the missing ones are filled in."""
    strategy = STRATEGIES.get(spec.strategy)
    family = spec.family or (strategy.family if strategy else "")
    default = spec.framework_default
    label = spec.label
    if not label and strategy is not None:  # planned before labels were recorded: the variant's own
        variant = next((v for v in strategy.variants(task, spec.optimizer) if v.key == spec.variant), None)
        default = variant.framework_default if variant is not None else default
        label = variant.label if variant is not None else ""
    label = label or (f"{spec.strategy} {spec.lr:.3g}" if spec.lr is not None else spec.strategy)
    info = spec.info or TaskInfo.of(task)
    if stored is not None:
        kept = {
            f: stored[f]
            for f in ("metric", "higher_is_better", "target", "domain", "step_unit")
            if stored.get(f) is not None
        }
        info = replace(TaskInfo.of(task), **kept)
    return replace(
        spec,
        label=label,
        family=family,
        framework_default=default,
        reference_lr=spec.reference_lr if spec.reference_lr is not None else task.default_lr.get(spec.optimizer),
        rank=spec.rank or _rank(spec.strategy),
        info=info,
    )


# ---------------------------------------------------------------------- one run (any process)
_DATA: dict[tuple[str, int | None], tuple[Any, Any]] = {}


def _task_data(name: str, subset: int | None, data_dir: str | None) -> tuple[Any, Any]:
    if (name, subset) not in _DATA:
        task = get_task(name)
        _DATA[(name, subset)] = (task, task.dataset(data_dir, subset))
    return _DATA[(name, subset)]


def execute(spec: RunSpec, data_dir: str | None = None) -> dict[str, Any]:
    """Run one spec and return its record as plain data (``status`` 'done', or 'failed' with
    the error and traceback)."""
    record = RunRecord(spec, status="failed")
    t0 = time.perf_counter()
    try:
        task, data = _task_data(spec.task, spec.train_subset, data_dir)
        record.spec = spec = describe(spec, task)
        runner = runner_for(task)
        strategy = STRATEGIES[spec.strategy]
        if runner.name not in strategy.runners:
            raise ValueError(
                f"strategy {spec.strategy!r} cannot drive task {task.name!r} (its runner is {runner.name!r}; "
                f"{spec.strategy!r} runs on: {', '.join(strategy.runners)})."
            )
        ctx = Context(
            task,
            data,
            spec.optimizer,
            spec.epochs,
            task.steps_per_epoch(data, spec.batch_size),
            spec.seed,
            spec.batch_size,
            runner,
        )
        plan = strategy.build(ctx, Variant(spec.strategy, spec.variant, spec.variant, spec.lr))
        result = runner.run(task, data, plan.driver, optimizer=spec.optimizer, epochs=spec.epochs, seed=spec.seed)
        record = RunRecord(
            spec,
            status="done",
            result=result,
            driver=plan.driver.to_config(),
            search_steps=plan.search_steps,
            search_seconds=plan.search_seconds,
            details=plan.details,
            steps_per_epoch=ctx.steps_per_epoch,
            baselines=task.baselines(data),
        )
    except Exception as err:  # a failed run is stored as failed, rerun on --resume, and the bench goes on
        record.error = f"{type(err).__name__}: {err}"
        record.traceback = traceback.format_exc()
    record.wall_seconds = time.perf_counter() - t0
    record.threads = torch.get_num_threads()  # parallel workers run with fewer than the main process
    record.environment = _environment()
    return record.to_dict()


def _environment() -> dict[str, Any]:
    import platform

    from .. import __version__

    return {
        "cyclr": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
