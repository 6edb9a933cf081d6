"""The benchmark scripts run (their smallest settings): they are measured outside CI, but they
must not rot inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: int = 300) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.skipif(not os.environ.get("CYCLR_DATA_DIR"), reason="CYCLR_DATA_DIR not set (make test sets it)")
def test_range_test_quality_smoke(tmp_path: Path) -> None:
    """The calibration study end to end on three cheap tasks: grids, 3-sweep range tests, the
    peers' real packages, every candidate rule, the choice and the leave-one-task-out table; a
    rerun resumes from the journal without training again."""
    args = ("benchmarks/range_test_quality.py", "--smoke", "--check", "--out", str(tmp_path / "j.jsonl"))
    out = _run(*args, "--json", str(tmp_path / "q.json"), timeout=600)
    for label in (
        "## Grids",
        "trend | smith max_lr | median of 3",
        "chosen on all tasks",
        "## Leave-one-task-out",
        "## Trained at each seed's own suggestion",
    ):
        assert label in out
    for peer in ("torch-lr-finder", "lightning", "fastai valley"):
        assert peer in out
    analysis = json.loads((tmp_path / "q.json").read_text())
    assert set(analysis["leave_one_out"]) == {"digits", "diabetes", "airline-lstm"}
    units = (tmp_path / "j.jsonl").read_text().splitlines()
    # per task: 3 grid points, 1 range test, 2 peers; then 4 suggestions trained (cyclr and 3 peers)
    assert len(units) == 3 * (3 + 1 + 2 + 4)
    again = _run(*args, "--analyse-only")
    assert again == out


def test_overhead_smoke() -> None:
    out = _run("benchmarks/overhead.py", "--steps", "200", "--repeats", "1")
    assert "cyclr/torch" in out and "tensor lr, betas" in out and "NumPy" in out
    assert "cyclr.adaptive: observe(float loss) + step()" in out and "observe(tensor loss)" in out


def test_keras_overhead_smoke() -> None:
    out = _run("benchmarks/keras_overhead.py", "--steps", "20", "--repeats", "1")
    assert "keras CosineDecay" in out and "cyclr Schedule (one_cycle)" in out
    assert "cyclr adaptive + callback" in out and "vs cyclr one_cycle" in out


@pytest.mark.skipif(not os.environ.get("CYCLR_DATA_DIR"), reason="CYCLR_DATA_DIR not set (make test sets it)")
def test_adaptive_study_smoke(tmp_path: Path) -> None:
    """The adaptive study end to end on the bundled digits task (2 seeds, 1 epoch): adaptive,
    both robustness sweeps and every anchor run through one bench, and the analysis prints the
    oracle, the sweeps, the anchors and the goals; re-printing from the store trains nothing."""
    out_dir = tmp_path / "study"
    args = ("benchmarks/adaptive_study.py", "--smoke", "--workers", "2", "--out", str(out_dir))
    out = _run(*args, "--json", str(tmp_path / "a.json"), timeout=600)
    for label in ("## 1. As good as a grid", "## 2. Robust to a bad start", "## 3. Ahead of the anchors", "## Goals"):
        assert label in out
    analysis = {(r["task"], r["optimizer"]): r for r in json.loads((tmp_path / "a.json").read_text())}
    assert set(analysis) == {("digits", "sgd"), ("digits", "adam")}
    assert set(analysis["digits", "adam"]["vs_anchor"]) == {"prodigy", "dadaptation", "schedulefree", "plateau"}
    assert set(analysis["digits", "sgd"]["vs_anchor"]) == {"dadaptation", "schedulefree", "dog", "plateau"}
    for r in analysis.values():
        assert len(r["vs_oracle"]) == 10 and r["oracle"] in {"auto"} | {
            f"one_cycle_start x{f}" for f in (0.1, 0.3, 3, 10)
        }
        assert all(c["seeds"] == 2 for c in r["vs_oracle"].values())
    again = _run("benchmarks/adaptive_study.py", "--analyse-only", "--out", str(out_dir))
    assert again == out
