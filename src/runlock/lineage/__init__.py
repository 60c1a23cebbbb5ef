"""Lineage edges between entities; recorded by the API, never edited afterwards.

Node keys name their type: ``snapshot:sha256:…``, ``split:sha256:…``, ``run:<id>``,
``artifact:sha256:…``, ``model:NAME@vN``, ``evaluation:…``. Edge kinds follow W3C PROV's verbs,
and an edge always points from the dependent entity to what it depends on:

    used           (run -> input)          the run read the input
    generated_by   (output -> run)         the run produced the output
    derived_from   (child -> parent)       a transform, a split, a registration
    reproduces     (run -> original run)   a rerun of a recorded run
    resumes        (run -> earlier run)    continues that run from one of its checkpoints

So *upstream* of a node (what it came from) follows edges forward, ``src -> dst``, through the
primary key; *downstream* (what was made from it) follows them backward, ``dst -> src``, through
``ix_edges_dst``. ``traverse`` walks either way breadth first, one batched query per level and
500 nodes per query, visiting each node once, so its cost grows with the answer, not the store.

There is no function that updates or deletes an edge: the graph only grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.store.schema import edges, utcnow

KINDS = ("used", "generated_by", "derived_from", "reproduces", "resumes")
NODE_TYPES = ("snapshot", "split", "run", "artifact", "model", "evaluation")
DIRECTIONS = ("upstream", "downstream", "both")
BATCH = 500
MAX_NODES = 10_000


def node(kind: str, ident: str) -> str:
    if kind not in NODE_TYPES:
        raise InvalidInput(f"Unknown lineage node type {kind!r}.")
    return f"{kind}:{ident}"


def split_node(key: str) -> tuple[str, str]:
    """``("snapshot", "sha256:…")`` from ``"snapshot:sha256:…"``."""
    kind, _, ident = key.partition(":")
    if kind not in NODE_TYPES or not ident:
        raise InvalidInput(f"{key!r} is not a lineage node; expected TYPE:ID with TYPE one of "
                           f"{', '.join(NODE_TYPES)}.")
    return kind, ident


def record_edge(conn: Connection, kind: str, src: str, dst: str) -> bool:
    """Add one edge inside the caller's transaction; return False if it already existed."""
    if kind not in KINDS:
        raise InvalidInput(f"Unknown lineage edge kind {kind!r}; expected one of {', '.join(KINDS)}.")
    exists = conn.execute(sa.select(edges.c.kind).where(
        edges.c.kind == kind, edges.c.src == src, edges.c.dst == dst)).first()
    if exists:
        return False
    conn.execute(edges.insert().values(kind=kind, src=src, dst=dst, created_at=utcnow()))
    return True


@dataclass(frozen=True)
class Edge:
    kind: str
    src: str
    dst: str
    created_at: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "src": self.src, "dst": self.dst, "created_at": self.created_at}


@dataclass(frozen=True)
class Graph:
    """The part of the lineage graph reachable from ``root`` within ``depth`` steps."""

    root: str
    direction: str
    depth: int
    nodes: dict[str, int]            # node key -> distance from the root
    edges: tuple[Edge, ...]
    truncated: bool = False          # stopped at the node limit before reaching ``depth``

    def of_type(self, kind: str) -> list[str]:
        return sorted(k for k in self.nodes if k.partition(":")[0] == kind)

    def to_dict(self) -> dict:
        return {"root": self.root, "direction": self.direction, "depth": self.depth,
                "truncated": self.truncated, "nodes": dict(sorted(self.nodes.items())),
                "edges": [e.to_dict() for e in self.edges]}


def neighbours(conn: Connection, keys: list[str], direction: str) -> list[Edge]:
    """Every edge leaving ``keys`` upstream (``src`` in keys) or downstream (``dst`` in keys)."""
    out: list[Edge] = []
    for i in range(0, len(keys), BATCH):
        chunk = keys[i:i + BATCH]
        if direction == "upstream":   # (kind, src) is a prefix of the primary key
            cond = sa.and_(edges.c.kind.in_(KINDS), edges.c.src.in_(chunk))
        else:
            cond = edges.c.dst.in_(chunk)
        rows = conn.execute(sa.select(edges.c.kind, edges.c.src, edges.c.dst, edges.c.created_at).where(cond))
        out += [Edge(*r) for r in rows]
    return out


