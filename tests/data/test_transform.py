"""Derived snapshots: recipes, reuse without recomputing, refusal of unhashable inputs."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from runlock.data import create_snapshot, read_table
from runlock.data.tabular import RECORD_ID
from runlock.data.transform import derive, recipe_for
from runlock.errors import InvalidInput
from runlock.store.schema import edges

class Calls:
    """A call log the functions write to (a class, so it is code, not a pinned value)."""

    log: list[str] = []


CALLS = Calls.log
MIN_LEN = 2
LOCK = threading.Lock()


def keep_long(table, min_len: int = 0):
    Calls.log.append("keep_long")
    rows = [r for r in table.to_pylist() if len(r["text"]) >= max(min_len, MIN_LEN)]
    return rows


def upper_files(src: Path, dst: Path, suffix: str = "") -> None:
    Calls.log.append("upper_files")
    for p in sorted(src.rglob("*")):
        if p.is_file():
            out = dst / (p.relative_to(src).as_posix() + suffix)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(p.read_text().upper())


def uses_lock(table):
    with LOCK:
        return table


def test_table_transform_records_recipe_and_reuses(any_store, make_tree):
    CALLS.clear()
    f = make_tree({"t.csv": "id,text\n1,a\n2,bb\n3,ccc\n"}) / "t.csv"
    parent = create_snapshot(any_store, f, "tickets", id_column="id")
    child = derive(any_store, parent, keep_long, {"min_len": 3}, "tickets-long")
    assert child.ref == "ds:tickets-long@v1" and child.parent == parent.id
    r = child.recipe
    assert (r["parent"], r["function"], r["params"], r["globals"]) == (
        parent.id, "tests.data.test_transform.keep_long", {"min_len": 3}, {"MIN_LEN": 2})
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", r["source"]) and r["format"] == "runlock.recipe/2"
    t = read_table(any_store, child)
    assert t.column("text").to_pylist() == ["ccc"] and t.column(RECORD_ID).to_pylist() == ["3"]
    again = derive(any_store, parent.ref, keep_long, {"min_len": 3}, "tickets-long")
    assert again.id == child.id and not again.created and CALLS == ["keep_long"]
    other = derive(any_store, parent, keep_long, {"min_len": 2}, "tickets-long")
    assert other.ref == "ds:tickets-long@v2" and CALLS == ["keep_long", "keep_long"]
    with any_store.db.read() as conn:
        found = {(e.kind, e.src, e.dst) for e in conn.execute(sa.select(edges))}
    assert ("derived_from", child.lineage_node, parent.lineage_node) in found


def test_files_transform(store, make_tree):
    CALLS.clear()
    parent = create_snapshot(store, make_tree({"a.txt": "abc", "d/b.txt": "xyz"}), "raw")
    child = derive(store, parent.ref, upper_files, {"suffix": ".up"})
    assert child.ref == "ds:raw.upper_files@v1"
    assert [e["path"] for e in child.entries] == ["a.txt.up", "d/b.txt.up"]
    assert store.objects.get_bytes(child.entries[0]["sha256"]) == b"ABC"
    derive(store, parent.ref, upper_files, {"suffix": ".up"})
    assert CALLS == ["upper_files"]


def test_recipe_changes_with_code_params_and_parent():
    base = recipe_for("sha256:" + "a" * 64, keep_long, {"min_len": 1})
    assert recipe_for("sha256:" + "a" * 64, keep_long, {"min_len": 1}) == base
    assert recipe_for("sha256:" + "b" * 64, keep_long, {"min_len": 1}) != base
    assert recipe_for("sha256:" + "a" * 64, keep_long, {"min_len": 2}) != base
    assert recipe_for("sha256:" + "a" * 64, upper_files, {"min_len": 1})["source"] != base["source"]


def test_unhashable_inputs_are_errors():
    parent = "sha256:" + "a" * 64
    with pytest.raises(InvalidInput, match="params"):
        recipe_for(parent, keep_long, {"min_len": object()})
    with pytest.raises(InvalidInput, match="not a Python function"):
        recipe_for(parent, len, {})
    captured = {1, 2}

    def closes_over(table):
        return [r for r in table.to_pylist() if r["id"] in captured]

    with pytest.raises(InvalidInput, match="'captured' from its enclosing scope"):
        recipe_for(parent, closes_over, {})
    with pytest.raises(InvalidInput, match="module-level value 'LOCK'"):
        recipe_for(parent, uses_lock, {})
    fn = eval("lambda table: table")
    with pytest.raises(InvalidInput, match="source .* cannot be read"):
        recipe_for(parent, fn, {})


def test_closure_with_plain_values_is_pinned():
    limit = 3

    def short(table):
        return [r for r in table.to_pylist() if len(r["text"]) < limit]

    assert recipe_for("sha256:" + "a" * 64, short, {})["closure"] == {"limit": 3}


def test_bad_transform_result(store, make_tree):
    parent = create_snapshot(store, make_tree({"t.csv": "a\n1\n"}) / "t.csv", "bad")

    def returns_text(table):
        return "nope"

    with pytest.raises(InvalidInput, match="must return"):
        derive(store, parent, returns_text)
