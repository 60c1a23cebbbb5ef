"""Lineage queries on a large store: runlock's batched BFS against two peers, side by side.

    .venv/bin/python bench/bench_lineage.py [--small] [--queries N]

Builds one SQLite store with 100,000 entities and about 1,000,000 edges (``--small``: a tenth),
shaped like a team's history of LLM fine-tunes: 20,000 dataset shard snapshots, 5,000 derived
mixtures (each derived from 20 shards), 5,000 splits, 20,000 runs (each uses one split, 41
shards and, half of the time, an earlier model to fine-tune from), 45,000 artifacts, 5,000
models. The rows go in by bulk insert (the API would take hours for a million edges), with the
same tables, indexes and node keys the API writes.

Then it times depth-10 queries from random roots, each answered three ways:

- runlock: ``lineage.traverse`` (breadth first, one batched ``IN`` query per level, 500 keys per
  query, through the primary key upstream and ``ix_edges_dst`` downstream), and ``entities.view``
  (the same walk plus a label for every node: what ``runlock lineage`` prints);
- peer 1: the obvious recursive CTE in SQLite (``WITH RECURSIVE … UNION``), same indexes;
- peer 2: networkx, the graph loaded into memory first (load time reported on its own).

Every answer is checked to be the same node set before any time is reported.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import networkx as nx
import sqlalchemy as sa
from ulid import ULID

import runlock
from runlock import lineage
from runlock.lineage import entities
from runlock.store.schema import artifacts, edges, refs, runs, utcnow

DEPTH = 10


def sha(i: int, kind: str) -> str:
    return "sha256:" + f"{kind}{i:08d}".encode().hex().ljust(64, "0")[:64]


def build(store: runlock.store.Store, scale: float, rng: random.Random) -> dict[str, list[str]]:
    n = {k: int(v * scale) for k, v in dict(shard=20_000, mix=5_000, split=5_000, run=20_000, model=5_000).items()}
    now = utcnow()
    shards = [sha(i, "shard") for i in range(n["shard"])]
    mixes = [sha(i, "mix") for i in range(n["mix"])]
    splits = [sha(i, "split") for i in range(n["split"])]
    run_ids = sorted(str(ULID()) for _ in range(n["run"]))
    edge_rows: list[dict] = []
    art_rows: list[dict] = []
    ref_rows: list[dict] = []
    model_nodes: list[str] = []

    def edge(kind: str, src: str, dst: str) -> None:
        edge_rows.append({"kind": kind, "src": src, "dst": dst, "created_at": now})

    for i, m in enumerate(mixes):
        for s in rng.sample(shards, 20):
            edge("derived_from", f"snapshot:{m}", f"snapshot:{s}")
    for i, sp in enumerate(splits):
        edge("derived_from", f"split:{sp}", f"snapshot:{mixes[i % len(mixes)]}")
    for i, s in enumerate(shards + mixes):
        ref_rows.append({"namespace": "ds", "name": f"shard-{i}", "version": 1, "target": s, "created_at": now,
                         "created_by": "bench", "meta": {}})
    for i, sp in enumerate(splits):
        ref_rows.append({"namespace": "split", "name": f"split-{i}", "version": 1, "target": sp, "created_at": now,
                         "created_by": "bench", "meta": {}})
    per_model = max(1, n["run"] // n["model"])
    for r, run_id in enumerate(run_ids):
        node = f"run:{run_id}"
        edge("used", node, f"split:{rng.choice(splits)}")
        for s in rng.sample(shards, 41):
            edge("used", node, f"snapshot:{s}")
        if model_nodes and rng.random() < 0.5:
            edge("used", node, rng.choice(model_nodes[-200:]))        # fine-tune a recent model
        for a in range(2 + (r % 4 == 0)):                              # 2-3 artifacts (adapter, checkpoints)
            digest = sha(len(art_rows), "art")
            art_rows.append({"run_id": run_id, "name": f"ckpt-{a}", "digest": digest, "manifest": None,
                             "kind": "model", "media_type": "application/octet-stream", "size": 1, "files": 1,
                             "meta": {}, "created_at": now})
            edge("generated_by", f"artifact:{digest}", node)
        if r % per_model == 0 and len(model_nodes) < n["model"]:
            name, version = f"model-{len(model_nodes) % 500}", len(model_nodes) // 500 + 1
            model_nodes.append(f"model:{name}@v{version}")
            ref_rows.append({"namespace": "model", "name": name, "version": version, "target": art_rows[-1]["digest"],
                             "created_at": now, "created_by": "bench", "meta": {"run": run_id}})
            edge("derived_from", model_nodes[-1], f"artifact:{art_rows[-1]['digest']}")
        if r and r % 50 == 0:
            edge("reproduces", node, f"run:{run_ids[r - 1]}")
    run_rows = [{"id": rid, "project": "bench", "name": f"run-{i}", "status": "finished", "recipe_id": None,
                 "created_by": "bench", "started_at": now, "ended_at": now, "heartbeat_at": now, "host": "bench",
                 "pid": None, "pid_started": None, "last_step": None, "summary": {}, "tags": {}, "error": None,
                 "context": {}} for i, rid in enumerate(run_ids)]
    with store.db.write() as conn:
        for table, rows in ((runs, run_rows), (artifacts, art_rows), (refs, ref_rows), (edges, edge_rows)):
            for i in range(0, len(rows), 20_000):
                conn.execute(table.insert(), rows[i:i + 20_000])
    entities_total = len(shards) + len(mixes) + len(splits) + len(run_ids) + len(art_rows) + len(model_nodes)
    print(f"store: {entities_total:,} entities, {len(edge_rows):,} edges", flush=True)
    return {"shard": [f"snapshot:{s}" for s in shards], "model": model_nodes, "split": [f"split:{s}" for s in splits]}


# -- peer 1: a recursive CTE ------------------------------------------------------------------
CTE = {
    "upstream": """WITH RECURSIVE walk(node, depth) AS (SELECT :root, 0 UNION
                   SELECT e.dst, w.depth + 1 FROM walk w JOIN edges e ON e.src = w.node WHERE w.depth < :depth)
                   SELECT DISTINCT node FROM walk""",
    "downstream": """WITH RECURSIVE walk(node, depth) AS (SELECT :root, 0 UNION
                     SELECT e.src, w.depth + 1 FROM walk w JOIN edges e ON e.dst = w.node WHERE w.depth < :depth)
                     SELECT DISTINCT node FROM walk""",
}


def cte(store: runlock.store.Store, root: str, direction: str) -> set[str]:
    with store.db.read() as conn:
        return {r[0] for r in conn.execute(sa.text(CTE[direction]), {"root": root, "depth": DEPTH})}


# -- peer 2: networkx in memory ---------------------------------------------------------------
def load_networkx(store: runlock.store.Store) -> nx.DiGraph:
    g = nx.DiGraph()
    with store.db.read() as conn:
        g.add_edges_from(conn.execute(sa.select(edges.c.src, edges.c.dst)))
    return g


def networkx_walk(g: nx.DiGraph, root: str, direction: str) -> set[str]:
    graph = g if direction == "upstream" else g.reverse(copy=False)
    return set(nx.single_source_shortest_path_length(graph, root, cutoff=DEPTH))


def timed(fn, *args):  # noqa: ANN001, ANN202
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:8.1f} ms   max {max(times) * 1000:8.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="10,000 entities and ~100,000 edges")
    ap.add_argument("--queries", type=int, default=20, help="roots per direction")
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="runlock-bench-lineage-") as tmp:
        store = runlock.init(Path(tmp))
        t, roots = timed(build, store, 0.1 if args.small else 1.0, rng)
        print(f"built in {t:.1f} s")
        t, g = timed(load_networkx, store)
        print(f"networkx: loaded the whole graph into memory in {t:.1f} s "
              f"({g.number_of_nodes():,} nodes), before its first query")
        worst_ratio = []
        for direction, kind in (("upstream", "model"), ("downstream", "shard"), ("downstream", "split")):
            picks = rng.sample(roots[kind], min(args.queries, len(roots[kind])))
            ours, view, peer_cte, peer_nx, sizes = [], [], [], [], []
            for root in picks:
                t1, graph = timed(lineage.traverse, store, root, direction, DEPTH, 10**9)
                t2, _ = timed(entities.view, store, root, direction, DEPTH, 10**9)
                t3, cte_nodes = timed(cte, store, root, direction)
                t4, nx_nodes = timed(networkx_walk, g, root, direction)
                if not set(graph.nodes) == cte_nodes == nx_nodes:
                    print(f"MISMATCH for {root}: runlock {len(graph.nodes)}, cte {len(cte_nodes)}, nx {len(nx_nodes)}")
                    return 1
                ours.append(t1), view.append(t2), peer_cte.append(t3), peer_nx.append(t4)
                sizes.append(len(graph.nodes))
            print(f"\n{direction} from {len(picks)} random {kind} nodes, depth {DEPTH}: "
                  f"answers of {min(sizes):,}-{max(sizes):,} nodes (median {int(statistics.median(sizes)):,})")
            print(f"  runlock traverse        {summary(ours)}")
            print(f"  runlock view (+labels)  {summary(view)}")
            print(f"  recursive CTE (SQLite)  {summary(peer_cte)}   "
                  f"CTE time / runlock time {statistics.median(peer_cte) / statistics.median(ours):.2f} (median)")
            print(f"  networkx (in memory)    {summary(peer_nx)}   "
                  f"networkx time / runlock time {statistics.median(peer_nx) / statistics.median(ours):.3f} (median)")
            worst_ratio.append(max(view))
        verdict = "PASS" if max(worst_ratio) < 1.0 else "FAIL"
        print(f"\nslowest depth-{DEPTH} query with labels: {max(worst_ratio) * 1000:.0f} ms -> {verdict} (bar: < 1 s)")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
