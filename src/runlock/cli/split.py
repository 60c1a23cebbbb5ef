"""``runlock split``: create, list, show, export, import, apply and check splits."""

from __future__ import annotations

import dataclasses

import typer

from runlock.cli import common
from runlock.cli.service import service
from runlock.data.leakage import LeakageReport
from runlock.data.minhash import NearDupSettings
from runlock.data.split import Split, SplitInfo
from runlock.data.split_ops import Checked, Exported
from runlock.data.strategies import STRATEGIES
from runlock.errors import InvalidInput
from runlock.remote.interface import SplitRequest

app = typer.Typer(help="Static, versioned splits of a dataset snapshot, with leakage checks.",
                  no_args_is_help=True)

SPLIT_ARG = typer.Argument(..., help="A split: split:NAME@vN, split:NAME (latest), NAME, or a sha256 id.")
SNAP_ARG = typer.Argument(..., help="A table snapshot: ds:NAME@vN, ds:NAME, NAME, or a sha256 id.")
PROGRESS = common.PROGRESS_OPTION
_ND = NearDupSettings()
SHINGLE = typer.Option(_ND.shingle, "--shingle", help="Words per shingle for near duplicates.")
THRESHOLD = typer.Option(_ND.threshold, "--threshold", help="Jaccard similarity from which two texts are near duplicates.")
BANDS = typer.Option(_ND.bands, "--bands", help="LSH bands (more finds lower similarities, slower).")
ROWS = typer.Option(_ND.rows, "--rows", help="MinHash values per LSH band.")
TEXT = typer.Option(None, "--text", help="Text column for duplicate checks (repeatable; default: the free-text "
                                         "columns of the data, not labels, ids, codes or times).")


@app.command("create")
def create_cmd(
    ctx: typer.Context,
    snapshot: str = SNAP_ARG,
    name: str = typer.Option(None, "--name", "-n", help="Name of the split (default: the dataset's name)."),
    strategy: str = typer.Option("random", "--strategy", help=f"One of: {', '.join(STRATEGIES)}."),
    ratios: str = typer.Option("0.8,0.1,0.1", "--ratios", help="Comma-separated shares that sum to 1."),
    seed: int = typer.Option(0, "--seed", help="Seed of the assignment (0 to 2**63-1)."),
    by: str = typer.Option(None, "--by", help="Column: class (stratified), group (group, hash), time (temporal)."),
    group: str = typer.Option(None, "--group", help="Group column of the stratified-group strategy."),
    names: str = typer.Option(None, "--names", help="Comma-separated partition names (default: train,validation,test)."),
    dedup: bool = typer.Option(False, "--dedup", help="Drop exact and near duplicates before splitting."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the leakage checks."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if the leakage checks find anything (the split "
                                                        "is still recorded, with its report)."),
    text: list[str] = TEXT, shingle: int = SHINGLE, threshold: float = THRESHOLD, bands: int = BANDS,
    rows: int = ROWS, progress: bool = PROGRESS, as_json: bool = common.JSON_OPTION,
) -> None:
    """Split SNAPSHOT into partitions and name the result split:NAME@vN; the leakage found at
    creation is reported (exit 1 with --strict)."""
    if strict and no_check:
        raise InvalidInput("--strict needs the leakage checks; drop --no-check.")
    request = SplitRequest(snapshot, name=name, ratios=tuple(_floats(ratios)), seed=seed, strategy=strategy,
                           by=by, group=group, names=_tuple(_names(names)), dedup=dedup, check=not no_check,
                           text_columns=tuple(text or ()) or None,
                           settings={"shingle": shingle, "threshold": threshold, "bands": bands, "rows": rows})
    svc = service(ctx)
    with common.progress("split", _wanted(progress, as_json)) as tick:
        on_progress = (lambda stage, done, total: tick(done, total, description=stage)) if tick else None
        result = svc.split(request, on_progress=on_progress)
    common.emit(result, as_json, _render_split)
    if strict and result.leakage is not None and not result.leakage.passed:
        raise typer.Exit(1)


