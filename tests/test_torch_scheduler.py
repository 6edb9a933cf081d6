"""Tests for the PyTorch adapter ``cyclr.torch.Scheduler``.

Covers the LRScheduler contract, per-group scaling, cyclical momentum (checked side by side
against torch's own ``OneCycleLR``), tensor hyperparameters and ``torch.compile``, exact resume,
past-the-end behaviour, and the Lightning and Hugging Face ``Trainer`` integrations.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import cyclr  # noqa: E402
import cyclr.torch  # noqa: E402
from cyclr.torch import Scheduler  # noqa: E402

# --------------------------------------------------------------------------- helpers

REL = 1e-12  # float64 schedules vs. values read back from param groups


def _model(seed: int = 0, n_in: int = 4, n_out: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(n_in, n_out)


def _fake_grads(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)


def _two_group_sgd(lr0: float = 0.01, lr1: float = 0.1, **kw: Any) -> torch.optim.SGD:
    a, b = _model(0), _model(1)
    return torch.optim.SGD([{"params": a.parameters(), "lr": lr0}, {"params": b.parameters(), "lr": lr1}], lr=lr1, **kw)


def _lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


def _batches(n: int, seed: int = 123) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 4, generator=g), torch.randn(8, 2, generator=g)) for _ in range(n)]


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()


def _past_end_warnings(record: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in record if issubclass(w.category, UserWarning) and "past the end" in str(w.message)]


class Beta1SGD(torch.optim.Optimizer):
    """A custom optimizer that keeps its momentum under 'beta1' (neither 'momentum' nor 'betas')."""

    def __init__(self, params: Any, lr: float = 0.01, beta1: float = 0.9) -> None:
        super().__init__(params, {"lr": lr, "beta1": beta1})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("buf", torch.zeros_like(p))
                buf.mul_(group["beta1"]).add_(p.grad)
                p.add_(buf, alpha=-float(group["lr"]))


class GroupBetasOptimizer(torch.optim.Optimizer):
    """Third-party style: ``defaults`` has no 'betas', but every param group gets one afterwards."""

    def __init__(self, params: Any, lr: float = 0.01, betas: tuple[float, float] = (0.9, 0.98)) -> None:
        super().__init__(params, {"lr": lr})
        for group in self.param_groups:
            group.setdefault("betas", betas)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            b1 = group["betas"][0]
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("buf", torch.zeros_like(p))
                buf.mul_(b1).add_(p.grad, alpha=1 - b1)
                p.add_(buf, alpha=-group["lr"])


# --------------------------------------------------------------------------- the LRScheduler contract


SCHEDULES = {
    "one_cycle": cyclr.one_cycle(0.1, total_steps=30),
    "triangular": cyclr.triangular(0.001, 0.01, step_size=4),
    "triangular2": cyclr.triangular2(0.001, 0.01, step_size=3),
    "cosine": cyclr.cosine(0.1, total_steps=40, min_lr=0.001),
    "sgdr": cyclr.sgdr(0.1, period=5, period_mult=2.0, min_lr=0.001),
    "warmup_cosine": cyclr.warmup(cyclr.cosine(0.1, total_steps=30), steps=5, start_lr=0.0),
}


def test_is_a_torch_lr_scheduler_and_sets_step0_on_construction():
    s = cyclr.one_cycle(0.1, total_steps=100)
    opt = torch.optim.SGD(_model().parameters(), lr=0.5)
    sched = Scheduler(opt, s)
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    assert sched.optimizer is opt
    assert sched.last_epoch == 0
    assert opt.param_groups[0]["lr"] == pytest.approx(s(0), rel=REL)
    assert opt.param_groups[0]["lr"] != 0.5  # construction overwrote the optimizer's lr
    assert sched.get_last_lr() == pytest.approx([s(0)], rel=REL)


def test_rejects_non_optimizer():
    with pytest.raises(TypeError, match="Optimizer"):
        Scheduler(object(), cyclr.constant(0.1))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_lr_after_k_steps_equals_schedule_k(name):
    s = SCHEDULES[name]
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = Scheduler(opt, s)
    _fake_grads(model)
    for k in range(25):
        assert opt.param_groups[0]["lr"] == pytest.approx(s(k), rel=REL, abs=1e-15), k
        assert sched.get_last_lr() == pytest.approx([s(k)], rel=REL, abs=1e-15), k
        assert sched.last_epoch == k
        opt.step()
        sched.step()
    # and the values really move (a scheduler stuck at s(0) would not pass)
    assert len({round(s(k), 12) for k in range(25)}) > 3


# --------------------------------------------------------------------------- per-group scaling


def test_scale_ratio_default_keeps_group_ratios():
    s = cyclr.triangular(0.001, 0.01, step_size=4)
    opt = _two_group_sgd(0.01, 0.1)
    sched = Scheduler(opt, s)
    assert sched.scales == pytest.approx([0.1, 1.0])
    for k in range(12):
        assert _lrs(opt) == pytest.approx([0.1 * s(k), s(k)], rel=1e-12), k
        opt.step()
        sched.step()


def test_scale_none_gives_every_group_the_schedule():
    s = cyclr.triangular(0.001, 0.01, step_size=4)
    opt = _two_group_sgd(0.01, 0.1)
    sched = Scheduler(opt, s, scale="none")
    for k in range(12):
        assert _lrs(opt) == pytest.approx([s(k), s(k)], rel=1e-12), k
        opt.step()
        sched.step()


def test_scale_explicit_list():
    s = cyclr.cosine(0.1, total_steps=20)
    opt = _two_group_sgd(0.01, 0.1)
    sched = Scheduler(opt, s, scale=[0.5, 2.0])
    for k in range(12):
        assert _lrs(opt) == pytest.approx([0.5 * s(k), 2.0 * s(k)], rel=1e-12, abs=1e-15), k
        opt.step()
        sched.step()


@pytest.mark.parametrize("bad", [[1.0], [1.0, 2.0, 3.0], [1.0, -1.0], [1.0, float("nan")], "half"])
def test_scale_invalid_rejected(bad):
    with pytest.raises(ValueError, match="scale"):
        Scheduler(_two_group_sgd(), cyclr.constant(0.1), scale=bad)


def test_per_group_schedules_with_scale_none():
    s1 = cyclr.one_cycle(0.01, total_steps=20)
    s2 = cyclr.triangular(0.001, 0.1, step_size=3)
    opt = _two_group_sgd(0.01, 0.1)
    sched = Scheduler(opt, [s1, s2], scale="none")
    for k in range(15):
        assert _lrs(opt) == pytest.approx([s1(k), s2(k)], rel=1e-12), k
        opt.step()
        sched.step()


def test_per_group_schedules_are_used_as_given_like_torch_onecycle_max_lr_list():
    """lr=[s1, s2] with the default scale should drive group i by s_i, as torch does for
    ``OneCycleLR(max_lr=[...])``. The per-group schedules already carry the discriminative rates;
    scaling them again by the groups' lr ratio (0.01/0.1) shrinks group 0 tenfold."""
    total = 20
    opt = _two_group_sgd(0.01, 0.1)
    sched = Scheduler(opt, [cyclr.one_cycle(0.01, total), cyclr.one_cycle(0.1, total)])
    ref_opt = _two_group_sgd(0.01, 0.1)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=[0.01, 0.1], total_steps=total, cycle_momentum=False)
    for k in range(total - 1):
        assert _lrs(opt) == pytest.approx(_lrs(ref_opt), rel=1e-12), k
        opt.step()
        ref_opt.step()
        sched.step()
        ref.step()


