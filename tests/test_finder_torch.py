"""The PyTorch LR range test loop: it must put everything back, bit for bit, however it ends
(pytorch-lr-finder #11, fastai #2892/#3185, Lightning #6675), work with an attached scheduler
(pytorch-lr-finder #81), keep discriminative LR ratios, honour gradient accumulation, validation
losses and repeats, and run rank-synchronised under DDP (Lightning #8983, fastai #2485)."""

from __future__ import annotations

import copy
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import cyclr  # noqa: E402
import cyclr.torch  # noqa: E402
from cyclr.finder import RangeTest, RangeTestResult  # noqa: E402
from cyclr.torch import lr_range_test  # noqa: E402

HERE = Path(__file__).parent


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # tiny models: threads only add contention on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- fixtures
def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def draws() -> tuple[list[float], list[float], float]:
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), random.random()


def make_data(n: int = 320, batch: int = 16, seed: int = 0, features: int = 8, classes: int = 3) -> list[Any]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, classes, generator=g)
    y = (x @ w).argmax(dim=1)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def make_model(dropout: bool = True) -> nn.Module:
    torch.manual_seed(1)
    layers: list[nn.Module] = [nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.2))
    layers.append(nn.Linear(16, 3))
    return nn.Sequential(*layers)


def pretrain(model: nn.Module, opt: torch.optim.Optimizer, data: list[Any], steps: int = 4, sched: Any = None) -> None:
    """A few real steps so the optimizer has state, then a fresh backward so grads exist."""
    model.train()
    for x, y in data[:steps]:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if sched is not None:
            sched.step()
    opt.zero_grad()
    x, y = data[steps]
    F.cross_entropy(model(x), y).backward()


def make_setup(
    opt_kind: str = "adam", lr: Any = 0.01, dropout: bool = True
) -> tuple[nn.Module, torch.optim.Optimizer, list[Any]]:
    data = make_data()
    model = make_model(dropout)
    if opt_kind == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)
    opt.param_groups[0]["note"] = "user key"  # a custom hyperparameter must survive too
    pretrain(model, opt, data)
    last = list(model.parameters())[-1]
    last.grad = None  # a parameter without a gradient must stay without one
    model.train()
    if dropout:
        model[3].eval()  # mixed train/eval flags, restored per module
    return model, opt, data


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    return copy.deepcopy(value)


def capture(model: nn.Module, opt: torch.optim.Optimizer, sched: Any = None) -> dict[str, Any]:
    index = {id(p): i for i, p in enumerate(p for g in opt.param_groups for p in g["params"])}
    return {
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()],
        "training": [(name, m.training) for name, m in model.named_modules()],
        "opt_state": {index[id(p)]: {k: _copy(v) for k, v in s.items()} for p, s in opt.state.items()},
        "groups": [{k: _copy(v) for k, v in g.items() if k != "params"} for g in opt.param_groups],
        "group_params": [[id(p) for p in g["params"]] for g in opt.param_groups],
        "group_objects": [{k: id(v) for k, v in g.items() if isinstance(v, torch.Tensor)} for g in opt.param_groups],
        "sched": copy.deepcopy(sched.state_dict()) if sched is not None else None,
    }


def same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def assert_restored(before: dict[str, Any], after: dict[str, Any]) -> None:
    sd_a, sd_b = before["state_dict"], after["state_dict"]
    assert sd_a.keys() == sd_b.keys()
    changed = [k for k in sd_a if not same(sd_a[k], sd_b[k])]
    assert changed == [], f"state_dict entries not restored: {changed}"
    assert [g is None for g in before["grads"]] == [g is None for g in after["grads"]]
    assert all(same(a, b) for a, b in zip(before["grads"], after["grads"]) if a is not None), "grads"
    assert before["training"] == after["training"]
    assert before["opt_state"].keys() == after["opt_state"].keys()
    for i in before["opt_state"]:
        assert same(before["opt_state"][i], after["opt_state"][i]), f"optimizer state of param {i}"
    for i, (ga, gb) in enumerate(zip(before["groups"], after["groups"])):
        assert ga.keys() == gb.keys(), f"group {i} keys"
        wrong = {k: (ga[k], gb[k]) for k in ga if not same(ga[k], gb[k])}
        assert wrong == {}, f"group {i} hyperparameters: {wrong}"
    assert before["group_params"] == after["group_params"]
    assert before["group_objects"] == after["group_objects"], "tensor hyperparameters replaced, not restored in place"
    assert same(before["sched"], after["sched"]), "scheduler state"


