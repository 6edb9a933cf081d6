"""Shared fixtures: one valid example per registered schedule, variants, hypothesis strategies.

``EXAMPLES`` must name every schedule in :data:`cyclr.REGISTRY` (``test_config.py`` checks it), so a
new schedule cannot land without an example, and with it the generic round-trip, backend,
validation and bounds tests. ``VARIANTS`` adds the options one example per name cannot show.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis import strategies as st

import cyclr

# ---------------------------------------------------------------------------- hypothesis profiles
# ``make test`` (and CI) runs the "ci" profile: derandomized (the same examples on every run, from
# any clone) and without an example database, so a test's outcome never depends on a previous run.
# ``make fuzz`` runs the "fuzz" profile: fresh random examples, 10x as many (FUZZ_FACTOR), with the
# database kept so that a failure found there replays until it is fixed.
FUZZ_FACTOR = 10
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("fuzz", max_examples=100 * FUZZ_FACTOR, print_blob=True, deadline=None)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def torchrun_two_ranks(worker: str, out: object, timeout: int = 180) -> None:
    """Run ``tests/<worker>`` under ``torch.distributed.run`` with 2 gloo processes (skips where
    gloo is missing); the worker writes its results into ``out``."""
    import subprocess
    import sys
    from pathlib import Path

    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    cmd = [*launch, str(Path(__file__).parent / worker), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def n_examples(n: int) -> int:
    """A test's own example count, multiplied under ``make fuzz``."""
    return n * FUZZ_FACTOR if PROFILE == "fuzz" else n


#: One valid instance per registered schedule name.
EXAMPLES: dict[str, cyclr.Schedule] = {
    "constant": cyclr.constant(lr=0.05),
    "cyclic": cyclr.cyclic(base_lr=1e-4, max_lr=1e-2, step_size=7, step_size_down=13, decay=0.9, cycles=4),
    "triangular": cyclr.triangular(base_lr=1e-3, max_lr=6e-3, step_size=10),
    "triangular2": cyclr.triangular2(base_lr=1e-3, max_lr=6e-3, step_size=4, step_size_down=6),
    "exp_range": cyclr.exp_range(base_lr=1e-3, max_lr=1e-2, step_size=5, gamma=0.999),
    "cosine": cyclr.cosine(max_lr=0.1, total_steps=100, min_lr=1e-3),
    "sgdr": cyclr.sgdr(max_lr=0.1, period=10, min_lr=1e-3, period_mult=2, decay=0.8, cycles=3),
    "one_cycle": cyclr.one_cycle(max_lr=0.1, total_steps=100),
    "step_decay": cyclr.step_decay(lr=0.1, step_size=30, gamma=0.5),
    "multistep": cyclr.multistep(lr=0.1, milestones=[30, 80], gamma=0.1),
    "exponential": cyclr.exponential(lr=0.1, gamma=0.99),
    "polynomial": cyclr.polynomial(lr=0.1, total_steps=100, power=2.0, end_lr=1e-3),
    "linear": cyclr.linear(start_lr=0.01, end_lr=0.1, total_steps=50),
    "wsd": cyclr.wsd(max_lr=0.1, warmup_steps=10, stable_steps=50, decay_steps=40, min_lr=1e-3),
    "warmup": cyclr.warmup(cyclr.cosine(max_lr=0.1, total_steps=90, min_lr=1e-3), steps=10),
    "join": cyclr.join(
        [cyclr.triangular(base_lr=1e-3, max_lr=1e-2, step_size=5), cyclr.cosine(max_lr=0.05, total_steps=40)], [25]
    ),
    "mirror": cyclr.mirror(cyclr.one_cycle(max_lr=0.1, total_steps=100), 0.85, 0.95),
}

