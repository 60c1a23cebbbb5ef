"""``runlock runs``: list (with filters), show, diff, compare, tag, note and delete recorded runs."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from runlock import artifacts
from runlock.cli import common, runids
from runlock.tracking import annotations
from runlock.tracking import diff as diffs
from runlock.tracking import lock as locks
from runlock.tracking import query, records, series

app = typer.Typer(help="Inspect recorded runs.", no_args_is_help=True)

RUN_ARG = typer.Argument(..., help="Run id, or a unique prefix of it (at least 6 characters).")
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
    limit: int = typer.Option(50, "--limit", "-L", help="At most this many runs (0: all)."),
    deleted: bool = typer.Option(False, "--deleted", help="List only deleted runs (tombstones kept for audit)."),
    wide: bool = runids.WIDE_OPTION,
    as_json: bool = common.JSON_OPTION,
) -> None:
    """List runs, newest first, or filtered with --where and ordered with --sort (deleted runs
    are left out; --deleted lists them)."""
    store = common.store(ctx)
    found = query.find_runs(store, project=project, status=status, where=where, sort=sort,
                            limit=limit or None, deleted=deleted)
    if as_json:
        common.print_json(found)
        return
    _render_list(found, runids.labels(store, [f.record.id for f in found], wide), deleted)


def _render_list(found: list[query.FoundRun], ids: dict[str, str], deleted: bool = False) -> None:
    extra = list(dict.fromkeys(k for f in found for k in f.fields
                               if k not in ("status", "project", "name", "id", "last_step")))
    if deleted:    # tombstones: who deleted what, when and why
        head = ["run", "project", "name", *extra, "deleted", "by", "reason"]
        rows = [(ids[f.record.id], f.record.project, f.record.name,
                 *(common.to_jsonable(f.fields.get(k)) for k in extra),
                 (f.record.deleted_at or "")[:16].replace("T", " "), f.record.deleted_by, f.record.deleted_reason)
                for f in found]
    else:
        head = ["run", "project", "name", "status", "started", "step", *extra, "recipe"]
        rows = [(ids[f.record.id], f.record.project, f.record.name, styled_status(f.record.status),
                 f.record.started_at[:16].replace("T", " "), f.record.last_step,
                 *(common.to_jsonable(f.fields.get(k)) for k in extra), _hex(f.record.recipe_id)) for f in found]
    t = common.compact(common.table(None, head, rows))
    t.columns[0].no_wrap = True     # an id is copied whole; the other columns give way
    common.console.print(t)
    if not found:
        common.err_console.print("no runs" + (" match" if extra else ""), highlight=False)


def _hex(content_id: str | None, n: int = 8) -> str:
    """The first hex characters of a ``sha256:…`` id: enough to tell recipes apart at a glance."""
    return (content_id or "").partition(":")[2][:n] or (content_id or "")[:n]


def styled_status(status: str) -> object:
    return common.styled(status, _colour(status))


@app.command("show")
def show(ctx: typer.Context, run: str = RUN_ARG, as_json: bool = common.JSON_OPTION) -> None:
    """Show one run: its record, tags and notes, its lock, its metrics (last, min, max, steps)
    and its artifacts."""
    store = common.store(ctx)
    rec = records.get(store, run)
    data = {"run": rec.to_dict(), "lock": locks.load(store, rec.recipe_id) if rec.recipe_id else None,
            "metrics": series.summarize(store, rec.id),
            "notes": annotations.notes(store, rec.id),
            "artifacts": [a.to_dict() for a in artifacts.for_run(store, rec.id)]}
    common.emit(data, as_json, _render_show)


def _render_show(data: dict) -> None:
    r, lk = data["run"], data["lock"] or {}
    tree = Tree(f"[bold]run:{r['id']}[/]  {escape(r['project'])}/{escape(r['name'])}  "
                f"[{_colour(r['status'])}]{r['status']}[/]")
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
    if data["metrics"]:
        tree.add(common.compact(common.table(
            "metrics", ["key", "last", "min", "max", "steps"],
            [(m.key, num(m.latest), num(m.min), num(m.max), m.steps) for m in data["metrics"]])))
    common.console.print(tree)


def num(value: object) -> str:
    """A number for a table: 6 significant digits (the exact value is in --json)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _colour(status: str) -> str:
    return {"finished": "green", "running": "yellow", "failed": "red", "crashed": "red"}.get(status, "white")


