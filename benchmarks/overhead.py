"""Per-step cost of cyclr.torch.Scheduler next to torch's CyclicLR and OneCycleLR, the cost of
the adaptive controller's ``observe(loss)`` next to a fixed one-cycle's ``step()``, and compiled
graph counts for float vs tensor hyperparameters. Prints ratios measured side by side in one run.

    .venv/bin/python benchmarks/overhead.py [--steps 20000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch._dynamo.testing import CompileCounter
from torch.optim.lr_scheduler import CyclicLR, LRScheduler, OneCycleLR

import cyclr
import cyclr.torch as ct


def make_optimizer(groups: int) -> torch.optim.Optimizer:
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)]
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def per_step_us(factory: Callable[[torch.optim.Optimizer], LRScheduler], groups: int, steps: int) -> float:
    """Microseconds per scheduler.step() (momentum cycling included), optimizer step excluded."""
    opt = make_optimizer(groups)
    sched = factory(opt)
    opt.step()  # silence torch's order check; the timed loop measures step() alone
    t0 = time.perf_counter()
    for _ in range(steps):
        sched.step()
    return (time.perf_counter() - t0) / steps * 1e6


def timing(steps: int, repeats: int) -> None:
    total = steps + 10
    cases: dict[str, dict[str, Callable[[torch.optim.Optimizer], LRScheduler]]] = {
        "triangular": {
            "torch CyclicLR": lambda o: CyclicLR(o, 0.001, 0.1, step_size_up=500),
            "cyclr Scheduler": lambda o: ct.Scheduler(o, cyclr.triangular(0.001, 0.1, 500), momentum=(0.8, 0.9)),
        },
        "one-cycle": {
            "torch OneCycleLR": lambda o: OneCycleLR(o, 0.1, total_steps=total),
            "cyclr Scheduler": lambda o: ct.Scheduler(o, cyclr.one_cycle(0.1, total), momentum=(0.85, 0.95)),
        },
    }
    print(f"per-step cost of scheduler.step(), median of {repeats} runs x {steps} steps (microseconds)")
    print(f"{'schedule':<12}{'groups':>7}  {'torch':>10}  {'cyclr':>10}  {'cyclr/torch':>12}")
    for name, pair in cases.items():
        for groups in (1, 10):
            samples: dict[str, list[float]] = {k: [] for k in pair}
            for _ in range(repeats):  # interleave so machine noise hits both alike
                for label, factory in pair.items():
                    samples[label].append(per_step_us(factory, groups, steps))
            torch_label, cyclr_label = list(pair)
            a, b = statistics.median(samples[torch_label]), statistics.median(samples[cyclr_label])
            print(f"{name:<12}{groups:>7}  {a:>10.2f}  {b:>10.2f}  {b / a:>11.2f}x")


def adaptive_us(kind: str, steps: int) -> float:
    """Microseconds per update for the scheduler's share of it: ``step()`` of a fixed one-cycle,
    or ``observe(loss)`` + ``step()`` of the closed-loop controller (loss a float or a 0-d tensor)."""
    opt = make_optimizer(1)
    total = steps + 10
    if kind == "fixed":
        sched = ct.Scheduler(opt, cyclr.one_cycle(0.1, total), momentum=(0.85, 0.95))
    else:
        sched = ct.Scheduler(opt, cyclr.adaptive(total_steps=total, max_lr=0.1), momentum=(0.85, 0.95))
    opt.step()
    # a noisy, slowly falling loss: the controller runs its cycles, spikes and bound updates
    losses = [2.0 * math.exp(-3.0 * t / steps) * (1.0 + 0.1 * math.sin(0.7 * t)) for t in range(steps)]
    feed: list[Any] = [torch.tensor(x) for x in losses] if kind == "adaptive, tensor loss" else losses
    t0 = time.perf_counter()
    if kind == "fixed":
        for _ in range(steps):
            sched.step()
    else:
        for x in feed:
            sched.observe(x)
            sched.step()
    return (time.perf_counter() - t0) / steps * 1e6


def adaptive_timing(steps: int, repeats: int) -> None:
    kinds = ("fixed", "adaptive, float loss", "adaptive, tensor loss")
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(repeats):  # interleaved
        for k in kinds:
            samples[k].append(adaptive_us(k, steps))
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"\nadaptive CLR: microseconds per update for the scheduler, median of {repeats} x {steps} steps")
    print(f"{'scheduler':<46}{'us':>8}{'observe() alone':>17}")
    print(f"{'fixed one-cycle: step()':<46}{med['fixed']:>8.2f}{'':>17}")
    for k in kinds[1:]:
        label = f"cyclr.adaptive: observe({k.split(', ')[1]}) + step()"
        print(f"{label:<46}{med[k]:>8.2f}{med[k] - med['fixed']:>17.2f}")


def compiled_graphs(tensor_hparams: bool, kind: str, cycles: int = 3, step_size: int = 4) -> int:
    """Graphs torch.compile builds for an Adam step over ``cycles`` cycles of LR and beta1."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    lr: Any = torch.tensor(0.01) if tensor_hparams else 0.01
    betas: Any = (torch.tensor(0.9), torch.tensor(0.999)) if tensor_hparams else (0.9, 0.999)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, foreach=False)
    if kind == "cyclr":
        sched: LRScheduler = ct.Scheduler(opt, cyclr.triangular(0.001, 0.01, step_size), momentum=(0.85, 0.95))
    else:
        sched = CyclicLR(opt, 0.001, 0.01, step_size_up=step_size, base_momentum=0.85, max_momentum=0.95)
    counter = CompileCounter()

    @torch.compile(backend=counter)
    def opt_step() -> None:
        opt.step()

    x = torch.randn(16, 8)
    for _ in range(cycles * 2 * step_size):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt_step()
        sched.step()
    return int(counter.frame_count)


def compile_counts() -> None:
    print("\ngraphs compiled for a torch.compile'd Adam step over 3 cycles (LR and beta1 cycling)")
    print(f"{'hyperparameters':<18}{'torch CyclicLR':>16}{'cyclr Scheduler':>17}")
    for tensor in (False, True):
        label = "tensor lr, betas" if tensor else "float lr, betas"
        print(f"{label:<18}{compiled_graphs(tensor, 'torch'):>16}{compiled_graphs(tensor, 'cyclr'):>17}")


def vectorised(n: int = 10**6) -> None:
    """Milliseconds to evaluate n steps at once on a NumPy array (best of 5), per schedule."""
    import numpy as np

    from cyclr.plot import gallery_entries

    t = np.arange(n)
    print(f"\nNumPy: milliseconds to evaluate {n:,} steps at once (best of 5)")
    for entry in gallery_entries():
        best = min(_timed(lambda e=entry: e.schedule(t)) for _ in range(5))
        print(f"  {entry.title:<40}{best * 1e3:>8.1f}")


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, cyclr {cyclr.__version__}")
    timing(args.steps, args.repeats)
    adaptive_timing(args.steps, args.repeats)
    compile_counts()
    vectorised()


if __name__ == "__main__":
    main()