def test_lr_list_wrong_length_names_lr():
    opt = _two_group_sgd()
    s = cyclr.constant(0.1)
    with pytest.raises(ValueError, match="'lr'"):
        Scheduler(opt, [s, s, s])
    with pytest.raises(ValueError, match="'lr'"):
        Scheduler(opt, [s])


@pytest.mark.parametrize("bad", [0.1, "cosine", [], None])
def test_lr_not_a_schedule_rejected(bad):
    with pytest.raises((ValueError, TypeError)):
        Scheduler(_two_group_sgd(), bad)


def test_lr_config_dict_accepted():
    cfg = {"name": "cosine", "max_lr": 0.1, "total_steps": 20, "min_lr": 0.001}
    expected = cyclr.cosine(0.1, total_steps=20, min_lr=0.001)
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    sched = Scheduler(opt, cfg)
    assert sched.lr_schedules[0] == expected
    for k in range(20):
        assert opt.param_groups[0]["lr"] == pytest.approx(expected(k), rel=REL, abs=1e-15), k
        opt.step()
        if k < 19:
            sched.step()


def test_lr_list_of_config_dicts_accepted():
    c1 = {"name": "constant", "lr": 0.02}
    c2 = {"name": "triangular", "base_lr": 0.001, "max_lr": 0.01, "step_size": 2}
    opt = _two_group_sgd()
    sched = Scheduler(opt, [c1, c2], scale="none")
    s2 = cyclr.triangular(0.001, 0.01, step_size=2)
    for k in range(6):
        assert _lrs(opt) == pytest.approx([0.02, s2(k)], rel=1e-12), k
        opt.step()
        sched.step()


