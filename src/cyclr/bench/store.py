"""Where ``cyclr bench`` keeps its runs.

:class:`RunStore` is the interface the harness uses; :class:`Store` is the local implementation:
one SQLite file in ``--out``, one row per finished run, committed the moment it finishes (a
crash or ``kill -9`` loses only the runs still in flight). Records are plain JSON data
(:meth:`~.records.RunRecord.to_dict`), never pickles.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["OutLock", "RunStore", "Store", "StoreError"]


class StoreError(ValueError):
    """A run store that cannot be used: corrupt, not cyclr's, or in use by another bench."""


@runtime_checkable
class RunStore(Protocol):
    """What a bench needs of a store. Every method commits before it returns (a killed bench
    keeps every run it stored); ``put`` of a key already stored replaces it (a rerun failure)."""

    def put(self, record: dict[str, Any]) -> None: ...

    def done_keys(self) -> set[str]: ...

    def records(self, status: str | None = "done") -> Iterator[dict[str, Any]]: ...

    def set_meta(self, name: str, value: Any) -> None: ...

    def meta(self, name: str, default: Any = None) -> Any: ...

    def close(self) -> None: ...


class OutLock:
    """An exclusive lock on a bench's ``--out`` folder, held while a bench writes there.

    A second ``cyclr bench`` on the same folder (fresh or ``--resume``) is refused at once
    instead of renaming, overwriting or re-running the first one's runs. The lock is an
    ``flock`` on ``--out/.cyclr-bench.lock``: the kernel drops it when the holder exits, even
    on ``kill -9``, so a stale lock never blocks the next bench.
    """

    NAME = ".cyclr-bench.lock"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self._fd: int | None = None

    def __enter__(self) -> OutLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, as before
            self._fd = fd
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"{self.folder} is in use by another cyclr bench (pid {holder}); wait for it to finish, "
                "or choose another --out."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    strategy TEXT NOT NULL,
    variant TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    finished REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    """``runs.sqlite`` in a bench's output folder. Records are JSON (never pickles)."""

    FILENAME = "runs.sqlite"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / self.FILENAME
        existed = self.path.exists() and self.path.stat().st_size > 0
        self._db = sqlite3.connect(self.path, timeout=30.0)
        try:
            if existed:
                self._check_schema()
            self._db.executescript(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise StoreError(
                f"{self.path} is not a usable cyclr run store ({err}); move it away, or choose another --out."
            ) from None

    def _check_schema(self) -> None:
        """An existing file must be a cyclr store: a ``runs`` table with cyclr's columns."""
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "runs" not in tables:
            raise sqlite3.DatabaseError(
                f"a SQLite file without cyclr's runs table (tables: {sorted(tables) or 'none'})"
            )
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(runs)")]
        expected = ["key", "task", "optimizer", "strategy", "variant", "seed", "status", "record", "finished"]
        if columns != expected:
            raise sqlite3.DatabaseError(f"its runs table has columns {columns}, not cyclr's {expected}")

    @classmethod
    def fresh(cls, folder: str | Path) -> tuple[Store, Path | None]:
        """A new, empty store; an existing one is kept under a new, unique name (returned).

        Call it holding :class:`OutLock`: the backup name is unique by construction anyway
        (timestamp, pid and a counter; ``os.link`` never overwrites), so no store is ever lost.
        """
        path = Path(folder) / cls.FILENAME
        kept = None
        if path.exists():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for n in range(1000):
                candidate = path.with_name(f"runs-{stamp}-{os.getpid()}{'-' + str(n) if n else ''}.sqlite")
                try:
                    os.link(path, candidate)  # fails if the name exists; rename would overwrite
                except FileExistsError:
                    continue
                kept = candidate
                break
            else:  # pragma: no cover - a thousand backups in one second from one pid
                raise StoreError(f"could not find a free backup name for {path}.")
            path.unlink()
            for suffix in ("-journal", "-wal", "-shm"):
                extra = path.with_name(path.name + suffix)
                if extra.exists():
                    extra.rename(kept.with_name(kept.name + suffix))
        return cls(folder), kept

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ runs
    def put(self, record: dict[str, Any]) -> None:
        """Store one run (``record`` holds key, task, optimizer, strategy, variant, seed, status)."""
        with self._db:  # one transaction, committed here
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record["key"],
                    record["task"],
                    record["optimizer"],
                    record["strategy"],
                    record["variant"],
                    int(record["seed"]),
                    record["status"],
                    json.dumps(record, allow_nan=True),
                    time.time(),
                ),
            )

    def done_keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM runs WHERE status = 'done'")}

    def records(self, status: str | None = "done") -> Iterator[dict[str, Any]]:
        query = "SELECT record FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY finished"
        for (text,) in self._db.execute(query, (status,) if status else ()):
            yield json.loads(text)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0])

    # ------------------------------------------------------------------ meta
    def set_meta(self, name: str, value: Any) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, json.dumps(value)))

    def meta(self, name: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else default
