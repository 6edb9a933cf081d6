"""The schedule base class, the registry and configuration as data."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._ops import Array, Ops, get_ops, namespace_for
from .._validation import (
    Constraint,
    InvalidParameterError,
    ScheduleList,
    ScheduleRef,
    check,
)

__all__ = ["REGISTRY", "Schedule", "from_config", "load_config", "registered"]

REGISTRY: dict[str, type[Schedule]] = {}


class Schedule:
    """A learning-rate (or momentum) schedule: a pure function of the 0-based optimizer step.

    ``schedule(step)`` is the value used for optimizer update number ``step`` (0, 1, 2, ...).
    ``step`` may be a Python number (a float comes back), a NumPy array, a torch tensor or a
    JAX array (also inside ``jax.jit``); the result has the same kind. Subclasses are frozen
    dataclasses that implement :meth:`_value` once, with the operations of :class:`~cyclr._ops.Ops`.

    Every schedule also has a *level* in ``[0, 1]``: how far it stands from its floor towards its
    peak at each step. :meth:`mirror` turns the level into a schedule that moves the opposite
    way, which is how cyclical momentum follows the learning rate.
    """

    name: ClassVar[str] = ""
    constraints: ClassVar[Mapping[str, Sequence[Constraint]]] = {}
    #: ``(low, high)`` parameter names that must satisfy ``low <= high`` (e.g. base_lr, max_lr).
    ordered: ClassVar[tuple[str, str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            REGISTRY[cls.name] = cls

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            cons = self.constraints.get(f.name, [])
            if isinstance(value, Mapping) and any(isinstance(c, ScheduleRef) for c in cons):
                value = from_config(value)
            if any(isinstance(c, ScheduleList) for c in cons) and isinstance(value, (list, tuple)):
                value = type(value)(from_config(v) if isinstance(v, Mapping) else v for v in value)
            check(self.name, f.name, value, cons)
            object.__setattr__(self, f.name, _normalise(value))
        if self.ordered is not None:
            low, high = self.ordered
            if getattr(self, high) < getattr(self, low):
                raise self._invalid(high, getattr(self, high), f">= {low} ({getattr(self, low)!r})")
        self._check()

    def _check(self) -> None:
        """Cross-parameter checks; raise with :meth:`_invalid`."""

    def _invalid(self, param: str, value: Any, allowed: str) -> InvalidParameterError:
        return InvalidParameterError(self.name, param, value, allowed)

    # ------------------------------------------------------------------ evaluation
    def __call__(self, step: Any, xp: Ops | str | None = None) -> Any:
        ops = _resolve(step, xp)
        t = ops.prepare(step)
        return ops.finish(self._value(t, ops), step)

    def level(self, step: Any, xp: Ops | str | None = None) -> Any:
        """Position between floor (0) and peak (1) at ``step``; what :meth:`mirror` follows."""
        ops = _resolve(step, xp)
        t = ops.prepare(step)
        return ops.finish(self._level(t, ops), step)

    def _value(self, t: Array, ops: Ops) -> Array:
        if not self.affine:
            raise NotImplementedError(f"{type(self).__name__} must implement _value (or _level with affine = True)")
        return self._from_level(self._level(t, ops))

    def _from_level(self, level: Array) -> Array:
        lo, hi = self.bounds
        return lo + (hi - lo) * level

    def _level(self, t: Array, ops: Ops) -> Array:
        lo, hi = self.bounds
        if hi <= lo:
            return ops.full_like(t, 0.0)
        return ops.clip((self._value(t, ops) - lo) / (hi - lo), 0.0, 1.0)

    #: True where ``value == low + (high - low) * level`` with ``(low, high) = bounds``: such a
    #: schedule implements only ``_level``, and one level evaluation gives both the LR and its
    #: mirrored momentum (:meth:`value_and_level`).
    affine: ClassVar[bool] = False

    def value_and_level(self, step: int) -> tuple[float, float]:
        """``(self(step), self.level(step))`` for a Python int step, sharing work when affine."""
        ops = _resolve(step, "python")
        if self.affine:
            level = self._level(step, ops)
            return self._from_level(level), level
        return self._value(step, ops), self._level(step, ops)

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lowest, highest)`` value the schedule can take."""
        raise NotImplementedError

    @property
    def horizon(self) -> int | None:
        """Steps after which the schedule holds its final value (``None``: it never ends)."""
        return None

    def cycle_starts(self, until: int) -> list[float]:
        """Steps (< ``until``) where a cycle or phase begins, for plots."""
        return []

    # ------------------------------------------------------------------ composition
    def mirror(self, low: float, high: float) -> Schedule:
        """A schedule between ``low`` and ``high`` that moves opposite to this one.

        ``one_cycle(...).mirror(0.85, 0.95)`` is one-cycle's momentum: 0.95 -> 0.85 -> 0.95.
        """
        from ._compose import Mirror

        return Mirror(self, low, high)

    # ------------------------------------------------------------------ configuration
    def to_config(self) -> dict[str, Any]:
        """A JSON-safe dict: ``{"name": ..., <parameters>}``; :func:`from_config` inverts it."""
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = _to_json(getattr(self, f.name))
        return out

    def __repr__(self) -> str:
        params = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        )
        return f"{self.name}({params})"


