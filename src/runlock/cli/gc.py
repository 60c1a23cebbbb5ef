"""``runlock gc``: remove scratch files of ended processes and objects nothing references."""

from __future__ import annotations

import typer

from runlock import gc as gc_mod
from runlock.cli import common


def gc(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", help="Delete (admin only, audited). Without it, only list."),
    grace: str = typer.Option("1d", "--grace", help="Keep unreferenced objects younger than this "
                              "(seconds, or 30m, 1h, 2d): a run or snapshot in progress stores objects "
                              "before the record that names them."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Find (with --yes, delete) scratch files of dead processes and objects that nothing references."""
    report = gc_mod.collect(common.store(ctx), grace=gc_mod.parse_grace(grace), delete=yes)
    common.emit(report, as_json, _render)


def _render(report: gc_mod.GcReport) -> None:
    verb = "removed" if report.deleted else "would remove"
    if report.leftovers and not report.deleted:
        common.console.print(common.table(None, ["kind", "what", "bytes", "why"],
                                          [(x.kind, x.id, x.size, x.reason) for x in report.leftovers]))
    common.console.print(
        f"{verb} {len(report.scratch)} scratch file(s) and {len(report.unreferenced)} unreferenced object(s), "
        f"{report.bytes} B; {report.referenced} of {report.objects} object(s) referenced; {report.kept_young} "
        f"unreferenced object(s) younger than {report.grace:g} s kept.", highlight=False)
    if report.leftovers and not report.deleted:
        common.console.print("Run `runlock gc --yes` to delete them.", highlight=False)
