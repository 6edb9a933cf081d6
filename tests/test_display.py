"""Notebook display: schedules, range-test results and recorders draw themselves through IPython's
own display formatter (what a Jupyter cell shows)."""

from __future__ import annotations

from typing import Any

import pytest

import cyclr

formatters = pytest.importorskip("IPython.core.formatters")
PNG = b"\x89PNG\r\n\x1a\n"


def _shown(obj: Any) -> dict[str, Any]:
    data, _ = formatters.DisplayFormatter().format(obj)
    return dict(data)


@pytest.mark.parametrize(
    "schedule",
    [
        cyclr.SEED_DEFAULT,
        cyclr.one_cycle(max_lr=0.1, total_steps=500),
        cyclr.warmup(cyclr.sgdr(0.1, period=50, period_mult=2.0), steps=20),
    ],
)
def test_a_schedule_shows_its_plot_and_its_repr(schedule: cyclr.Schedule) -> None:
    data = _shown(schedule)
    assert data["image/png"][:8] == PNG and len(data["image/png"]) > 10_000
    assert data["text/plain"] == repr(schedule)


def test_a_range_test_result_and_a_recorder_show_their_plots() -> None:
    torch = pytest.importorskip("torch")
    import cyclr.torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)] * 10
    result = cyclr.torch.lr_range_test(model, opt, torch.nn.functional.cross_entropy, batches, num_steps=40)
    assert _shown(result)["image/png"][:8] == PNG
    rec = cyclr.Recorder()
    sched = cyclr.torch.Scheduler(opt, cyclr.triangular(0.01, 0.1, step_size=5), momentum=(0.85, 0.95))
    for _ in range(20):
        rec.torch(opt, 1.0)
        opt.step()
        sched.step()
    assert _shown(rec)["image/png"][:8] == PNG
    assert "image/png" not in _shown(cyclr.Recorder())  # nothing recorded: the text alone
