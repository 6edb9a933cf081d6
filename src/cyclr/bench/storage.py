"""Runs kept in an Optuna study: the storage shared by ``cyclr bench --storage``, ``cyclr tune``
and ``cyclr worker``, on one process, many processes or many machines.

A storage is named by a URL:

- ``sqlite:///path/to/study.db``: a SQLite file, for one process (Optuna's docs warn against
  sharing it between parallel workers: "database is locked");
- ``journal:///path/to/study.log`` (or ``journal:relative.log``): Optuna's journal file, for many
  processes on one host (appends under a file lock);
- ``postgresql://user:password@host:5432/dbname``: a PostgreSQL server, for many machines
  (through psycopg 3).

Each run is one trial. Its run key and its record (:meth:`~.records.RunRecord.to_dict`, JSON)
are user attributes; its value is the run's final metric. A study's kind and settings (bench
plan, search space, ...) are study user attributes under ``cyclr``.

Workers send heartbeats while they run a trial; a trial whose heartbeat stops (a killed worker,
a lost machine) is failed by :func:`optuna.storages.fail_stale_trials` and put back in the queue
by Optuna's :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`. Optuna implements
heartbeats for its RDB storage; :class:`HeartbeatJournalStorage` adds them to the journal
(a trial system attribute holding the last beat), so both backends fail stale trials through
Optuna's own function.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import StoreError

__all__ = [
    "HEARTBEAT",
    "OptunaStore",
    "StorageURL",
    "check_parallel",
    "open_storage",
    "parse_storage",
]

#: heartbeat interval and grace period, in seconds: a trial without a beat for ``grace`` is stale
HEARTBEAT = (10, 60)
#: how often a stale-failed run is put back in the queue
MAX_RETRY = 3
KEY, RECORD, ERROR, DUPLICATE, BEAT = "key", "record", "cyclr:error", "cyclr:duplicate", "cyclr:heartbeat"
_FORMS = "sqlite:///path.db, journal:///path.log (or journal:relative.log), postgresql://user@host:port/dbname"


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage URL: ``kind`` is sqlite, journal or postgresql; ``target`` the file or
    the SQLAlchemy URL."""

    kind: str
    target: str
    url: str

    def describe(self) -> str:
        if self.kind == "postgresql":
            from sqlalchemy.engine import make_url

            u = make_url(self.target)
            return f"PostgreSQL at {u.host or 'localhost'}:{u.port or 5432}/{u.database or ''}"
        return f"{self.kind} file {self.target}"


def parse_storage(url: str) -> StorageURL:
    """Check a storage URL's form (no connection yet): a clear error names it and the forms
    allowed."""
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"storage URL is {url!r}; allowed: {_FORMS}.")
    url = url.strip()
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return StorageURL("sqlite", url, url)
    if url.startswith("journal:"):
        path = url[len("journal:") :]
        path = path[2:] if path.startswith("//") else path
        if path and not path.endswith("/"):
            return StorageURL("journal", path, url)
    for scheme in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(scheme):
            rest = url[len(scheme) :]
            if "/" not in rest or not rest.split("/", 1)[1].split("?")[0]:
                raise StoreError(f"storage URL {url!r} names no database; allowed: {_FORMS}.")
            return StorageURL("postgresql", "postgresql+psycopg://" + rest, url)
    raise StoreError(f"storage URL {url!r} is not one cyclr can use; allowed: {_FORMS}.")


def check_parallel(url: str, workers: int) -> None:
    """SQLite is for one process: Optuna's docs warn against parallel writers ("database is
    locked", and the enqueue race of optuna #820/#4002). More than one local worker on it is
    refused, naming the storages that serve them."""
    if workers > 1 and parse_storage(url).kind == "sqlite":
        raise StoreError(
            f"storage {url!r} is a SQLite file, which serves one process; for --workers {workers} use "
            "journal:///path.log (processes on one host) or postgresql://user@host/db (many machines)."
        )


