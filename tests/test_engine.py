"""The distributed engine with real processes and real storages: PostgreSQL (a cluster the tests
start with initdb/pg_ctl) and Optuna's journal file. Workers are real ``cyclr worker`` processes;
a killed worker is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from cyclr.bench.harness import BenchConfig, LocalEngine, load_records, plan_runs, run_bench  # noqa: E402
from cyclr.bench.recorder import Recorder, RunResult, reporting  # noqa: E402
from cyclr.bench.report import write_report  # noqa: E402
from cyclr.bench.storage import DUPLICATE, KEY, OptunaStore, open_storage, parse_storage  # noqa: E402
from cyclr.bench.store import Store, StoreError  # noqa: E402
from cyclr.bench.worker import OptunaEngine, prepare_bench  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SLEEP_TASK = "examples/sleep_task.py:SleepTask"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(params=["journal", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh storage URL of each kind that many processes can share."""
    if request.param == "journal":
        return f"journal:///{tmp_path}/study.log"
    server = request.getfixturevalue("postgres")
    return str(server.url)


def _env(seconds: float) -> dict[str, str]:
    return {**os.environ, "CYCLR_SLEEP_SECONDS": str(seconds), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _sleep_bench(tmp_path: Path, url: str, study: str, seeds: int) -> tuple[BenchConfig, list[Any]]:
    config = BenchConfig(
        tasks=[SLEEP_TASK], strategies=["constant"], seeds=seeds, out=tmp_path / "out", storage=url, study=study
    )
    specs = plan_runs(config)
    with OptunaStore(url, study) as store:
        prepare_bench(store, specs, config.plugins)
    return config, specs


def _worker(url: str, study: str, seconds: float, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cyclr", "worker", "--storage", url, "--study", study, "--threads", "1", *extra],
        cwd=ROOT,
        env=_env(seconds),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _trials(url: str, study: str) -> list[Any]:
    with OptunaStore(url, study, create=False) as store:
        return store.trials()


# ---------------------------------------------------------------------- storages and their errors
@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "storage URL is ''"),
        ("mysql://u@h/db", "not one cyclr can use"),
        ("sqlite://relative.db", "not one cyclr can use"),
        ("journal:", "not one cyclr can use"),
        ("postgresql://u@localhost", "names no database"),
    ],
)
def test_a_bad_storage_url_is_refused_with_the_forms_allowed(url: str, says: str) -> None:
    with pytest.raises(StoreError, match=says) as err:
        parse_storage(url)
    assert "postgresql://" in str(err.value) and "journal:///" in str(err.value)


def test_a_storage_in_a_missing_folder_or_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_storage(f"journal:///{tmp_path}/nowhere/s.log")
    with pytest.raises(StoreError, match="does not exist"):
        open_storage(f"sqlite:///{tmp_path}/nowhere/s.db")
    t0 = time.perf_counter()
    with pytest.raises(StoreError, match=r"cannot use the storage PostgreSQL at 127\.0\.0\.1:1/db"):
        open_storage("postgresql://u@127.0.0.1:1/db", connect_timeout=2)
    assert time.perf_counter() - t0 < 30


def test_a_journal_that_is_not_one_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.log"
    bad.write_text("this is not a journal\n")
    with pytest.raises(StoreError, match="not an Optuna journal"):
        OptunaStore(f"journal:///{bad}", "s")


