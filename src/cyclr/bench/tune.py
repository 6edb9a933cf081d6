"""``cyclr tune``: search a task's schedule (SEED.md 5.1, "a process of repeated trial") with
Optuna, in one process or many workers on many machines.

Each trial samples a schedule from a :class:`~cyclr.space.SearchSpace` (the family first, then its
parameters, then a warm-up share; the optimizer too when several are given), trains the task on it
through the bench's runners, and reports its periodic evaluations to a pruner (ASHA, Hyperband or
median) that stops the poor ones early. Trials are run by workers (:mod:`.worker`) over a storage
URL (:mod:`.storage`). The result is the best schedule as a cyclr config (``best.json``, ready for
:func:`cyclr.load_config`) and a report: the best trials, parameter importances, the optimisation
history, the learning curves of the best trials against the bench's baselines (the best constant
LR and the ``auto`` recipe) and what the search cost in training steps.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..controllers import CONTROLLERS
from ..space import SearchSpace, default_space
from .records import RunRecord, RunSpec
from .search import PRUNERS, SAMPLERS, Search, counts_toward_budget, grid_points
from .storage import HEARTBEAT, OptunaStore, check_parallel, redact, trial_record
from .store import StoreError

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Search",
    "TuneConfig",
    "TuneOutcome",
    "grid_points",
    "run_tune",
    "write_tune_report",
]

STUDY_META = "cyclr"


def _bad(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{name} is {value!r}; allowed: {allowed}.")


@dataclass
class TuneConfig:
    """The settings of one ``cyclr tune``. ``storage`` defaults to a SQLite file in ``out``;
    ``space`` is a YAML/JSON file (default: every family around the task's reference LR)."""

    task: str = "digits"
    trials: int = 30
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    out: Path = Path("cyclr-tune")
    space: str | None = None
    sampler: str = "tpe"
    pruner: str = "asha"
    optimizers: list[str] | None = None
    epochs: int | None = None
    seed: int = 0
    train_subset: int | None = None
    data_dir: str | None = None
    baselines: bool = True
    grid_points: int = 3
    heartbeat: tuple[int, int] = HEARTBEAT

    def __post_init__(self) -> None:
        from .harness import _positive
        from .tasks import OPTIMIZERS, TASKS, task_from_reference

        if ":" in self.task and not self.task.startswith(("http:", "https:")) and self.task not in TASKS:
            task_from_reference(self.task)
        elif self.task not in TASKS:
            raise _bad("--task", self.task, ", ".join(sorted(TASKS)) + ", path/to/file.py:Class or module:Class")
        _positive("trials", self.trials)
        if not isinstance(self.workers, int) or self.workers < 0:
            raise _bad("--workers", self.workers, "0 (workers started elsewhere) or more")
        if self.sampler not in SAMPLERS:
            raise _bad("--sampler", self.sampler, ", ".join(SAMPLERS))
        if self.pruner not in PRUNERS:
            raise _bad("--pruner", self.pruner, ", ".join(PRUNERS))
        for opt in self.optimizers or ():
            if opt not in OPTIMIZERS:
                raise _bad("--optimizers", opt, ", ".join(OPTIMIZERS))
        if self.epochs is not None:
            _positive("epochs", self.epochs)
        if self.train_subset is not None:
            _positive("train_subset", self.train_subset)
        if not isinstance(self.grid_points, int) or self.grid_points < 2:
            raise _bad("--grid-points", self.grid_points, "an integer >= 2")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise _bad("--seed", self.seed, "an integer >= 0")
        self.out = Path(self.out)
        if self.storage is None:
            self.storage = f"sqlite:///{(self.out / 'tune.db').resolve()}"
        check_parallel(self.storage, self.workers)
        if self.study is None:
            self.study = f"cyclr-tune-{Path(self.task).stem if ':' in self.task else self.task}"

    def resolved(self) -> tuple[Any, list[str], int, SearchSpace]:
        """The task, its optimizers, the epochs and the search space this configuration means."""
        from .tasks import get_task

        task = get_task(self.task)
        optimizers = self.optimizers or [task.optimizers[0]]
        epochs = self.epochs or task.epochs
        space = SearchSpace.load(self.space) if self.space else default_space(float(task.default_lr[optimizers[0]]))
        return task, optimizers, epochs, space

    def meta(self) -> dict[str, Any]:
        """What a study of this search holds (every worker reads it; a resumed search must match)."""
        task, optimizers, epochs, space = self.resolved()
        trials = self.trials
        if self.sampler == "grid":
            trials = min(trials, len(grid_points(space, self.grid_points, optimizers)))
        return {
            "kind": "tune",
            "task": self.task,
            "task_name": task.name,
            "optimizers": optimizers,
            "epochs": epochs,
            "seed": self.seed,
            "train_subset": self.train_subset,
            "space": space.to_data(),
            "trials": trials,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "grid_points": self.grid_points,
            "higher_is_better": bool(task.higher_is_better),
            "plugins": [self.task] if ":" in self.task and task.name != self.task else [],
        }


# ---------------------------------------------------------------------- the command
@dataclass
class TuneOutcome:
    out: Path
    trials: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    best: dict[str, Any] | None = None
    report: Path | None = None
    steps: int = 0


def open_search(config: TuneConfig) -> OptunaStore:
    """The study of a search: created, or an existing one checked against this configuration
    (another task or search space is an error, not a mixed study)."""
    meta = config.meta()
    assert config.storage is not None and config.study is not None
    store = OptunaStore(
        config.storage, config.study, create=True, maximize=meta["higher_is_better"], heartbeat=config.heartbeat
    )
    try:
        earlier = store.meta(STUDY_META)
        if earlier is None and store.trials():
            raise StoreError(f"study {config.study!r} exists and was not made by cyclr tune; choose another --study.")
        if earlier is not None:
            if earlier.get("kind") != "tune":
                raise StoreError(f"study {config.study!r} is a {earlier.get('kind')} study; choose another --study.")
            for name in ("task_name", "space", "optimizers", "epochs", "seed", "train_subset", "sampler"):
                if earlier.get(name) != meta[name]:
                    what = "search space" if name == "space" else name.replace("_name", "")
                    raise StoreError(
                        f"study {config.study!r} was made with another {what} ({_short(earlier.get(name))}, "
                        f"not {_short(meta[name])}); choose another --study, or search the same space."
                    )
            meta["trials"] = max(int(meta["trials"]), int(earlier.get("trials", 0)))
        meta["parallel"] = config.workers > 1
        store.set_meta(STUDY_META, meta)
        if config.sampler == "grid" and earlier is None:
            _task, optimizers, _, space = config.resolved()
            points = grid_points(space, config.grid_points, optimizers)
            random.Random(config.seed).shuffle(points)
            for point in points[: meta["trials"]]:
                store.study.enqueue_trial(point)
    except BaseException:
        store.close()
        raise
    return store


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def run_tune(config: TuneConfig, listener: Callable[[str, Any], None] | None = None) -> TuneOutcome:
    """Run (or resume) a search with ``config.workers`` local workers (0: only workers started
    elsewhere with ``cyclr worker``), then the baselines, then write the report."""
    from .runs import _task_data
    from .store import OutLock
    from .worker import OptunaEngine, run_worker

    notify = listener or (lambda event, payload: None)
    task, _, _, _ = config.resolved()
    _task_data(task.name, config.train_subset, config.data_dir)  # a missing data set stops here
    config.out.mkdir(parents=True, exist_ok=True)
    with OutLock(config.out):
        store = open_search(config)
        try:
            notify("plan", store.meta(STUDY_META))
            assert config.storage is not None and config.study is not None
            if config.workers == 1:
                run_worker(
                    config.storage, config.study, data_dir=config.data_dir, heartbeat=config.heartbeat, listener=notify
                )
            else:
                engine = OptunaEngine(store, config.workers, config.heartbeat)
                procs = engine.start_workers(config.data_dir) if config.workers else []
                try:
                    _wait(store, procs, notify)
                except BaseException:
                    engine.stop(procs)
                    raise
            baselines = run_baselines(config, notify) if config.baselines else []
            return write_tune_report(store, config.out, baselines)
        finally:
            store.close()


def _wait(store: OptunaStore, procs: list[Any], notify: Callable[[str, Any], None]) -> None:
    """Until the search is done: report trials as they finish."""
    import time

    from optuna.trial import TrialState

    seen: set[int] = set()
    while True:
        trials = store.trials()
        for t in trials:
            if t.state.is_finished() and t.number not in seen:
                seen.add(t.number)
                record = trial_record(t)
                if record is not None:
                    notify("done", record)
        counted = [t for t in trials if _counted(t)]
        open_ = [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
        budget = int(store.meta(STUDY_META)["trials"])
        if len(counted) >= budget and not open_:
            break
        if procs and not any(p.is_alive() for p in procs) and not open_:
            break
        time.sleep(1.0)
    for p in procs:
        p.join()


def _counted(t: Any) -> bool:
    return counts_toward_budget(t) and t.state.is_finished()


def run_baselines(config: TuneConfig, notify: Callable[[str, Any], None]) -> list[RunRecord]:
    """The bench's baselines for the report, on the search's seed and budget: the constant-LR grid
    (and the framework default) and the ``auto`` recipe, kept in the study ``<study>-baselines``."""
    from .harness import BenchConfig, load_records, run_bench
    from .worker import OptunaEngine

    task, optimizers, epochs, _ = config.resolved()
    bench = BenchConfig(
        tasks=[config.task],
        strategies=["constant", "auto"],
        optimizers=optimizers,
        seeds=config.seed + 1,
        epochs=epochs,
        workers=max(1, config.workers),
        out=config.out / "baselines",
        resume=True,
        train_subset=config.train_subset,
        data_dir=config.data_dir,
    )
    assert config.storage is not None
    store = OptunaStore(
        config.storage, f"{config.study}-baselines", maximize=bool(task.higher_is_better), heartbeat=config.heartbeat
    )
    from .harness import plan_runs

    wanted = {s.key for s in plan_runs(bench) if s.seed == config.seed}
    engine = OptunaEngine(store, max(1, config.workers), config.heartbeat, bench.plugins)

    class _Only:  # the search's seed only
        def run(self, todo: list[RunSpec], data_dir: str | None, finished: Any, listen: Any) -> None:
            engine.run([s for s in todo if s.key in wanted], data_dir, finished, listen)

    run_bench(bench, lambda e, p: notify(f"baseline-{e}", p), engine=_Only(), store=lambda c: store)
    with OptunaStore(config.storage, f"{config.study}-baselines", create=False, heartbeat=config.heartbeat) as again:
        return [r for r in load_records(again) if r.key in wanted]


# ---------------------------------------------------------------------- the report
@dataclass
class TrialRow:
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    steps: int
    record: dict[str, Any] | None = field(default=None, repr=False)


def _rows(store: OptunaStore) -> list[TrialRow]:
    rows = []
    for t in store.trials():
        if not counts_toward_budget(t) or not t.state.is_finished():
            continue
        record = trial_record(t)
        steps = int(((record or {}).get("result") or {}).get("steps") or 0)
        value = t.value if t.value is not None and math.isfinite(t.value) else None
        rows.append(TrialRow(t.number, t.state.name.lower(), value, dict(t.params), steps, record))
    return rows


def _importances(store: OptunaStore, best_family: str | None) -> dict[str, dict[str, float]]:
    """fANOVA importances over every complete trial (the family, warm-up and optimizer) and
    within the best family (its own parameters)."""
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in store.trials((TrialState.COMPLETE,)) if t.value is not None and math.isfinite(t.value)]
    out: dict[str, dict[str, float]] = {}

    def importances(trials: list[Any]) -> dict[str, float]:
        if len(trials) < 3:
            return {}
        study = optuna.create_study(direction=store.study.direction)
        study.add_trials(trials)
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()}
        except (RuntimeError, ValueError):
            return {}

    out["all trials"] = importances(complete)
    if best_family is not None:
        same = [t for t in complete if t.params.get("family", best_family) == best_family]
        out[f"within {best_family}"] = importances(same)
    return {k: v for k, v in out.items() if v}


