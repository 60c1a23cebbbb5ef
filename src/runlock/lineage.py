"""Lineage edges between entities; recorded by the API, never edited afterwards.

Node keys name their type: ``snapshot:sha256:…``, ``split:sha256:…``, ``run:<id>``,
``artifact:sha256:…``, ``model:NAME@vN``. Edge kinds follow W3C PROV's verbs:

    used           (run -> input)          the run read the input
    generated_by   (output -> run)         the run produced the output
    derived_from   (child -> parent)       a transform, a split, a registration
    reproduces     (run -> original run)   a rerun of a recorded run
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock.errors import InvalidInput
from runlock.store.schema import edges, utcnow

KINDS = ("used", "generated_by", "derived_from", "reproduces")
NODE_TYPES = ("snapshot", "split", "run", "artifact", "model", "evaluation")


def node(kind: str, ident: str) -> str:
    if kind not in NODE_TYPES:
        raise InvalidInput(f"Unknown lineage node type {kind!r}.")
    return f"{kind}:{ident}"


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
