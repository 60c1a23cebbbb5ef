"""The tests need nothing outside the repository: the published schemas they validate against are
test data inside it. Proved by running the OpenLineage tests from a copy of the repository's files
(what a fresh clone holds) in a temporary folder with nothing beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def repo_files() -> list[str]:
    """The files a clone would hold: tracked ones, plus new ones not ignored (work not yet committed)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0") if f and (REPO / f).is_file()]


def test_openlineage_tests_pass_from_a_copy_of_the_repository_alone(tmp_path: Path) -> None:
    copy = tmp_path / "alone" / "runlock"      # nothing beside it: no ../shared, no ../../shared
    for rel in repo_files():
        dest = copy / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    assert (copy / "tests" / "lineage" / "schemas" / "openlineage" / "OpenLineage.json").is_file()
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("RUNLOCK_STORE", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/lineage/test_export.py",
         "-k", "openlineage or changed_event"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout, result.stdout[-2000:]
