"""cyclr.torch's drop-ins for torch's CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts and
CosineAnnealingLR: torch's signatures and defaults, torch's numbers step by step (run side by side
with torch's own classes, on the scenarios of torch's own test suite: two param groups, one LR a
0-d tensor), and each class's fixed pain point."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler as tls  # noqa: E402

import cyclr.torch as ct  # noqa: E402
from cyclr._validation import InvalidParameterError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _optimizer(kind: str = "sgd", tensor_lr: bool = True) -> torch.optim.Optimizer:
    """torch's test set-up: two param groups, the second with its own LR (a 0-d tensor there)."""
    a, b = torch.nn.Conv2d(1, 1, 1), torch.nn.Conv2d(1, 1, 1)
    second = torch.tensor(0.5) if tensor_lr else 0.5
    groups: list[dict[str, Any]] = [{"params": a.parameters()}, {"params": b.parameters(), "lr": second}]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=0.05)
    return torch.optim.SGD(groups, lr=0.05, momentum=0.9)


def _trace(
    make: Callable[[torch.optim.Optimizer], Any], steps: int, kind: str = "sgd", tensor_lr: bool = True
) -> dict[str, np.ndarray]:
    opt = _optimizer(kind, tensor_lr)
    sched = make(opt)
    lrs, moms = [], []
    for _ in range(steps):
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        moms.append([float(g["betas"][0]) if "betas" in g else float(g.get("momentum", 0.0)) for g in opt.param_groups])
        opt.step()
        sched.step()
    return {"lr": np.array(lrs), "momentum": np.array(moms), "last": np.array(sched.get_last_lr(), dtype=float)}


