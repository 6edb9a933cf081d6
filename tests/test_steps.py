"""cyclr.total_steps: optimizer updates per run, with accumulation and ranks."""

from __future__ import annotations

import math

import pytest

import cyclr


def test_batches_per_epoch_with_accumulation_counts_partial_groups() -> None:
    assert cyclr.total_steps(3, 100) == 300
    assert cyclr.total_steps(3, 100, accumulation=4) == 75
    assert cyclr.total_steps(2, 10, accumulation=3) == 8  # 3+3+3+1 per epoch


@pytest.mark.parametrize(("drop_last", "expected"), [(False, 2 * math.ceil(12_500 / 128)), (True, 2 * (12_500 // 128))])
def test_dataset_split_over_ranks(drop_last: bool, expected: int) -> None:
    steps = cyclr.total_steps(2, dataset_size=50_000, batch_size=128, world_size=4, drop_last=drop_last)
    assert steps == expected


def test_total_steps_matches_a_real_dataloader() -> None:
    torch = pytest.importorskip("torch")
    data = torch.utils.data.TensorDataset(torch.zeros(1003, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=32)
    assert cyclr.total_steps(5, dataset_size=1003, batch_size=32) == 5 * len(loader)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0, "batches_per_epoch": 10}, "parameter 'epochs' must be an integer >= 1"),
        ({"epochs": 1, "batches_per_epoch": 10, "accumulation": 0}, "parameter 'accumulation'"),
        ({"epochs": 1}, "parameter 'dataset_size'"),
        ({"epochs": 1, "batches_per_epoch": 10, "batch_size": 4}, "not both"),
        ({"epochs": 1, "dataset_size": 3, "batch_size": 4, "drop_last": True}, "no full batch"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cyclr.total_steps(**kwargs)  # type: ignore[arg-type]
