"""The PyTorch loop of the LR range test, and the snapshot that puts everything back."""

from __future__ import annotations

import copy
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Sized
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._steps import total_steps
from .._validation import IntRange, OneOf, check
from ._core import RangeTest, RangeTestResult, progress_bar, repeat_batches

__all__ = ["Snapshot", "lr_range_test"]


def _clone(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)


class Snapshot:
    """Everything a range test can change, copied once and written back in place.

    Model parameters and buffers (bit-identical), gradients, train/eval flags; the optimizer's
    per-parameter state and every param-group hyperparameter (tensor hyperparameters are
    restored in place, so compiled steps keep their references); an attached scheduler's state;
    and the torch (CPU and CUDA), NumPy and Python RNG states. ``stage='disk'`` keeps the weight
    copy in a temporary file instead of memory, for models that barely fit.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        stage: str = "memory",
        stage_dir: str | Path | None = None,
    ) -> None:
        check("lr_range_test", "stage", stage, [OneOf(("memory", "disk"))])
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        # buffers registered with persistent=False are not in the state dict: kept by name
        persistent = set(model.state_dict(keep_vars=True))
        self._extra = {k: b.detach().clone() for k, b in model.named_buffers() if k not in persistent}
        self._file: Path | None = None
        if stage == "disk":
            fd, name = tempfile.mkstemp(dir=stage_dir, prefix="cyclr-range-test-", suffix=".pt")
            os.close(fd)
            self._file = Path(name)
            torch.save(weights, self._file)
            self._weights: dict[str, torch.Tensor] | None = None
        else:
            self._weights = weights
        del weights
        self._grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
        self._training = [m.training for m in model.modules()]
        self._groups = [{k: _clone(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        self._opt_state = {p: {k: _clone(v) for k, v in s.items()} for p, s in optimizer.state.items()}
        self._sched = copy.deepcopy(scheduler.state_dict()) if scheduler is not None else None
        self._rng = (
            torch.get_rng_state(),
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,  # type: ignore[no-untyped-call]
            np.random.get_state(),
            random.getstate(),
        )

    def restore(self) -> None:
        model, optimizer = self.model, self.optimizer
        weights = self._weights if self._file is None else torch.load(self._file, weights_only=True)
        assert weights is not None, "the snapshot was closed"
        with torch.no_grad():
            model.load_state_dict(weights)
            for name, buffer in model.named_buffers():
                if name in self._extra:
                    buffer.copy_(self._extra[name])
        for p, g in zip(model.parameters(), self._grads):
            p.grad = None if g is None else g.clone()
        for m, training in zip(model.modules(), self._training):
            m.training = training
        for group, saved in zip(optimizer.param_groups, self._groups):
            for key in [k for k in group if k != "params" and k not in saved]:
                del group[key]
            for key, value in saved.items():
                current = group.get(key)
                if isinstance(current, torch.Tensor) and isinstance(value, torch.Tensor):
                    with torch.no_grad():
                        current.copy_(value)
                elif isinstance(current, tuple) and isinstance(value, tuple) and len(current) == len(value):
                    group[key] = tuple(_restore_item(c, v) for c, v in zip(current, value))
                else:
                    group[key] = _clone(value)
        # per-parameter state goes back into the same tensors (a compiled step keeps its guards)
        for param in [p for p in optimizer.state if p not in self._opt_state]:
            del optimizer.state[param]
        for param, saved_state in self._opt_state.items():
            current_state = optimizer.state.get(param)
            if current_state is None:
                optimizer.state[param] = {k: _clone(v) for k, v in saved_state.items()}
                continue
            for key in [k for k in current_state if k not in saved_state]:
                del current_state[key]
            for key, value in saved_state.items():
                current_state[key] = _restore_item(current_state.get(key), value)
        if self.scheduler is not None and self._sched is not None:
            self.scheduler.load_state_dict(copy.deepcopy(self._sched))
        cpu, cuda, np_state, py_state = self._rng
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        np.random.set_state(np_state)
        random.setstate(py_state)

    def close(self) -> None:
        """Free the copy (memory or file)."""
        self._weights, self._opt_state, self._grads, self._extra = None, {}, [], {}
        if self._file is not None:
            self._file.unlink(missing_ok=True)
            self._file = None


def _data_generators(data: Any) -> list[torch.Generator]:
    """The random generators a data loader shuffles with (its own, its sampler's, its batch
    sampler's sampler's): the sweep draws batches from them, so their states are put back too
    and the run's first epoch sees the order it would have seen without the test."""
    found: list[torch.Generator] = []
    batch_sampler = getattr(data, "batch_sampler", None)
    for owner in (data, getattr(data, "sampler", None), getattr(batch_sampler, "sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not f for f in found):
            found.append(g)
    return found


def _sized(data: Any) -> bool:
    try:
        return isinstance(data, Sized) and len(data) > 0
    except TypeError:  # an IterableDataset's DataLoader has __len__ that raises
        return False


def _restore_item(current: Any, saved: Any) -> Any:
    """``saved`` written into ``current`` when both are tensors of one shape, dtype and device
    (the same object stays in place); otherwise a copy of ``saved``."""
    if (
        isinstance(current, torch.Tensor)
        and isinstance(saved, torch.Tensor)
        and current.shape == saved.shape
        and current.dtype == saved.dtype
        and current.device == saved.device
    ):
        with torch.no_grad():
            current.copy_(saved)
        return current
    return _clone(saved)


def _to(batch: Any, device: torch.device | None) -> Any:
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def _distributed() -> tuple[bool, int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size()
    return False, 0, 1


def _mean_across_ranks(values: list[float], device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return (t / torch.distributed.get_world_size()).tolist()


def _any_rank(flag: bool, device: torch.device) -> bool:
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


def _default_step(loss_fn: Callable[..., torch.Tensor] | None) -> Callable[[torch.nn.Module, Any], torch.Tensor]:
    if loss_fn is None:
        raise ValueError("lr_range_test needs loss_fn (called as loss_fn(model(x), y)) or step_fn(model, batch).")

    def step(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch[0], batch[1]
        return loss_fn(model(x), y)

    return step


def _evaluate(model: torch.nn.Module, data: Iterable[Any], step: Callable[..., torch.Tensor], device: Any) -> float:
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in data:
            batch = _to(batch, device)
            n = len(batch[0]) if isinstance(batch, (list, tuple)) and hasattr(batch[0], "__len__") else 1
            total += float(step(model, batch)) * n
            count += n
    model.train(was_training)
    return total / max(count, 1)


def lr_range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor] | None,
    train_data: Iterable[Any],
    *,
    val_data: Iterable[Any] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    smoothing: float = 0.98,
    diverge: float = 4.0,
    accumulation_steps: int = 1,
    repeats: int = 1,
    scheduler: Any = None,
    device: str | torch.device | None = None,
    step_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
    stage: str = "memory",
    stage_dir: str | Path | None = None,
    progress: bool = True,
) -> RangeTestResult:
    """Smith's LR range test: train ``num_steps`` steps with the LR rising from ``start_lr`` to
    ``end_lr``, record the loss, and put everything back.

    Args:
        model: trained in place during the test, restored exactly afterwards (also
            after divergence, NaN, an exception or Ctrl-C).
        optimizer: stepped by the test; its state and every param-group hyperparameter are
            restored exactly too.
        loss_fn: ``loss_fn(model(x), y)`` for batches ``(x, y, ...)``; or give ``step_fn(model,
            batch) -> loss`` for anything else. A ``step_fn`` may carry state between batches
            (a recurrent model's hidden state, detached each step: truncated BPTT); if it has a
            ``reset()`` method, every sweep calls it first, so each starts from fresh state as
            training would.
        train_data: an iterable of batches (a ``DataLoader``); re-iterated if it runs out. A
            loader's own shuffling generator (``generator=``) is put back too.
        val_data: if given, the validation loss after every step drives the smoothing and the
            stop (pytorch-lr-finder's ``val_loader``); it costs a full pass per step.
        accumulation_steps: micro-batches per optimizer step (the loss is their mean).
        repeats: sweeps on successive batches, each from the restored state; see ``result.spread``.
        scheduler: a scheduler attached to ``optimizer``, whose state is restored too. The test
            sets the LRs itself; an attached scheduler does not disturb it.
        stage: ``'memory'`` or ``'disk'`` (the weight copy goes to a temporary file).

    Param groups keep their LR ratios (discriminative LRs): the group with the largest LR
    follows the sweep and the others are scaled alike. Under ``torch.distributed`` every rank
    must call this; losses are averaged over ranks and all ranks stop together and get the same
    result. Returns a :class:`~cyclr.finder.RangeTestResult`.
    """
    check("lr_range_test", "accumulation_steps", accumulation_steps, [IntRange(1)])
    check("lr_range_test", "repeats", repeats, [IntRange(1)])
    sweep = RangeTest(start_lr, end_lr, num_steps, mode, smoothing, diverge)
    step = step_fn or _default_step(loss_fn)
    dev = torch.device(device) if device is not None else None
    distributed, rank, _ = _distributed()
    reduce_device = next(model.parameters()).device
    group_lrs = [float(g["lr"]) for g in optimizer.param_groups]
    top = max(group_lrs)
    ratios = [lr / top if top > 0 else 1.0 for lr in group_lrs]
    batches = repeat_batches(train_data)
    # one rule with cyclr.total_steps: a partial accumulation group at an epoch's end is an update
    steps_per_epoch = total_steps(1, len(train_data), accumulation=accumulation_steps) if _sized(train_data) else None  # type: ignore[arg-type]

    snapshot = Snapshot(model, optimizer, scheduler, stage, stage_dir)
    data_rng = [(g, g.get_state()) for g in _data_generators(train_data)]
    bar = progress_bar(progress and rank == 0, repeats * num_steps)
    try:
        with bar as update:
            for _ in range(repeats):
                snapshot.restore()
                model.train()
                if callable(getattr(step, "reset", None)):
                    step.reset()  # type: ignore[attr-defined]  # carried state (an RNN's hidden state) starts afresh
                sweep.begin()
                for i in range(num_steps):
                    lr = sweep.lr(i)
                    for group, ratio in zip(optimizer.param_groups, ratios):
                        _set_lr(group, lr * ratio)
                    optimizer.zero_grad(set_to_none=True)
                    loss = 0.0
                    for _ in range(accumulation_steps):
                        micro = step(model, _to(next(batches), dev)) / accumulation_steps
                        micro.backward()  # type: ignore[no-untyped-call]
                        loss += float(micro.detach())
                    optimizer.step()
                    val = _evaluate(model, val_data, step, dev) if val_data is not None else None
                    if distributed:
                        loss, *rest = _mean_across_ranks([loss] + ([val] if val is not None else []), reduce_device)
                        val = rest[0] if rest else None
                    stop = sweep.record(lr, loss, val)
                    if distributed:
                        stop = _any_rank(stop, reduce_device)
                    update(1)
                    if stop:
                        update(0, skipped=num_steps - i - 1)
                        break
    finally:
        snapshot.restore()
        snapshot.close()
        for generator, state in data_rng:
            generator.set_state(state)
    seconds = sum(c.seconds for c in sweep.curves)
    info: dict[str, Any] = {
        "framework": "torch",
        "seconds_per_step": seconds / max(1, sum(len(c.lrs) for c in sweep.curves)),
    }
    if steps_per_epoch:
        info["steps_per_epoch"] = steps_per_epoch
    return sweep.result(**info)


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr
