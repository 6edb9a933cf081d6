"""Keras 3 adapter: cyclr schedules as serializable ``LearningRateSchedule`` objects, the seed's
and TensorFlow Addons' cyclical classes, cyclical momentum, and an LR/momentum logger.

Every class here is registered with ``keras.saving.register_keras_serializable(package="cyclr")``:
after ``import cyclr.keras``, ``keras.models.load_model("m.keras")`` restores an optimizer with
its cyclr schedule without ``custom_objects`` (Keras imports only its own packages while
loading, so the import is needed once).

Examples:
    >>> import keras, cyclr, cyclr.keras
    >>> lr = cyclr.keras.Schedule(cyclr.one_cycle(0.1, total_steps=1000))
    >>> opt = keras.optimizers.SGD(learning_rate=lr)
    >>> round(float(lr(299)), 6)
    0.1
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._lazy import require
from ._ops import get_ops
from ._validation import InvalidParameterError
from .controllers import CONTROLLERS, Controller, controller_from_config
from .schedules import Cyclic, from_config, momentum_schedule
from .schedules import Schedule as CyclrSchedule

require("keras", "keras", "cyclr.keras")  # a clear message naming the extra if it is missing
import keras  # noqa: E402

from .finder._keras import lr_range_test  # noqa: E402

K = keras.ops
_OPS = get_ops("keras")
_register = keras.saving.register_keras_serializable(package="cyclr")

__all__ = [
    "SCALE_FNS",
    "SGD",
    "Adam",
    "AdamW",
    "CyclicalLearningRate",
    "ExponentialCyclicalLearningRate",
    "LRLogger",
    "Schedule",
    "Triangular2CyclicalLearningRate",
    "TriangularCyclicalLearningRate",
    "TriangularLearningRate",
    "lr_range_test",
]


@_register
class Schedule(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """Any cyclr schedule (or its config dict) as a Keras ``LearningRateSchedule``.

    Evaluated with ``keras.ops`` at the optimizer's ``iterations`` (the 0-based update count),
    so it runs eagerly, inside ``tf.function`` and XLA, and on the JAX and torch backends.
    """

    def __init__(self, schedule: CyclrSchedule | Mapping[str, Any], name: str | None = None) -> None:
        super().__init__()
        self.schedule = from_config(schedule)
        self.name = name

    def __call__(self, step: Any) -> Any:
        return self.schedule(step, xp=_OPS)

    def get_config(self) -> dict[str, Any]:
        return {"schedule": self.schedule.to_config(), "name": self.name}


def _as_keras_lr(learning_rate: Any) -> Any:
    """A cyclr schedule or config dict becomes a :class:`Schedule`, a controller (or its config)
    an :class:`AdaptiveSchedule`; anything else passes."""
    if isinstance(learning_rate, Controller) or (
        isinstance(learning_rate, Mapping) and learning_rate.get("name") in CONTROLLERS
    ):
        return AdaptiveSchedule(learning_rate)
    if isinstance(learning_rate, CyclrSchedule) or (isinstance(learning_rate, Mapping) and "name" in learning_rate):
        return Schedule(learning_rate)
    return learning_rate


# ---------------------------------------------------------------- adaptive controllers


@_register
class AdaptiveSchedule(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """An adaptive cyclr controller (``cyclr.adaptive(...)``) as a Keras learning rate.

    Its state lives in optimizer variables (created when a cyclr optimizer, :class:`SGD`,
    :class:`Adam` or :class:`AdamW`, builds), so the compiled step reads it on every backend and
    it saves and loads with the model; :class:`AdaptiveCallback` feeds it each batch's loss.
    ``momentum=(low, high)`` on those optimizers mirrors its level.
    """

    def __init__(self, controller: Controller | Mapping[str, Any], name: str | None = None) -> None:
        super().__init__()
        self.controller = controller_from_config(controller)
        if getattr(self.controller, "max_lr", 0.0) is None:
            raise InvalidParameterError(
                "cyclr.keras.AdaptiveSchedule",
                "controller",
                self.controller.to_config(),
                "a controller with max_lr set (a number, or a range test's result.suggestion)",
            )
        self.name = name
        self.variables: dict[str, Any] = {}
        self._keys: list[str] = list(self.controller.init())
        self._host: dict[str, float] | None = None

    def bind(self, optimizer: Any) -> None:
        """Create the state as one vector variable of ``optimizer`` (done by the cyclr optimizers'
        build): the compiled step reads its entries, and a batch's update writes it in one
        assignment."""
        if self.variables:
            return
        init = self.controller.init()
        self._keys = list(init)
        self.variables["state"] = optimizer.add_variable(
            shape=(len(self._keys),),
            initializer=keras.initializers.Constant([float(v) for v in init.values()]),
            dtype="float32",
            name="cyclr_controller_state",
        )
        self._host = None

    def _state(self) -> dict[str, Any]:
        if not self.variables:  # before the optimizer builds: the initial state, as constants
            return {k: K.convert_to_tensor(float(v), dtype="float32") for k, v in self.controller.init().items()}
        vector = self.variables["state"].value
        return {k: vector[i] for i, k in enumerate(self._keys)}

    def __call__(self, step: Any) -> Any:
        return self.controller.values(self._state(), _OPS)[0]

    def level(self) -> Any:
        """Where the LR stands between the cycle's floor (0) and peak (1)."""
        return self.controller.values(self._state(), _OPS)[1]

    def state(self) -> dict[str, float]:
        """The controller's state, read from its variable."""
        if not self.variables:
            return {k: float(v) for k, v in self.controller.init().items()}
        vector = K.convert_to_numpy(self.variables["state"].value)
        return {k: float(vector[i]) for i, k in enumerate(self._keys)}

    def sync(self) -> None:
        """Re-read the host's copy of the state from the variable (after weights were loaded or
        set by hand; :class:`AdaptiveCallback` does it when training begins)."""
        self._host = self.state()

    def observe(self, loss: float) -> None:
        """Fold one update's loss into the state. The update runs on the host from a float32
        copy of the state kept there (the variable's own values), and is written back in one
        assignment, so a batch costs one small transfer, not one per state entry."""
        if self._host is None:
            self.sync()
        assert self._host is not None
        new = self.controller.update(self._host, float(loss))
        vector = np.asarray([new[k] for k in self._keys], dtype=np.float32)
        self.variables["state"].assign(vector)
        self._host = {k: float(vector[i]) for i, k in enumerate(self._keys)}  # exactly what the step reads

    def get_config(self) -> dict[str, Any]:
        return {"controller": self.controller.to_config(), "name": self.name}


