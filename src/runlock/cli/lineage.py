"""``runlock lineage ENTITY``: where an entity came from, or what was made from it."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.tree import Tree

from runlock import lineage as lineage_graph
from runlock.cli import common, runids
from runlock.cli.service import service
from runlock.errors import InvalidInput
from runlock.lineage import entities, export

_COLOUR = {"finished": "green", "running": "yellow", "failed": "red", "crashed": "red"}


def lineage(
    ctx: typer.Context,
    entity: str = typer.Argument(..., help="ds:NAME@vN, split:NAME@vN, model:NAME@vN or @ALIAS, run:ID, "
                                           "art:sha256:… or a content id."),
    upstream: bool = typer.Option(False, "--upstream", help="What ENTITY came from (the default)."),
    downstream: bool = typer.Option(False, "--downstream",
                                    help="What was made from ENTITY: runs, artifacts, models (impact)."),
    depth: int = typer.Option(10, "--depth", "-d", min=0, help="Follow at most this many edges."),
    fmt: str = typer.Option("tree", "--format", "-f",
                            help="tree, json, dot, png, prov-json (W3C PROV) or openlineage (JSON lines)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    max_nodes: int = typer.Option(lineage_graph.MAX_NODES, "--max-nodes", min=1,
                                  help="Stop after this many nodes (the answer says it was truncated)."),
    wide: bool = runids.WIDE_OPTION,
    force: bool = common.FORCE_OPTION,
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Print the lineage of an entity as a tree, or export it (DOT, PNG, PROV-JSON, OpenLineage).

    With --downstream it answers "which runs and models were built on this data?"."""
    if fmt not in export.FORMATS:
        raise InvalidInput(f"Unknown format {fmt!r}; use one of {', '.join(export.FORMATS)}.")
    common.output_file(output, force)
    direction = "both" if upstream and downstream else "downstream" if downstream else "upstream"
    svc = service(ctx)
    view = svc.lineage(entity, direction, depth, max_nodes)
    fmt = "json" if as_json else fmt
    if output is None and fmt in ("tree", "json"):
        runs = [k[len("run:"):] for k in view.graph.nodes if k.startswith("run:")]
        short = {} if wide or fmt == "json" else runids.shown(svc, runs, wide)
        common.emit(view, fmt == "json", lambda v: _render(v, short))
        return
    if fmt == "tree":
        raise InvalidInput("--output needs --format json, dot, png, prov-json or openlineage.")
    if output is not None:
        export.write(view, fmt, output)
        return
    data = export.render(view, fmt)
    if fmt == "png" and sys.stdout.isatty():
        raise InvalidInput("Refusing to print a PNG to a terminal.", hint="Pass --output FILE.png.")
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _label(view: entities.LineageView, node: lineage_graph.TreeNode, short: dict[str, str]) -> str:
    info = view.nodes[node.key]
    via = f"[dim]{node.relation}[/] " if node.relation else ""
    kind, _, ident = node.key.partition(":")
    key = f"run:{short[ident]}" if kind == "run" and ident in short else (
        common.short(ident, 19) if info.label != node.key else common.short(node.key, 34))
    text = f"[bold]{escape(info.label)}[/]" if info.label != node.key else f"[bold]{escape(key)}[/]"
    if info.label != node.key:
        text += f" [dim]{escape(key)}[/]"
    if info.status:
        text += f" [{_COLOUR.get(info.status, 'white')}]{info.status}[/]"
    if info.attrs.get("deleted_at"):
        text += " [red]deleted[/]"
    if info.attrs.get("aliases"):
        text += " " + " ".join(f"[cyan]@{a}[/]" for a in info.attrs["aliases"])
    return via + text + (" [dim](shown above)[/]" if node.repeat else "")


def _render(view: entities.LineageView, short: dict[str, str]) -> None:
    root = lineage_graph.as_tree(view.graph)
    tree = Tree(_label(view, root, short))
    todo = [(tree, root)]
    while todo:
        parent, node = todo.pop()
        for child in node.children:
            todo.append((parent.add(_label(view, child, short)), child))
    common.console.print(tree)
    if view.graph.direction != "upstream":
        models = view.impact.get("model", [])
        common.console.print(f"{len(models)} model version(s) downstream: " + (", ".join(models) or "none")
                             + f"; {len(view.impact.get('run', []))} run(s).")
    if view.graph.truncated:
        common.err_console.print(f"[yellow]truncated at {len(view.graph.nodes)} nodes; "
                                 "raise --max-nodes or lower --depth[/]")
