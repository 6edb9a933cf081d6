"""cyclr.lightning with the real Lightning Trainer: the range test at fit start through the module's
own training_step, schedules sized from estimated_stepping_batches, and resume from a checkpoint."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

import cyclr  # noqa: E402
import cyclr.lightning as cl  # noqa: E402
from cyclr.torch import Scheduler  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Module(L.LightningModule):
    """A small regression net whose training_step logs, as real modules do."""

    def __init__(self, optimizer: str = "sgd", with_scheduler: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        self.optimizer_name, self.with_scheduler = optimizer, with_scheduler
        self.calls = 0
        self.seen: list[tuple[float, float]] = []  # (lr, momentum) in use at each real training step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.calls += 1
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        group = self.trainer.optimizers[0].param_groups[0]
        mom = group["betas"][0] if "betas" in group else group["momentum"]
        self.seen.append((float(group["lr"]), float(mom)))

    def configure_optimizers(self) -> Any:
        if self.optimizer_name == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        else:
            opt = torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)
        if self.with_scheduler:
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 5)}
        return opt


def _loader(n: int = 256, batch_size: int = 16) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def _trainer(tmp_path: Any, callbacks: list[Any], **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
        "deterministic": True,
        **kwargs,
    }
    return L.Trainer(callbacks=callbacks, **options)


class Snapshot(L.Callback):
    """The weights and optimizer state at train start, after every on_fit_start has run."""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}
        opt = trainer.optimizers[0]
        self.state = {id(p): dict(s) for p, s in opt.state.items()}
        self.group = {k: v for k, v in opt.param_groups[0].items() if k not in ("params", "lr", "momentum", "betas")}


def test_range_test_runs_the_training_step_restores_and_attaches(tmp_path: Any) -> None:
    module = Module()
    initial = {k: v.clone() for k, v in module.state_dict().items()}
    finder = cl.RangeTest(num_steps=40, start_lr=1e-4, progress=False)
    snap = Snapshot()
    trainer = _trainer(tmp_path, [finder, snap], max_epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's "few workers" advice
        trainer.fit(module, _loader())
    result = finder.result
    assert result is not None and len(result.curves) == 3 and 15 <= result.steps <= 3 * 40  # 3 sweeps by default
    assert module.calls == result.steps + 3 * 16  # the sweep ran through the module's training_step
    # the model and the optimizer came back exactly: training starts from the initial weights, empty state
    for k, v in initial.items():
        torch.testing.assert_close(snap.weights[k], v, rtol=0, atol=0)
    assert snap.state == {}
    assert snap.group["weight_decay"] == 0 and snap.group["dampening"] == 0
    # the attached schedule is the one the result gives for the whole run (48 updates, 3 epochs)
    assert isinstance(trainer.lr_scheduler_configs[0].scheduler, Scheduler)
    expected = result.schedule("one_cycle", steps_per_epoch=16, epochs=3)
    assert isinstance(expected, cyclr.OneCycle) and expected.total_steps == 48
    assert [lr for lr, _ in module.seen] == pytest.approx([expected(k) for k in range(48)], rel=1e-12)
    mom = expected.mirror(0.85, 0.95)
    assert [m for _, m in module.seen] == pytest.approx([mom(k) for k in range(48)], rel=1e-12)
    assert finder.scheduler is trainer.lr_scheduler_configs[0].scheduler
    assert finder.scheduler.range_test is result
    # the sweep's self.log calls were muted: the module's log is its own method again
    assert module.log.__func__ is L.LightningModule.log


def test_range_test_triangular_with_adam_and_accumulation(tmp_path: Any) -> None:
    module = Module("adam")
    finder = cl.RangeTest(kind="triangular", num_steps=30, start_lr=1e-4, progress=False)
    trainer = _trainer(tmp_path, [finder], max_epochs=4, accumulate_grad_batches=2)
    trainer.fit(module, _loader())
    result = finder.result
    assert result.info["steps_per_epoch"] == 8  # 16 batches, 2 per update
    assert module.calls == 2 * result.steps + 4 * 16  # two micro-batches per sweep step
    expected = result.schedule("triangular", steps_per_epoch=8, epochs=4)
    lrs = [lr for lr, _ in module.seen[::2]]  # the LR changes once per update
    assert lrs == pytest.approx([expected(k) for k in range(32)], rel=1e-12)
    beta1 = [b for _, b in module.seen[::2]]
    assert beta1 == pytest.approx([expected.mirror(0.85, 0.95)(k) for k in range(32)], rel=1e-12)


class StopAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt  # Lightning's graceful shutdown: an interrupted run


@pytest.mark.parametrize("make", ["range_test", "one_cycle"])
def test_resume_from_a_lightning_checkpoint_continues_exactly(tmp_path: Any, make: str) -> None:
    def callback() -> Any:
        return cl.RangeTest(num_steps=30, start_lr=1e-4, progress=False) if make == "range_test" else cl.OneCycle(0.05)

    full = Module()
    first = callback()
    _trainer(tmp_path / "full", [first], max_epochs=4).fit(full, _loader())
    assert len(full.seen) == 64

    # the same run, interrupted after epoch 2 (checkpoint saved there), then resumed in a new process' objects
    ckpt = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_epochs=1, save_top_k=-1)
    part = Module()
    interrupted = _trainer(tmp_path / "part", [callback(), ckpt, StopAt(40)], max_epochs=4, enable_checkpointing=True)
    with pytest.raises(SystemExit):  # Lightning turns the interrupt into an exit after teardown
        interrupted.fit(part, _loader())
    path = tmp_path / "ckpt" / "epoch=1-step=32.ckpt"
    assert path.exists()

    resumed_module = Module()
    again = callback()
    _trainer(tmp_path / "resumed", [again], max_epochs=4).fit(resumed_module, _loader(), ckpt_path=str(path))
    if make == "range_test":
        assert again.result is None  # no second range test on resume
        assert resumed_module.calls == 32
    assert [lr for lr, _ in resumed_module.seen] == pytest.approx([lr for lr, _ in full.seen[32:]], rel=1e-12)
    assert [m for _, m in resumed_module.seen] == pytest.approx([m for _, m in full.seen[32:]], rel=1e-12)
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed_module.state_dict()[k], v, rtol=1e-6, atol=1e-7)


def test_schedules_are_sized_from_estimated_stepping_batches(tmp_path: Any) -> None:
    module = Module()
    cb = cl.OneCycle(0.05, pct_start=0.25)
    trainer = _trainer(tmp_path, [cb], max_epochs=3, accumulate_grad_batches=4)
    trainer.fit(module, _loader())
    assert trainer.estimated_stepping_batches == 12
    expected = cyclr.one_cycle(0.05, total_steps=12, pct_start=0.25)
    assert [lr for lr, _ in module.seen[::4]] == pytest.approx([expected(k) for k in range(12)], rel=1e-12)
    assert [m for _, m in module.seen[::4]] == pytest.approx(
        [expected.mirror(0.85, 0.95)(k) for k in range(12)], rel=1e-12
    )

    sized: list[int] = []

    def build(total: int) -> cyclr.Schedule:
        sized.append(total)
        return cyclr.triangular2(1e-3, 1e-2, step_size=total // 4)

    module = Module()
    _trainer(tmp_path, [cl.CyclicSchedule(build)], max_steps=20).fit(module, _loader())
    assert sized == [20]
    tri = cyclr.triangular2(1e-3, 1e-2, step_size=5)
    assert [lr for lr, _ in module.seen] == pytest.approx([tri(k) for k in range(20)], rel=1e-12)
    assert [m for _, m in module.seen] == [0.9] * 20  # momentum left alone

    module = Module()
    config = cyclr.exp_range(1e-3, 1e-2, step_size=3, gamma=0.99).to_config()
    _trainer(tmp_path, [cl.CyclicSchedule(config, momentum=(0.8, 0.9))], max_steps=10).fit(module, _loader())
    exp = cyclr.from_config(config)
    assert [lr for lr, _ in module.seen] == pytest.approx([exp(k) for k in range(10)], rel=1e-12)
    assert [m for _, m in module.seen] == pytest.approx([exp.mirror(0.8, 0.9)(k) for k in range(10)], rel=1e-12)


def test_clear_errors(tmp_path: Any) -> None:
    with pytest.raises(cyclr.InvalidParameterError, match=r"RangeTest: parameter 'kind'.*'cosine'"):
        cl.RangeTest(kind="cosine")
    with pytest.raises(cyclr.InvalidParameterError, match=r"'step_fn'.*it is provided for you"):
        cl.RangeTest(step_fn=lambda m, b: m(b))
    # the sweep's options are checked when the callback is made, not at fit start
    with pytest.raises(cyclr.InvalidParameterError, match=r"'num_steps'.*got 3"):
        cl.RangeTest(num_steps=3)
    with pytest.raises(cyclr.InvalidParameterError, match=r"'num_step'.*one of the range test's options: .*num_steps"):
        cl.RangeTest(num_step=50)
    with pytest.raises(cyclr.InvalidParameterError, match=r"'end_lr'"):
        cl.RangeTest(start_lr=1.0, end_lr=0.1)
    with pytest.raises(cyclr.InvalidParameterError, match=r"'momentum'.*'yes'"):
        cl.RangeTest(momentum="yes")
    with pytest.raises(cyclr.InvalidParameterError, match=r"'momentum'.*0.9"):
        cl.CyclicSchedule(cyclr.constant(0.1), momentum=0.9)  # type: ignore[arg-type]
    with pytest.raises(cyclr.InvalidParameterError, match="max_lr"):
        cl.OneCycle(-1.0)
    with pytest.raises(cyclr.InvalidParameterError, match="schedule"):
        cl.CyclicSchedule(0.1)  # type: ignore[arg-type]
    endless = _trainer(tmp_path, [cl.OneCycle(0.05)], max_epochs=-1)
    with pytest.raises(ValueError, match=r"estimated_stepping_batches, which is inf.*max_steps or max_epochs"):
        endless.fit(Module(), _loader())
    trainer = _trainer(tmp_path, [cl.OneCycle(0.05)], max_epochs=1)
    with pytest.raises(ValueError, match=r"configure_optimizers also returned a scheduler \(StepLR\)"):
        trainer.fit(Module(with_scheduler=True), _loader())


class Data(L.LightningDataModule):
    """Shuffled by the loader's own generator, which lives as long as the data module."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(5)
        self.ds = _loader().dataset

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.ds, batch_size=16, shuffle=True, generator=self.generator)


