"""A lineage graph as a PNG without Graphviz: a layered layout drawn with matplotlib.

Graphviz's ``dot`` draws better graphs, and ``export.to_png`` uses it when it is on PATH; this
module is the fallback so that a picture never needs a system package. The layout is the
classic Sugiyama recipe cut to what lineage graphs need (they are small DAGs):

1. layer: every node sits one row above the deepest thing it depends on (longest path), so
   raw data is at the bottom and the newest output at the top, as ``dot``'s ``rankdir=BT``;
2. order: a few barycentre sweeps reduce crossings (each node moves toward the mean position
   of its neighbours in the row below, then above);
3. draw: boxes with the node's label, arrows from dependent to dependency, edge kind beside.

Pure function of the view; matplotlib (the ``plot`` extra) is imported only when drawing.
"""

from __future__ import annotations

import io
from collections import defaultdict

from runlock.errors import InvalidInput
from runlock.lineage.entities import LineageView

SWEEPS = 4
_COLOURS = {"snapshot": "#dbeafe", "split": "#e0e7ff", "run": "#fef3c7", "artifact": "#dcfce7",
            "model": "#fce7f3", "evaluation": "#f3e8ff"}
_STATUS_EDGE = {"failed": "#dc2626", "crashed": "#dc2626", "running": "#ea580c"}


def layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Row of each node: 0 for nodes that depend on nothing, else 1 + the deepest dependency.

    ``edges`` point from the dependent node to its dependency (as lineage edges do)."""
    deps: dict[str, set[str]] = defaultdict(set)
    for src, dst in edges:
        if src != dst:
            deps[src].add(dst)
    row: dict[str, int] = {}
    for start in sorted(nodes):
        if start in row:
            continue
        stack, on_path = [(start, iter(sorted(deps[start])))], {start}
        while stack:
            key, todo = stack[-1]
            nxt = next((d for d in todo if d not in row and d not in on_path), None)
            if nxt is not None:
                stack.append((nxt, iter(sorted(deps[nxt]))))
                on_path.add(nxt)
                continue
            row[key] = 1 + max((row[d] for d in deps[key] if d in row), default=-1)
            on_path.discard(key)
            stack.pop()
    return row


def order(row: dict[str, int], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Nodes per row, ordered to reduce crossings by barycentre sweeps (deterministic)."""
    rows: list[list[str]] = [[] for _ in range(max(row.values(), default=-1) + 1)]
    for key in sorted(row):
        rows[row[key]].append(key)
    near: dict[str, set[str]] = defaultdict(set)
    for src, dst in edges:
        near[src].add(dst)
        near[dst].add(src)
    for sweep in range(SWEEPS):
        span = range(1, len(rows)) if sweep % 2 == 0 else range(len(rows) - 2, -1, -1)
        for r in span:
            ref = rows[r - 1] if sweep % 2 == 0 else rows[r + 1]
            pos = {k: i / max(len(ref) - 1, 1) for i, k in enumerate(ref)}
            here = {k: i / max(len(rows[r]) - 1, 1) for i, k in enumerate(rows[r])}

            def centre(key: str) -> tuple[float, str]:
                seen = [pos[n] for n in near[key] if n in pos]
                return (sum(seen) / len(seen) if seen else here[key], key)

            rows[r].sort(key=centre)
    return rows


def to_png(view: LineageView) -> bytes:
    """``view`` drawn as a PNG with matplotlib (no Graphviz needed)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise InvalidInput("Drawing lineage needs Graphviz's `dot` or matplotlib; neither is installed.",
                           hint="Install one: `pip install 'runlock[plot]'` or `apt-get install graphviz`, "
                                "or use --format dot.") from None
    edges = [(e.src, e.dst) for e in view.graph.edges]
    rows = order(layers(sorted(view.graph.nodes), edges), edges)
    width = max((len(r) for r in rows), default=1)
    xy = {key: ((i + 0.5) * width / len(r), float(y)) for y, r in enumerate(rows) for i, key in enumerate(r)}
    fig = Figure(figsize=(max(4.0, 2.6 * width), max(2.0, 1.3 * len(rows))), layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(0, width)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axis("off")
    for e in view.graph.edges:
        (x1, y1), (x2, y2) = xy[e.src], xy[e.dst]
        ax.annotate("", xy=(x2, y2 + 0.22), xytext=(x1, y1 - 0.22),
                    arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1.0})
        ax.text((x1 + x2) / 2, (y1 + y2) / 2, e.kind.replace("_", " "), fontsize=7, color="#555555",
                ha="center", va="center", bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"})
    for key, (x, y) in xy.items():
        info = view.nodes.get(key)
        label = info.label if info else key
        kind = info.type if info else key.partition(":")[0]
        text = label if len(label) <= 30 else f"{label[:29]}…"
        ax.text(x, y, f"{text}\n({kind})", ha="center", va="center", fontsize=8,
                fontweight="bold" if key == view.graph.root else "normal",
                bbox={"boxstyle": "round,pad=0.4", "fc": _COLOURS.get(kind, "#f3f4f6"),
                      "ec": _STATUS_EDGE.get(info.status or "", "#374151") if info else "#374151",
                      "lw": 2.0 if key == view.graph.root else 1.0})
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf, metadata={"Software": None})
    return buf.getvalue()
