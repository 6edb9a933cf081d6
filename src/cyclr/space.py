"""Search spaces for schedule searches, as data: the schedule family first, then that family's
own parameters (a conditional space), sampled through an Optuna trial into a cyclr schedule.

A space is a mapping (from YAML or JSON, loaded safely)::

    families:
      cyclic:                                       # the seed's CLR (SEED.md 3.1)
        max_lr: {low: 1.0e-3, high: 1.0, log: true}  # lr_max
        div: {low: 3, high: 30, log: true}           # lr_base = lr_max / div
        cycle_epochs: {low: 1, high: 10, int: true}  # the half cycle (step size), in epochs
        gamma: {low: 0.5, high: 1.0}                 # the amplitude kept per cycle
        mode: {choices: [triangular, sine, cosine]}
      one_cycle:
        max_lr: {low: 1.0e-3, high: 1.0, log: true}
        pct_start: 0.3                               # a plain value: fixed, not searched
    warmup_pct: {low: 0.0, high: 0.1}                # optional, for every family

Each parameter is a plain value (fixed), ``{low, high}`` with optional ``log`` and ``int``, or
``{choices: [...]}``. A family's parameters left out take the defaults in :data:`FAMILIES`.
Optuna's names are ``family`` and ``<family>.<parameter>``, so studies with other families do not
collide. Nothing here imports Optuna: :meth:`SearchSpace.sample` takes any object with Optuna's
``suggest_float``/``suggest_int``/``suggest_categorical``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .controllers import ClosedLoopCLR, Controller
from .schedules import SGDR, Cosine, Cyclic, OneCycle, Schedule, Warmup

__all__ = ["FAMILIES", "Param", "SearchSpace", "default_space"]


@dataclass(frozen=True)
class Param:
    """One parameter: ``value`` (fixed), or ``low``/``high`` (``log``, ``integer``), or ``choices``."""

    name: str
    value: Any = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def fixed(self) -> bool:
        return self.low is None and self.choices is None

    def sample(self, trial: Any, key: str) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(key, list(self.choices))
        if self.low is None or self.high is None:
            return self.value
        if self.integer:
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(key, float(self.low), float(self.high), log=self.log)

    def to_data(self) -> Any:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        if self.fixed:
            return self.value
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.integer:
            out["int"] = True
        return out


#: ``build(params, steps_per_epoch, total_steps)``: the family's schedule over ``total_steps``
Builder = Callable[[dict[str, Any], int, int], "Schedule | Controller"]


def _cyclic(p: dict[str, Any], steps_per_epoch: int, total: int) -> Schedule:
    shape = {"triangular": "triangular", "sine": "sine", "cosine": "cosine"}[p["mode"]]
    half = max(1, round(p["cycle_epochs"] * steps_per_epoch))
    return Cyclic(p["max_lr"] / p["div"], p["max_lr"], step_size=half, shape=shape, decay=p["gamma"])


def _one_cycle(p: dict[str, Any], steps_per_epoch: int, total: int) -> Schedule:
    # a run too short for its warm-up phase to hold one step gets the shortest one-cycle that does
    total = max(2, total, math.floor(1 / p["pct_start"]) + 1)
    return OneCycle(p["max_lr"], total, pct_start=p["pct_start"], div_factor=p["div_factor"])


def _sgdr(p: dict[str, Any], steps_per_epoch: int, total: int) -> Schedule:
    mult, cycles = float(p["period_mult"]), int(p["cycles"])
    first = total / sum(mult**k for k in range(cycles))  # the cycles fill the run
    return SGDR(p["max_lr"], period=max(first, 1.0), period_mult=mult, min_lr=p["max_lr"] / p["div"])


def _cosine(p: dict[str, Any], steps_per_epoch: int, total: int) -> Schedule:
    return Cosine(p["max_lr"], max(1, total), min_lr=p["max_lr"] / p["div"])


def _adaptive(p: dict[str, Any], steps_per_epoch: int, total: int) -> Controller:
    return ClosedLoopCLR(max_lr=p["max_lr"], total_steps=max(2, total), div=p["div"])


_LR = {"low": 1e-4, "high": 1.0, "log": True}
#: each family: its builder and its parameters' defaults (a range is searched, a value is fixed)
FAMILIES: dict[str, tuple[Builder, dict[str, Any]]] = {
    "cyclic": (
        _cyclic,
        {
            "max_lr": _LR,
            "div": {"low": 3.0, "high": 30.0, "log": True},
            "cycle_epochs": {"low": 1, "high": 10, "int": True},
            "gamma": 1.0,
            "mode": "triangular",
        },
    ),
    "one_cycle": (
        _one_cycle,
        {"max_lr": _LR, "pct_start": {"low": 0.1, "high": 0.5}, "div_factor": 25.0},
    ),
    "sgdr": (
        _sgdr,
        {
            "max_lr": _LR,
            "cycles": {"low": 1, "high": 5, "int": True},
            "period_mult": {"choices": [1.0, 2.0]},
            "div": 1e3,
        },
    ),
    "cosine": (_cosine, {"max_lr": _LR, "div": 1e3}),
    # cyclr's closed-loop CLR: max_lr is its first guess, re-estimated while it trains (no warm-up)
    "adaptive": (_adaptive, {"max_lr": _LR, "div": 10.0}),
}
_MODES = ("triangular", "sine", "cosine")


def _error(where: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"search space: {where} is {value!r}; allowed: {allowed}.")


def _param(where: str, name: str, spec: Any) -> Param:
    if isinstance(spec, Mapping):
        keys = set(spec)
        if keys == {"choices"}:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise _error(f"{where}.choices", choices, "a non-empty list")
            return Param(name, choices=tuple(choices))
        unknown = keys - {"low", "high", "log", "int"}
        if unknown or not {"low", "high"} <= keys:
            raise _error(where, dict(spec), "a value, {low, high[, log][, int]} or {choices: [...]}")
        low, high = spec["low"], spec["high"]
        for bound, v in (("low", low), ("high", high)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise _error(f"{where}.{bound}", v, "a finite number")
        if not low < high:
            raise _error(where, dict(spec), "low < high")
        log, integer = spec.get("log", False), spec.get("int", False)
        if not isinstance(log, bool) or not isinstance(integer, bool):
            raise _error(where, dict(spec), "log and int as true or false")
        if log and low <= 0:
            raise _error(f"{where}.low", low, "> 0 with log: true")
        if integer and not (float(low).is_integer() and float(high).is_integer()):
            raise _error(where, dict(spec), "whole numbers with int: true")
        return Param(name, low=float(low), high=float(high), log=log, integer=integer)
    if isinstance(spec, (list, tuple)):
        raise _error(where, spec, "a value, {low, high[, log][, int]} or {choices: [...]}")
    return Param(name, value=spec)


@dataclass(frozen=True)
class SearchSpace:
    """Families, each with its parameters, and an optional warm-up share for every family."""

    families: dict[str, dict[str, Param]]
    warmup_pct: Param | None = None

    @classmethod
    def from_data(cls, data: Any) -> SearchSpace:
        """A space from plain data, checked: unknown families or parameters, bad ranges and
        values out of a parameter's domain are clear errors naming where they are."""
        if not isinstance(data, Mapping) or "families" not in data:
            raise _error("the top level", data, "a mapping with 'families' (and optionally 'warmup_pct')")
        unknown = set(data) - {"families", "warmup_pct"}
        if unknown:
            raise _error("the top level", sorted(unknown), "families, warmup_pct")
        fams = data["families"]
        if not isinstance(fams, Mapping) or not fams:
            raise _error("families", fams, f"a non-empty mapping of {', '.join(FAMILIES)}")
        families: dict[str, dict[str, Param]] = {}
        for family, params in fams.items():
            if family not in FAMILIES:
                raise _error("a family", family, ", ".join(FAMILIES))
            params = params or {}
            if not isinstance(params, Mapping):
                raise _error(f"families.{family}", params, "a mapping of its parameters")
            defaults = FAMILIES[family][1]
            extra = set(params) - set(defaults)
            if extra:
                raise _error(f"families.{family}", sorted(extra), f"parameters {', '.join(defaults)}")
            merged = {**defaults, **params}
            families[family] = {n: _param(f"families.{family}.{n}", n, spec) for n, spec in merged.items()}
            cls._check_domains(family, families[family])
        warmup = None
        if "warmup_pct" in data:
            warmup = _param("warmup_pct", "warmup_pct", data["warmup_pct"])
            bounds = [warmup.value] if warmup.fixed else [warmup.low, warmup.high]
            ok = warmup.choices is None and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in bounds
            )
            if not ok:
                raise _error("warmup_pct", data["warmup_pct"], "a share of the run in [0, 1), or a range inside it")
        return cls(families, warmup)

    @staticmethod
    def _check_domains(family: str, params: dict[str, Param]) -> None:
        """Every value a parameter can take must build a schedule: positive LRs, div >= 1, ..."""
        positive = {"max_lr", "cycle_epochs", "cycles", "div_factor"}
        for name, p in params.items():
            values = list(p.choices) if p.choices is not None else [p.low, p.high] if not p.fixed else [p.value]
            where = f"families.{family}.{name}"
            for v in values:
                if name == "mode":
                    if v not in _MODES:
                        raise _error(where, v, ", ".join(_MODES))
                    continue
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                    raise _error(where, v, "a finite number")
                if name in positive and v <= 0:
                    raise _error(where, v, "> 0")
                if name in ("div", "period_mult") and v < 1:
                    raise _error(where, v, ">= 1")
                if name in ("div_factor",) and v < 1:
                    raise _error(where, v, ">= 1")
                if name in ("gamma", "pct_start") and not 0 < v <= 1:
                    raise _error(where, v, "in (0, 1]")

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        """A space from a ``.yaml``/``.yml`` (safe loader) or ``.json`` file."""
        p = Path(path)
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise _error("the file name", p.name, "a .yaml, .yml or .json file")
        return cls.from_data(data)

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "families": {f: {n: p.to_data() for n, p in ps.items()} for f, ps in self.families.items()}
        }
        if self.warmup_pct is not None:
            out["warmup_pct"] = self.warmup_pct.to_data()
        return out

    def sample(self, trial: Any, steps_per_epoch: int, epochs: int) -> Schedule | Controller:
        """The schedule a trial picks: the family (``family``), then its parameters
        (``<family>.<name>``), then the warm-up share; for a run of ``epochs`` x
        ``steps_per_epoch`` steps. The warm-up is inside the run (Hugging Face's convention): the
        family's schedule fills the steps after it, so a one-cycle or cosine still ends with the run."""
        names = list(self.families)
        family = names[0] if len(names) == 1 else trial.suggest_categorical("family", names)
        values = {n: p.sample(trial, f"{family}.{n}") for n, p in self.families[family].items()}
        total = steps_per_epoch * epochs
        warmup = 0
        if self.warmup_pct is not None and family != "adaptive":  # the controller starts low by itself
            warmup = min(round(float(self.warmup_pct.sample(trial, "warmup_pct")) * total), total - 1)
        schedule = FAMILIES[family][0](values, steps_per_epoch, total - warmup)
        if warmup > 0:
            assert isinstance(schedule, Schedule)
            return Warmup(schedule, steps=warmup)
        return schedule


def default_space(lr: float, families: tuple[str, ...] = tuple(FAMILIES)) -> SearchSpace:
    """Every family, its peak LR searched over ``lr / 30`` to ``lr * 30`` (log scale) around a
    task's reference LR, and a warm-up of 0-10% of the run."""
    lr_range = {"low": lr / 30, "high": lr * 30, "log": True}
    return SearchSpace.from_data(
        {"families": {f: {"max_lr": lr_range} for f in families}, "warmup_pct": {"low": 0.0, "high": 0.1}}
    )
