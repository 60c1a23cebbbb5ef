"""``runlock pipeline``: inspect, verify, resume and export a runlock.yaml pipeline (``runlock repro``
itself is in ``cli/repro.py``)."""

from __future__ import annotations

import json
import sys

import typer

from runlock import pipeline as pl
from runlock.cli import common
from runlock.cli import repro as cli_repro
from runlock.errors import InvalidInput

app = typer.Typer(help="Pipelines (runlock.yaml): status, verify, show, resume, export.", no_args_is_help=True)

DIR, STAGES, JOBS = cli_repro.DIR, cli_repro.STAGES, cli_repro.JOBS
_pipeline, _stderr_fd = cli_repro.find, cli_repro.stderr_fd


@app.command("resume")
def resume_cmd(
    ctx: typer.Context,
    folder: str = DIR,
    jobs: int = JOBS,
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Continue after a failed or killed repro: finished stages are cache hits, the rest run."""
    pipe = _pipeline(folder)
    names = pl.reap(common.store(ctx), pipe)
    if names and not as_json:
        common.err_console.print(f"interrupted: {', '.join(names)} (marked failed; rerunning)", highlight=False)
    cli_repro.run(ctx, None, folder, jobs, False, False, as_json)


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
