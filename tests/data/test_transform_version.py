"""A derived snapshot's id does not depend on the runlock that derived it: the version is kept in
the ``snapshot.create`` audit entry, not in the recipe (as for splits)."""

from __future__ import annotations

import importlib

import runlock
from runlock import audit
from runlock.data import create_snapshot
from runlock.data.transform import derive, recipe_for

snapshot_mod = importlib.import_module("runlock.data.snapshot")   # the package names a function so


def shout(table, suffix: str = "!"):
    return [{**r, "text": r["text"] + suffix} for r in table.to_pylist()]


def test_a_derived_snapshot_keeps_its_id_across_runlock_versions(make_store, make_tree, monkeypatch):
    f = make_tree({"t.csv": "id,text\n1,a\n2,bb\n"}) / "t.csv"
    ids, recipes = [], []
    for n, version in enumerate(("0.1.0", "9.9.9")):
        monkeypatch.setattr(runlock, "__version__", version)
        monkeypatch.setattr(snapshot_mod, "__version__", version)
        store = make_store(f"s{n}")      # a fresh store each time: nothing reused from the first
        parent = create_snapshot(store, f, "tickets", id_column="id")
        recipes.append(recipe_for(parent.id, shout, {"suffix": "?"}))
        child = derive(store, parent, shout, {"suffix": "?"}, "tickets-shout")
        ids.append(child.id)
        entry = audit.log(store, target=child.ref, action="snapshot.create")[-1]
        assert entry.details["runlock_version"] == version    # which runlock derived it: audited
    assert recipes[0] == recipes[1] and "runlock" not in recipes[0]
    assert ids[0] == ids[1]
