"""``runlock data``: snapshot, list, show, diff, check out and verify dataset snapshots."""

from __future__ import annotations


import typer

from runlock.cli import common
from runlock.cli.service import service
from runlock.data.diff import SnapshotDiff
from runlock.data.snapshot import Snapshot, SnapshotInfo
from runlock.data.verify import VerifyReport

app = typer.Typer(help="Dataset snapshots: content-addressed, versioned, verifiable.", no_args_is_help=True)

REF_ARG = typer.Argument(..., help="A snapshot: ds:NAME@vN, ds:NAME (latest), NAME, or a sha256 id.")


@app.command("snapshot")
def snapshot_cmd(
    ctx: typer.Context,
    path: str = typer.Argument(..., help="A file, a folder, or a table (.csv .tsv .jsonl .parquet)."),
    name: str = typer.Option(None, "--name", "-n", help="Name of the dataset (default: from the path)."),
    id_column: str = typer.Option(None, "--id-column", help="Column holding each record's id (tables)."),
    kind: str = typer.Option(None, "--kind", help="Force 'files' (store a table as a plain file) or 'table'."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Re-hash every file, ignoring the stat cache."),
    progress: bool = common.PROGRESS_OPTION,
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Snapshot PATH as the next version of ds:NAME (no new version if nothing changed)."""
    svc = service(ctx)
    with common.progress("hashing", _bar(progress, as_json), unit="bytes") as tick:
        on_progress = (lambda p: tick(p.bytes_done, p.bytes_total, note=f"{p.files_done}/{p.files_total} files")
                       ) if tick else None
        snap = svc.snapshot(path, name, id_column=id_column, kind=kind, on_progress=on_progress,
                            use_cache=not no_cache)
    common.emit(snap, as_json, _render_snapshot)


@app.command("list")
def list_cmd(ctx: typer.Context, name: str = typer.Argument(None, help="Only versions of this dataset."),
             as_json: bool = common.JSON_OPTION) -> None:
    """List dataset snapshot versions."""
    common.emit(service(ctx).list_snapshots(name), as_json, _render_list)


@app.command("show")
def show_cmd(ctx: typer.Context, ref: str = REF_ARG,
             files: bool = typer.Option(False, "--files", help="Also list every file with its size and hash."),
             as_json: bool = common.JSON_OPTION) -> None:
    """Show one snapshot: size, files, records, schema, parent and recipe."""
    snap = service(ctx).load_snapshot(ref)
    value = {**snap.to_dict(), "entries": snap.entries} if files else snap
    common.emit(value, as_json, lambda _: _render_snapshot(snap, files=files))


@app.command("diff")
def diff_cmd(ctx: typer.Context, old: str = REF_ARG, new: str = REF_ARG, as_json: bool = common.JSON_OPTION) -> None:
    """Files added, removed and changed between two snapshots; records too for tables."""
    common.emit(service(ctx).diff_snapshots(old, new), as_json, _render_diff)


@app.command("checkout")
def checkout_cmd(ctx: typer.Context, ref: str = REF_ARG,
                 dest: str = typer.Argument(..., help="A new (or empty) folder to write the files into."),
                 as_json: bool = common.JSON_OPTION) -> None:
    """Write a snapshot's files into DEST, verifying every byte."""
    result = service(ctx).checkout(ref, dest)
    common.emit(result, as_json, lambda r: common.console.print(
        f"Checked out {r.ref} ({r.files} files, {_bytes(r.size)}) into {r.dest}", highlight=False))


@app.command("verify")
def verify_cmd(ctx: typer.Context, ref: str = typer.Argument(None, help="One snapshot (default: every snapshot)."),
               path: str = typer.Option(None, "--path", help="Re-hash this folder and compare it with REF instead."),
               progress: bool = common.PROGRESS_OPTION, as_json: bool = common.JSON_OPTION) -> None:
    """Re-hash stored snapshots (or a folder against one); exit 1 if anything differs."""
    svc = service(ctx)
    with common.progress("re-hashing", _bar(progress, as_json), unit="files") as tick:
        report = svc.verify_snapshots(ref, path=path, on_progress=tick)
    common.emit(report, as_json, _render_verify)
    if not report.ok:
        raise typer.Exit(1)


def _bar(wanted: bool | None, as_json: bool) -> bool | None:
    """A progress bar when asked for; else on a terminal, but not under --json."""
    return wanted if wanted is not None else (False if as_json else None)


# -- rendering -----------------------------------------------------------------------------------
def _render_snapshot(snap: Snapshot, files: bool = False) -> None:
    verb = "Created" if snap.created else "Snapshot"
    out = [f"{verb} {snap.ref}  {snap.id}", f"  kind {snap.kind}, {snap.files} files, {_bytes(snap.size)}"]
    table = snap.manifest.get("table")
    if table:
        cols = ", ".join(f"{c['name']}:{c['type']}" for c in table["columns"])
        out.append(f"  {table['record_count']} records ({table['format']}, id column "
                   f"{table['id_column'] or 'none: content hashes'}); columns {cols}")
    if snap.parent:
        out.append(f"  derived from {snap.parent} by {snap.recipe['function']} params {snap.recipe['params']}")
    common.console.print("\n".join(out), highlight=False)
    if files:
        common.console.print(common.table(None, ["path", "size", "sha256"],
                                          [(e["path"], e["size"], e["sha256"]) for e in snap.entries]))


def _render_list(items: list[SnapshotInfo]) -> None:
    tables = any(i.record_count is not None for i in items)   # a records column only when a table is listed
    rows = [(i.ref, i.id.partition(":")[2][:12], i.kind, i.files, _bytes(i.size),
             *([i.record_count] if tables else []), i.created_at[:16].replace("T", " ")) for i in items]
    t = common.compact(common.table(None, ["snapshot", "sha256", "kind", "files", "size",
                                           *(["records"] if tables else []), "created"], rows))
    t.columns[0].no_wrap = True     # a reference is copied whole; the other columns give way
    common.console.print(t)


def _render_diff(d: SnapshotDiff) -> None:
    lines = [f"{d.old} -> {d.new}" + ("  (identical)" if d.identical else "")]
    for label, changes in (("files", d.files), ("records", d.records)):
        if changes is None:
            continue
        lines.append(f"  {label}: {len(changes.added)} added, {len(changes.removed)} removed, "
                     f"{len(changes.changed)} changed")
        for sign, keys in (("+", changes.added), ("-", changes.removed), ("~", changes.changed)):
            lines.extend(f"    {sign} {k}" for k in keys[:20])
            if len(keys) > 20:
                lines.append(f"    {sign} … {len(keys) - 20} more (see --json)")
    common.console.print("\n".join(lines), highlight=False)


def _render_verify(r: VerifyReport) -> None:
    if r.ok:
        common.console.print(f"OK: {r.snapshots} snapshot(s), {r.objects} objects re-hashed.", highlight=False)
        return
    rows = [(p.snapshot, p.problem, p.path or "(manifest)", common.short(p.object), p.detail) for p in r.problems]
    common.console.print(common.table(f"{len(r.problems)} problem(s)", ["snapshot", "problem", "path", "object",
                                                                         "detail"], rows))


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