class Scripted:
    """A step_fn: cross-entropy, with a scripted failure at the ``at``-th training call."""

    def __init__(self, at: int | None = None, fail: str | None = None, peek: Any = None) -> None:
        self.at, self.fail, self.peek = at, fail, peek
        self.calls = 0

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(model(x), y)
        if not torch.is_grad_enabled():
            return loss
        self.calls += 1
        if self.peek is not None:
            self.peek(self.calls, model)
        if self.calls == self.at:
            if self.fail == "nan":
                return loss * math.nan
            if self.fail == "error":
                raise RuntimeError(f"boom at step {self.calls}")
            if self.fail == "interrupt":
                raise KeyboardInterrupt
        return loss


SCENARIOS = {
    #           start_lr, end_lr, num_steps, fail-at, fail
    "completed": (1e-5, 1e-2, 40, None, None),
    "diverged": (1e-4, 1e5, 100, None, None),
    "nan": (1e-5, 1e-1, 100, 30, "nan"),
    "exception": (1e-5, 1e-1, 100, 20, "error"),
    "interrupt": (1e-5, 1e-1, 100, 15, "interrupt"),
}


@pytest.mark.parametrize("stage", ["memory", "disk"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("opt_kind", ["adam", "sgd"])
def test_restores_everything(scenario: str, stage: str, opt_kind: str, tmp_path: Path) -> None:
    start, end, steps, at, fail = SCENARIOS[scenario]
    model, opt, data = make_setup(opt_kind)
    assert len(opt.state) > 0 and any(p.grad is not None for p in model.parameters())
    before = capture(model, opt)
    first_weight = before["state_dict"]["0.weight"]
    seen: dict[str, Any] = {}

    def peek(call: int, m: nn.Module) -> None:
        if call == 1:
            seen["files"] = sorted(p.name for p in tmp_path.iterdir())
        seen["moved"] = not torch.equal(m[0].weight, first_weight)
        seen["modes"] = [mod.training for mod in m.modules()]

    step_fn = Scripted(at, fail, peek)
    seed_all(1234)
    kwargs = dict(
        start_lr=start,
        end_lr=end,
        num_steps=steps,
        step_fn=step_fn,
        stage=stage,
        stage_dir=tmp_path,
        progress=False,
    )
    result: RangeTestResult | None = None
    if fail == "error":
        with pytest.raises(RuntimeError, match="boom at step 20"):
            lr_range_test(model, opt, None, data, **kwargs)
    elif fail == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            lr_range_test(model, opt, None, data, **kwargs)
    else:
        result = lr_range_test(model, opt, None, data, **kwargs)
    after_draws = draws()
    seed_all(1234)
    assert after_draws == draws(), "RNG states not restored"

    assert seen["moved"], "the test did not train the model"
    assert all(seen["modes"]), "the test must train in train mode (all modules)"
    assert_restored(before, capture(model, opt))
    assert list(tmp_path.iterdir()) == [], "staging file left behind"
    if stage == "disk":
        assert len(seen["files"]) == 1 and seen["files"][0].endswith(".pt")
    else:
        assert seen["files"] == []

    if scenario == "completed":
        assert result is not None and result.stop_reason == "completed" and result.steps == steps
    elif scenario == "diverged":
        assert result is not None and result.stop_reason.startswith("diverged"), result.stop_reason
        assert result.steps < steps
    elif scenario == "nan":
        assert result is not None and result.stop_reason == "non-finite loss"
        assert result.steps == at and math.isnan(result.losses[-1])
        assert np.isfinite(result.losses[:-1]).all()
    else:
        assert step_fn.calls == at


def test_restored_model_trains_like_an_untouched_twin() -> None:
    """After the test, training continues exactly as if it had never run."""
    model, opt, data = make_setup("adam")
    twin, twin_opt, _ = make_setup("adam")
    seed_all(7)
    lr_range_test(model, opt, F.cross_entropy, data, end_lr=1e3, num_steps=50, progress=False)
    for m, o in ((model, opt), (twin, twin_opt)):
        seed_all(7)
        for x, y in data[:3]:
            o.zero_grad()
            F.cross_entropy(m(x), y).backward()
            o.step()
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), k


def test_tensor_lr_identity_preserved() -> None:
    lr = torch.tensor(0.01)
    model, opt, data = make_setup("adam", lr=lr)
    assert opt.param_groups[0]["lr"] is lr
    before = capture(model, opt)
    seen: list[tuple[bool, float]] = []
    sweep = RangeTest(1e-5, 1.0, 30)

    def peek(call: int, m: nn.Module) -> None:
        group_lr = opt.param_groups[0]["lr"]
        seen.append((group_lr is lr, float(group_lr)))

    lr_range_test(
        model, opt, None, data, start_lr=1e-5, end_lr=1.0, num_steps=30, step_fn=Scripted(peek=peek), progress=False
    )
    assert all(identity for identity, _ in seen)
    assert [v for _, v in seen] == pytest.approx([sweep.lr(i) for i in range(len(seen))], rel=1e-6)
    assert opt.param_groups[0]["lr"] is lr
    assert torch.equal(lr, torch.tensor(0.01))
    assert_restored(before, capture(model, opt))


def test_tensor_betas_identity_preserved() -> None:
    data = make_data()
    model = make_model()
    b1, b2 = torch.tensor(0.9), torch.tensor(0.999)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01), betas=(b1, b2))
    pretrain(model, opt, data)
    before = capture(model, opt)
    lr_range_test(model, opt, F.cross_entropy, data, num_steps=20, end_lr=1.0, progress=False)
    assert opt.param_groups[0]["betas"][0] is b1 and opt.param_groups[0]["betas"][1] is b2
    assert_restored(before, capture(model, opt))


# ----------------------------------------------------------------------------- schedulers
def _torch_one_cycle(opt: torch.optim.Optimizer) -> Any:
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=100)


def _cyclr_scheduler(opt: torch.optim.Optimizer) -> Any:
    return cyclr.torch.Scheduler(opt, cyclr.one_cycle(max_lr=0.05, total_steps=100), momentum=(0.85, 0.95))


def _cyclr_triangular(opt: torch.optim.Optimizer) -> Any:
    return cyclr.torch.Scheduler(opt, cyclr.triangular(base_lr=1e-3, max_lr=0.05, step_size=5))


@pytest.mark.parametrize("factory", [_torch_one_cycle, _cyclr_scheduler, _cyclr_triangular])
@pytest.mark.parametrize("opt_kind", ["adam", "sgd"])
@pytest.mark.parametrize("pass_scheduler", [True, False])
def test_attached_scheduler(factory: Any, opt_kind: str, pass_scheduler: bool) -> None:
    def build() -> tuple[nn.Module, torch.optim.Optimizer, Any, list[Any]]:
        data = make_data()
        model = make_model()
        opt = (
            torch.optim.Adam(model.parameters(), lr=0.01)
            if opt_kind == "adam"
            else torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        )
        sched = factory(opt)
        pretrain(model, opt, data, steps=7, sched=sched)
        return model, opt, sched, data

    model, opt, sched, data = build()
    twin, twin_opt, twin_sched, _ = build()
    assert "initial_lr" in opt.param_groups[0]  # what makes pytorch-lr-finder raise (#81)
    before = capture(model, opt, sched)
    last_lr = sched.get_last_lr()
    result = lr_range_test(
        model,
        opt,
        F.cross_entropy,
        data,
        num_steps=30,
        end_lr=1.0,
        scheduler=sched if pass_scheduler else None,
        progress=False,
    )
    assert result.steps == 30
    after = capture(model, opt, sched)
    assert_restored(before, after)
    assert {"initial_lr"} <= set(opt.param_groups[0])
    if factory is _torch_one_cycle:
        assert {"max_lr", "min_lr", "initial_lr"} <= set(opt.param_groups[0])
    assert sched.get_last_lr() == last_lr
    # and the schedule continues exactly as on a twin that never ran the test
    for m, o, s in ((model, opt, sched), (twin, twin_opt, twin_sched)):
        seed_all(11)  # the same dropout masks for both
        for x, y in data[8:11]:
            o.zero_grad()
            F.cross_entropy(m(x), y).backward()
            o.step()
            s.step()
    assert same(sched.state_dict(), twin_sched.state_dict())
    assert same(capture(model, opt)["groups"], capture(twin, twin_opt)["groups"])
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), k


# ----------------------------------------------------------------------------- discriminative LRs
def test_discriminative_lrs_keep_their_ratio() -> None:
    data = make_data()
    model = make_model(dropout=False)
    opt = torch.optim.SGD(
        [
            {"params": list(model[0].parameters()) + list(model[1].parameters()), "lr": 0.001},
            {"params": model[3].parameters(), "lr": 0.01},
        ],
        momentum=0.9,
    )
    pretrain(model, opt, data)
    before = capture(model, opt)
    seen: list[tuple[float, float]] = []

    def peek(call: int, m: nn.Module) -> None:
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))

    result = lr_range_test(
        model, opt, None, data, start_lr=1e-5, end_lr=1.0, num_steps=40, step_fn=Scripted(peek=peek), progress=False
    )
    assert len(seen) == result.steps > 10
    sweep = RangeTest(1e-5, 1.0, 40)
    for i, (g0, g1) in enumerate(seen):
        assert g1 == sweep.lr(i) == result.lrs[i]
        assert g0 == pytest.approx(0.1 * g1, rel=1e-12)
    assert_restored(before, capture(model, opt))
    assert [g["lr"] for g in opt.param_groups] == [0.001, 0.01]


# ----------------------------------------------------------------------------- accumulation, validation
class Recorder:
    """A deterministic step_fn over batches ``(x, y, batch_id)`` that logs every call."""

    def __init__(self) -> None:
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float, bool]] = []

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y, bid = batch
        loss = F.mse_loss(model(x), y)
        if torch.is_grad_enabled():
            self.train.append((int(bid), float(loss.detach())))
        else:
            self.val.append((len(x), float(loss), model.training))
        return loss


def regression_batches(n_batches: int, batch: int = 8, seed: int = 0, sizes: list[int] | None = None) -> list[Any]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 1, generator=g)
    out = []
    for i in range(n_batches):
        size = sizes[i] if sizes else batch
        x = torch.randn(size, 6, generator=g)
        out.append((x, x @ w + 0.1 * torch.randn(size, 1, generator=g), i))
    return out


def regression_model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), nn.Tanh(), nn.Linear(12, 1))


def test_accumulation_steps() -> None:
    model = regression_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = regression_batches(30)
    rec = Recorder()
    before = capture(model, opt)
    result = lr_range_test(
        model,
        opt,
        None,
        data,
        start_lr=1e-4,
        end_lr=0.1,
        num_steps=8,
        accumulation_steps=3,
        step_fn=rec,
        progress=False,
    )
    assert result.steps == 8
    assert [bid for bid, _ in rec.train] == list(range(24))  # 3 batches per recorded step
    micro = [loss for _, loss in rec.train]
    for i in range(8):
        assert result.losses[i] == pytest.approx(sum(micro[3 * i : 3 * i + 3]) / 3, rel=1e-6)
    assert result.info["steps_per_epoch"] == 10
    assert_restored(before, capture(model, opt))


