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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from ._plugins import is_reference
from .records import RunRecord, RunSpec
from .report import write_report
from .report_plots import plot_tables
from .runs import _DATA, RUNNERS, _task_data, describe, execute, runner_for  # noqa: F401 (re-exported)
from .store import OutLock, RunStore, Store
from .strategies import get_strategies, strategy_from_reference
from .tasks import OPTIMIZERS, TASKS, get_task, task_from_reference

__all__ = [
    "RUNNERS",
    "BenchConfig",
    "BenchOutcome",
    "Engine",
    "LocalEngine",
    "RunSpec",
    "execute",
    "load_records",
    "plan_runs",
    "run_bench",
    "runner_for",
]


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
    #: an Optuna storage URL (:mod:`.storage`): the runs become trials of ``study``, run by
    #: worker processes (``cyclr worker`` on other machines may join); ``None``: runs.sqlite in --out
    storage: str | None = None
    study: str | None = None

    def __post_init__(self) -> None:
        for name in self.tasks:
            if is_reference(name):
                task_from_reference(name)
            elif name not in TASKS:
                _bad("task", name, [*sorted(TASKS), "path/to/file.py:Class", "module:Class"])
        if self.strategies is not None:
            get_strategies(self.strategies)
        for opt in self.optimizers or ():
            if opt not in OPTIMIZERS:
                _bad("optimizer", opt, list(OPTIMIZERS))
        if self.optimizers is not None and not self.optimizers:
            raise ValueError(f"optimizers must name at least one of {', '.join(OPTIMIZERS)}; got none.")
        if self.seeds is not None:
            _positive("seeds", self.seeds)
        if not (self.storage is not None and self.workers == 0):  # 0: only workers started elsewhere
            _positive("workers", self.workers)
        if self.epochs is not None:
            _positive("epochs", self.epochs)
        if self.train_subset is not None:
            _positive("train_subset", self.train_subset)
        self.out = Path(self.out)
        if self.storage is not None:
            from .storage import check_parallel

            check_parallel(self.storage, self.workers)
            self.study = self.study or "cyclr-bench"
        elif self.study is not None:
            raise ValueError(f"study {self.study!r} needs a storage (--storage URL) to live in.")

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
        if self.storage is not None:
            from .storage import redact

            parts.append(f"--storage {redact(self.storage)} --study {self.study}")
        parts.append(f"--out {self.out}")
        return " ".join(parts) + (" --resume" if self.resume else "")

    @property
    def plugins(self) -> list[str]:
        """The tasks and strategies given as ``file.py:Name`` / ``module:Name`` (a worker process
        loads them before its first run)."""
        return [n for n in [*self.tasks, *(self.strategies or [])] if is_reference(n)]

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
    run). Strategies that cannot drive a task's runner (the torch-only peer on a Keras or RL
    task) are left out. Ordered seed-major, so a bench stopped early has whole seeds."""
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
                    if task.runner not in strategy.runners:
                        continue
                    for v in strategy.variants(task, opt):
                        spec = RunSpec(
                            task.name,
                            opt,
                            strategy.name,
                            v.key,
                            seed,
                            epochs,
                            task.batch_size,
                            config.train_subset,
                            v.lr,
                            label=v.label,
                            family=strategy.family,
                            framework_default=v.framework_default,
                        )
                        specs.setdefault(spec.key, describe(spec, task))
    return list(specs.values())


def load_records(store: RunStore, status: str | None = "done") -> list[RunRecord]:
    """The stored runs as typed records, those stored by an earlier cyclr brought up to date
    from the registries (labels, families, the task's facts); their numbers are kept as stored."""
    out = []
    for d in store.records(status):
        record = RunRecord.from_dict(d)
        if record.spec.task in TASKS and not record.spec.label:
            record.spec = describe(record.spec, TASKS[record.spec.task](), d)
        out.append(record)
    return out


def _worker_init(threads: int, parent: int, plugins: Sequence[str] = ()) -> None:
    """Set-up of a parallel worker: its share of the cores; the user's own tasks and strategies;
    Ctrl-C left to the parent (which stops the workers itself); and a watchdog that ends the
    worker when the parent dies, so a ``kill -9`` of ``cyclr bench`` never leaves workers behind."""
    import signal
    import threading

    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for reference in plugins:
        try:
            task_from_reference(reference)
        except ValueError:
            strategy_from_reference(reference)

    def watch() -> None:
        while True:
            if os.getppid() != parent:  # reparented: the bench is gone
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="cyclr-parent-watch", daemon=True).start()


# ---------------------------------------------------------------------- engines
Listener = Callable[[str, Any], None]
Finished = Callable[[dict[str, Any]], None]


class Engine(Protocol):
    """Runs specs and hands each record to ``finished`` as it completes (in the calling
    process, which stores it at once). ``notify('start', spec)`` as a run starts. On Ctrl-C or an
    error, stops its runs and re-raises; what ``finished`` already got is stored."""

    def run(self, todo: list[RunSpec], data_dir: str | None, finished: Finished, notify: Listener) -> None: ...


