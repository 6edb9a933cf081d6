"""The schedule base class, the registry and configuration as data."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._ops import Array, Ops, get_ops, namespace_for
from .._validation import (
    Constraint,
    InvalidParameterError,
    NumberRange,
    check,
    short_repr,
)

__all__ = ["REGISTRY", "Mirror", "Schedule", "ScheduleList", "ScheduleRef", "from_config", "load_config", "registered"]

REGISTRY: dict[str, type[Schedule]] = {}
#: How a schedule shows itself in a notebook: ``{"png": draw(schedule) -> bytes | None}``, filled in
#: by :mod:`cyclr.plot` (so the schedules never import the plotting code)
DISPLAY: dict[str, Callable[[Any], bytes | None]] = {}


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
            try:
                if isinstance(value, Mapping) and any(isinstance(c, ScheduleRef) for c in cons):
                    value = from_config(value)
                if any(isinstance(c, ScheduleList) for c in cons) and isinstance(value, (list, tuple)):
                    value = type(value)(from_config(v) if isinstance(v, Mapping) else v for v in value)
            except (ValueError, TypeError) as err:  # a nested config: say where it sits
                raise self._invalid(f.name, value, f"a valid schedule config ({err})") from err
            normal = _normalise(value)
            check(self.name, f.name, normal, cons, given=value)
            object.__setattr__(self, f.name, normal)
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

    def _repr_png_(self) -> bytes | None:
        """The schedule drawn, in a notebook (IPython's display formatter asks for it); ``None``
        where nothing can draw it (:mod:`cyclr.plot` registers the drawing, matplotlib needed)."""
        draw = DISPLAY.get("png")
        return draw(self) if draw is not None else None


#: The most cycle or phase starts :meth:`Schedule.cycle_starts` returns: past it the marks are
#: too dense to draw, and a tiny period (``step_size=1e-300``) must not build a list without end.
@dataclass(frozen=True)
class ScheduleRef(Constraint):
    """A cyclr schedule."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, Schedule)

    def describe(self) -> str:
        return "a cyclr schedule (or its config dict)"

    def invalid_examples(self) -> list[Any]:
        return [0.1, "cosine"]


@dataclass(frozen=True)
class ScheduleList(Constraint):
    """A non-empty sequence of cyclr schedules."""

    def is_satisfied_by(self, value: Any) -> bool:
        return (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and len(value) > 0
            and all(isinstance(v, Schedule) for v in value)
        )

    def describe(self) -> str:
        return "a non-empty list of cyclr schedules"

    def invalid_examples(self) -> list[Any]:
        return [[], [0.1]]


@dataclass(frozen=True, repr=False)
class Mirror(Schedule):
    """Moves between ``low`` and ``high`` opposite to ``schedule``: ``high - (high - low) * level``.

    With ``one_cycle`` and the CLR modes this gives torch's cyclical momentum exactly
    (``OneCycleLR(base_momentum=low, max_momentum=high)``, ``CyclicLR`` likewise).
    """

    name = "mirror"
    constraints = {"schedule": [ScheduleRef()], "low": [NumberRange(0.0)], "high": [NumberRange(0.0)]}
    ordered = ("low", "high")

    schedule: Schedule
    low: float
    high: float

    def _level(self, t: Array, ops: Ops) -> Array:
        return 1.0 - self.schedule._level(t, ops)

    def _value(self, t: Array, ops: Ops) -> Array:
        return self.high - (self.high - self.low) * self.schedule._level(t, ops)

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)

    @property
    def horizon(self) -> int | None:
        return self.schedule.horizon

    def cycle_starts(self, until: int) -> list[float]:
        return self.schedule.cycle_starts(until)


MAX_MARKS = 1000


def marks(first: float, every: float, until: float) -> list[float]:
    """``first, first + every, ...`` below ``until``; empty when there would be more than
    :data:`MAX_MARKS` of them."""
    if every <= 0 or not math.isfinite(until) or (until - first) / every > MAX_MARKS:
        return []
    return [first + k * every for k in range(MAX_MARKS + 1) if first + k * every < until]


def finite_horizon(end: float) -> int | None:
    """``ceil(end)`` as a horizon; ``None`` (never ends) past 2**62 steps, which no run reaches
    and where ``ceil`` of a float would overflow."""
    return math.ceil(end) if end < 2.0**62 else None


def _resolve(step: Any, xp: Ops | str | None) -> Ops:
    if xp is None:
        return namespace_for(step)
    if isinstance(xp, str):
        return get_ops(xp)
    return xp


#: The most items a parameter's lists may hold in all (a million milestones is already absurd);
#: a larger or deeper value is left as it is, for the constraint check to refuse.
MAX_ITEMS = 1_000_000


class _TooLarge(Exception):
    pass


def _normalise(value: Any) -> Any:
    """Plain Python values (``bool``, ``int``, ``float``, ``str``, tuples of them), so schedules
    hash, compare, serialise to JSON and load with ``torch.load(weights_only=True)``: NumPy
    scalars (``np.int64``, ``np.str_`` from ``np.random.choice``, ``np.bool_``) become Python's.
    The work is bounded: a value with more than :data:`MAX_ITEMS` items or :data:`MAX_DEPTH`
    levels (a shared-list bomb) comes back unchanged."""
    budget = [MAX_ITEMS]
    try:
        return _plain(value, budget, 0)
    except _TooLarge:
        return value