def test_accumulation_takes_one_optimizer_step_per_recorded_step() -> None:
    model = regression_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    counts = {"step": 0}
    opt.register_step_post_hook(lambda *a: counts.__setitem__("step", counts["step"] + 1))
    lr_range_test(
        model,
        opt,
        None,
        regression_batches(30),
        num_steps=7,
        end_lr=0.1,
        accumulation_steps=3,
        step_fn=Recorder(),
        progress=False,
    )
    assert counts["step"] == 7


def hand_smoothed(values: list[float], beta: float = 0.98) -> list[float]:
    avg, out = 0.0, []
    for n, v in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**n))
    return out


def test_val_data_drives_the_smoothing() -> None:
    model = regression_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    train = regression_batches(20)
    val = regression_batches(2, sizes=[10, 30], seed=9)
    rec = Recorder()
    before = capture(model, opt)
    result = lr_range_test(
        model, opt, None, train, val_data=val, start_lr=1e-4, end_lr=0.5, num_steps=12, step_fn=rec, progress=False
    )
    n = result.steps
    assert len(result.val_losses) == n and len(rec.val) == 2 * n
    for i in range(n):
        (na, la, ta), (nb, lb, tb) = rec.val[2 * i : 2 * i + 2]
        assert not ta and not tb  # evaluated in eval mode
        assert result.val_losses[i] == pytest.approx((na * la + nb * lb) / (na + nb), rel=1e-6)
    np.testing.assert_allclose(result.smoothed, hand_smoothed(list(result.val_losses)), rtol=1e-12)
    assert not np.allclose(result.smoothed, hand_smoothed(list(result.losses)))
    assert_restored(before, capture(model, opt))


def test_val_divergence_stops_the_test() -> None:
    """The stop rule watches the validation loss: a validation loss that blows up stops the test
    even while the training loss stays flat."""
    model = regression_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    calls = {"n": 0}

    def step_fn(m: nn.Module, batch: Any) -> torch.Tensor:
        x, y, _ = batch
        loss = F.mse_loss(m(x), y)
        if torch.is_grad_enabled():
            calls["n"] += 1
            return loss * 0 + 1.0
        return loss * 0 + (1.0 if calls["n"] < 10 else 100.0)

    result = lr_range_test(
        model,
        opt,
        None,
        regression_batches(20),
        val_data=regression_batches(1, seed=4),
        num_steps=50,
        step_fn=step_fn,
        progress=False,
    )
    assert result.stop_reason.startswith("diverged")
    assert result.steps < 50


# ----------------------------------------------------------------------------- repeats
def test_repeats() -> None:
    model = regression_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = regression_batches(100)
    original = copy.deepcopy(model).train()
    rec = Recorder()
    before = capture(model, opt)
    result = lr_range_test(
        model, opt, None, data, start_lr=1e-4, end_lr=0.3, num_steps=30, repeats=3, step_fn=rec, progress=False
    )
    assert len(result.curves) == 3
    assert all(c.stop_reason == "completed" for c in result.curves)
    assert result.steps == sum(len(c.lrs) for c in result.curves) == 90
    ids = [bid for bid, _ in rec.train]
    per_repeat = [ids[30 * r : 30 * r + 30] for r in range(3)]
    assert [set(a) & set(b) for a, b in [(per_repeat[0], per_repeat[1]), (per_repeat[1], per_repeat[2])]] == [
        set(),
        set(),
    ]
    for r, curve in enumerate(result.curves):
        x, y, _ = data[per_repeat[r][0]]
        with torch.no_grad():
            expected = float(F.mse_loss(original(x), y))
        assert curve.losses[0] == pytest.approx(expected, rel=1e-6), f"repeat {r} did not start from the snapshot"
    assert len({tuple(c.losses) for c in result.curves}) == 3
    spread = result.spread
    assert set(spread) == {"steepest", "valley", "minimum", "base_lr", "max_lr", "calibrated"}
    for lo, med, hi in spread.values():
        assert lo <= med <= hi
    assert "spread" in result.to_config()
    assert_restored(before, capture(model, opt))


