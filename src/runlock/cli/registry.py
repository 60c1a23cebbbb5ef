"""``runlock registry``: model versions, aliases and their history, downloads and model cards."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.tree import Tree

from runlock import cards, registry
from runlock.cli import common, runids
from runlock.cli.service import service

app = typer.Typer(help="Register models, move aliases, download exact bytes, write model cards.",
                  no_args_is_help=True)
alias_app = typer.Typer(help="Move aliases (@staging, @production, …); every move is recorded.",
                        no_args_is_help=True)
app.add_typer(alias_app, name="alias")

REF_HELP = "model:NAME@vN, model:NAME@ALIAS or model:NAME (latest)."


@app.command("register")
def register(ctx: typer.Context, run: str = typer.Argument(..., help="The finished run (id or prefix)."),
             artifact: str = typer.Argument(..., help="The run's artifact to register, by name."),
             name: str = typer.Argument(..., help="Model name, e.g. support-bot."),
             license: str = typer.Option(None, "--license", help="License id for the model card."),
             description: str = typer.Option(None, "--description", help="One paragraph for the card."),
             limitations: str = typer.Option(None, "--limitations", help="Known limitations, for the card."),
             as_json: bool = common.JSON_OPTION) -> None:
    """Register a finished run's artifact as the next version of model:NAME."""
    meta = {k: v for k, v in (("license", license), ("description", description),
                               ("limitations", limitations)) if v is not None}
    mv = service(ctx).register_model(run, artifact, name, meta)
    common.emit(mv, as_json, lambda m: common.console.print(f"{m.ref}  {m.digest}", highlight=False))


@app.command("list")
def list_(ctx: typer.Context, name: str = typer.Argument(None, help="Only versions of this model."),
          wide: bool = runids.WIDE_OPTION, as_json: bool = common.JSON_OPTION) -> None:
    """List model versions with their aliases."""
    svc = service(ctx)
    found = svc.list_models(name)
    run_ids = [m.run_id for m in found]
    ids = {} if as_json else runids.shown(svc, run_ids, wide)
    common.emit(found, as_json, lambda ms: common.console.print(common.table(
        None, ["model", "aliases", "content id", "run", "artifact", "registered"],
        [(m.ref, " ".join(f"@{a}" for a in m.aliases), common.short(m.digest), ids[m.run_id], m.artifact,
          m.created_at[:19]) for m in ms])))


@app.command("show")
def show(ctx: typer.Context, ref: str = typer.Argument(..., help=REF_HELP),
         as_json: bool = common.JSON_OPTION) -> None:
    """Show one model version."""
    mv = service(ctx).resolve_model(ref)

    def render(m: registry.ModelVersion) -> None:
        tree = Tree(f"[bold]{m.ref}[/] " + " ".join(f"[cyan]@{a}[/]" for a in m.aliases))
        tree.add(f"content id {m.digest}")
        tree.add(f"artifact {m.artifact!r} of run:{m.run_id}")
        tree.add(f"registered {m.created_at} by {m.created_by}")
        common.console.print(tree)

    common.emit(mv, as_json, render)


@app.command("get")
def get(ctx: typer.Context, ref: str = typer.Argument(..., help=REF_HELP),
        dest: Path = typer.Argument(..., help="Where to write the model (must not exist)."),
        force: bool = typer.Option(False, "--force", help="DEST may exist: replace the files the model names "
                                   "and delete nothing else (refused for a project root, a store or .git)."),
        progress: bool = common.PROGRESS_OPTION, as_json: bool = common.JSON_OPTION) -> None:
    """Download a model version's exact bytes, verified, and record the read in the audit log."""
    with common.progress("writing", progress, unit="bytes") as on_progress:
        result = service(ctx).get_model(ref, dest, force=force, on_progress=on_progress)
    common.emit(result, as_json, lambda r: common.console.print(
        f"wrote {r.ref} to {r.dest} ({r.files} file(s), {r.size} B, verified {r.digest})", highlight=False))


@alias_app.command("set")
def alias_set(ctx: typer.Context, ref: str = typer.Argument(..., help="The version: model:NAME@vN."),
              alias: str = typer.Argument(..., help="The alias to point at it, e.g. production."),
              reason: str = typer.Option(..., "--reason", "-m", help="Why (kept in the history)."),
              as_json: bool = common.JSON_OPTION) -> None:
    """Point model:NAME@ALIAS at a version (recorded with who, when and why)."""
    move = service(ctx).set_alias(ref, alias, reason=reason)
    common.emit(move, as_json, _render_move)


@alias_app.command("remove")
def alias_remove(ctx: typer.Context, name: str = typer.Argument(..., help="Model name."),
                 alias: str = typer.Argument(..., help="The alias to remove."),
                 reason: str = typer.Option(..., "--reason", "-m", help="Why (kept in the history)."),
                 as_json: bool = common.JSON_OPTION) -> None:
    """Remove an alias (recorded like any move)."""
    move = service(ctx).remove_alias(name, alias, reason=reason)
    common.emit(move, as_json, _render_move)


def _render_move(m: registry.AliasMove) -> None:
    src = f"v{m.from_version}" if m.from_version else "(none)"
    dst = f"v{m.to_version}" if m.to_version else "(removed)"
    common.console.print(f"model:{m.name}@{m.alias}: {src} -> {dst}  by {m.actor} at {m.at}: {m.reason}",
                         highlight=False)


@app.command("history")
def history(ctx: typer.Context, name: str = typer.Argument(..., help="Model name."),
            alias: str = typer.Option(None, "--alias", "-a", help="Only moves of this alias."),
            at: str = typer.Option(None, "--at", help="Instead: where every alias pointed at this date/time "
                                                      "(a bare date means the end of that day, UTC)."),
            as_json: bool = common.JSON_OPTION) -> None:
    """Every alias move of a model (who, when, why), or the aliases as they stood at --at."""
    svc = service(ctx)
    if at is not None:
        state = svc.aliases_at(name, at, alias)
        common.emit(state, as_json, lambda st: common.console.print(common.table(
            f"model:{name} at {st.at}", ["alias", "version"], sorted(st.aliases.items()))
            if st.aliases else f"no aliases of {name} at {st.at}", highlight=False))
        return
    moves = svc.model_history(name, alias)
    common.emit(moves, as_json, lambda ms: common.console.print(common.table(
        None, ["time", "alias", "from", "to", "by", "reason"],
        [(m.at[:19], f"@{m.alias}", f"v{m.from_version}" if m.from_version else "", f"v{m.to_version}"
          if m.to_version else "(removed)", m.actor, m.reason) for m in ms])))


@app.command("card")
def card(ctx: typer.Context, ref: str = typer.Argument(..., help=REF_HELP),
         output: Path = typer.Option(Path("README.md"), "--output", "-o",
                                     help="File (or folder) to write the card to."),
         limitations: str = typer.Option(None, "--limitations", help="Known limitations, if not recorded."),
         force: bool = typer.Option(False, "--force", help="Replace the file if it exists."),
         as_json: bool = common.JSON_OPTION) -> None:
    """Write a Hugging Face model card (README.md) generated from the record."""
    result = cards.save_card(service(ctx).model_card(ref, limitations=limitations), output, force=force)
    common.emit(result, as_json, lambda c: common.console.print(f"wrote the card of {c.ref} to {c.path}",
                                                                highlight=False))
