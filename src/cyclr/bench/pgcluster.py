"""A throwaway PostgreSQL server: ``initdb`` + ``pg_ctl`` into a temporary folder, listening on
127.0.0.1 only, stopped and deleted on exit. cyclr's tests and engine benchmarks run against
it; it is also the quickest way to try ``--storage postgresql://...`` on one machine::

    with TempPostgres() as pg:
        print(pg.url)  # postgresql://cyclr@127.0.0.1:PORT/cyclr

It needs PostgreSQL's server programs (Debian: ``apt-get install postgresql``); they are looked up
on ``PATH``, then in ``/usr/lib/postgresql/*/bin``. Run as root, the server runs as the
``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["PostgresUnavailable", "TempPostgres", "find_postgres"]


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed here."""


def find_postgres() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / exe).exists() for exe in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PostgresUnavailable(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found on PATH or in /usr/lib/postgresql/*/bin; "
        "install them (Debian: apt-get install postgresql)."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """A PostgreSQL cluster in a temp folder on 127.0.0.1 (trust authentication, user and
    database ``cyclr``). ``fsync=False`` trades durability for speed (tests); benchmarks keep it on.
    ``max_connections`` is the server's limit (PostgreSQL's default: 100)."""

    def __init__(self, *, fsync: bool = True, max_connections: int = 100) -> None:
        self.bin = find_postgres()
        self.fsync, self.max_connections = fsync, max_connections
        self.port = 0
        self.folder: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql://cyclr@127.0.0.1:{self.port}/cyclr"

    def _run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, timeout=120, **kw)

    def start(self) -> TempPostgres:
        self.folder = Path(tempfile.mkdtemp(prefix="cyclr-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        self.port = _free_port()
        try:
            self._run(
                str(self.bin / "initdb"), "-D", str(data), "-U", "cyclr", "--auth=trust", "-E", "UTF8", "--no-sync"
            )
            options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c max_connections={self.max_connections}" + (
                "" if self.fsync else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "log"), "-o", options, "-w", "start"
            )
            import psycopg

            with psycopg.connect(f"postgresql://cyclr@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
                conn.execute("CREATE DATABASE cyclr")
        except subprocess.CalledProcessError as err:
            log = (self.folder / "log").read_text() if (self.folder / "log").exists() else ""
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {err.stderr or err.stdout}\n{log}") from None
        return self

    def connections(self) -> int:
        """Client connections to the ``cyclr`` database now (leak checks)."""
        import psycopg

        with psycopg.connect(f"postgresql://cyclr@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = 'cyclr'").fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        if self.folder is None:
            return
        data = self.folder / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
