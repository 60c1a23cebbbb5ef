"""``runlock probe -- CMD``: run a program's first steps twice and say what differs."""

from __future__ import annotations

import typer
from rich.markup import escape

from runlock.cli import common
from runlock.probe import ProbeReport, probe_command


def probe(
    command: list[str] = typer.Argument(..., help="The program to probe, after `--`."),
    steps: int = typer.Option(3, "--steps", help="How many steps to run in each attempt."),
    timeout: int = typer.Option(600, "--timeout", help="Seconds each attempt may take."),
    progress: bool = common.PROGRESS_OPTION,
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Run COMMAND's first steps twice from identical state (and once with another hash seed),
    and report the first step, metric or tensor that differs (causes first: a generator created
    without a seed is named with its file and line), the RNG streams each step used, the
    nondeterministic kernels that ran and dataset RNGs duplicated across DataLoader workers.
    A script that logs to a run needs no change (nothing is recorded in the store); other
    programs mark steps with runlock.probe.record_step."""
    wanted = progress if progress is not None else (False if as_json else None)
    with common.progress("probe", wanted) as tick:
        on_progress = (lambda stage, done, total: tick(done, total, description=stage)) if tick else None
        report = probe_command(command, steps, timeout=timeout, on_progress=on_progress)
    common.emit(report, as_json, _render)
    if not report.reproducible:
        raise typer.Exit(1)


def _render(r: ProbeReport) -> None:
    verdict = "[green]reproducible[/]" if r.reproducible else "[red]NOT reproducible[/]"
    common.console.print(f"{r.steps} step(s) probed: {verdict}")
    if r.first_divergence:
        d = r.first_divergence
        common.console.print(common.styled("first divergence: ", "bold"), end="")
        common.console.print(f"step {d.step}, {d.kind} {d.name}: {d.detail}", markup=False, highlight=False)
    if r.divergences:
        common.console.print(common.table("divergences", ["step", "kind", "name", "detail"],
                                          [(d.step, d.kind, d.name, d.detail) for d in r.divergences]))
    if r.rng_consumed:
        common.console.print(common.table("RNG streams consumed", ["step", "streams"],
                                          [(i, ", ".join(s) or "-") for i, s in enumerate(r.rng_consumed)]))
    for k in r.nondeterministic_kernels:
        common.console.print(f"[yellow]nondeterministic kernel:[/] {escape(k)}")
    for w in r.duplicated_worker_rngs:
        common.console.print(f"[yellow]dataset RNG duplicated across workers {w.workers}:[/] "
                             f"{escape(w.path)} ({escape(w.detail)})")
    for n in r.notes:
        common.console.print(f"note: {n}", markup=False, highlight=False)
