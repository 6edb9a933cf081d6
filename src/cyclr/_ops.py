"""Array namespaces: the few operations every schedule formula is written with.

A schedule's formula is written once against :class:`Ops` and runs unchanged on Python numbers
(the ``math`` module: fastest for one value per optimizer step), NumPy arrays, PyTorch tensors
and JAX arrays (traceable inside ``jax.jit``). The Keras adapter adds a namespace over
``keras.ops``. No formula branches on the step value in Python: ``where`` selects.

The step keeps its integer dtype until a formula asks for a float (:meth:`Ops.f`), so that
:meth:`Ops.divmod` can locate the position inside a cycle with exact integer arithmetic (JAX's
default int32/float32 counts stay exact near 2**31).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

Array = Any  # a Python float, numpy array, torch tensor or jax array

__all__ = ["Array", "NumpyOps", "Ops", "PythonOps", "get_ops", "namespace_for"]


def _integral(x: float) -> bool:
    return float(x).is_integer()


class Ops:
    """The operations a formula may use. Subclasses bind them to one array library."""

    name = "abstract"

    def prepare(self, step: Any) -> Array:
        """Turn a user's step into this namespace's array. Python and NumPy steps are checked
        (a negative one raises); tensors (torch, JAX, Keras: possibly traced, on a device) are
        clamped at 0, since a compiled graph cannot raise on a value."""
        raise NotImplementedError

    def finish(self, out: Array, step: Any) -> Any:
        return out

    def f(self, t: Array) -> Array:
        """The step (or any array) as this namespace's working float."""
        raise NotImplementedError

    def is_int(self, t: Array) -> bool:
        raise NotImplementedError

    def int_max(self, t: Array) -> float:
        """The largest value an integer step of ``t``'s dtype can hold (``inf`` for Python ints)."""
        return math.inf

    def divmod(self, t: Array, period: float) -> tuple[Array, Array]:
        """``(cycle index, position in cycle)`` as floats, exact for integer steps and periods."""
        if self.is_int(t) and _integral(period):
            p = int(period)
            if p > self.int_max(t):  # an int32 step never reaches a period >= 2**31: cycle 0
                x = self.f(t)
                return x * 0.0, x
            # native operators: exact for Python ints, and they keep int64 (keras.ops would not)
            return self.f(t // p), self.f(t % p)
        x = self.f(t)
        r = self.fmod(x, float(period))
        return self.round((x - r) / float(period)), r

    def shift(self, t: Array, by: int) -> Array:
        """``max(t - by, 0)`` in ``t``'s own type (the step seen by a schedule that starts at
        ``by``); a shift beyond what ``t``'s integer dtype holds gives 0, never an overflow."""
        if self.is_int(t) and by > self.int_max(t):
            return t * 0
        return self.maximum(t - by, 0)

    # elementwise functions; every argument may be a Python float or an array
    def fmod(self, x: Array, p: float) -> Array:
        raise NotImplementedError

    def round(self, x: Array) -> Array:
        raise NotImplementedError

    def floor(self, x: Array) -> Array:
        raise NotImplementedError

    def cos(self, x: Array) -> Array:
        raise NotImplementedError

    def sin(self, x: Array) -> Array:
        raise NotImplementedError

    def exp(self, x: Array) -> Array:
        raise NotImplementedError

    def expm1(self, x: Array) -> Array:
        raise NotImplementedError

    def log(self, x: Array) -> Array:
        raise NotImplementedError

    def log1p(self, x: Array) -> Array:
        raise NotImplementedError

    def sqrt(self, x: Array) -> Array:
        raise NotImplementedError

    def power(self, a: Array, b: Array) -> Array:
        raise NotImplementedError

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        """Elementwise ``a if cond else b``; at least one of ``a``, ``b`` is an array."""
        raise NotImplementedError

    def minimum(self, a: Array, b: Array) -> Array:
        raise NotImplementedError

    def maximum(self, a: Array, b: Array) -> Array:
        raise NotImplementedError

    def full_like(self, t: Array, value: float) -> Array:
        return self.f(t) * 0.0 + value

    def clip(self, x: Array, lo: float, hi: float) -> Array:
        return self.minimum(self.maximum(x, lo), hi)

    def powc(self, base: float, exponent: Array) -> Array:
        """``base ** exponent`` for a constant ``base > 0`` (decay factors): ``exp(e * log(base))``
        with the logarithm taken in float64, which keeps float32 steps accurate and is fast."""
        return self.exp(exponent * math.log(base))


class PythonOps(Ops):
    """Python floats through the ``math`` module: one value per optimizer step, no array cost."""

    name = "python"

    def prepare(self, step: Any) -> Array:
        v = float(step)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"step must be a finite number >= 0; got {step!r}.")
        return int(step) if isinstance(step, int) or v.is_integer() else v

    def finish(self, out: Array, step: Any) -> Any:
        return float(out)

    def f(self, t: Array) -> Array:
        return float(t)

    def is_int(self, t: Array) -> bool:
        return isinstance(t, int)

    def fmod(self, x: Array, p: float) -> Array:
        return math.fmod(x, p)

    def round(self, x: Array) -> Array:
        return float(round(x))

    def floor(self, x: Array) -> Array:
        return float(math.floor(x))

    def cos(self, x: Array) -> Array:
        return math.cos(x)

    def sin(self, x: Array) -> Array:
        return math.sin(x)

    def exp(self, x: Array) -> Array:
        return math.exp(x)

    def expm1(self, x: Array) -> Array:
        return math.expm1(x)

    def log(self, x: Array) -> Array:
        return math.log(x)

    def log1p(self, x: Array) -> Array:
        return math.log1p(x)

    def sqrt(self, x: Array) -> Array:
        return math.sqrt(x)

    def power(self, a: Array, b: Array) -> Array:
        return float(a) ** float(b)

    def powc(self, base: float, exponent: Array) -> Array:
        return float(base) ** float(exponent)

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        return a if cond else b

    def minimum(self, a: Array, b: Array) -> Array:
        return a if a < b else b

    def maximum(self, a: Array, b: Array) -> Array:
        return a if a > b else b

    def full_like(self, t: Array, value: float) -> Array:
        return float(value)


