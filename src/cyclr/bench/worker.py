"""Workers that pull runs from an Optuna study until it is done, and the engine that starts them.

A study is a queue of trials. A bench enqueues one waiting trial per run (its key and spec in the
user attributes); a search (``cyclr tune``) asks Optuna's sampler for new trials until its budget is
spent. ``cyclr worker --storage URL --study NAME`` runs :func:`run_worker` on any machine that
reaches the storage; :class:`OptunaEngine` starts such workers as local processes for
``cyclr bench --storage`` and ``cyclr tune``.

Guarantees (tested with real processes against PostgreSQL and the journal file):

- a waiting trial is taken by one worker only (Optuna's state change WAITING -> RUNNING is atomic);
- a run key is completed once: a worker that takes a trial whose key is already complete, or
  running elsewhere, marks it a duplicate (pruned) without running it;
- a worker beats while it runs; a killed worker's trial is failed as stale by
  :func:`optuna.storages.fail_stale_trials` (called by every worker before each pull) and Optuna's
  retry callback puts a copy back in the queue, run by the next free worker;
- a worker told to stop (Ctrl-C, SIGTERM) fails its trial and puts it back at once.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .records import RunSpec
from .storage import (
    DUPLICATE,
    ERROR,
    HEARTBEAT,
    KEY,
    MAX_RETRY,
    RECORD,
    OptunaStore,
    objective,
    trial_record,
)

__all__ = ["OptunaEngine", "WorkerStats", "enqueue_runs", "prepare_bench", "run_worker"]

SPEC = "spec"
#: the study user attribute that says what a study is (kind bench or tune) and how to run it
STUDY_META = "cyclr"
OVER_BUDGET = "cyclr:over_budget"


@dataclass
class WorkerStats:
    """What one worker did."""

    done: int = 0
    failed: int = 0
    pruned: int = 0
    duplicates: int = 0
    lost: int = 0
    keys: list[str] = field(default_factory=list)


def spec_data(spec: RunSpec) -> dict[str, Any]:
    d = asdict(spec)
    d["info"] = asdict(spec.info) if spec.info is not None else None
    return d


def spec_from_data(d: dict[str, Any]) -> RunSpec:
    from .records import TaskInfo

    info = d.get("info")
    return RunSpec(**{**d, "info": TaskInfo(**info) if info else None})


def enqueue_runs(store: OptunaStore, specs: Sequence[RunSpec]) -> int:
    """Queue the runs whose keys are neither complete, nor waiting, nor running; returns how
    many were queued."""
    from optuna.trial import TrialState

    busy = {
        t.user_attrs.get(KEY)
        for t in store.trials((TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING))
        if not t.system_attrs.get(DUPLICATE)
    }
    n = 0
    for spec in specs:
        if spec.key in busy:
            continue
        store.study.enqueue_trial({}, user_attrs={KEY: spec.key, SPEC: spec_data(spec)}, skip_if_exists=False)
        busy.add(spec.key)
        n += 1
    return n


def prepare_bench(store: OptunaStore, todo: Sequence[RunSpec], plugins: Sequence[str] = ()) -> int:
    """Mark a study as a bench's (with the plugins its workers load) and queue its runs;
    returns how many were queued. A search's study is refused."""
    meta = dict(store.meta(STUDY_META) or {})
    if meta.get("kind", "bench") != "bench":
        raise ValueError(f"study {store.name!r} is a {meta['kind']} study, not a bench's; choose another --study.")
    store.set_meta(STUDY_META, {**meta, "kind": "bench", "plugins": list(plugins)})
    return enqueue_runs(store, todo)


