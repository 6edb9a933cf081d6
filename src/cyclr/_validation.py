"""Declarative parameter constraints, checked once at construction.

Every schedule lists its constraints as data (``constraints = {"step_size": [Positive()]}``),
in the spirit of scikit-learn's ``_parameter_constraints``. One message template serves them all::

    cyclic: parameter 'step_size' must be a finite number >= 1e-06; got 0.

The same objects generate invalid values for the generic invalid-parameter test, so a new
schedule is covered by declaring its constraints.
"""

from __future__ import annotations

import itertools
import math
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass
from numbers import Integral, Real
from typing import Any

__all__ = [
    "Bool",
    "Constraint",
    "IntList",
    "IntRange",
    "InvalidParameterError",
    "NumberRange",
    "OneOf",
    "Optional",
    "check",
]


class InvalidParameterError(ValueError):
    """A schedule (or scheduler) parameter is invalid.

    Subclass of :class:`ValueError`; the message names the owner, the parameter, the value
    received and what is allowed.
    """

    def __init__(self, owner: str, param: str, value: Any, allowed: str) -> None:
        self.owner = owner
        self.param = param
        self.value = value
        self.allowed = allowed
        super().__init__(f"{owner}: parameter {param!r} must be {allowed}; got {short_repr(value)}.")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 8, 8, 8
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 80, 40, 80
MAX_REPR = 240


def short_repr(value: Any) -> str:
    """``repr(value)``, bounded to :data:`MAX_REPR` characters: an error message never expands
    a huge or self-referencing value (a YAML alias bomb, a 10**400 integer) into gigabytes."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 5] + "[...]"


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


class Constraint:
    """One rule a parameter value must satisfy."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def invalid_examples(self) -> list[Any]:
        """Values this constraint rejects (for the generic invalid-parameter test)."""
        return []

    def describe_for(self, value: Any) -> str:
        """What is allowed, worded for the rejected ``value``."""
        return self.describe()


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


@dataclass(frozen=True)
class NumberRange(Constraint):
    """A finite real number in an interval (``closed`` says which ends are included)."""

    low: float = -math.inf
    high: float = math.inf
    closed: str = "both"  # "both", "left", "right", "neither"

    def is_satisfied_by(self, value: Any) -> bool:
        if not _is_number(value):
            return False
        try:
            v = float(value)
        except OverflowError:  # an int such as 10**400 is past every float
            return False
        if not math.isfinite(v):
            return False
        lo_ok = v >= self.low if self.closed in ("both", "left") else v > self.low
        hi_ok = v <= self.high if self.closed in ("both", "right") else v < self.high
        return lo_ok and hi_ok

    def describe(self) -> str:
        if math.isinf(self.high) and not math.isinf(self.low):
            op = ">=" if self.closed in ("both", "left") else ">"
            return f"a finite number {op} {_fmt(self.low)}"
        left = "[" if self.closed in ("both", "left") and not math.isinf(self.low) else "("
        right = "]" if self.closed in ("both", "right") and not math.isinf(self.high) else ")"
        return f"a finite number in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"

    def invalid_examples(self) -> list[Any]:
        out: list[Any] = [math.nan, math.inf, "1", True, 10**400]
        if not math.isinf(self.low):
            out.append(self.low - 1.0)
            if self.closed in ("right", "neither"):
                out.append(self.low)
        if not math.isinf(self.high):
            out.append(self.high + 1.0)
            if self.closed in ("left", "neither"):
                out.append(self.high)
        return out


#: The largest integer a step count may be: sums of a few such counts stay inside int64.
MAX_INT = 2**62


@dataclass(frozen=True)
class IntRange(Constraint):
    """An integer in ``[low, high]`` (``high=None``: up to :data:`MAX_INT`, past any real run)."""

    low: int = 0
    high: int | None = None

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, Integral):
            return False
        v = int(value)
        return v >= self.low and v <= (MAX_INT if self.high is None else self.high)

    def describe(self) -> str:
        if self.high is None:
            return f"an integer >= {self.low}"
        return f"an integer in [{self.low}, {self.high}]"

    def describe_for(self, value: Any) -> str:
        if self.high is None and isinstance(value, Integral) and not isinstance(value, bool) and int(value) > MAX_INT:
            return f"an integer in [{self.low}, 2**62]"
        return self.describe()

    def invalid_examples(self) -> list[Any]:
        out: list[Any] = [self.low - 1, 2.5, "3", True, MAX_INT + 1]
        if self.high is not None:
            out.append(self.high + 1)
        return out


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def invalid_examples(self) -> list[Any]:
        return ["no-such-option", 1]


@dataclass(frozen=True)
class Bool(Constraint):
    """``True`` or ``False``."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "True or False"

    def invalid_examples(self) -> list[Any]:
        return [1, "yes"]


@dataclass(frozen=True)
class Optional(Constraint):
    """``None`` or a value satisfying ``inner``."""

    inner: Constraint

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None or self.inner.is_satisfied_by(value)

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"

    def describe_for(self, value: Any) -> str:
        return f"None or {self.inner.describe_for(value)}"

    def invalid_examples(self) -> list[Any]:
        return self.inner.invalid_examples()


@dataclass(frozen=True)
class IntList(Constraint):
    """A non-decreasing sequence of integers >= ``low`` (non-empty unless ``allow_empty``)."""

    low: int = 0
    allow_empty: bool = False

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return False
        if not value and not self.allow_empty:
            return False
        ints = all(isinstance(v, Integral) and not isinstance(v, bool) and self.low <= int(v) <= MAX_INT for v in value)
        return ints and all(a <= b for a, b in itertools.pairwise(value))

    def describe(self) -> str:
        size = "" if self.allow_empty else "non-empty, "
        return f"a {size}non-decreasing list of integers >= {self.low}"

    def invalid_examples(self) -> list[Any]:
        return ([] if self.allow_empty else [[]]) + [[3, 1], [self.low - 1], [1.5], "12"]


def check(owner: str, param: str, value: Any, constraints: Iterable[Constraint], *, given: Any = MISSING) -> None:
    """Raise :class:`InvalidParameterError` unless ``value`` satisfies every constraint; the
    message shows ``given`` (what the user passed, before normalisation) when it is set."""
    for c in constraints:
        if not c.is_satisfied_by(value):
            raise InvalidParameterError(owner, param, value if given is MISSING else given, c.describe_for(value))
