"""Benchmark strategies: how each one turns a task's budget into an LR (and momentum) plan.

Hand-set strategies start from the task's reference LR ``lr`` (``Task.default_lr``) and span the
same range as the constant grid, ``lr / sqrt(10)`` to ``lr * sqrt(10)``:

- ``constant``: the framework's default LR, and the grid ``lr * 10**{-1/2, 0, 1/2}``;
- ``step``: ``lr``, divided by 10 at 50% and 75% of the budget;
- ``exponential``: ``lr`` decaying to ``lr / 100`` at the end;
- ``cosine``: ``lr`` annealed to 0;
- ``warmup_cosine``: nanoGPT's recipe, a linear warm-up over 5% of the budget to ``lr``, then a
  cosine to ``lr / 10``;
- ``sgdr``: warm restarts from ``lr``, periods T/7, 2T/7, 4T/7 (period_mult 2) filling the budget;
- ``triangular``: two cycles across the grid's range; ``triangular2``: three, halving;
- ``sine``: the seed's mode, three sine cycles across the range with its gamma 0.95 per cycle;
- ``one_cycle``: torch ``OneCycleLR``'s defaults with ``max_lr`` at the grid's top, momentum cycled;
- ``auto``: cyclr's LR range test (its steps and seconds count) -> its complete one-cycle schedule;
- ``peer``: the real ``torch-lr-finder``'s suggestion fed to torch's own ``OneCycleLR`` with its
  defaults, the recipe most PyTorch users follow (its range test counts too);
- ``adaptive``: cyclr's closed-loop CLR started at the range test's ``max_lr``;
  ``adaptive_start`` starts it at x0.1, x0.3, x3 and x10 of it, and ``one_cycle_start`` does the
  same for ``auto``'s fixed one-cycle (the robustness sweep). ``auto`` and ``one_cycle_start``
  together are a 5-point half-decade ``max_lr`` grid: the grid-tuned one-cycle oracle;
- the LR-free anchors, their real packages at their documented defaults: ``prodigy``
  (``prodigyopt``, Adam tasks) and ``dadaptation`` (``DAdaptAdam``/``DAdaptSGD``) with a cosine
  over the run, ``schedulefree`` (``AdamWScheduleFree``/``SGDScheduleFree``, warm-up 5% of the
  run, evaluated at its averaged weights), ``dog`` (``dog-optimizer``, SGD tasks), and ``plateau``:
  torch's ``ReduceLROnPlateau`` (defaults) started at the range test's LR.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..finder import REPEATS, NoDescentError
from ..schedules import (
    SGDR,
    Constant,
    Cosine,
    Cyclic,
    Exponential,
    MultiStep,
    OneCycle,
    Schedule,
    Triangular,
    Triangular2,
    Warmup,
    from_config,
)
from ._plugins import is_reference, load_object
from .driver import (
    ControllerDriver,
    Driver,
    OptimizerDriver,
    PlateauDriver,
    ScheduleDriver,
    TorchSchedulerDriver,
)

__all__ = [
    "FAMILIES",
    "START_FACTORS",
    "STRATEGIES",
    "Context",
    "Plan",
    "Strategy",
    "Variant",
    "framework_default_lr",
    "get_strategies",
    "one_cycle_lr",
    "strategy",
    "strategy_from_reference",
    "warmup_cosine",
]

HALF_DECADE = math.sqrt(10.0)
GRID = (1 / HALF_DECADE, 1.0, HALF_DECADE)
#: the robustness sweep's starting points, as multiples of the range test's ``max_lr`` (x1 is
#: ``adaptive`` / ``auto`` themselves); with x1 a 5-point half-decade grid
START_FACTORS = (0.1, 0.3, 3.0, 10.0)


#: what a strategy is, for the report and the CLI: the constant-LR baselines, the decays
#: practitioners use, the cyclical family, LR finders, feedback-driven (adaptive) drivers and
#: the peers' own recipes
FAMILIES = ("baseline", "decay", "cyclical", "finder", "adaptive", "peer")
#: every runner (a strategy names those it can drive)
ALL_RUNNERS = ("torch", "keras", "rl")


@dataclass
class Context:
    """What a strategy may look at: the task, its data, the optimizer, the run's budget and the
    runner that will train it (its range test)."""

    task: Any
    data: Any
    optimizer: str
    epochs: int
    steps_per_epoch: int
    seed: int
    batch_size: int | None = None
    runner: Any = None

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def lr(self) -> float:
        return float(self.task.default_lr[self.optimizer])


@dataclass
class Plan:
    """One run's driver, and what choosing it cost (``search_steps``/``search_seconds`` of a
    range test); ``details`` is plain data the report may show (a range-test curve)."""

    driver: Driver
    search_steps: int = 0
    search_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def schedule(self) -> Schedule | None:
        """The cyclr schedule, for a :class:`ScheduleDriver` (else ``None``)."""
        return self.driver.schedule if isinstance(self.driver, ScheduleDriver) else None

    @property
    def momentum(self) -> tuple[float, float] | None:
        return self.driver.momentum if isinstance(self.driver, ScheduleDriver) else None


@dataclass(frozen=True)
class Variant:
    """One runnable setting of a strategy: ``label`` is shown, ``key`` identifies the run (two
    labels with the same key, such as a default LR that is also a grid point, share one run);
    ``framework_default``: the LR is the framework's own default."""

    strategy: str
    label: str
    key: str
    lr: float | None = None
    framework_default: bool = False


