"""cyclr.Recorder: what a PyTorch or JAX loop used, step by step, with a plot, CSV and TensorBoard."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import cyclr
from cyclr import Recorder

torch = pytest.importorskip("torch")
import cyclr.torch  # noqa: E402


def _torch_run(make_sched, steps: int, opt_kind: str = "adam") -> tuple[Recorder, list[float]]:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = (
        torch.optim.Adam(model.parameters(), lr=0.01)
        if opt_kind == "adam"
        else torch.optim.SGD([{"params": model.weight}, {"params": model.bias, "lr": 0.5}], lr=0.05, momentum=0.9)
    )
    sched = make_sched(opt)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    rec, losses = Recorder(), []
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        rec.torch(opt, loss)
        losses.append(float(loss))
        opt.step()
        sched.step()
    return rec, losses


def test_torch_records_what_each_update_used() -> None:
    s = cyclr.one_cycle(max_lr=0.1, total_steps=40)
    rec, losses = _torch_run(lambda o: cyclr.torch.Scheduler(o, s, momentum=(0.85, 0.95)), 40)
    t = np.arange(40)
    np.testing.assert_allclose(rec.lr, s(t), rtol=1e-12)
    np.testing.assert_allclose(rec.momentum, s.mirror(0.85, 0.95)(t), rtol=1e-12)  # Adam's betas[0]
    assert rec.loss == losses and rec.steps == list(range(40)) and len(rec) == 40


def test_torch_records_any_scheduler_and_every_group() -> None:
    rec, _ = _torch_run(lambda o: torch.optim.lr_scheduler.StepLR(o, 5, gamma=0.5), 12, "sgd")
    assert rec.lr == [0.05] * 5 + [0.025] * 5 + [0.0125] * 2
    assert [g[1] for g in rec.lrs] == [0.5] * 5 + [0.25] * 5 + [0.125] * 2
    assert rec.momentum == [0.9] * 12


def test_optax_loop_records_the_schedule_at_each_step() -> None:
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    s = cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=5)
    from cyclr import jax as cjax

    opt = optax.sgd(cjax.schedule(s))
    params = jax.numpy.ones(3)
    state = opt.init(params)
    rec = Recorder()

    def loss_fn(p):  # type: ignore[no-untyped-def]
        return (p**2).sum()

    for step in range(12):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        rec.schedule(s, step, loss)
        updates, state = opt.update(grads, state)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(rec.lr, s(np.arange(12)), rtol=1e-12)
    assert rec.loss[0] == 3.0 and rec.loss[-1] < rec.loss[0]


def test_csv_and_tensorboard_hold_the_recorded_values(tmp_path: Path) -> None:
    rec, _ = _torch_run(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, gamma=0.1), 7, "sgd")
    rows = list(csv.DictReader(rec.to_csv(tmp_path / "r.csv").open()))
    assert [float(r["lr"]) for r in rows] == rec.lr and [float(r["lr_1"]) for r in rows] == [g[1] for g in rec.lrs]
    assert [float(r["loss"]) for r in rows] == rec.loss and [int(r["step"]) for r in rows] == rec.steps
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    rec.to_tensorboard(tmp_path / "tb")
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    lr = [e.value for e in acc.Scalars("cyclr/lr")]
    np.testing.assert_allclose(lr, rec.lr, rtol=1e-6)  # TensorBoard keeps float32
    np.testing.assert_allclose([e.value for e in acc.Scalars("cyclr/loss")], rec.loss, rtol=1e-6)
    assert [e.step for e in acc.Scalars("cyclr/momentum")] == rec.steps


def test_plot_and_notebook_display(tmp_path: Path) -> None:
    rec, _ = _torch_run(lambda o: cyclr.torch.Scheduler(o, cyclr.sgdr(0.1, period=10)), 30)
    fig = rec.plot(tmp_path / "rec.png")
    assert len(fig.axes) == 3  # LR, its momentum twin, the loss
    assert (tmp_path / "rec.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png = rec._repr_png_()
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Recorder()._repr_png_() is None and repr(rec) == "Recorder(30 steps)"


def test_bad_values_are_refused_by_name() -> None:
    rec = Recorder()
    with pytest.raises(ValueError, match="lr must be a finite number"):
        rec.record(lr=float("nan"))
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        rec.record(lr=0.1, step=-1)
    with pytest.raises(ValueError, match="nothing recorded yet"):
        rec.plot()