class _MirroredLevel:
    """Momentum (or beta_1) mirrored to an :class:`AdaptiveSchedule`'s level: ``high`` at the
    floor, ``low`` at the peak. Serialized as the ``[low, high]`` pair."""

    def __init__(self, lr: AdaptiveSchedule, low: float, high: float) -> None:
        self.lr, self.low, self.high = lr, low, high

    @property
    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def __call__(self, step: Any, xp: Any = None) -> Any:
        return self.high - (self.high - self.low) * self.lr.level()

    def to_config(self) -> list[float]:
        return [self.low, self.high]


class AdaptiveCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Feeds the :class:`AdaptiveSchedule` of the model's optimizer each batch's loss.

    Keras reports the epoch's running mean of the loss; each batch's own loss is recovered from
    it (exact for equal batches; a last partial batch gets the running mean's weighting). On the
    JAX backend the trainer's state is synced before the controller's variables are updated, so
    the next step reads them. ``losses`` keeps what was fed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []
        self._mean = 0.0

    def _schedule(self) -> AdaptiveSchedule:
        lr = getattr(_inner(self.model.optimizer), "_learning_rate", None)
        if not isinstance(lr, AdaptiveSchedule):
            raise TypeError(
                "AdaptiveCallback needs the model's optimizer to run on a cyclr.keras.AdaptiveSchedule "
                "(learning_rate=cyclr.adaptive(...) on cyclr.keras.SGD, Adam or AdamW)."
            )
        return lr

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        schedule, optimizer = self._schedule(), _inner(self.model.optimizer)
        if not schedule.variables and not optimizer.built:  # TensorFlow builds it in the first step
            optimizer.build(self.model.trainable_variables)
        if not schedule.variables:
            raise TypeError(
                "AdaptiveCallback: the schedule has no state variables; use cyclr.keras.SGD, Adam or AdamW, "
                "whose build creates them."
            )
        schedule.sync()  # the state as saved or loaded: the host's copy starts from it

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._mean = 0.0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        mean = float((logs or {})["loss"])
        loss = (batch + 1) * mean - batch * self._mean if batch else mean
        self._mean = mean
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()  # the trainer's state into the variables; the next step re-reads them
        self._schedule().observe(loss)
        self.losses.append(loss)


# ---------------------------------------------------------------- TensorFlow Addons compatibility

#: Named scale functions of TensorFlow Addons' ``CyclicalLearningRate``, with their parameters.
#: ``x`` is the 1-based cycle (``scale_mode='cycle'``) or the step (``'iterations'``):
#: ``triangular``: 1; ``triangular2``: 1/2**(x-1) (cycle mode); ``exp_range``: gamma**x.
SCALE_FNS = ("triangular", "triangular2", "exp_range")


def _scale_fn_config(scale_fn: Any) -> dict[str, Any]:
    if callable(scale_fn):
        raise TypeError(
            "scale_fn must be a registered shape, not a Python function: functions and lambdas cannot be "
            "saved with the model (tensorflow/addons#2380). Use one of "
            f"{', '.join(repr(n) for n in SCALE_FNS)}, or a dict such as {{'name': 'exp_range', 'gamma': 0.999}}."
        )
    config = {"name": scale_fn} if isinstance(scale_fn, str) else dict(scale_fn)
    if config.get("name") not in SCALE_FNS:
        raise ValueError(f"scale_fn: unknown shape {config.get('name')!r}; valid: {', '.join(SCALE_FNS)}.")
    extra = set(config) - {"name", "gamma"}
    if extra or ("gamma" in config and config["name"] != "exp_range"):
        raise ValueError(f"scale_fn: unexpected parameter(s) {sorted(extra or {'gamma'})} for {config['name']!r}.")
    return config


def _tfa_schedule(
    initial_learning_rate: float, maximal_learning_rate: float, step_size: float, scale_fn: Any, scale_mode: str
) -> CyclrSchedule:
    """TensorFlow Addons' formula as a cyclr ``cyclic`` schedule (same numbers)."""
    if scale_mode not in ("cycle", "iterations"):
        raise ValueError(f"scale_mode must be 'cycle' or 'iterations'; got {scale_mode!r}.")
    fn = _scale_fn_config(scale_fn)
    base, peak = float(initial_learning_rate), float(maximal_learning_rate)
    if fn["name"] == "triangular":
        return Cyclic(base, peak, step_size)
    if fn["name"] == "triangular2":
        if scale_mode != "cycle":
            raise ValueError("scale_fn 'triangular2' halves the amplitude per cycle: it needs scale_mode='cycle'.")
        return Cyclic(base, peak, step_size, decay=0.5)
    gamma = float(fn.get("gamma", 1.0))
    if scale_mode == "iterations":
        return Cyclic(base, peak, step_size, decay=gamma, decay_every="step")
    # cycle mode scales by gamma**cycle with a 1-based cycle: the first peak is already scaled once
    return Cyclic(base, base + (peak - base) * gamma, step_size, decay=gamma)


class _TFASchedule(Schedule):
    """Base of the TensorFlow Addons-compatible classes: TFA's arguments and config."""

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_fn: Any = "triangular",
        scale_mode: str = "cycle",
        name: str | None = None,
    ) -> None:
        schedule = _tfa_schedule(initial_learning_rate, maximal_learning_rate, step_size, scale_fn, scale_mode)
        super().__init__(schedule, name=name or type(self).__name__)
        self.initial_learning_rate = float(initial_learning_rate)
        self.maximal_learning_rate = float(maximal_learning_rate)
        self.step_size = step_size
        self.scale_fn = _scale_fn_config(scale_fn)
        self.scale_mode = scale_mode

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "maximal_learning_rate": self.maximal_learning_rate,
            "step_size": self.step_size,
            "scale_fn": self.scale_fn,
            "scale_mode": self.scale_mode,
            "name": self.name,
        }


