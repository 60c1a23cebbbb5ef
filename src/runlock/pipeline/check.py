"""``pipeline verify``: rerun chosen stages from their recorded inputs and compare.

Each chosen stage is rerun in a fresh folder that holds only what its last execution recorded:
every file and folder dep and upstream out by digest, from the store (so nothing upstream is
rerun), and its params files rebuilt from the recorded values of its declared keys. The cache is
not consulted. The new run is compared with the recorded one at the tiers of
``runlock.verify.compare`` (bitwise, tolerance, statistical, different).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from runlock import artifacts
from runlock.errors import InvalidInput
from runlock.pipeline import state
from runlock.pipeline.execute import execute
from runlock.pipeline.repro import project_name
from runlock.pipeline.spec import Pipeline, is_ref
from runlock.store import Store
from runlock.verify.compare import Comparison, compare


@dataclass(frozen=True)
class StageVerification:
    stage: str
    recorded_run: str
    rerun: str
    tier: str
    comparison: Comparison

    def to_dict(self) -> dict:
        return {"stage": self.stage, "recorded_run": self.recorded_run, "rerun": self.rerun, "tier": self.tier,
                "comparison": self.comparison.to_dict()}


def verify(store: Store, pipe: Pipeline, stages: list[str] | None = None, *,
           stdout: int | None = None) -> list[StageVerification]:
    names = stages or pipe.order()
    for n in names:
        if n not in pipe.stages:
            raise InvalidInput(f"No stage named {n!r} in runlock.yaml.", hint=f"Stages: {', '.join(pipe.stages)}.")
    rows = {}
    for n in names:
        row = state.last(store, str(pipe.root), n)
        if row is None or not row.made_by:
            raise InvalidInput(f"Stage {n!r} has no finished execution to verify.", hint="Run `runlock repro` first.")
        rows[n] = row
    return [_one(store, pipe, n, rows[n], stdout) for n in names]


def _one(store: Store, pipe: Pipeline, name: str, row: state.StageRow, stdout: int | None) -> StageVerification:
    doc = row.inputs
    with tempfile.TemporaryDirectory(prefix="runlock-verify-") as tmp:
        work = Path(tmp)
        for dep, info in doc["deps"].items():
            if not is_ref(dep):
                _place(store, info, work / dep)
        _write_params(work, doc["params"])
        result, _ = execute(store, pipe, name, doc, project=project_name(pipe), cwd=str(work), stdout=stdout)
    if result.status != "finished":
        raise InvalidInput(f"The rerun of stage {name!r} failed (run {result.run_id}): "
                           f"{(result.error or f'exit status {result.returncode}').strip().splitlines()[0]}")
    cmp = compare(store, row.made_by, result.run_id)
    return StageVerification(name, row.made_by, result.run_id, cmp.tier, cmp)


def _place(store: Store, info: dict, dest: Path) -> None:
    digest = info["digest"]
    if not store.objects.has(digest):
        raise InvalidInput(f"The store does not hold {digest}, recorded as an input; it cannot be rebuilt.")
    if info["kind"] == "out":
        art = artifacts.find(store, f"art:{digest}")
    else:
        manifest = digest if info["kind"] == "folder" else None
        art = artifacts.Artifact("", "input", digest, manifest, "input", "", 0, 0, {}, "")
    artifacts.materialize(store, art, dest, exclusive=True)


def _write_params(work: Path, params: dict) -> None:
    files: dict[str, dict] = {}
    for text, value in params.items():
        file, _, key = text.rpartition(":")
        cur = files.setdefault(file, {})
        *parents, leaf = key.split(".")
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = value
    for file, doc in files.items():
        path = work / file
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(doc, indent=2) if path.suffix == ".json" else yaml.safe_dump(doc, sort_keys=True)
        if path.suffix == ".toml":
            raise InvalidInput(f"Params file {file} is TOML; verify can rebuild YAML and JSON params files only.")
        path.write_text(text, encoding="utf-8")
