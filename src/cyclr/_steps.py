"""How many optimizer updates a run makes: the ``total_steps`` every finite schedule needs."""

from __future__ import annotations

import math

from ._validation import IntRange, Optional, check

__all__ = ["total_steps"]


def total_steps(
    epochs: int,
    batches_per_epoch: int | None = None,
    *,
    dataset_size: int | None = None,
    batch_size: int | None = None,
    world_size: int = 1,
    accumulation: int = 1,
    drop_last: bool = False,
) -> int:
    """Optimizer updates in ``epochs`` epochs (torch ``OneCycleLR``'s off-by-one pain, #38170).

    Give either ``batches_per_epoch`` (``len(dataloader)`` on one rank) or ``dataset_size`` and
    ``batch_size`` (per rank; split over ``world_size`` ranks as ``DistributedSampler`` does). With
    gradient accumulation every ``accumulation`` batches make one update; a partial group at the
    end of an epoch still makes one (as Lightning and accelerate do).

    >>> total_steps(3, 100, accumulation=4)
    75
    >>> total_steps(2, dataset_size=50_000, batch_size=128, world_size=4)
    196
    """
    check("total_steps", "epochs", epochs, [IntRange(1)])
    check("total_steps", "world_size", world_size, [IntRange(1)])
    check("total_steps", "accumulation", accumulation, [IntRange(1)])
    check("total_steps", "batches_per_epoch", batches_per_epoch, [Optional(IntRange(1))])
    if batches_per_epoch is None:
        check("total_steps", "dataset_size", dataset_size, [IntRange(1)])
        check("total_steps", "batch_size", batch_size, [IntRange(1)])
        assert dataset_size is not None and batch_size is not None
        per_rank = math.ceil(dataset_size / world_size)  # DistributedSampler pads to equal shards
        batches_per_epoch = per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)
        if batches_per_epoch < 1:
            raise ValueError(
                f"total_steps: {dataset_size} samples over {world_size} rank(s) make no full batch of {batch_size}."
            )
    elif dataset_size is not None or batch_size is not None:
        raise ValueError("total_steps: give batches_per_epoch, or dataset_size and batch_size, not both.")
    return epochs * math.ceil(batches_per_epoch / accumulation)