def _plain(value: Any, budget: list[int], depth: int) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        if value.size > budget[0]:
            raise _TooLarge
        return _plain(value.tolist(), budget, depth)
    if isinstance(value, (list, tuple)):
        budget[0] -= len(value)
        if budget[0] < 0 or depth >= MAX_DEPTH:
            raise _TooLarge
        return tuple(_plain(v, budget, depth + 1) for v in value)
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
        raise TypeError(
            f"a schedule config must be a dict with a 'name'; got {type(config).__name__} {short_repr(config)}."
        )
    if "name" not in config:
        raise ValueError(f"schedule config has no 'name' key; valid names: {', '.join(registered())}.")
    name = config["name"]
    if not isinstance(name, str) or name not in REGISTRY:
        from ..controllers import CONTROLLERS

        if isinstance(name, str) and name in CONTROLLERS:
            raise ValueError(
                f"{name!r} is an adaptive controller, not a schedule: its learning rate depends on the "
                "training loss, so it has no values to plot or show from its config alone. Give it to "
                "cyclr.torch.Scheduler / cyclr.keras / cyclr.jax.adaptive, and plot a recorded run "
                "(cyclr.keras.LRLogger, the bench's trace) instead."
            )
        raise ValueError(f"unknown schedule {short_repr(name)}; valid names: {', '.join(registered())}.")
    if any(not isinstance(k, str) for k in config):
        bad = [short_repr(k) for k in config if not isinstance(k, str)]
        raise ValueError(f"{name}: parameter names must be strings; got {', '.join(bad)}.")
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


#: Deepest nesting a schedule config may have (lists and dicts); deeper files are refused before
#: anything walks them (200 levels would otherwise end in a ``RecursionError``).
MAX_DEPTH = 32
#: Largest config file read, in bytes: a schedule's config is a few hundred.
MAX_CONFIG_BYTES = 1 << 20


def _check_depth(data: Any, where: str) -> None:
    """Refuse configs nested deeper than :data:`MAX_DEPTH` (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (Mapping, list, tuple)):
            if depth > MAX_DEPTH:
                raise ValueError(f"{where}: the config nests deeper than {MAX_DEPTH} levels.")
            children = node.values() if isinstance(node, Mapping) else node
            stack.extend((c, depth + 1) for c in children)


def _json(text: str, where: str) -> Any:
    """Strict JSON: duplicate keys refused, NaN/Infinity refused, nesting bounded."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise ValueError(f"{where}: duplicate key {k!r}.")
            out[k] = v
        return out

    def constant(name: str) -> Any:
        raise ValueError(f"{where}: {name} is not a number a schedule can use.")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err}).") from None
    except RecursionError:
        raise ValueError(f"{where}: the config nests deeper than {MAX_DEPTH} levels.") from None
    _check_depth(data, where)
    return data


def _yaml(text: str, where: str) -> Any:
    """Safe YAML, stricter than ``yaml.safe_load``: no aliases (a 1 KB "billion laughs" file
    expands to gigabytes), no duplicate keys, bounded nesting, and YAML 1.2 numbers (``1e-2`` is
    a float, not the string YAML 1.1 makes of it). Nothing is ever constructed as code."""
    import yaml

    try:
        data = yaml.load(text, Loader=_config_loader())
    except yaml.YAMLError as err:  # includes tags such as !!python/object: never constructed
        raise ValueError(f"{where}: not a valid schedule YAML file ({err.__class__.__name__}: {err})") from None
    _check_depth(data, where)
    return data


_LOADER: Any = None


def _config_loader() -> Any:
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import re

    import yaml
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError

    class ConfigLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise ComposerError(
                    None, None, f"aliases (*{event.anchor}) are not allowed in a schedule config", event.start_mark
                )
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise ComposerError(
                        None,
                        None,
                        f"the config nests deeper than {MAX_DEPTH} levels",
                        self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise ConstructorError(
                        None, None, f"duplicate key {key!r} (YAML would silently keep the last)", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    # YAML 1.2's floats: 1e-2 and 1E5 are numbers (YAML 1.1 reads them as strings)
    ConfigLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    _LOADER = ConfigLoader
    return _LOADER


def load_config(source: str | Path | Mapping[str, Any]) -> Schedule:
    """A schedule from a dict, a JSON/YAML file, inline JSON, or the short form ``name:k=v,...``.

    YAML is read with a stricter ``yaml.SafeLoader`` (no aliases, no duplicate keys, bounded
    nesting); nothing is ever evaluated as code.
    """
    if isinstance(source, Mapping):
        _check_depth(source, "schedule config")
        return from_config(source)
    text = str(source).strip()
    if text.startswith("{"):
        return from_config(_json(text, "inline JSON"))
    suffix = text.rsplit(".", 1)[-1].lower() if "." in text else ""
    looks_like_file = suffix in ("json", "yaml", "yml") and "=" not in text
    if not looks_like_file and (":" in text or "=" in text or len(text) > 255):
        return from_config(parse_short(text))  # a short form, never tried as a path (too long for one)
    path = Path(text)
    try:
        is_file = path.is_file()
    except OSError:  # a name the OS cannot hold
        is_file = False
    if looks_like_file or is_file:
        if not is_file:
            raise FileNotFoundError(f"schedule config file not found: {path}")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ValueError(f"{path}: {path.stat().st_size} bytes is too large for a schedule config.")
        raw = path.read_text(encoding="utf-8")
        if suffix == "json":
            return from_config(_json(raw, str(path)))
        return from_config(_yaml(raw, str(path)))
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
