"""``runlock runs``: list, show and diff recorded runs."""

from __future__ import annotations

import typer
from rich.tree import Tree

from runlock import artifacts
from runlock.cli import common
from runlock.tracking import diff as diffs
from runlock.tracking import lock as locks
from runlock.tracking import records

app = typer.Typer(help="Inspect recorded runs.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    project: str = typer.Option(None, "--project", "-p", help="Only runs of this project."),
    status: str = typer.Option(None, "--status", help="Only runs with this status."),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many runs (0: all)."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """List runs, newest first."""
    found = records.list_runs(common.store(ctx), project=project, status=status, limit=limit or None)
    common.emit(found, as_json, lambda rs: common.console.print(common.table(
        None, ["run", "project", "name", "status", "started", "last step", "recipe"],
        [(r.id, r.project, r.name, r.status, r.started_at[:19], r.last_step, common.short(r.recipe_id))
         for r in rs])))


@app.command("show")
def show(ctx: typer.Context, run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
         as_json: bool = common.JSON_OPTION) -> None:
    """Show one run: its record, its lock and its artifacts."""
    store = common.store(ctx)
    rec = records.get(store, run)
    data = {"run": rec.to_dict(), "lock": locks.load(store, rec.recipe_id) if rec.recipe_id else None,
            "artifacts": [a.to_dict() for a in artifacts.for_run(store, rec.id)]}
    common.emit(data, as_json, _render_show)


def _render_show(data: dict) -> None:
    r, lk = data["run"], data["lock"] or {}
    tree = Tree(f"[bold]run:{r['id']}[/]  {r['project']}/{r['name']}  [{_colour(r['status'])}]{r['status']}[/]")
    tree.add(f"recipe {r['recipe_id']}")
    tree.add(f"started {r['started_at']} by {r['created_by']} on {r['host']}; ended {r['ended_at'] or '-'}")
    if r["error"]:
        tree.add("[red]error[/] " + r["error"].strip().splitlines()[-1])
    tree.add(f"seed {lk.get('seed')}; config {common.to_jsonable(lk.get('config'))}")
    git = (lk.get("code") or {}).get("git")
    tree.add(f"code {git['commit']} {'(dirty, diff ' + str(git['diff']) + ')' if git and git['dirty'] else ''}"
             if git else f"code: {(lk.get('code') or {}).get('reason')}")
    env = lk.get("environment") or {}
    torch = env.get("torch") or {}
    tree.add(f"python {env.get('python', {}).get('version')}; torch {torch.get('version', '-')}; "
             f"{len(env.get('packages', {}))} packages")
    ins = tree.add("inputs")
    for i in lk.get("inputs", []):
        ins.add(f"{i['ref']}  {i['id']}")
    arts = tree.add("artifacts")
    for a in data["artifacts"]:
        arts.add(f"{a['name']} ({a['kind']}, {a['files']} file(s), {a['size']} B)  {a['digest']}")
    if r["summary"]:
        tree.add(f"summary {r['summary']}")
    common.console.print(tree)


def _colour(status: str) -> str:
    return {"finished": "green", "running": "yellow", "failed": "red", "crashed": "red"}.get(status, "white")


@app.command("diff")
def diff(ctx: typer.Context, run_a: str = typer.Argument(..., help="First run."),
         run_b: str = typer.Argument(..., help="Second run."), as_json: bool = common.JSON_OPTION) -> None:
    """What differs between two runs: config, seeds, knobs, code, environment, inputs, metrics."""
    result = diffs.diff_runs(common.store(ctx), run_a, run_b)
    common.emit(result, as_json, _render_diff)


def _render_diff(d: diffs.RunDiff) -> None:
    common.console.print(f"recipe ids {'[green]identical[/]' if d.same_recipe else '[red]differ[/]'}")
    rows = [(section, c.field, common.to_jsonable(c.a), common.to_jsonable(c.b))
            for section, cs in d.fields.items() for c in cs]
    if rows:
        common.console.print(common.table("lock and summary fields that differ", ["section", "field", "A", "B"], rows))
    mrows = [(m.key, m.a_steps, m.b_steps, m.a_last, m.b_last, "yes" if m.identical else "[red]no[/]")
             for m in d.metrics]
    if mrows:
        common.console.print(common.table("metrics", ["key", "steps A", "steps B", "last A", "last B", "identical"], mrows))