class ModuleOps(Ops):
    """Operations bound to an array module with NumPy's names (numpy, torch, jax.numpy)."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def fmod(self, x: Array, p: float) -> Array:
        return self.xp.fmod(x, p)

    def round(self, x: Array) -> Array:
        return self.xp.round(x)

    def floor(self, x: Array) -> Array:
        return self.xp.floor(x)

    def cos(self, x: Array) -> Array:
        return self.xp.cos(x)

    def sin(self, x: Array) -> Array:
        return self.xp.sin(x)

    def exp(self, x: Array) -> Array:
        return self.xp.exp(x)

    def expm1(self, x: Array) -> Array:
        return self.xp.expm1(x)

    def log(self, x: Array) -> Array:
        return self.xp.log(x)

    def log1p(self, x: Array) -> Array:
        return self.xp.log1p(x)

    def sqrt(self, x: Array) -> Array:
        return self.xp.sqrt(x)

    def power(self, a: Array, b: Array) -> Array:
        return self.xp.power(a, b)

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        return self.xp.where(cond, a, b)

    def minimum(self, a: Array, b: Array) -> Array:
        return self.xp.minimum(a, b)

    def maximum(self, a: Array, b: Array) -> Array:
        return self.xp.maximum(a, b)

    def full_like(self, t: Array, value: float) -> Array:
        return self.xp.full_like(self.f(t), float(value))


class NumpyOps(ModuleOps):
    """NumPy arrays (float64)."""

    name = "numpy"

    def __init__(self) -> None:
        super().__init__(np)

    def prepare(self, step: Any) -> Array:
        a = np.asarray(step)
        if a.dtype.kind not in "iuf":
            raise TypeError(f"step must be an integer or float array; got dtype {a.dtype}.")
        if a.size and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError("step must hold finite numbers >= 0; got a non-finite value.")
        if a.size and a.dtype.kind != "u" and a.min() < 0:
            raise ValueError(f"step must hold finite numbers >= 0 (as a Python step must); got {a.min()!r}.")
        return a

    def f(self, t: Array) -> Array:
        return np.asarray(t, dtype=np.float64)

    def is_int(self, t: Array) -> bool:
        return bool(np.asarray(t).dtype.kind in "iu")

    def int_max(self, t: Array) -> float:
        return float(np.iinfo(np.asarray(t).dtype).max)


class TorchOps(ModuleOps):
    """PyTorch tensors, on their own device; float64 unless the step is a lower float type."""

    name = "torch"

    def __init__(self) -> None:
        import torch

        super().__init__(torch)
        self.torch = torch

    def prepare(self, step: Any) -> Array:
        return self.torch.clamp(step, min=0)

    def f(self, t: Array) -> Array:
        torch = self.torch
        if t.dtype in (torch.float32, torch.float16, torch.bfloat16):
            return t.to(torch.float32)
        return t.to(torch.float64)

    def is_int(self, t: Array) -> bool:
        return not (t.is_floating_point() or t.is_complex())

    def int_max(self, t: Array) -> float:
        return float(self.torch.iinfo(t.dtype).max)

    def _pair(self, a: Array, b: Array) -> tuple[Array, Array]:
        """torch's binary functions take tensors: lift a Python number onto the other's dtype."""
        tensor = self.torch.Tensor
        like = a if isinstance(a, tensor) else b
        a, b = (
            x if isinstance(x, tensor) else self.torch.as_tensor(x, dtype=like.dtype, device=like.device)
            for x in (a, b)
        )
        if a.dtype != b.dtype:
            dt = self.torch.promote_types(a.dtype, b.dtype)
            a, b = a.to(dt), b.to(dt)
        return a, b

    def power(self, a: Array, b: Array) -> Array:
        return self.torch.pow(a, b)

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        tensor = self.torch.Tensor
        if not isinstance(a, tensor) and not isinstance(b, tensor):  # two numbers: float64 on cond's device
            a = self.torch.as_tensor(a, dtype=self.torch.float64, device=cond.device)
        return self.torch.where(cond, *self._pair(a, b))

    def minimum(self, a: Array, b: Array) -> Array:
        return self.torch.minimum(*self._pair(a, b))

    def maximum(self, a: Array, b: Array) -> Array:
        return self.torch.maximum(*self._pair(a, b))


class JaxOps(ModuleOps):
    """JAX arrays (traceable under ``jax.jit``); float64 only where x64 is enabled."""

    name = "jax"

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp

        super().__init__(jnp)
        self.jax = jax
        self.jnp = jnp

    def prepare(self, step: Any) -> Array:
        return self.jnp.maximum(self.jnp.asarray(step), 0)

    def f(self, t: Array) -> Array:
        jnp = self.jnp
        x64 = self.jax.config.read("jax_enable_x64")  # type: ignore[no-untyped-call]
        return jnp.asarray(t, dtype=jnp.float64 if x64 else jnp.float32)

    def is_int(self, t: Array) -> bool:
        return bool(self.jnp.issubdtype(self.jnp.asarray(t).dtype, self.jnp.integer))

    def int_max(self, t: Array) -> float:
        return float(self.jnp.iinfo(self.jnp.asarray(t).dtype).max)  # type: ignore[no-untyped-call]


class KerasOps(ModuleOps):
    """``keras.ops``: one formula for every Keras backend (TensorFlow, JAX, torch), float32."""

    name = "keras"

    def __init__(self) -> None:
        import keras

        super().__init__(keras.ops)
        self.keras = keras

    def _dtype(self, x: Array) -> str:
        return str(self.keras.backend.standardize_dtype(x.dtype))

    def prepare(self, step: Any) -> Array:
        t = self.xp.convert_to_tensor(step)
        return self.maximum(t, 0)

    def f(self, t: Array) -> Array:
        return self.xp.cast(t, "float32")

    def maximum(self, a: Array, b: Array) -> Array:
        # keras.ops narrows int64 to int32 on the JAX and torch backends; where() keeps the dtype
        if isinstance(b, (int, float)) and self.is_int(a):
            return self.xp.where(a > b, a, self.xp.full_like(a, b))
        return self.xp.maximum(a, b)

    def is_int(self, t: Array) -> bool:
        return "int" in self._dtype(self.xp.convert_to_tensor(t))

    def int_max(self, t: Array) -> float:
        return float(np.iinfo(self._dtype(self.xp.convert_to_tensor(t))).max)

    def fmod(self, x: Array, p: float) -> Array:
        return self.xp.mod(x, p)  # floor-mod equals fmod for the non-negative steps used here


_PYTHON = PythonOps()
_NUMPY = NumpyOps()
_CACHE: dict[str, Ops] = {"python": _PYTHON, "numpy": _NUMPY}


def get_ops(name: str) -> Ops:
    """The namespace called ``name`` ('python', 'numpy', 'torch', 'jax', 'keras')."""
    if name not in _CACHE:
        factories: dict[str, type[Ops]] = {"torch": TorchOps, "jax": JaxOps, "keras": KerasOps}
        if name not in factories:
            raise ValueError(f"unknown array namespace {name!r}; expected one of python, numpy, torch, jax, keras.")
        _CACHE[name] = factories[name]()
    return _CACHE[name]


def namespace_for(step: Any) -> Ops:
    """Pick the namespace from the step's type (framework modules are never imported here)."""
    if isinstance(step, bool):
        raise TypeError("step must be a number or an array, not a bool.")
    if isinstance(step, (int, float, np.integer, np.floating)):
        return _PYTHON
    if isinstance(step, np.ndarray):
        return _NUMPY
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(step, torch.Tensor):
        return get_ops("torch")
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(step, jax.Array):
        return get_ops("jax")
    raise TypeError(
        f"step must be an int, a float, a NumPy array, a torch tensor or a JAX array; got {type(step).__name__}."
    )
