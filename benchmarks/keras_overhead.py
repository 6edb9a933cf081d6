"""Keras training steps per second with a constant LR, Keras' own CosineDecay,
cyclr.keras.Schedule (plus cyclr's cycled momentum) and the adaptive controller
(cyclr.keras.AdaptiveSchedule, fed by AdaptiveCallback every batch), side by side in one run.

    .venv/bin/python benchmarks/keras_overhead.py [--backend tensorflow|jax|torch] [--steps 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument("--steps", type=int, default=300, help="training steps timed per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jit", action="store_true", help="compile with jit_compile=True (XLA)")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import keras
    import numpy as np

    import cyclr
    import cyclr.keras as ck

    total = args.steps * 4
    variants: dict[str, Callable[[], Any]] = {
        "constant LR": lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        "keras CosineDecay": lambda: keras.optimizers.SGD(
            learning_rate=keras.optimizers.schedules.CosineDecay(0.05, total), momentum=0.9
        ),
        "cyclr Schedule (one_cycle)": lambda: keras.optimizers.SGD(
            learning_rate=ck.Schedule(cyclr.one_cycle(0.05, total)), momentum=0.9
        ),
        "cyclr Schedule (triangular2)": lambda: keras.optimizers.SGD(
            learning_rate=ck.Schedule(cyclr.triangular2(0.005, 0.05, 100)), momentum=0.9
        ),
        "cyclr SGD, cycled momentum": lambda: ck.SGD(
            learning_rate=cyclr.one_cycle(0.05, total), momentum=cyclr.one_cycle(0.05, total).mirror(0.85, 0.95)
        ),
        "cyclr adaptive, step only": lambda: ck.SGD(
            learning_rate=cyclr.adaptive(total_steps=total, max_lr=0.05), momentum=0.9
        ),
        "cyclr adaptive + callback": lambda: ck.SGD(
            learning_rate=cyclr.adaptive(total_steps=total, max_lr=0.05), momentum=0.9
        ),
        "cyclr adaptive, momentum": lambda: ck.SGD(
            learning_rate=cyclr.adaptive(total_steps=total, max_lr=0.05), momentum=(0.85, 0.95)
        ),
    }
    rng = np.random.default_rng(0)
    batch = 64
    x = rng.standard_normal((args.steps * batch, 64)).astype("float32")
    y = rng.integers(0, 10, args.steps * batch)

    def run(make_optimizer: Callable[[], Any], adaptive: bool) -> float:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)]
        )
        model.compile(
            optimizer=make_optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=args.jit,
        )
        callbacks = [ck.AdaptiveCallback()] if adaptive else []
        model.fit(x[: batch * 5], y[: batch * 5], batch_size=batch, epochs=1, verbose=0, callbacks=callbacks)
        t0 = time.perf_counter()  # traced and compiled above: this is the steady state
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
        return args.steps / (time.perf_counter() - t0)

    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every variant alike
        for label, make in variants.items():
            # "step only": the compiled step reading the controller's state, without the callback
            # that feeds it (the state stays put): the in-graph share of the cost
            samples[label].append(run(make, label.startswith("cyclr adaptive") and "step only" not in label))
    med = {k: statistics.median(v) for k, v in samples.items()}
    jit = ", jit_compile=True" if args.jit else ""
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}{jit}, {sys.platform}")
    print(f"training steps per second, median of {args.repeats} interleaved runs x {args.steps} steps")
    fixed = med["cyclr Schedule (one_cycle)"]
    print(f"{'variant':<30}{'steps/s':>10}{'vs constant':>13}{'vs CosineDecay':>16}{'vs cyclr one_cycle':>20}")
    for label, value in med.items():
        ratio_c = value / med["constant LR"]
        ratio_k = value / med["keras CosineDecay"]
        print(f"{label:<30}{value:>10.1f}{ratio_c:>12.2f}x{ratio_k:>15.2f}x{value / fixed:>19.2f}x")


if __name__ == "__main__":
    main()
