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


def test_keras_overhead_smoke() -> None:
    out = _run("benchmarks/keras_overhead.py", "--steps", "20", "--repeats", "1")
    assert "keras CosineDecay" in out and "cyclr Schedule (one_cycle)" in out
