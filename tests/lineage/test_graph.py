"""The lineage graph on SQLite and PostgreSQL: walks, depth, limits, resolution, impact."""

from __future__ import annotations

import pytest

from runlock import lineage
from runlock.errors import InvalidInput, NotFound
from runlock.lineage import entities
from runlock.store import Store


def test_upstream_of_a_model_reaches_the_raw_data_through_transform_and_split(any_store: Store, make_world) -> None:
    w = make_world(any_store)
    g = lineage.traverse(any_store, w.model.lineage_node, "upstream", depth=10)
    assert g.nodes[w.model.lineage_node] == 0
    assert g.nodes[f"run:{w.lora.id}"] == 2
    assert g.nodes[w.split.lineage_node] == 3
    assert g.nodes[w.clean.lineage_node] == 4
    assert g.nodes[w.raw.lineage_node] == 5
    assert w.faq.lineage_node not in g.nodes and f"run:{w.eval_run.id}" not in g.nodes
    kinds = {(e.kind, e.src, e.dst) for e in g.edges}
    assert ("used", f"run:{w.lora.id}", w.split.lineage_node) in kinds
    assert ("derived_from", w.clean.lineage_node, w.raw.lineage_node) in kinds


def test_depth_limits_the_walk_and_zero_is_the_root_alone(any_store: Store, make_world) -> None:
    w = make_world(any_store)
    two = lineage.traverse(any_store, w.model.lineage_node, "upstream", depth=2)
    assert max(two.nodes.values()) == 2 and w.split.lineage_node not in two.nodes
    assert set(lineage.traverse(any_store, w.model.lineage_node, depth=0).nodes) == {w.model.lineage_node}
    with pytest.raises(InvalidInput):
        lineage.traverse(any_store, w.model.lineage_node, depth=-1)
    with pytest.raises(InvalidInput):
        lineage.traverse(any_store, w.model.lineage_node, "sideways")


def test_a_bad_snapshot_names_every_model_trained_on_it_and_no_other(any_store: Store, make_world) -> None:
    """Impact analysis: ds:tickets@v1 turns out to hold bad data. Which models must be pulled?"""
    w = make_world(any_store)
    view = entities.view(any_store, "ds:tickets@v1", "downstream")
    assert view.impact["model"] == ["model:support-bot@v1"]
    assert f"run:{w.lora.id}" in view.impact["run"]
    assert f"run:{w.eval_run.id}" in view.impact["run"]      # the evaluation used the model
    assert f"run:{w.faq_run.id}" not in view.impact["run"]
    assert view.nodes["model:support-bot@v1"].attrs["digest"] == w.model.digest
    faq = entities.view(any_store, "ds:faq@v1", "downstream")
    assert faq.impact["model"] == ["model:faq-bot@v1"]


def test_both_directions_and_the_node_limit(any_store: Store, make_world) -> None:
    w = make_world(any_store)
    both = lineage.traverse(any_store, w.split.lineage_node, "both", depth=10)
    assert w.raw.lineage_node in both.nodes and w.model.lineage_node in both.nodes
    small = lineage.traverse(any_store, w.raw.lineage_node, "downstream", depth=10, max_nodes=3)
    assert small.truncated and len(small.nodes) == 3
    assert not lineage.traverse(any_store, w.raw.lineage_node, "downstream").truncated


def test_every_way_of_naming_an_entity_resolves_to_its_node(any_store: Store, make_world) -> None:
    w = make_world(any_store)
    art = w.model.digest
    assert entities.resolve(any_store, "ds:tickets@v1") == w.raw.lineage_node
    assert entities.resolve(any_store, "ds:tickets") == w.raw.lineage_node
    assert entities.resolve(any_store, "split:tickets@v1") == w.split.lineage_node
    assert entities.resolve(any_store, "model:support-bot@v1") == "model:support-bot@v1"
    assert entities.resolve(any_store, f"run:{w.lora.id[:10]}") == f"run:{w.lora.id}"
    assert entities.resolve(any_store, f"art:{art}") == f"artifact:{art}"
    assert entities.resolve(any_store, art) == f"artifact:{art}"
    assert entities.resolve(any_store, w.clean.id) == w.clean.lineage_node
    assert entities.resolve(any_store, w.split.lineage_node) == w.split.lineage_node
    for bad, error in [("ds:nope@v1", NotFound), ("model:support-bot@v9", NotFound),
                       ("snapshot:sha256:" + "0" * 64, NotFound), ("hello", InvalidInput),
                       ("model:bad name", InvalidInput)]:
        with pytest.raises(error):
            entities.resolve(any_store, bad)


def test_edges_are_recorded_once_and_there_is_no_api_to_change_them(any_store: Store) -> None:
    def write(conn):  # noqa: ANN001, ANN202
        return [lineage.record_edge(conn, "used", "run:A", "snapshot:sha256:" + "1" * 64) for _ in range(2)]

    assert any_store.db.run_write(write) == [True, False]
    with pytest.raises(InvalidInput):
        any_store.db.run_write(lambda conn: lineage.record_edge(conn, "replaced", "run:A", "run:B"))
    public = {n for n in dir(lineage) if not n.startswith("_")}
    assert not {n for n in public if any(v in n for v in ("delete", "update", "remove", "edit"))}


def test_the_tree_expands_each_node_once(any_store: Store, make_world) -> None:
    w = make_world(any_store)
    tree = lineage.as_tree(lineage.traverse(any_store, w.split.lineage_node, "both"))
    keys: list[str] = []

    def walk(node: lineage.TreeNode) -> None:
        if not node.repeat:
            keys.append(node.key)
        for c in node.children:
            walk(c)

    walk(tree)
    assert len(keys) == len(set(keys))
    assert {w.raw.lineage_node, w.model.lineage_node} <= set(keys)