class _Heartbeat:
    """Beats for one trial every ``interval`` seconds in a thread; a storage error (the trial
    was failed as stale meanwhile, the server went away for a moment) is remembered, not raised."""

    def __init__(self, storage: Any, trial_id: int, interval: float) -> None:
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.errors = 0
        self.thread = threading.Thread(target=self._beat, name="cyclr-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:
                self.errors += 1
            if self.stop.wait(self.interval):
                return

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _pop_waiting(study: Any) -> tuple[Any, set[str]] | None:
    """Take one waiting trial (WAITING -> RUNNING is atomic in the storage): the trial as it was
    when taken, and the run keys complete or running elsewhere at that moment (one read of the
    study for both: finished trials come from Optuna's cache); ``None`` when none is waiting."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    busy = {
        t.user_attrs.get(KEY)
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.RUNNING) and not t.system_attrs.get(DUPLICATE)
    }
    for t in trials:
        if t.state != TrialState.WAITING:
            continue
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                return t, busy
        except UpdateFinishedTrialError:
            continue
    return None


def _finish(study: Any, trial_id: int, record: dict[str, Any], maximize: bool) -> str:
    """Store a run's record in its trial and finish the trial: COMPLETE with the final metric,
    PRUNED, or FAIL with the error. Returns the state, or 'lost' when the trial was finished
    meanwhile (failed as stale: its retry is, or was, run by another worker)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, RECORD, record)
        if record["status"] != "done":
            storage.set_trial_system_attr(trial_id, ERROR, record.get("error") or "failed")
            storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
            return "failed"
        if (record.get("result") or {}).get("pruned"):
            storage.set_trial_state_values(trial_id, state=TrialState.PRUNED)
            return "pruned"
        storage.set_trial_state_values(trial_id, state=TrialState.COMPLETE, values=[objective(record, maximize)])
        return "done"
    except UpdateFinishedTrialError:
        return "lost"
    except RuntimeError as err:  # optuna: "trial ... has already finished" (a race seen on PostgreSQL, #5582)
        if "finished" in str(err):
            return "lost"
        raise


