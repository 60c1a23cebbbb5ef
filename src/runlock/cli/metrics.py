"""``runlock metrics RUN`` (keys, or every point as CSV) and ``runlock plot RUN... -o PNG``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from runlock.cli import common
from runlock.cli.service import service
from runlock.errors import InvalidInput
from runlock.tracking import plot as plots
from runlock.tracking import series

KEY_OPTION = typer.Option(None, "--key", "-k", help="Metric key (repeat for several).")
RANK_HELP = "Only points logged by this rank (default: every rank)."


def metrics(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    keys: list[str] = KEY_OPTION,
    rank: int = typer.Option(None, "--rank", help=RANK_HELP),
    as_csv: bool = typer.Option(False, "--csv", help="Print every point as CSV: step,value,key,rank,time."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the CSV to this file instead of stdout."),
    force: bool = common.FORCE_OPTION,
    as_json: bool = common.JSON_OPTION,
) -> None:
    """A run's metrics: one line per key, or every point with --csv."""
    common.output_file(output, force)
    if not as_csv and output is not None:
        raise InvalidInput("--output goes with --csv.")
    svc = service(ctx)
    if not as_csv:
        found = [s for s in svc.metric_summaries(run, rank=rank) if not keys or s.key in keys]
        common.emit(found, as_json, lambda ss: common.console.print(common.table(
            None, ["key", "points", "steps", "first step", "last step", "last", "min", "max"],
            [(s.key, s.points, s.steps, s.first_step, s.last_step, *map(_num, (s.latest, s.min, s.max)))
             for s in ss])))
        return
    stream = svc.metric_points(run, keys=keys or None, rank=rank)
    if output is None:
        series.write_csv(stream, sys.stdout)
        return
    with common.open_output(output, force) as f:
        n = series.write_csv(stream, f)
    common.err_console.print(f"wrote {n} rows to {output}")


def plot(
    ctx: typer.Context,
    runs: list[str] = typer.Argument(..., help="One or more runs."),
    keys: list[str] = KEY_OPTION,
    output: Path = typer.Option(..., "--output", "-o", help="PNG file to write."),
    force: bool = common.FORCE_OPTION,
    rank: int = typer.Option(0, "--rank", help="Rank whose points to draw."),
    title: str = typer.Option(None, "--title", help="Title above the panels."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Plot metric curves of several runs into a PNG: one panel per --key, one line per run."""
    common.output_file(output, force)
    result = plots.plot_metrics(service(ctx), runs, keys or [], output, rank=rank, title=title)
    for warning in result.warnings:
        common.err_console.print(common.styled(f"warning: {warning}", "yellow"))
    common.emit(result, as_json, lambda r: common.console.print(
        f"wrote {r.path} ({sum(1 for c in r.curves if c.points)} curves)", highlight=False, markup=False))


def _num(value: object) -> str:
    return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