# --------------------------------------------------------------------------- momentum


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"pct_start": 0.4, "anneal_strategy": "linear"},
        {"pct_start": 0.25, "three_phase": True},
    ],
    ids=["cos", "linear", "three_phase"],
)
def test_one_cycle_momentum_matches_torch_onecycle_on_sgd(kw):
    total = 40
    s = cyclr.one_cycle(
        0.1,
        total_steps=total,
        pct_start=kw.get("pct_start", 0.3),
        anneal={"linear": "linear"}.get(kw.get("anneal_strategy", "cos"), "cos"),
        three_phase=kw.get("three_phase", False),
    )
    model, ref_model = _model(0), _model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9)
    sched = Scheduler(opt, s, momentum=(0.85, 0.95))
    ref = torch.optim.lr_scheduler.OneCycleLR(
        ref_opt, max_lr=0.1, total_steps=total, base_momentum=0.85, max_momentum=0.95, **kw
    )
    _fake_grads(model)
    _fake_grads(ref_model)
    seen = set()
    for k in range(total):  # every step of the schedule
        g, rg = opt.param_groups[0], ref_opt.param_groups[0]
        assert g["momentum"] == pytest.approx(rg["momentum"], rel=1e-12, abs=1e-15), k
        assert g["lr"] == pytest.approx(rg["lr"], rel=1e-12, abs=1e-15), k
        assert sched.get_last_momentum() == pytest.approx([rg["momentum"]], rel=1e-12), k
        seen.add(round(g["momentum"], 9))
        opt.step()
        ref_opt.step()
        if k < total - 1:
            sched.step()
            ref.step()
    assert min(seen) == pytest.approx(0.85) and max(seen) == pytest.approx(0.95)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam])
def test_adam_family_momentum_drives_beta1_only(opt_cls):
    total = 20
    s = cyclr.one_cycle(0.01, total_steps=total)
    model = _model()
    opt = opt_cls(model.parameters(), lr=0.01, betas=(0.9, 0.987))
    sched = Scheduler(opt, s, momentum=(0.85, 0.95))
    assert sched.momentum_slots == ["betas"]
    ref_opt = opt_cls(_model().parameters(), lr=0.01, betas=(0.9, 0.987))
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=0.01, total_steps=total)
    mom = s.mirror(0.85, 0.95)
    _fake_grads(model)
    for k in range(total - 1):
        b = opt.param_groups[0]["betas"]
        assert b[0] == pytest.approx(mom(k), rel=1e-12), k
        assert b[0] == pytest.approx(ref_opt.param_groups[0]["betas"][0], rel=1e-12), k
        assert b[1] == 0.987, k
        opt.step()  # the optimizer still accepts what we wrote
        ref_opt.step()
        sched.step()
        ref.step()


def test_momentum_schedule_drives_momentum_directly():
    ms = cyclr.linear(0.99, 0.8, total_steps=10)
    lr = cyclr.triangular(0.001, 0.01, step_size=3)
    opt = torch.optim.SGD(_model().parameters(), lr=0.01, momentum=0.5)
    sched = Scheduler(opt, lr, momentum=ms)
    for k in range(10):
        assert opt.param_groups[0]["momentum"] == pytest.approx(ms(k), rel=1e-12), k
        assert opt.param_groups[0]["lr"] == pytest.approx(lr(k), rel=1e-12), k
        opt.step()
        sched.step()


def test_momentum_config_dict_drives_momentum():
    cfg = {"name": "constant", "lr": 0.77}
    opt = torch.optim.SGD(_model().parameters(), lr=0.01, momentum=0.5)
    sched = Scheduler(opt, cyclr.constant(0.01), momentum=cfg)
    for _ in range(3):
        assert opt.param_groups[0]["momentum"] == 0.77
        opt.step()
        sched.step()