@_register
class CyclicalLearningRate(_TFASchedule):
    """TensorFlow Addons' ``CyclicalLearningRate``, with ``scale_fn`` a registered shape name or
    dict (``'triangular'``, ``'triangular2'``, ``{'name': 'exp_range', 'gamma': g}``)."""


class _FixedShape(_TFASchedule):
    _shape: dict[str, Any] = {"name": "triangular"}
    _default_mode = "cycle"

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_mode: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("scale_fn", None)  # from get_config: fixed by the class
        super().__init__(
            initial_learning_rate,
            maximal_learning_rate,
            step_size,
            scale_fn=self._shape,
            scale_mode=scale_mode or self._default_mode,
            name=name,
        )


@_register
class TriangularCyclicalLearningRate(_FixedShape):
    """TensorFlow Addons' ``TriangularCyclicalLearningRate``."""


@_register
class TriangularLearningRate(_FixedShape):
    """The seed document's ``TriangularLearningRate(initial_learning_rate, maximal_learning_rate,
    step_size)``, which Keras itself does not have."""


@_register
class Triangular2CyclicalLearningRate(_FixedShape):
    """TensorFlow Addons' ``Triangular2CyclicalLearningRate``: the amplitude halves every cycle."""

    _shape = {"name": "triangular2"}


