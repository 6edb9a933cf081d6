"""``cyclr bench``: plan the runs (task x optimizer x strategy x seed), run them (in parallel
processes if asked), store each one as it finishes, and write the report.

Every strategy of a seed starts from the same initialisation and sees the same batches, on the
same budget; runs that a resumed bench already finished are skipped.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .strategies import STRATEGIES, Context, Variant, get_strategies
from .tasks import TASKS, Task, TaskData, get_task
from .train import OPTIMIZERS

__all__ = ["BenchConfig", "BenchOutcome", "RunSpec", "execute", "plan_runs", "run_bench"]


@dataclass(frozen=True)
class RunSpec:
    """One run: everything that decides its numbers (and so its key in the store)."""

    task: str
    optimizer: str
    strategy: str
    variant: str
    seed: int
    epochs: int
    batch_size: int
    train_subset: int | None = None
    lr: float | None = None

    @property
    def key(self) -> str:
        subset = f" n={self.train_subset}" if self.train_subset else ""
        return (
            f"{self.task} {self.optimizer} {self.variant} seed={self.seed} "
            f"epochs={self.epochs} bs={self.batch_size}{subset}"
        )


@dataclass
class BenchConfig:
    """The settings of one ``cyclr bench``. ``strategies``, ``optimizers`` and ``seeds`` left as
    ``None`` take each task's own defaults (``Task.strategies``, ``Task.optimizers``, ``Task.seeds``)."""

    tasks: list[str] = field(default_factory=lambda: ["digits"])
    strategies: list[str] | None = None
    optimizers: list[str] | None = None
    seeds: int | None = None
    epochs: int | None = None
    workers: int = 1
    out: Path = Path("cyclr-bench")
    resume: bool = False
    train_subset: int | None = None
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for name in self.tasks:
            get_task(name) if name in TASKS else _bad("task", name, sorted(TASKS))
        if self.strategies is not None:
            get_strategies(self.strategies)
        for opt in self.optimizers or ():
            if opt not in OPTIMIZERS:
                _bad("optimizer", opt, list(OPTIMIZERS))
        if self.optimizers is not None and not self.optimizers:
            raise ValueError(f"optimizers must name at least one of {', '.join(OPTIMIZERS)}; got none.")
        if self.seeds is not None:
            _positive("seeds", self.seeds)
        _positive("workers", self.workers)
        if self.epochs is not None:
            _positive("epochs", self.epochs)
        if self.train_subset is not None:
            _positive("train_subset", self.train_subset)
        self.out = Path(self.out)

    def command_line(self) -> str:
        """The ``cyclr bench`` command that runs this configuration."""
        parts = ["cyclr bench", "--task " + ",".join(self.tasks)]
        if self.strategies is not None:
            parts.append("--strategies " + ",".join(self.strategies))
        if self.optimizers is not None:
            parts.append("--optimizers " + ",".join(self.optimizers))
        for flag, value in (("seeds", self.seeds), ("epochs", self.epochs), ("train-subset", self.train_subset)):
            if value is not None:
                parts.append(f"--{flag} {value}")
        if self.workers != 1:
            parts.append(f"--workers {self.workers}")
        parts.append(f"--out {self.out}")
        return " ".join(parts) + (" --resume" if self.resume else "")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def _bad(what: str, value: str, valid: Sequence[str]) -> None:
    raise ValueError(f"unknown {what} {value!r}; valid {what}s: {', '.join(valid)}.")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")


def plan_runs(config: BenchConfig) -> list[RunSpec]:
    """Every run of the bench, without duplicates (a default LR that is also a grid point is one
    run). Strategies a task's framework cannot run (the torch-only peer on a Keras task) are left
    out. Ordered seed-major, so a bench stopped early has whole seeds."""
    specs: dict[str, RunSpec] = {}
    tasks = [get_task(name) for name in config.tasks]
    for seed in range(max(config.seeds or t.seeds for t in tasks)):
        for task in tasks:
            if seed >= (config.seeds or task.seeds):
                continue
            epochs = config.epochs or task.epochs
            strategies = get_strategies(config.strategies or (list(task.strategies) if task.strategies else None))
            for opt in config.optimizers or task.optimizers:
                for strategy in strategies:
                    if task.framework not in strategy.frameworks:
                        continue
                    for v in strategy.variants(task, opt):
                        spec = RunSpec(
                            task.name, opt, v.strategy, v.key, seed, epochs, task.batch_size, config.train_subset, v.lr
                        )
                        specs.setdefault(spec.key, spec)
    return list(specs.values())


# ---------------------------------------------------------------------- one run (any process)
_DATA: dict[tuple[str, int | None], tuple[Task, TaskData]] = {}


def _task_data(name: str, subset: int | None, data_dir: str | None) -> tuple[Task, TaskData]:
    if (name, subset) not in _DATA:
        task = get_task(name)
        _DATA[(name, subset)] = (task, task.load(data_dir).subset(subset))
    return _DATA[(name, subset)]


