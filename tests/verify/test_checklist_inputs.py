"""inputs-pinned resolves every kind of input: a model version and an artifact, file or folder,
are pinned when the store holds their bytes (a folder's file list and each file), and not when a
file is gone. A folder's content id is not an object id, so looking it up as one always failed."""

from __future__ import annotations

from pathlib import Path

import runlock
from runlock.registry import register
from runlock.store import Store
from runlock.verify import check, load_policy


def _inputs_rule(store: Store, run_id: str):  # noqa: ANN202
    policy = load_policy()
    only = type(policy)("test", {"inputs-pinned": policy.rules["inputs-pinned"]})
    (result,) = check(store, run_id, only).results
    return result


def test_model_folder_and_artifact_inputs_are_pinned(store: Store, tmp_path: Path) -> None:
    base = tmp_path / "base-model"
    base.mkdir()
    (base / "config.json").write_text('{"n_layer": 1}\n')
    (base / "model.safetensors").write_bytes(b"\x00weights" * 100)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    with runlock.start_run(project="p", name="pretrain", store=store) as made:
        folder = made.log_artifact(base, name="base", kind="model")
        file = made.log_artifact(notes, name="notes")
    register(store, made.id, "base", "base")
    with runlock.start_run(project="p", name="finetune", store=store) as run:
        run.use("model:base@v1")
        run.use(file.ref)
        run.use(folder.ref)
    result = _inputs_rule(store, run.id)
    assert result.passed, result.detail
    assert sorted((i["kind"], i["stored"]) for i in result.evidence["inputs"]) == [
        ("artifact", True), ("artifact", True), ("model", True)]
    weights = next(e["digest"] for e in runlock.artifacts.folder_entries(store, folder)
                   if e["path"] == "model.safetensors")
    store.objects.delete(weights)
    missing = _inputs_rule(store, run.id)
    assert not missing.passed and "model:base@v1" in missing.detail and file.ref not in missing.detail