@_register
class ExponentialCyclicalLearningRate(_FixedShape):
    """TensorFlow Addons' ``ExponentialCyclicalLearningRate``: amplitude times ``gamma**step``."""

    _default_mode = "iterations"

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_mode: str | None = None,
        gamma: float = 1.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if "scale_fn" in kwargs:  # from get_config
            gamma = float(kwargs.pop("scale_fn").get("gamma", gamma))
        self._shape = {"name": "exp_range", "gamma": float(gamma)}
        self.gamma = float(gamma)
        super().__init__(initial_learning_rate, maximal_learning_rate, step_size, scale_mode, name)


# ---------------------------------------------------------------- cyclical momentum


def _momentum_schedule(owner: str, value: Any, learning_rate: Any, param: str) -> Any:
    if isinstance(learning_rate, AdaptiveSchedule) and value is not None and not isinstance(value, (int, float)):
        if not (
            isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
        ):
            raise InvalidParameterError(owner, param, value, "None, a number, or (low, high) with an AdaptiveSchedule")
        low, high = (float(v) for v in value)
        if not 0.0 <= low <= high < 1.0:
            raise InvalidParameterError(owner, param, value, "(low, high) with 0 <= low <= high < 1")
        return _MirroredLevel(learning_rate, low, high)
    lr = learning_rate.schedule if isinstance(learning_rate, Schedule) else None
    return momentum_schedule(value, lr, owner=owner, param=param)


class _ScheduledMomentum:
    """Shared by the optimizers below: the scheduled value at the current update, as a tensor,
    evaluated once per ``apply`` (one update of all variables) rather than once per variable."""

    iterations: Any
    _scheduled_now: Any = None

    def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
        self._scheduled_now = None  # a fresh value for this update (and for each trace)
        try:
            return super().apply(grads, trainable_variables)  # type: ignore[misc]
        finally:
            self._scheduled_now = None

    def build(self, variables: Any) -> None:
        super().build(variables)  # type: ignore[misc]
        lr = getattr(self, "_learning_rate", None)
        if isinstance(lr, AdaptiveSchedule):
            lr.bind(self)

    def _scheduled(self, schedule: CyclrSchedule, dtype: Any) -> Any:
        if self._scheduled_now is None:
            self._scheduled_now = schedule(self.iterations, xp=_OPS)
        return K.cast(self._scheduled_now, dtype)