def _same(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    """Group 0 (a float LR) to 1e-9; group 1 (a float32 0-d tensor, as in torch's tests) to float32's
    resolution: torch's recursive forms accumulate in float32 there, cyclr writes its closed form."""
    for key in ("lr", "momentum"):
        np.testing.assert_allclose(ours[key][:, 0], theirs[key][:, 0], rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(ours[key][:, 1:], theirs[key][:, 1:], rtol=4e-7, atol=1e-12)
    np.testing.assert_allclose(ours["last"], theirs["last"], rtol=4e-7, atol=1e-15)


# ---------------------------------------------------------------------- CyclicLR
CYCLIC_CASES = [  # the settings of torch's own CyclicLR tests, and some asymmetric ones
    {"base_lr": 1, "max_lr": 5, "step_size_up": 4},
    {"base_lr": 1, "max_lr": 5, "step_size_up": 4, "mode": "triangular2"},
    {"base_lr": 1, "max_lr": 5, "step_size_up": 4, "mode": "exp_range", "gamma": 0.9},
    {"base_lr": 1, "max_lr": 5, "step_size_up": 4, "step_size_down": 6},
    {"base_lr": 1, "max_lr": 5, "step_size_up": 4, "step_size_down": 6, "mode": "triangular2"},
    {"base_lr": [1, 2], "max_lr": [5, 8], "step_size_up": 4, "step_size_down": 6, "mode": "exp_range", "gamma": 0.9},
    {"base_lr": 1e-4, "max_lr": 1e-2, "step_size_up": 20, "step_size_down": 5, "cycle_momentum": False},
    {"base_lr": 0.001, "max_lr": 0.1, "base_momentum": [0.8, 0.7], "max_momentum": [0.9, 0.95], "step_size_up": 7},
]


@pytest.mark.parametrize("case", CYCLIC_CASES)
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_cyclic_lr_gives_torch_s_numbers(case: dict[str, Any], kind: str) -> None:
    theirs = _trace(lambda o: tls.CyclicLR(o, **case), 60, kind)
    ours = _trace(lambda o: ct.CyclicLR(o, **case), 60, kind)
    _same(ours, theirs)


def test_cyclic_lr_matches_torch_s_test_targets() -> None:
    """torch's test_cycle_lr_triangular_mode_one_lr: the LR climbs 1..5 in 4 steps and back while
    momentum mirrors it (torch's test uses momenta 1..5; a momentum must be in [0, 1) here, so 0.1..0.5)."""
    ours = _trace(lambda o: ct.CyclicLR(o, 1, 5, 4, base_momentum=0.1, max_momentum=0.5), 11)
    assert list(ours["lr"][:, 0]) == [1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3]
    np.testing.assert_allclose(ours["momentum"][:, 0], [0.5, 0.4, 0.3, 0.2, 0.1, 0.2, 0.3, 0.4, 0.5, 0.4, 0.3])
    tri2 = _trace(lambda o: ct.CyclicLR(o, 1, 5, 4, mode="triangular2"), 22)
    expected = [1, 2, 3, 4, 5, 4, 3, 2, 1, 1.5, 2.0, 2.5, 3.0, 2.5, 2.0, 1.5, 1, 1.25, 1.5, 1.75, 2.0, 1.75]
    np.testing.assert_allclose(tri2["lr"][:, 0], expected)


def test_cyclic_lr_refuses_code_and_bad_settings_by_name() -> None:
    opt = _optimizer()
    with pytest.raises(InvalidParameterError, match=r"'scale_fn'.*code, not configuration"):
        ct.CyclicLR(opt, 0.1, 1.0, scale_fn=lambda x: 1.0)
    with pytest.raises(InvalidParameterError, match="'mode'"):
        ct.CyclicLR(opt, 0.1, 1.0, mode="sawtooth")
    with pytest.raises(InvalidParameterError, match=r"'base_lr'.*list of 2"):
        ct.CyclicLR(opt, [0.1, 0.2, 0.3], 1.0)
    with pytest.raises(InvalidParameterError, match="momentum"):
        ct.CyclicLR(opt, 0.1, 1.0, base_momentum=0.8, max_momentum=1.5)


# ---------------------------------------------------------------------- OneCycleLR
ONE_CYCLE_CASES = [  # torch's own OneCycleLR test settings
    {"max_lr": 25, "final_div_factor": 2, "base_momentum": 0.1, "max_momentum": 0.22, "total_steps": 10},
    {"max_lr": 25, "final_div_factor": 2, "total_steps": 10, "anneal_strategy": "linear"},
    {"max_lr": 25, "final_div_factor": 2, "total_steps": 10, "three_phase": True, "anneal_strategy": "linear"},
    {"max_lr": 25, "final_div_factor": 2, "epochs": 2, "steps_per_epoch": 5},
    {"max_lr": [0.1, 0.5], "total_steps": 100, "pct_start": 0.25},
    {"max_lr": 0.1, "total_steps": 57},
]


@pytest.mark.parametrize("case", ONE_CYCLE_CASES)
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_one_cycle_lr_gives_torch_s_numbers(case: dict[str, Any], kind: str) -> None:
    total = case.get("total_steps") or case["epochs"] * case["steps_per_epoch"]
    theirs = _trace(lambda o: tls.OneCycleLR(o, **case), total - 1, kind)  # torch raises on the last step()
    ours = _trace(lambda o: ct.OneCycleLR(o, **case), total - 1, kind)
    _same(ours, theirs)


def test_one_cycle_lr_holds_its_end_where_torch_raises() -> None:
    opt = _optimizer()
    theirs = tls.OneCycleLR(_optimizer(), max_lr=0.1, total_steps=10)
    ours = ct.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    for _ in range(10):  # 10 updates, each followed by step(): torch allows the trailing one
        opt.step()
        ours.step()
        theirs.optimizer.step()
        theirs.step()
    final = float(opt.param_groups[0]["lr"])  # the trailing step() holds the last value (torch extrapolates)
    assert final == pytest.approx(0.1 / 25 / 1e4, rel=1e-9)
    with pytest.raises(ValueError, match="Tried to step"):
        theirs.step()  # one more (an epoch-end step(), an off-by-one loop): torch's known pain point
    ours.step()
    ours.step()
    assert float(opt.param_groups[0]["lr"]) == final
    loud = ct.OneCycleLR(_optimizer(), max_lr=0.1, total_steps=10, past_end="raise")
    loud.optimizer.step()
    for _ in range(10):
        loud.step()
    with pytest.raises(RuntimeError, match="past the end"):
        loud.step()


def test_one_cycle_lr_needs_a_length() -> None:
    with pytest.raises(InvalidParameterError, match=r"'total_steps'.*epochs and steps_per_epoch"):
        ct.OneCycleLR(_optimizer(), max_lr=0.1, epochs=3)
    with pytest.raises(InvalidParameterError, match="'anneal_strategy'"):
        ct.OneCycleLR(_optimizer(), max_lr=0.1, total_steps=10, anneal_strategy="cosine")


# ---------------------------------------------------------------------- warm restarts and cosine
@pytest.mark.parametrize(("t0", "t_mult", "eta_min"), [(10, 1, 1e-10), (10, 2, 1e-10), (7, 3, 0.01), (1, 2, 0.0)])
def test_warm_restarts_give_torch_s_numbers(t0: int, t_mult: int, eta_min: float) -> None:
    theirs = _trace(lambda o: tls.CosineAnnealingWarmRestarts(o, t0, t_mult, eta_min), 90)
    ours = _trace(lambda o: ct.CosineAnnealingWarmRestarts(o, t0, t_mult, eta_min), 90)
    _same(ours, theirs)


@pytest.mark.parametrize("t_mult", [1, 2])
def test_warm_restarts_step_with_fractional_epochs_as_torch_documents(t_mult: int) -> None:
    """torch's own pattern (and its tests): ``scheduler.step(epoch + i / iters)`` each batch."""

    def run(make: Callable[[Any], Any]) -> list[list[float]]:
        opt = _optimizer(tensor_lr=False)
        sched = make(opt)
        out = []
        for epoch in range(25):
            for i in range(4):
                opt.step()
                sched.step(epoch + i / 4)
                out.append([float(g["lr"]) for g in opt.param_groups])
        return out

    theirs = run(lambda o: tls.CosineAnnealingWarmRestarts(o, 10, t_mult, 1e-10))
    ours = run(lambda o: ct.CosineAnnealingWarmRestarts(o, 10, t_mult, 1e-10))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)


def test_warm_restarts_take_a_real_t_mult_and_a_decay_per_restart() -> None:
    with pytest.raises(ValueError):
        tls.CosineAnnealingWarmRestarts(_optimizer(), 10, 1.5)  # torch: integers only
    ours = _trace(lambda o: ct.CosineAnnealingWarmRestarts(o, 10, 1.5, 0.0, decay=0.5), 40)["lr"][:, 0]
    # periods 10, 15, 22.5: restarts at 10 and 25, each peak half the one before
    assert ours[0] == 0.05 and ours[10] == pytest.approx(0.025) and ours[25] == pytest.approx(0.0125)
    t = 17  # inside the second period: the closed form
    assert ours[t] == pytest.approx(0.025 * (1 + math.cos(math.pi * (t - 10) / 15)) / 2)
    with pytest.raises(InvalidParameterError, match="'T_mult'"):
        ct.CosineAnnealingWarmRestarts(_optimizer(), 10, 0.5)
    with pytest.raises(InvalidParameterError, match="'T_0'"):
        ct.CosineAnnealingWarmRestarts(_optimizer(), 0)


@pytest.mark.parametrize(("t_max", "eta_min"), [(10, 1e-10), (10, 0.0), (37, 0.01), (1, 0.0)])
def test_cosine_annealing_gives_torch_s_numbers_up_to_t_max_then_holds(t_max: int, eta_min: float) -> None:
    theirs = _trace(lambda o: tls.CosineAnnealingLR(o, t_max, eta_min), t_max + 1)
    ours = _trace(lambda o: ct.CosineAnnealingLR(o, t_max, eta_min), 3 * t_max + 1)
    np.testing.assert_allclose(ours["lr"][: t_max + 1, 0], theirs["lr"][:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours["lr"][: t_max + 1, 1], theirs["lr"][:, 1], rtol=4e-7, atol=1e-9)
    np.testing.assert_allclose(ours["lr"][t_max:, 0], eta_min, atol=1e-15)  # torch climbs back; cyclr stays


# ---------------------------------------------------------------------- resume, as a torch user does it
@pytest.mark.parametrize(
    "make",
    [
        lambda o: ct.CyclicLR(o, 0.01, 0.1, 5, 3, mode="triangular2"),
        lambda o: ct.OneCycleLR(o, max_lr=[0.1, 0.5], total_steps=30, three_phase=True),
        lambda o: ct.CosineAnnealingWarmRestarts(o, 4, 1.5, 1e-4, decay=0.8),
        lambda o: ct.CosineAnnealingLR(o, 20, 1e-3),
    ],
)
def test_drop_ins_resume_exactly_from_a_weights_only_checkpoint(make: Callable[[Any], Any]) -> None:
    whole = _trace(make, 30, tensor_lr=False)["lr"]
    opt = _optimizer(tensor_lr=False)
    sched = make(opt)
    for _ in range(12):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    opt2 = _optimizer(tensor_lr=False)
    opt2.load_state_dict(saved["opt"])
    sched2 = make(opt2)
    sched2.load_state_dict(saved["sched"])
    rest = []
    for _ in range(18):
        rest.append([float(g["lr"]) for g in opt2.param_groups])
        opt2.step()
        sched2.step()
    np.testing.assert_allclose(rest, whole[12:], rtol=1e-12)