Builder = Callable[[Context, Variant], Plan]
Variants = Callable[[Any, str], list[Variant]]


@dataclass(frozen=True)
class Strategy:
    """A named way to drive a run. ``family`` is one of :data:`FAMILIES`; ``runners`` the
    runners it can drive; ``variants(task, optimizer)`` its settings (one by default)."""

    name: str
    description: str
    build: Builder
    family: str = "cyclical"
    runners: tuple[str, ...] = ALL_RUNNERS
    variants_of: Variants | None = None
    #: run when no strategies are named (the robustness sweep and the LR-free anchors are not)
    default: bool = True

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(
                f"strategy {self.name!r}: family must be one of {', '.join(FAMILIES)}; got {self.family!r}."
            )

    def variants(self, task: Any, optimizer: str) -> list[Variant]:
        if self.variants_of is not None:
            return self.variants_of(task, optimizer)
        return [Variant(self.name, self.name, self.name)]


STRATEGIES: dict[str, Strategy] = {}
_REFERENCES: dict[str, Strategy] = {}


def strategy(
    name: str | None = None,
    *,
    family: str,
    description: str = "",
    runners: tuple[str, ...] = ALL_RUNNERS,
    variants: Variants | None = None,
    default: bool = True,
) -> Callable[[Builder], Builder]:
    """Register a strategy: decorate its ``build(context, variant) -> Plan`` function::

    @cyclr.bench.strategy(family="adaptive", description="halves the LR when the loss rises")
    def halving(c, v):
        return Plan(MyDriver(c.lr))
    """

    def register(build: Builder) -> Builder:
        label = name or build.__name__.lstrip("_")
        doc = description or (build.__doc__ or "").strip().split("\n")[0]
        STRATEGIES[label] = Strategy(label, doc, build, family, tuple(runners), variants, default)
        build.strategy = STRATEGIES[label]  # type: ignore[attr-defined]
        return build

    return register


def _constant_variants(task: Any, optimizer: str) -> list[Variant]:
    """The framework's default LR and the grid ``lr * 10**{-1/2, 0, 1/2}``."""
    lr = float(task.default_lr[optimizer])
    default = framework_default_lr(task.framework, optimizer)
    points = [(default, True)] + [(lr * g, False) for g in GRID]
    out: dict[str, Variant] = {}
    for value, is_default in points:
        key = f"constant lr={value:.4g}"
        label = f"constant {value:.3g}" + (" (default)" if is_default else "")
        out.setdefault(key, Variant("constant", label, key, value, is_default))
    return list(out.values())


