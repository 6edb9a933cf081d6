"""cyclr.hf with the real transformers Trainer on a tiny GPT-2 (built from a config: no download):
the range test through the Trainer's compute_loss, schedules sized by the Trainer's own rule,
and resume from a Trainer checkpoint."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import cyclr  # noqa: E402
import cyclr.hf as chf  # noqa: E402
from cyclr.torch import Scheduler  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")


class Tokens(torch.utils.data.Dataset):
    """Sequences from a repeating pattern: a language model can learn them."""

    def __init__(self, n: int = 64, length: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        starts = torch.randint(0, 32, (n, 1), generator=g)
        self.ids = (starts + torch.arange(length) * 3) % 32

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _model() -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    return transformers.GPT2LMHeadModel(config)


class Seen(transformers.TrainerCallback):
    """(lr, beta1) in use at every optimizer update, and the weights when training begins."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float]] = []
        self.start: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.start = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
        group = optimizer.param_groups[0]
        beta1 = group["betas"][0] if "betas" in group else group["momentum"]
        self.seen.append((float(group["lr"]), float(beta1)))


def _trainer(tmp_path: Any, model: Any, seen: Seen, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": 8,
        "report_to": [],
        "use_cpu": True,
        "save_strategy": "no",
        "disable_tqdm": True,
        "logging_strategy": "no",
        "seed": 0,
        **kwargs,
    }
    args = transformers.TrainingArguments(**options)
    return transformers.Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[seen])


def test_range_test_then_one_cycle_over_the_run(tmp_path: Any) -> None:
    model = _model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    seen = Seen()
    trainer = _trainer(tmp_path, model, seen, num_train_epochs=2, weight_decay=0.01)
    assert chf.training_steps(trainer) == (16, 8)
    sched = chf.attach(trainer, num_steps=40, start_lr=1e-4, end_lr=10.0)
    result = sched.range_test
    assert result is not None and result.steps >= 10 and len(result.curves) == 3  # 3 sweeps by default
    assert result.info["steps_per_epoch"] == 8
    # the Trainer's own optimizer: AdamW with decay off for biases and LayerNorm weights
    opt = trainer.optimizer
    assert isinstance(opt, torch.optim.AdamW) and [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    trainer.train()
    assert trainer.state.global_step == 16
    for k, v in initial.items():  # the sweep changed nothing the run starts from
        torch.testing.assert_close(seen.start[k], v, rtol=0, atol=0)
    expected = result.schedule("one_cycle", steps_per_epoch=8, epochs=2)
    assert expected.total_steps == 16
    assert [lr for lr, _ in seen.seen] == pytest.approx([expected(k) for k in range(16)], rel=1e-12)
    assert [b for _, b in seen.seen] == pytest.approx([expected.mirror(0.85, 0.95)(k) for k in range(16)], rel=1e-12)
    assert trainer.lr_scheduler is sched


def test_any_schedule_sized_from_max_steps_with_accumulation(tmp_path: Any) -> None:
    sizes: list[int] = []

    def build(n: int) -> cyclr.Schedule:
        sizes.append(n)
        w = 2
        return cyclr.warmup(cyclr.cosine(1e-3, total_steps=n - w), steps=w)  # Hugging Face's convention

    seen = Seen()
    trainer = _trainer(tmp_path, _model(), seen, max_steps=10, gradient_accumulation_steps=2)
    chf.attach(trainer, build, momentum=None)
    trainer.train()
    assert sizes == [10] and trainer.state.global_step == 10
    expected = build(10)
    assert [lr for lr, _ in seen.seen] == pytest.approx([expected(k) for k in range(10)], rel=1e-12)
    assert {b for _, b in seen.seen} == {0.9}  # momentum left alone
    # same numbers as transformers' own warm-up + cosine over 10 steps
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    ref = transformers.get_cosine_schedule_with_warmup(ref_opt, 2, 10)
    hf = []
    for _ in range(10):
        hf.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    assert [lr for lr, _ in seen.seen] == pytest.approx(hf, rel=1e-12, abs=1e-15)


def test_resume_from_a_trainer_checkpoint_continues_exactly(tmp_path: Any) -> None:
    schedule = cyclr.triangular2(1e-4, 3e-3, step_size=3)
    full_seen = Seen()
    full = _trainer(tmp_path / "full", _model(), full_seen, max_steps=10)
    chf.attach(full, schedule)
    full.train()

    part_seen = Seen()
    part = _trainer(tmp_path / "part", _model(), part_seen, max_steps=10, save_strategy="steps", save_steps=4)
    chf.attach(part, schedule)
    part.train()
    ckpt = tmp_path / "part" / "checkpoint-4"
    state = torch.load(ckpt / "scheduler.pt", weights_only=True)  # plain data
    assert state["last_epoch"] == 4

    resumed_seen = Seen()
    resumed = _trainer(tmp_path / "resumed", _model(), resumed_seen, max_steps=10)
    chf.attach(resumed, "range_test", resume_from_checkpoint=str(ckpt))  # no test: the checkpoint has the schedule
    assert resumed.lr_scheduler.range_test is None
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert [lr for lr, _ in resumed_seen.seen] == pytest.approx([lr for lr, _ in full_seen.seen[4:]], rel=1e-12)
    assert [lr for lr, _ in full_seen.seen] == pytest.approx([schedule(k) for k in range(10)], rel=1e-12)
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_clear_errors(tmp_path: Any) -> None:
    model = _model()
    trainer = _trainer(tmp_path, model, Seen(), max_steps=4)
    with pytest.raises(cyclr.InvalidParameterError, match=r"'schedule'.*'cosine'"):
        chf.attach(trainer, "cosine")
    with pytest.raises(cyclr.InvalidParameterError, match=r"'kind'.*'sgdr'"):
        chf.attach(trainer, kind="sgdr")
    with pytest.raises(cyclr.InvalidParameterError, match=r"'momentum'.*0.9"):
        chf.attach(trainer, cyclr.constant(1e-3), momentum=0.9)  # type: ignore[arg-type]
    with pytest.raises(cyclr.InvalidParameterError, match=r"'step_fn'.*it is provided for you"):
        chf.range_test(trainer, step_fn=lambda m, b: m(**b).loss)
    with pytest.raises(cyclr.InvalidParameterError, match=r"'num_steps'.*got 2"):
        chf.attach(trainer, num_steps=2)
    assert trainer.optimizer is None  # refused before anything was built
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    theirs = transformers.Trainer(
        model=model,
        args=trainer.args,
        train_dataset=Tokens(),
        optimizers=(opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)),
    )
    with pytest.raises(ValueError, match=r"already has a scheduler \(LambdaLR\)"):
        chf.attach(theirs, cyclr.constant(1e-3))
    assert isinstance(chf.attach(trainer, cyclr.constant(1e-3)), Scheduler)


