"""``pipeline show`` and ``pipeline export``: the DAG with each stage's status, and the stage
state of the database written out for review (``pipeline.lock.json``)."""

from __future__ import annotations

import io
import json

from runlock import canonical
from runlock.errors import InvalidInput
from runlock.lineage.draw import layers, order
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
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise InvalidInput("Drawing the pipeline needs matplotlib.",
                           hint="Install it: `pip install 'runlock[plot]'`, or use --format dot.") from None
    by = {s.stage: s.state for s in statuses}
    edges = [(n, up) for n in pipe.order() for up in pipe.upstream[n]]   # dependent -> dependency, as lineage
    rows = order(layers(pipe.order(), edges), edges)
    width = max((len(r) for r in rows), default=1)
    xy = {k: ((i + 0.5) * width / len(r), float(y)) for y, r in enumerate(rows) for i, k in enumerate(r)}
    fig = Figure(figsize=(max(4.0, 2.6 * width), max(2.0, 1.3 * len(rows))), layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(0, width)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axis("off")
    for src, dst in edges:
        (x1, y1), (x2, y2) = xy[dst], xy[src]
        ax.annotate("", xy=(x2, y2 - 0.22), xytext=(x1, y1 + 0.22), arrowprops={"arrowstyle": "->", "color": "#555"})
    for name, (x, y) in xy.items():
        ax.text(x, y, f"{name}\n{by.get(name, '')}", ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "fc": _FILL.get(by.get(name, ""), "#ffffff"), "ec": "#555"})
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


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