def framework_default_lr(framework: str, optimizer: str) -> float:
    """The LR the framework's optimizer uses when none is given (read from the framework)."""
    if framework == "torch":
        import torch

        cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.AdamW
        return float(inspect.signature(cls.__init__).parameters["lr"].default)
    if framework == "keras":
        import keras

        kcls = keras.optimizers.SGD if optimizer == "sgd" else keras.optimizers.AdamW
        return float(inspect.signature(kcls.__init__).parameters["learning_rate"].default)
    raise ValueError(f"unknown framework {framework!r}")


def _range(c: Context) -> tuple[float, float]:
    return c.lr / HALF_DECADE, c.lr * HALF_DECADE


def _plan(schedule: Schedule, momentum: tuple[float, float] | None = None) -> Plan:
    return Plan(ScheduleDriver(schedule, momentum))


def warmup_cosine(lr: float, total_steps: int, warmup: float = 0.05, floor: float = 0.1) -> Schedule:
    """nanoGPT's schedule: ``lr * (t + 1) / (w + 1)`` for ``t < w`` (``w`` = 5% of the budget, its
    100 of 2,000), then a cosine from ``lr`` to ``floor * lr`` at the end of the budget."""
    w = max(1, round(warmup * total_steps))
    return Warmup(Cosine(lr, max(1, total_steps - w), min_lr=floor * lr), steps=w, start_lr=lr / (w + 1))


@strategy(
    family="baseline", description="framework default LR, and the best of a 3-point grid", variants=_constant_variants
)
def constant(c: Context, v: Variant) -> Plan:
    assert v.lr is not None
    return _plan(Constant(v.lr))


