"""``runlock runs tag``, ``note`` and ``delete``: annotations that change neither a run's lock nor
its results (each audited), and tombstones."""

from __future__ import annotations

import typer

from runlock.cli import common
from runlock.cli.runs import RUN_ARG
from runlock.cli.service import service
from runlock.tracking import annotations


def tag(ctx: typer.Context, run: str = RUN_ARG,
        pairs: list[str] = typer.Argument(None, help="KEY=VALUE pairs to set (VALUE may be empty)."),
        remove: list[str] = typer.Option(None, "--remove", help="Drop this tag (repeat for several)."),
        as_json: bool = common.JSON_OPTION) -> None:
    """Set or drop tags on a run, even a sealed one (tags change neither its lock nor its results;
    each change is audited). Find runs by tag with --where "tags.team == 'nlp'"."""
    tags = service(ctx).tag_run(run, annotations.parse_tags(pairs or []), remove=remove or [])
    common.emit(tags, as_json, lambda t: common.console.print(
        "tags " + (", ".join(f"{k}={v}" for k, v in sorted(t.items())) or "(none)"), highlight=False, markup=False))


def note(ctx: typer.Context, run: str = RUN_ARG,
         text: str = typer.Argument(..., help="The note (quote it)."),
         as_json: bool = common.JSON_OPTION) -> None:
    """Add a note to a run, even a sealed one (audited; notes are kept in order and never edited;
    `runs show` prints them)."""
    added = service(ctx).note_run(run, text)
    common.emit(added, as_json, lambda n: common.console.print(
        f"note {n.seq} added to run:{n.run_id}", highlight=False, markup=False))


def delete(ctx: typer.Context, run: str = RUN_ARG,
           reason: str = typer.Option(..., "--reason", "-m", help="Why (kept in the audit log)."),
           as_json: bool = common.JSON_OPTION) -> None:
    """Delete a run: it leaves lists and queries, its record and audit trail stay (a tombstone),
    and its objects become collectable by `runlock gc` once nothing else uses them. Refused for a
    running run and for a run a registered model was built from."""
    stone = service(ctx).delete_run(run, reason=reason)
    common.emit(stone, as_json, lambda s: common.console.print(
        f"deleted run:{s.run_id} (kept for audit: `runlock runs list --deleted` lists it)",
        highlight=False, markup=False))
