"""``runlock runs list``: runs, newest first, or filtered and sorted. It loads only the query and
a plain table (``cli/plain.py``), so that listing starts about as fast as the libraries allow."""

from __future__ import annotations

import sys

import typer

from runlock.cli import plain, runids
from runlock.cli.runs import colour, hex_prefix
from runlock.cli.service import service
from runlock.tracking import query

WHERE_HELP = ("Filter, e.g. \"config.lr > 1e-4 and summary.eval_f1 >= 0.9\": comparisons (== != < <= > >= in) "
              "of config.X, summary.X, metrics.X (latest value), tags.X or a run field (status, name, "
              "last_step, started_at ...) with literals, joined by and / or / not. A dotted name matches "
              "keys whose other characters are _ (summary.eval_f1 matches eval/f1); summary[\"eval/f1\"] "
              "matches exactly. A run without the key does not match.")


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
    as_json: bool = plain.JSON_OPTION,
) -> None:
    """List runs, newest first, or filtered with --where and ordered with --sort (deleted runs
    are left out; --deleted lists them)."""
    svc = service(ctx)
    found = svc.find_runs(project=project, status=status, where=where, sort=sort, limit=limit or None,
                          deleted=deleted)
    if as_json:
        plain.print_json(found)
        return
    ids = [f.record.id for f in found]
    render(found, runids.shown(svc, ids, wide), deleted)


def render(found: list[query.FoundRun], ids: dict[str, str], deleted: bool = False) -> None:
    extra = list(dict.fromkeys(k for f in found for k in f.fields
                               if k not in ("status", "project", "name", "id", "last_step")))
    if deleted:    # tombstones: who deleted what, when and why
        head = ["run", "project", "name", *extra, "deleted", "by", "reason"]
        rows = [(ids[f.record.id], f.record.project, f.record.name,
                 *(plain.to_jsonable(f.fields.get(k)) for k in extra),
                 (f.record.deleted_at or "")[:16].replace("T", " "), f.record.deleted_by, f.record.deleted_reason)
                for f in found]
    else:
        head = ["run", "project", "name", "status", "started", "step", *extra, "recipe"]
        rows = [(ids[f.record.id], f.record.project, f.record.name, plain.Styled(f.record.status, colour(f.record.status)),
                 f.record.started_at[:16].replace("T", " "), f.record.last_step,
                 *(plain.to_jsonable(f.fields.get(k)) for k in extra), hex_prefix(f.record.recipe_id)) for f in found]
    plain.print_table(head, rows)     # an id is copied whole (never folded); the other columns give way
    if not found:
        sys.stderr.write("no runs" + (" match" if extra else "") + "\n")
