"""Store commands: ``init``, ``migrate``, ``fsck``."""

from __future__ import annotations

import grp
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from runlock import fsck as fsck_mod
from runlock.cli import common
from runlock.store import Store, schema_revisions, migrate as migrate_schema
from runlock.workspace import init as init_store


def init(
    path: Path = typer.Argument(Path("."), help="Directory to create .runlock/ in."),
    database: str = typer.Option(None, "--database", help="Metadata database URL (default: SQLite in .runlock/). "
                                 "Example: postgresql+psycopg://user@host/db"),
    objects: str = typer.Option(None, "--objects", help="Object location (default: .runlock/objects). "
                                "Example: s3://bucket/prefix (endpoint from RUNLOCK_S3_ENDPOINT_URL)."),
    shared: bool = typer.Option(False, "--shared", help="Let every account of the store folder's group write "
                                "the store (files 0660, folders 2770); default: private to you (0640 / 0750)."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Create a runlock store (.runlock/) in PATH, or upgrade the one there."""
    store = init_store(path, database=database, objects=objects, shared=shared)
    modes = store.modes
    info = {"store": str(store.root), **store.info(), "shared": modes.shared,
            "group": _group_of(store.root), "file_mode": f"{modes.file:04o}", "dir_mode": f"{modes.dir:04o}"}
    store.close()
    common.emit(info, as_json, _render_init)


def _render_init(i: dict) -> None:
    common.console.print(f"Initialised runlock store in [bold]{i['store']}[/] (id {i['store_id']}).")
    if i["shared"]:
        common.console.print(f"Shared with group {i['group']}: its members may read and write the store "
                             f"(files {i['file_mode']}, folders {i['dir_mode']}).", highlight=False)


def _group_of(path: Path) -> str:
    gid = path.stat().st_gid
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def migrate(ctx: typer.Context, as_json: bool = common.JSON_OPTION) -> None:
    """Upgrade the store's schema to this version of runlock."""
    st = common.state(ctx)
    store = Store.open(st.store_path, check_schema=False)
    before, _ = schema_revisions(store.db)
    migrate_schema(store.db)
    after, heads = schema_revisions(store.db)
    store.close()
    info = {"store": str(store.root), "before": sorted(before), "revisions": sorted(after),
            "upgraded": before != after, "up_to_date": after == heads}
    common.emit(info, as_json, lambda i: common.console.print(
        f"Store {i['store']} " + ("upgraded; it is" if i["upgraded"] else "is") + " up to date.",
        highlight=False, markup=False))


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
    else:
        rows = [(p.id, p.problem, p.detail) for p in report.problems]
        rows += [(m["id"], "missing", f"referenced by {m['referenced_by']}") for m in report.referenced_missing]
        common.console.print(common.table(f"{len(rows)} problem(s) in {report.objects_checked} objects",
                                          ["object", "problem", "detail"], rows))
    for message in report.changed_records:
        common.console.print(f"[bold red]changed since sealed[/]: {message}", highlight=False)
    if report.unreferenced or report.scratch_files:
        common.console.print(f"leftovers: {report.scratch_files} scratch file(s) of ended processes and "
                             f"{report.unreferenced} unreferenced object(s), {report.leftover_bytes} B; "
                             "`runlock gc` lists them, `runlock gc --yes` removes them.", highlight=False)
