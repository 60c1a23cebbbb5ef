"""``runlock probe -- CMD``: run a program's first steps twice and say what differs."""

from __future__ import annotations

import typer

from runlock.cli import common
from runlock.probe import ProbeReport, probe_command


def probe(
    command: list[str] = typer.Argument(..., help="The program to probe, after `--`."),
    steps: int = typer.Option(3, "--steps", help="How many steps to run in each attempt."),
    timeout: int = typer.Option(600, "--timeout", help="Seconds each attempt may take."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Run COMMAND's first steps twice from identical state (and once with another hash seed),
    and report the first step, metric or tensor that differs, the RNG streams each step used and
    the nondeterministic kernels that ran. The program marks steps with record_step from
    the runlock.probe module (run.log does it for you)."""
    report = probe_command(command, steps, timeout=timeout)
    common.emit(report, as_json, _render)
    if not report.reproducible:
        raise typer.Exit(1)


def _render(r: ProbeReport) -> None:
    verdict = "[green]reproducible[/]" if r.reproducible else "[red]NOT reproducible[/]"
    common.console.print(f"{r.steps} step(s) probed: {verdict}")
    if r.first_divergence:
        d = r.first_divergence
        common.console.print(f"first divergence: step {d.step}, {d.kind} [bold]{d.name}[/]: {d.detail}")
    if r.divergences:
        common.console.print(common.table("divergences", ["step", "kind", "name", "detail"],
                                          [(d.step, d.kind, d.name, d.detail) for d in r.divergences]))
    if r.rng_consumed:
        common.console.print(common.table("RNG streams consumed", ["step", "streams"],
                                          [(i, ", ".join(s) or "-") for i, s in enumerate(r.rng_consumed)]))
    for k in r.nondeterministic_kernels:
        common.console.print(f"[yellow]nondeterministic kernel:[/] {k}")
    for w in r.duplicated_worker_rngs:
        common.console.print(f"[yellow]dataset RNG duplicated across workers {w.workers}:[/] {w.path} ({w.detail})")
    for n in r.notes:
        common.console.print(f"note: {n}")
