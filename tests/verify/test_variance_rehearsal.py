"""End to end: seed-to-seed spread and the statistical tier, a package difference, a wrapped
command rerun through an audit rehearsal, and a rerun in place."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runlock.cli.main import app
from runlock.errors import RunlockError
from runlock.tracking import records
from runlock.verify import compare, plan_rerun, rehearse, rerun
from runlock.verify.records import latest_spread
from runlock.verify.rehearsal import candidates
from tests.verify.conftest import Toy, git

ARGS = ("--lr", "0.1", "--seed", "3", "--data", "ds:train@v1")


@pytest.fixture(scope="module")
def original(toy: Toy) -> str:
    return toy.train(*ARGS)


def test_variance_stores_the_spread_and_compare_uses_it(toy: Toy, original: str) -> None:
    result = CliRunner().invoke(app, ["--store", str(toy.store.root), "variance", original, "--seeds", "2", "--json"])
    assert result.exit_code == 0, result.output
    spread = json.loads(result.stdout)
    assert len(spread["seeds"]) == 2 and len(set(spread["seeds"])) == 2 and 3 not in spread["seeds"]
    stats = spread["stats"]["test/mse"]
    assert stats["n"] == 2 and stats["std"] > 0 and stats["min"] < stats["max"]
    one, two = spread["runs"]
    assert [x.id for x in [latest_spread(toy.store, [original])]] == [spread["id"]]
    assert records.get(toy.store, one).summary["test/mse"] in stats["values"]
    # two seeds of the spread itself: within k std by construction, never bitwise
    same_spread = latest_spread(toy.store, [original])
    assert compare(toy.store, one, two, spread=same_spread).tier == "statistical"
    assert compare(toy.store, one, two, spread=same_spread, k=0.0).tier == "different"
    found = compare(toy.store, original, one)  # finds the spread measured for the original
    assert found.tolerances["spread"] == spread["id"]
    assert [d["field"] for d in found.diagnosis if d["kind"] == "config"] == []
    assert any(d["field"] == "seed" for d in found.diagnosis)


def dummy_site(root: Path, version: str) -> Path:
    """A folder holding one installed distribution, runlock-dummy at ``version``, for PYTHONPATH."""
    dist = root / f"site-{version}" / f"runlock_dummy-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: runlock-dummy\nVersion: {version}\n")
    return dist.parent


def test_a_different_package_version_is_named(toy: Toy, tmp_path: Path) -> None:
    old = toy.train(*ARGS, env={"PYTHONPATH": str(dummy_site(tmp_path, "1.0"))})
    new = toy.train(*ARGS, env={"PYTHONPATH": str(dummy_site(tmp_path, "2.0"))})
    found = compare(toy.store, old, new)
    assert found.tier == "bitwise"  # the outputs agree, and the diagnosis still names the package
    assert found.diagnosis == [{"field": "environment.packages.runlock-dummy", "a": "1.0", "b": "2.0",
                                "kind": "package"}]
    drift = plan_rerun(toy.store, new).drift  # this process lacks the package
    assert [(d.group, d.field, d.recorded, d.current) for d in drift.drift] == [
        ("packages", "packages.runlock-dummy", "2.0", "<absent>")]
    assert drift.expectation == "tolerance or statistical"


def test_a_wrapped_command_is_rerun_by_an_audit_rehearsal(toy: Toy, original: str, tmp_path: Path) -> None:
    wrap = [sys.executable, "-c", "from runlock.cli.main import main; main()", "--store", str(toy.store.root),
            "run", "-p", "wrapped", "--seed", "3", "--", sys.executable, "train.py", *ARGS]
    subprocess.run(wrap, cwd=toy.repo, check=True, capture_output=True)
    (wrapped,) = records.list_runs(toy.store, project="wrapped")
    assert plan_rerun(toy.store, wrapped.id).style == "wrapper"
    done = rehearse(toy.store, 3, project="wrapped", seed=11)
    assert done.params["candidates"] == 1 and [r["run"] for r in done.results] == [wrapped.id]
    assert done.results[0]["tier"] == "bitwise" and done.results[0]["previous"] is None
    rerun_rec = records.get(toy.store, done.results[0]["rerun"])
    assert rerun_rec.project == "wrapped" and rerun_rec.status == "finished"
    # the repository loses the commit: the next rehearsal records the failure as a regression
    gone = tmp_path / "gone"
    gone.mkdir()
    git(gone, "init", "-q")
    again = rehearse(toy.store, 3, project="wrapped", seed=11, repo=gone)
    assert again.results[0]["tier"] == "failed" and again.results[0]["previous"] == "bitwise"
    assert again.regressed == [wrapped.id] and again.counts["failed"] == 1
    cli = CliRunner().invoke(app, ["--store", str(toy.store.root), "verify", wrapped.id, "--history", "--json"])
    assert [v["tier"] for v in json.loads(cli.stdout)] == ["bitwise", "failed"]


def test_rehearsal_samples_are_seeded_and_skip_reruns(toy: Toy, original: str) -> None:
    pool = candidates(toy.store, project="toy")
    assert original in pool
    spread = latest_spread(toy.store, [original])
    assert not set(spread.runs) & set(pool)  # variance reruns are not historic runs
    assert candidates(toy.store, since="2999-01-01") == []


def test_rerun_in_place_needs_the_recorded_code(toy: Toy, original: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(toy.repo)
    script = toy.repo / "train.py"
    clean = script.read_text()
    script.write_text(clean + "# an uncommitted edit\n")
    try:
        with pytest.raises(RunlockError, match="is not the code run"):
            rerun(toy.store, original, isolated=False)
    finally:
        script.write_text(clean)
    again = rerun(toy.store, original, isolated=False)
    assert again.status == "finished" and compare(toy.store, original, again.run_id).tier == "bitwise"
