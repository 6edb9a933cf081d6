"""The command line, plots, the README example and the packaging promises (lazy imports)."""

from __future__ import annotations

import csv
import io
import json
import runpy
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from click.testing import CliRunner

import cyclr
from cyclr.cli import cli
from cyclr.plot import gallery_entries, plot_schedules

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _png_shape(path: Path) -> tuple[int, ...]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return tuple(mpimg.imread(path).shape)


def test_no_arguments_draws_the_gallery_and_prints_the_summary(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, [])
    assert result.exit_code == 0, result.output
    h, w, _ = _png_shape(tmp_path / "cyclr-gallery.png")
    assert w > 1500 and h > 1000
    for entry in gallery_entries():
        assert entry.title in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert "seed default" in rows[0]  # the seed's schedule is the first row


def test_gallery_covers_every_family() -> None:
    covered = {e.schedule.name for e in gallery_entries()}
    covered |= {"mirror"}  # drawn as the dashed momentum of the one-cycle panels
    assert covered == set(cyclr.REGISTRY)


def test_plot_writes_a_png_with_several_schedules_and_momentum(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("name: sgdr\nmax_lr: 0.01\nperiod: 60\nperiod_mult: 1.5\n")
    args = ["plot", "triangular:base_lr=0.001,max_lr=0.01,step_size=50", str(spec_file), "--momentum", "-o", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert _png_shape(out)[1] > 800


def test_show_csv_prints_the_schedule_values(runner: CliRunner) -> None:
    result = runner.invoke(
        cli,
        [
            "show",
            "one_cycle:max_lr=0.1,total_steps=100",
            "--steps",
            "100",
            "--every",
            "7",
            "--format",
            "csv",
            "--momentum-range",
            "0.85,0.95",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    s = cyclr.one_cycle(0.1, 100)
    m = s.mirror(0.85, 0.95)
    assert [int(r["step"]) for r in rows] == list(range(0, 100, 7))
    for r in rows:
        assert float(r["lr"]) == s(int(r["step"]))
        assert float(r["momentum"]) == pytest.approx(m(int(r["step"])), rel=1e-12)


def test_show_json_round_trips_the_config(runner: CliRunner) -> None:
    spec = json.dumps({"name": "cosine", "max_lr": 0.1, "total_steps": 50})
    result = runner.invoke(cli, ["show", spec, "--steps", "10", "--every", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert cyclr.from_config(data["config"]) == cyclr.cosine(0.1, 50)
    assert [v["lr"] for v in data["values"]] == [cyclr.cosine(0.1, 50)(t) for t in range(10)]


def test_show_table_lists_steps(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["show", "step_decay:lr=0.1,step_size=3", "--steps", "9", "--every", "3"])
    assert result.exit_code == 0, result.output
    for value in ("0.1", "0.01", "0.001"):
        assert value in result.output


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cyclic:base_lr=0.1,max_lr=0.01,step_size=5", "parameter 'max_lr' must be >= base_lr"),
        ("no_such_schedule:lr=1", "unknown schedule 'no_such_schedule'"),
        ("triangular:base_lr=0.001,max_lr=0.01", "missing required parameter(s) step_size"),
        ("missing.yaml", "not found"),
    ],
)
def test_bad_specs_exit_2_with_a_clear_message(runner: CliRunner, spec: str, expected: str) -> None:
    result = runner.invoke(cli, ["show", spec])
    assert result.exit_code == 2
    assert expected in result.output


def test_bad_momentum_range_is_rejected(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["show", "cosine:max_lr=0.1,total_steps=9", "--momentum-range", "0.95,1.5"])
    assert result.exit_code == 2
    assert "0 <= LOW <= HIGH < 1" in result.output


def test_list_names_every_schedule(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["list"])
    assert result.exit_code == 0
    for name in cyclr.REGISTRY:
        assert name in result.output


@pytest.mark.parametrize("command", [[], ["gallery"], ["plot"], ["show"], ["list"]])
def test_help_documents_every_command(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    if command == ["plot"]:
        for option in ("--steps", "--momentum", "--log", "--output"):
            assert option in result.output


def test_plot_schedules_marks_cycles_and_labels_axes(tmp_path: Path) -> None:
    s = cyclr.triangular(0.001, 0.01, 50)
    fig = plot_schedules([s], steps=400, path=tmp_path / "x.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "optimizer step"
    assert ax.get_ylabel() == "learning rate"
    curve = ax.lines[0]
    np.testing.assert_array_equal(curve.get_ydata(), s(np.arange(400)))
    vertical = sorted(line.get_xdata()[0] for line in ax.lines[1:])
    assert vertical == [100.0, 200.0, 300.0]


def test_console_script_runs_from_the_installed_package() -> None:
    out = subprocess.run([sys.executable, "-m", "cyclr.cli", "list"], capture_output=True, text=True, check=True)
    assert "one_cycle" in out.stdout


def test_readme_quick_start_example_trains(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "torch_quickstart.py"), run_name="__main__")
    final = capsys.readouterr().out
    assert "final loss" in final and "lr 2.00e-07" in final  # one_cycle(0.05, 200) ends at 0.05/25/1e4


def test_core_import_pulls_in_no_framework() -> None:
    code = (
        "import sys, cyclr; cyclr.one_cycle(0.1, 100)(5); "
        "print(sorted(m for m in ('torch', 'jax', 'tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_framework_names_the_extra_to_install() -> None:
    code = "import sys; sys.modules['torch'] = None\ntry:\n import cyclr.torch\nexcept ImportError as e:\n print(e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'cyclr[torch]'" in out.stdout


def test_unsafe_yaml_spec_is_a_clear_error_not_a_traceback(runner: CliRunner, tmp_path: Path) -> None:
    spec = tmp_path / "evil.yaml"
    spec.write_text("!!python/object/apply:os.system ['echo hi']\n")
    result = runner.invoke(cli, ["show", str(spec)])
    assert result.exit_code == 2
    assert "not a valid schedule YAML file" in result.output


def test_find_prints_suggestions_and_a_schedule(runner: CliRunner, tmp_path: Path) -> None:
    plot, out = tmp_path / "rt.png", tmp_path / "rt.json"
    result = runner.invoke(cli, ["find", "--task", "digits", "--num-steps", "60", "-o", str(plot), "--json", str(out)])
    assert result.exit_code == 0, result.output
    for rule in ("steepest", "valley", "minimum", "base_lr", "max_lr", "calibrated", "spread over 3 sweeps"):
        assert rule in result.output
    assert "180 steps" in result.output  # 3 sweeps by default
    saved = json.loads(out.read_text())
    schedule = cyclr.from_config(saved["proposed"]["lr"])
    assert schedule.name == "one_cycle" and schedule.max_lr == saved["suggestion"]  # type: ignore[attr-defined]
    assert saved["suggestion"] == saved["suggestions"]["calibrated"]
    assert _png_shape(plot)[1] > 800


def test_find_proposes_no_lr_when_the_sweeps_disagree(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sweeps over 10x apart: cyclr find shows every rule and the spread, says why it proposes
    no LR, writes the curve, and exits 1 (no schedule printed)."""
    import numpy as np

    from cyclr.bench.train import TorchRunner
    from cyclr.finder import RangeTest

    def disagreeing(self: object, task: object, data: object, optimizer: str, seed: int, **options: object) -> object:
        test = RangeTest()
        lrs = np.geomspace(1e-7, 10, 100)
        for centre in (-5.0, -3.0, -1.5):
            test.begin()
            for lr in lrs:
                x = np.log10(lr) - centre
                loss = 2.0 - 1.0 / (1.0 + np.exp(-x * 3)) + 1.0 * (x > 1)
                if test.record(float(lr), float(loss)):
                    break
        return test.result(steps_per_epoch=44)

    monkeypatch.setattr(TorchRunner, "range_test", disagreeing)
    out = tmp_path / "rt.json"
    result = runner.invoke(cli, ["find", "--task", "digits", "-o", str(tmp_path / "rt.png"), "--json", str(out)])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "confidence: low" in text and "no LR proposed: no safe learning rate" in text
    assert "one_cycle" not in text
    saved = json.loads(out.read_text())
    assert saved["confidence"]["level"] == "low" and "no safe learning rate" in saved["error"]


def test_find_rejects_an_unknown_task(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["find", "--task", "imagenet"])
    assert result.exit_code == 2
    assert "unknown task 'imagenet'; valid tasks: airline-lstm, cartpole-dqn" in " ".join(result.output.split())
    assert "digits" in result.output
