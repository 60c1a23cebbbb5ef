"""The artifact catalog, and a folder's identity checked against the real model-signing library."""

from __future__ import annotations

import os
from pathlib import Path

import model_signing
import pytest
from model_signing._signing import signing as ms_signing

from runlock import artifacts, canonical, registry
from runlock.errors import Conflict, InvalidInput, NotFound
from runlock.store import Store
from runlock.tracking.run import start_run


def model_signing_root_digest(folder: Path) -> str:
    """The sha256 that a model-signing signature of ``folder`` carries as its subject digest."""
    manifest = model_signing.hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=False).hash(folder)
    return "sha256:" + ms_signing.Payload(manifest).statement.pb.subject[0].digest["sha256"]


def tricky_folder(root: Path) -> Path:
    files = {"a/b": b"1", "a-c": b"2", "a.d/e": b"", "B": b"upper", "z/y/x.bin": os.urandom(3000),
             "ü/ñ.txt": "unicode".encode(), "a/b c": b"space", "a0": b"digit"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _signing_digest(store: Store, manifest: str) -> str:
    return artifacts.model_signing_digest(canonical.loads(store.objects.get_bytes(manifest))["entries"])


def test_folder_digest_matches_model_signing_exactly(store: Store, tmp_path: Path) -> None:
    folder = tricky_folder(tmp_path / "model")
    digest, manifest, media, size, files = artifacts.store_path(store, folder)
    assert _signing_digest(store, manifest) == model_signing_root_digest(folder)
    assert files == 8 and media == artifacts.FOLDER_MEDIA_TYPE and manifest == digest   # the id is the file list's
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    folder.rename(moved)
    assert artifacts.store_path(store, moved)[0] == digest         # location does not matter
    (moved / "a-c").write_bytes(b"3")
    changed, manifest2 = artifacts.store_path(store, moved)[:2]
    assert changed != digest and _signing_digest(store, manifest2) == model_signing_root_digest(moved)


def test_list_show_and_get(store: Store, make_run, tmp_path: Path) -> None:
    a = make_run(store, "a", b"one")
    b = make_run(store, "b", b"one")                 # the same bytes from another run
    c = make_run(store, "c", b"two")
    registry.register(store, a.id, "adapter", "bot")
    listed = artifacts.list_artifacts(store)
    assert [x.run_id for x in listed] == [c.id, b.id, a.id]
    assert [x.run_id for x in artifacts.list_artifacts(store, run=b.id)] == [b.id]
    assert artifacts.list_artifacts(store, kind="checkpoint") == []
    assert len(artifacts.list_artifacts(store, limit=2)) == 2
    detail = artifacts.show(store, listed[2].ref)
    assert [p["run"] for p in detail.producers] == [a.id, b.id]
    assert detail.models == ["model:bot@v1"] and detail.artifact.kind == "model"
    assert detail.artifact.meta == {"format": "peft"} and detail.artifact.media_type == artifacts.FOLDER_MEDIA_TYPE
    assert sorted(e["path"] for e in detail.entries) == ["adapter_config.json", "adapter_model.safetensors",
                                                         "sub/tokenizer.json"]
    assert artifacts.find(store, f"{c.id}/adapter").digest == artifacts.find(store, f"run:{c.id[:10]}/adapter").digest
    got = artifacts.get_artifact(store, f"{c.id}/adapter", tmp_path / "out")
    assert (tmp_path / "out" / "adapter_model.safetensors").read_bytes() == b"two" and got.files == 3
    with pytest.raises(Conflict):
        artifacts.get_artifact(store, f"{c.id}/adapter", tmp_path / "out")
    for bad, error in [("art:sha256:" + "0" * 64, NotFound), (f"{c.id}/nope", NotFound), ("adapter", InvalidInput),
                       ("abc/adapter", InvalidInput)]:
        with pytest.raises(error):
            artifacts.find(store, bad)


def test_a_single_file_artifact_round_trips(store: Store, tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text('{"f1": 0.5}')
    with start_run(project="p", store=store) as run:
        art = run.log_artifact(tmp_path / "metrics.json", "metrics", kind="eval")
    assert art.media_type == "application/json" and art.files == 1 and art.manifest is None
    artifacts.get_artifact(store, art.ref, tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_text() == '{"f1": 0.5}'
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "keep").write_text("mine")
    with pytest.raises(InvalidInput, match="never deletes a folder"):      # --force never deletes a folder
        artifacts.get_artifact(store, art.ref, tmp_path / "dir", force=True)
    assert (tmp_path / "dir" / "keep").read_text() == "mine"
    (tmp_path / "copy.json").write_text("old")
    artifacts.get_artifact(store, art.ref, tmp_path / "copy.json", force=True)   # ... it replaces a file
    assert (tmp_path / "copy.json").read_text() == '{"f1": 0.5}'
