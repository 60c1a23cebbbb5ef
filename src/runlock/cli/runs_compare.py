"""``runlock runs diff`` and ``runlock runs compare``: what differs between runs."""

from __future__ import annotations

import typer
from rich.text import Text

from runlock.cli import common, runids
from runlock.cli.service import service
from runlock.cli.runs import hex_prefix, num
from runlock.tracking import diff as diffs
from runlock.tracking import series


def diff(ctx: typer.Context, run_a: str = typer.Argument(..., help="First run (id or unique prefix)."),
         run_b: str = typer.Argument(..., help="Second run (id or unique prefix)."),
         as_json: bool = common.JSON_OPTION) -> None:
    """What differs between two runs: config, seeds, knobs, code, environment, inputs, metrics."""
    result = service(ctx).diff_runs(run_a, run_b)
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


def compare(ctx: typer.Context, runs: list[str] = typer.Argument(..., help="Two or more runs (ids or prefixes)."),
            show_all: bool = typer.Option(False, "--all", help="Every row, not only those whose values differ."),
            wide: bool = runids.WIDE_OPTION,
            as_json: bool = common.JSON_OPTION) -> None:
    """Runs side by side: the config, summary, latest metric and tag values that differ (--all:
    every value); nested config (training_args.*) is grouped under its section."""
    svc = service(ctx)
    result = svc.compare_runs(runs, only_differences=not show_all)
    if as_json:
        common.print_json(result)
        return
    _render_compare(result, runids.shown(svc, result.runs, wide))


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
        return hex_prefix(value, 12) if value.startswith("sha256:") else common.short(value, 24)
    if value is None:
        return "-"
    return num(value) if isinstance(value, float) else str(common.to_jsonable(value))