def test_momentum_on_optimizer_without_slot_names_optimizer():
    opt = torch.optim.Adagrad(_model().parameters(), lr=0.01)
    with pytest.raises(ValueError, match="Adagrad"):
        Scheduler(opt, cyclr.one_cycle(0.01, total_steps=10), momentum=(0.85, 0.95))
    # without momentum it is fine
    Scheduler(opt, cyclr.one_cycle(0.01, total_steps=10))


def test_explicit_momentum_slot_missing_names_optimizer():
    opt = torch.optim.Adam(_model().parameters(), lr=0.01)
    with pytest.raises(ValueError, match="Adam"):
        Scheduler(opt, cyclr.constant(0.01), momentum=(0.85, 0.95), momentum_slot="momentum")
    with pytest.raises(ValueError, match="momentum_slot"):
        Scheduler(opt, cyclr.constant(0.01), momentum=(0.85, 0.95), momentum_slot="rho")


@pytest.mark.parametrize("slot", ["beta1", None])
def test_beta1_slot_on_custom_optimizer(slot):
    s = cyclr.triangular(0.001, 0.01, step_size=3)
    model = _model()
    opt = Beta1SGD(model.parameters(), lr=0.01, beta1=0.5)
    sched = Scheduler(opt, s, momentum=(0.8, 0.9), momentum_slot=slot)
    assert sched.momentum_slots == ["beta1"]
    mom = s.mirror(0.8, 0.9)
    _fake_grads(model)
    for k in range(12):
        assert opt.param_groups[0]["beta1"] == pytest.approx(mom(k), rel=1e-12), k
        assert opt.param_groups[0]["lr"] == pytest.approx(s(k), rel=1e-12), k
        opt.step()
        sched.step()
    # at the peak lr (step 3) momentum is at its low, at the trough (step 0, 6) at its high
    assert mom(3) == pytest.approx(0.8) and mom(6) == pytest.approx(0.9)


@pytest.mark.parametrize("bad", [(0.9, 1.2), (0.95, 0.85), (-0.1, 0.9), (0.9, 1.0)])
def test_momentum_range_rejected(bad):
    opt = torch.optim.SGD(_model().parameters(), lr=0.01, momentum=0.9)
    with pytest.raises(ValueError, match="momentum"):
        Scheduler(opt, cyclr.one_cycle(0.01, total_steps=10), momentum=bad)


def test_momentum_schedule_outside_unit_interval_rejected():
    opt = torch.optim.SGD(_model().parameters(), lr=0.01, momentum=0.9)
    with pytest.raises(ValueError, match="momentum"):
        Scheduler(opt, cyclr.constant(0.01), momentum=cyclr.linear(0.9, 1.5, total_steps=10))


def test_slot_found_from_param_groups_not_defaults():
    opt = GroupBetasOptimizer(_model().parameters(), lr=0.01, betas=(0.9, 0.98))
    assert "betas" not in opt.defaults and "betas" in opt.param_groups[0]
    s = cyclr.one_cycle(0.01, total_steps=12)
    sched = Scheduler(opt, s, momentum=(0.85, 0.95))
    assert sched.momentum_slots == ["betas"]
    mom = s.mirror(0.85, 0.95)
    model_params = opt.param_groups[0]["params"]
    for p in model_params:
        p.grad = torch.ones_like(p)
    for k in range(11):
        assert opt.param_groups[0]["betas"][0] == pytest.approx(mom(k), rel=1e-12), k
        assert opt.param_groups[0]["betas"][1] == 0.98
        opt.step()
        sched.step()


# --------------------------------------------------------------------------- tensor hyperparameters


def test_tensor_lr_and_betas_updated_in_place():
    s = cyclr.triangular(0.001, 0.01, step_size=4)
    model = _model()
    lr_t = torch.tensor(0.01)
    b1, b2 = torch.tensor(0.9), torch.tensor(0.999)
    opt = torch.optim.Adam(model.parameters(), lr=lr_t, betas=(b1, b2), foreach=False)
    group = opt.param_groups[0]
    lr_obj, b1_obj, b2_obj = group["lr"], group["betas"][0], group["betas"][1]
    assert isinstance(lr_obj, torch.Tensor) and isinstance(b1_obj, torch.Tensor)
    sched = Scheduler(opt, s, momentum=(0.85, 0.95))
    mom = s.mirror(0.85, 0.95)
    _fake_grads(model)
    for k in range(10):
        assert group["lr"] is lr_obj, k
        assert group["betas"][0] is b1_obj and group["betas"][1] is b2_obj, k
        assert float(lr_obj) == pytest.approx(s(k), rel=1e-6), k
        assert float(b1_obj) == pytest.approx(mom(k), rel=1e-6), k
        assert float(b2_obj) == pytest.approx(0.999, rel=1e-7), k
        assert float(sched.get_last_lr()[0]) == pytest.approx(s(k), rel=1e-6), k
        opt.step()
        sched.step()
    # load_state_dict also writes in place
    state = sched.state_dict()
    other = torch.optim.Adam(_model(1).parameters(), lr=torch.tensor(0.5), betas=(torch.tensor(0.5), b2), foreach=False)
    g2 = other.param_groups[0]
    lr2, b12 = g2["lr"], g2["betas"][0]
    fresh = Scheduler(other, cyclr.constant(0.5))
    fresh.load_state_dict(state)
    assert g2["lr"] is lr2 and g2["betas"][0] is b12
    assert float(lr2) == pytest.approx(s(10), rel=1e-6)
    assert float(b12) == pytest.approx(mom(10), rel=1e-6)


