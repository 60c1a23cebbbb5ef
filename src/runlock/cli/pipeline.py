"""``runlock repro`` and ``runlock pipeline``: run, inspect, verify and export a runlock.yaml pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from runlock import pipeline as pl
from runlock.cli import common
from runlock.errors import InvalidInput

app = typer.Typer(help="Pipelines (runlock.yaml): status, verify, show, resume, export.", no_args_is_help=True)

DIR = typer.Option(None, "--dir", "-C", help="The pipeline's folder (default: the nearest folder holding "
                                             "runlock.yaml, from here up).")
STAGES = typer.Argument(None, help="Stages (default: all).")

_MARK = {"ran": "[green]ran[/]", "cached": "[cyan]cache hit[/]", "failed": "[red]failed[/]", "not-run": "not run",
         "would-run": "[yellow]would run[/]", "would-restore": "[cyan]would restore[/]"}


def _pipeline(folder: str | None) -> pl.Pipeline:
    if folder is not None:
        return pl.load(folder)
    here = Path.cwd()
    for d in (here, *here.parents):
        if (d / "runlock.yaml").is_file():
            return pl.load(d)
    raise InvalidInput("No runlock.yaml here or in any folder above.",
                       hint="Run from the pipeline's folder, or pass --dir.")


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _event(o: pl.StageOutcome) -> None:
    extra = f" restored {', '.join(o.restored)}" if o.restored else ""
    run = f" run:{o.run_id}" if o.run_id else ""
    common.err_console.print(f"{o.stage}: {_MARK.get(o.action, o.action)}{run}{extra}"
                             + (f" — {o.error}" if o.error else ""), highlight=False)


def _repro(ctx: typer.Context, stages: list[str] | None, folder: str | None, jobs: int, force: bool, dry: bool,
           as_json: bool) -> None:
    pipe = _pipeline(folder)
    result = pl.repro(common.store(ctx), pipe, stages or None, jobs=jobs, force=force, dry=dry,
                      stdout=_stderr_fd(), on_event=None if as_json or dry else _event)
    if as_json:
        common.print_json(result.to_dict())
    else:
        if dry:
            for o in result.stages:
                _event(o)
        counts = ", ".join(f"{result.count(a)} {a}" for a in ("ran", "cached", "failed", "not-run",
                                                            "would-run", "would-restore") if result.count(a))
        common.err_console.print(f"repro {result.repro_id}: {counts}", highlight=False)
    raise typer.Exit(0 if result.ok else 1)


def repro(
    ctx: typer.Context,
    stages: list[str] = STAGES,
    folder: str = DIR,
    jobs: int = typer.Option(1, "--jobs", "-j", help="Run up to N independent stages at once."),
    force: bool = typer.Option(False, "--force", help="Run the stages even when the cache holds their result."),
    dry: bool = typer.Option(False, "--dry", help="Say what would run or be restored; change nothing."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Bring a pipeline's stages up to date: run stale ones as recorded runs (in DAG order), restore cached ones.

    STAGES and everything upstream of them (default: every stage). A stage whose inputs (cmd,
    params, seed, every dep by digest, environment) match an earlier finished execution is not
    run: its outs are restored from the store. Exit status 1 if a stage failed."""
    _repro(ctx, stages, folder, jobs, force, dry, as_json)


