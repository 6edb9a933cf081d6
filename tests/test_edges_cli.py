"""Regression tests for issue 11's CLI and bench faults: Ctrl-C and ``kill -9`` with parallel
workers, two benches on one ``--out``, benches whose every run fails, data sets that cannot be
had, bad options and stores, and what ``show``/``list`` print. Each failed before its fix."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner

from cyclr.bench import harness
from cyclr.bench.harness import BenchConfig, run_bench
from cyclr.bench.report import README_END, README_START, update_readme
from cyclr.bench.store import OutLock, Store, StoreError
from cyclr.cli import cli
from test_bench import _stored

SHARED_DATA = Path(os.environ.get("CYCLR_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
BENCH = ["bench", "--task", "digits", "--strategies", "constant,cosine,one_cycle", "--optimizers", "sgd"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _start(args: list[str], cwd: Path, stdout: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cyclr.cli", *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=stdout,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a process group of its own: a terminal's Ctrl-C reaches all of it
    )


def _wait_for(predicate: Any, proc: subprocess.Popen[bytes], what: str, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"the bench ended before {what}: {err}")
        assert time.monotonic() < deadline, f"no {what} within {limit} s"
        time.sleep(0.05)


@pytest.fixture
def cleanup() -> Iterator[list[psutil.Process]]:
    procs: list[psutil.Process] = []
    yield procs
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def test_ctrl_c_stops_parallel_workers_within_seconds(tmp_path: Path, cleanup: list[psutil.Process]) -> None:
    """``cyclr bench --workers 2`` printed "interrupted" on Ctrl-C but did not return: its workers
    trained on for minutes. Now the bench and its workers exit within seconds, runs kept."""
    out = tmp_path / "bench"
    args = [*BENCH, "--seeds", "4", "--epochs", "6", "--workers", "2", "--out", str(out)]
    proc = _start(args, tmp_path, stdout=subprocess.PIPE)  # a few lines: the pipe never fills
    parent = psutil.Process(proc.pid)
    _wait_for(lambda: _stored(out / "runs.sqlite") >= 1 and len(parent.children()) >= 2, proc, "a stored run")
    workers = [c for c in parent.children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())]
    cleanup.extend(workers)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the whole foreground group
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("cyclr bench did not exit within 20 s of Ctrl-C")
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 130
    assert proc.stdout is not None and "interrupted" in proc.stdout.read().decode()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers still running after Ctrl-C: {alive}"
    assert _stored(out / "runs.sqlite") >= 1  # every finished run kept


def test_kill_9_of_the_bench_ends_its_workers(tmp_path: Path, cleanup: list[psutil.Process]) -> None:
    """Workers of a ``kill -9``-ed bench stayed alive at ~400 MB each, blocked on a pipe."""
    out = tmp_path / "bench"
    proc = _start([*BENCH, "--seeds", "4", "--epochs", "6", "--workers", "2", "--out", str(out)], tmp_path)
    parent = psutil.Process(proc.pid)
    _wait_for(lambda: len(parent.children()) >= 2 and _stored(out / "runs.sqlite") >= 1, proc, "running workers")
    workers = [c for c in parent.children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())]
    assert len(workers) >= 2
    cleanup.extend(workers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"orphaned workers: {alive}"


def test_a_second_bench_on_a_busy_out_is_refused(tmp_path: Path, runner: CliRunner) -> None:
    """Two fresh benches on one ``--out`` renamed the same store to one timestamp and destroyed
    each other's results; two ``--resume`` runs each executed every missing run."""
    out = tmp_path / "bench"
    first = runner.invoke(cli, [*BENCH, "--seeds", "1", "--epochs", "1", "--out", str(out)])
    assert first.exit_code == 0, first.output
    before = _stored(out / "runs.sqlite")
    assert before == 6
    with OutLock(out):  # another bench holds the folder
        for extra in ([], ["--resume"]):
            result = runner.invoke(cli, [*BENCH, "--seeds", "1", "--epochs", "1", "--out", str(out), *extra])
            assert result.exit_code == 2, result.output
            assert "is in use by another cyclr bench" in result.output
        with pytest.raises(StoreError, match="in use"):
            run_bench(BenchConfig(tasks=["digits"], strategies=["constant"], seeds=1, epochs=1, out=out))
    assert _stored(out / "runs.sqlite") == before and not list(out.glob("runs-*.sqlite"))


def test_fresh_benches_keep_every_earlier_store(tmp_path: Path) -> None:
    """Backups within one second no longer share a name: none is ever overwritten."""
    out = tmp_path / "bench"
    out.mkdir()
    for i in range(3):
        with Store(out) as store:
            store.set_meta("n", i)
        Store.fresh(out)[0].close()
    names = sorted(p.name for p in out.glob("runs-*.sqlite"))
    assert len(names) == 3 and len(set(names)) == 3


@pytest.mark.parametrize("content", ["garbage", "foreign"])
def test_a_corrupt_or_foreign_store_is_refused(tmp_path: Path, runner: CliRunner, content: str) -> None:
    out = tmp_path / "bench"
    out.mkdir()
    db = out / "runs.sqlite"
    if content == "garbage":
        db.write_bytes(os.urandom(4096))
    else:
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE notes (text TEXT)")
    original = db.read_bytes()
    for extra in (["--resume"], ["--report-only"]):
        result = runner.invoke(cli, [*BENCH, "--out", str(out), *extra])
        assert result.exit_code == 2, result.output
        assert "is not a usable cyclr run store" in result.output and "Traceback" not in result.output
    assert db.read_bytes() == original  # not touched


def test_a_bench_whose_every_run_fails_exits_1_without_claiming_a_report(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(spec: Any, data_dir: Any = None) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(spec), "key": spec.key, "status": "failed", "error": "RuntimeError: no", "wall_seconds": 0}

    monkeypatch.setattr(harness, "execute", fail)
    out = tmp_path / "bench"
    result = runner.invoke(cli, [*BENCH, "--seeds", "1", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "all 6 runs failed" in result.output and "wrote" not in result.output
    assert not (out / "report.md").exists()


def test_the_readme_update_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--report-only --readme`` rewrote README.md in place: a kill left 0 bytes."""
    readme = tmp_path / "README.md"
    text = f"# title\n\n{README_START}\nold\n{README_END}\n\nrest\n"
    readme.write_text(text)

    def killed(fd: int) -> None:
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        update_readme(readme, [], "cyclr bench")
    assert readme.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no temporary file left


# ------------------------------------------------------------------------------ data sets


@pytest.fixture
def no_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("CYCLR_DATA_DIR", raising=False)
    monkeypatch.setenv("CYCLR_OFFLINE", "1")
    monkeypatch.setenv("CYCLR_CACHE_DIR", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


@pytest.mark.parametrize("command", ["bench", "find"])
def test_a_missing_data_set_says_where_to_put_it(no_data: Path, runner: CliRunner, command: str) -> None:
    """``cyclr bench --task sunspots-lstm`` offline printed a 20-line traceback."""
    args = [command, "--task", "sunspots-lstm", "--data-dir", str(no_data)]
    if command == "bench":
        args += ["--out", str(no_data.parent / "out")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    out = result.output
    assert "Traceback" not in out and "sunspots/monthly-sunspots.csv" in out
    assert str(no_data / "sunspots" / "monthly-sunspots.csv") in out  # where it looked
    assert "https://" in out and "--data-dir" in out and "CYCLR_DATA_DIR" in out
    assert not (no_data.parent / "out" / "runs.sqlite").exists()  # nothing started


def test_a_truncated_data_file_is_named_with_its_checksum(no_data: Path, runner: CliRunner) -> None:
    source = SHARED_DATA / "sunspots" / "monthly-sunspots.csv"
    (no_data / "sunspots").mkdir()
    (no_data / "sunspots" / "monthly-sunspots.csv").write_bytes(source.read_bytes()[:500])
    result = runner.invoke(cli, ["find", "--task", "sunspots-lstm", "--data-dir", str(no_data)])
    assert result.exit_code == 2, result.output
    assert "does not match the published" in result.output and "truncated" in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------ bad options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["find", "--start-lr", "-1"], "--start-lr"),
        (["find", "--start-lr", "nan"], "--start-lr"),
        (["find", "--end-lr", "0"], "--end-lr"),
        (["find", "--start-lr", "1", "--end-lr", "0.1"], "must be above --start-lr"),
        (["find", "--seed", "-3"], "--seed"),
        (["find", "-o", ""], "not an empty string"),
        (["find", "--json", ""], "not an empty string"),
        (["find", "-o", "/no/such/folder/plot.png"], "does not exist"),
        (["plot", "cosine:max_lr=0.1,total_steps=10", "-o", ""], "not an empty string"),
        (["gallery", "-o", ""], "not an empty string"),
        (["bench", "--out", ""], "not an empty string"),
        (["show", "cosine:max_lr=[1],total_steps=10"], "max_lr"),
        (["show", "{bad json"], "not valid JSON"),
    ],
)
def test_bad_options_exit_2_with_a_message(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_an_unwritable_output_is_a_clean_error(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "is-a-folder.png"
    target.mkdir()
    result = runner.invoke(cli, ["plot", "cosine:max_lr=0.1,total_steps=10", "-o", str(target)])
    assert result.exit_code == 2, result.output
    assert "is-a-folder.png" in result.output and "Traceback" not in result.output


def test_a_title_that_is_not_mathtext_is_drawn_literally(runner: CliRunner, tmp_path: Path) -> None:
    """A mathtext ``--title`` such as ``$x^$`` crashed ``savefig``."""
    out = tmp_path / "p.png"
    result = runner.invoke(cli, ["plot", "cosine:max_lr=0.1,total_steps=10", "--title", "$x^$ 50% off", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000


# ------------------------------------------------------------------------------ what it prints


def test_show_csv_gives_every_step(runner: CliRunner) -> None:
    """``--format csv --steps 700`` printed every 17th step (42 rows) and dropped the last."""
    result = runner.invoke(cli, ["show", "cosine:max_lr=0.1,total_steps=700", "--steps", "700", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "step,lr" and len(lines) == 701
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(700))
    every = runner.invoke(cli, ["show", "cosine:max_lr=0.1,total_steps=700", "--steps", "700", "--format", "json"])
    values = json.loads(every.output)["values"]
    assert [v["step"] for v in values] == list(range(700))
    table = runner.invoke(cli, ["show", "cosine:max_lr=0.1,total_steps=700", "--steps", "700"])
    assert "699" in table.output  # the table keeps the last step


def test_list_prints_no_rest_markup(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["list"])
    assert result.exit_code == 0
    for markup in ("`", ":math:", "<https", ">`_"):
        assert markup not in result.output, markup
    assert "arXiv:1506.01186" in result.output