def _compiled_cycles(tensor_hparams: bool) -> tuple[int, list[float], list[torch.Tensor]]:
    import torch._dynamo
    import torch._dynamo.testing

    torch._dynamo.reset()
    model = _model(0)
    _fake_grads(model)
    if tensor_hparams:
        # torch 2.13 on CPU: a Tensor lr needs foreach=False (or foreach=True with capturable=True)
        opt = torch.optim.Adam(
            model.parameters(),
            lr=torch.tensor(0.01),
            betas=(torch.tensor(0.9), torch.tensor(0.999)),
            foreach=False,
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.01, foreach=False)
    s = cyclr.triangular(0.001, 0.01, step_size=4)
    sched = Scheduler(opt, s, momentum=(0.85, 0.95))
    cnt = torch._dynamo.testing.CompileCounter()

    @torch.compile(backend=cnt)
    def opt_step() -> None:
        opt.step()

    seen = []
    for _ in range(3 * 8):  # three full cycles (cycle length 2 * step_size)
        seen.append(float(opt.param_groups[0]["lr"]))
        opt_step()
        sched.step()
    frames = cnt.frame_count
    torch._dynamo.reset()
    return frames, seen, [p.detach().clone() for p in model.parameters()]


def _eager_cycles() -> list[torch.Tensor]:
    model = _model(0)
    _fake_grads(model)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, foreach=False)
    sched = Scheduler(opt, cyclr.triangular(0.001, 0.01, step_size=4), momentum=(0.85, 0.95))
    for _ in range(3 * 8):
        opt.step()
        sched.step()
    return [p.detach().clone() for p in model.parameters()]