def test_a_missing_study_names_the_studies_there(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/s.log"
    OptunaStore(url, "first").close()
    with pytest.raises(StoreError, match=r"no study 'second'.*studies there: first"):
        OptunaStore(url, "second", create=False)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_the_optuna_store_keeps_records_and_meta_like_the_local_one(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path}/s.db" if kind == "sqlite" else f"journal:///{tmp_path}/s.log"
    record = {"key": "a", "status": "done", "result": {"metrics": [0.5, 0.75]}, "task": "t"}
    failed = {"key": "b", "status": "failed", "error": "ValueError: x", "result": None}
    with OptunaStore(url, "s") as store:
        store.put(failed)
        store.put(record)
        store.put(dict(record, result={"metrics": [0.1]}))  # a key completed twice is kept once
        store.set_meta("plan", ["a", "b"])
    with OptunaStore(url, "s", create=False) as store:
        assert store.done_keys() == {"a"}
        assert [r["key"] for r in store.records()] == ["a"]
        assert store.records().__next__()["result"]["metrics"] == [0.5, 0.75]
        assert [r["key"] for r in store.records(None)] == ["b", "a"]
        assert store.meta("plan") == ["a", "b"] and store.meta("nothing", 3) == 3
        (complete,) = store.trials((TrialState.COMPLETE,))
        assert complete.value == 0.75


# ---------------------------------------------------------------------- pruning hook
def test_the_report_hook_hears_each_evaluation_and_can_stop_the_run() -> None:
    class FakeDriver:
        def current(self) -> tuple[float, float]:
            return 0.1, 0.0

    heard: list[tuple[int, float]] = []
    rec = Recorder(FakeDriver(), per_epoch=10, epochs=3, evals_per_epoch=1, reached=lambda m: False)  # type: ignore[arg-type]
    with reporting(lambda step, metric: heard.append((step, metric)) or step >= 20):
        stops = []
        for step in range(1, 31):
            rec.loss(1.0)
            stops.append(rec.after(step, lambda: 0.5))
            if stops[-1]:
                break
    assert heard == [(10, 0.5), (20, 0.5)] and step == 20
    assert rec.result.pruned and rec.result.eval_steps == [10, 20]
    assert RunResult.from_dict(rec.result.to_dict()).pruned
    assert "pruned" not in RunResult().to_dict()  # a finished run stores what it always stored


# ---------------------------------------------------------------------- workers
def test_four_workers_run_every_run_exactly_once(tmp_path: Path, storage: str) -> None:
    _config, specs = _sleep_bench(tmp_path, storage, "four", seeds=6)  # 6 seeds x 4 LRs = 24 runs
    assert len(specs) == 24
    workers = [_worker(storage, "four", 0.2) for _ in range(4)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, outputs
    assert all("Traceback" not in o for o in outputs)
    trials = _trials(storage, "four")
    assert len({t.number for t in trials}) == len(trials) == 24  # unique numbers, nothing added
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert Counter(t.user_attrs[KEY] for t in trials) == Counter(s.key for s in specs)
    ran = [int(o.split("worker done: ")[1].split(" ")[0]) for o in outputs]
    assert sum(ran) == 24 and sum(r > 0 for r in ran) >= 2  # the work was shared
    # the report reads the shared storage
    with OptunaStore(storage, "four", create=False) as store:
        records = load_records(store)
        (tmp_path / "report").mkdir()
        assert write_report(records, [s.key for s in specs], {}, tmp_path / "report", None) is not None
    assert len(records) == 24


def test_workers_leave_no_connections_behind(tmp_path: Path, postgres: Any) -> None:
    _sleep_bench(tmp_path, postgres.url, "leak", seeds=2)
    before = postgres.connections()
    workers = [_worker(postgres.url, "leak", 0.1) for _ in range(3)]
    for w in workers:
        w.communicate(timeout=120)
    assert postgres.connections() == before


def test_a_killed_worker_s_run_is_failed_by_heartbeat_and_retried(tmp_path: Path, storage: str) -> None:
    _config, specs = _sleep_bench(tmp_path, storage, "kill", seeds=1)  # 4 runs of 3 s
    victim = _worker(storage, "kill", 3.0, "--heartbeat", "1,3")
    deadline = time.time() + 120
    while time.time() < deadline and not any(t.state == TrialState.RUNNING for t in _trials(storage, "kill")):
        time.sleep(0.2)
    time.sleep(1.0)  # in the middle of its run (beating)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    (running,) = [t for t in _trials(storage, "kill") if t.state == TrialState.RUNNING]
    rescuer = _worker(storage, "kill", 3.0, "--heartbeat", "1,3")
    out = rescuer.communicate(timeout=240)[0]
    assert rescuer.returncode == 0, out
    trials = _trials(storage, "kill")
    killed = next(t for t in trials if t.number == running.number)
    assert killed.state == TrialState.FAIL  # failed by heartbeat
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == running.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs[KEY] == running.user_attrs[KEY]
    complete = Counter(t.user_attrs[KEY] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == Counter(s.key for s in specs)  # nothing lost, nothing twice
    with OptunaStore(storage, "kill", create=False) as store:
        assert {r["key"] for r in store.records()} == {s.key for s in specs}


def test_a_duplicate_queued_run_is_not_run_twice(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/d.log"
    _config, specs = _sleep_bench(tmp_path, url, "dup", seeds=1)
    with OptunaStore(url, "dup") as store:  # a second bench queued the same runs meanwhile (a race)
        from cyclr.bench.worker import SPEC, spec_data

        for s in specs[:2]:
            store.study.enqueue_trial({}, user_attrs={KEY: s.key, SPEC: spec_data(s)})
    w = _worker(url, "dup", 0.05)
    assert w.communicate(timeout=120)[0].count("duplicates skipped") == 1
    trials = _trials(url, "dup")
    assert sum(bool(t.system_attrs.get(DUPLICATE)) for t in trials) == 2
    assert Counter(t.user_attrs[KEY] for t in trials if t.state == TrialState.COMPLETE) == Counter(s.key for s in specs)


# ---------------------------------------------------------------------- one bench, several engines
def test_a_bench_started_on_one_engine_resumes_on_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLR_SLEEP_SECONDS", "0.05")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)
    url = f"journal:///{tmp_path}/b.log"
    config = BenchConfig(
        tasks=[SLEEP_TASK], strategies=["constant"], seeds=3, out=tmp_path / "out", storage=url, study="b"
    )
    stop_after = 5

    def interrupt(event: str, payload: Any) -> None:
        if event == "done" and sum(1 for _ in OptunaStore(url, "b", create=False).records()) >= stop_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the local engine, into the shared study
        run_bench(config, interrupt, engine=LocalEngine(1, config.plugins))
    first = {t.user_attrs[KEY]: t.number for t in _trials(url, "b")}
    assert len(first) == stop_after
    config.resume, config.workers = True, 2
    outcome = run_bench(config)  # workers pulling from the study
    assert outcome.skipped == stop_after and outcome.done == 12 - stop_after and outcome.failed == 0
    trials = _trials(url, "b")
    assert Counter(t.user_attrs[KEY] for t in trials).most_common(1)[0][1] == 1  # none rerun
    assert all(first[t.user_attrs[KEY]] == t.number for t in trials if t.user_attrs[KEY] in first)
    assert outcome.report is not None and (tmp_path / "out" / "report.html").exists()


def test_a_local_bench_moves_into_a_study_without_rerunning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLR_SLEEP_SECONDS", "0.01")
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    local = BenchConfig(tasks=[SLEEP_TASK], strategies=["constant"], seeds=1, out=out)
    seen = 0

    def interrupt(event: str, payload: Any) -> None:
        nonlocal seen
        seen += event == "done"
        if seen == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bench(local, interrupt)
    with Store(out) as store:
        done = store.done_keys()
    assert len(done) == 2
    moved = BenchConfig(
        tasks=[SLEEP_TASK],
        strategies=["constant"],
        seeds=1,
        out=out,
        storage=f"sqlite:///{tmp_path}/s.db",
        study="moved",
        resume=True,
    )
    outcome = run_bench(moved, engine=LocalEngine(1, moved.plugins))
    assert outcome.skipped == 2 and outcome.done == 2
    with OptunaStore(moved.storage or "", "moved", create=False) as store:
        assert len(store.done_keys()) == 4 and store.meta("plan") is not None


def test_a_fresh_bench_refuses_a_study_that_holds_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"journal:///{tmp_path}/f.log"
    with OptunaStore(url, "held") as store:
        store.put({"key": "x", "status": "done", "result": {"metrics": [1.0]}})
    config = BenchConfig(
        tasks=["digits"], strategies=["constant"], seeds=1, out=tmp_path / "o", storage=url, study="held"
    )
    with pytest.raises(StoreError, match="already holds 1 trials; add --resume"):
        run_bench(config, engine=OptunaEngine(OptunaStore(url, "held"), 0))


def test_sigterm_puts_the_run_back_at_once(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/t.log"
    _sleep_bench(tmp_path, url, "term", seeds=1)
    w = _worker(url, "term", 30.0)  # long runs: only SIGTERM ends this one early
    deadline = time.time() + 120
    while time.time() < deadline and not any(t.state == TrialState.RUNNING for t in _trials(url, "term")):
        time.sleep(0.2)
    w.send_signal(signal.SIGTERM)
    out = w.communicate(timeout=60)[0]
    assert w.returncode == 130 and "went back to the queue" in out and "Traceback" not in out
    trials = _trials(url, "term")
    (stopped,) = [t for t in trials if t.state == TrialState.FAIL]
    (back,) = [t for t in trials if t.system_attrs.get("failed_trial") == stopped.number]
    assert back.state == TrialState.WAITING and back.user_attrs[KEY] == stopped.user_attrs[KEY]
    assert not any(t.state == TrialState.RUNNING for t in trials)


def test_the_bench_command_runs_on_a_storage_and_reports_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from cyclr.cli import cli

    monkeypatch.setenv("CYCLR_SLEEP_SECONDS", "0.05")
    monkeypatch.chdir(ROOT)
    url = f"journal:///{tmp_path}/c.log"
    args = ["bench", "--task", SLEEP_TASK, "--strategies", "constant", "--seeds", "1", "--out", str(tmp_path / "o")]
    args += ["--storage", url, "--study", "cli"]
    result = CliRunner().invoke(cli, [*args, "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "results go to study 'cli'" in result.output and (tmp_path / "o" / "report.html").exists()
    (tmp_path / "o" / "report.html").unlink()
    again = CliRunner().invoke(cli, [*args, "--report-only"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "o" / "report.html").exists()
    sqlite = CliRunner().invoke(cli, [*args[:-4], "--storage", f"sqlite:///{tmp_path}/s.db", "--workers", "2"])
    assert sqlite.exit_code == 2 and "serves one process" in sqlite.output
