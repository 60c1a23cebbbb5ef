"""Paths out of a manifest: one validator, nothing written outside DEST, links never followed out."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from runlock import canonical, paths
from runlock.data import manifest as mf
from runlock.data.checkout import checkout
from runlock.data.snapshot import create_snapshot, snapshots
from runlock.errors import IntegrityError, InvalidInput
from runlock.hashing import digest_bytes
from runlock.store import Store
from runlock.store.schema import refs, utcnow
from runlock.verify import inputs


@pytest.mark.parametrize("bad", [
    "../../x", "/tmp/x", "a/../../x", "..", ".", "", "a//b", "a/./b", "a/", "a\\b", "C:x", "nul\x00x",
    ".git/config", "sub/.git/hooks/post-checkout", ".runlock/keys/signing.key", ".GIT/config",
    ".git./x", ".git\u200c/config", "bad\ud800",
])
def test_the_validator_refuses(bad: str) -> None:
    assert paths.problem(bad) is not None
    with pytest.raises(IntegrityError, match="refuses"):
        paths.check_entry(bad)


@pytest.mark.parametrize("good", ["a", "a/b.txt", "ü/ñ.txt", "a b/c", "...", ".gitignore", "x/.github/y",
                                  "runlock/.runlockrc"])
def test_the_validator_accepts(good: str) -> None:
    assert paths.problem(good) is None


def test_collisions_are_refused() -> None:
    with pytest.raises(IntegrityError, match="same path"):
        paths.check_entries(["caf\u00e9", "cafe\u0301"])           # equal after NFC
    with pytest.raises(IntegrityError, match="both as a file and as a folder"):
        paths.check_entries(["a", "a/b"])
    assert paths.check_entries(["a/b", "a/c", "b"]) == ["a/b", "a/c", "b"]


def pwned(root: Path, store: Store) -> list[Path]:
    """Files holding the attacker's bytes anywhere under ``root`` but in the object store."""
    return [p for p in root.rglob("*") if p.is_file() and not paths.is_within(p, store.root)
            and p.read_bytes() == b"pwned"]


def plant_snapshot(store: Store, entries: list[tuple[str, bytes]], name: str = "evil") -> str:
    """What an attacker with write access to the store does: objects and rows, no runlock API."""
    rows = [{"path": p, "size": len(data), "sha256": store.objects.put_bytes(data)} for p, data in entries]
    manifest = {"format": mf.FORMAT, "kind": "files", "entries": rows, "files": len(rows),
                "size": sum(r["size"] for r in rows), "table": None, "parent": None, "recipe": None}
    oid = store.objects.put_bytes(canonical.dumps(manifest))
    with store.db.write() as conn:
        conn.execute(snapshots.insert().values(id=oid, kind="files", parent=None, recipe_id=None, recipe=None,
                                               record_count=None, size=manifest["size"], files=len(rows),
                                               created_at=utcnow(), created_by="mallory"))
        conn.execute(refs.insert().values(namespace="ds", name=name, version=1, target=oid, created_at=utcnow(),
                                          created_by="mallory", meta={}))
    return oid


@pytest.mark.parametrize("evil", ["../../x", "/PLACEHOLDER/x", "sub/../../../x", ".git/hooks/pre-commit"])
def test_checkout_refuses_a_crafted_manifest_naming_the_entry(store: Store, tmp_path: Path, evil: str) -> None:
    evil = evil.replace("/PLACEHOLDER", str(tmp_path))
    plant_snapshot(store, [("fine.txt", b"ok"), (evil, b"pwned")])
    dest = tmp_path / "a" / "b" / "dest"
    with pytest.raises(IntegrityError) as e:
        checkout(store, "ds:evil@v1", dest)
    assert repr(evil) in str(e.value)
    assert not dest.exists()
    assert pwned(tmp_path, store) == []


