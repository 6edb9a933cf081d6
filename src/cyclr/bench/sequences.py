"""Time-series tasks: multi-step forecasting with recurrent networks (LSTM, GRU).

A model reads a window of past months and predicts the next ``horizon`` months at once (direct
multi-step forecasting). The series is split chronologically into train / validation / test
(70 / 15 / 15%); a window belongs to the split that holds all its targets (its inputs may reach
back into the previous split, as they would when forecasting for real). The metric, tracked
during training, is the RMSE on the validation windows in the series' own units; the test RMSE is
measured once at the end of each run. The target is set from the better of two naive forecasts
on the validation split (persistence: the last value; seasonal-naive: the value one season
earlier): ``target_vs_naive`` times its RMSE. The report shows both naive forecasts' RMSE.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .tasks import CORE_STRATEGIES, Task, TaskData, register

__all__ = ["Forecaster", "SeriesTask", "naive_forecasts"]


def naive_forecasts(series: np.ndarray, ends: np.ndarray, horizon: int, season: int) -> dict[str, np.ndarray]:
    """The naive forecasts of ``series[t+1 : t+1+horizon]`` for each window end ``t``:
    persistence (``y[t]``) and seasonal-naive (``y[t + h - season * ceil(h / season)]``)."""
    h = np.arange(1, horizon + 1)
    persistence = np.repeat(series[ends][:, None], horizon, axis=1)
    seasonal = series[ends[:, None] + h - season * np.ceil(h / season).astype(int)]
    return {"naive": persistence, "seasonal-naive": seasonal}


class Forecaster(nn.Module):
    """A one-layer LSTM or GRU over the window; a linear head maps its last state to the horizon."""

    def __init__(self, cell: str = "lstm", hidden: int = 32, horizon: int = 12) -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.unsqueeze(-1))
        return self.head(out[:, -1])  # type: ignore[no-any-return]


class SeriesTask(Task):
    """A forecasting task on one monthly series. Subclasses name the series, the cell, the season
    and the input transform (``'standard'``: z-score with the training split's statistics;
    ``'log-seasonal'``: seasonal log differences, ``log y[t] - log y[t - season]``, for a trending
    seasonal series; the model then predicts a correction to the seasonal-naive forecast)."""

    domain = "sequences"
    strategies = CORE_STRATEGIES
    metric = "rmse"
    tracked_on = "validation"
    higher_is_better = False
    evals_per_epoch = 1
    default_lr = {"sgd": 0.05, "adam": 3e-3}
    series: ClassVar[str] = ""
    cell: ClassVar[str] = "lstm"
    hidden: ClassVar[int] = 32
    window: ClassVar[int] = 60
    horizon: ClassVar[int] = 12
    season: ClassVar[int] = 12
    transform: ClassVar[str] = "standard"
    splits: ClassVar[tuple[float, float]] = (0.70, 0.85)
    #: the target as a fraction of the better naive forecast's validation RMSE
    target_vs_naive: ClassVar[float] = 1.0

    def __init__(self) -> None:
        self._values: np.ndarray | None = None
        self._ends: dict[str, np.ndarray] = {}
        self._scale: tuple[float, float] = (0.0, 1.0)

    # ---------------------------------------------------------------- data
    def raw(self, data_dir: str | Path | None = None) -> np.ndarray:
        from .. import data

        _, values = getattr(data, self.series)(data_dir)
        return np.asarray(values, dtype=np.float64)

    def load(self, data_dir: str | Path | None = None) -> TaskData:
        y = self.raw(data_dir)
        n = len(y)
        a, b = (int(f * n) for f in self.splits)
        self._values = y
        self._scale = (float(y[:a].mean()), float(y[:a].std()))
        bounds = {"train": (0, a), "val": (a, b), "test": (b, n)}
        first = self.window - 1 + (self.season if self.transform == "log-seasonal" else 0)
        self._ends = {k: np.arange(max(lo - 1, first), hi - self.horizon) for k, (lo, hi) in bounds.items()}
        x_train, y_train = self._windows(self._ends["train"])
        x_val, y_val = self._windows(self._ends["val"])
        x_test, y_test = self._windows(self._ends["test"])
        # the tracked split is validation; the test windows ride along for the end-of-run score
        return TaskData(x_train, y_train, x_val, y_val, extra={"x_test": x_test, "y_test": y_test})

    def _windows(self, ends: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._values is not None
        y = self._values
        x = np.stack([y[t - self.window + 1 : t + 1] for t in ends])
        target = np.stack([y[t + 1 : t + 1 + self.horizon] for t in ends])
        if self.transform == "log-seasonal":
            s = self.season
            x = np.log(x) - np.log(np.stack([y[t - s - self.window + 1 : t - s + 1] for t in ends]))
            target = np.log(target) - np.log(self._last_season(ends))
        else:
            mean, std = self._scale
            x, target = (x - mean) / std, (target - mean) / std
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(target.astype(np.float32))

    def _last_season(self, ends: np.ndarray) -> np.ndarray:
        """The values one season before each target month (the seasonal-naive forecast)."""
        assert self._values is not None
        return naive_forecasts(self._values, ends, self.horizon, self.season)["seasonal-naive"]

    def _to_units(self, pred: torch.Tensor, ends: np.ndarray) -> np.ndarray:
        """Predictions back in the series' units."""
        p = pred.double().numpy()
        if self.transform == "log-seasonal":
            return np.exp(p) * self._last_season(ends)  # type: ignore[no-any-return]
        mean, std = self._scale
        return p * std + mean  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- model and metric
    def model(self) -> nn.Module:
        return Forecaster(self.cell, self.hidden, self.horizon)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output, target)

    def _truth(self, split: str) -> np.ndarray:
        """The target months of every window of ``split``, in the series' units."""
        assert self._values is not None
        return np.stack([self._values[t + 1 : t + 1 + self.horizon] for t in self._ends[split]])

    def _rmse(self, model: nn.Module, x: torch.Tensor, split: str) -> float:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            pred = self._to_units(model(x), self._ends[split])
        model.train(was_training)
        return float(np.sqrt(np.mean((pred - self._truth(split)) ** 2)))

    def evaluate(self, model: nn.Module, data: TaskData, batch_size: int = 256) -> float:
        """Validation RMSE in the series' units (all horizons pooled)."""
        return self._rmse(model, data.x_test, "val")

    def final_metrics(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        return {"test " + self.metric: self._rmse(model, data.extra["x_test"], "test")}

    def baselines(self, data: TaskData) -> dict[str, float]:
        """The naive forecasts' RMSE on the validation and test splits."""
        assert self._values is not None
        out = {}
        for split in ("val", "test"):
            truth = self._truth(split)
            for name, pred in naive_forecasts(self._values, self._ends[split], self.horizon, self.season).items():
                out[f"{name} ({split})"] = float(np.sqrt(np.mean((pred - truth) ** 2)))
        return out


@register
class SunspotsLSTM(SeriesTask):
    """Monthly sunspots 1749-1983: 10 years in, 12 months out; an LSTM with 32 units."""

    name = "sunspots-lstm"
    description = "monthly sunspots, 120 months -> next 12, LSTM(32); RMSE"
    series = "sunspots"
    units = "monthly mean sunspot number"
    window = 120
    season = 132  # the ~11-year solar cycle
    batch_size = 32
    epochs = 20
    evals_per_epoch = 2
    #: 25% below the persistence forecast's validation RMSE, 26.61 (the better naive forecast;
    #: merely beating it takes one epoch). A test checks the number against the data.
    target_vs_naive = 0.75
    target = 19.96


@register
class SunspotsGRU(SunspotsLSTM):
    name = "sunspots-gru"
    description = "monthly sunspots, 120 months -> next 12, GRU(32); RMSE"
    cell = "gru"
    optimizers = ("adam",)  # a GRU step costs 4x an LSTM step on CPU: AdamW only, to fit the budget


@register
class AirlineLSTM(SeriesTask):
    """Airline passengers 1949-1960: 2 years in, 12 months out, seasonal log differences; a small LSTM."""

    name = "airline-lstm"
    description = "airline passengers, 24 months -> next 12 (seasonal log differences), LSTM(32); RMSE"
    series = "airline_passengers"
    units = "thousands of passengers"
    window = 24
    season = 12
    transform = "log-seasonal"
    batch_size = 8
    epochs = 100
    #: the seasonal-naive forecast's validation RMSE (the better naive forecast; a test checks it)
    target = 26.92
