"""``cyclr tune``: searches through real Optuna studies, real workers and real storages, on the
bundled digits task (seconds per trial)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from click.testing import CliRunner  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

import cyclr  # noqa: E402
from cyclr.bench.storage import KEY, OptunaStore  # noqa: E402
from cyclr.bench.tune import Search, TuneConfig, counts_toward_budget, grid_points  # noqa: E402
from cyclr.cli import cli  # noqa: E402
from cyclr.space import SearchSpace  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tune(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["tune", "--task", "digits", "--epochs", "2", "--out", str(tmp_path / "out"), *args])


def _report(tmp_path: Path) -> dict[str, Any]:
    return dict(json.loads((tmp_path / "out" / "report.json").read_text()))


def test_a_parallel_search_with_pruning_finds_a_schedule_and_reports_it(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/t.log"
    result = _tune(tmp_path, "--trials", "8", "--storage", url, "--workers", "2", "--seed", "1")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    config = json.loads((out / "best.json").read_text())
    if config["name"] in cyclr.controllers.CONTROLLERS:  # the adaptive family won: a controller's config
        best: Any = cyclr.controller_from_config(config)
    else:
        best = cyclr.load_config(str(out / "best.json"))  # ready for load_config
    report = _report(tmp_path)
    counts = report["counts"]
    assert counts["trials"] == 8 and counts["complete"] + counts["pruned"] + counts["failed"] == 8
    assert counts["complete"] >= 1 and counts["failed"] == 0
    assert best.to_config() == report["best"]["schedule"]
    with OptunaStore(url, "cyclr-tune-digits", create=False) as store:
        trials = [t for t in store.trials() if counts_toward_budget(t)]
        assert len(trials) == 8 and len({t.number for t in trials}) == 8
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert report["best"]["value"] == max(t.value for t in complete)
        full = report["cost"]["full_run_steps"]
        steps = {t.number: store_steps(t) for t in trials}
        assert all(steps[t.number] == full for t in complete)
        assert all(0 < steps[t.number] < full for t in trials if t.state == TrialState.PRUNED)
        assert report["cost"]["steps"] == sum(steps.values())
        assert all(t.intermediate_values for t in trials if t.state == TrialState.PRUNED)  # fed by the recorder
    names = [b["name"] for b in report["baselines"]]
    assert names[0].startswith("best constant") and names[1].startswith("auto")
    for png in ("history.png", "curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Best trials" in (out / "report.md").read_text() and "<img" in (out / "report.html").read_text()


def store_steps(t: Any) -> int:
    return int(t.user_attrs["record"]["result"]["steps"])


def test_the_default_search_runs_in_one_process_on_sqlite_and_resumes_with_more_trials(tmp_path: Path) -> None:
    args = ["--sampler", "random", "--pruner", "none", "--no-baselines"]
    result = _tune(tmp_path, "--trials", "3", *args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "tune.db").exists()
    report = _report(tmp_path)
    assert report["counts"] == {"trials": 3, "complete": 3, "pruned": 0, "failed": 0}
    assert report["cost"]["steps"] == 3 * report["cost"]["full_run_steps"]
    assert report["baselines"] == []
    again = _tune(tmp_path, "--trials", "5", *args)  # the same study, a larger budget: 2 more trials
    assert again.exit_code == 0, again.output
    assert _report(tmp_path)["counts"]["trials"] == 5
    assert again.output.count("trial ") >= 2


def test_the_grid_sampler_tries_each_point_of_a_conditional_grid_once(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(
        "families:\n"
        "  one_cycle: {max_lr: {low: 0.01, high: 1.0, log: true}, pct_start: 0.3}\n"
        "  cosine: {max_lr: {low: 0.01, high: 1.0, log: true}}\n"
    )
    url = f"sqlite:///{tmp_path}/g.db"
    result = _tune(
        tmp_path,
        "--trials",
        "10",
        "--sampler",
        "grid",
        "--grid-points",
        "2",
        "--space",
        str(space),
        "--storage",
        url,
        "--pruner",
        "none",
        "--no-baselines",
    )
    assert result.exit_code == 0, result.output
    with OptunaStore(url, "cyclr-tune-digits", create=False) as store:
        tried = sorted((t.params["family"], round(t.params[f"{t.params['family']}.max_lr"], 6)) for t in store.trials())
    assert tried == [("cosine", 0.01), ("cosine", 1.0), ("one_cycle", 0.01), ("one_cycle", 1.0)]  # 4 points, once


def test_grid_points_are_log_spaced_and_cover_each_family() -> None:
    space = SearchSpace.from_data(
        {
            "families": {
                "cyclic": {
                    "max_lr": {"low": 0.01, "high": 1.0, "log": True},
                    "div": 4.0,
                    "cycle_epochs": {"low": 1, "high": 3, "int": True},
                }
            },
            "warmup_pct": {"low": 0.0, "high": 0.1},
        }
    )
    points = grid_points(space, 3, ["sgd", "adam"])
    assert len(points) == 3 * 3 * 3 * 2
    assert sorted({round(p["cyclic.max_lr"], 9) for p in points}) == [0.01, 0.1, 1.0]
    assert sorted({p["cyclic.cycle_epochs"] for p in points}) == [1, 2, 3]
    assert {p["optimizer"] for p in points} == {"sgd", "adam"} and "family" not in points[0]


def test_a_trial_beyond_the_budget_is_refused_and_a_retry_is_not(tmp_path: Path) -> None:
    config = TuneConfig(task="digits", trials=2, storage=f"journal:///{tmp_path}/b.log", out=tmp_path, epochs=1)
    from cyclr.bench.tune import open_search

    store = open_search(config)
    try:
        search = Search.from_meta(store.meta("cyclr"), store)
        for _ in range(2):
            search.study.tell(search.study.ask(), 0.5)
        assert not search.wants_more()
        extra = search.study.ask()  # two workers asked at once: one trial too many
        assert search.over_budget(search.study._storage.get_trial(extra._trial_id))
        retry = optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={"failed_trial": 0})
        search.study.add_trial(retry)
        frozen = search.study.get_trials(states=(TrialState.WAITING,))[0]
        assert not search.over_budget(frozen)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--storage", "mongodb://x/y"], "not one cyclr can use"),
        (["--storage", "postgresql://u@127.0.0.1:1/db"], "cannot use the storage PostgreSQL at 127.0.0.1:1/db"),
        (["--sampler", "bayes"], "'bayes' is not one of"),
        (["--trials", "0"], "0 is not in the range x>=1"),
        (["--task", "nosuch"], "--task is 'nosuch'"),
        (["--heartbeat", "5,2"], "0 < INTERVAL < GRACE"),
        (["--workers", "3"], "is a SQLite file, which serves one process; for --workers 3 use journal:///"),
    ],
)
def test_bad_input_is_one_clear_line_not_a_traceback(tmp_path: Path, args: list[str], says: str) -> None:
    result = _tune(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output


def test_an_invalid_space_file_and_a_study_with_another_space_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("families:\n  cyclic: {max_lr: {low: 1.0, high: 0.1}}\n")
    result = _tune(tmp_path, "--space", str(bad))
    assert result.exit_code == 2 and "search space: families.cyclic.max_lr" in result.output
    assert "Traceback" not in result.output
    url = f"journal:///{tmp_path}/s.log"
    first = tmp_path / "a.yaml"
    first.write_text("families:\n  cosine: {max_lr: {low: 0.01, high: 0.1, log: true}}\n")
    ok = _tune(tmp_path, "--space", str(first), "--storage", url, "--trials", "1", "--no-baselines")
    assert ok.exit_code == 0, ok.output
    other = tmp_path / "b.yaml"
    other.write_text("families:\n  cosine: {max_lr: {low: 0.01, high: 0.5, log: true}}\n")
    result = _tune(tmp_path, "--space", str(other), "--storage", url, "--trials", "1")
    assert result.exit_code == 2 and "was made with another search space" in result.output
    assert "Traceback" not in result.output


def test_a_worker_on_a_missing_study_or_a_foreign_one_exits_cleanly(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/w.log"
    OptunaStore(url, "plain").close()  # a study cyclr did not make
    runner = CliRunner()
    missing = runner.invoke(cli, ["worker", "--storage", url, "--study", "nope"])
    assert missing.exit_code == 2 and "no study 'nope'" in missing.output and "studies there: plain" in missing.output
    foreign = runner.invoke(cli, ["worker", "--storage", url, "--study", "plain"])
    assert foreign.exit_code == 2 and "was not made by cyclr bench or cyclr tune" in foreign.output


def test_every_trial_s_record_holds_its_schedule_and_its_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/k.db"
    result = _tune(tmp_path, "--trials", "2", "--storage", url, "--pruner", "none", "--no-baselines")
    assert result.exit_code == 0, result.output
    with OptunaStore(url, "cyclr-tune-digits", create=False) as store:
        for t in store.trials():
            record = t.user_attrs["record"]
            assert record["key"] == t.user_attrs[KEY] and record["strategy"] == "tuned"
            config = json.loads(record["variant"])
            if config["name"] in cyclr.controllers.CONTROLLERS:
                assert cyclr.controller_from_config(config).to_config() == config
                continue
            schedule = cyclr.load_config(record["variant"])
            assert math.isclose(float(schedule(0)), record["result"]["lrs"][0], rel_tol=1e-6)
