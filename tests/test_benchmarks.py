"""The benchmark scripts run (their smallest settings): they are measured outside CI, but they
must not rot inside it."""

from __future__ import annotations

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
    out = _run("benchmarks/range_test_quality.py", "--smoke", "--json", str(tmp_path / "q.json"))
    for label in ("cyclr steepest", "cyclr schedule()", "torch-lr-finder", "lightning", "range test:"):
        assert label in out
    assert (tmp_path / "q.json").stat().st_size > 100


def test_overhead_smoke() -> None:
    out = _run("benchmarks/overhead.py", "--steps", "200", "--repeats", "1")
    assert "cyclr/torch" in out and "tensor lr, betas" in out and "NumPy" in out


def test_keras_overhead_smoke() -> None:
    out = _run("benchmarks/keras_overhead.py", "--steps", "20", "--repeats", "1")
    assert "keras CosineDecay" in out and "cyclr Schedule (one_cycle)" in out
