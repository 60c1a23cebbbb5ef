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
from runlock.cli import artifacts as _artifacts  # noqa: E402
from runlock.cli import audit as _audit  # noqa: E402
from runlock.cli import config as _config  # noqa: E402
from runlock.cli import data as _data  # noqa: E402
from runlock.cli import demo as _demo  # noqa: E402
from runlock.cli import governance as _governance  # noqa: E402
from runlock.cli import lineage as _lineage  # noqa: E402
from runlock.cli import metrics as _metrics  # noqa: E402
from runlock.cli import probe as _probe  # noqa: E402
from runlock.cli import registry as _registry  # noqa: E402
from runlock.cli import run as _run  # noqa: E402
from runlock.cli import runs as _runs  # noqa: E402
from runlock.cli import split as _split  # noqa: E402
from runlock.cli import store as _store  # noqa: E402
from runlock.cli import verify as _verify  # noqa: E402

app.command("init")(_store.init)
app.command("migrate")(_store.migrate)
app.command("fsck")(_store.fsck)
app.command("run", context_settings={"allow_interspersed_args": False})(_run.run)
app.command("probe", context_settings={"allow_interspersed_args": False})(_probe.probe)
app.add_typer(_runs.app, name="runs")
app.command("metrics")(_metrics.metrics)
app.command("plot")(_metrics.plot)
app.add_typer(_config.app, name="config")
app.add_typer(_data.app, name="data")
app.add_typer(_split.app, name="split")
app.add_typer(_artifacts.app, name="artifacts")
app.command("lineage")(_lineage.lineage)
app.add_typer(_registry.app, name="registry")
app.add_typer(_audit.app, name="audit")
app.add_typer(_governance.users, name="users")
app.add_typer(_governance.tokens, name="tokens")
app.add_typer(_governance.roles, name="roles")
app.add_typer(_governance.keys, name="keys")
app.add_typer(_governance.attest, name="attest")
app.add_typer(_verify.app)  # top-level: rerun, compare, variance, verify, check, env
app.command("demo")(_demo.demo)
# -- end of command groups ------------------------------------------------------------------


def main() -> None:
    app()