def test_torch_compile_tensor_lr_compiles_once():
    frames, seen, params = _compiled_cycles(tensor_hparams=True)
    s = cyclr.triangular(0.001, 0.01, step_size=4)
    assert seen == pytest.approx([s(k) for k in range(24)], rel=1e-6)
    assert frames == 1
    # the compiled step really used the cycling lr/beta1 (not values baked in at compile time)
    for p, q in zip(params, _eager_cycles()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_torch_compile_float_lr_recompiles():
    """Contrast: with Python-float hyperparameters the same loop compiles more than once."""
    frames, _, _ = _compiled_cycles(tensor_hparams=False)
    assert frames > 1


# --------------------------------------------------------------------------- resume


def test_state_dict_round_trip_resumes_exactly(tmp_path):
    s = cyclr.one_cycle(0.1, total_steps=40, three_phase=True, pct_start=0.25)
    n, m = 13, 20

    def make(sched_lr: Any, momentum: Any) -> tuple[torch.optim.Optimizer, Scheduler]:
        opt = _two_group_sgd(0.01, 0.1, momentum=0.9)
        return opt, Scheduler(opt, sched_lr, momentum=momentum)

    ref_opt, ref = make(s, (0.85, 0.95))
    ref_trace = []
    for _ in range(n + m):
        ref_trace.append((_lrs(ref_opt), [g["momentum"] for g in ref_opt.param_groups], list(ref.get_last_lr())))
        ref_opt.step()
        ref.step()

    opt, sched = make(s, (0.85, 0.95))
    for _ in range(n):
        opt.step()
        sched.step()
    path = tmp_path / "sched.pt"
    torch.save(sched.state_dict(), path)
    state = torch.load(path, weights_only=True)

    # a fresh optimizer and a scheduler built with a different schedule and no momentum
    opt2 = _two_group_sgd(0.3, 0.3, momentum=0.5)
    sched2 = Scheduler(opt2, cyclr.constant(0.5))
    sched2.load_state_dict(state)
    assert sched2.last_epoch == n
    assert sched2.lr_schedules[0] == s
    assert sched2.scales == pytest.approx([0.1, 1.0])
    for k in range(n, n + m):
        lrs, moms, last = ref_trace[k]
        assert _lrs(opt2) == lrs, k
        assert [g["momentum"] for g in opt2.param_groups] == moms, k
        assert sched2.get_last_lr() == last, k
        opt2.step()
        sched2.step()


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_full_training_resume_is_bit_identical(tmp_path, opt_name):
    s = cyclr.triangular2(0.001, 0.02, step_size=3)
    n, m = 7, 11
    batches = _batches(n + m)

    def build(seed: int, schedule: Any) -> tuple[torch.nn.Module, torch.optim.Optimizer, Scheduler]:
        model = _model(seed)
        if opt_name == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.01)
        return model, opt, Scheduler(opt, schedule, momentum=(0.85, 0.95))

    # uninterrupted
    model_a, opt_a, sched_a = build(0, s)
    for b in batches:
        _train_step(model_a, opt_a, b)
        sched_a.step()

    # interrupted after n steps
    model_b, opt_b, sched_b = build(0, s)
    for b in batches[:n]:
        _train_step(model_b, opt_b, b)
        sched_b.step()
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model_b.state_dict(), "opt": opt_b.state_dict(), "sched": sched_b.state_dict()}, path)
    del model_b, opt_b, sched_b

    ckpt = torch.load(path, weights_only=True)
    model_c, opt_c, sched_c = build(99, cyclr.constant(0.3))  # different init, different schedule
    model_c.load_state_dict(ckpt["model"])
    opt_c.load_state_dict(ckpt["opt"])
    sched_c.load_state_dict(ckpt["sched"])
    for b in batches[n:]:
        _train_step(model_c, opt_c, b)
        sched_c.step()

    for (name, p), q in zip(model_a.named_parameters(), model_c.parameters()):
        assert torch.equal(p, q), name
    assert _lrs(opt_a) == _lrs(opt_c)
    assert sched_a.get_last_momentum() == sched_c.get_last_momentum()


# --------------------------------------------------------------------------- past the end


def _one_cycle_sched(past_end: str = "warn") -> tuple[torch.optim.Optimizer, Scheduler, Any]:
    s = cyclr.one_cycle(0.1, total_steps=10)
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    return opt, Scheduler(opt, s, past_end=past_end), s


def test_past_end_warns_once_and_holds_final_value():
    opt, sched, s = _one_cycle_sched()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for k in range(1, 16):
            opt.step()
            sched.step()
            if k >= 9:
                assert opt.param_groups[0]["lr"] == pytest.approx(s(9), rel=1e-12), k
    hits = _past_end_warnings(rec)
    assert len(hits) == 1, [str(w.message) for w in rec]
    assert hits[0].category is UserWarning
    assert hits[0].filename == __file__  # attributed to the caller of sched.step()
    assert s(9) == pytest.approx(0.1 / 25 / 1e4)


def test_past_end_raise():
    opt, sched, _ = _one_cycle_sched("raise")
    with pytest.raises(RuntimeError, match="past the end"):
        for _ in range(15):
            opt.step()
            sched.step()


def test_past_end_hold_is_silent():
    opt, sched, s = _one_cycle_sched("hold")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(15):
            opt.step()
            sched.step()
    assert _past_end_warnings(rec) == []
    assert opt.param_groups[0]["lr"] == pytest.approx(s(9), rel=1e-12)


def test_past_end_invalid_value_named():
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="past_end"):
        Scheduler(opt, cyclr.one_cycle(0.1, total_steps=10), past_end="ignore")


def test_infinite_schedule_never_past_end():
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    sched = Scheduler(opt, cyclr.triangular(0.001, 0.01, step_size=2), past_end="raise")
    for _ in range(50):
        opt.step()
        sched.step()
    assert sched.last_epoch == 50


