"""The peers' finders as cyclr's study runs them: fastai's valley rule, transcribed from its
source, with fastai's trims; torch-lr-finder and Lightning through their real packages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cyclr.bench.peers import SUGGESTERS, fastai_valley, fastai_valley_index


def test_valley_index_on_hand_worked_curves() -> None:
    # a strictly falling run of 5 ending at index 4: fastai's start is 4 - 5 = -1, sections 5/3,
    # so its index is -1 + 1 + 0 = 0 (its own off-by-one, kept)
    assert fastai_valley_index([5, 4, 3, 2, 1, 2, 3]) == 0
    # the longest decreasing subsequence may skip a bump: 9 8 (9.5) 7 6 5 4 -> length 6 ending at 6
    assert fastai_valley_index([9, 8, 9.5, 7, 6, 5, 4, 6]) == 6 - 6 + 2 + 1
    # ties do not extend a run (strictly lower only)
    assert fastai_valley_index([3, 3, 3, 3]) == 0


def test_valley_reads_the_trimmed_ema_and_stops_at_nan() -> None:
    """fastai's lr_find drops the first num_it // 10 and the last 5 recorded points and cuts at
    the first NaN before its rule runs."""
    lrs = np.geomspace(1e-7, 10, 100)
    smoothed = np.concatenate([np.linspace(3.0, 1.0, 60), np.linspace(1.1, 4.0, 40)])
    # trimmed: points 10..94; falling from 10 to 59 = 50 points -> start -1, sections 50/3 -> 23
    assert fastai_valley({"lrs": list(lrs), "smoothed": list(smoothed)}) == lrs[10 + 23]
    cut = list(smoothed)
    cut[40] = math.nan  # the run now ends at 39: 30 points, start -1, sections 10 -> 14
    assert fastai_valley({"lrs": list(lrs), "smoothed": cut}) == lrs[10 + 14]
    cut[40] = None  # a JSON null is a NaN
    assert fastai_valley({"lrs": list(lrs), "smoothed": cut}) == lrs[10 + 14]
    with pytest.raises(ValueError, match="no usable point"):
        fastai_valley({"lrs": list(lrs[:12]), "smoothed": list(smoothed[:12])})


@pytest.mark.parametrize("peer", ["torch-lr-finder", "lightning"])
def test_peer_packages_suggest_inside_their_sweep(peer: str) -> None:
    """Each peer runs its real package on a real task and answers inside its own sweep (1e-7 to
    10 for torch-lr-finder, Lightning's 1e-8 to 1), the same answer for the same seed."""
    import torch

    from cyclr.bench import get_task

    task = get_task("digits")
    data = task.dataset(subset=640)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = SUGGESTERS[peer](task, data, "sgd", 0)
        again = SUGGESTERS[peer](task, data, "sgd", 0)
    finally:
        torch.set_num_threads(threads)
    low, high = (1e-7, 10.0) if peer == "torch-lr-finder" else (1e-8, 1.0)
    assert low <= first <= high and first == again
