"""``runlock run -- CMD``: run a script as a recorded run."""

from __future__ import annotations

import importlib
import sys

import typer

from runlock.cli import common, plain
from runlock.cli.group import state
from runlock.tracking.wrapper import run_command


def run(
    ctx: typer.Context,
    command: list[str] = typer.Argument(..., help="The command to run, after `--`."),
    project: str = typer.Option(None, "--project", "-p",
                                help="Project the run belongs to (default: as start_run in the script says, else default)."),
    name: str = typer.Option(None, "--name", help="Run name (default: as start_run in the script says, else the project)."),
    hashseed: int = typer.Option(None, "--hashseed", help="Start the command with PYTHONHASHSEED set to this."),
    seed: int = typer.Option(None, "--seed", help="Record this seed in the lock (a seed the script gives wins)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout (the standard output "
                                                       "of the command goes to stderr)."),
) -> None:
    """Run COMMAND as a recorded run: runlock run -p PROJECT -- python train.py ARGS.

    The run id is printed on stderr as the run starts. Exit status: that of the command, or 1 when
    the command succeeded but the run could not be sealed finished (metrics lost)."""
    def started(run) -> None:  # noqa: ANN001
        common.err_console.print(f"run:{getattr(run, 'id', run)} started", highlight=False)

    url = plain.server_for(ctx)
    if url is not None:         # the run lives on the team server; the command runs here
        client = importlib.import_module("runlock.remote.client").Client(url, state(ctx).token)
        ctx.find_root().call_on_close(client.close)
        result = importlib.import_module("runlock.remote.wrapper").run_remote_command(
            client, command, project=project, name=name, hashseed=hashseed, seed=seed, on_start=started,
            stdout=_stderr_fd() if as_json else None)
    else:
        result = run_command(common.store(ctx), command, project=project, name=name, hashseed=hashseed, seed=seed,
                             on_start=started, stdout=_stderr_fd() if as_json else None)
    if as_json:
        common.print_json(result.to_dict())
    else:
        colour = "green" if result.status == "finished" else "red"
        common.err_console.print(f"run:{result.run_id} [{colour}]{result.status}[/] (exit status {result.returncode})")
        if result.lost_points or (result.status != "finished" and result.returncode == 0 and result.error):
            common.err_console.print(common.styled(result.error.strip().splitlines()[0], "red"))
    code = result.returncode if result.returncode >= 0 else 128 - result.returncode   # killed by a signal: 128+N
    raise typer.Exit(code or (0 if result.status == "finished" else 1))


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
