"""The ``runlock`` command tree. Each group lives in its own module; this file only assembles."""

from __future__ import annotations

import typer

from runlock import __version__
from runlock.cli import common

app = typer.Typer(
    cls=common.RunlockGroup,
    no_args_is_help=True,
    add_completion=False,
    help="runlock: lock every input of a training run, and prove the result can be rebuilt.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"runlock {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    store: str = typer.Option(None, "--store", envvar="RUNLOCK_STORE",
                              help="Store to use (a folder holding .runlock, or the .runlock folder itself)."),
    token: str = typer.Option(None, "--token", envvar="RUNLOCK_TOKEN", show_envvar=False,
                              help="API token to act as (default: the local OS user)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    st = common.state(ctx)
    st.store_path, st.token = store, token


# -- command groups (one line each; keep this block sorted) -------------------------------------
# (registered below by each module: app.add_typer(module.app, name=...) or app.command()(fn))


def main() -> None:
    app()