@app.command("diff")
def diff(ctx: typer.Context, run_a: str = typer.Argument(..., help="First run (id or unique prefix)."),
         run_b: str = typer.Argument(..., help="Second run (id or unique prefix)."),
         as_json: bool = common.JSON_OPTION) -> None:
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
def compare(ctx: typer.Context, runs: list[str] = typer.Argument(..., help="Two or more runs (ids or prefixes)."),
            show_all: bool = typer.Option(False, "--all", help="Every row, not only those whose values differ."),
            wide: bool = runids.WIDE_OPTION,
            as_json: bool = common.JSON_OPTION) -> None:
    """Runs side by side: the config, summary, latest metric and tag values that differ (--all:
    every value); nested config (training_args.*) is grouped under its section."""
    store = common.store(ctx)
    result = series.compare(store, runs, only_differences=not show_all)
    if as_json:
        common.print_json(result)
        return
    _render_compare(result, runids.labels(store, result.runs, wide))


def group_of(section: str, key: str) -> tuple[str, str]:
    """``("config", "training_args.lr")`` -> ``("config.training_args", "lr")``: a nested config
    section is shown as its own group so that 150 trainer arguments read as one block."""
    head, dot, rest = key.partition(".")
    return (f"{section}.{head}", rest) if dot and section == "config" else (section, key)


def _render_compare(c: series.Comparison, ids: dict[str, str]) -> None:
    t = common.compact(common.table(None, ["section", "key", *(f"{ids[i]}\n{n}" for i, n in zip(c.runs, c.names))], []))
    t.columns[0].no_wrap = True
    last = None
    emphasise = any(not r.differs for r in c.rows)   # --all: the rows that differ stand out
    for r in c.rows:
        group, key = group_of(r.section, r.key)
        label = group if group != last else ""       # each group named once, on its first row
        last = group
        style = "bold yellow" if emphasise and r.differs else ""
        t.add_row(Text(label), Text(key, style=style), *(Text(_cell(v), style=style) for v in r.values))
    if c.rows:
        common.console.print(t)
    if c.hidden:
        common.console.print(f"{'No values differ' if not c.rows else 'Not shown'}: {c.hidden} identical rows "
                             "(--all shows them).", highlight=False)


def _cell(value: object) -> str:
    if isinstance(value, str):
        return _hex(value, 12) if value.startswith("sha256:") else common.short(value, 24)
    if value is None:
        return "-"
    return num(value) if isinstance(value, float) else str(common.to_jsonable(value))


# -- annotations: tags, notes, tombstones ---------------------------------------------------------
@app.command("tag")
def tag(ctx: typer.Context, run: str = RUN_ARG,
        pairs: list[str] = typer.Argument(None, help="KEY=VALUE pairs to set (VALUE may be empty)."),
        remove: list[str] = typer.Option(None, "--remove", help="Drop this tag (repeat for several)."),
        as_json: bool = common.JSON_OPTION) -> None:
    """Set or drop tags on a run, even a sealed one (tags change neither its lock nor its results;
    each change is audited). Find runs by tag with --where "tags.team == 'nlp'"."""
    tags = annotations.tag(common.store(ctx), run, annotations.parse_tags(pairs or []), remove=remove or [])
    common.emit(tags, as_json, lambda t: common.console.print(
        "tags " + (", ".join(f"{k}={v}" for k, v in sorted(t.items())) or "(none)"), highlight=False, markup=False))


@app.command("note")
def note(ctx: typer.Context, run: str = RUN_ARG,
         text: str = typer.Argument(..., help="The note (quote it)."),
         as_json: bool = common.JSON_OPTION) -> None:
    """Add a note to a run, even a sealed one (audited; notes are kept in order and never edited;
    `runs show` prints them)."""
    added = annotations.note(common.store(ctx), run, text)
    common.emit(added, as_json, lambda n: common.console.print(
        f"note {n.seq} added to run:{n.run_id}", highlight=False, markup=False))


@app.command("delete")
def delete(ctx: typer.Context, run: str = RUN_ARG,
           reason: str = typer.Option(..., "--reason", "-m", help="Why (kept in the audit log)."),
           as_json: bool = common.JSON_OPTION) -> None:
    """Delete a run: it leaves lists and queries, its record and audit trail stay (a tombstone),
    and its objects become collectable by `runlock gc` once nothing else uses them. Refused for a
    running run and for a run a registered model was built from."""
    stone = annotations.delete(common.store(ctx), run, reason=reason)
    common.emit(stone, as_json, lambda s: common.console.print(
        f"deleted run:{s.run_id} (kept for audit: `runlock runs list --deleted` lists it)",
        highlight=False, markup=False))
