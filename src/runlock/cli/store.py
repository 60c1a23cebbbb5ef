"""Store commands: ``init``, ``migrate``, ``fsck``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from runlock import fsck as fsck_mod
from runlock.cli import common
from runlock.store import Store, migrate as migrate_schema
from runlock.workspace import init as init_store


def init(
    path: Path = typer.Argument(Path("."), help="Directory to create .runlock/ in."),
    database: str = typer.Option(None, "--database", help="Metadata database URL (default: SQLite in .runlock/). "
                                 "Example: postgresql+psycopg://user@host/db"),
    objects: str = typer.Option(None, "--objects", help="Object location (default: .runlock/objects). "
                                "Example: s3://bucket/prefix (endpoint from RUNLOCK_S3_ENDPOINT_URL)."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Create a runlock store (.runlock/) in PATH, or upgrade the one there."""
    store = init_store(path, database=database, objects=objects)
    info = {"store": str(store.root), **store.info()}
    store.close()
    common.emit(info, as_json, lambda i: common.console.print(
        f"Initialised runlock store in [bold]{i['store']}[/] (id {i['store_id']})."))


def migrate(ctx: typer.Context) -> None:
    """Upgrade the store's schema to this version of runlock."""
    st = common.state(ctx)
    store = Store.open(st.store_path, check_schema=False)
    migrate_schema(store.db)
    store.close()
    common.console.print(f"Store {store.root} is up to date.")


def fsck(ctx: typer.Context, as_json: bool = common.JSON_OPTION) -> None:
    """Verify every object's hash and that every object the records point at exists."""
    store = common.store(ctx)
    total = sum(1 for _ in store.objects.iter_ids())
    with Progress(TextColumn("checking objects"), BarColumn(), MofNCompleteColumn(),
                  console=common.err_console, transient=True, disable=as_json) as bar:
        task = bar.add_task("fsck", total=total)
        report = fsck_mod.fsck(store, progress=lambda n: bar.update(task, completed=n))
    common.emit(report, as_json, _render_fsck)
    if not report.ok:
        raise typer.Exit(1)


def _render_fsck(report: fsck_mod.FsckReport) -> None:
    if report.ok:
        common.console.print(f"[green]ok[/]: {report.objects_checked} objects verified, none missing.")
        return
    rows = [(p.id, p.problem, p.detail) for p in report.problems]
    rows += [(m["id"], "missing", f"referenced by {m['referenced_by']}") for m in report.referenced_missing]
    common.console.print(common.table(f"{len(rows)} problem(s) in {report.objects_checked} objects",
                                      ["object", "problem", "detail"], rows))
