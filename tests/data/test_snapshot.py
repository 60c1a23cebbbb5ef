"""Snapshots of files and folders: ids, versions, objects, audit, conformance on both databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from runlock import canonical
from runlock.audit import audit_log
from runlock.data import create_snapshot, list_snapshots, load_snapshot
from runlock.data.checkout import checkout
from runlock.data.diff import diff
from runlock.data.manifest import FORMAT
from runlock.data.snapshot import snapshots
from runlock.data.verify import verify
from runlock.errors import InvalidInput, NotFound
from runlock.store.schema import edges

# Golden id: any change to the manifest encoding shows up here as a diff.
GOLDEN_FILES = {"a.txt": "hello\n", "sub/b.txt": "world\n"}
GOLDEN_ID = "sha256:38045a84b4534b838c90b8970afaae5eb397d89095d084e1bc9641d19c5b7849"


def test_golden_manifest_and_id(store, make_tree):
    snap = create_snapshot(store, make_tree(GOLDEN_FILES), "golden")
    assert snap.manifest == {
        "format": FORMAT, "kind": "files", "files": 2, "size": 12, "table": None, "parent": None,
        "recipe": None,
        "entries": [
            {"path": "a.txt", "size": 6,
             "sha256": "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"},
            {"path": "sub/b.txt", "size": 6,
             "sha256": "sha256:e258d248fda94c63753607f7c4494ee0fcbe92f1a76bfdac795c9d84101eb317"}]}
    assert snap.id == canonical.digest(snap.manifest) == GOLDEN_ID


def test_conformance_versions_objects_audit(any_store, make_tree):
    tree = make_tree({"a.txt": "1", "b/c.txt": "2"})
    v1 = create_snapshot(any_store, tree, "ds1")
    assert (v1.ref, v1.created, v1.lineage_node) == ("ds:ds1@v1", True, f"snapshot:{v1.id}")
    again = create_snapshot(any_store, tree, "ds1")
    assert (again.ref, again.id, again.created) == ("ds:ds1@v1", v1.id, False)
    (tree / "a.txt").write_text("changed")
    v2 = create_snapshot(any_store, tree, "ds1")
    assert v2.ref == "ds:ds1@v2" and v2.id != v1.id
    # every file is an object, so the old version can still be checked out
    for e in v1.entries:
        assert any_store.objects.get_bytes(e["sha256"])
    assert [i.ref for i in list_snapshots(any_store)] == ["ds:ds1@v1", "ds:ds1@v2"]
    assert load_snapshot(any_store, "ds:ds1").id == v2.id
    assert load_snapshot(any_store, "ds1@v1").id == v1.id
    assert load_snapshot(any_store, v1.id).ref == "ds:ds1@v1"
    with any_store.db.read() as conn:
        actions = conn.execute(sa.select(audit_log.c.action, audit_log.c.target, audit_log.c.before,
                                         audit_log.c.after)).all()
        rows = conn.execute(sa.select(snapshots.c.id, snapshots.c.files)).all()
    assert [tuple(a) for a in actions] == [("snapshot.create", "ds:ds1@v1", None, v1.id),
                                           ("snapshot.create", "ds:ds1@v2", v1.id, v2.id)]
    assert sorted(tuple(r) for r in rows) == sorted([(v1.id, 2), (v2.id, 2)])


def test_same_content_under_two_names_is_one_snapshot(store, make_tree):
    a = create_snapshot(store, make_tree({"x": "1"}, "one"), "first")
    b = create_snapshot(store, make_tree({"x": "1"}, "two"), "second")
    assert a.id == b.id and b.ref == "ds:second@v1"


def test_checkout_round_trip_and_refuses_non_empty(store, make_tree, tmp_path):
    tree = make_tree({"a.txt": "alpha", "d/e/f.bin": os.urandom(3000), "empty": b""})
    snap = create_snapshot(store, tree, "rt")
    out = tmp_path / "out"
    result = checkout(store, snap.ref, out)
    assert result.files == 3
    for rel in ("a.txt", "d/e/f.bin", "empty"):
        assert (out / rel).read_bytes() == (tree / rel).read_bytes()
    assert create_snapshot(store, out, "rt").id == snap.id
    with pytest.raises(InvalidInput, match="not an empty folder"):
        checkout(store, snap.ref, out)


def test_checkout_refuses_corrupt_object_and_leaves_nothing(store, make_tree, tmp_path):
    snap = create_snapshot(store, make_tree({"a.txt": "alpha"}), "c")
    obj = store.objects.path_of(snap.entries[0]["sha256"])
    os.chmod(obj, 0o644)
    obj.write_text("ALPHA")
    with pytest.raises(Exception, match="corrupt"):
        checkout(store, snap.ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    report = verify(store)
    assert [(p.problem, p.path) for p in report.problems] == [("corrupt", "a.txt")]


def test_diff_files(store, make_tree):
    tree = make_tree({"keep": "k", "edit": "1", "gone": "g"})
    v1 = create_snapshot(store, tree, "d")
    (tree / "edit").write_text("2")
    (tree / "gone").unlink()
    (tree / "new").write_text("n")
    v2 = create_snapshot(store, tree, "d")
    d = diff(store, v1.ref, v2.ref)
    assert d.files.to_dict() == {"added": ["new"], "removed": ["gone"], "changed": ["edit"]}
    assert d.records is None and not d.identical


def test_verify_path_always_rehashes(store, make_tree):
    tree = make_tree({"a": "same size 1"})
    snap = create_snapshot(store, tree, "v")
    st = os.stat(tree / "a")
    (tree / "a").write_text("same size 2")
    os.utime(tree / "a", ns=(st.st_atime_ns, st.st_mtime_ns))
    report = verify(store, snap.ref, path=tree)
    assert [(p.problem, p.path) for p in report.problems] == [("changed", "a")]
    (tree / "extra").write_text("x")
    assert {p.problem for p in verify(store, snap.ref, path=tree).problems} == {"changed", "extra"}


def test_stat_cache_sees_in_place_edit_that_restores_mtime(store, make_tree):
    tree = make_tree({"f.txt": "version one"})
    old = os.stat(tree / "f.txt")
    os.utime(tree / "f.txt", ns=(old.st_atime_ns, old.st_mtime_ns - 10**10))  # not racy: 10 s old
    v1 = create_snapshot(store, tree, "sc")
    before = os.stat(tree / "f.txt")
    with open(tree / "f.txt", "r+b") as f:  # same inode, same size
        f.write(b"VERSION")
    os.utime(tree / "f.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(tree / "f.txt")
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    v2 = create_snapshot(store, tree, "sc")
    assert v2.id != v1.id and v2.entries[0]["sha256"] != v1.entries[0]["sha256"]


def test_stat_cache_skips_unchanged_files(store, make_tree, monkeypatch):
    tree = make_tree({f"f{i}": str(i) for i in range(20)})
    for p in tree.iterdir():
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - 10**10))
    first = create_snapshot(store, tree, "warm")
    # Age the ctime too: wait until the files' ctime is older than the racy margin.
    import time
    time.sleep(0.15)
    create_snapshot(store, tree, "warm")
    opened = []
    real_open = open

    def spy(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    assert create_snapshot(store, tree, "warm").id == first.id
    assert not [p for p in opened if p.startswith(str(tree))]


def test_bad_inputs(store, make_tree, tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        create_snapshot(store, tmp_path / "nope", "x")
    loop = make_tree({"a": "1"}, "loop")
    (loop / "sub").mkdir()
    (loop / "sub" / "back").symlink_to(loop)
    with pytest.raises(InvalidInput, match="loop"):
        create_snapshot(store, loop, "x")
    selfloop = make_tree({"a": "1"}, "selfloop")
    (selfloop / "me").symlink_to(selfloop / "me")
    with pytest.raises(InvalidInput, match="loop"):
        create_snapshot(store, selfloop, "x")
    broken = make_tree({"a": "1"}, "broken")
    (broken / "dangling").symlink_to(broken / "missing")
    with pytest.raises(InvalidInput, match="broken symbolic link"):
        create_snapshot(store, broken, "x")
    fifo = make_tree({"a": "1"}, "fifo")
    os.mkfifo(fifo / "pipe")
    with pytest.raises(InvalidInput, match="not a regular file"):
        create_snapshot(store, fifo, "x")
    with pytest.raises(InvalidInput, match="not allowed"):
        create_snapshot(store, make_tree({"a": "1"}, "ok"), "bad name!")
    with pytest.raises(InvalidInput, match="not a tabular file"):
        create_snapshot(store, make_tree({"a": "1"}, "ok"), "x", id_column="id")
    with pytest.raises(NotFound):
        load_snapshot(store, "ds:never@v1")
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar() == 0


def test_symlinked_file_and_store_folder_excluded(store, make_tree):
    tree = make_tree({"real.txt": "data", ".runlock/config.toml": "x"})
    (tree / "link.txt").symlink_to(tree / "real.txt")
    snap = create_snapshot(store, tree, "links")
    assert [e["path"] for e in snap.entries] == ["link.txt", "real.txt"]
    assert snap.entries[0]["sha256"] == snap.entries[1]["sha256"]


def test_file_changing_while_hashed_is_never_recorded(store, make_tree):
    import threading

    tree = make_tree({"big.bin": os.urandom(32 << 20)})
    stop = threading.Event()

    def writer() -> None:
        with open(tree / "big.bin", "r+b") as f:
            i = 0
            while not stop.is_set():
                f.seek((i * 4096) % (32 << 20))
                f.write(os.urandom(16))
                f.flush()
                i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        with pytest.raises(InvalidInput, match="kept changing"):
            create_snapshot(store, tree, "moving", use_cache=False)
    finally:
        stop.set()
        t.join()
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar() == 0
    assert not list((store.objects.scratch_dir()).glob("snap-*"))


def test_empty_folder_and_single_file(store, make_tree, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    snap = create_snapshot(store, empty, "empty")
    assert snap.files == 0 and snap.size == 0
    f = make_tree({"notes.bin": "abc"}, "single") / "notes.bin"
    one = create_snapshot(store, f)
    assert one.ref == "ds:notes@v1" and [e["path"] for e in one.entries] == ["notes.bin"]


def test_lineage_edge_only_for_derived(store, make_tree):
    create_snapshot(store, make_tree({"a": "1"}), "plain")
    with store.db.read() as conn:
        assert conn.execute(sa.select(edges)).all() == []


def test_unreadable_file_is_reported(store, make_tree):
    tree = make_tree({"secret": "s", "ok": "o"})
    os.chmod(tree / "secret", 0)
    target = tree
    if os.geteuid() == 0:  # root reads anything: make the read fail another way
        os.chmod(tree / "secret", 0o644)
        (tree / "secret").unlink()
        (tree / "secret").symlink_to("/proc/self/mem")
        target = tree / "secret"  # named as the root: a link inside a tree to outside it is refused
    with pytest.raises(InvalidInput, match="Cannot read secret"):
        create_snapshot(store, target, "unreadable", use_cache=False)


def test_store_path_is_not_in_the_id(make_store, make_tree):
    a = create_snapshot(make_store("s1"), make_tree({"x": "1"}, "p1"), "n")
    b = create_snapshot(make_store("s2"), make_tree({"x": "1"}, "deeper/p2"), "n")
    assert a.id == b.id