@strategy(family="decay", description="step decay: /10 at 50% and 75%")
def step(c: Context, v: Variant) -> Plan:
    t = c.total_steps
    return _plan(MultiStep(c.lr, milestones=(max(1, t // 2), max(2, (3 * t) // 4)), gamma=0.1))


@strategy(family="decay", description="exponential decay to lr/100")
def exponential(c: Context, v: Variant) -> Plan:
    return _plan(Exponential(c.lr, gamma=0.01 ** (1 / max(c.total_steps - 1, 1))))


@strategy(family="decay", description="cosine annealing to 0")
def cosine(c: Context, v: Variant) -> Plan:
    return _plan(Cosine(c.lr, total_steps=c.total_steps))


@strategy("warmup_cosine", family="decay", description="nanoGPT: 5% linear warm-up, cosine to lr/10")
def _warmup_cosine(c: Context, v: Variant) -> Plan:
    return _plan(warmup_cosine(c.lr, c.total_steps))


@strategy(family="cyclical", description="cosine warm restarts, period x2")
def sgdr(c: Context, v: Variant) -> Plan:
    return _plan(SGDR(c.lr, period=c.total_steps / 7, period_mult=2.0))


@strategy(family="cyclical", description="CLR triangular, 2 cycles")
def triangular(c: Context, v: Variant) -> Plan:
    lo, hi = _range(c)
    return _plan(Triangular(lo, hi, step_size=c.total_steps / 4))


@strategy(family="cyclical", description="CLR triangular2, 3 halving cycles")
def triangular2(c: Context, v: Variant) -> Plan:
    lo, hi = _range(c)
    return _plan(Triangular2(lo, hi, step_size=c.total_steps / 6))


@strategy(family="cyclical", description="the seed's sine mode, 3 cycles, gamma 0.95")
def sine(c: Context, v: Variant) -> Plan:
    lo, hi = _range(c)
    return _plan(Cyclic(lo, hi, step_size=c.total_steps / 6, shape="sine", decay=0.95))


@strategy(family="cyclical", description="one-cycle, torch defaults, max_lr at the grid top")
def one_cycle(c: Context, v: Variant) -> Plan:
    return _plan(OneCycle(max_lr=_range(c)[1], total_steps=c.total_steps), momentum=(0.85, 0.95))


def _given(task: Any, optimizer: str) -> list[Variant]:
    return []  # nothing planned by itself: cyclr tune makes its runs, one per trial


@strategy(
    family="cyclical",
    description="a given schedule config, the variant (the runs cyclr tune tries)",
    variants=_given,
    default=False,
)
def tuned(c: Context, v: Variant) -> Plan:
    import json

    from ..controllers import CONTROLLERS, controller_from_config

    config = json.loads(v.key)
    if config.get("name") in CONTROLLERS:  # the adaptive family: momentum mirrors the level, as in `adaptive`
        momentum = None if c.runner.name == "keras" else (0.85, 0.95)
        return Plan(ControllerDriver(controller_from_config(config), momentum))
    return _plan(from_config(config))


_RANGE_TESTS: dict[tuple[str, int, str, int], Any] = {}


def _range_test(c: Context) -> Any:
    """The calibrated range test of the context's task, optimizer and seed (run once per process:
    each strategy that uses it still counts its cost)."""
    key = (c.task.name, id(c.data), c.optimizer, c.seed)
    if key not in _RANGE_TESTS:
        _RANGE_TESTS.clear()  # one at a time: a worker moves from task to task
        _RANGE_TESTS[key] = c.runner.range_test(c.task, c.data, c.optimizer, c.seed, repeats=REPEATS)
    return _RANGE_TESTS[key]


def _start_variants(name: str) -> Variants:
    def variants(task: Any, optimizer: str) -> list[Variant]:
        return [Variant(name, f"{name} x{f:g}", f"{name} x{f:g}", f) for f in START_FACTORS]

    return variants


def _one_cycle_from_test(c: Context, factor: float) -> Plan:
    result = _range_test(c)
    details: dict[str, Any] = {
        "curve": {"lrs": [float(x) for x in result.lrs], "losses": [float(x) for x in result.losses]},
        "confidence": {k: v for k, v in result.confidence.items() if k != "spread" or math.isfinite(v)},
    }
    try:
        schedule = result.schedule("one_cycle", c.steps_per_epoch, c.epochs)
        details.update(suggestion=result.suggestion, suggestions=result.suggestions, bounds=list(result.bounds))
    except NoDescentError as err:
        schedule = OneCycle(max_lr=c.lr, total_steps=c.total_steps)
        details.update(no_safe_lr=str(err), fallback=f"one-cycle peaking at the default LR {c.lr:g}")
    if factor != 1.0:
        cfg = schedule.to_config()
        schedule = from_config({**cfg, "max_lr": float(cfg["max_lr"]) * factor})
        details["factor"] = factor
    return Plan(
        ScheduleDriver(schedule, result.momentum),
        search_steps=result.steps,
        search_seconds=result.seconds,
        details=details,
    )


@strategy(family="finder", description="cyclr range test -> one-cycle (its cost counted)")
def auto(c: Context, v: Variant) -> Plan:
    """The calibrated range test's one-cycle. Where the test gives no safe LR (its sweeps
    disagree, or the loss never falls), the run says so in its details and trains the one-cycle
    shape peaking at the task's default LR, as a user without a finder would."""
    return _one_cycle_from_test(c, 1.0)


@strategy(
    family="finder",
    description="auto's one-cycle with max_lr at x0.1-x10 of the range test's (robustness sweep, oracle grid)",
    variants=_start_variants("one_cycle_start"),
    default=False,
)
def one_cycle_start(c: Context, v: Variant) -> Plan:
    assert v.lr is not None
    return _one_cycle_from_test(c, v.lr)


def _suggested_lr(c: Context) -> tuple[Any, float, dict[str, Any]]:
    """The range test, its calibrated LR, and details; where it gives no safe LR, the task's
    default LR, and the details say why."""
    result = _range_test(c)
    try:
        return result, float(result.suggestion), {}
    except NoDescentError as err:
        return result, c.lr, {"no_safe_lr": str(err), "fallback": f"started from the default LR {c.lr:g}"}


def _adaptive_from_test(c: Context, factor: float) -> Plan:
    from ..controllers import adaptive as closed_loop

    result, start, details = _suggested_lr(c)
    if factor != 1.0:
        details["factor"] = factor
    controller = closed_loop(total_steps=max(c.total_steps, 2), max_lr=start * factor)
    momentum = None if c.runner.name == "keras" else (0.85, 0.95)
    return Plan(
        ControllerDriver(controller, momentum),
        search_steps=result.steps,
        search_seconds=result.seconds,
        details={**details, "start_max_lr": start * factor},
    )


@strategy(family="adaptive", description="closed-loop CLR from the range test's LR (its cost counted)")
def adaptive(c: Context, v: Variant) -> Plan:
    """cyclr's closed-loop CLR (:func:`cyclr.adaptive`) over the run's budget, started from the
    calibrated range test's ``max_lr`` (the task's default LR where the test gives none), with
    momentum mirrored to its level where the framework lets momentum move between updates."""
    return _adaptive_from_test(c, 1.0)


@strategy(
    family="adaptive",
    description="closed-loop CLR started at x0.1-x10 of the range test's LR (robustness sweep)",
    variants=_start_variants("adaptive_start"),
    default=False,
)
def adaptive_start(c: Context, v: Variant) -> Plan:
    assert v.lr is not None
    return _adaptive_from_test(c, v.lr)


# ---------------------------------------------------------------------- the LR-free anchors
def _only(name: str, *optimizers: str) -> Variants:
    """One variant where the task's optimizer is one of ``optimizers`` (an anchor of that kind),
    none elsewhere."""

    def variants(task: Any, optimizer: str) -> list[Variant]:
        return [Variant(name, name, name)] if optimizer in optimizers else []

    return variants


def _cosine(total: int) -> Callable[[Any], Any]:
    def build(opt: Any) -> Any:
        import torch

        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))

    return build


@strategy(
    family="peer",
    runners=("torch", "rl"),
    description="Prodigy (prodigyopt, defaults) with a cosine over the run",
    variants=_only("prodigy", "adam"),
    default=False,
)
def prodigy(c: Context, v: Variant) -> Plan:
    def build(groups: list[dict[str, Any]]) -> Any:
        from prodigyopt import Prodigy

        return Prodigy(groups)

    config = {"optimizer": "prodigyopt.Prodigy", "scheduler": "cosine"}
    return Plan(OptimizerDriver(build, config, _cosine(c.total_steps), group_ratios=False))


@strategy(
    family="peer",
    runners=("torch", "rl"),
    description="D-Adaptation (DAdaptAdam / DAdaptSGD, defaults) with a cosine over the run",
    variants=_only("dadaptation", "adam", "sgd"),
    default=False,
)
def dadaptation(c: Context, v: Variant) -> Plan:
    adam = c.optimizer == "adam"

    def build(groups: list[dict[str, Any]]) -> Any:
        import dadaptation as da

        # DAdaptSGD with the bench's SGD momentum, 0.9 (its own default is none)
        return da.DAdaptAdam(groups) if adam else da.DAdaptSGD(groups, momentum=0.9)

    name = "DAdaptAdam" if adam else "DAdaptSGD"
    config = {"optimizer": f"dadaptation.{name}", "scheduler": "cosine"}
    return Plan(OptimizerDriver(build, config, _cosine(c.total_steps), group_ratios=False))


@strategy(
    family="peer",
    runners=("torch", "rl"),
    description="Schedule-Free AdamW / SGD (defaults, warm-up 5% of the run), evaluated at its average",
    variants=_only("schedulefree", "adam", "sgd"),
    default=False,
)
def schedulefree(c: Context, v: Variant) -> Plan:
    adam = c.optimizer == "adam"
    warmup = max(1, round(0.05 * c.total_steps))

    def build(groups: list[dict[str, Any]]) -> Any:
        import schedulefree as sf

        if adam:  # its default lr, 0.0025, scaled per group like the others' lr=1
            return sf.AdamWScheduleFree([{**g, "lr": 0.0025 * g["lr"]} for g in groups], warmup_steps=warmup)
        return sf.SGDScheduleFree(groups, warmup_steps=warmup)

    name = "AdamWScheduleFree" if adam else "SGDScheduleFree"
    return Plan(OptimizerDriver(build, {"optimizer": f"schedulefree.{name}", "warmup_steps": warmup}))


@strategy(
    family="peer",
    runners=("torch", "rl"),
    description="DoG (dog-optimizer, defaults), SGD tasks",
    variants=_only("dog", "sgd"),
    default=False,
)
def dog(c: Context, v: Variant) -> Plan:
    def build(groups: list[dict[str, Any]]) -> Any:
        from dog import DoG

        return DoG(groups)

    return Plan(OptimizerDriver(build, {"optimizer": "dog.DoG"}))


@strategy(
    family="peer",
    runners=("torch", "rl"),
    description="torch ReduceLROnPlateau (defaults) from the range test's LR (its cost counted)",
    default=False,
)
def plateau(c: Context, v: Variant) -> Plan:
    result, lr, details = _suggested_lr(c)
    return Plan(
        PlateauDriver(lr, c.steps_per_epoch),
        search_steps=result.steps,
        search_seconds=result.seconds,
        details={**details, "start_lr": lr},
    )


def one_cycle_lr(max_lr: float, total_steps: int) -> TorchSchedulerDriver:
    """torch's own ``OneCycleLR`` (its defaults) peaking at ``max_lr`` in the fastest param group,
    keeping the task's LR ratios between groups."""

    def build(opt: Any) -> Any:
        import torch

        top = max(float(g["lr"]) for g in opt.param_groups)
        max_lrs = [max_lr * float(g["lr"]) / top for g in opt.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lrs, total_steps=total_steps)

    return TorchSchedulerDriver(build, {"scheduler": "OneCycleLR", "max_lr": max_lr, "total_steps": total_steps})


@strategy(
    family="peer", runners=("torch",), description="torch-lr-finder suggestion -> torch OneCycleLR (its cost counted)"
)
def peer(c: Context, v: Variant) -> Plan:
    t0 = time.perf_counter()
    lr, steps, curve = torch_lr_finder_suggestion(c)
    return Plan(
        one_cycle_lr(lr, c.total_steps),
        search_steps=steps,
        search_seconds=time.perf_counter() - t0,
        details={"suggestion": lr, "curve": curve},
    )


def torch_lr_finder_suggestion(c: Context) -> tuple[float, int, dict[str, list[float]]]:
    """torch-lr-finder's suggestion for the context's task (see :func:`.peers.torch_lr_finder_run`)."""
    from .peers import torch_lr_finder_run

    return torch_lr_finder_run(c.task, c.data, c.optimizer, c.seed)


def strategy_from_reference(reference: str) -> Strategy:
    """Load ``file.py:name`` or ``module:name`` (once): a function decorated with
    :func:`strategy`, or a :class:`Strategy`; it is registered under its name."""
    if reference in _REFERENCES:
        return _REFERENCES[reference]
    obj = load_object(reference, "strategy")
    found = obj if isinstance(obj, Strategy) else getattr(obj, "strategy", None)
    if not isinstance(found, Strategy):
        raise ValueError(
            f"strategy {reference!r}: {obj!r} is neither a Strategy nor a function decorated with "
            "@cyclr.bench.strategy(...)."
        )
    STRATEGIES[found.name] = _REFERENCES[reference] = found
    return found


def get_strategies(names: str | list[str] | None) -> list[Strategy]:
    """Strategies by name (comma-separated or a list; ``None``: the default ones; ``'all'``: every
    one), or by reference (``file.py:name``, ``module:name``)."""
    if names is None:
        return list(dict.fromkeys(s for s in STRATEGIES.values() if s.default))
    if names == "all":
        return list(dict.fromkeys(STRATEGIES.values()))
    wanted = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    wanted = [strategy_from_reference(n).name if n not in STRATEGIES and is_reference(n) else n for n in wanted]
    unknown = [n for n in wanted if n not in STRATEGIES]
    if unknown or not wanted:
        raise ValueError(
            f"unknown strategy {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"valid strategies: {', '.join(STRATEGIES)}, or 'all'."
        )
    return list(dict.fromkeys(STRATEGIES[n] for n in wanted))
