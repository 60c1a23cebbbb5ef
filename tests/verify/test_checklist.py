"""The reproducibility checklist: each rule passes and fails on real runs, policies from TOML and
YAML files, and the CLI's exit status for CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock import refs, seeding
from runlock.cli.main import app
from runlock.data import create_snapshot
from runlock.data.split import create_split
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.verify import check, load_policy
from runlock.verify.records import add_verification
from tests.verify.conftest import git


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean git repository as the working directory, with a table to snapshot and split."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("print('train')\n")
    git(root, "add", "-A")
    git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "init")
    rows = "\n".join(f"{i},text number {i} about topic {i % 7}" for i in range(40))
    (tmp_path / "t.csv").write_text("id,text\n" + rows + "\n")
    monkeypatch.chdir(root)
    return root


def good_run(store: Store, tmp_path: Path, *, split: bool = True) -> str:
    snap = create_snapshot(store, tmp_path / "t.csv", "t", id_column="id")
    report = seeding.seed_everything(5, deterministic=False).to_dict()
    with runlock.start_run(project="p", store=store, config={"lr": 0.1}, seed=5, argv=["train.py"]) as run:
        run.record_seeding(report, seed=5)
        run.use(create_split(store, snap, name="t", seed=1) if split else snap)
        run.set_summary({"test/acc": 0.9})
    return run.id


def results(report) -> dict[str, bool]:  # noqa: ANN001
    return {r.rule: r.passed for r in report.results}


def test_a_well_recorded_run_passes_everything_but_verification(store: Store, repo: Path, tmp_path: Path) -> None:
    run = good_run(store, tmp_path)
    found = check(store, run)
    assert found.policy == "built-in default"
    assert results(found) == {"code-committed": True, "inputs-pinned": True, "split-leakage": True,
                              "seeds-recorded": True, "environment-complete": True, "verified": False,
                              "test-evaluation": True, "metrics-complete": True}
    assert not found.ok
    evidence = {r.rule: r.evidence for r in found.results}
    assert evidence["verified"] == {"latest": None, "best": None, "min_tier": "tolerance"}
    assert evidence["code-committed"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert [i["stored"] for i in evidence["inputs-pinned"]["inputs"]] == [True]
    add_verification(store, run, "rerun", "tolerance", {})
    assert check(store, run).ok


def test_rules_fail_with_their_evidence(store: Store, repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_text("print('changed, not committed')\n")
    with runlock.start_run(project="p", store=store, argv=["train.py"]) as run:
        run.log({"train/loss": 1.0}, step=0)
    found = {r.rule: r for r in check(store, run.id).results}
    assert found["code-committed"].passed  # dirty, but the diff is recorded and stored
    assert not found["inputs-pinned"].passed and "no inputs" in found["inputs-pinned"].detail
    assert not found["seeds-recorded"].passed and "a seed" in found["seeds-recorded"].detail
    assert not found["test-evaluation"].passed
    (repo / "runlock-policy.yaml").write_text(
        "check:\n  rules: [code-committed, inputs-pinned]\n"
        "  code-committed: {allow_recorded_diff: false}\n  inputs-pinned: {require_inputs: false}\n")
    strict = check(store, run.id, load_policy())
    assert strict.policy.endswith("runlock-policy.yaml")
    assert results(strict) == {"code-committed": False, "inputs-pinned": True}


def test_a_split_whose_leakage_check_failed_fails_the_rule(store: Store, repo: Path, tmp_path: Path) -> None:
    dup = "\n".join(f"{i},ticket {i % 20} says the very same text" for i in range(40))  # each text twice
    (tmp_path / "dup.csv").write_text("id,text\n" + dup + "\n")
    snap = create_snapshot(store, tmp_path / "dup.csv", "dup", id_column="id")
    with runlock.start_run(project="p", store=store, seed=1, argv=["train.py"]) as run:
        run.use(create_split(store, snap, name="dup", seed=1))
    rule = next(r for r in check(store, run.id).results if r.rule == "split-leakage")
    assert not rule.passed and rule.evidence == {"passed": {"split:dup@v1": False}}


def test_policy_files_choose_rules_and_options(store: Store, repo: Path, tmp_path: Path) -> None:
    run = good_run(store, tmp_path, split=False)
    add_verification(store, run, "rerun", "tolerance", {})
    (repo / "runlock-policy.toml").write_text('[check]\nrules = ["verified", "split-leakage"]\n'
                                              '[check.verified]\nmin_tier = "bitwise"\n'
                                              '[check.split-leakage]\nrequire_split = true\n')
    (repo / "sub").mkdir()
    policy = load_policy(start=repo / "sub")  # found upward, up to the repository root
    assert policy.rules == {"verified": {"min_tier": "bitwise"}, "split-leakage": {"require_split": True}}
    assert results(check(store, run, policy)) == {"verified": False, "split-leakage": False}
    (repo / "runlock-policy.toml").write_text('[check]\nrules = ["verfied"]\n')
    with pytest.raises(InvalidInput, match="unknown rules"):
        load_policy()
    (repo / "runlock-policy.toml").write_text('[check.verified]\nmin_tire = "bitwise"\n')
    with pytest.raises(InvalidInput, match="unknown options"):
        load_policy()


def test_a_model_is_checked_through_the_run_that_made_it(store: Store, repo: Path, tmp_path: Path) -> None:
    run = good_run(store, tmp_path)
    with store.db.write() as conn:
        refs.assign(conn, "model", "bot", "sha256:" + "1" * 64, actor="t", meta={"run": run})
    assert check(store, "model:bot@v1").run_id == run


def test_check_exits_non_zero_on_failure_for_ci(store: Store, repo: Path, tmp_path: Path) -> None:
    run = good_run(store, tmp_path)
    cli = CliRunner()
    failing = cli.invoke(app, ["--store", str(store.root), "check", run])
    assert failing.exit_code == 1 and "FAIL" in failing.stdout and "verified" in failing.stdout
    add_verification(store, run, "rerun", "bitwise", {})
    passing = cli.invoke(app, ["--store", str(store.root), "check", run, "--json"])
    assert passing.exit_code == 0 and json.loads(passing.stdout)["ok"] is True
    (repo / "bad.toml").write_text("[check\n")
    broken = cli.invoke(app, ["--store", str(store.root), "check", run, "--policy", str(repo / "bad.toml")])
    assert broken.exit_code == 2 and "Cannot read the policy" in broken.output and "Traceback" not in broken.output


def test_code_committed_says_why_no_commit_was_recorded(store: Store, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fresh, outside = tmp_path / "fresh", tmp_path / "outside"
    fresh.mkdir()
    outside.mkdir()
    git(fresh, "init", "-q")                     # a repository with no commit yet
    details = {}
    for where in (fresh, outside):
        monkeypatch.chdir(where)
        with runlock.start_run(project="p", store=store) as run:
            pass
        (rule,) = [r for r in check(store, run.id).results if r.rule == "code-committed"]
        details[where.name] = (rule.passed, rule.detail)
    assert details["fresh"] == (False, "no commit recorded (the git repository had no commit yet)")
    assert details["outside"] == (False, "no commit recorded (not inside a git repository)")