@dataclass
class LocalEngine:
    """This machine: runs one after another (``workers=1``) or in a pool of processes, each with
    its share of the cores."""

    workers: int = 1
    plugins: Sequence[str] = ()

    def run(self, todo: list[RunSpec], data_dir: str | None, finished: Finished, notify: Listener) -> None:
        if self.workers == 1:
            for spec in todo:
                notify("start", spec)
                finished(execute(spec, data_dir))
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        ctx = multiprocessing.get_context("spawn")
        pool = cf.ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(threads, os.getpid(), tuple(self.plugins)),
        )
        try:
            futures = {pool.submit(execute, spec, data_dir): spec for spec in todo}
            for spec in todo[: self.workers]:
                notify("start", spec)
            started = self.workers
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


# ---------------------------------------------------------------------- the bench
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


def open_store(config: BenchConfig) -> RunStore:
    """Where the runs are kept. Without ``--storage``: the SQLite store in ``--out``, the
    existing one on ``--resume``, else a fresh one (an existing store is kept under a new name).
    With it: the study, which a bench without ``--resume`` must find empty; on ``--resume`` the
    runs finished in ``--out``'s runs.sqlite by an earlier local bench are copied into it, so a
    bench moves from the local engine to workers without rerunning anything."""
    if config.storage is None:
        return Store(config.out) if config.resume else Store.fresh(config.out)[0]
    from .storage import OptunaStore
    from .store import StoreError

    assert config.study is not None
    first = get_task(config.tasks[0])
    store = OptunaStore(config.storage, config.study, maximize=bool(first.higher_is_better))
    try:
        if not config.resume and store.trials():
            raise StoreError(
                f"study {config.study!r} already holds {len(store.trials())} trials; add --resume to go on "
                "with it, or choose another --study."
            )
        local = config.out / Store.FILENAME
        if config.resume and local.exists():
            with Store(config.out) as old:
                for record in old.records("done"):
                    store.put(record)
                if store.meta("plan") is None and old.meta("plan") is not None:
                    for name in ("plan", "commands"):
                        store.set_meta(name, old.meta(name))
    except BaseException:
        store.close()
        raise
    return store


def engine_for(config: BenchConfig, store: RunStore) -> Engine:
    """The local pool, or with ``--storage`` workers pulling the study's trials."""
    if config.storage is None:
        return LocalEngine(config.workers, config.plugins)
    from .storage import OptunaStore
    from .worker import OptunaEngine

    assert isinstance(store, OptunaStore)
    return OptunaEngine(store, config.workers, plugins=config.plugins)


def run_bench(
    config: BenchConfig,
    listener: Listener | None = None,
    *,
    engine: Engine | None = None,
    store: Callable[[BenchConfig], RunStore] = open_store,
) -> BenchOutcome:
    """Run (or resume) a bench and write its report.

    ``listener(event, payload)`` hears ``('plan', (todo, skipped))``, ``('start', spec)`` and
    ``('done', record)``. ``engine`` runs the specs (default: :class:`LocalEngine` with
    ``config.workers``); ``store(config)`` opens where they are kept (default: SQLite in
    ``--out``). Ctrl-C stops it (parallel workers too, within a second); every run finished so
    far is already stored. The ``--out`` folder is locked while the bench runs: a second bench
    there is refused (:class:`~cyclr.bench.store.StoreError`).
    """
    notify = listener or (lambda event, payload: None)
    specs = plan_runs(config)
    outcome = BenchOutcome(config.out, planned=len(specs))
    for name in config.tasks:  # load (download, pretrain) once, before the store or any worker
        _task_data(get_task(name).name, config.train_subset, config.data_dir)  # a missing data set stops here
    with OutLock(config.out):
        runs = store(config)
        try:
            engine = engine or engine_for(config, runs)
            runs.set_meta("config", config.to_dict())
            # a resumed bench may add tasks: the report covers the earlier plan and this one
            earlier = list(runs.meta("plan", [])) if config.resume else []
            runs.set_meta("plan", earlier + [s.key for s in specs if s.key not in set(earlier)])
            commands = list(runs.meta("commands", [])) if config.resume else []
            runs.set_meta("commands", [*commands, config.command_line()])
            done = runs.done_keys()
            todo = [s for s in specs if s.key not in done]
            outcome.skipped = len(specs) - len(todo)
            notify("plan", (todo, outcome.skipped))

            def finished(record: dict[str, Any]) -> None:
                record["workers"] = config.workers  # results may differ in the last bits with the thread count
                runs.put(record)
                if record["status"] == "done":
                    outcome.done += 1
                else:
                    outcome.failed += 1
                notify("done", record)

            try:
                engine.run(todo, config.data_dir, finished, notify)
            finally:
                outcome.report = write_report(
                    load_records(runs, None), runs.meta("plan"), runs.meta("config", {}), config.out, plot_tables
                )
        finally:
            runs.close()
    return outcome