@app.command("list")
def list_cmd(ctx: typer.Context, name: str = typer.Argument(None, help="Only versions of this split."),
             as_json: bool = common.JSON_OPTION) -> None:
    """List split versions."""
    common.emit(service(ctx).list_splits(name), as_json, _render_list)


@app.command("show")
def show_cmd(ctx: typer.Context, ref: str = SPLIT_ARG,
             pairs: bool = typer.Option(False, "--pairs", help="Also list the leaking pairs of the latest check."),
             as_json: bool = common.JSON_OPTION) -> None:
    """Show one split: snapshot, strategy, counts, digests and its latest leakage result."""
    sp = service(ctx).load_split(ref)
    value = {**sp.to_dict(), "report": sp.leakage.to_dict() if sp.leakage else None} if pairs else sp
    common.emit(value, as_json, lambda _: _render_split(sp, pairs=pairs))


@app.command("export")
def export_cmd(ctx: typer.Context, ref: str = SPLIT_ARG,
               output: str = typer.Option("splits_v1.json", "--output", "-o", help="File to write."),
               force: bool = common.FORCE_OPTION, as_json: bool = common.JSON_OPTION) -> None:
    """Write the record ids of every partition to a plain JSON file."""
    common.output_file(output, force)
    result = service(ctx).export_split(ref, output)
    common.emit(result, as_json, _render_export)


@app.command("import")
def import_cmd(ctx: typer.Context,
               path: str = typer.Argument(..., help='A JSON file {"train": [ids…], "test": […]}.'),
               snapshot: str = SNAP_ARG,
               name: str = typer.Option(..., "--name", "-n", help="Name of the split."),
               no_check: bool = typer.Option(False, "--no-check", help="Skip the leakage checks."),
               as_json: bool = common.JSON_OPTION) -> None:
    """Record a split made elsewhere; ids the snapshot does not hold are refused."""
    result = service(ctx).import_split(path, snapshot, name=name, check=not no_check)
    common.emit(result, as_json, _render_split)


@app.command("apply")
def apply_cmd(ctx: typer.Context, ref: str = SPLIT_ARG, snapshot: str = SNAP_ARG,
              name: str = typer.Option(None, "--name", "-n", help="Name of the new split (default: the old name)."),
              no_check: bool = typer.Option(False, "--no-check", help="Skip the leakage checks."),
              as_json: bool = common.JSON_OPTION) -> None:
    """Carry a split to a newer snapshot: old records stay put, new ones are placed by the same strategy."""
    result = service(ctx).apply_split(ref, snapshot, name=name, check=not no_check)
    common.emit(result, as_json, _render_split)


@app.command("check")
def check_cmd(ctx: typer.Context, ref: str = SPLIT_ARG, text: list[str] = TEXT, shingle: int = SHINGLE,
              threshold: float = THRESHOLD, bands: int = BANDS, rows: int = ROWS, progress: bool = PROGRESS,
              as_json: bool = common.JSON_OPTION) -> None:
    """Check a split for leakage (duplicates, near duplicates, groups, time); exit 1 if it leaks.
    By default the duplicate checks compare the free-text columns of the data (said in the output)."""
    svc = service(ctx)
    settings = NearDupSettings(shingle, threshold, bands, rows)     # checked here, as locally
    with common.progress("check", _wanted(progress, as_json)) as tick:
        on_progress = (lambda stage, done, total: tick(done, total, description=stage)) if tick else None
        result = svc.check_split(ref, settings=dataclasses.asdict(settings), text_columns=tuple(text) if text else None,
                                 on_progress=on_progress)
    common.emit(result, as_json, _render_check)
    if not result.report.passed:
        raise typer.Exit(1)


