"""Where ``cyclr bench`` keeps its runs: one SQLite file in ``--out``, one row per finished run,
committed the moment it finishes (a crash or ``kill -9`` loses only the runs still in flight)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Store"]

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
        self._db = sqlite3.connect(self.path, timeout=30.0)
        self._db.executescript(_SCHEMA)
        self._db.commit()

    @classmethod
    def fresh(cls, folder: str | Path) -> tuple[Store, Path | None]:
        """A new, empty store; an existing one is kept under a timestamped name (returned)."""
        path = Path(folder) / cls.FILENAME
        kept = None
        if path.exists():
            kept = path.with_name(f"runs-{time.strftime('%Y%m%d-%H%M%S')}.sqlite")
            path.rename(kept)
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