#: Options that the one-per-name examples leave out (shapes, float periods, per-step decay, ...).
VARIANTS: dict[str, cyclr.Schedule] = {
    "cyclic-seed": cyclr.from_config(cyclr.SEED_DEFAULT),
    "cyclic-sine": cyclr.cyclic(base_lr=1e-3, max_lr=1e-2, step_size=6, shape="sine", cycles=3),
    "cyclic-cosine-step-decay": cyclr.cyclic(
        base_lr=1e-3, max_lr=1e-2, step_size=8, shape="cosine", decay=0.99, decay_every="step"
    ),
    "cyclic-float-step": cyclr.cyclic(base_lr=1e-3, max_lr=1e-2, step_size=2.5, step_size_down=4.25),
    "sgdr-mult3": cyclr.sgdr(max_lr=0.1, period=10, period_mult=3),
    "sgdr-mult1.5": cyclr.sgdr(max_lr=0.1, period=10, min_lr=1e-3, period_mult=1.5, decay=0.9),
    "sgdr-mult0.5": cyclr.sgdr(max_lr=0.1, period=10, min_lr=1e-3, period_mult=0.5),
    "sgdr-mult1": cyclr.sgdr(max_lr=0.1, period=7, decay=0.5),
    "one_cycle-3phase-linear": cyclr.one_cycle(max_lr=0.1, total_steps=100, three_phase=True, anneal="linear"),
    "exponential-staircase": cyclr.exponential(lr=0.1, gamma=0.5, decay_steps=10, staircase=True),
    "wsd-1sqrt": cyclr.wsd(
        max_lr=0.1, warmup_steps=10, stable_steps=20, decay_steps=30, warmup_shape="1-sqrt", decay_shape="1-sqrt"
    ),
    "warmup-exponential": cyclr.warmup(
        cyclr.step_decay(lr=0.1, step_size=20), steps=10, start_lr=1e-4, shape="exponential"
    ),
    "warmup-linear-sgdr": cyclr.warmup(cyclr.sgdr(max_lr=0.1, period=10, period_mult=2), steps=5, start_lr=1e-3),
    "join-3": cyclr.join(
        [
            cyclr.linear(start_lr=0.0, end_lr=0.1, total_steps=10),
            cyclr.cyclic(base_lr=1e-3, max_lr=0.1, step_size=5, shape="sine"),
            cyclr.exponential(lr=0.01, gamma=0.9),
        ],
        [10, 40],
    ),
    "mirror-triangular2": cyclr.triangular2(base_lr=1e-3, max_lr=1e-2, step_size=5).mirror(0.8, 0.9),
}

ALL_CASES: dict[str, cyclr.Schedule] = {**EXAMPLES, **VARIANTS}


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a module, as in the bench's parallel workers on 2 cores (tiny models
    gain nothing from more, and the suite runs two test processes at once)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def examples() -> dict[str, cyclr.Schedule]:
    return EXAMPLES


# ---------------------------------------------------------------------------- hypothesis strategies
# One strategy per registered name, producing valid schedules with random parameters.

_lr = st.floats(1e-6, 1.0)
_gamma = st.floats(0.01, 1.0)
_pos = st.integers(1, 500) | st.floats(0.5, 500.0)


@st.composite
def _range(draw: st.DrawFn) -> tuple[float, float]:
    lo = draw(st.floats(0.0, 0.1))
    return lo, lo + draw(st.floats(0.0, 1.0))


@st.composite
def _cyclic(draw: st.DrawFn) -> cyclr.Schedule:
    lo, hi = draw(_range())
    return cyclr.cyclic(
        base_lr=lo,
        max_lr=hi,
        step_size=draw(_pos),
        step_size_down=draw(st.none() | _pos),
        shape=draw(st.sampled_from(["triangular", "sine", "cosine"])),
        decay=draw(_gamma),
        decay_every=draw(st.sampled_from(["cycle", "step"])),
        cycles=draw(st.none() | st.integers(1, 20)),
    )


@st.composite
def _clr(draw: st.DrawFn, name: str) -> cyclr.Schedule:
    lo, hi = draw(_range())
    params = {"base_lr": lo, "max_lr": hi, "step_size": draw(_pos), "step_size_down": draw(st.none() | _pos)}
    if name == "exp_range":
        params["gamma"] = draw(_gamma)
    return cyclr.REGISTRY[name](**params)


@st.composite
def _sgdr(draw: st.DrawFn) -> cyclr.Schedule:
    lo, hi = draw(_range())
    mult = draw(st.sampled_from([1.0, 2.0, 3.0, 0.5]) | st.floats(0.2, 4.0))
    return cyclr.sgdr(
        max_lr=hi,
        min_lr=lo,
        period=draw(_pos),
        period_mult=mult,
        decay=draw(_gamma),
        cycles=draw(st.none() | st.integers(1, 20)),
    )


@st.composite
def _one_cycle(draw: st.DrawFn) -> cyclr.Schedule:
    total = draw(st.integers(10, 10**6))
    three = draw(st.booleans())
    # phase 1 needs pct*T > 1; three phases also need 2*pct*T - 2 < T - 1
    pct = draw(st.floats(2.0 / total, 0.45 if three else 0.99))
    return cyclr.one_cycle(
        max_lr=draw(_lr),
        total_steps=total,
        pct_start=pct,
        div_factor=draw(st.floats(1.0, 1e3)),
        final_div_factor=draw(st.floats(1.0, 1e5)),
        anneal=draw(st.sampled_from(["cos", "linear"])),
        three_phase=three,
    )