def _resolve(step: Any, xp: Ops | str | None) -> Ops:
    if xp is None:
        return namespace_for(step)
    if isinstance(xp, str):
        return get_ops(xp)
    return xp


def _normalise(value: Any) -> Any:
    """Plain Python numbers and tuples, so schedules hash, compare and serialise cleanly."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, list):
        return tuple(_normalise(v) for v in value)
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_config()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def registered() -> list[str]:
    """Names of every registered schedule, sorted."""
    return sorted(REGISTRY)


def from_config(config: Schedule | Mapping[str, Any]) -> Schedule:
    """Build a schedule from ``schedule.to_config()`` (or a hand-written dict like it)."""
    if isinstance(config, Schedule):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"a schedule config must be a dict with a 'name'; got {type(config).__name__}.")
    if "name" not in config:
        raise ValueError(f"schedule config has no 'name' key; valid names: {', '.join(registered())}.")
    name = config["name"]
    if name not in REGISTRY:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(registered())}.")
    cls = REGISTRY[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    params = {k: v for k, v in config.items() if k != "name"}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(fields)}.")
    missing = [
        n
        for n, f in fields.items()
        if n not in params and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{name}: missing required parameter(s) {', '.join(missing)}.")
    return cls(**params)


def load_config(source: str | Path | Mapping[str, Any]) -> Schedule:
    """A schedule from a dict, a JSON/YAML file, inline JSON, or the short form ``name:k=v,...``.

    YAML is read with ``yaml.safe_load``; nothing is ever evaluated as code.
    """
    if isinstance(source, Mapping):
        return from_config(source)
    text = str(source).strip()
    path = Path(text)
    if text.startswith("{"):
        return from_config(json.loads(text))
    if path.suffix.lower() in (".json", ".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"schedule config file not found: {path}")
        raw = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            return from_config(json.loads(raw))
        try:
            import yaml
        except ImportError as err:  # pragma: no cover - pyyaml is a core dependency
            raise ImportError("reading YAML needs PyYAML: pip install pyyaml") from err
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as err:  # includes tags such as !!python/object: never constructed
            raise ValueError(f"{path}: not a valid schedule YAML file ({err.__class__.__name__}: {err})") from err
        return from_config(data)
    return from_config(parse_short(text))


def parse_short(text: str) -> dict[str, Any]:
    """Parse ``triangular:base_lr=1e-4,max_lr=0.01,step_size=2000`` into a config dict.

    Values are read as JSON (numbers, strings, true/false/null, [lists]); bare words are strings.
    """
    name, _, rest = text.partition(":")
    config: dict[str, Any] = {"name": name.strip()}
    for item in _split_top(rest):
        if not item.strip():
            continue
        key, eq, raw = item.partition("=")
        if not eq:
            raise ValueError(f"in {text!r}: expected key=value, got {item!r}.")
        raw = raw.strip()
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"in {text!r}: {key.strip()} must be finite.")
        config[key.strip()] = value
    return config


def _split_top(s: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in s:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts
