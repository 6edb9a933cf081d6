"""Worker for ``test_controllers.py::test_ddp_ranks_set_the_same_lr`` (not a test module itself).

Run as ``python -m torch.distributed.run --nproc_per_node=2 --standalone
tests/ddp_adaptive_worker.py OUTDIR``: every rank trains the same DDP model on its own data
shard with ``cyclr.torch.Scheduler(opt, cyclr.adaptive(...))`` and ``observe(loss)``, and writes
its local losses and the LRs it used to ``OUTDIR/rank<r>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: Path) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn import functional as F
    from torch.nn.parallel import DistributedDataParallel

    import cyclr
    import cyclr.torch

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = cyclr.torch.Scheduler(opt, cyclr.adaptive(total_steps=60), momentum=(0.85, 0.95))
    gen = torch.Generator().manual_seed(100 + rank)  # each rank its own shard
    x = torch.randn(60 * 16, 4, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 0.1 * torch.randn(60 * 16, generator=gen)
    lrs, losses = [], []
    for i in range(60):
        xb, yb = x[16 * i : 16 * i + 16], y[16 * i : 16 * i + 16]
        lrs.append(opt.param_groups[0]["lr"])
        loss = F.mse_loss(model(xb).squeeze(1), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        sched.observe(loss)
        sched.step()
    (out / f"rank{rank}.json").write_text(
        json.dumps({"rank": rank, "world": world, "lrs": lrs, "losses": losses, "state": sched.controller_state})
    )
    # Leave cleanly: both ranks done with every collective, then the DDP model (its reducer holds
    # the process group) freed before the group is destroyed; otherwise gloo can abort at exit
    # ("terminate called without an active exception") on a busy machine.
    dist.barrier()
    del model, opt, sched
    import gc

    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