@_register
class SGD(_ScheduledMomentum, keras.optimizers.SGD):  # type: ignore[misc]
    """``keras.optimizers.SGD`` whose ``momentum`` may be a cyclr schedule (or config dict).

    Keras keeps ``momentum`` as a Python float and branches on it in ``update_step``, so a
    schedule cannot be swapped in from outside under ``jit``; this subclass evaluates the
    schedule at ``iterations`` inside the update (TensorFlow, JAX and torch backends alike).
    ``learning_rate`` may also be a cyclr schedule.
    """

    def __init__(self, learning_rate: Any = 0.01, momentum: Any = 0.0, nesterov: bool = False, **kwargs: Any) -> None:
        learning_rate = _as_keras_lr(learning_rate)
        schedule = _momentum_schedule("SGD", momentum, learning_rate, "momentum")
        initial = momentum if schedule is None else max(schedule.bounds[1], 1e-3)  # > 0: builds momentum slots
        super().__init__(learning_rate=learning_rate, momentum=initial, nesterov=nesterov, **kwargs)
        self.momentum_schedule = schedule

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.momentum_schedule is None:
            return super().update_step(gradient, variable, learning_rate)  # type: ignore[no-any-return]
        momentum = self._scheduled(self.momentum_schedule, variable.dtype)
        lr = K.cast(learning_rate, variable.dtype)
        step = K.multiply(K.cast(gradient, variable.dtype), lr)
        m = self.momentums[self._get_variable_index(variable)]
        self.assign(m, K.subtract(K.multiply(m, momentum), step))
        if self.nesterov:
            self.assign_add(variable, K.subtract(K.multiply(m, momentum), step))
        else:
            self.assign_add(variable, m)
        return None

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        if self.momentum_schedule is not None:
            config["momentum"] = self.momentum_schedule.to_config()
        return config


class _ScheduledBeta1(_ScheduledMomentum):
    """Adam's update with ``beta_1`` read from a schedule (bias correction with the current value,
    as torch's Adam does when ``betas[0]`` changes)."""

    beta_1_schedule: CyclrSchedule | None

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.beta_1_schedule is None:
            return super().update_step(gradient, variable, learning_rate)  # type: ignore[misc, no-any-return]
        dtype = variable.dtype
        beta_1 = self._scheduled(self.beta_1_schedule, dtype)
        lr = K.cast(learning_rate, dtype)
        gradient = K.cast(gradient, dtype)
        local_step = K.cast(self.iterations + 1, dtype)
        beta_1_power = K.power(beta_1, local_step)
        beta_2_power = K.power(K.cast(self.beta_2, dtype), local_step)  # type: ignore[attr-defined]
        index = self._get_variable_index(variable)  # type: ignore[attr-defined]
        m, v = self._momentums[index], self._velocities[index]  # type: ignore[attr-defined]
        alpha = lr * K.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        self.assign_add(m, K.multiply(K.subtract(gradient, m), 1 - beta_1))  # type: ignore[attr-defined]
        self.assign_add(v, K.multiply(K.subtract(K.square(gradient), v), 1 - self.beta_2))  # type: ignore[attr-defined]
        if self.amsgrad:  # type: ignore[attr-defined]
            v_hat = self._velocity_hats[index]  # type: ignore[attr-defined]
            self.assign(v_hat, K.maximum(v_hat, v))  # type: ignore[attr-defined]
            v = v_hat
        self.assign_sub(variable, K.divide(K.multiply(m, alpha), K.add(K.sqrt(v), self.epsilon)))  # type: ignore[attr-defined]
        return None

    def __init__(self, learning_rate: Any = 0.001, beta_1: Any = 0.9, **kwargs: Any) -> None:
        learning_rate = _as_keras_lr(learning_rate)
        schedule = _momentum_schedule(type(self).__name__, beta_1, learning_rate, "beta_1")
        initial = beta_1 if schedule is None else schedule.bounds[1]
        super().__init__(learning_rate=learning_rate, beta_1=initial, **kwargs)  # type: ignore[call-arg]
        self.beta_1_schedule = schedule

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()  # type: ignore[misc]
        if self.beta_1_schedule is not None:
            config["beta_1"] = self.beta_1_schedule.to_config()
        return config


@_register
class Adam(_ScheduledBeta1, keras.optimizers.Adam):  # type: ignore[misc]
    """``keras.optimizers.Adam`` whose ``beta_1`` may be a cyclr schedule (or config dict)."""


@_register
class AdamW(_ScheduledBeta1, keras.optimizers.AdamW):  # type: ignore[misc]
    """``keras.optimizers.AdamW`` whose ``beta_1`` may be a cyclr schedule (or config dict)."""


# ---------------------------------------------------------------- logging


def _value_at(schedule_or_value: Any, step: int) -> float:
    """A schedule's value at ``step`` on the host (cyclr: pure NumPy; Keras: evaluated)."""
    if isinstance(schedule_or_value, Schedule):
        return float(schedule_or_value.schedule(step))
    if isinstance(schedule_or_value, CyclrSchedule):
        return float(schedule_or_value(step))
    if callable(schedule_or_value):
        return float(np.asarray(K.convert_to_numpy(schedule_or_value(step))))
    return float(np.asarray(K.convert_to_numpy(schedule_or_value)))


