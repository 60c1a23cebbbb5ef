"""``runlock runs show``: one run as a tree: its record, tags and notes, lock, metrics and
artifacts."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.tree import Tree

from runlock.cli import common
from runlock.cli.runs import RUN_ARG, colour, num
from runlock.cli.service import service


def show(ctx: typer.Context, run: str = RUN_ARG, as_json: bool = common.JSON_OPTION) -> None:
    """Show one run: its record, tags and notes, its lock, its metrics (last, min, max, steps)
    and its artifacts."""
    common.emit(service(ctx).run_view(run).to_dict(), as_json, _render_show)


def _render_show(data: dict) -> None:
    r, lk = data["run"], data["lock"] or {}
    tree = Tree(f"[bold]run:{r['id']}[/]  {escape(r['project'])}/{escape(r['name'])}  "
                f"[{colour(r['status'])}]{r['status']}[/]")
    if r.get("deleted_at"):
        tree.add(f"[red]deleted[/] {r['deleted_at'][:19]} by {escape(r['deleted_by'] or '?')}: "
                 + escape(r["deleted_reason"] or ""))
    tree.add(f"recipe {r['recipe_id']}")
    tree.add(f"started {r['started_at']} by {escape(r['created_by'])} on {escape(r['host'])}; "
             f"ended {r['ended_at'] or '-'}")
    if r["error"]:
        tree.add("[red]error[/] " + escape(r["error"].strip().splitlines()[-1]))
    ctx = r.get("context") or {}
    if ctx.get("lost_points") or ctx.get("unflushed_writers"):
        tree.add(f"[bold red]metrics incomplete[/] lost_points {ctx.get('lost_points') or 0}, "
                 f"{len(ctx.get('unflushed_writers') or [])} process(es) never reported")
    if r["tags"]:
        tree.add("tags " + escape(", ".join(f"{k}={v}" for k, v in sorted(r["tags"].items()))))
    if data["notes"]:
        notes = tree.add("notes")
        for n in data["notes"]:
            notes.add(escape(f"{n.created_at[:16].replace('T', ' ')} {n.created_by}: {n.text}"))
    tree.add(escape(f"seed {lk['seed']}" if lk.get("seed") is not None else "seed: none recorded"))
    cfg = tree.add("config (nested sections summarised; all of it with --json)")
    for key, value in sorted((lk.get("config") or {}).items()):
        shown = f"{{{len(value)} keys}}" if isinstance(value, dict) else common.to_jsonable(value)
        cfg.add(escape(f"{key} = {shown}"))
    tree.add(escape(_code_line(lk.get("code") or {})))
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
    if data["metrics"]:
        tree.add(common.compact(common.table(
            "metrics", ["key", "last", "min", "max", "steps"],
            [(m.key, num(m.latest), num(m.min), num(m.max), m.steps) for m in data["metrics"]])))
    common.console.print(tree)


def _code_line(code: dict) -> str:
    """The lock's code section in one line, in words where a value is missing."""
    git = code.get("git")
    if not git:
        return f"code: {code.get('reason') or 'not recorded'}"
    dirty = f" (uncommitted changes, diff {git['diff']})" if git.get("dirty") else ""
    if git.get("commit") is None:
        return f"code: no commit yet, the git repository has none{dirty}"
    return f"code {git['commit']}{dirty}"