@pytest.mark.parametrize(("accumulation", "epochs"), [(1, 1.0), (3, 2.0), (5, 1.5), (16, 3.0)])
def test_training_steps_fallback_follows_the_trainers_rule(tmp_path: Any, accumulation: int, epochs: float) -> None:
    """Older transformers lack set_initial_training_values: cyclr's own count must agree with it."""
    trainer = _trainer(tmp_path, _model(), Seen(), num_train_epochs=epochs, gradient_accumulation_steps=accumulation)

    class Older:  # the same Trainer, without the method
        args, train_dataset = trainer.args, trainer.train_dataset
        get_train_dataloader = staticmethod(trainer.get_train_dataloader)

    assert chf.training_steps(Older()) == chf.training_steps(trainer)


def test_your_own_optimizer_and_a_range_test_with_accumulation(tmp_path: Any) -> None:
    """optimizers=(your_optimizer, None): attach keeps it (SGD: its momentum cycles), and the range
    test steps it once per gradient_accumulation_steps micro-batches, as the Trainer will."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    args = _trainer(tmp_path, model, Seen(), num_train_epochs=1, gradient_accumulation_steps=3).args
    seen = Seen()
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Tokens(), optimizers=(opt, None), callbacks=[seen]
    )
    sched = chf.attach(trainer, kind="triangular", num_steps=20, start_lr=1e-3)
    assert trainer.optimizer is opt and sched.momentum_slots == ["momentum"]
    assert sched.range_test.info["steps_per_epoch"] == 3  # 8 batches, 3 per update: 3 updates
    assert chf.training_steps(trainer) == (3, 3)
    trainer.train()
    expected = sched.range_test.schedule("triangular", steps_per_epoch=3, epochs=1)
    assert [lr for lr, _ in seen.seen] == pytest.approx([expected(k) for k in range(3)], rel=1e-12)


def test_the_trainers_own_logs_report_the_schedule(tmp_path: Any) -> None:
    """What the Trainer logs as learning_rate (and so sends to TensorBoard, W&B...) is the
    schedule's value at each step."""
    schedule = cyclr.triangular(1e-4, 1e-3, step_size=2)
    trainer = _trainer(tmp_path, _model(), Seen(), max_steps=8, logging_strategy="steps", logging_steps=1)
    chf.attach(trainer, schedule, momentum=None)
    trainer.train()
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    assert logged == pytest.approx([schedule(k) for k in range(8)], rel=1e-12)