def _inner(optimizer: Any) -> Any:
    """The optimizer doing the updates (unwraps ``LossScaleOptimizer``, as mixed precision adds)."""
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


class LRLogger(keras.callbacks.Callback):  # type: ignore[misc]
    """Record the learning rate (and momentum or ``beta_1``) of the training updates.

    One entry per batch hook: per batch normally, and for the last update of each block with
    ``steps_per_execution > 1``. Values go into ``self.history`` (``{"lr": [...], "momentum":
    [...]}``) and into the batch ``logs`` (so a ``TensorBoard(update_freq='batch')`` placed after
    this callback writes them); the epoch's last values go into the epoch logs, hence into
    ``model.fit``'s ``History``. Values are computed from the schedules at the update count,
    which this callback derives from the hooks' batch index: it never reads optimizer variables
    mid-epoch (stale on the JAX backend). ``LossScaleOptimizer`` wrappers are looked through.

    Like the torch ``Scheduler``, it warns when training runs past the end of a finite cyclr
    schedule (the rate then holds its final value): once at the start of ``fit`` when the planned
    updates (epochs x steps per epoch) outrun the schedule, else at the first update past it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {"lr": [], "momentum": []}
        self._epoch_start = 0
        self._done_in_epoch = 0
        self._current: dict[str, float] = {}
        self._before: dict[str, float] | None = None
        self._warned_past_end = False

    def _horizon(self) -> int | None:
        lr = getattr(_inner(self.model.optimizer), "_learning_rate", None)
        if isinstance(lr, AdaptiveSchedule):
            return None
        return lr.schedule.horizon if isinstance(lr, Schedule) else None

    def _warn_past_end(self, updates: int, planned: bool) -> None:
        """Warn (once) if update number ``updates - 1`` lies past the schedule's last step."""
        end = self._horizon()
        if self._warned_past_end or end is None or updates <= end:
            return
        self._warned_past_end = True
        what = f"this fit plans {updates} updates" if planned else f"training reached update {updates}"
        warnings.warn(
            f"cyclr: {what}, past the end of the learning-rate schedule ({end} steps); the last "
            f"{updates - end} hold its final value. Build the schedule with total_steps = epochs * "
            "ceil(samples / batch_size) (cyclr.total_steps), as Keras runs a last partial batch.",
            UserWarning,
            stacklevel=2,
        )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start = int(K.convert_to_numpy(self.model.optimizer.iterations))
        self._done_in_epoch = 0
        steps, epochs = (self.params or {}).get("steps"), (self.params or {}).get("epochs")
        if steps and epochs:
            self._warn_past_end(self._epoch_start + int(steps) * int(epochs), planned=True)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start += self._done_in_epoch
        self._done_in_epoch = 0

    def _values(self, step: int) -> dict[str, float]:
        opt = _inner(self.model.optimizer)
        current = {"lr": _value_at(opt._learning_rate, step)}
        momentum = getattr(opt, "momentum_schedule", None) or getattr(opt, "beta_1_schedule", None)
        if momentum is not None:
            current["momentum"] = float(momentum(step))
        elif hasattr(opt, "beta_1") or hasattr(opt, "momentum"):
            current["momentum"] = float(getattr(opt, "beta_1", getattr(opt, "momentum", 0.0)))
        return current

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # an adaptive schedule's value depends on its state, not the step: read it before the
        # update (and before an AdaptiveCallback folds in the loss), whatever the callbacks' order
        if isinstance(getattr(_inner(self.model.optimizer), "_learning_rate", None), AdaptiveSchedule):
            self._before = self._values(self._epoch_start + batch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._done_in_epoch = batch + 1
        before, self._before = self._before, None
        self._current = before or self._values(self._epoch_start + batch)  # the update just made
        self._warn_past_end(self._epoch_start + batch + 1, planned=False)
        for key, value in self._current.items():
            self.history[key].append(value)
            if logs is not None:
                logs[key] = value

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs.update(self._current)


def __dir__() -> list[str]:
    """The public names only: `dir()` lists what `__all__` promises, not the helpers imported here."""
    return sorted(__all__)