@pytest.mark.parametrize("past_end", ["warn", "raise"])
def test_exactly_total_steps_loop_is_not_past_the_end(past_end):
    """The canonical loop ``for _ in range(total_steps): opt.step(); sched.step()`` uses
    schedule(0..total_steps-1) only; its final ``sched.step()`` (last_epoch == total_steps) is
    what every loop, Lightning and HF Trainer do after the last update. torch ``OneCycleLR``
    accepts it and raises only on the step after (last_epoch > total_steps); cyclr should not
    warn, let alone raise, until a value past the end would be used."""
    opt, sched, _ = _one_cycle_sched(past_end)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(10):
            opt.step()
            sched.step()
    assert [str(w.message) for w in _past_end_warnings(rec)] == []
    # one more update would run past the end: now it must warn / raise
    opt.step()
    if past_end == "raise":
        with pytest.raises(RuntimeError, match="past the end"):
            sched.step()
    else:
        with pytest.warns(UserWarning, match="past the end"):
            sched.step()


# --------------------------------------------------------------------------- Lightning


def test_lightning_trainer_steps_the_schedule():
    L = pytest.importorskip("lightning")
    s = cyclr.triangular(0.001, 0.01, step_size=3)
    mom = s.mirror(0.85, 0.95)

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(4, 1)
            self.seen_lr: list[float] = []
            self.seen_mom: list[float] = []

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            group = self.optimizers().optimizer.param_groups[0]
            self.seen_lr.append(group["lr"])
            self.seen_mom.append(group["momentum"])
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self) -> dict[str, Any]:
            opt = torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)
            sched = cyclr.torch.Scheduler(opt, s, momentum=(0.85, 0.95))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    g = torch.Generator().manual_seed(0)
    ds = torch.utils.data.TensorDataset(torch.randn(40, 4, generator=g), torch.randn(40, 1, generator=g))
    loader = torch.utils.data.DataLoader(ds, batch_size=4)  # 10 batches per epoch: crosses an epoch
    module = Module()
    trainer = L.Trainer(
        max_steps=12,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    assert module.seen_lr == pytest.approx([s(k) for k in range(12)], rel=1e-12)
    assert module.seen_mom == pytest.approx([mom(k) for k in range(12)], rel=1e-12)
    assert isinstance(trainer.lr_scheduler_configs[0].scheduler, Scheduler)


# --------------------------------------------------------------------------- Hugging Face Trainer


def test_hf_trainer_uses_the_schedule(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")

    total = 8
    s = cyclr.one_cycle(0.05, total_steps=total, pct_start=0.5)
    mom = s.mirror(0.85, 0.95)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)
            self.opt: torch.optim.Optimizer | None = None
            self.seen: list[tuple[float, float]] = []

        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
            if self.training and self.opt is not None:
                g = self.opt.param_groups[0]
                self.seen.append((g["lr"], g["momentum"]))
            out = self.lin(x)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    class Data(torch.utils.data.Dataset):
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(32, 4, generator=g)
            self.y = torch.randn(32, 1, generator=g)

        def __len__(self) -> int:
            return 32

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"x": self.x[i], "labels": self.y[i]}

    class Recorder(transformers.TrainerCallback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
            self.lrs.append(optimizer.param_groups[0]["lr"])

    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.opt = opt
    # past_end='hold': see test_exactly_total_steps_loop_is_not_past_the_end for the warning
    # a correctly sized run otherwise gets on its final step
    sched = Scheduler(opt, s, momentum=(0.85, 0.95), past_end="hold")
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=total,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    rec = Recorder()
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Data(), optimizers=(opt, sched), callbacks=[rec]
    )
    before = model.lin.weight.detach().clone()
    trainer.train()
    assert trainer.state.global_step == total
    assert not torch.equal(before, model.lin.weight)  # it really trained
    assert [lr for lr, _ in model.seen] == pytest.approx([s(k) for k in range(total)], rel=1e-12)
    assert [m for _, m in model.seen] == pytest.approx([mom(k) for k in range(total)], rel=1e-12)
    assert rec.lrs == pytest.approx([s(k) for k in range(total)], rel=1e-12)


def test_resume_from_last_epoch_alone_needs_no_initial_lr() -> None:
    """ANCHORS pain point 9: resuming with last_epoch and a fresh optimizer (no 'initial_lr')."""
    schedule = cyclr.one_cycle(0.1, total_steps=50)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    assert "initial_lr" not in opt.param_groups[0]
    sched = cyclr.torch.Scheduler(opt, schedule, momentum=(0.85, 0.95), last_epoch=19)
    assert sched.last_epoch == 20
    assert opt.param_groups[0]["lr"] == schedule(20)
    assert opt.param_groups[0]["momentum"] == pytest.approx(schedule.mirror(0.85, 0.95)(20), rel=1e-12)


