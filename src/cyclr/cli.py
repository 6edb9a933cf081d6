"""The ``cyclr`` command line: draw, print and list schedules.

``cyclr`` with no arguments draws the gallery of every schedule family (the seed's default
cyclical schedule first) into ``cyclr-gallery.png`` and prints a summary table.

A SPEC is a config file (.json/.yaml), inline JSON (``'{"name": "cosine", ...}'``) or the short
form ``name:key=value,...`` (``triangular:base_lr=1e-4,max_lr=0.01,step_size=200``). Specs are
parsed as data; nothing is evaluated.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from .finder._core import REPEATS

try:
    import click
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover - exercised by the friendly error below
    click = None  # type: ignore[assignment]


def _missing_cli() -> None:
    sys.stderr.write(
        "The cyclr command line needs its extra dependencies (click, rich, matplotlib).\n"
        "Install them with: pip install 'cyclr[cli]'\n"
    )
    raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``cyclr`` command."""
    if click is None:
        _missing_cli()
    cli.main(args=list(argv) if argv is not None else None, prog_name="cyclr")


def _console() -> Console:
    """Rich console; wide enough for the tables when output is not a terminal."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _parse_momentum(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(x) for x in value.split(","))
    except ValueError as err:
        raise click.BadParameter(f"expected LOW,HIGH such as 0.85,0.95; got {value!r}") from err
    if not 0.0 <= low <= high < 1.0:
        raise click.BadParameter(f"momentum needs 0 <= LOW <= HIGH < 1; got {value!r}")
    return (low, high)


def _load(specs: Sequence[str]) -> list[Any]:
    from .schedules import load_config

    out = []
    for spec in specs:
        try:
            out.append(load_config(spec))
        except (ValueError, TypeError, FileNotFoundError) as err:
            raise click.BadParameter(str(err), param_hint=f"SPEC {spec!r}") from err
    return out


if click is not None:

    class UserError(click.ClickException):
        """A problem with what the user asked for or supplied: ``Error: ...``, exit status 2."""

        exit_code = 2

    class _Cli(click.Group):
        """The ``cyclr`` group: errors a user can cause and fix (bad input, missing or corrupt
        data, an unwritable path, a store that is not cyclr's) end with one clear line and exit
        status 2, not a traceback. ``CYCLR_DEBUG=1`` shows the traceback as well."""

        def invoke(self, ctx: click.Context) -> Any:
            from .data import DataError

            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise
            except (DataError, ValueError, TypeError, OSError, sqlite3.Error) as err:
                if os.environ.get("CYCLR_DEBUG") == "1":
                    raise
                raise UserError(_describe(err)) from err

    def _describe(err: BaseException) -> str:
        if isinstance(err, OSError) and err.filename is not None:
            return f"cannot use {err.filename!r}: {err.strerror or err}"
        if isinstance(err, sqlite3.Error):
            return f"the run store could not be read ({type(err).__name__}: {err})"
        return str(err)

    def _output_path(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        """An output file or folder option: not empty, and its folder must exist."""
        if value is None:
            return None
        if not value.strip():
            raise click.BadParameter("must name a file or folder, not an empty string")
        parent = os.path.dirname(os.path.abspath(value))
        if not os.path.isdir(parent):
            raise click.BadParameter(f"its folder {parent!r} does not exist")
        return value

    def _positive_lr(ctx: click.Context, param: click.Parameter, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise click.BadParameter(f"must be a finite learning rate > 0; got {value!r}")
        return value

    def _engine_options(default_storage: str, default_study: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``--workers``, ``--storage`` and ``--study``, as ``cyclr bench`` and ``cyclr tune`` share them."""

        def apply(f: Callable[..., Any]) -> Callable[..., Any]:
            f = click.option("--study", default=None, help=f"The study's name [default: {default_study}].")(f)
            f = click.option(
                "--storage",
                default=None,
                help="Keep the runs as trials of an Optuna study: sqlite:///file.db (one process), "
                "journal:///file.log (processes on one host) or postgresql://user@host/db (many machines) "
                f"[default: {default_storage}].",
            )(f)
            return click.option(
                "--workers",
                type=click.IntRange(min=0),
                default=1,
                show_default=True,
                help="Local worker processes (with --storage, 0 leaves the runs to `cyclr worker`s started elsewhere).",
            )(f)

        return apply

    @click.group(cls=_Cli, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="cyclr")
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        """cyclr: cyclical learning rates for PyTorch, Keras 3 and JAX.

        With no command, draws every schedule family into cyclr-gallery.png and prints a
        summary table (same as `cyclr gallery`).
        """
        if ctx.invoked_subcommand is None:
            ctx.invoke(gallery)

    @cli.command()
    @click.option(
        "-o",
        "--output",
        default="cyclr-gallery.png",
        show_default=True,
        callback=_output_path,
        help="PNG file to write.",
    )
    def gallery(output: str) -> None:
        """Draw every schedule family (the seed's default first) and print a summary table."""
        from .plot import gallery_entries, plot_gallery, summarize

        console = _console()
        entries = gallery_entries()
        with console.status("drawing the gallery..."):
            plot_gallery(output, entries)
        table = Table(title="cyclr schedule families", title_justify="left", header_style="bold")
        for col in ("panel", "schedule", "steps", "first", "peak (step)", "min", "last", "mean", "cycles"):
            table.add_column(col, justify="right" if col not in ("panel", "schedule") else "left", no_wrap=True)
        for e in entries:
            r = summarize(e.schedule, e.steps, e.momentum)
            table.add_row(
                e.title,
                r["name"],
                str(r["steps"]),
                _fmt(r["first"]),
                f"{_fmt(r['peak'])} ({r['peak_step']})",
                _fmt(r["min"]),
                _fmt(r["last"]),
                _fmt(r["mean"]),
                str(r["cycles"]),
            )
        console.print(table)
        console.print(f"[green]wrote[/green] {output}")

    @cli.command()
    @click.argument("specs", nargs=-1, required=True)
    @click.option("--steps", type=click.IntRange(min=2), default=None, help="Steps to draw [default: to the end].")
    @click.option("--momentum", is_flag=True, help="Also draw the mirrored momentum (0.85-0.95).")
    @click.option("--momentum-range", default=None, metavar="LOW,HIGH", help="Momentum bounds [default: 0.85,0.95].")
    @click.option("--log", is_flag=True, help="Logarithmic learning-rate axis.")
    @click.option("--title", default=None, help="Figure title.")
    @click.option(
        "-o",
        "--output",
        default="cyclr-schedule.png",
        show_default=True,
        callback=_output_path,
        help="PNG file to write.",
    )
    def plot(
        specs: tuple[str, ...],
        steps: int | None,
        momentum: bool,
        momentum_range: str | None,
        log: bool,
        title: str | None,
        output: str,
    ) -> None:
        """Draw one or several schedules on shared axes (cycle boundaries marked).

        Example: cyclr plot 'one_cycle:max_lr=0.1,total_steps=1000' --momentum -o oc.png
        """
        from .plot import plot_schedules

        schedules = _load(specs)
        mom = _parse_momentum(momentum_range) or ((0.85, 0.95) if momentum else None)
        plot_schedules(schedules, steps, output, momentum=mom, log=log, title=title)
        _console().print(f"[green]wrote[/green] {output}")

    @cli.command()
    @click.argument("spec")
    @click.option("--steps", type=click.IntRange(min=1), default=None, help="Steps to print [default: to the end].")
    @click.option(
        "--every",
        type=click.IntRange(min=1),
        default=None,
        help="Print every k-th step [default: every step for csv/json; about 40 rows, and the last, for the table].",
    )
    @click.option("--momentum-range", default=None, metavar="LOW,HIGH", help="Also print mirrored momentum.")
    @click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
    def show(spec: str, steps: int | None, every: int | None, momentum_range: str | None, fmt: str) -> None:
        """Print a schedule's values step by step (and its config).

        csv and json exports hold every step (unless --every says otherwise), computed and written
        in chunks, so a long export needs no more memory than a short one.
        """
        import numpy as np

        from .plot import default_steps

        (schedule,) = _load([spec])
        steps = steps or default_steps([schedule], fallback=100)
        mom = _parse_momentum(momentum_range)
        momentum = schedule.mirror(*mom) if mom else None
        if fmt in ("csv", "json"):
            _export(schedule, momentum, steps, every or 1, fmt)
            return
        every = every or max(1, steps // 40)
        t = np.arange(0, steps, every)
        if t[-1] != steps - 1:  # the table always ends at the last step
            t = np.append(t, steps - 1)
        lr = np.asarray(schedule(t))
        m = np.asarray(momentum(t)) if momentum is not None else None
        console = _console()
        console.print(json.dumps(schedule.to_config()), highlight=False, soft_wrap=True)
        table = Table(header_style="bold")
        table.add_column("step", justify="right")
        table.add_column("lr", justify="right")
        if m is not None:
            table.add_column("momentum", justify="right")
        for i, (a, b) in enumerate(zip(t, lr)):
            table.add_row(str(a), f"{b:.6g}", *([f"{m[i]:.4f}"] if m is not None else []))
        console.print(table)

    def _export(schedule: Any, momentum: Any, steps: int, every: int, fmt: str) -> None:
        """Write ``step, lr[, momentum]`` for steps ``0, every, 2 every, ... < steps`` as CSV or
        JSON, a chunk of steps at a time."""
        import numpy as np

        chunk = 65_536 * every
        if fmt == "json":
            click.echo('{"config": ' + json.dumps(schedule.to_config()) + ', "values": [', nl=False)
        else:
            click.echo("step,lr" + (",momentum" if momentum is not None else ""))
        first = True
        for begin in range(0, steps, chunk):
            t = np.arange(begin, min(begin + chunk, steps), every)
            lr = np.asarray(schedule(t)).tolist()
            m = np.asarray(momentum(t)).tolist() if momentum is not None else None
            lines = []
            for i, step in enumerate(t.tolist()):
                if fmt == "json":
                    row: dict[str, Any] = {"step": step, "lr": lr[i]}
                    if m is not None:
                        row["momentum"] = m[i]
                    lines.append(("" if first else ",\n") + json.dumps(row))
                    first = False
                else:
                    lines.append(f"{step},{lr[i]!r}" + (f",{m[i]!r}" if m is not None else ""))
            click.echo(("" if fmt == "json" else "\n").join(lines), nl=fmt != "json")
        if fmt == "json":
            click.echo("]}")

    @cli.command()
    @click.option(
        "--task",
        default="digits",
        show_default=True,
        help="A benchmark task (see `cyclr bench --list`), or your own as path/to/file.py:Class or module:Class.",
    )
    @click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where the data sets are.")
    @click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True)
    @click.option("--num-steps", type=click.IntRange(min=6), default=100, show_default=True)
    @click.option("--start-lr", type=float, default=1e-7, show_default=True, callback=_positive_lr)
    @click.option("--end-lr", type=float, default=10.0, show_default=True, callback=_positive_lr)
    @click.option(
        "--repeats",
        type=click.IntRange(min=1),
        default=REPEATS,
        show_default=True,
        help="Sweeps, each on other batches; each rule's LR is their median, and sweeps over 10x apart give no LR.",
    )
    @click.option("--epochs", type=click.IntRange(min=1), default=None, help="Run length the proposed schedule covers.")
    @click.option(
        "--kind", type=click.Choice(["one_cycle", "triangular", "triangular2"]), default="one_cycle", show_default=True
    )
    @click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
    @click.option(
        "-o",
        "--output",
        default="cyclr-range-test.png",
        show_default=True,
        callback=_output_path,
        help="Plot of the curve.",
    )
    @click.option(
        "--json",
        "json_path",
        default=None,
        callback=_output_path,
        help="Also write the result (and the schedule) as JSON.",
    )
    def find(
        task: str,
        data_dir: str | None,
        optimizer: str,
        num_steps: int,
        start_lr: float,
        end_lr: float,
        repeats: int,
        epochs: int | None,
        kind: str,
        seed: int,
        output: str,
        json_path: str | None,
    ) -> None:
        """Run the LR range test on a task and propose a complete schedule.

        Prints the suggestions (steepest, valley, minimum, Smith's bounds), the proposed
        schedule as a config, and draws the curve.
        """
        from .bench import get_task
        from .bench.harness import runner_for
        from .finder import NoDescentError
        from .finder._plot import used_rule

        if not start_lr < end_lr:
            raise click.BadParameter(f"must be above --start-lr ({start_lr:g}); got {end_lr:g}", param_hint="--end-lr")
        try:
            the_task = get_task(task)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--task") from err
        console = _console()
        with console.status(f"loading {task}..."):
            data = the_task.dataset(data_dir)
        # the sweep settings the user gave; the rest are the task's own (an RL task sweeps its range)
        ctx = click.get_current_context()
        given = {
            name: value
            for name, value in (
                ("start_lr", start_lr),
                ("end_lr", end_lr),
                ("num_steps", num_steps),
            )
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        }
        given["repeats"] = repeats
        result = runner_for(the_task).range_test(the_task, data, optimizer, seed, progress=True, **given)
        result.plot(output, title=f"LR range test: {task}, {optimizer}")
        epochs = epochs or the_task.epochs
        table = Table(
            title=f"{task}: {result.steps} steps, {result.seconds:.1f} s ({result.stop_reason})", header_style="bold"
        )
        table.add_column("rule")
        table.add_column("learning rate", justify="right")
        if repeats > 1:
            table.add_column(f"spread over {repeats} sweeps", justify="right")
        try:
            spread = result.spread if repeats > 1 else {}
            for rule, value in result.suggestions.items():
                extra = [f"{spread[rule][0]:.3g} .. {spread[rule][2]:.3g}"] if spread else []
                table.add_row(rule, f"{value:.3g}", *extra)
        except NoDescentError as err:
            console.print(table)
            console.print(f"[red]no suggestion:[/red] {err}")
            console.print(f"[green]wrote[/green] {output}")
            raise SystemExit(1) from err
        console.print(table)
        per_epoch = the_task.steps_per_epoch(data)
        cost = f"{result.steps / per_epoch:.2f} epochs" if per_epoch else "n/a"
        console.print(f"range test: {result.steps} steps ({cost} of {per_epoch} steps), {result.seconds:.1f} s")
        confidence = result.confidence
        colour = {"low": "red", "high": "green"}.get(confidence["level"], "yellow")
        console.print(f"confidence: [{colour}]{confidence['level']}[/{colour}] ({confidence['reason']})")
        try:
            console.print(f"schedule() uses max_lr = {result.suggestion:.3g} ({used_rule(result)})")
        except NoDescentError as err:  # NoSafeLRError: the sweeps disagree, so no LR is proposed
            console.print(f"[red]no LR proposed:[/red] {err}")
            if json_path:
                Path(json_path).write_text(json.dumps(result.to_config(), indent=2))
            console.print(f"[green]wrote[/green] {output}" + (f" and {json_path}" if json_path else ""))
            raise SystemExit(1) from err
        schedule = result.schedule(kind, steps_per_epoch=per_epoch, epochs=epochs)
        config = {"lr": schedule.to_config(), "momentum": list(result.momentum), "epochs": epochs}
        console.print_json(json.dumps(config))
        if json_path:
            Path(json_path).write_text(json.dumps({**result.to_config(), "proposed": config}, indent=2))
        console.print(f"[green]wrote[/green] {output}" + (f" and {json_path}" if json_path else ""))

    @cli.command()
    @click.option(
        "--task",
        "tasks",
        default="digits",
        show_default=True,
        help="Tasks, comma-separated: names, or your own as path/to/file.py:Class or module:Class.",
    )
    @click.option(
        "--strategies",
        default=None,
        help="Strategies, comma-separated, or 'all', or your own as file.py:name [default: each task's own set].",
    )
    @click.option(
        "--optimizers", default=None, help="sgd (momentum 0.9) and/or adam (AdamW) [default: each task's own]."
    )
    @click.option(
        "--seeds", type=click.IntRange(min=1), default=None, help="Seeds per strategy [default: each task's own]."
    )
    @click.option("--epochs", type=click.IntRange(min=1), default=None, help="Budget [default: each task's own].")
    @_engine_options("runs.sqlite in --out", "cyclr-bench")
    @click.option(
        "--out", default="cyclr-bench", show_default=True, type=click.Path(file_okay=False), callback=_output_path
    )
    @click.option("--resume", is_flag=True, help="Keep the finished runs in --out and run only the rest.")
    @click.option("--train-subset", type=click.IntRange(min=1), default=None, help="Use only N training examples.")
    @click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where the data sets are.")
    @click.option("--report-only", is_flag=True, help="Rewrite the report from the runs stored in --out.")
    @click.option(
        "--readme",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        help="With --report-only: write the overview into this file's marked block.",
    )
    @click.option("--list", "list_only", is_flag=True, help="List the tasks and strategies, then exit.")
    def bench(
        tasks: str,
        strategies: str | None,
        optimizers: str | None,
        seeds: int | None,
        epochs: int | None,
        workers: int,
        storage: str | None,
        study: str | None,
        out: str,
        resume: bool,
        train_subset: int | None,
        data_dir: str | None,
        report_only: bool,
        readme: str | None,
        list_only: bool,
    ) -> None:
        """Measure schedules against each other on real tasks: the seed's claims, checked.

        With no options: every strategy with SGD and AdamW, 3 seeds, on the bundled 8x8 digits
        (no download, about 1.5 minutes on 2 cores). Every finished run is stored in --out at once
        (runs.sqlite), or with --storage in an Optuna study that workers on other machines can
        share (`cyclr worker`); --resume continues an interrupted bench. The report (report.md,
        report.html with plots, report.json) is written to --out.
        """
        from .bench import TASKS
        from .bench.harness import BenchConfig, run_bench
        from .bench.strategies import STRATEGIES

        console = _console()
        if list_only:
            _print_catalogue(console, TASKS, STRATEGIES)
            return
        try:
            config = BenchConfig(
                tasks=[t.strip() for t in tasks.split(",")],
                strategies=_names(strategies, STRATEGIES),
                optimizers=_names(optimizers, None),
                seeds=seeds,
                epochs=epochs,
                workers=workers,
                out=Path(out),
                resume=resume or report_only,
                train_subset=train_subset,
                data_dir=data_dir,
                storage=storage,
                study=study,
            )
        except ValueError as err:
            raise click.UsageError(str(err)) from err
        if readme and not report_only:
            raise click.UsageError("--readme goes with --report-only (it rewrites a README from stored runs).")
        if report_only:
            _report_only(console, config, readme)
            return
        _run_with_progress(console, config, run_bench)

    def _heartbeat(value: str | None) -> tuple[int, int]:
        from .bench.storage import HEARTBEAT

        if value is None:
            return HEARTBEAT
        try:
            interval, grace = (int(x) for x in value.split(","))
        except ValueError:
            raise click.BadParameter(f"expected INTERVAL,GRACE in whole seconds such as 10,60; got {value!r}") from None
        if not 0 < interval < grace:
            raise click.BadParameter(f"needs 0 < INTERVAL < GRACE; got {value!r}")
        return (interval, grace)

    _HEARTBEAT_HELP = (
        "Heartbeat INTERVAL,GRACE in seconds: a run without a beat for GRACE seconds (a killed worker) "
        "is failed and retried [default: 10,60]."
    )

    @cli.command()
    @click.option("--task", default="digits", show_default=True, help="A task name, or your own file.py:Class.")
    @click.option("--trials", type=click.IntRange(min=1), default=30, show_default=True, help="The search's budget.")
    @_engine_options("tune.db, SQLite, in --out", "cyclr-tune-TASK")
    @click.option(
        "--out", default="cyclr-tune", show_default=True, type=click.Path(file_okay=False), callback=_output_path
    )
    @click.option(
        "--space", type=click.Path(dir_okay=False, exists=True), default=None, help="Search space (YAML/JSON)."
    )
    @click.option("--sampler", type=click.Choice(["tpe", "random", "grid"]), default="tpe", show_default=True)
    @click.option(
        "--pruner", type=click.Choice(["asha", "hyperband", "median", "none"]), default="asha", show_default=True
    )
    @click.option(
        "--optimizers", default=None, help="Search over these optimizers too (sgd,adam) [default: the task's first]."
    )
    @click.option("--epochs", type=click.IntRange(min=1), default=None, help="Budget per trial [default: the task's].")
    @click.option(
        "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="The seed every trial trains with."
    )
    @click.option("--train-subset", type=click.IntRange(min=1), default=None, help="Use only N training examples.")
    @click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where the data sets are.")
    @click.option(
        "--no-baselines", is_flag=True, help="Skip the bench's baselines (best constant, auto) in the report."
    )
    @click.option(
        "--grid-points",
        type=click.IntRange(min=2),
        default=3,
        show_default=True,
        help="Points per parameter for --sampler grid.",
    )
    @click.option("--heartbeat", default=None, help=_HEARTBEAT_HELP)
    @click.option("--report-only", is_flag=True, help="Rewrite the report from the study.")
    def tune(
        task: str,
        trials: int,
        storage: str | None,
        study: str | None,
        workers: int,
        out: str,
        space: str | None,
        sampler: str,
        pruner: str,
        optimizers: str | None,
        epochs: int | None,
        seed: int,
        train_subset: int | None,
        data_dir: str | None,
        no_baselines: bool,
        grid_points: int,
        heartbeat: str | None,
        report_only: bool,
    ) -> None:
        """Search a task's schedule with Optuna: the family first (cyclic, one-cycle, SGDR,
        cosine), then its parameters and a warm-up, pruning poor trials early.

        Writes best.json (the best schedule, for cyclr.load_config) and a report (report.md,
        report.html, report.json) to --out. Other machines join with `cyclr worker --storage URL
        --study NAME`.
        """
        from .bench.tune import TuneConfig, run_tune, write_tune_report

        console = _console()
        try:
            config = TuneConfig(
                task=task,
                trials=trials,
                storage=storage,
                study=study,
                workers=workers,
                out=Path(out),
                space=space,
                sampler=sampler,
                pruner=pruner,
                optimizers=_names(optimizers, None),
                epochs=epochs,
                seed=seed,
                train_subset=train_subset,
                data_dir=data_dir,
                baselines=not no_baselines,
                grid_points=grid_points,
                heartbeat=_heartbeat(heartbeat),
            )
        except ValueError as err:
            raise click.UsageError(str(err)) from err
        if report_only:
            from .bench.storage import OptunaStore

            assert config.storage is not None and config.study is not None
            with OptunaStore(config.storage, config.study, create=False) as store:
                outcome = write_tune_report(store, config.out)
        else:
            outcome = _tune_with_progress(console, config, run_tune)
        if outcome.best is None:
            raise UserError(f"no trial of study {config.study!r} completed: no best schedule to report.")
        best = outcome.best
        console.print(
            f"best: trial {best['trial']}, {best['metric']} {best['value']:.4g} ({best['optimizer']}); "
            f"{outcome.trials} trials ({outcome.pruned} pruned, {outcome.failed} failed), {outcome.steps:,} steps"
        )
        console.print_json(json.dumps(best["schedule"]))
        console.print(f"use it with: {best['load']}")
        console.print(
            f"[green]wrote[/green] {config.out / 'best.json'}, {config.out / 'report.md'} "
            f"and {config.out / 'report.html'}"
        )

    def _tune_with_progress(console: Console, config: Any, run_tune: Any) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        bar: Any = None
        best: float | None = None

        def listener(event: str, payload: Any) -> None:
            nonlocal bar, best
            if event == "plan":
                console.print(
                    f"{payload['trials']} trials of {payload['task']} "
                    f"({payload['sampler']}, pruner {payload['pruner']}); "
                    f"study {config.study!r} in {config.storage}"
                )
                bar = progress.add_task("trials", total=payload["trials"])
            elif event == "done" and bar is not None:
                progress.advance(bar)
                res = payload.get("result") or {}
                metrics = res.get("metrics") or []
                final = metrics[-1] if metrics else float("nan")
                state = "pruned" if res.get("pruned") else payload["status"]
                if state == "done" and math.isfinite(final):
                    higher = payload.get("higher_is_better", True)
                    best = final if best is None or (final > best if higher else final < best) else best
                progress.update(bar, description=f"trials (best {best:.4g})" if best is not None else "trials")
                progress.console.print(
                    f"trial {payload.get('trial', '?')}: {state}, {payload.get('metric', 'metric')} {final:.4g} "
                    f"after {res.get('steps', 0)} steps ({payload.get('wall_seconds', 0):.1f} s)"
                )

        try:
            with progress:
                return run_tune(config, listener)
        except KeyboardInterrupt:
            console.print(
                f"[yellow]interrupted[/yellow]: finished trials are kept in study {config.study!r}; "
                "run the same command to go on."
            )
            raise SystemExit(130) from None

    @cli.command()
    @click.option("--storage", required=True, help="The study's storage URL (journal:///..., postgresql://...).")
    @click.option("--study", required=True, help="The study's name (as given to cyclr bench or cyclr tune).")
    @click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where the data sets are.")
    @click.option("--max-runs", type=click.IntRange(min=1), default=None, help="Stop after N runs.")
    @click.option(
        "--wait",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Seconds to wait for the study to appear and for runs to be queued when it has none.",
    )
    @click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads for this worker.")
    @click.option("--heartbeat", default=None, help=_HEARTBEAT_HELP)
    def worker(
        storage: str,
        study: str,
        data_dir: str | None,
        max_runs: int | None,
        wait: float,
        threads: int | None,
        heartbeat: str | None,
    ) -> None:
        """Pull runs from a bench's or a search's study and run them until it is done. Start one
        on each machine that reaches the storage; a killed worker's run is retried elsewhere."""
        from .bench.worker import run_worker

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        console = _console()

        def listener(event: str, payload: Any) -> None:
            if event == "idle":
                console.print(f"waiting for runs in study {payload!r}")
            elif event == "start":
                console.print(f"run {payload.key}")
            elif event == "done":
                res = payload.get("result") or {}
                metrics = res.get("metrics") or []
                final = metrics[-1] if metrics else float("nan")
                state = "pruned" if res.get("pruned") else payload["status"]
                console.print(
                    f"  {state}: {payload.get('metric', 'metric')} {final:.4g} ({payload.get('wall_seconds', 0):.1f} s)"
                )

        try:
            stats = run_worker(
                storage,
                study,
                data_dir=data_dir,
                heartbeat=_heartbeat(heartbeat),
                max_runs=max_runs,
                wait=wait,
                listener=listener,
            )
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]: the run in progress went back to the queue.")
            raise SystemExit(130) from None
        console.print(
            f"worker done: {stats.done} runs finished, {stats.pruned} pruned, {stats.failed} failed"
            + (f", {stats.duplicates} duplicates skipped" if stats.duplicates else "")
        )

    @cli.command(name="list")
    def list_schedules() -> None:
        """List every schedule with its parameters and defaults."""
        from .schedules import REGISTRY

        table = Table(title="cyclr schedules", title_justify="left", header_style="bold")
        table.add_column("name")
        table.add_column("parameters (defaults)")
        table.add_column("summary")
        for name in sorted(REGISTRY):
            cls = REGISTRY[name]
            params = ", ".join(
                f.name if f.default is MISSING else f"{f.name}={f.default!r}"
                for f in fields(cls)  # type: ignore[arg-type]
            )
            doc = _plain((cls.__doc__ or "").strip().splitlines()[0])
            table.add_row(name, params, doc)
        _console().print(table)

    def _plain(text: str) -> str:
        """A docstring line without its reStructuredText markup, for a terminal."""
        import re

        text = re.sub(r"`([^`<]+?)\s*<[^>]+>`_+", r"\1", text)  # `arXiv:1506.01186 <https://...>`_
        text = re.sub(r":[a-z]+:`([^`]+)`", r"\1", text)  # :math:`x`, :func:`f`
        return re.sub(r"`{1,2}([^`]+)`{1,2}", r"\1", text)  # ``code`` and `text`

    def _names(value: str | None, everything: Any) -> list[str] | None:
        """A comma-separated option as a list (``None``: the tasks' defaults; 'all': every one)."""
        if value is None:
            return None
        if value == "all" and everything is not None:
            return list(everything)
        return [x.strip() for x in value.split(",") if x.strip()]

    def _print_catalogue(console: Console, tasks: Any, strategies: Any) -> None:
        table = Table(title="tasks", title_justify="left", header_style="bold")
        for col in ("domain", "name", "metric", "target", "budget", "defaults", "description"):
            table.add_column(col)
        from .bench.report import DOMAINS

        def order(name: str) -> tuple[int, str]:
            domain = tasks[name].domain
            return (DOMAINS.index(domain) if domain in DOMAINS else 99, name)

        for name in sorted(tasks, key=order):
            t = tasks[name]
            direction = "higher" if t.higher_is_better else "lower"
            n_default = sum(1 for x in dict.fromkeys(strategies.values()) if x.default)
            strategies_ = f"{n_default if t.strategies is None else len(t.strategies)} strategies"
            table.add_row(
                t.domain,
                name + ("" if t.runner == "torch" else f" ({t.runner})"),
                f"{t.metric} ({direction} is better)",
                f"{t.target:g}",
                f"{t.epochs} epochs",
                f"{'+'.join(t.optimizers)}, {strategies_}, {t.seeds} seeds",
                t.description,
            )
        console.print(table)
        table = Table(title="strategies", title_justify="left", header_style="bold")
        table.add_column("name")
        table.add_column("family")
        table.add_column("runs on")
        table.add_column("by default")
        table.add_column("what it does")
        for s in dict.fromkeys(strategies.values()):
            table.add_row(s.name, s.family, ", ".join(s.runners), "yes" if s.default else "when named", s.description)
        console.print(table)

    def _open_runs(config: Any) -> Any:
        """The bench's stored runs: runs.sqlite in --out, or the study in --storage."""
        from .bench.store import Store

        if config.storage is None:
            return Store(config.out)
        from .bench.storage import OptunaStore

        return OptunaStore(config.storage, config.study, create=False)

    def _summary(console: Console, config: Any) -> None:
        """The report's terminal text: compact tables within 100 columns, and what to use."""
        from .bench.harness import load_records
        from .bench.report import aggregate, terminal_report

        with _open_runs(config) as store:
            tables = aggregate(load_records(store), store.meta("plan"))
        console.print(terminal_report(tables, width=min(console.width, 100)), markup=False, highlight=False)

    def _report_only(console: Console, config: Any, readme: str | None = None) -> None:
        from .bench.harness import load_records
        from .bench.report import aggregate, update_readme, write_report
        from .bench.report_plots import plot_tables
        from .bench.store import OutLock, Store

        if config.storage is None and not (config.out / Store.FILENAME).exists():
            raise click.UsageError(f"no runs in {config.out} (expected {config.out / Store.FILENAME}).")
        with OutLock(config.out), _open_runs(config) as store:
            records = load_records(store, None)
            plan, settings = store.meta("plan"), store.meta("config", {})
            if write_report(records, plan, settings, config.out, plot_tables) is None:
                where = config.out / Store.FILENAME if config.storage is None else f"study {config.study!r}"
                raise UserError(f"no finished run in {where}: no report to write.")
            if readme:
                commands = store.meta("commands", [])
                tables = aggregate(records, plan)
                try:
                    update_readme(readme, tables, "\n".join(commands) or f"cyclr bench --out {config.out}")
                except ValueError as err:
                    raise click.UsageError(str(err)) from err
                console.print(f"[green]updated[/green] the overview in {readme}")
        _summary(console, config)
        console.print(f"[green]wrote[/green] {config.out / 'report.md'} and {config.out / 'report.html'}")

    def _run_with_progress(console: Console, config: Any, run_bench: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        bar: Any = None

        def listener(event: str, payload: Any) -> None:
            nonlocal bar
            if event == "plan":
                todo, skipped = payload
                note = f" ({skipped} already done)" if skipped else ""
                where = config.out / "runs.sqlite" if config.storage is None else f"study {config.study!r}"
                console.print(f"{len(todo)} runs to go{note}; results go to {where} as they finish")
                bar = progress.add_task("runs", total=len(todo))
            elif event == "start":
                progress.update(
                    bar, description=f"{payload.task} {payload.optimizer} {payload.variant} s{payload.seed}"
                )
            elif event == "done":
                progress.advance(bar)
                if payload["status"] != "done":
                    progress.console.print(f"[red]failed[/red] {payload['key']}: {payload['error']}")
                    return
                res = payload["result"]
                final = res["metrics"][-1] if res["metrics"] else float("nan")
                hit = res["steps_to_target"]
                reach = f"target at step {hit}" if hit is not None else "target not reached"
                progress.console.print(
                    f"[green]✓[/green] {payload['task']} {payload['optimizer']} {payload['variant']} "
                    f"seed {payload['seed']}: "
                    f"{payload['metric']} {final:.4f}, {reach} ({payload['wall_seconds']:.1f} s)"
                )

        try:
            with progress:
                outcome = run_bench(config, listener)
        except KeyboardInterrupt:
            console.print(
                f"[yellow]interrupted[/yellow]: finished runs are kept in {config.out / 'runs.sqlite'}; "
                "run the same command with --resume to go on."
            )
            raise SystemExit(130) from None
        if outcome.report is None:
            what = f"all {outcome.failed} runs failed" if outcome.failed else "no run finished"
            console.print(f"[red]{what}[/red]: no report written (the errors are above; --resume reruns them).")
            raise SystemExit(1)
        _summary(console, config)
        console.print(f"[green]wrote[/green] {config.out / 'report.md'} and {config.out / 'report.html'}")
        if outcome.failed:
            console.print(
                f"[red]{outcome.failed} run(s) failed[/red]; run the same command with --resume to retry them."
            )
            raise SystemExit(1)

else:  # pragma: no cover
    cli = None


if __name__ == "__main__":  # pragma: no cover
    main()
