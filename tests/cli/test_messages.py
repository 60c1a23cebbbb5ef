"""Messages that used to mislead: each says what happened and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock.cli.main import app
from runlock.dsse import PROVENANCE, TEST_RESULT, AttestationCheck, gate_reasons
from runlock.store import Store

runner = CliRunner()


@pytest.fixture(autouse=True)
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_attesting_a_run_without_artifacts_says_so(store: Store, tmp_path: Path) -> None:
    with runlock.start_run(project="p", store=store) as run:
        run.log({"loss": 1.0}, step=0)
    out = runner.invoke(app, ["--store", str(store.root), "attest", "create", run.id, "-o", str(tmp_path / "a.jsonl")])
    assert out.exit_code == 2 and out.output.count("error:") == 1, out.output
    assert "has no artifacts" in out.output and "of run" not in out.output and "log_artifact" in out.output
    assert not (tmp_path / "a.jsonl").exists()


def test_a_gate_refused_on_warnings_names_them() -> None:
    subject = [{"name": "model:m@v1", "digest": {"sha256": "ab" * 32}}]
    check = AttestationCheck(ok=True, statements=[
        {"predicateType": PROVENANCE, "predicate": {}, "subject": subject},
        {"predicateType": TEST_RESULT, "subject": subject,
         "predicate": {"result": "WARNED", "passedTests": ["code-committed"], "warnedTests": ["verified"],
                       "failedTests": []}}])
    (reason,) = gate_reasons(check, "model:m@v1", "sha256:" + "ab" * 32)
    assert "see warnings" not in reason and "warned: verified" in reason and "WARNED" in reason