def test_the_cli_refuses_in_one_line_and_fsck_names_the_object(store: Store, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from runlock import fsck
    from runlock.cli.main import app

    oid = plant_snapshot(store, [("../../x", b"pwned")])
    result = CliRunner().invoke(app, ["--store", str(store.root), "data", "checkout", "ds:evil@v1",
                                      str(tmp_path / "dest")])
    assert result.exit_code == 1 and "'../../x'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "dest").exists() and pwned(tmp_path, store) == []
    report = fsck.fsck(store)
    assert not report.ok and [(p.id, p.problem) for p in report.problems] == [(oid, "unsafe path")]
    assert "'../../x'" in report.problems[0].detail


def test_a_rerun_refuses_to_materialise_a_crafted_input(store: Store, tmp_path: Path) -> None:
    oid = plant_snapshot(store, [("../../../escaped", b"pwned")])
    dest = tmp_path / "rerun" / "inputs"
    with pytest.raises(IntegrityError, match="escaped") as e:
        inputs.materialize(store, [{"node": f"snapshot:{oid}", "id": oid, "ref": "ds:evil@v1",
                                    "kind": "snapshot"}], dest)
    assert "crafted or damaged" in str(e.value) and "lost objects" not in str(e.value)
    assert pwned(tmp_path, store) == []


def test_checkout_never_follows_a_link_at_dest(store: Store, tmp_path: Path, make_tree) -> None:
    snap = create_snapshot(store, make_tree({"a.txt": "A"}), "ok")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "dest").symlink_to(elsewhere)
    with pytest.raises(InvalidInput, match="symbolic link"):
        checkout(store, snap.ref, tmp_path / "dest")
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(InvalidInput, match="never writes there"):
        checkout(store, snap.ref, store.root / "objects" / "co")
    out = checkout(store, snap.ref, tmp_path / "good")
    assert Path(out.dest, "a.txt").read_text() == "A"


def test_a_snapshot_id_binds_every_path(store: Store, make_tree) -> None:
    a = create_snapshot(store, make_tree({"x.txt": "same", "y.txt": "bytes"}, "one"), "one")
    b = create_snapshot(store, make_tree({"renamed.txt": "same", "y.txt": "bytes"}, "two"), "two")
    assert [e["sha256"] for e in a.entries] == [e["sha256"] for e in b.entries]
    assert a.id != b.id


def test_a_link_out_of_the_tree_is_refused_and_its_bytes_never_stored(store: Store, tmp_path: Path,
                                                                    make_tree) -> None:
    secret = tmp_path / "private" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY----- not yours")
    secret.chmod(0)              # the user may not read it (root still could: the link must not be followed)
    tree = make_tree({"data.csv": "a,b\n1,2\n"})
    (tree / "innocent.txt").symlink_to(secret)
    with pytest.raises(InvalidInput, match="innocent.txt is a symbolic link to .*outside the folder"):
        create_snapshot(store, tree, "leak")
    (tree / "innocent.txt").unlink()
    (tree / "sub").symlink_to(secret.parent)                                  # a folder link, too
    with pytest.raises(InvalidInput, match="sub is a symbolic link"):
        create_snapshot(store, tree, "leak")
    secret.chmod(0o600)
    assert not store.objects.has(digest_bytes(secret.read_bytes()))
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar() == 0
    (tree / "sub").unlink()
    (tree / "alias.csv").symlink_to(tree / "data.csv")                        # inside the tree: read
    snap = create_snapshot(store, tree, "fine")
    assert [e["path"] for e in snap.entries] == ["alias.csv", "data.csv"]


def test_a_snapshot_never_captures_a_store_or_a_repository(store: Store, make_tree) -> None:
    tree = make_tree({"data.txt": "d", ".runlock/keys/signing.key": "SECRET", ".git/config": "[core]",
                      "sub/.GIT/x": "y"})
    snap = create_snapshot(store, tree, "proj")
    assert [e["path"] for e in snap.entries] == ["data.txt"]
    assert not store.objects.has(digest_bytes(b"SECRET"))
    with pytest.raises(InvalidInput, match="never captures"):
        create_snapshot(store, tree / ".runlock", "keys")
    with pytest.raises(InvalidInput, match="never captures"):
        create_snapshot(store, store.root / "keys", "keys")


def test_dest_never_writes_through_a_link_and_a_fresh_one_never_replaces(tmp_path: Path) -> None:
    import io

    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "sub").symlink_to(outside)
    data = b"bytes"
    oid = digest_bytes(data)
    with paths.Dest(root) as d:
        with pytest.raises(InvalidInput, match="symbolic link"):
            d.write("sub/f", io.BytesIO(data), oid)
        with pytest.raises(IntegrityError, match="corrupt"):
            d.write("f", io.BytesIO(b"other"), oid)
        assert sorted(p.name for p in root.iterdir()) == ["sub"]          # no scratch left behind
        d.write("a/f", io.BytesIO(data), oid)
    assert list(outside.iterdir()) == [] and (root / "a" / "f").read_bytes() == data
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with paths.Dest(fresh, exclusive=True) as d:
        d.write("A", io.BytesIO(data), oid)
        with pytest.raises(IntegrityError, match="same file"):
            d.write("A", io.BytesIO(data), oid)      # what "a" after "A" is on a case-insensitive disk
    with pytest.raises(InvalidInput, match="symbolic link"):
        paths.Dest(root / "sub")
