"""Nothing lost: ``kill -9`` a worker in the middle of a run, again and again.

Each trial queues a bench of 4 runs (``examples/sleep_task.py``, ``--seconds`` each) in a fresh
study, starts a ``cyclr worker`` (heartbeat every second, stale after 3), waits until it is inside
its first, second or third run (drawn at random), sleeps a random share of the run and sends
SIGKILL. A second worker then finishes the study.
A trial passes when:

- the killed run's trial was failed by heartbeat and exactly one retry of it completed;
- every run key is complete exactly once (nothing lost, nothing run twice to completion);
- the report written from the storage holds every run.

    .venv/bin/python benchmarks/kill_trials.py --trials 20 --text results/kill_trials.txt   # about 12 minutes
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "examples/sleep_task.py:SleepTask"


def one_trial(url: str, study: str, seconds: float, rng: random.Random, out: Path) -> tuple[bool, str]:
    from optuna.trial import TrialState

    from cyclr.bench.harness import BenchConfig, load_records, plan_runs
    from cyclr.bench.report import write_report
    from cyclr.bench.storage import KEY, OptunaStore
    from cyclr.bench.worker import prepare_bench

    config = BenchConfig(tasks=[TASK], strategies=["constant"], seeds=1, out=out, storage=url, study=study)
    specs = plan_runs(config)
    with OptunaStore(url, study) as store:
        prepare_bench(store, specs, config.plugins)
    env = {**os.environ, "CYCLR_SLEEP_SECONDS": str(seconds), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "cyclr", "worker", "--storage", url, "--study", study, "--threads", "1"]
    cmd += ["--heartbeat", "1,3"]
    victim = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = rng.randrange(3)  # killed in its first, second or third run
    with OptunaStore(url, study, create=False) as store:
        deadline = time.time() + 120
        while time.time() < deadline and not (
            len(store.trials((TrialState.COMPLETE,))) >= after and store.trials((TrialState.RUNNING,))
        ):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.1, 0.8) * seconds)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        running = store.trials((TrialState.RUNNING,))
    if len(running) != 1:
        return False, f"expected one run in flight at the kill, found {len(running)}"
    killed = running[0]
    rescuer = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if rescuer.returncode != 0:
        return False, f"the second worker failed: {rescuer.stdout[-500:]}"
    with OptunaStore(url, study, create=False) as store:
        trials = store.trials()
        complete = Counter(t.user_attrs[KEY] for t in trials if t.state == TrialState.COMPLETE)
        killed_now = next(t for t in trials if t.number == killed.number)
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
        records = load_records(store)
        out.mkdir(parents=True, exist_ok=True)
        report = write_report(records, [s.key for s in specs], {}, out, None)
    problems = []
    if killed_now.state != TrialState.FAIL:
        problems.append(f"the killed trial is {killed_now.state.name}, not FAIL")
    if len(retries) != 1 or retries[0].state != TrialState.COMPLETE:
        problems.append(f"retries of the killed trial: {[(t.number, t.state.name) for t in retries]}")
    if complete != Counter(s.key for s in specs):
        problems.append(f"complete keys {dict(complete)}")
    if report is None or {r.key for r in records} != {s.key for s in specs}:
        problems.append("the report misses runs")
    where = f"killed trial {killed.number} ({killed.user_attrs[KEY].split(' seed')[0]})"
    return not problems, where + ("; " + "; ".join(problems) if problems else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="kill -9 trials per storage")
    parser.add_argument("--seconds", type=float, default=2.0, help="each run's length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text", type=Path, default=None)
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from cyclr.bench.pgcluster import TempPostgres

    rng = random.Random(args.seed)
    lines = [
        f"kill -9 trials: a worker killed inside a {args.seconds:g}-s run, a second one finishes the study "
        "(python benchmarks/kill_trials.py)",
        "",
    ]
    totals: dict[str, list[bool]] = {}
    with tempfile.TemporaryDirectory() as tmp, TempPostgres(fsync=True) as pg:
        for tag, url in (("journal", f"journal:///{tmp}/kill.log"), ("postgresql", pg.url)):
            results = totals.setdefault(tag, [])
            for i in range(args.trials):
                t0 = time.perf_counter()
                ok, what = one_trial(url, f"kill-{i}", args.seconds, rng, Path(tmp) / f"{tag}-{i}")
                results.append(ok)
                line = (
                    f"{tag:<10} trial {i + 1:>2}: {'ok' if ok else 'FAILED'}, {what} ({time.perf_counter() - t0:.1f} s)"
                )
                print(line, flush=True)
                lines.append(line)
        leaked = pg.connections()
    lines.append("")
    for tag, results in totals.items():
        lines.append(f"{tag}: {sum(results)}/{len(results)} kill -9 trials lost nothing and ran nothing twice")
    lines.append(f"PostgreSQL connections left open: {leaked}")
    text = "\n".join(lines)
    print("\n" + "\n".join(lines[-len(totals) - 2 :]))
    if args.text:
        args.text.write_text(text + "\n")
    if not all(all(r) for r in totals.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