@app.command("resume")
def resume_cmd(
    ctx: typer.Context,
    folder: str = DIR,
    jobs: int = typer.Option(1, "--jobs", "-j", help="Run up to N independent stages at once."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Continue after a failed or killed repro: finished stages are cache hits, the rest run."""
    pipe = _pipeline(folder)
    names = pl.reap(common.store(ctx), pipe)
    if names and not as_json:
        common.err_console.print(f"interrupted: {', '.join(names)} (marked failed; rerunning)", highlight=False)
    _repro(ctx, None, folder, jobs, False, False, as_json)


def _value(v: object) -> str:
    text = str(v)
    return text[:19] + "…" if text.startswith("sha256:") else text


@app.command("status")
def status_cmd(ctx: typer.Context, stages: list[str] = STAGES, folder: str = DIR,
               as_json: bool = common.JSON_OPTION) -> None:
    """Each stage: up to date, or stale and why (which dep, param, out or environment field, from what to what).

    Exit status 1 if any stage is not up to date."""
    rows = pl.status(common.store(ctx), _pipeline(folder), stages or None)

    def render(rows: list[pl.StageStatus]) -> None:
        colour = {"up-to-date": "green", "stale": "yellow", "never-run": "yellow", "failed": "red"}
        for s in rows:
            note = " (cached: repro restores it)" if s.cached else ""
            common.console.print(f"{s.stage}: [{colour[s.state]}]{s.state}[/]{note}", highlight=False)
            for r in s.reasons:
                if r["what"] == "upstream":
                    line = f"upstream stage {r['name']} is {r['to']}"
                else:
                    line = f"{r['what']} {r['name']} changed: {_value(r['from'])} -> {_value(r['to'])}"
                common.console.print(f"  {line}", highlight=False, markup=False)

    common.emit(rows, as_json, render)
    raise typer.Exit(0 if all(s.state == "up-to-date" for s in rows) else 1)


@app.command("verify")
def verify_cmd(ctx: typer.Context, stages: list[str] = STAGES, folder: str = DIR,
               as_json: bool = common.JSON_OPTION) -> None:
    """Rerun STAGES from their recorded inputs (ignoring the cache, nothing upstream rerun) and compare.

    Each rerun is a new run, compared with the recorded one at the tiers of `runlock compare`.
    Exit status 1 unless every stage is bitwise or within tolerance."""
    results = pl.verify(common.store(ctx), _pipeline(folder), stages or None, stdout=_stderr_fd())

    def render(results: list[pl.StageVerification]) -> None:
        for v in results:
            colour = "green" if v.tier == "bitwise" else "yellow" if v.tier in ("tolerance", "statistical") else "red"
            common.console.print(f"{v.stage}: [{colour}]{v.tier}[/] (recorded run:{v.recorded_run}, "
                                 f"rerun run:{v.rerun})", highlight=False)

    common.emit(results, as_json, render)
    raise typer.Exit(0 if all(v.tier in ("bitwise", "tolerance") for v in results) else 1)


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    folder: str = DIR,
    fmt: str = typer.Option("json", "--format", help="json, dot or png."),
    output: str = typer.Option(None, "--output", "-o", help="Write to FILE (png needs it)."),
    force: bool = common.FORCE_OPTION,
) -> None:
    """The DAG with each stage's status, as JSON, Graphviz DOT or a PNG drawn without Graphviz."""
    if fmt not in ("json", "dot", "png"):
        raise InvalidInput(f"--format {fmt!r} is not one of json, dot, png.")
    out = common.output_file(output, force)
    if fmt == "png" and out is None:
        raise InvalidInput("--format png needs --output FILE.")
    pipe = _pipeline(folder)
    statuses = pl.status(common.store(ctx), pipe)
    if fmt == "png":
        common.write_output(out, pl.to_png(pipe, statuses), force)
        return
    if fmt == "dot":
        text = pl.to_dot(pipe, statuses)
    else:
        text = json.dumps(common.to_jsonable(pl.graph(pipe, statuses)), indent=2, sort_keys=True) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        common.write_output(out, text, force)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    folder: str = DIR,
    output: str = typer.Option(..., "--output", "-o", help="The file to write, e.g. pipeline.lock.json."),
    force: bool = common.FORCE_OPTION,
) -> None:
    """Write each stage's last execution (key, run, params, deps and outs by digest) as JSON, for review."""
    out = common.output_file(output, force)
    common.write_output(out, pl.export(common.store(ctx), _pipeline(folder)), force)
    common.err_console.print(f"wrote {out}", highlight=False)
