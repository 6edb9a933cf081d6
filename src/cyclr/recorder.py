"""A record of what a training run did, step by step: the LR (every param group), the momentum
(or ``beta1``) and the loss, for PyTorch and JAX loops (Keras has :class:`cyclr.keras.LRLogger`).

Examples:
    >>> rec = Recorder()
    >>> for step in range(3):
    ...     rec.record(lr=0.1 * (step + 1), momentum=0.9, loss=1.0 / (step + 1))
    >>> rec.lr
    [0.1, 0.2, 0.30000000000000004]

In a torch loop, :meth:`Recorder.torch` reads what the optimizer holds (what its next update uses),
so it records any scheduler's values, cyclr's or not::

    for x, y in loader:
        loss = loss_fn(model(x), y)
        opt.zero_grad(); loss.backward()
        rec.torch(opt, loss)        # before opt.step(): the values this update uses
        opt.step(); sched.step()

With optax, :meth:`Recorder.schedule` records a cyclr schedule's value at the step. Then
:meth:`plot`, :meth:`to_csv` and :meth:`to_tensorboard`.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

__all__ = ["Recorder"]


def _number(value: Any) -> float | None:
    if value is None:
        return None
    item = getattr(value, "item", None)  # a tensor or an array: one sync, here
    return float(item() if item is not None else value)


class Recorder:
    """LR, momentum and loss per recorded step. ``steps``, ``lr`` (the first param group's),
    ``lrs`` (every group's), ``momentum`` and ``loss`` are lists of equal length (``None`` where a
    value was not given)."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.lrs: list[list[float]] = []
        self.momentum: list[float | None] = []
        self.loss: list[float | None] = []

    @property
    def lr(self) -> list[float]:
        return [group[0] for group in self.lrs]

    def __len__(self) -> int:
        return len(self.steps)

    def record(
        self,
        lr: float | list[float],
        momentum: float | None = None,
        loss: Any = None,
        step: int | None = None,
    ) -> None:
        """One step's values. ``step`` defaults to the next one (0, 1, 2, ...)."""
        lrs = [float(v) for v in lr] if isinstance(lr, (list, tuple)) else [float(lr)]
        if not lrs or not all(math.isfinite(v) for v in lrs):
            raise ValueError(f"Recorder.record: lr must be a finite number or a list of them; got {lr!r}.")
        if step is None:
            step = self.steps[-1] + 1 if self.steps else 0
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"Recorder.record: step must be an integer >= 0; got {step!r}.")
        self.steps.append(step)
        self.lrs.append(lrs)
        self.momentum.append(_number(momentum))
        self.loss.append(_number(loss))

    def torch(self, optimizer: Any, loss: Any = None) -> None:
        """Record what a torch optimizer holds now: every group's LR and the first group's
        momentum (SGD/RMSprop ``momentum`` or Adam's ``betas[0]``). Call it before
        ``optimizer.step()`` to record the values that update uses."""
        groups = optimizer.param_groups
        group = groups[0]
        momentum = group["betas"][0] if "betas" in group else group.get("momentum")
        self.record([float(g["lr"]) for g in groups], momentum, loss)

    def schedule(self, schedule: Any, step: int, loss: Any = None, momentum: Any = None) -> None:
        """Record a schedule's LR (and a momentum schedule's value) at ``step``: for optax loops,
        where the LR lives in the schedule, not in the optimizer state."""
        m = None if momentum is None else float(momentum(step))
        self.record(float(schedule(step)), m, loss, step=int(step))

    # ------------------------------------------------------------------ out
    def rows(self) -> list[dict[str, float | int | None]]:
        groups = max((len(g) for g in self.lrs), default=1)
        out = []
        for step, lrs, m, loss in zip(self.steps, self.lrs, self.momentum, self.loss):
            row: dict[str, float | int | None] = {"step": step, "lr": lrs[0]}
            for i in range(1, groups):
                row[f"lr_{i}"] = lrs[i] if i < len(lrs) else None
            row["momentum"], row["loss"] = m, loss
            out.append(row)
        return out

    def to_csv(self, path: str | Path) -> Path:
        """One row per step: step, lr (and lr_1, ... for more groups), momentum, loss."""
        rows = self.rows()
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step", "lr", "momentum", "loss"])
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
        return path

    def to_tensorboard(self, log_dir: str | Path, prefix: str = "cyclr") -> Path:
        """Write the scalars (``cyclr/lr``, ``cyclr/momentum``, ``cyclr/loss``) as TensorBoard
        events, through torch's ``SummaryWriter`` (needs the ``tensorboard`` package)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError(
                "Recorder.to_tensorboard needs torch and tensorboard: pip install 'cyclr[torch]' tensorboard"
            ) from err
        writer = SummaryWriter(str(log_dir))
        try:
            for step, lrs, m, loss in zip(self.steps, self.lrs, self.momentum, self.loss):
                for i, v in enumerate(lrs):
                    writer.add_scalar(f"{prefix}/lr" + (f"_{i}" if i else ""), v, step)
                if m is not None:
                    writer.add_scalar(f"{prefix}/momentum", m, step)
                if loss is not None:
                    writer.add_scalar(f"{prefix}/loss", loss, step)
        finally:
            writer.close()
        return Path(log_dir)

    def plot(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """The LR (and momentum, dashed, on its own axis) over the steps, and the loss below it.
        Returns the matplotlib figure."""
        from .plot import MOMENTUM_COLOR, PALETTE, _plt

        if not self.steps:
            raise ValueError("Recorder.plot: nothing recorded yet.")
        plt = _plt()
        has_loss = any(v is not None for v in self.loss)
        fig, axes = plt.subplots(
            2 if has_loss else 1, 1, figsize=(9, 5.5 if has_loss else 3.4), dpi=110, sharex=True, layout="constrained"
        )
        ax = axes[0] if has_loss else axes
        groups = max(len(g) for g in self.lrs)
        for i in range(groups):
            ys = [g[i] if i < len(g) else math.nan for g in self.lrs]
            ax.plot(
                self.steps,
                ys,
                color=PALETTE[i % len(PALETTE)],
                lw=1.8,
                label="lr" + (f" (group {i})" if groups > 1 else ""),
            )
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        if any(v is not None for v in self.momentum):
            twin = ax.twinx()
            twin.plot(
                self.steps, [math.nan if v is None else v for v in self.momentum], color=MOMENTUM_COLOR, ls="--", lw=1.2
            )
            twin.set_ylabel("momentum", color=MOMENTUM_COLOR)
        ax.set_title(title or "what the optimizer used, step by step", loc="left", fontsize=11)
        if groups > 1:
            ax.legend(frameon=False, fontsize=8)
        if has_loss:
            loss_ax = axes[1]
            pts = [(s, v) for s, v in zip(self.steps, self.loss) if v is not None]
            loss_ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#444444", lw=0.8, alpha=0.6)
            loss_ax.set_ylabel("loss")
            loss_ax.grid(alpha=0.3)
            loss_ax.set_xlabel("optimizer step")
        else:
            ax.set_xlabel("optimizer step")
        if path is not None:
            fig.savefig(path, facecolor="white")
        return fig

    def _repr_png_(self) -> bytes | None:
        """The plot, in a notebook (IPython's display formatter)."""
        if not self.steps:
            return None
        from .plot import figure_png

        return figure_png(self.plot())

    def __repr__(self) -> str:
        return f"Recorder({len(self)} steps)"