# -- rendering --------------------------------------------------------------------------------------
def _render_split(sp: Split, pairs: bool = False) -> None:
    d = sp.to_dict()
    verb = "Created" if sp.created else "Split"
    common.console.print(f"{verb} [bold]{sp.ref}[/] ({d['strategy']}, seed {d['seed']}) of "
                         f"{common.short(d['snapshot'])}", highlight=False)
    rows = [(p, c, f"{d['achieved'][p]:.4f}", common.short(d["digests"][p])) for p, c in d["counts"].items()]
    common.console.print(common.table(None, ("partition", "records", "share", "digest"), rows))
    if d["removed"]:
        common.console.print(f"{d['removed']} duplicates removed before splitting.")
    if d["applied"]:
        a = d["applied"]
        added = ", ".join(f"{p} +{n}" for p, n in a["added"].items())
        common.console.print(f"Applied from {common.short(a['from'])}: {added}; {a['missing']} records no longer present.",
                             highlight=False)
    if sp.leakage is not None:
        _render_report(sp.leakage, pairs, created=sp.created)


def _render_report(report: LeakageReport, pairs: bool = True, created: bool = False) -> None:
    c = report.counts
    if report.passed:
        common.console.print("[green]No leakage found[/] (exact, near, group and time checks).")
    elif created:
        common.console.print(f"[bold red]Leakage found at creation:[/] {c['exact']} exact and {c['near']} near "
                             f"duplicate pairs, {c['group']} groups and {c['temporal']} time overlaps across "
                             "partitions. See them with `runlock split show SPLIT --pairs`; "
                             "drop duplicates with --dedup.")
    else:
        common.console.print(f"[bold red]Leakage:[/] {c['exact']} exact and {c['near']} near duplicate pairs, "
                             f"{c['group']} groups and {c['temporal']} time overlaps across partitions.")
    for note in report.notes:
        common.console.print(f"note: {note}", highlight=False)
    for m in report.balance.get("missing", [])[:10]:
        common.console.print(f"warning: class {m['class']!r} has no record in {m['partition']}", highlight=False)
    if pairs and report.pairs:
        rows = [(p.kind, p.a, p.b, f"{p.similarity:.3f}", " / ".join(p.partitions)) for p in report.pairs[:50]]
        common.console.print(common.table(None, ("kind", "a", "b", "similarity", "partitions"), rows))
    if pairs and report.groups:
        rows = [(str(g["group"]), ", ".join(g["partitions"]), g["records"]) for g in report.groups[:50]]
        common.console.print(common.table(None, ("group", "partitions", "records"), rows))
    for t in report.temporal:
        common.console.print(f"{t['earlier']} ends at {t['earlier_max']}, {t['later']} starts at {t['later_min']}",
                             highlight=False)


def _render_check(result: Checked) -> None:
    common.console.print(f"Checked [bold]{result.split}[/]", highlight=False)
    _render_report(result.report)


def _render_list(items: list[SplitInfo]) -> None:
    rows = [(i.ref, common.short(i.id), common.short(i.snapshot), i.strategy,
             " ".join(f"{p}={n}" for p, n in i.counts.items()),
             {True: "ok", False: "LEAKS", None: "-"}[i.passed], i.created_at[:19]) for i in items]
    common.console.print(common.table(None, ("split", "id", "snapshot", "strategy", "records", "leakage",
                                             "created"), rows))


def _render_export(result: Exported) -> None:
    counts = ", ".join(f"{p} {n}" for p, n in result.counts.items())
    common.console.print(f"Wrote {result.path} from {result.split} ({counts})", highlight=False)


# -- parsing and progress ----------------------------------------------------------------------------
def _wanted(progress: bool | None, as_json: bool) -> bool | None:
    """A progress bar as asked; by default on a terminal, never with --json."""
    return progress if progress is not None else (False if as_json else None)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidInput(f"--ratios {text!r} must be numbers separated by commas, e.g. 0.8,0.1,0.1.") from None


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values is not None else None


def _names(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",")] if text else None