def write_tune_report(store: OptunaStore, out: Path, baselines: list[RunRecord] | None = None) -> TuneOutcome:
    """``best.json`` (the best schedule, for :func:`cyclr.load_config`), ``report.md``,
    ``report.html`` (plots inline) and ``report.json``, from what the storage holds."""
    from .report import atomic_write

    meta = store.meta(STUDY_META) or {}
    rows = _rows(store)
    maximize = store.maximize
    complete = [r for r in rows if r.state == "complete" and r.value is not None]
    outcome = TuneOutcome(out, trials=len(rows))
    outcome.complete = len(complete)
    outcome.pruned = sum(r.state == "pruned" for r in rows)
    outcome.failed = sum(r.state == "fail" for r in rows)
    outcome.steps = sum(r.steps for r in rows)
    if not complete:
        return outcome
    ranked = sorted(complete, key=lambda r: _score(float(r.value or 0.0), maximize), reverse=True)
    best = ranked[0]
    assert best.record is not None
    schedule = json.loads(best.record["variant"])
    family = best.params.get("family", next(iter(meta.get("space", {}).get("families", {"?": 0}))))
    outcome.best = {
        "trial": best.number,
        "value": best.value,
        "metric": best.record.get("metric"),
        "optimizer": best.record["optimizer"],
        "epochs": best.record["epochs"],
        "params": best.params,
        "schedule": schedule,
        "load": (
            "cyclr.controller_from_config(json.load(open('best.json')))"
            if schedule.get("name") in CONTROLLERS
            else "cyclr.load_config('best.json')"
        ),
    }
    atomic_write(out / "best.json", json.dumps(schedule, indent=2) + "\n")
    importances = _importances(store, family)
    base = [RunRecord.from_dict(r) if isinstance(r, dict) else r for r in (baselines or [])]
    baseline_rows = _baseline_rows(base, maximize)
    full = int(meta.get("epochs", 0)) * int(best.record.get("steps_per_epoch") or 0)
    data = {
        "task": meta.get("task"),
        "study": store.name,
        "storage": redact(store.url),
        "metric": best.record.get("metric"),
        "higher_is_better": maximize,
        "budget": {"trials": meta.get("trials"), "sampler": meta.get("sampler"), "pruner": meta.get("pruner")},
        "cost": {
            "steps": outcome.steps,
            "full_run_steps": full,
            "full_runs_equivalent": outcome.steps / full if full else None,
        },
        "counts": {
            "trials": len(rows),
            "complete": outcome.complete,
            "pruned": outcome.pruned,
            "failed": outcome.failed,
        },
        "best": outcome.best,
        "top": [{k: v for k, v in asdict(r).items() if k != "record"} for r in ranked[:10]],
        "importances": importances,
        "baselines": baseline_rows,
        "space": meta.get("space"),
    }
    atomic_write(out / "report.json", json.dumps(data, indent=2, allow_nan=True) + "\n")
    plots = _plots(rows, ranked[:3], base, maximize, str(best.record.get("metric")))
    atomic_write(out / "report.md", _markdown(data, ranked, plots))
    atomic_write(out / "report.html", _html(data, ranked, plots))
    for name, png in plots.items():
        (out / f"{name}.png").write_bytes(png)
    outcome.report = out / "report.md"
    return outcome