def traverse(store: Store, root: str, direction: str = "upstream", depth: int = 10,
             max_nodes: int = MAX_NODES) -> Graph:
    """Breadth-first walk from ``root`` up to ``depth`` edges away (``both``: either way)."""
    if direction not in DIRECTIONS:
        raise InvalidInput(f"Unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}.")
    if depth < 0:
        raise InvalidInput(f"Depth {depth} is negative; give 0 or more.")
    split_node(root)
    ways = ("upstream", "downstream") if direction == "both" else (direction,)
    seen: dict[str, int] = {root: 0}
    found: dict[tuple[str, str, str], Edge] = {}
    frontier, level, truncated = [root], 0, False
    with store.db.read() as conn:
        while frontier and level < depth and not truncated:
            level += 1
            nxt: list[str] = []
            for way in ways:
                for e in neighbours(conn, frontier, way):
                    other = e.dst if way == "upstream" else e.src
                    if other not in seen and len(seen) >= max_nodes:
                        truncated = True
                        continue
                    found[(e.kind, e.src, e.dst)] = e
                    if other not in seen:
                        seen[other] = level
                        nxt.append(other)
            frontier = nxt
    ordered = tuple(sorted(found.values(), key=lambda e: (seen[e.src] + seen[e.dst], e.src, e.dst, e.kind)))
    return Graph(root, direction, depth, seen, ordered, truncated)


# How an edge reads from the node printed above it to the node below: forward along the edge
# when walking upstream, backward when walking downstream ("used" read backward is "used by").
RELATION = {
    "upstream": {"used": "used", "generated_by": "generated by", "derived_from": "derived from",
                 "reproduces": "reproduces", "resumes": "resumes"},
    "downstream": {"used": "used by", "generated_by": "generated", "derived_from": "source of",
                   "reproduces": "reproduced by", "resumes": "resumed by"},
}


@dataclass
class TreeNode:
    """One node of the graph drawn as a tree; a node met again is a leaf marked ``repeat``."""

    key: str
    via: str | None = None           # the edge kind that led here
    repeat: bool = False             # already expanded higher up in the printed tree
    way: str | None = None           # upstream | downstream: the direction the edge was followed
    children: list["TreeNode"] = field(default_factory=list)

    @property
    def relation(self) -> str | None:
        """The edge worded from the parent to this node: ``used``, ``used by``, ``generated``…"""
        return RELATION[self.way][self.via] if self.via and self.way else self.via

    def to_dict(self) -> dict:
        return {"key": self.key, "via": self.via, "relation": self.relation, "repeat": self.repeat,
                "children": [c.to_dict() for c in self.children]}


def as_tree(graph: Graph) -> TreeNode:
    """The graph as a tree from its root, in the order it prints (depth first, children sorted):
    each node is expanded once, at its first place; a later meeting is a leaf marked ``repeat``,
    so a reader finds it above."""
    children: dict[str, set[tuple[str, str, str]]] = {}
    for e in graph.edges:
        if graph.direction in ("upstream", "both"):
            children.setdefault(e.src, set()).add((e.dst, e.kind, "upstream"))
        if graph.direction in ("downstream", "both"):
            children.setdefault(e.dst, set()).add((e.src, e.kind, "downstream"))
    top = TreeNode(graph.root)
    expanded: set[str] = set()
    stack: list[tuple[TreeNode, str | None]] = [(top, None)]
    while stack:                     # popped in print order (pre-order): children pushed reversed
        current, parent = stack.pop()
        if current.key in expanded:
            current.repeat = True
            continue
        expanded.add(current.key)
        current.children = [TreeNode(other, kind, way=way)
                            for other, kind, way in sorted(children.get(current.key, ())) if other != parent]
        stack.extend((c, current.key) for c in reversed(current.children))
    return top
