"""A store on a read-only filesystem (a real read-only bind mount) can be read, never written."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock.cli.main import app
from runlock.errors import StoreError
from runlock.workspace import open_store


@pytest.fixture
def read_only_copy(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    src, mnt = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    mnt.mkdir()
    store = runlock.init(src)
    with runlock.start_run(project="p", config={"lr": 0.1}, store=store) as run:
        run.log({"loss": 0.5}, step=0)
    store.close()
    subprocess.run(["mount", "--bind", str(src), str(mnt)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mnt)], check=True)
        yield mnt, run.id
    finally:
        subprocess.run(["umount", "--lazy", str(mnt)], check=True)  # lazy: never leave it mounted


def test_read_only_store_reads_and_refuses_writes_clearly(read_only_copy: tuple[Path, str]) -> None:
    mnt, run_id = read_only_copy
    shown = CliRunner().invoke(app, ["--store", str(mnt), "runs", "show", run_id, "--json"], catch_exceptions=False)
    assert shown.exit_code == 0 and json.loads(shown.output)["lock"]["config"] == {"lr": 0.1}
    store = open_store(mnt)
    try:
        with pytest.raises(StoreError, match="read-only"):
            runlock.start_run(project="p", store=store)
    finally:
        store.close()
    listed = CliRunner().invoke(app, ["--store", str(mnt), "runs", "list", "--json"], catch_exceptions=False)
    assert [r["id"] for r in json.loads(listed.output)] == [run_id]
