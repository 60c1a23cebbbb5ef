"""``runlock repro``: bring a runlock.yaml pipeline up to date.

Kept apart from ``cli/pipeline.py`` and free of rich (its lines are plain text on stderr), so that
a ``repro`` with nothing to do starts fast (bench/bench_pipeline.py): it loads the scheduler, the
stage state and the digests, not the verify tiers, the run machinery or the table printer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from runlock import pipeline as pl
from runlock.cli import plain
from runlock.errors import InvalidInput

DIR = typer.Option(None, "--dir", "-C", help="The pipeline's folder (default: the nearest folder holding "
                                             "runlock.yaml, from here up).")
STAGES = typer.Argument(None, help="Stages (default: all).")
JOBS = typer.Option(1, "--jobs", "-j", help="Run up to N independent stages at once.")

_WORD = {"cached": "cache hit", "not-run": "not run", "would-run": "would run", "would-restore": "would restore"}


def find(folder: str | None) -> pl.Pipeline:
    """The pipeline in ``folder``, or in the nearest folder holding runlock.yaml from here up."""
    if folder is not None:
        return pl.load(folder)
    here = Path.cwd()
    for d in (here, *here.parents):
        if (d / "runlock.yaml").is_file():
            return pl.load(d)
    raise InvalidInput("No runlock.yaml here or in any folder above.",
                       hint="Run from the pipeline's folder, or pass --dir.")


def stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def say(line: str) -> None:
    typer.echo(line, err=True)


def event(o: pl.StageOutcome) -> None:
    extra = f" restored {', '.join(o.restored)}" if o.restored else ""
    run = f" run:{o.run_id}" if o.run_id else ""
    say(f"{o.stage}: {_WORD.get(o.action, o.action)}{run}{extra}" + (f" — {o.error}" if o.error else ""))


def run(ctx: typer.Context, stages: list[str] | None, folder: str | None, jobs: int, force: bool, dry: bool,
        as_json: bool) -> None:
    pipe = find(folder)
    result = pl.repro(plain.store(ctx), pipe, stages or None, jobs=jobs, force=force, dry=dry,
                      stdout=stderr_fd(), on_event=None if as_json or dry else event)
    if as_json:
        plain.print_json(result.to_dict())
    else:
        if dry:
            for o in result.stages:
                event(o)
        counts = ", ".join(f"{result.count(a)} {a}" for a in ("ran", "cached", "failed", "not-run",
                                                            "would-run", "would-restore") if result.count(a))
        say(f"repro {result.repro_id}: {counts}")
    raise typer.Exit(0 if result.ok else 1)


def repro(
    ctx: typer.Context,
    stages: list[str] = STAGES,
    folder: str = DIR,
    jobs: int = JOBS,
    force: bool = typer.Option(False, "--force", help="Run the stages even when the cache holds their result."),
    dry: bool = typer.Option(False, "--dry", help="Say what would run or be restored; change nothing."),
    as_json: bool = plain.JSON_OPTION,
) -> None:
    """Bring a pipeline's stages up to date: run stale ones as recorded runs (in DAG order), restore cached ones.

    STAGES and everything upstream of them (default: every stage). A stage whose inputs (cmd,
    params, seed, every dep by digest, environment) match an earlier finished execution is not
    run: its outs are restored from the store. Exit status 1 if a stage failed."""
    run(ctx, stages, folder, jobs, force, dry, as_json)
