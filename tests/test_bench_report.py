"""The report's answer ("which schedule should I use?"), its one table model rendered three ways,
one colour per strategy, and the plot defects of the first report, each on synthetic records
whose right answer is known."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cyclr.bench import report as report_module
from cyclr.bench.report import (
    Cell,
    Grid,
    aggregate,
    recommend,
    recommendation_grid,
    summary_grid,
    terminal_report,
    write_report,
)
from cyclr.bench.report_plots import COLOURS, Styles, plot_tables, shown_rows

SEEDS = (0, 1, 2)


def record(
    task: str,
    label: str,
    seed: int,
    final: float,
    *,
    family: str = "cyclical",
    reached_at: int | None = None,
    higher: bool = True,
    losses: float = 1.0,
    lr: float | None = None,
    default: bool = False,
    rank: int = 5,
    optimizer: str = "adam",
    domain: str = "vision",
) -> dict[str, Any]:
    strategy = "constant" if family == "baseline" else label
    variant = f"constant lr={lr:.4g}" if family == "baseline" else label
    sign = 1.0 if higher else -1.0
    metrics = [final - sign * 0.1 * (3 - i) for i in range(4)]
    return {
        "status": "done",
        "key": f"{task} {optimizer} {variant} seed={seed}",
        "task": task,
        "optimizer": optimizer,
        "strategy": strategy,
        "variant": variant,
        "seed": seed,
        "epochs": 4,
        "lr": lr,
        "label": label,
        "family": family,
        "framework_default": default,
        "rank": 0 if family == "baseline" else rank,
        "metric": "accuracy" if higher else "rmse",
        "metric_label": "test accuracy" if higher else "validation rmse",
        "units": "" if higher else "passengers",
        "higher_is_better": higher,
        "target": 0.9 if higher else 10.0,
        "domain": domain,
        "step_unit": "steps",
        "steps_per_epoch": 25,
        "search_steps": 0,
        "driver": {"kind": "schedule", "schedule": {"name": "constant", "lr": 0.1}, "momentum": None},
        "details": {},
        "result": {
            "eval_steps": [25, 50, 75, 100],
            "metrics": metrics,
            "train_losses": [losses * (4 - i) for i in range(4)],
            "trace_steps": [0, 50],
            "lrs": [0.1, 1e-7],
            "momenta": [0.9, 0.9],
            "steps_to_target": reached_at,
            "seconds_to_target": None if reached_at is None else 1.0,
            "steps": 100,
            "seconds": 2.0,
            "diverged": False,
            "extra": {},
        },
    }


def table_of(*rows: tuple[str, str, list[float]], task: str = "t", **kw: Any) -> Any:
    records = []
    for label, family, finals in rows:
        for seed, final in zip(SEEDS, finals):
            lr = float(label.split()[1]) if family == "baseline" else None
            records.append(record(task, label, seed, final, family=family, lr=lr, **kw))
    (table,) = aggregate(records)
    return table


def test_a_clear_winner_is_recommended_clearly() -> None:
    t = table_of(("constant 0.01", "baseline", [0.80, 0.82, 0.81]), ("one_cycle", "cyclical", [0.90, 0.91, 0.915]))
    rec = recommend(t)
    assert (rec.pick.label, rec.confidence, rec.tied) == ("one_cycle", "clear", [])


def test_a_win_within_noise_is_only_likely_and_names_the_ties() -> None:
    t = table_of(("constant 0.01", "baseline", [0.80, 0.90, 0.85]), ("sine", "cyclical", [0.88, 0.84, 0.87]))
    rec = recommend(t)
    assert rec.pick.label == "sine" and rec.confidence == "likely"
    assert [r.label for r in rec.tied] == ["constant 0.01"]


def test_when_the_best_constant_is_best_the_report_says_no_schedule_beat_it() -> None:
    t = table_of(("constant 0.01", "baseline", [0.9, 0.91, 0.92]), ("triangular", "cyclical", [0.7, 0.72, 0.71]))
    rec = recommend(t)
    assert rec.pick.label == "constant 0.01" and rec.confidence == "none"
    assert "no schedule beat the best constant" in rec.reason
    assert "cyclical schedules that finish worse than the best constant beyond noise: triangular" in t.verdict


def test_without_a_constant_baseline_the_report_does_not_claim_one_was_best() -> None:
    t = table_of(("adaptive", "adaptive", [0.9, 0.91, 0.92]), ("auto", "finder", [0.7, 0.72, 0.71]))
    rec = recommend(t)
    assert rec.pick.label == "adaptive" and rec.confidence == "unknown"
    assert rec.reason == "no constant-LR baseline in this bench to compare with"


def test_lower_is_better_metrics_pick_the_lowest() -> None:
    t = table_of(
        ("constant 0.01", "baseline", [20.0, 21.0, 22.0]), ("sgdr", "cyclical", [15.0, 15.5, 16.0]), higher=False
    )
    rec = recommend(t)
    assert rec.pick.label == "sgdr" and rec.confidence == "clear"
    cells = [c.text for c in recommendation_grid([t]).rows[0]]
    assert cells[4] == "-5.5000 (better) *"  # a lower RMSE is said to be better, whatever the sign


def test_one_seed_gives_unknown_confidence() -> None:
    records = [record("t", "constant 0.01", 0, 0.8, family="baseline", lr=0.01), record("t", "sine", 0, 0.9)]
    (t,) = aggregate(records)
    assert recommend(t).confidence == "unknown"


def test_the_summary_counts_wins_ties_and_losses_against_the_best_constant_and_the_peer() -> None:
    a = table_of(
        ("constant 0.01", "baseline", [0.80, 0.81, 0.82]),
        ("sine", "cyclical", [0.90, 0.91, 0.92]),
        ("peer", "peer", [0.85, 0.86, 0.87]),
        task="a",
    )
    b = table_of(
        ("constant 0.01", "baseline", [0.80, 0.81, 0.82]),
        ("sine", "cyclical", [0.70, 0.71, 0.72]),
        ("peer", "peer", [0.60, 0.90, 0.70]),
        task="b",
    )
    rows = {r[0].text: [c.text for c in r] for r in summary_grid([a, b]).rows}
    # sine: a win and a loss against the best constant; against the peer a win (a) and a tie (b)
    assert rows["sine"][4] == "1 / 0 / 1" and rows["sine"][5] == "1 / 1 / 0"
    assert rows["peer"][4] == "1 / 1 / 0" and rows["best constant"][2] == "2"


def test_one_table_model_renders_markdown_html_and_terminal_alike() -> None:
    grid = Grid(
        ["strategy", "final", "note"],
        [[Cell("a | b", strong=True), Cell("0.5"), Cell("x" * 150)], [Cell("<c>", href="#c"), Cell("1"), Cell("")]],
        ["l", "r", "l"],
        marked={0},
    )
    md = grid.markdown().splitlines()
    assert md[0] == "| strategy | final | note |" and md[1] == "|---|---:|---|"
    assert md[2].startswith("| **a \\| b** | 0.5 |") and md[3].startswith("| [<c>](#c) | 1 |")
    page = grid.html()
    assert "<tr class='mark'><td class='l'><b>a | b</b></td>" in page
    assert "<a href='#c'>&lt;c&gt;</a>" in page and "<c>" not in page
    text = grid.terminal(60)
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "x" * 30 in text and text.count("x") == 150  # wrapped, nothing lost


def test_the_terminal_report_fits_100_columns() -> None:
    tables = [
        table_of(("constant 0.000316 (default)", "baseline", [0.8, 0.81, 0.82]), ("warmup_cosine", "decay", [0.9] * 3)),
        table_of(("constant 0.01", "baseline", [0.8, 0.81, 0.82]), ("one_cycle", "cyclical", [0.9] * 3), task="z" * 40),
    ]
    text = terminal_report(tables)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "Which schedule should I use?" in text and "warmup_cosine [use]" in text


def test_one_colour_per_strategy_across_the_whole_report() -> None:
    a = table_of(("constant 0.01", "baseline", [0.8] * 3), ("sine", "cyclical", [0.9] * 3), task="a")
    b = table_of(
        ("constant 0.01", "baseline", [0.8] * 3),
        *[(f"s{i}", "cyclical", [0.85] * 3) for i in range(20)],
        ("sine", "cyclical", [0.9] * 3),
        task="b",
    )
    styles = Styles([a, b])
    sine_a = styles(a, next(r for r in a.rows if r.label == "sine"))
    sine_b = styles(b, next(r for r in b.rows if r.label == "sine"))
    assert sine_a == sine_b  # the same strategy, the same colour and line, in every section
    looks = {tuple(styles(b, r).values()) for r in b.rows}
    assert len(looks) == len(b.rows)  # 22 strategies, 22 distinct looks (15 colours x line styles)
    assert len(set(COLOURS)) == 15


def test_the_recommended_row_is_always_in_the_plots() -> None:
    t = table_of(
        ("constant 0.01", "baseline", [0.8, 0.81, 0.82]),
        ("constant 0.1", "baseline", [0.95, 0.96, 0.97]),
        ("sine", "cyclical", [0.7] * 3),
    )
    assert recommend(t).pick.label == "constant 0.1"
    assert "constant 0.1" in [r.label for r in shown_rows(t)]


def test_plots_handle_negative_losses_and_deep_lr_dips(monkeypatch: pytest.MonkeyPatch) -> None:
    """REINFORCE's loss is often negative: a linear loss axis, not a log-axis barcode; an LR trace
    that dips to 1e-7 does not squash the others."""
    import matplotlib.axes

    scales: list[str] = []
    limits: list[tuple[float, float]] = []
    original_scale, original_lim = matplotlib.axes.Axes.set_yscale, matplotlib.axes.Axes.set_ylim

    def set_yscale(self: Any, value: str, **kw: Any) -> Any:
        scales.append(value)
        return original_scale(self, value, **kw)

    def set_ylim(self: Any, *args: Any, **kw: Any) -> Any:
        if len(args) == 2:
            limits.append((float(args[0]), float(args[1])))
        return original_lim(self, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_yscale", set_yscale)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylim", set_ylim)
    t = table_of(("constant 0.01", "baseline", [0.8] * 3), ("sine", "cyclical", [0.9] * 3), losses=-1.0)
    images = plot_tables([t])[t.anchor]
    assert set(images) == {"learning curves", "LR traces", "steps"}
    assert scales == ["log"]  # the LR axis only: the negative loss stays linear
    lr_low = [lo for lo, hi in limits if hi == pytest.approx(0.15)]
    assert lr_low and lr_low[0] == pytest.approx(1e-4 / 1.5)  # 1/1000 of the peak, not the 1e-7 dip
    scales.clear()
    t = table_of(("constant 0.01", "baseline", [0.8] * 3), ("sine", "cyclical", [0.9] * 3), losses=1.0)
    plot_tables([t])
    assert scales == ["log", "log"]


def test_the_html_report_has_no_raw_markdown_and_links_its_contents(tmp_path: Path) -> None:
    records = [record("t", "constant 0.01", s, 0.8 + 0.01 * s, family="baseline", lr=0.01) for s in SEEDS]
    records += [record("t", "one_cycle", s, 0.9 + 0.01 * s, reached_at=75) for s in SEEDS]
    records += [
        record("u", "constant 0.01", s, 20.0 - s, family="baseline", lr=0.01, higher=False, domain="sequences")
        for s in SEEDS
    ]
    records += [record("u", "sine", s, 15.0 - s, higher=False, domain="sequences") for s in SEEDS]
    failed = {**records[0], "key": "t adam broken seed=9", "status": "failed", "error": "RuntimeError: **boom**"}
    write_report([*records, failed], None, {"tasks": ["t", "u"]}, tmp_path, plot_tables)
    page = (tmp_path / "report.html").read_text()
    text = re.sub(r"<code>.*?</code>", "", re.sub(r"src='data:[^']*'", "", page))
    visible = html.unescape(re.sub(r"<[^>]+>", " ", text))
    assert "**" not in visible.replace("RuntimeError: **boom**", "") and "`" not in visible
    for anchor in ("recommendations", "across-tasks", "t-adam", "u-adam", "method", "failed"):
        assert f"id='{anchor}'" in page and f"href='#{anchor}'" in page
    assert "validation rmse (passengers), lower is better" in page
    assert "test accuracy, higher is better" in page
    assert page.count("data:image/png;base64,") == 2 * 3
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Which schedule should I use?") < md.index("## Across tasks") < md.index("### t / adam")
    summary = (tmp_path / "summary.txt").read_text()
    assert max(len(line) for line in summary.splitlines()) <= 100


def test_the_report_imports_no_framework_and_no_registry() -> None:
    for module in (report_module,):
        tree = ast.parse(Path(module.__file__ or "").read_text())
        imported = {
            (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names
        }
        forbidden = {"torch", "keras", "jax", "tensorflow", "strategies", "tasks", "harness", "matplotlib"}
        assert not {m for m in imported if m.split(".")[-1] in forbidden or m.split(".")[0] in forbidden}
    assert np.isfinite(1.0)


# ---------------------------------------------------------------------- the committed store re-renders
ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_store_rerenders_with_every_number_unchanged(tmp_path: Path) -> None:
    """`results/bench` (654 runs stored before the run driver and typed records existed) loads,
    is brought up to date from the registries, and aggregates to the numbers the first report
    printed (tests/data/bench_v1_numbers.json, extracted from that report.json)."""
    import json
    import shutil

    from cyclr.bench.harness import load_records
    from cyclr.bench.store import Store

    shutil.copy(ROOT / "results" / "bench" / "runs.sqlite", tmp_path / "runs.sqlite")
    want = json.loads((ROOT / "tests" / "data" / "bench_v1_numbers.json").read_text())
    with Store(tmp_path) as store:
        records = load_records(store, None)
        tables = aggregate(records, store.meta("plan"))
    assert len(records) == 654 and {f"{t.task} {t.optimizer}" for t in tables} == set(want)
    for t in tables:
        w = want[f"{t.task} {t.optimizer}"]
        assert (t.best_constant, t.default_constant, t.total_steps) == (
            w["best_constant"],
            w["default_constant"],
            w["total_steps"],
        )
        assert {str(k): v for k, v in t.match_levels.items()} == w["match_levels"] and t.baselines == w["baselines"]
        got = {r.key: r for r in t.rows}
        assert set(got) == set(w["rows"])
        for key, fields in w["rows"].items():
            row = got[key]
            for name, value in fields.items():
                mine = getattr(row, name)
                mine = list(mine) if isinstance(mine, tuple) else mine
                assert json.dumps(mine) == json.dumps(value), (t.task, key, name)  # exactly, NaN included
        # what v2 added comes from the registries: families, and the split the metric is tracked on
        assert all(r.family for r in t.rows)
        assert t.metric_label.startswith(("test ", "validation ", "mean return"))
