"""``runlock run -- CMD``: run a script as a recorded run."""

from __future__ import annotations

import typer

from runlock.cli import common
from runlock.tracking.wrapper import run_command


def run(
    ctx: typer.Context,
    command: list[str] = typer.Argument(..., help="The command to run, after `--`."),
    project: str = typer.Option("default", "--project", "-p", help="Project the run belongs to."),
    name: str = typer.Option(None, "--name", help="Run name (default: the project)."),
    hashseed: int = typer.Option(None, "--hashseed", help="Start the command with PYTHONHASHSEED set to this."),
    seed: int = typer.Option(None, "--seed", help="Record this seed in the lock."),
) -> None:
    """Run COMMAND as a recorded run: runlock run -p PROJECT -- python train.py ARGS."""
    result = run_command(common.store(ctx), command, project=project, name=name, hashseed=hashseed, seed=seed)
    colour = "green" if result.status == "finished" else "red"
    common.err_console.print(f"run:{result.run_id} [{colour}]{result.status}[/] (exit status {result.returncode})")
    raise typer.Exit(result.returncode)