def _baseline_rows(records: list[RunRecord], maximize: bool) -> list[dict[str, Any]]:
    rows = []
    constants = [r for r in records if r.spec.strategy == "constant" and r.status == "done"]
    if constants:
        best = max(constants, key=lambda r: _score(r.final, maximize))
        rows.append(
            {"name": f"best constant ({best.spec.label or best.spec.variant})", "final": best.final, "key": best.key}
        )
    for r in records:
        if r.spec.strategy == "auto" and r.status == "done":
            rows.append(
                {
                    "name": "auto (range test -> one-cycle)",
                    "final": r.final,
                    "key": r.key,
                    "search_steps": r.search_steps,
                }
            )
    return rows


def _score(v: float, maximize: bool) -> float:
    if not math.isfinite(v):
        return -math.inf
    return v if maximize else -v


def _describe_params(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k.split('.', 1)[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.', 1)[-1]}={v}"
        for k, v in params.items()
    )


def _plots(
    rows: list[TrialRow], best: list[TrialRow], baselines: list[RunRecord], maximize: bool, metric: str
) -> dict[str, bytes]:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    fig, ax = plt.subplots(figsize=(7, 3.6))
    colors = {"complete": "#1f77b4", "pruned": "#bbbbbb", "fail": "#d62728"}
    for state in ("pruned", "complete", "fail"):
        pts = [(r.number, _last_metric(r)) for r in rows if r.state == state and _last_metric(r) is not None]
        if pts:
            xs_, ys_ = zip(*pts, strict=True)
            ax.scatter(xs_, ys_, s=18, c=colors[state], label=state, zorder=3)
    done = sorted((r.number, r.value) for r in rows if r.state == "complete" and r.value is not None)
    if done:
        running, xs, ys = None, [], []
        for n, v in done:
            running = v if running is None or (v > running if maximize else v < running) else running
            xs.append(n)
            ys.append(running)
        ax.step(xs, ys, where="post", color="#2ca02c", lw=2, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric + " (last evaluation)")
    ax.set_title("optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    out["history"] = _png(fig, io, plt)

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for r in best:
        res = (r.record or {}).get("result") or {}
        ax.plot(res.get("eval_steps", []), res.get("metrics", []), lw=2, label=f"trial {r.number} ({_family(r)})")
    for rec in baselines:
        if rec.result is None or rec.status != "done":
            continue
        if rec.spec.strategy == "auto" or rec in _best_constant(baselines, maximize):
            ax.plot(
                rec.result.eval_steps, rec.result.metrics, lw=1.5, ls="--", label=rec.spec.label or rec.spec.variant
            )
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title("learning curves: the best trials against the bench's baselines")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    out["curves"] = _png(fig, io, plt)
    return out


def _family(r: TrialRow) -> str:
    return str(r.params.get("family", (r.record or {}).get("family", "")))


def _best_constant(records: list[RunRecord], maximize: bool) -> list[RunRecord]:
    constants = [r for r in records if r.spec.strategy == "constant" and r.status == "done"]
    return [max(constants, key=lambda r: _score(r.final, maximize))] if constants else []


def _last_metric(r: TrialRow) -> float | None:
    metrics = ((r.record or {}).get("result") or {}).get("metrics") or []
    return float(metrics[-1]) if metrics and math.isfinite(metrics[-1]) else None


def _png(fig: Any, io: Any, plt: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return bytes(buf.getvalue())


def _lines(data: dict[str, Any], ranked: list[TrialRow]) -> list[tuple[str, list[str] | str]]:
    """The report's sections as (title, lines or a table)."""
    cost = data["cost"]
    counts = data["counts"]
    best = data["best"]
    metric = data["metric"]
    sections: list[tuple[str, list[str] | str]] = []
    full = cost["full_runs_equivalent"]
    sections.append(
        (
            "Result",
            [
                f"Best: trial {best['trial']}, {metric} {best['value']:.4g} with {best['optimizer']}, "
                f"schedule `{json.dumps(best['schedule'], sort_keys=True)}` (saved as best.json: `{best['load']}`).",
                f"Trials: {counts['trials']} ({counts['complete']} complete, {counts['pruned']} pruned, "
                f"{counts['failed']} failed); sampler {data['budget']['sampler']}, pruner {data['budget']['pruner']}.",
                f"Search cost: {cost['steps']:,} training steps"
                + (f", {full:.1f} full runs of {cost['full_run_steps']:,} steps." if full else "."),
            ],
        )
    )
    for b in data["baselines"]:
        diff = best["value"] - b["final"]
        better = diff > 0 if data["higher_is_better"] else diff < 0
        sections[0][1].append(  # type: ignore[union-attr]
            f"Against {b['name']}: {b['final']:.4g} ({'the search is ahead by' if better else 'the search trails by'} "
            f"{abs(diff):.3g}, one seed each: not a significance test)."
        )
    header = (
        "| rank | trial | " + metric + " | optimizer | family | parameters | steps |\n|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {i + 1} | {r.number} | {r.value:.4g} | {(r.record or {}).get('optimizer', '')} | {_family(r)} | "
        f"{_describe_params({k: v for k, v in r.params.items() if k not in ('family', 'optimizer')})} | {r.steps:,} |\n"
        for i, r in enumerate(ranked[:10])
    )
    sections.append(("Best trials", header + body))
    imp_lines = []
    for scope, values in data["importances"].items():
        imp_lines.append(f"{scope}: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
    sections.append(("Parameter importances (fANOVA)", imp_lines or ["too few complete trials to estimate them."]))
    return sections


def _markdown(data: dict[str, Any], ranked: list[TrialRow], plots: dict[str, bytes]) -> str:
    parts = [f"# cyclr tune: {data['task']}\n", f"Study `{data['study']}` in `{data['storage']}`.\n"]
    for title, body in _lines(data, ranked):
        parts.append(f"\n## {title}\n\n")
        parts.append(body if isinstance(body, str) else "".join(f"- {line}\n" for line in body))
    parts.append("\n## Plots\n\n![optimisation history](history.png)\n\n![learning curves](curves.png)\n")
    return "".join(parts)


def _inline_code(text: str) -> str:
    import re

    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _html(data: dict[str, Any], ranked: list[TrialRow], plots: dict[str, bytes]) -> str:
    import base64
    import html

    from .report import _CSS

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>cyclr tune: {html.escape(str(data['task']))}</title>"
    ]
    parts.append(f"<style>{_CSS}</style></head><body><h1>cyclr tune: {html.escape(str(data['task']))}</h1>")
    parts.append(
        f"<p>Study <code>{html.escape(data['study'])}</code> in <code>{html.escape(data['storage'])}</code>.</p>"
    )
    for title, body in _lines(data, ranked):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(body, str):
            lines = [ln for ln in body.strip().splitlines() if not ln.startswith("|---")]
            cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells[0]) + "</tr>")
            for row in cells[1:]:
                parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        else:
            parts.append("<ul>" + "".join(f"<li>{_inline_code(html.escape(line))}</li>" for line in body) + "</ul>")
    for name, png in plots.items():
        parts.append(f"<img alt='{name}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    parts.append("</body></html>\n")
    return "".join(parts)
