"""A lineage graph as inline SVG, drawn on the server with the layered layout of
``runlock.lineage.draw`` (rows by longest path, barycentre order): no JavaScript layout library.

Every label is XML-escaped; a node links to its page where the UI has one.
"""

from __future__ import annotations

from html import escape

from runlock.lineage.draw import layers, order
from runlock.lineage.entities import LineageView

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 210, 44, 24, 56, 12
_FILL = {"snapshot": "#dbeafe", "split": "#e0e7ff", "run": "#fef3c7", "artifact": "#dcfce7",
         "model": "#fce7f3", "evaluation": "#f3e8ff"}


def href(key: str) -> str | None:
    kind, _, ident = key.partition(":")
    if kind == "run":
        return f"/runs/{ident}"
    if kind in ("snapshot", "split"):
        return "/data"
    if kind == "model":
        return "/registry"
    return None


def to_svg(view: LineageView) -> str:
    nodes = sorted(view.graph.nodes)
    edges = [(e.src, e.dst) for e in view.graph.edges]
    rows = order(layers(nodes, edges), edges)
    widest = max((len(r) for r in rows), default=1)
    width = PAD * 2 + widest * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + len(rows) * (BOX_H + GAP_Y) - GAP_Y
    at: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(rows):
        offset = (width - (len(row) * (BOX_W + GAP_X) - GAP_X)) / 2
        y = height - PAD - (r + 1) * BOX_H - r * GAP_Y     # dependencies at the bottom
        for i, key in enumerate(row):
            at[key] = (offset + i * (BOX_W + GAP_X), y)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" role="group" aria-label="lineage graph of {escape(view.graph.root)}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for e in view.graph.edges:
        if e.src not in at or e.dst not in at or e.src == e.dst:
            continue
        (x1, y1), (x2, y2) = at[e.src], at[e.dst]
        out.append(f'<line x1="{x1 + BOX_W / 2:.0f}" y1="{y1 + BOX_H:.0f}" x2="{x2 + BOX_W / 2:.0f}" y2="{y2:.0f}" '
                   f'stroke="#555" marker-end="url(#arrow)"><title>{escape(e.kind)}</title></line>')
    for key, (x, y) in at.items():
        info = view.nodes.get(key)
        kind = key.partition(":")[0]
        label = info.label if info is not None and getattr(info, "label", None) else key
        text = label if len(label) <= 30 else label[:29] + "…"
        stroke = "#111" if key == view.graph.root else "#888"
        box = (f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{_FILL.get(kind, "#eee")}" '
               f'stroke="{stroke}"/><text x="{x + 8:.0f}" y="{y + 18:.0f}" font-size="11" fill="#333">{escape(kind)}</text>'
               f'<text x="{x + 8:.0f}" y="{y + 34:.0f}" font-size="12" fill="#111">{escape(text)}</text>')
        link = href(key)
        out.append(f'<a href="{escape(link)}"><title>{escape(label)}</title>{box}</a>' if link
                   else f'<g><title>{escape(label)}</title>{box}</g>')
    out.append("</svg>")
    return "".join(out)
