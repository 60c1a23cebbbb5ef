"""What a lineage node is: from a name a person types to a node key, and from keys to labels.

``resolve`` accepts ``ds:NAME@vN``, ``split:NAME@vN``, ``model:NAME@vN`` or ``@ALIAS``,
``run:ID`` (or a unique prefix), ``art:sha256:…``, a node key (``snapshot:sha256:…``) or a bare
content id. ``describe`` looks up many nodes at once (one query per table and 500 keys) and
returns what the graph exports and the card need: a label, a status, times, and attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from runlock import artifacts, lineage, refs, registry
from runlock.errors import InvalidInput, NotFound
from runlock.hashing import is_digest
from runlock.store import Store
from runlock.store.schema import artifacts as artifacts_table
from runlock.store.schema import edges, runs
from runlock.store.schema import refs as refs_table
from runlock.tracking import records

REF_NODE_TYPE = {"ds": "snapshot", "split": "split"}
NODE_NAMESPACE = {"snapshot": "ds", "split": "split"}


@dataclass(frozen=True)
class NodeInfo:
    key: str
    type: str
    id: str
    label: str                     # what a person calls it: ds:tickets@v1, run name, model ref
    names: tuple[str, ...] = ()    # every human name of this content (ds:a@v1, ds:b@v3 …)
    status: str | None = None      # runs: running | finished | failed | crashed
    started_at: str | None = None
    ended_at: str | None = None
    attrs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def resolve(store: Store, text: str) -> str:
    """The lineage node key that ``text`` names, or NotFound."""
    text = text.strip()
    head, _, rest = text.partition(":")
    if head in lineage.NODE_TYPES and is_digest(rest):      # a node key: split:sha256:…
        return _known(store, text)
    if head in REF_NODE_TYPE:
        return lineage.node(REF_NODE_TYPE[head], refs.resolve(store, text, head).target)
    if head == "model":
        return registry.resolve(store, text).lineage_node
    if head == "run":
        return records.get(store, text).lineage_node
    if head == "art":
        return artifacts.find(store, text).lineage_node
    if head in lineage.NODE_TYPES and rest:
        return _known(store, text)
    if is_digest(text):
        return _by_digest(store, text)
    raise InvalidInput(f"{text!r} names no entity; use ds:NAME@vN, split:NAME@vN, model:NAME@vN, "
                       "model:NAME@ALIAS, run:ID, art:sha256:… or a content id.")


def _known(store: Store, key: str) -> str:
    with store.db.read() as conn:
        hit = conn.execute(sa.select(edges.c.kind).where(sa.or_(edges.c.dst == key, sa.and_(
            edges.c.kind.in_(lineage.KINDS), edges.c.src == key))).limit(1)).first()
    if hit is None:
        raise NotFound("lineage node", key)
    return key


def _by_digest(store: Store, digest: str) -> str:
    for kind in ("artifact", "snapshot", "split"):
        key = lineage.node(kind, digest)
        try:
            return _known(store, key)
        except NotFound:
            continue
    raise NotFound("entity with content id", digest)


def describe(store: Store, keys: list[str] | set[str]) -> dict[str, NodeInfo]:
    """A ``NodeInfo`` for every key (labels fall back to the key itself)."""
    by_type: dict[str, list[str]] = {}
    for k in keys:
        kind, ident = lineage.split_node(k)
        by_type.setdefault(kind, []).append(ident)
    out = {k: NodeInfo(k, *lineage.split_node(k), label=k) for k in keys}
    with store.db.read() as conn:
        for kind, idents in by_type.items():
            for i in range(0, len(idents), lineage.BATCH):
                chunk = idents[i:i + lineage.BATCH]
                if kind == "run":
                    out.update(_runs(conn, chunk))
                elif kind == "artifact":
                    out.update(_artifacts(conn, chunk))
                elif kind in NODE_NAMESPACE:
                    out.update(_named(conn, kind, chunk))
                elif kind == "model":
                    out.update(_models(conn, chunk))
    return out


def _runs(conn: sa.Connection, ids: list[str]) -> dict[str, NodeInfo]:
    rows = conn.execute(sa.select(runs).where(runs.c.id.in_(ids)))
    return {f"run:{r.id}": NodeInfo(
        f"run:{r.id}", "run", r.id, f"{r.project}/{r.name}", status=r.status,
        started_at=r.started_at, ended_at=r.ended_at,
        attrs={"project": r.project, "name": r.name, "recipe_id": r.recipe_id, "created_by": r.created_by,
               "host": r.host, **({"deleted_at": r.deleted_at} if r.deleted_at else {})})
        for r in rows}


def _artifacts(conn: sa.Connection, digests: list[str]) -> dict[str, NodeInfo]:
    rows = conn.execute(sa.select(artifacts_table).where(artifacts_table.c.digest.in_(digests))
                        .order_by(artifacts_table.c.created_at, artifacts_table.c.run_id))
    out: dict[str, NodeInfo] = {}
    for r in rows:
        key = f"artifact:{r.digest}"
        if key not in out:
            out[key] = NodeInfo(key, "artifact", r.digest, r.name, started_at=r.created_at, attrs={
                "run": r.run_id, "name": r.name, "kind": r.kind, "media_type": r.media_type,
                "size": r.size, "files": r.files})
    return out


def _named(conn: sa.Connection, kind: str, targets: list[str]) -> dict[str, NodeInfo]:
    # No ORDER BY: sorting by (name, version) would lead SQLite to scan the primary key instead
    # of looking the targets up in ix_refs_target.
    rows = conn.execute(sa.select(refs_table).where(
        refs_table.c.namespace == NODE_NAMESPACE[kind], refs_table.c.target.in_(targets)))
    names: dict[str, list[sa.Row]] = {}
    for r in sorted(rows, key=lambda r: (r.name, r.version)):
        names.setdefault(r.target, []).append(r)
    return {f"{kind}:{t}": NodeInfo(
        f"{kind}:{t}", kind, t, f"{rs[0].namespace}:{rs[0].name}@v{rs[0].version}",
        names=tuple(f"{r.namespace}:{r.name}@v{r.version}" for r in rs), started_at=rs[0].created_at,
        attrs={"name": rs[0].name, "version": rs[0].version})
        for t, rs in names.items()}


def _models(conn: sa.Connection, idents: list[str]) -> dict[str, NodeInfo]:
    wanted = {}
    for ident in idents:
        name, _, tag = ident.partition("@")
        if tag[:1] == "v" and tag[1:].isdigit():
            wanted[(name, int(tag[1:]))] = ident
    if not wanted:
        return {}
    rows = conn.execute(sa.select(refs_table).where(
        refs_table.c.namespace == "model", refs_table.c.name.in_({n for n, _ in wanted})))
    aliases = conn.execute(sa.select(registry.model_aliases).where(
        registry.model_aliases.c.name.in_({n for n, _ in wanted})))
    by_version: dict[tuple[str, int], list[str]] = {}
    for a in aliases:
        by_version.setdefault((a.name, a.version), []).append(a.alias)
    return {f"model:{wanted[(r.name, r.version)]}": NodeInfo(
        f"model:{wanted[(r.name, r.version)]}", "model", wanted[(r.name, r.version)],
        f"model:{r.name}@v{r.version}", started_at=r.created_at,
        attrs={"name": r.name, "version": r.version, "digest": r.target, "run": (r.meta or {}).get("run"),
               "aliases": sorted(by_version.get((r.name, r.version), []))})
        for r in rows if (r.name, r.version) in wanted}


@dataclass(frozen=True)
class LineageView:
    """A walked graph with every node described: what the CLI prints and the exports read."""

    graph: lineage.Graph
    nodes: dict[str, NodeInfo]

    @property
    def impact(self) -> dict[str, list[str]]:
        """Everything reached, by type (downstream: what would be affected by a bad root)."""
        out: dict[str, list[str]] = {}
        for key in sorted(self.graph.nodes):
            if key != self.graph.root:
                out.setdefault(key.partition(":")[0], []).append(key)
        return out

    def to_dict(self) -> dict:
        return {**self.graph.to_dict(), "tree": lineage.as_tree(self.graph).to_dict(),
                "described": {k: v.to_dict() for k, v in sorted(self.nodes.items())},
                "impact": self.impact}


def view(store: Store, text: str, direction: str = "upstream", depth: int = 10,
         max_nodes: int = lineage.MAX_NODES) -> LineageView:
    """Resolve ``text``, walk its lineage and describe every node reached."""
    graph = lineage.traverse(store, resolve(store, text), direction, depth, max_nodes)
    return LineageView(graph, describe(store, set(graph.nodes)))


HIDDEN = "hidden"


def cut(found: LineageView, visible: Callable[[NodeInfo], bool]) -> LineageView:
    """``found`` as a reader who may see only the nodes ``visible`` accepts sees it: every other
    node keeps its place in the graph (a run's hidden input is still an input) but is renamed
    ``hidden:N`` and described by nothing but that, so neither its id nor its name shows."""
    renamed: dict[str, str] = {}
    for key in sorted(found.graph.nodes, key=lambda k: (found.graph.nodes[k], k)):
        info = found.nodes.get(key)
        if info is None or not visible(info):
            renamed[key] = f"{HIDDEN}:{len(renamed) + 1}"
    if not renamed:
        return found

    def new(key: str) -> str:
        return renamed.get(key, key)

    edges = tuple(dataclasses.replace(e, src=new(e.src), dst=new(e.dst)) for e in found.graph.edges)
    graph = dataclasses.replace(found.graph, root=new(found.graph.root), edges=edges,
                                nodes={new(k): d for k, d in found.graph.nodes.items()})
    nodes = {new(k): v for k, v in found.nodes.items() if k not in renamed}
    nodes.update({k: NodeInfo(k, HIDDEN, k.partition(":")[2], "(not visible to you)") for k in renamed.values()})
    return LineageView(graph, nodes)