def execute(spec: RunSpec, data_dir: str | None = None) -> dict[str, Any]:
    """Run one spec and return its record (``status`` 'done' or 'failed' with the traceback)."""
    record: dict[str, Any] = {**asdict(spec), "key": spec.key}
    t0 = time.perf_counter()
    try:
        task, data = _task_data(spec.task, spec.train_subset, data_dir)
        ctx = Context(
            task,
            data,
            spec.optimizer,
            spec.epochs,
            task.steps_per_epoch(data, spec.batch_size),
            spec.seed,
            spec.batch_size,
        )
        plan = STRATEGIES[spec.strategy].build(ctx, Variant(spec.strategy, spec.variant, spec.variant, spec.lr))
        result = task.run(
            data, plan, optimizer=spec.optimizer, epochs=spec.epochs, seed=spec.seed, batch_size=spec.batch_size
        )
        record.update(
            status="done",
            result=result.to_dict(),
            schedule=plan.schedule.to_config() if plan.schedule is not None else None,
            momentum=list(plan.momentum) if plan.momentum else None,
            peer_max_lr=plan.peer_max_lr,
            search_steps=plan.search_steps,
            search_seconds=plan.search_seconds,
            details=plan.details,
            steps_per_epoch=ctx.steps_per_epoch,
            metric=task.metric,
            higher_is_better=task.higher_is_better,
            target=task.target,
            domain=task.domain,
            step_unit=task.step_unit,
            baselines=task.baselines(data),
        )
    except Exception as err:  # a failed run is stored as failed, rerun on --resume, and the bench goes on
        record.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    record["wall_seconds"] = time.perf_counter() - t0
    record["threads"] = torch.get_num_threads()  # parallel workers run with fewer than the main process
    return record


def _environment() -> dict[str, Any]:
    import platform

    import torch

    from .. import __version__

    return {
        "cyclr": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def _worker_init(threads: int, parent: int) -> None:
    """Set-up of a parallel worker: its share of the cores; Ctrl-C left to the parent (which
    stops the workers itself); and a watchdog that ends the worker when the parent dies, so a
    ``kill -9`` of ``cyclr bench`` never leaves workers behind."""
    import signal
    import threading

    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            if os.getppid() != parent:  # reparented: the bench is gone
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="cyclr-parent-watch", daemon=True).start()


# ---------------------------------------------------------------------- the bench
Listener = Callable[[str, Any], None]


@dataclass
class BenchOutcome:
    """What a bench did: runs planned, skipped (already done), finished and failed, and the
    report it wrote (``None`` when no run finished)."""

    out: Path
    planned: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    report: Path | None = None


def run_bench(config: BenchConfig, listener: Listener | None = None) -> BenchOutcome:
    """Run (or resume) a bench and write its report.

    ``listener(event, payload)`` hears ``('plan', (todo, skipped))``, ``('start', spec)`` and
    ``('done', record)``. Ctrl-C stops it (parallel workers too, within a second); every run
    finished so far is already stored. The ``--out`` folder is locked while the bench runs: a
    second bench there is refused (:class:`~cyclr.bench.store.StoreError`).
    """
    from .report import write_report
    from .store import OutLock, Store

    notify = listener or (lambda event, payload: None)
    specs = plan_runs(config)
    outcome = BenchOutcome(config.out, planned=len(specs))
    for name in config.tasks:  # load (download, pretrain) once, before the store or any worker
        _task_data(name, config.train_subset, config.data_dir)  # a missing data set stops here
    with OutLock(config.out):
        store = Store(config.out) if config.resume else Store.fresh(config.out)[0]
        with store:
            store.set_meta("config", config.to_dict())
            # a resumed bench may add tasks: the report covers the earlier plan and this one
            earlier = list(store.meta("plan", [])) if config.resume else []
            store.set_meta("plan", earlier + [s.key for s in specs if s.key not in set(earlier)])
            commands = list(store.meta("commands", [])) if config.resume else []
            store.set_meta("commands", [*commands, config.command_line()])
            store.set_meta("environment", _environment())
            done = store.done_keys()
            todo = [s for s in specs if s.key not in done]
            outcome.skipped = len(specs) - len(todo)
            notify("plan", (todo, outcome.skipped))

            def finished(record: dict[str, Any]) -> None:
                record["workers"] = config.workers  # results may differ in the last bits with the thread count
                store.put(record)
                if record["status"] == "done":
                    outcome.done += 1
                else:
                    outcome.failed += 1
                notify("done", record)

            try:
                if config.workers == 1:
                    for spec in todo:
                        notify("start", spec)
                        finished(execute(spec, config.data_dir))
                else:
                    _run_parallel(config, todo, finished, notify)
            finally:
                outcome.report = write_report(store, config.out)
    return outcome


def _run_parallel(
    config: BenchConfig, todo: list[RunSpec], finished: Callable[[dict[str, Any]], None], notify: Listener
) -> None:
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(
        config.workers, mp_context=ctx, initializer=_worker_init, initargs=(threads, os.getpid())
    )
    try:
        futures = {pool.submit(execute, spec, config.data_dir): spec for spec in todo}
        for spec in todo[: config.workers]:
            notify("start", spec)
        started = config.workers
        for future in cf.as_completed(futures):
            finished(future.result())
            if started < len(todo):
                notify("start", todo[started])
                started += 1
    except BaseException:
        # Ctrl-C or an error: stop the workers now (not after their current runs), keep what is stored
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.terminate()
        for proc in processes:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        raise
    pool.shutdown(wait=True)
