"""``pipeline show`` and ``pipeline export``: the DAG with each stage's status, and the stage
state of the database written out for review (``pipeline.lock.json``)."""

from __future__ import annotations

import importlib.util
import json

from runlock import canonical, lineage
from runlock.errors import InvalidInput
from runlock.lineage import draw
from runlock.lineage.entities import LineageView, NodeInfo
from runlock.pipeline import state
from runlock.pipeline.spec import Pipeline
from runlock.pipeline.status import StageStatus
from runlock.store import Store

_FILL = {"up-to-date": "#dcfce7", "stale": "#fef3c7", "never-run": "#e5e7eb", "failed": "#fecaca"}
EXPORT_FORMAT = "runlock.pipeline-lock/1"


def graph(pipe: Pipeline, statuses: list[StageStatus]) -> dict:
    by = {s.stage: s for s in statuses}
    return {"stages": [{**pipe.stages[n].to_dict(), "status": by[n].state if n in by else None,
                        "reasons": by[n].reasons if n in by else [], "run_id": by[n].run_id if n in by else None}
                       for n in pipe.order()],
            "edges": [{"from": up, "to": n} for n in pipe.order() for up in pipe.upstream[n]]}


def to_dot(pipe: Pipeline, statuses: list[StageStatus]) -> str:
    g = graph(pipe, statuses)
    lines = ["digraph pipeline {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for s in g["stages"]:
        label = f"{s['name']}\\n{s['status'] or ''}".replace('"', '\\"')
        lines.append(f'  "{s["name"]}" [label="{label}", fillcolor="{_FILL.get(s["status"], "#ffffff")}"];')
    lines += [f'  "{e["from"]}" -> "{e["to"]}";' for e in g["edges"]]
    return "\n".join([*lines, "}"]) + "\n"


def to_png(pipe: Pipeline, statuses: list[StageStatus]) -> bytes:
    """The DAG as a PNG, drawn by the lineage drawer (matplotlib, no Graphviz): a box per stage with
    its status under its name (a failed stage outlined in red), an arrow from each stage to each
    stage it needs."""
    if importlib.util.find_spec("matplotlib") is None:
        raise InvalidInput("Drawing the pipeline needs matplotlib, which is not installed.",
                           hint="Install it: `pip install 'runlock[plot]'`, or use --format dot.")
    by = {s.stage: s.state for s in statuses}
    nodes = {f"stage:{n}": NodeInfo(f"stage:{n}", by.get(n) or "stage", n, n,
                                    status="failed" if by.get(n) == "failed" else None) for n in pipe.order()}
    edges = tuple(lineage.Edge("needs", f"stage:{n}", f"stage:{up}", "") for n in pipe.order() for up in pipe.upstream[n])
    graph = lineage.Graph(root="", direction="upstream", depth=len(nodes), nodes=dict.fromkeys(nodes, 0), edges=edges)
    return draw.to_png(LineageView(graph, nodes))


def export(store: Store, pipe: Pipeline) -> str:
    """Each stage's last finished (or restored) execution, as canonical JSON for review."""
    stages = {}
    for n in pipe.order():
        row = state.last(store, str(pipe.root), n)
        stages[n] = None if row is None else {
            "stage_key": row.stage_key, "status": row.status, "run_id": row.made_by, "at": row.ended_at,
            "cmd": row.inputs.get("cmd"), "seed": row.inputs.get("seed"), "params": row.inputs.get("params"),
            "deps": {d: i.get("digest") for d, i in (row.inputs.get("deps") or {}).items()},
            "outs": {o: i.get("digest") for o, i in row.outs.items()}}
    return json.dumps(canonical.normalize({"format": EXPORT_FORMAT, "stages": stages}), indent=2, sort_keys=True) + "\n"