class Batches(Module):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[torch.Tensor] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.batches.append(batch[0].clone())
        return super().training_step(batch, batch_idx)


def test_with_a_datamodule_the_run_sees_the_batches_it_would_have_seen(tmp_path: Any) -> None:
    with_test, without = Batches(), Batches()
    finder = cl.RangeTest(num_steps=30, start_lr=1e-4, repeats=1, progress=False)
    _trainer(tmp_path, [finder], max_epochs=2).fit(with_test, datamodule=Data())
    _trainer(tmp_path, [cl.CyclicSchedule(cyclr.constant(0.01))], max_epochs=2).fit(without, datamodule=Data())
    sweep = finder.result.steps
    assert len(with_test.batches) == sweep + 32 and len(without.batches) == 32
    assert all(torch.equal(a, b) for a, b in zip(with_test.batches[sweep:], without.batches))


def test_lightnings_learning_rate_monitor_logs_the_attached_schedule(tmp_path: Any) -> None:
    """Lightning's own LearningRateMonitor sees the scheduler the callback attached (named 'cyclr')."""
    import csv

    from lightning.pytorch.loggers import CSVLogger

    module = Module()
    monitor = L.callbacks.LearningRateMonitor(logging_interval="step", log_momentum=True)
    trainer = _trainer(
        tmp_path, [cl.OneCycle(0.05), monitor], max_steps=12, logger=CSVLogger(tmp_path), log_every_n_steps=1
    )
    trainer.fit(module, _loader())
    with open(trainer.logger.log_dir + "/metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    lrs = [float(r["cyclr"]) for r in rows if r.get("cyclr")]
    moms = [float(r["cyclr-momentum"]) for r in rows if r.get("cyclr-momentum")]
    expected = cyclr.one_cycle(0.05, total_steps=12)
    assert lrs == pytest.approx([expected(k) for k in range(12)], rel=1e-6)
    assert moms == pytest.approx([expected.mirror(0.85, 0.95)(k) for k in range(12)], rel=1e-6)
