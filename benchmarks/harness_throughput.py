"""Training throughput of the ``cyclr bench`` loop next to a plain hand-written PyTorch loop on
the same model, data, optimizer and schedule (torch's OneCycleLR in the plain loop, cyclr's
one_cycle through the harness). Alternating repeats; prints steps per second and the ratio.

    .venv/bin/python benchmarks/harness_throughput.py [--task mnist] [--steps 300] [--repeats 5]

Goal (issue 5): the harness within 10% of the plain loop.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import cyclr
from cyclr.bench import get_task
from cyclr.bench.driver import ScheduleDriver
from cyclr.bench.tasks import Task, TaskData
from cyclr.bench.train import train


def plain_loop(task: Task, data: TaskData, steps: int, seed: int) -> float:
    """What a user writes by hand: shuffled index batches, forward, backward, step, schedule."""
    torch.manual_seed(seed)
    model = task.model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    bs = task.batch_size
    model.train()
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        order = torch.randperm(data.n_train, generator=gen)
        for i in range(0, data.n_train - bs + 1, bs):
            idx = order[i : i + bs]
            loss = torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            done += 1
            if done == steps:
                break
    return steps / (time.perf_counter() - t0)


def harness_loop(task: Task, data: TaskData, steps: int, seed: int) -> float:
    per_epoch = task.steps_per_epoch(data)
    epochs = -(-steps // per_epoch)
    schedule = cyclr.one_cycle(max_lr=0.1, total_steps=epochs * per_epoch)
    result = train(
        task, data, ScheduleDriver(schedule, momentum=(0.85, 0.95)), epochs=epochs, seed=seed, evals_per_epoch=0
    )
    return result.steps / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    task = get_task(args.task)
    data = task.load()
    per_epoch = task.steps_per_epoch(data)
    steps = -(-args.steps // per_epoch) * per_epoch  # whole epochs, the same count for both loops
    plain_loop(task, data, min(steps, 20), 0)  # warm-up (allocator, kernels)
    harness_loop(
        task,
        TaskData(data.x_train[: 20 * task.batch_size], data.y_train[: 20 * task.batch_size], data.x_test, data.y_test),
        20,
        0,
    )
    plain, ours = [], []
    for r in range(args.repeats):  # alternate, so drift in machine load hits both alike
        plain.append(plain_loop(task, data, steps, r))
        ours.append(harness_loop(task, data, steps, r))
    p, h = statistics.median(plain), statistics.median(ours)
    print(f"task {args.task}: {steps} steps x {args.repeats} repeats (alternating), {torch.get_num_threads()} threads")
    print(f"  plain PyTorch loop + OneCycleLR : {p:8.1f} steps/s (median; runs {', '.join(f'{x:.1f}' for x in plain)})")
    print(f"  cyclr bench loop + one_cycle    : {h:8.1f} steps/s (median; runs {', '.join(f'{x:.1f}' for x in ours)})")
    print(f"  harness / plain throughput      : {h / p:.3f}x (goal: >= 0.90x)")


if __name__ == "__main__":
    main()
