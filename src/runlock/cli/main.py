"""The ``runlock`` command tree. Each group lives in its own module; this file only assembles.

A command's module is imported when that command runs (or its help is asked for), never before:
``runlock --help`` lists every command from the table below without loading any of them, so it
costs little more than importing typer (tests/test_imports.py, bench/bench_cli.py). A new
command is one line in COMMANDS; its line of help there is the one `runlock --help` and
docs/cli.md show.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import typer

from runlock._version import __version__
from runlock.cli import group
from runlock.cli.lazy import LazyCommands


class Entry(NamedTuple):
    module: str          # runlock.cli.<module>
    attribute: str       # a Typer app (a group) or a function (a command) in it
    help: str            # its one line in `runlock --help` (and in docs/cli.md): the command's short help
    pick: str = ""       # a command of that Typer app, placed at the top level
    settings: dict | None = None  # click context settings of a function command


_RAW = {"allow_interspersed_args": False}  # `runlock run -- python train.py --lr 3e-4`

# section -> command -> where it lives (keep each section in the order a newcomer meets them)
COMMANDS: dict[str, dict[str, Entry]] = {
    "Start": {
        "init": Entry("store", "init", "Create a runlock store (.runlock/) in PATH, or upgrade the one there."),
        "run": Entry("run", "run", "Run COMMAND as a recorded run: runlock run -p PROJECT -- python train.py ARGS.",
                     settings=_RAW),
        "demo": Entry("demo", "demo",
                      "Fine-tune a tiny LoRA model twice on CPU and show that runlock proves both runs identical."),
    },
    "Runs": {
        "runs": Entry("runs", "app", "Inspect recorded runs."),
        "metrics": Entry("metrics", "metrics", "A run's metrics: one line per key, or every point with --csv."),
        "plot": Entry("metrics", "plot",
                      "Plot metric curves of several runs into a PNG: one panel per --key, one line per run."),
        "config": Entry("config", "app", "Layered configuration: resolve files and overrides; explain a run's config."),
        "ui": Entry("ui", "ui", "Browse, filter and compare runs, data, lineage, models and the audit log in a "
                    "browser (http://127.0.0.1:8080)."),
        "probe": Entry("probe", "probe", "Run COMMAND's first steps twice from identical state; report the first "
                       "difference and its cause.", settings=_RAW),
    },
    "Verify": {
        "compare": Entry("verify", "app", "Decide at which tier two runs agree (bitwise, tolerance, statistical, "
                         "different) and why not better.", pick="compare"),
        "rerun": Entry("verify", "app", "Rerun RUN from its lock (exact code, data, seeds, knobs) as a new run "
                       "linked to it.", pick="rerun"),
        "verify": Entry("verify", "app", "Rerun RUN and compare (stored on the run); or check its outputs against a "
                        "reference; or rehearse an audit.", pick="verify"),
        "variance": Entry("verify", "app", "Rerun RUN with different seeds and store the spread of its final "
                          "metrics.", pick="variance"),
        "check": Entry("verify", "app", "Evaluate the reproducibility checklist on a run or model; exit status 1 if "
                       "any rule fails.", pick="check"),
        "env": Entry("verify", "app", "The environment a run recorded: export it pinned, or diff it with this one.",
                     pick="env"),
    },
    "Pipelines": {
        "repro": Entry("repro", "repro", "Bring runlock.yaml's stages up to date: stale ones run as recorded runs "
                       "in DAG order (--jobs N in parallel), cached ones restored."),
        "pipeline": Entry("pipeline", "app", "Pipelines (runlock.yaml): status, verify, show, resume, export."),
    },
    "Data": {
        "data": Entry("data", "app", "Dataset snapshots: content-addressed, versioned, verifiable."),
        "split": Entry("split", "app", "Static, versioned splits of a dataset snapshot, with leakage checks."),
    },
    "Models and lineage": {
        "artifacts": Entry("artifacts", "app", "Browse and download artifacts (stored by content)."),
        "registry": Entry("registry", "app", "Register models, move aliases, download exact bytes, write model cards."),
        "lineage": Entry("lineage", "lineage", "Print the lineage of an entity as a tree, or export it (DOT, PNG, "
                         "PROV-JSON, OpenLineage)."),
        "attest": Entry("governance", "attest", "Signed in-toto attestations (SLSA provenance + checklist result) and "
                        "the production gate."),
        "bundle": Entry("bundle", "app", "Signed reproduction bundles: export a model's whole upstream, verify it "
                        "offline, import it anywhere."),
    },
    "Store and governance": {
        "audit": Entry("audit", "app", "The tamper-evident audit log: list, verify, checkpoint, prove."),
        "users": Entry("governance", "users", "Users and service accounts."),
        "tokens": Entry("governance", "tokens", "API tokens (only their hashes are stored)."),
        "roles": Entry("governance", "roles", "Roles per project: viewer, editor, maintainer, admin."),
        "keys": Entry("governance", "keys", "The store's Ed25519 signing key."),
        "migrate": Entry("store", "migrate", "Upgrade the store's schema to this version of runlock."),
        "fsck": Entry("store", "fsck", "Verify every object's hash and that every object the records point at "
                      "exists."),
        "gc": Entry("gc", "gc", "Find (with --yes, delete) scratch files of dead processes and objects that nothing "
                    "references."),
        "server": Entry("server", "server", "Serve a store to a team over HTTP: tokens and roles enforced "
                        "server-side, objects by sha256."),
        "login": Entry("server", "login", "Check a token against a runlock server and keep it (0600) for "
                       "RUNLOCK_SERVER."),
    },
}
ENTRIES: dict[str, Entry] = {name: e for section in COMMANDS.values() for name, e in section.items()}


def load(name: str, entry: Entry) -> Any:
    """The click command for ``entry``: its module imported now, its Typer app or function converted."""
    obj = getattr(importlib.import_module(f"runlock.cli.{entry.module}"), entry.attribute)
    if isinstance(obj, typer.Typer):
        built = typer.main.get_command(obj)
        cmd = built.commands[entry.pick] if entry.pick else built
    else:
        one = typer.Typer(add_completion=False)
        one.command(name, context_settings=entry.settings)(obj)
        cmd = typer.main.get_command(one)
    cmd.name, cmd.short_help = name, entry.help
    return cmd


class RootGroup(group.RunlockGroup):
    """The root: commands built on demand; its help listed from COMMANDS, in plain text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(ENTRIES, lambda name: load(name, ENTRIES[name]), self.commands)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(self.commands)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            typer.echo(ctx.get_help())   # typer prints only its own (rich) help here, not a plain one
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        for title, entries in COMMANDS.items():
            with formatter.section(title):
                formatter.write_dl([(name, e.help) for name, e in entries.items()])
        opts = [rv for p in self.get_params(ctx) if (rv := p.get_help_record(ctx)) is not None]
        with formatter.section("Options"):
            formatter.write_dl(opts)
        formatter.write_paragraph()
        formatter.write_text("Run `runlock COMMAND --help` for a command's arguments and options.")


app = typer.Typer(
    cls=RootGroup,
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
    st = group.state(ctx)
    st.store_path, st.token = store, token


def main() -> None:
    app()
