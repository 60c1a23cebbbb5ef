"""Environment drift and export, and verification of outputs against a reference file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch  # noqa: F401  (imported before any run, as a training script would)
from packaging.requirements import Requirement
from typer.testing import CliRunner

import runlock
from runlock import environment
from runlock.cli.main import app
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.verify import env_diff, export_requirements, verify_reference
from runlock.verify.envlock import container_recipe, diff_environments
from runlock.verify.records import verifications_of


@pytest.fixture
def run_id(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    outputs = {"q1": "refund", "q2": [0.25, 0.75], "q3": 3}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    with runlock.start_run(project="p", store=store, argv=["eval.py"]) as run:
        run.log_artifact(tmp_path / "outputs.json", name="outputs")
    return run.id


def test_env_diff_is_empty_here_and_names_a_new_distribution(store: Store, run_id: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    same = env_diff(store, run_id)
    assert same.drift == [] and same.expectation == "bitwise"
    dist = tmp_path / "site" / "runlock_dummy-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: runlock-dummy\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    drift = env_diff(store, run_id)
    assert [(d.group, d.field, d.recorded, d.current) for d in drift.drift] == [
        ("packages", "packages.runlock-dummy", "<absent>", "1.0")]
    assert drift.expectation == "tolerance or statistical"


def test_drift_groups_and_what_to_expect() -> None:
    here = environment.capture()
    other = json.loads(json.dumps(here))
    other["env"]["OMP_NUM_THREADS"] = "3"
    only_env = diff_environments(here, other)
    assert [(d.group, d.field) for d in only_env] == [("env", "env.OMP_NUM_THREADS")]
    other["torch"]["version"] = "0.0.1"
    other["python"]["version"] = "3.0.0"
    groups = {d.group for d in diff_environments(here, other)}
    assert groups == {"env", "torch/cuda", "interpreter"}


def test_export_pins_every_recorded_distribution(store: Store, run_id: str, tmp_path: Path) -> None:
    found = export_requirements(store, run_id)
    pins, direct = {}, {}
    folders = {s["directory"]: name for name, s in environment.sources().items() if s.get("editable")}
    for line in found.text.splitlines():
        if line.startswith("-e "):   # an editable install (PEP 610 dir_info) comes from its folder, not an index
            direct[folders[line[3:]]] = line
        elif line and not line.startswith(("#", "--")):
            req = Requirement(line)
            if req.url:
                direct[req.name] = line
                continue
            assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "=="
            pins[req.name] = next(iter(req.specifier)).version
    assert set(direct) == set(environment.sources())
    assert pins == {k: v for k, v in environment.distributions().items() if k not in direct}
    assert found.packages == len(pins) + len(direct)
    torch_version = pins["torch"]
    if "+" in torch_version:  # a local build (e.g. +cpu) needs its index
        assert f"https://download.pytorch.org/whl/{torch_version.split('+')[1]}" in found.text
    assert f"python:{sys.version.split()[0]}-slim" in found.container and "no base image digest" in found.container
    pinned = container_recipe({"container": {"image": "python:3.11", "digest": "sha256:" + "a" * 64}})
    assert pinned.startswith("FROM python:3.11@sha256:aaaa")
    result = CliRunner().invoke(app, ["--store", str(store.root), "env", "export", run_id, "-o",
                                      str(tmp_path / "requirements.lock"), "--container", str(tmp_path / "Dockerfile")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "requirements.lock").read_text() == found.text
    assert "COPY requirements.lock" in (tmp_path / "Dockerfile").read_text()
    diff = CliRunner().invoke(app, ["--store", str(store.root), "env", "diff", run_id, "--json"])
    assert json.loads(diff.stdout)["same"] is True


def test_reference_outputs_bitwise_tolerance_and_different(store: Store, run_id: str, tmp_path: Path) -> None:
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"q1": "refund", "q2": [0.25, 0.75], "q3": 3}))
    assert verify_reference(store, run_id, ref).tier == "bitwise"
    ref.write_text(json.dumps({"outputs": {"q1": "refund", "q2": [0.2500001, 0.75], "q3": 3}, "rtol": 1e-3}))
    found = verify_reference(store, run_id, ref)
    assert found.tier == "tolerance" and found.report["rtol"] == 1e-3
    ref.write_text(json.dumps({"q1": "cancel", "q2": [0.25, 0.75], "q3": 3, "q4": 1}))
    found = verify_reference(store, run_id, ref)
    assert found.tier == "different" and found.report["counts"] == {"bitwise": 2, "tolerance": 0, "different": 2}
    assert [c["case"] for c in found.report["cases"][:2]] == ["q1", "q4"]  # the mismatches first
    assert found.report["cases"][1]["got"] == "<missing>"
    assert store.objects.get_bytes(found.reference) == ref.read_bytes()  # the reference is kept as it was
    assert [v.kind for v in verifications_of(store, run_id)] == ["reference"] * 3


def test_reference_against_a_given_outputs_file_and_the_cli_gate(store: Store, run_id: str, tmp_path: Path) -> None:
    (tmp_path / "now.json").write_text(json.dumps(["refund", [0.25, 0.7500001], 3]))
    (tmp_path / "ref.json").write_text(json.dumps(["refund", [0.25, 0.75], 3]))
    cli = CliRunner()
    args = ["--store", str(store.root), "verify", run_id, "--reference", str(tmp_path / "ref.json"),
            "--outputs", str(tmp_path / "now.json"), "--json"]
    ok = cli.invoke(app, args)
    assert ok.exit_code == 0 and json.loads(ok.stdout)["tier"] == "tolerance"
    strict = cli.invoke(app, [*args, "--require", "bitwise"])
    assert strict.exit_code == 1
    (tmp_path / "now.json").write_text("{not json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        verify_reference(store, run_id, tmp_path / "ref.json", outputs=tmp_path / "now.json")
