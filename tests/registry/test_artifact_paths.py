"""Artifacts and models are written below DEST and nowhere else; --force deletes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from runlock import artifacts, canonical, paths, registry
from runlock.cli.main import app
from runlock.errors import IntegrityError, InvalidInput
from runlock.hashing import digest_bytes
from runlock.store import Store
from runlock.store.schema import artifacts as artifacts_table
from runlock.tracking.run import start_run


def craft_folder(store: Store, files: list[tuple[str, bytes]]) -> str:
    """A run whose folder artifact lists crafted paths, as a store writer who skips runlock's own
    listing would make it: the file list is written straight into the object store, then recorded
    (and sealed with the run). Returns the run id."""
    entries = [{"path": p, "size": len(b), "digest": store.objects.put_bytes(b)} for p, b in files]
    doc = {"format": "runlock.folder/1", "kind": "folder", "entries": sorted(entries, key=lambda e: e["path"])}
    oid = store.objects.put_bytes(canonical.dumps(doc))
    stored = (oid, oid, artifacts.FOLDER_MEDIA_TYPE, sum(e["size"] for e in entries), len(entries))
    with start_run(project="p", store=store) as run:
        store.db.run_write(lambda conn: artifacts.record(conn, store, run.id, "adapter", stored, "model", {}))
    return run.id


def pwned(root: Path, store: Store) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not paths.is_within(p, store.root)
            and p.read_bytes() == b"pwned"]


@pytest.mark.parametrize("evil", ["../../x", "/ABS/x", "a/../../x", ".git/hooks/post-checkout", ".runlock/config.toml"])
def test_artifacts_get_and_registry_get_refuse_a_crafted_file_list(store: Store, tmp_path: Path, evil: str) -> None:
    evil = evil.replace("/ABS", str(tmp_path / "abs"))
    run_id = craft_folder(store, [("ok.bin", b"fine"), (evil, b"pwned")])
    v1 = registry.register(store, run_id, "adapter", "bot")
    for get in (lambda d: artifacts.get_artifact(store, f"{run_id}/adapter", d),
                lambda d: registry.get(store, v1.ref, d)):
        dest = tmp_path / "deep" / "er" / "dest"
        with pytest.raises(IntegrityError) as e:
            get(dest)
        assert repr(evil) in str(e.value)
        assert not dest.exists()
    assert pwned(tmp_path, store) == []


def test_a_link_planted_in_dest_is_never_followed(store: Store, make_run, tmp_path: Path) -> None:
    run = make_run(store, payload=b"exact")
    ref = f"{run.id}/adapter"
    dest = tmp_path / "dest"
    artifacts.get_artifact(store, ref, dest)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    for p in (dest / "sub" / "tokenizer.json", dest / "sub"):
        p.unlink() if p.is_file() else p.rmdir()
    (dest / "sub").symlink_to(outside)                        # a folder on the way is a link
    with pytest.raises(InvalidInput, match="symbolic link"):
        artifacts.get_artifact(store, ref, dest, force=True)
    assert list(outside.iterdir()) == []
    assert (dest / "adapter_model.safetensors").read_bytes() == b"exact"    # refused before any write
    (dest / "sub").unlink()
    (dest / "adapter_model.safetensors").unlink()
    (dest / "adapter_model.safetensors").symlink_to(victim)  # the file itself is a link: replaced, not followed
    artifacts.get_artifact(store, ref, dest, force=True)
    assert victim.read_text() == "do not touch"
    assert not (dest / "adapter_model.safetensors").is_symlink()
    assert (dest / "adapter_model.safetensors").read_bytes() == b"exact"
    linked = tmp_path / "linked"
    linked.symlink_to(outside)                               # DEST itself is a link to a folder
    with pytest.raises(InvalidInput, match="symbolic link"):
        artifacts.get_artifact(store, ref, linked, force=True)
    assert list(outside.iterdir()) == []


def test_force_in_a_project_root_deletes_nothing(store: Store, make_run, monkeypatch: pytest.MonkeyPatch) -> None:
    project = store.root.parent
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "train.py").write_text("print('mine')\n")
    run = make_run(store)
    monkeypatch.chdir(project)
    runner = CliRunner()
    result = runner.invoke(app, ["artifacts", "get", f"{run.id}/adapter", ".", "--force"])
    assert result.exit_code == 2 and "never writes" in result.output and "Traceback" not in result.output
    assert (project / ".git" / "HEAD").is_file() and (project / ".runlock" / "config.toml").is_file()
    assert (project / "train.py").read_text() == "print('mine')\n"
    assert not (project / "adapter_model.safetensors").exists()
    (project / "sub").mkdir()
    for dest in (".runlock", str(project.parent), "sub/.."):             # the store, above the project
        result = runner.invoke(app, ["artifacts", "get", f"{run.id}/adapter", dest, "--force"])
        assert result.exit_code == 2, (dest, result.output)
    assert (project / ".git" / "HEAD").is_file() and (project / ".runlock" / "config.toml").is_file()
    # a folder inside the project that holds neither is fine: its other files stay
    (project / "models").mkdir()
    (project / "models" / "notes.md").write_text("keep")
    result = runner.invoke(app, ["artifacts", "get", f"{run.id}/adapter", "models", "--force"])
    assert result.exit_code == 0, result.output
    assert (project / "models" / "notes.md").read_text() == "keep"
    assert (project / "models" / "sub" / "tokenizer.json").read_text() == "{}"


def test_log_artifact_never_captures_the_store(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = store.root.parent
    (project / "out.txt").write_text("result")
    keys = [p.read_bytes() for p in (store.root / "keys").iterdir()]
    monkeypatch.chdir(project)
    with start_run(project="p", store=store) as run:
        art = run.log_artifact(".", "everything")
        with pytest.raises(InvalidInput):
            run.log_artifact(store.root, "the-store")
        with pytest.raises(InvalidInput):
            run.log_artifact(store.root / "keys", "keys")
    assert [e["path"] for e in artifacts.folder_entries(store, art)] == ["out.txt"]
    assert keys and not any(store.objects.has(digest_bytes(k)) for k in keys)


def test_a_folder_id_binds_every_path(store: Store, tmp_path: Path) -> None:
    for name, rel in (("one", "weights.bin"), ("two", "renamed.bin")):
        (tmp_path / name).mkdir()
        (tmp_path / name / rel).write_bytes(b"same bytes")
    a = artifacts.store_path(store, tmp_path / "one")[0]
    b = artifacts.store_path(store, tmp_path / "two")[0]
    assert a != b
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(artifacts_table)).scalar() == 0


def test_log_artifact_never_follows_a_link_out_of_the_folder(store: Store, tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"outside bytes")
    secret.chmod(0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "weights.bin").write_bytes(b"w")
    (out / "config.json").symlink_to(secret)
    with start_run(project="p", store=store) as run:
        with pytest.raises(InvalidInput, match="config.json is a symbolic link to .*outside the folder"):
            run.log_artifact(out, "model")
    secret.chmod(0o600)
    assert not store.objects.has(digest_bytes(b"outside bytes"))


def test_a_folder_logged_before_ids_bound_paths_still_reads_and_is_still_checked(store: Store,
                                                                                  tmp_path: Path) -> None:
    def legacy(files: list[tuple[str, bytes]]) -> str:
        entries = [{"path": p, "size": len(b), "digest": store.objects.put_bytes(b)} for p, b in files]
        manifest = store.objects.put_bytes(canonical.dumps({"kind": "folder", "entries": entries}))
        stored = (artifacts.model_signing_digest(entries), manifest, artifacts.FOLDER_MEDIA_TYPE,
                  sum(e["size"] for e in entries), len(entries))
        with start_run(project="p", store=store) as run:
            store.db.run_write(lambda conn: artifacts.record(conn, store, run.id, "old", stored, "model", {}))
        return run.id

    ok = legacy([("w.bin", b"old weights"), ("sub/c.json", b"{}")])
    artifacts.get_artifact(store, f"{ok}/old", tmp_path / "old")
    assert (tmp_path / "old" / "w.bin").read_bytes() == b"old weights"
    bad = legacy([("../../escape", b"pwned")])
    with pytest.raises(IntegrityError, match="escape"):
        artifacts.get_artifact(store, f"{bad}/old", tmp_path / "bad")
    assert pwned(tmp_path, store) == []
