"""Tables: records, record ids, schema, malformed lines, record diffs, read_table."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runlock.data import create_snapshot, read_table
from runlock.data.diff import diff
from runlock.data.tabular import RECORD_ID, parse, record_hash
from runlock.errors import InvalidInput

# Golden record id: the canonical form {"id":"1","text":"hi"} -> sha256. Must never change.
GOLDEN_RECORD = "sha256:d173fd835b67fec92fe26918dfef4afaf467510f8312ae5ae114ef84db7b27c5"


def test_record_id_rule_is_stable():
    assert GOLDEN_RECORD == "sha256:" + record_hash({"id": "1", "text": "hi"})
    assert record_hash({"text": "hi", "id": "1"}) == record_hash({"id": "1", "text": "hi"})
    parsed = parse(b"id,text\n1,hi\n", "csv")
    assert parsed.ids == [GOLDEN_RECORD]


def test_csv_with_id_column(store, make_tree):
    f = make_tree({"t.csv": 'id,text\n7,"a, quoted"\n8,plain\n'}) / "t.csv"
    snap = create_snapshot(store, f, "tickets", id_column="id")
    assert snap.kind == "table" and snap.record_count == 2
    assert snap.manifest["table"]["columns"] == [{"name": "id", "type": "string"},
                                                 {"name": "text", "type": "string"}]
    t = read_table(store, snap)
    assert t.column_names == [RECORD_ID, "id", "text"]
    assert t.column(RECORD_ID).to_pylist() == ["7", "8"]
    assert t.column("text").to_pylist() == ["a, quoted", "plain"]


def test_jsonl_types_and_content_ids(store, make_tree):
    lines = [{"a": 1, "b": "x", "c": 1.5, "d": True, "e": [1]}, {"a": 2, "b": None, "c": 2, "d": False, "e": {"k": 1}}]
    f = make_tree({"t.jsonl": "\n".join(json.dumps(r) for r in lines) + "\n"}) / "t.jsonl"
    snap = create_snapshot(store, f, "j")
    cols = {c["name"]: c["type"] for c in snap.manifest["table"]["columns"]}
    assert cols == {"a": "int64", "b": "string", "c": "double", "d": "bool", "e": "json"}
    t = read_table(store, snap.ref)
    assert t.column(RECORD_ID).to_pylist() == ["sha256:" + record_hash(r) for r in lines]
    assert t.column("c").to_pylist() == [1.5, 2.0] and t.column("e").to_pylist() == ["[1]", '{"k":1}']


def test_parquet_keeps_types(store, tmp_path):
    table = pa.table({"id": [3, 1], "when": pa.array([0, 86_400_000_000], pa.timestamp("us")),
                      "score": [0.5, float("nan")]})
    pq.write_table(table, tmp_path / "p.parquet")
    snap = create_snapshot(store, tmp_path / "p.parquet", "pq", id_column="id")
    assert snap.manifest["table"]["columns"] == [{"name": "id", "type": "int64"},
                                                 {"name": "when", "type": "timestamp[us]"},
                                                 {"name": "score", "type": "double"}]
    t = read_table(store, snap)
    assert t.column(RECORD_ID).to_pylist() == ["3", "1"]
    assert t.schema.field("when").type == pa.timestamp("us")


def test_duplicate_records_get_distinct_ids():
    parsed = parse(b"a\n1\n1\n2\n", "csv")
    h = record_hash({"a": "1"})
    assert parsed.ids[:2] == [f"sha256:{h}", f"sha256:{h}#2"]
    assert len(set(parsed.ids)) == 3


@pytest.mark.parametrize("fmt,data,message", [
    ("csv", b"a,b\n1,2\n3\n", "line 3: 1 fields, but the header has 2"),
    ("csv", b'a,b\n1,2\n"open,3\n', "line 3"),
    ("csv", b"a,a\n1,2\n", "line 1: the header has the column name 'a' twice"),
    ("csv", b"", "no header"),
    ("csv", b"a\n1\n\xff\n", "line 3: not valid UTF-8"),
    ("jsonl", b'{"a": 1}\n{"a": \n', "line 2: malformed JSONL"),
    ("jsonl", b'{"a": 1}\n\n[1, 2]\n', "line 3: malformed JSONL: expected a JSON object"),
    ("jsonl", b'{"a": NaN}\n', "line 1"),
    ("jsonl", b'{"_record_id": 1}\n', "reserved"),
    ("parquet", b"not parquet", "not a readable Parquet file"),
])
def test_malformed_input_names_the_line(fmt, data, message):
    with pytest.raises(InvalidInput, match=message):
        parse(data, fmt, source="f")


@pytest.mark.parametrize("data,message", [
    (b"id,x\n1,a\n1,b\n", "line 3: id '1' repeats the id of line 2"),
    (b"x\n1\n", "line 2: the id column 'id' is missing"),
])
def test_bad_id_column(data, message):
    with pytest.raises(InvalidInput, match=message):
        parse(data, "csv", id_column="id", source="f")


def test_malformed_table_records_nothing(store, make_tree):
    f = make_tree({"bad.jsonl": '{"a": 1}\n{oops}\n'}) / "bad.jsonl"
    with pytest.raises(InvalidInput, match="bad.jsonl: line 2"):
        create_snapshot(store, f, "bad")
    assert create_snapshot(store, f, "bad", kind="files").kind == "files"


def test_record_diff_by_id(store, make_tree):
    tree = make_tree({"t.csv": "id,text\n1,a\n2,b\n3,c\n"})
    v1 = create_snapshot(store, tree / "t.csv", "rd", id_column="id")
    (tree / "t.csv").write_text("id,text\n1,a\n2,B\n4,d\n")
    v2 = create_snapshot(store, tree / "t.csv", "rd", id_column="id")
    d = diff(store, v1.ref, v2.ref)
    assert d.records.to_dict() == {"added": ["4"], "removed": ["3"], "changed": ["2"]}
    assert d.files.changed == ["t.csv"]


def test_record_diff_by_content(store, make_tree):
    tree = make_tree({"t.jsonl": '{"x": 1}\n{"x": 2}\n'})
    v1 = create_snapshot(store, tree / "t.jsonl", "rc")
    (tree / "t.jsonl").write_text('{"x": 1}\n{"x": 3}\n')
    v2 = create_snapshot(store, tree / "t.jsonl", "rc")
    d = diff(store, v1, v2)
    assert d.records.added == ["sha256:" + record_hash({"x": 3})]
    assert d.records.removed == ["sha256:" + record_hash({"x": 2})]
    assert d.records.changed == []


def test_read_table_of_files_snapshot_is_an_error(store, make_tree):
    snap = create_snapshot(store, make_tree({"a": "1"}), "f")
    with pytest.raises(InvalidInput, match="not a table"):
        read_table(store, snap)


def test_id_column_changes_the_snapshot_id(store, make_tree):
    f = make_tree({"t.csv": "id,x\n1,a\n"}) / "t.csv"
    assert create_snapshot(store, f, "a").id != create_snapshot(store, f, "b", id_column="id").id
