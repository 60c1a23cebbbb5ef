"""``runlock runs``: list (with filters), show, diff and compare recorded runs."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.tree import Tree

from runlock import artifacts
from runlock.cli import common
from runlock.tracking import diff as diffs
from runlock.tracking import lock as locks
from runlock.tracking import query, records, series

app = typer.Typer(help="Inspect recorded runs.", no_args_is_help=True)


WHERE_HELP = ("Filter, e.g. \"config.lr > 1e-4 and summary.eval_f1 >= 0.9\": comparisons (== != < <= > >= in) "
              "of config.X, summary.X, metrics.X (latest value), tags.X or a run field (status, name, "
              "last_step, started_at ...) with literals, joined by and / or / not. A dotted name matches "
              "keys whose other characters are _ (summary.eval_f1 matches eval/f1); summary[\"eval/f1\"] "
              "matches exactly. A run without the key does not match.")


@app.command("list")
def list_(
    ctx: typer.Context,
    project: str = typer.Option(None, "--project", "-p", help="Only runs of this project."),
    status: str = typer.Option(None, "--status", help="Only runs with this status."),
    where: str = typer.Option(None, "--where", "-w", help=WHERE_HELP),
    sort: str = typer.Option(None, "--sort", "-s",
                             help="Sort by these fields, comma-separated; '-' in front for descending "
                                  "(e.g. -summary.eval_f1). Default: newest first."),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many runs (0: all)."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """List runs, newest first, or filtered with --where and ordered with --sort."""
    found = query.find_runs(common.store(ctx), project=project, status=status, where=where, sort=sort,
                            limit=limit or None)
    common.emit(found, as_json, _render_list)


def _render_list(found: list[query.FoundRun]) -> None:
    extra = list(dict.fromkeys(k for f in found for k in f.fields
                               if k not in ("status", "project", "name", "id", "last_step")))
    common.console.print(common.table(
        None, ["run", "project", "name", "status", "started", "last step", *extra, "recipe"],
        [(f.record.id, f.record.project, f.record.name, f.record.status, f.record.started_at[:19],
          f.record.last_step, *(common.to_jsonable(f.fields.get(k)) for k in extra),
          common.short(f.record.recipe_id)) for f in found]))


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
    tree = Tree(f"[bold]run:{r['id']}[/]  {escape(r['project'])}/{escape(r['name'])}  "
                f"[{_colour(r['status'])}]{r['status']}[/]")
    tree.add(f"recipe {r['recipe_id']}")
    tree.add(f"started {r['started_at']} by {r['created_by']} on {r['host']}; ended {r['ended_at'] or '-'}")
    if r["error"]:
        tree.add("[red]error[/] " + escape(r["error"].strip().splitlines()[-1]))
    tree.add(escape(f"seed {lk.get('seed')}"))
    cfg = tree.add("config (nested sections summarised; all of it with --json)")
    for key, value in sorted((lk.get("config") or {}).items()):
        shown = f"{{{len(value)} keys}}" if isinstance(value, dict) else common.to_jsonable(value)
        cfg.add(escape(f"{key} = {shown}"))
    git = (lk.get("code") or {}).get("git")
    tree.add(f"code {git['commit']} {'(dirty, diff ' + str(git['diff']) + ')' if git and git['dirty'] else ''}"
             if git else f"code: {(lk.get('code') or {}).get('reason')}")
    env = lk.get("environment") or {}
    torch = env.get("torch") or {}
    tree.add(f"python {env.get('python', {}).get('version')}; torch {torch.get('version', '-')}; "
             f"{len(env.get('packages', {}))} packages")
    ins = tree.add("inputs")
    for i in lk.get("inputs", []):
        ins.add(escape(f"{i['ref']}  {i['id']}"))
    arts = tree.add("artifacts")
    for a in data["artifacts"]:
        arts.add(escape(f"{a['name']} ({a['kind']}, {a['files']} file(s), {a['size']} B)  {a['digest']}"))
    if r["summary"]:
        summ = tree.add("summary")
        for key, value in sorted(r["summary"].items()):
            summ.add(escape(f"{key} = {value}"))
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
    mrows = [(m.key, m.a_steps, m.b_steps, m.a_last, m.b_last, "yes" if m.identical else common.styled("no", "red"))
             for m in d.metrics]
    if mrows:
        common.console.print(common.table("metrics", ["key", "steps A", "steps B", "last A", "last B", "identical"], mrows))


@app.command("compare")
def compare(ctx: typer.Context, runs: list[str] = typer.Argument(..., help="Two or more runs."),
            differences: bool = typer.Option(False, "--differences", "-d", help="Only rows whose values differ."),
            as_json: bool = common.JSON_OPTION) -> None:
    """Runs side by side: status, recipe, every config and summary value and the latest metrics."""
    result = series.compare(common.store(ctx), runs, only_differences=differences)
    common.emit(result, as_json, _render_compare)


def _render_compare(c: series.Comparison) -> None:
    rows = [(r.section, ("[bold]" if r.differs else "") + r.key,
             *(common.short(v, 24) if isinstance(v, str) else common.to_jsonable(v) for v in r.values))
            for r in c.rows]
    common.console.print(common.table(None, ["section", "key", *(i[-8:] for i in c.runs)], rows))