def _requeue(study: Any, trial_id: int) -> None:
    """Fail a trial this worker cannot finish and put a copy back in the queue."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    storage = study._storage
    try:
        if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, storage.get_trial(trial_id))
    except UpdateFinishedTrialError:
        pass


Hook = Callable[[str, Any], None]


def run_worker(
    url: str,
    study_name: str,
    *,
    data_dir: str | None = None,
    heartbeat: tuple[int, int] = HEARTBEAT,
    max_runs: int | None = None,
    poll: float = 0.25,
    wait: float = 0.0,
    listener: Hook | None = None,
) -> WorkerStats:
    """Pull runs from a study and run them until it is done (no waiting trial, none running
    elsewhere that might yet be retried, and for a search its budget spent) or ``max_runs`` ran.
    ``wait``: seconds to wait for the study to appear, and for runs to be queued while it has
    none (workers started before the bench or search that feeds them).

    ``listener(event, payload)`` hears ``('idle', study_name)`` when it starts waiting,
    ``('start', spec)`` and ``('done', record)``.
    """
    from optuna.storages import fail_stale_trials
    from optuna.trial import Trial, TrialState

    from .recorder import reporting
    from .runs import execute
    from .store import StoreError

    notify = listener or (lambda event, payload: None)
    give_up = time.monotonic() + wait
    while True:
        try:
            store = OptunaStore(url, study_name, create=False, heartbeat=heartbeat)
            break
        except StoreError as err:
            if not str(err).startswith("no study") or time.monotonic() >= give_up:
                raise
            time.sleep(poll)
    stats = WorkerStats()
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()

    def on_term(signum: int, frame: Any) -> None:  # SIGTERM: as Ctrl-C, the run goes back to the queue
        raise KeyboardInterrupt

    if in_main:
        signal.signal(signal.SIGTERM, on_term)
    try:
        meta = store.meta(STUDY_META)
        if not isinstance(meta, dict) or meta.get("kind") not in ("bench", "tune"):
            raise ValueError(
                f"study {study_name!r} was not made by cyclr bench or cyclr tune (no '{STUDY_META}' settings); "
                "a worker only runs cyclr's studies."
            )
        _load_plugins(meta.get("plugins", ()))
        search = None
        if meta["kind"] == "tune":
            from .search import Search

            search = Search.from_meta(meta, store, data_dir)
            study = search.study
        else:
            study = store.study
        storage = study._storage
        idle_since: float | None = None
        checked = -math.inf
        while max_runs is None or stats.done + stats.failed + stats.pruned < max_runs:
            if time.monotonic() - checked >= heartbeat[0]:  # a stale trial cannot appear faster than that
                fail_stale_trials(study)
                checked = time.monotonic()
            popped = _pop_waiting(study)
            frozen, busy = popped if popped is not None else (None, set())
            if frozen is None and search is not None and search.wants_more():
                frozen = storage.get_trial(study.ask()._trial_id)
            if frozen is None:
                if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    time.sleep(poll)  # a run elsewhere may yet fail and come back
                    continue
                if idle_since is None:
                    idle_since = time.monotonic()
                    notify("idle", study_name)
                if time.monotonic() - idle_since < wait:
                    time.sleep(poll)
                    continue
                break
            idle_since = None
            trial_id, trial = frozen._trial_id, None
            try:
                if search is not None:
                    if search.over_budget(frozen):
                        storage.set_trial_system_attr(trial_id, OVER_BUDGET, True)
                        storage.set_trial_state_values(trial_id, state=TrialState.PRUNED)
                        continue
                    trial = Trial(study, trial_id)
                    spec = search.spec(trial)
                    storage.set_trial_user_attr(trial_id, KEY, spec.key)
                else:
                    spec = spec_from_data(frozen.user_attrs[SPEC])
                    if spec.key in busy:  # complete, or running elsewhere: queued twice (two benches raced)
                        storage.set_trial_system_attr(trial_id, DUPLICATE, True)
                        storage.set_trial_state_values(trial_id, state=TrialState.PRUNED)
                        stats.duplicates += 1
                        continue
                notify("start", spec)
                interval = heartbeat[0]
                with _Heartbeat(storage, trial_id, interval):
                    if search is not None and search.prunes:
                        with reporting(search.reporter(trial)):
                            record = execute(spec, data_dir)
                    else:
                        record = execute(spec, data_dir)
                record["trial"] = frozen.number
                record["worker"] = f"{os.uname().nodename}:{os.getpid()}"
                state = _finish(study, trial_id, record, store.maximize)
            except KeyboardInterrupt:
                _requeue(study, trial_id)
                raise
            setattr(stats, state, getattr(stats, state) + 1)
            if state == "done":
                stats.keys.append(spec.key)
            notify("done", record)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        store.close()
    return stats


def _load_plugins(references: Sequence[str]) -> None:
    from .strategies import strategy_from_reference
    from .tasks import task_from_reference

    for reference in references:
        try:
            task_from_reference(reference)
        except ValueError:
            strategy_from_reference(reference)


def _worker_process(url: str, study: str, data_dir: str | None, heartbeat: tuple[int, int], threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine stops its workers itself
    with contextlib.suppress(KeyboardInterrupt):
        run_worker(url, study, data_dir=data_dir, heartbeat=heartbeat)


@dataclass
class OptunaEngine:
    """Runs a bench's specs as trials of an Optuna study: queues them, starts ``workers`` local
    worker processes (``cyclr worker`` on other machines may join), and hands each record to the
    harness as the storage reports it finished. ``workers=0`` starts none: the runs wait for
    workers started elsewhere."""

    store: OptunaStore
    workers: int = 1
    heartbeat: tuple[int, int] = HEARTBEAT
    plugins: Sequence[str] = ()
    poll: float = 1.0

    def run(
        self,
        todo: list[RunSpec],
        data_dir: str | None,
        finished: Callable[[dict[str, Any]], None],
        notify: Callable[[str, Any], None],
    ) -> None:
        from optuna.trial import TrialState

        prepare_bench(self.store, todo, self.plugins)
        wanted = {s.key: s for s in todo}
        procs = self.start_workers(data_dir)
        started: set[str] = set()
        reported: set[str] = set()
        try:
            while True:
                alive = any(p.is_alive() for p in procs)
                for t in self.store.trials():
                    key = t.user_attrs.get(KEY)
                    if key not in wanted or key in reported or t.system_attrs.get(DUPLICATE):
                        continue
                    if t.state == TrialState.RUNNING and key not in started:
                        started.add(key)
                        notify("start", wanted[key])
                    record = trial_record(t)
                    final = t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and ERROR in t.system_attrs)
                    if record is not None and final:
                        reported.add(key)
                        finished(record)
                if len(reported) == len(wanted):
                    break
                if procs and not alive:
                    left = [t for t in self.store.trials((TrialState.WAITING, TrialState.RUNNING))]
                    if not left:
                        break
                    procs = self.start_workers(data_dir)  # a run came back (a stale retry) after they left
                time.sleep(self.poll)
        except BaseException:
            self.stop(procs)
            raise
        for p in procs:
            p.join()

    def start_workers(self, data_dir: str | None) -> list[Any]:
        ctx = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // max(1, self.workers))
        procs = [
            ctx.Process(
                target=_worker_process,
                args=(self.store.url, self.store.name, data_dir, self.heartbeat, threads),
                daemon=False,
            )
            for _ in range(self.workers)
        ]
        for p in procs:
            p.start()
        return procs

    @staticmethod
    def stop(procs: Sequence[Any]) -> None:
        """SIGTERM: each worker fails its trial and puts it back; SIGKILL after 10 s."""
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
