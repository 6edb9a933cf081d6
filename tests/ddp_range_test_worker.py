"""Worker for ``test_finder_torch.py::test_ddp_two_ranks`` (not a test module itself).

Run as ``python -m torch.distributed.run --nproc_per_node=2 --standalone
tests/ddp_range_test_worker.py OUTDIR``: every rank builds the same model (same seed), wraps it
in DistributedDataParallel over gloo, trains on its own data shard, runs
``cyclr.torch.lr_range_test`` and writes ``OUTDIR/rank<r>.json``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def _checksum(state: dict) -> str:  # type: ignore[type-arg]
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(out: Path) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn import functional as F
    from torch.nn.parallel import DistributedDataParallel

    import cyclr.torch
    from cyclr.finder import NoDescentError

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        torch.manual_seed(0)  # the same model on every rank
        model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1))
        ddp = DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)

        w = torch.randn(10, 1, generator=torch.Generator().manual_seed(42))  # one task
        g = torch.Generator().manual_seed(1000 + rank)  # a different shard per rank
        x = torch.randn(640, 10, generator=g)
        y = x @ w + 0.1 * torch.randn(640, 1, generator=g)
        batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 640, 32)]

        local: list[float] = []

        def step_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            loss = F.mse_loss(m(batch[0]), batch[1])
            local.append(float(loss.detach()))
            return loss

        before = {k: v.detach().clone() for k, v in ddp.state_dict().items()}
        num_steps = 100
        result = cyclr.torch.lr_range_test(
            ddp, opt, None, batches, start_lr=1e-4, end_lr=1e3, num_steps=num_steps, step_fn=step_fn, progress=False
        )
        after = ddp.state_dict()
        restored = before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
        try:
            suggestions: dict[str, object] = dict(result.suggestions)
        except NoDescentError as err:
            suggestions = {"error": str(err)}
        report = {
            "rank": rank,
            "world_size": world,
            "num_steps": num_steps,
            "lrs": result.lrs.tolist(),
            "losses": result.losses.tolist(),
            "smoothed": result.smoothed.tolist(),
            "steps": result.steps,
            "stop_reason": result.stop_reason,
            "suggestions": suggestions,
            "local_losses": local,
            "restored": restored,
            "checksum_before": _checksum(before),
            "checksum_after": _checksum(after),
        }
        (out / f"rank{rank}.json").write_text(json.dumps(report))
        # leave cleanly: every collective done, and the DDP model (its reducer holds the process
        # group) freed before the group goes; otherwise gloo can abort at exit on a busy machine
        dist.barrier()
        del ddp, opt, model
        import gc

        gc.collect()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