@st.composite
def _cosine(draw: st.DrawFn) -> cyclr.Schedule:
    lo, hi = draw(_range())
    return cyclr.cosine(max_lr=hi, total_steps=draw(st.integers(1, 10**6)), min_lr=lo)


@st.composite
def _polynomial(draw: st.DrawFn) -> cyclr.Schedule:
    lo, hi = draw(_range())
    return cyclr.polynomial(lr=hi, total_steps=draw(st.integers(1, 10**6)), power=draw(st.floats(0.1, 5.0)), end_lr=lo)


@st.composite
def _wsd(draw: st.DrawFn) -> cyclr.Schedule:
    lo, hi = draw(_range())
    shapes = st.sampled_from(["linear", "cosine", "1-sqrt"])
    return cyclr.wsd(
        max_lr=hi,
        warmup_steps=draw(st.integers(0, 1000)),
        stable_steps=draw(st.integers(0, 1000)),
        decay_steps=draw(st.integers(0, 1000)),
        min_lr=lo,
        warmup_shape=draw(shapes),
        decay_shape=draw(shapes),
    )


_steps = st.integers(1, 10**5)

_LEAVES: dict[str, st.SearchStrategy[cyclr.Schedule]] = {
    "constant": st.builds(cyclr.constant, lr=_lr),
    "cyclic": _cyclic(),
    "triangular": _clr("triangular"),
    "triangular2": _clr("triangular2"),
    "exp_range": _clr("exp_range"),
    "cosine": _cosine(),
    "sgdr": _sgdr(),
    "one_cycle": _one_cycle(),
    "step_decay": st.builds(cyclr.step_decay, lr=_lr, step_size=_steps, gamma=_gamma),
    "multistep": st.builds(
        cyclr.multistep,
        lr=_lr,
        milestones=st.lists(st.integers(0, 10**6), min_size=1, max_size=5).map(sorted),
        gamma=_gamma,
    ),
    "exponential": st.builds(cyclr.exponential, lr=_lr, gamma=_gamma, decay_steps=_steps, staircase=st.booleans()),
    "polynomial": _polynomial(),
    "linear": st.builds(cyclr.linear, start_lr=_lr, end_lr=_lr, total_steps=_steps),
    "wsd": _wsd(),
}
_leaf = st.one_of(*_LEAVES.values())


@st.composite
def _warmup(draw: st.DrawFn) -> cyclr.Schedule:
    shape = draw(st.sampled_from(["linear", "cosine", "exponential"]))
    if shape == "exponential":  # needs start_lr > 0 and a target (the inner schedule's first value) > 0
        inner = draw(_leaf.filter(lambda s: s(0) > 0))
        start = draw(st.floats(1e-7, 1.0))
    else:
        inner, start = draw(_leaf), draw(st.floats(0.0, 1.0))
    return cyclr.warmup(inner, steps=draw(_steps), start_lr=start, shape=shape)


@st.composite
def _join(draw: st.DrawFn) -> cyclr.Schedule:
    parts = draw(st.lists(_leaf, min_size=2, max_size=4))
    bounds = draw(st.lists(st.integers(0, 10**6), min_size=len(parts) - 1, max_size=len(parts) - 1, unique=True))
    return cyclr.join(parts, sorted(bounds))


@st.composite
def _mirror(draw: st.DrawFn) -> cyclr.Schedule:
    low = draw(st.floats(0.0, 0.9))
    return cyclr.mirror(draw(_leaf), low, low + draw(st.floats(0.0, 0.1)))


#: name -> strategy of valid schedules of that name (every registered name).
STRATEGIES: dict[str, st.SearchStrategy[cyclr.Schedule]] = {
    **_LEAVES,
    "warmup": _warmup(),
    "join": _join(),
    "mirror": _mirror(),
}


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL server for the session (initdb + pg_ctl in a temp folder on 127.0.0.1),
    stopped at the end. Outside CI, a machine without PostgreSQL skips the tests that need it;
    in CI (CI=true) its absence is a failure, never a skip."""
    from cyclr.bench.pgcluster import PostgresUnavailable, TempPostgres

    try:
        server = TempPostgres(fsync=False).start()
    except PostgresUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL: {err}")
        pytest.skip(str(err))
    yield server
    server.stop()
