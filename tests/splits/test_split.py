"""Splits in a store: manifests, names, conformance on SQLite and PostgreSQL, export/import/apply,
leakage on create, errors, and determinism in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from runlock import canonical
from runlock.audit import audit_log
from runlock.api import split as public_split
from runlock.data.split import FORMAT, create_split, list_splits, load, splits
from runlock.data.split_ops import apply_split, check_split, export_split, import_split
from runlock.errors import InvalidInput, NotFound
from runlock.store.schema import edges
from tests.splits.conftest import rows


def test_conformance_create_name_audit_lineage(any_store, make_snapshot):
    snap = make_snapshot(any_store, rows(120))
    sp = create_split(any_store, snap.ref, name="tk", seed=42, strategy="stratified", by="label")
    m = sp.manifest
    assert (sp.ref, sp.created, sp.lineage_node) == ("split:tk@v1", True, f"split:{sp.id}")
    assert m["format"] == FORMAT and m["snapshot"] == snap.id and m["seed"] == 42
    assert m["hash"] == "rl-hash64-v1" and m["params"]["by"] == "label"
    all_ids = [i for p in sp.partitions for i in sp.ids(p)]
    assert sorted(all_ids) == sorted(r["id"] for r in rows(120)) and len(set(all_ids)) == 120
    for p in m["partitions"]:
        assert p["ids"] == sorted(p["ids"]) and p["digest"] == canonical.digest(p["ids"])
    assert sp.counts == {"train": 96, "validation": 12, "test": 12}
    assert sp.id == canonical.digest(m)
    again = create_split(any_store, snap, name="tk", seed=42, strategy="stratified", by="label")
    assert (again.id, again.ref, again.created) == (sp.id, "split:tk@v1", False)
    other = create_split(any_store, snap, name="tk", seed=43, strategy="stratified", by="label")
    assert other.ref == "split:tk@v2" and other.id != sp.id
    assert [i.ref for i in list_splits(any_store)] == ["split:tk@v1", "split:tk@v2"]
    assert load(any_store, "split:tk@v1").id == sp.id and load(any_store, "tk").id == other.id
    assert load(any_store, sp.id).ref == "split:tk@v1"
    with any_store.db.read() as conn:
        actions = conn.execute(sa.select(audit_log.c.action, audit_log.c.target, audit_log.c.after)
                               .where(audit_log.c.action.like("split.%")).order_by(audit_log.c.seq)).all()
        edge = conn.execute(sa.select(edges.c.kind, edges.c.dst).where(edges.c.src == sp.lineage_node)).all()
        row = conn.execute(sa.select(splits).where(splits.c.id == sp.id)).first()
    assert [tuple(a) for a in actions] == [("split.create", "split:tk@v1", sp.id),
                                           ("split.create", "split:tk@v2", other.id)]
    assert [tuple(e) for e in edge] == [("derived_from", snap.lineage_node)]
    assert row.passed is True and row.report_id and row.counts == sp.counts


def test_loaded_split_converts_to_tables(store, make_snapshot):
    snap = make_snapshot(store, rows(60))
    sp = load(store, create_split(store, snap, name="tk", seed=1).ref)
    test = sp.to_arrow("test")
    assert test.column("_record_id").to_pylist() == sp.ids("test")
    assert set(sp.to_pandas()) == {"train", "validation", "test"}
    assert list(sp.to_pandas("validation")["id"]) == sp.ids("validation")
    hf = sp.to_hf()
    assert hf["train"].num_rows == sp.counts["train"] and hf["test"]["id"] == sp.ids("test")
    with pytest.raises(InvalidInput, match="no partition 'dev'"):
        sp.ids("dev")


def test_public_api_takes_a_snapshot_or_a_reference(store, make_snapshot):
    snap = make_snapshot(store, rows(50))
    a = public_split(snap, name="x", seed=3, store=store)
    b = public_split("ds:tickets@v1", name="x", seed=3, store=store, names=None)
    assert a.id == b.id and a.ref == "split:x@v1"


def test_leakage_is_checked_on_create_and_stored(store, make_snapshot):
    data = rows(80)
    data.append({**data[0], "id": "copy", "text": data[0]["text"].upper()})
    sp = create_split(store, make_snapshot(store, data), name="leaky", seed=0)
    if sp.leakage.passed:  # the copy landed with its original: same-partition copies are no leak
        assert {p for p in sp.partitions if "copy" in sp.ids(p)} == {p for p in sp.partitions if "r00000" in sp.ids(p)}
    else:
        assert [(p.kind, {p.a, p.b}) for p in sp.leakage.pairs] == [("exact", {"copy", "r00000"})]
    deduped = create_split(store, make_snapshot(store, data), name="clean", seed=0, dedup=True)
    assert deduped.manifest["removed"] == [{"id": "r00000", "kept": "copy", "kind": "exact"}]
    assert deduped.leakage.passed and sum(deduped.counts.values()) == 80


def test_group_split_reports_achieved_ratios_and_no_group_leak(store, make_snapshot):
    sp = create_split(store, make_snapshot(store, rows(230)), name="g", strategy="group", by="customer", seed=5)
    assert sp.leakage.passed and sp.leakage.counts["group"] == 0
    assert abs(sp.to_dict()["achieved"]["train"] - 0.8) < 0.06


def test_export_import_round_trip(store, make_snapshot, tmp_path):
    snap = make_snapshot(store, rows(40))
    sp = create_split(store, snap, name="tk", seed=7)
    out = export_split(store, sp.ref, tmp_path / "splits_v1.json")
    body = json.loads((tmp_path / "splits_v1.json").read_text())
    assert list(body) == ["train", "validation", "test"] and body["test"] == sp.ids("test")
    assert out.counts == sp.counts
    back = import_split(store, tmp_path / "splits_v1.json", snap.ref, name="imp")
    assert back.ref == "split:imp@v1" and back.strategy == "imported"
    assert all(back.ids(p) == sp.ids(p) for p in sp.partitions)
    body["test"].append("not-a-record")
    (tmp_path / "bad.json").write_text(json.dumps(body))
    with pytest.raises(InvalidInput, match="not-a-record"):
        import_split(store, tmp_path / "bad.json", snap.ref, name="bad")
    (tmp_path / "twice.json").write_text(json.dumps({"a": ["r00001"], "b": ["r00001"]}))
    with pytest.raises(InvalidInput, match="two partitions"):
        import_split(store, tmp_path / "twice.json", snap.ref, name="bad")
    (tmp_path / "shape.json").write_text(json.dumps(["r00001"]))
    with pytest.raises(InvalidInput, match="JSON object"):
        import_split(store, tmp_path / "shape.json", snap.ref, name="bad")


@pytest.mark.parametrize("strategy, by", [("random", None), ("stratified", "label"), ("group", "customer"),
                                          ("temporal", "day"), ("hash", None)])
def test_apply_keeps_old_records_in_place(store, make_snapshot, strategy, by):
    old_rows = rows(150)
    v1 = make_snapshot(store, old_rows)
    sp = create_split(store, v1, name="s", strategy=strategy, by=by, seed=11)
    new_rows = old_rows[5:] + rows(40, seed=9, start=150)
    if strategy == "temporal":
        for r in new_rows[-40:]:
            r["day"] = "2024-02-15"
    v2 = make_snapshot(store, new_rows)
    moved = apply_split(store, sp.ref, v2.ref)
    assert moved.ref == "split:s@v2" and moved.manifest["applied"]["from"] == sp.id
    for p in sp.partitions:
        assert set(sp.ids(p)) - {r["id"] for r in old_rows[:5]} <= set(moved.ids(p))
    assert moved.manifest["applied"]["missing"] == sorted(r["id"] for r in old_rows[:5])
    assert sum(moved.manifest["applied"]["added"].values()) == 40
    assert sum(moved.counts.values()) == 185
    if strategy == "hash":  # placing the new records by hash = splitting v2 afresh
        fresh = create_split(store, v2, name="fresh", strategy="hash", seed=11)
        assert all(fresh.ids(p) == moved.ids(p) for p in sp.partitions)
    if strategy == "temporal":
        assert set(moved.ids("test")) >= {r["id"] for r in new_rows[-40:]}
    assert moved.leakage.counts["group"] == 0 and moved.leakage.counts["temporal"] == 0
    with store.db.read() as conn:
        kinds = conn.execute(sa.select(edges.c.dst).where(edges.c.src == moved.lineage_node)).scalars().all()
    assert set(kinds) == {v2.lineage_node, sp.lineage_node}


def test_check_stores_a_new_report(store, make_snapshot):
    sp = create_split(store, make_snapshot(store, rows(60)), name="c", seed=2, check=False)
    assert sp.leakage is None
    result = check_split(store, sp.ref)
    assert result.report.passed and load(store, sp.ref).leakage == result.report
    with store.db.read() as conn:
        assert conn.execute(sa.select(audit_log.c.action).where(audit_log.c.target == sp.ref)
                            .order_by(audit_log.c.seq)).scalars().all() == ["split.create", "split.check"]


@pytest.mark.parametrize("kwargs, match", [
    ({"strategy": "stratified", "by": "nope"}, "Column 'nope' is not in this snapshot"),
    ({"strategy": "stratified", "by": "maybe"}, "'maybe' has 1 missing values"),
    ({"ratios": (0.5, 0.4)}, "sum to 0.9"),
    ({"strategy": "group", "by": "customer", "ratios": (0.98, 0.01, 0.01)}, "empty|too small|groups"),
    ({"strategy": "random", "by": "label"}, "takes no --by"),
    ({"group": "customer", "strategy": "group", "by": "label"}, "only for the stratified-group"),
])
def test_bad_input_is_named(store, make_snapshot, kwargs, match):
    data = rows(30)
    for i, r in enumerate(data):
        r["maybe"] = None if i == 3 else "x"
    with pytest.raises(InvalidInput, match=match):
        create_split(store, make_snapshot(store, data), name="bad", **kwargs)


def test_too_small_dataset_and_unknown_split(store, make_snapshot):
    with pytest.raises(InvalidInput, match="too small"):
        create_split(store, make_snapshot(store, rows(5)), name="tiny")
    with pytest.raises(NotFound):
        load(store, "split:nothing@v1")


SCRIPT = textwrap.dedent("""
    import json, sys
    from runlock.workspace import init
    from runlock.data import create_snapshot
    from runlock.data.split import create_split
    store = init(sys.argv[1])
    snap = create_snapshot(store, sys.argv[2], "tickets", id_column="id")
    made = [create_split(store, snap, name=s, seed=42, strategy=s, by=b)
            for s, b in (("stratified", "label"), ("group", "customer"), ("hash", None))]
    print(json.dumps([[sp.id, sp.counts] for sp in made]))
""")


def test_same_seed_same_manifest_in_fresh_processes(tmp_path):
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows(200)))
    out = []
    for k in range(2):
        (tmp_path / f"s{k}").mkdir()
        res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"s{k}"), str(data)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": str(k + 1)})
        out.append(json.loads(res.stdout))
    assert out[0] == out[1] and len({i for i, _ in out[0]}) == 3