def _heartbeat_journal() -> type:
    from optuna.storages import BaseStorage, JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import FrozenTrial, TrialState

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        """Optuna's journal storage with heartbeats: each beat is a trial system attribute
        (``cyclr:heartbeat``, the writer's clock, so one host's workers compare like with like);
        a running trial without a beat for ``grace_period`` seconds (or, before its first beat,
        since it started) is stale."""

        def __init__(
            self,
            backend: Any,
            *,
            heartbeat_interval: int,
            grace_period: int,
            heartbeat_stale_trial_callback: Callable[[Any, FrozenTrial], None] | None = None,
        ) -> None:
            super().__init__(backend)
            self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
            self._stale_callback = heartbeat_stale_trial_callback

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, BEAT, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            stale = []
            for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                last = t.system_attrs.get(BEAT)
                if last is None and t.datetime_start is not None:
                    last = t.datetime_start.timestamp()
                if last is not None and now - float(last) > self.grace_period:
                    stale.append(t._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self.heartbeat_interval

        def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, FrozenTrial], None] | None:
            return self._stale_callback

    assert issubclass(HeartbeatJournalStorage, BaseStorage)
    return HeartbeatJournalStorage


def open_storage(url: str, heartbeat: tuple[int, int] = HEARTBEAT, *, connect_timeout: int = 10) -> Any:
    """The Optuna storage a URL names, with heartbeats (``(interval, grace)`` seconds) and
    stale trials retried up to :data:`MAX_RETRY` times. An unreachable server, a file that is
    not a study, or a missing package is a :class:`~.store.StoreError` naming the storage."""
    parsed = parse_storage(url)
    interval, grace = heartbeat
    if not (isinstance(interval, int) and isinstance(grace, int) and 0 < interval < grace):
        raise StoreError(
            f"heartbeat is {heartbeat!r}; allowed: whole seconds (interval, grace) with 0 < interval < grace."
        )
    try:
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback
    except ImportError:
        raise StoreError("storages need Optuna: pip install 'cyclr[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Optuna warns that heartbeats are meant for Study.optimize: cyclr's workers beat themselves
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    if parsed.kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        path = Path(parsed.target)
        if path.parent and not path.parent.is_dir():
            raise StoreError(f"storage {url!r}: the folder {str(path.parent)!r} does not exist.")
        try:
            backend = JournalFileBackend(str(path))
            cls = _heartbeat_journal()
            return cls(backend, heartbeat_interval=interval, grace_period=grace, heartbeat_stale_trial_callback=retry)
        except (ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StoreError(f"storage {url!r} is not an Optuna journal ({type(err).__name__}: {err}).") from None
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.kind == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError("PostgreSQL storages need psycopg: pip install 'cyclr[tune]'") from None
        # few connections per worker (the server's default is 100 for all of them: optuna #1347)
        engine_kwargs.update(pool_size=2, max_overflow=2, connect_args={"connect_timeout": connect_timeout})
    else:
        path = Path(parsed.target[len("sqlite:///") :])
        if not path.parent.is_dir():
            raise StoreError(f"storage {url!r}: the folder {str(path.parent)!r} does not exist.")
        engine_kwargs["connect_args"] = {"timeout": 30}
    try:
        return optuna.storages.RDBStorage(
            parsed.target,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=interval,
            grace_period=grace,
            heartbeat_stale_trial_callback=retry,
        )
    except Exception as err:  # sqlalchemy's OperationalError and friends: say which storage, and why
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise StoreError(f"cannot use the storage {parsed.describe()} ({reason}).") from None


def close_storage(storage: Any) -> None:
    """Give back a storage's connections (a PostgreSQL server has only so many)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        storage.remove_session()
        engine.dispose()


def trial_record(trial: Any) -> dict[str, Any] | None:
    """A trial's run record (user attribute ``record``), or ``None``."""
    record = trial.user_attrs.get(RECORD)
    return dict(record) if isinstance(record, dict) else None


def objective(record: dict[str, Any], maximize: bool) -> float:
    """A finished run's value for Optuna: its final metric; a diverged run counts as the worst."""
    result = record.get("result") or {}
    metrics = result.get("metrics") or []
    value = float(metrics[-1]) if metrics else math.nan
    if result.get("diverged") or not math.isfinite(value):
        return -math.inf if maximize else math.inf
    return value


class OptunaStore:
    """A :class:`~.store.RunStore` in an Optuna study: one trial per run, the record in its user
    attributes, the bench's meta data in the study's. Workers complete trials themselves; a
    record ``put`` here (the local engine) is added as a finished trial, unless its key is
    already complete."""

    def __init__(self, url: str, study: str, *, create: bool = True, maximize: bool = True, **kw: Any) -> None:
        import optuna

        self.url, self.name = url, study
        self.storage = open_storage(url, **kw)
        try:
            if create:
                self.study = optuna.create_study(
                    storage=self.storage,
                    study_name=study,
                    direction="maximize" if maximize else "minimize",
                    load_if_exists=True,
                )
            else:
                self.study = optuna.load_study(study_name=study, storage=self.storage)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            close_storage(self.storage)
            raise StoreError(f"storage {url!r} is not an Optuna journal ({type(err).__name__}: {err}).") from None
        except KeyError:
            names = sorted(s.study_name for s in optuna.get_all_study_summaries(self.storage))
            close_storage(self.storage)
            raise StoreError(
                f"no study {study!r} in {parse_storage(url).describe()}; studies there: {', '.join(names) or 'none'}."
            ) from None
        self.maximize = self.study.direction == optuna.study.StudyDirection.MAXIMIZE

    # ------------------------------------------------------------------ RunStore
    def put(self, record: dict[str, Any]) -> None:
        import optuna
        from optuna.trial import TrialState

        if "trial" in record or record["key"] in self.done_keys():
            return  # a worker stored it in its own trial; or a run finished twice (kept once)
        failed = record["status"] != "done"
        self.study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.FAIL if failed else TrialState.COMPLETE,
                value=None if failed else objective(record, self.maximize),
                user_attrs={KEY: record["key"], RECORD: record},
                system_attrs={ERROR: record.get("error")} if failed else {},
            )
        )

    def trials(self, states: tuple[Any, ...] | None = None) -> list[Any]:
        return list(self.study.get_trials(deepcopy=False, states=states))

    def done_keys(self) -> set[str]:
        from optuna.trial import TrialState

        return {t.user_attrs[KEY] for t in self.trials((TrialState.COMPLETE,)) if KEY in t.user_attrs}

    def records(self, status: str | None = "done") -> Iterator[dict[str, Any]]:
        """One record per run key, in the order the runs finished: the completed one, else the
        latest failure (a run retried after a failure shows only once)."""
        by_key: dict[str, tuple[float, dict[str, Any]]] = {}
        for t in self.trials():
            record = trial_record(t)
            if record is None or t.system_attrs.get(DUPLICATE):
                continue
            when = t.datetime_complete.timestamp() if t.datetime_complete else 0.0
            earlier = by_key.get(record["key"])
            replaces = earlier is not None and earlier[1]["status"] != "done"
            if earlier is None or (replaces and (record["status"] == "done" or when >= earlier[0])):
                by_key[record["key"]] = (when, record)
        for _, record in sorted(by_key.values(), key=lambda x: x[0]):
            if status is None or record["status"] == status:
                yield record

    def set_meta(self, name: str, value: Any) -> None:
        self.study.set_user_attr(name, value)

    def meta(self, name: str, default: Any = None) -> Any:
        return self.study.user_attrs.get(name, default)

    def close(self) -> None:
        close_storage(self.storage)

    def __enter__(self) -> OptunaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redact(url: str) -> str:
    """A storage URL without its password."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url