def test_invalid_loop_settings() -> None:
    model = regression_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = regression_batches(4)
    for kwargs, param in [
        ({"accumulation_steps": 0}, "accumulation_steps"),
        ({"repeats": 0}, "repeats"),
        ({"stage": "gpu"}, "stage"),
        ({"num_steps": 3}, "num_steps"),
    ]:
        with pytest.raises(ValueError, match=f"'{param}'"):
            lr_range_test(model, opt, None, data, step_fn=Recorder(), progress=False, **kwargs)
    with pytest.raises(ValueError, match="loss_fn"):
        lr_range_test(model, opt, None, data, progress=False)
    with pytest.raises(ValueError, match="no batch"):
        lr_range_test(model, opt, F.mse_loss, [], progress=False)


# ----------------------------------------------------------------------------- a real task
def blobs(n: int = 2000, dim: int = 20, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = 1.5 * torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + torch.randn(n, dim, generator=g), y


def mnist_subset(n: int = 2000) -> tuple[torch.Tensor, torch.Tensor] | None:
    root = os.environ.get("CYCLR_DATA_DIR")
    if not root or not (Path(root) / "mnist").is_dir():
        return None
    from cyclr.data import mnist

    (x, y), _ = mnist()
    return torch.from_numpy(x[:n].reshape(n, -1).astype(np.float32) / 255.0), torch.from_numpy(y[:n])


@pytest.mark.parametrize("task", ["blobs", "mnist"])
def test_real_small_task(task: str) -> None:
    loaded = blobs() if task == "blobs" else mnist_subset()
    if loaded is None:
        pytest.skip("MNIST needs CYCLR_DATA_DIR pointing at the shared data (make test sets it)")
    x, y = loaded
    dataset = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, int(y.max()) + 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = capture(model, opt)
    result = lr_range_test(model, opt, nn.CrossEntropyLoss(), loader, num_steps=100, progress=False)
    assert result.stop_reason == "completed" or result.stop_reason.startswith("diverged"), result.stop_reason
    s = result.suggestions
    assert all(math.isfinite(v) and v > 0 for v in s.values()), s
    base, top = result.bounds
    assert base < top and 1e-4 <= top <= 10
    assert 1e-6 <= result.suggestion <= 10
    assert result.info["steps_per_epoch"] == len(loader)
    sched = result.schedule("one_cycle", epochs=2)
    assert sched.total_steps == 2 * len(loader) and sched.max_lr == result.suggestion
    json.dumps(result.to_config())
    assert_restored(before, capture(model, opt))


# ----------------------------------------------------------------------------- DDP
def test_ddp_two_ranks(tmp_path: Path) -> None:
    from conftest import torchrun_two_ranks

    torchrun_two_ranks("ddp_range_test_worker.py", tmp_path, timeout=120)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["rank"], r1["rank"]) == (0, 1) and r0["world_size"] == 2

    # different shards: the local losses differ
    assert r0["local_losses"][0] != r1["local_losses"][0]
    # identical, averaged results on both ranks
    for key in ("lrs", "losses", "smoothed", "steps", "stop_reason", "suggestions"):
        assert r0[key] == r1[key], key
    assert r0["losses"][0] == pytest.approx((r0["local_losses"][0] + r1["local_losses"][0]) / 2, rel=1e-12)
    assert r0["losses"] == pytest.approx(
        [(a + b) / 2 for a, b in zip(r0["local_losses"], r1["local_losses"])], rel=1e-12
    )
    # stopped early, at the same step on both ranks
    assert r0["stop_reason"].startswith("diverged")
    assert r0["steps"] == r1["steps"] == len(r0["local_losses"]) == len(r1["local_losses"]) < r0["num_steps"]
    assert "error" not in r0["suggestions"]
    # weights restored on both ranks (and identical across ranks)
    assert r0["restored"] and r1["restored"]
    assert r0["checksum_before"] == r0["checksum_after"] == r1["checksum_before"] == r1["checksum_after"]