# --------------------------------------------------------------------------- range test -> schedule


def _auto_problem(momentum: float = 0.9) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(0)
    x = torch.randn(320, 8)
    y = x @ torch.randn(8, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    model = torch.nn.Linear(8, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=momentum), loader


def test_auto_scheduler_is_the_range_test_plus_its_schedule() -> None:
    model, opt, loader = _auto_problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sched = cyclr.torch.auto_scheduler(
        model, opt, torch.nn.functional.mse_loss, loader, epochs=3, num_steps=50, start_lr=1e-4, progress=False
    )
    result = sched.range_test
    for k, v in before.items():  # the test put the model back before the schedule was attached
        assert torch.equal(model.state_dict()[k], v)
    assert opt.state == {}
    # the same two pieces by hand give the same schedule
    model2, opt2, loader2 = _auto_problem()
    by_hand = cyclr.torch.lr_range_test(
        model2, opt2, torch.nn.functional.mse_loss, loader2, num_steps=50, start_lr=1e-4, repeats=3, progress=False
    )
    assert len(result.curves) == 3  # three sweeps by default, as cyclr find runs
    assert by_hand.suggestion == result.suggestion
    assert [c.losses for c in by_hand.curves] == [c.losses for c in result.curves]
    expected = result.schedule("one_cycle", epochs=3)
    assert sched.lr_schedules[0] == expected and expected.total_steps == 30
    lrs, moms = [], []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([expected(k) for k in range(30)], rel=1e-12)
    assert moms == pytest.approx([expected.mirror(0.85, 0.95)(k) for k in range(30)], rel=1e-12)


def test_scheduler_from_range_test_sizes_and_momentum() -> None:
    model, opt, loader = _auto_problem(momentum=0.0)
    result = cyclr.torch.lr_range_test(
        model, opt, torch.nn.functional.mse_loss, loader, num_steps=50, start_lr=1e-4, progress=False
    )
    plain = cyclr.torch.scheduler_from_range_test(opt, result, kind="triangular", total_steps=40, epochs=4)
    assert plain.lr_schedules[0] == result.schedule("triangular", steps_per_epoch=10, epochs=4)
    assert plain.momentum_schedules == []  # SGD without momentum: nothing to cycle under 'auto'
    uneven = cyclr.torch.scheduler_from_range_test(opt, result, total_steps=37, epochs=4)
    assert uneven.lr_schedules[0].total_steps == 37  # not a whole number of epochs: one block of 37
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    cycled = cyclr.torch.scheduler_from_range_test(adam, result, total_steps=20)
    assert adam.param_groups[0]["betas"][0] == pytest.approx(0.95)
    assert cycled.momentum_slots == ["betas"]
    with pytest.raises(cyclr.InvalidParameterError, match=r"'total_steps'.*the run's length"):
        cyclr.torch.scheduler_from_range_test(opt, result)
    with pytest.raises(cyclr.InvalidParameterError, match=r"'kind'.*'cosine'"):
        cyclr.torch.scheduler_from_range_test(opt, result, kind="cosine", total_steps=10)
    with pytest.raises(cyclr.InvalidParameterError, match=r"'total_steps'.*0"):
        cyclr.torch.scheduler_from_range_test(opt, result, total_steps=0)
    with pytest.raises(cyclr.InvalidParameterError, match=r"'momentum'.*'yes'"):
        cyclr.torch.scheduler_from_range_test(opt, result, total_steps=10, momentum="yes")


def test_auto_scheduler_checks_everything_before_the_test_runs() -> None:
    model, opt, loader = _auto_problem()
    calls: list[int] = []

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.nn.functional.mse_loss(out, y)

    for kwargs, match in [
        ({}, r"'epochs'.*the run's length"),
        ({"epochs": 0}, r"'epochs'.*positive integer"),
        ({"epochs": 2, "kind": "cosine"}, r"'kind'"),
        ({"epochs": 2, "momentum": 0.9}, r"'momentum'"),
        ({"epochs": 2, "num_steps": 2}, r"'num_steps'"),
        ({"epochs": 2, "repeat": 3}, r"'repeat'.*one of the range test's options: .*repeats"),
    ]:
        with pytest.raises(cyclr.InvalidParameterError, match=match):
            cyclr.torch.auto_scheduler(model, opt, loss_fn, loader, progress=False, **kwargs)
    assert calls == []  # no step was spent on a call that could not finish