class _CarriedLSTM:
    """A step_fn for a stateful LSTM trained with truncated BPTT: the hidden state of one batch
    is the (detached) initial state of the next; ``reset()`` starts a new stream."""

    def __init__(self) -> None:
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None
        self.resets = 0
        self.carried: list[bool] = []

    def reset(self) -> None:
        self.state, self.resets = None, self.resets + 1

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        self.carried.append(self.state is not None)
        out, state = model.lstm(x, self.state)  # type: ignore[operator]
        self.state = (state[0].detach(), state[1].detach())
        return F.mse_loss(model.head(out), y)  # type: ignore[operator]


def test_recurrent_state_carried_between_batches_and_reset_each_sweep() -> None:
    """A stateful RNN (hidden state carried across batches, truncated BPTT): every sweep starts
    from fresh state through the step's ``reset()``, the state is carried inside a sweep, the
    loss falls, and the model and optimizer come back exactly."""
    torch.manual_seed(0)
    model = nn.Module()
    model.lstm = nn.LSTM(1, 16, batch_first=True)
    model.head = nn.Linear(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    t = torch.arange(0, 4000, dtype=torch.float32) * 0.1
    series = torch.sin(t).reshape(8, -1, 1)  # 8 parallel streams, cut into windows of 25 steps
    windows = [(series[:, i : i + 25], series[:, i + 1 : i + 26]) for i in range(0, series.shape[1] - 26, 25)]
    step = _CarriedLSTM()
    before = capture(model, opt)
    result = lr_range_test(model, opt, None, windows, num_steps=60, repeats=2, step_fn=step, progress=False)
    assert step.resets == 2
    n0 = len(result.curves[0].lrs)
    assert step.carried[0] is False and all(step.carried[1:n0])  # fresh, then carried
    assert step.carried[n0] is False  # the second sweep starts afresh
    assert result.suggestion > 0 and result.info["steps_per_epoch"] == len(windows)
    assert_restored(before, capture(model, opt))


def test_a_loaders_own_shuffle_generator_is_restored() -> None:
    """The sweep draws batches from the loader's generator (``DataLoader(generator=g)`` and a
    sampler's own): both come back, so the first epoch's order is the one without the test."""
    torch.manual_seed(0)
    x, y = torch.randn(256, 4), torch.randn(256, 1)
    ds = torch.utils.data.TensorDataset(x, y)

    def first_epoch(loader: torch.utils.data.DataLoader) -> list[torch.Tensor]:
        return [xb for xb, _ in loader]

    own = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(7))
    sampler = torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(8))
    by_sampler = torch.utils.data.DataLoader(ds, batch_size=16, sampler=sampler)
    for loader, seed in ((own, 7), (by_sampler, 8)):
        fresh = torch.Generator().manual_seed(seed)
        expected_loader = (
            torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, generator=fresh)
            if loader is own
            else torch.utils.data.DataLoader(
                ds, batch_size=16, sampler=torch.utils.data.RandomSampler(ds, generator=fresh)
            )
        )
        expected = first_epoch(expected_loader)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        cyclr.torch.lr_range_test(model, opt, torch.nn.functional.mse_loss, loader, num_steps=40, progress=False)
        got = first_epoch(loader)
        assert all(torch.equal(a, b) for a, b in zip(got, expected)) and len(got) == len(expected)
