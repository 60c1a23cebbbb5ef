"""Opening a store never writes: a command that only reads leaves the database's bytes as they were
and a crashed run still ``running``; the next command that writes (``runlock run``, ``runlock
fsck``, ``runlock.start_run``) reaps it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import runlock
from runlock.store import Store
from runlock.tracking import records
from runlock.workspace import open_store

RUNLOCK = Path(sys.executable).parent / "runlock"


def _crashed_run(store: Store) -> str:
    """A run whose process was SIGKILLed: recorded ``running``, its process gone."""
    code = f"import runlock\nstore = runlock.open_store({str(store.root)!r})\n" + textwrap.dedent("""
        import time
        run = runlock.start_run(project="p", store=store)
        run.log({"loss": 1.0}, step=0)
        run.flush()
        print(run.id, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return run_id


@contextmanager
def _opened(root: Path) -> Iterator[Store]:
    s = open_store(root)
    try:
        yield s
    finally:
        s.close()


def _status(store: Store, run_id: str) -> str:
    with _opened(store.root) as s:
        return records.get(s, run_id).status


def _db_state(store: Store) -> tuple[bytes, int]:
    db = store.root / "runlock.db"
    return db.read_bytes(), db.stat().st_mtime_ns


def _cli(store: Store, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUNLOCK), "--store", str(store.root), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def crashed(store: Store) -> str:
    run_id = _crashed_run(store)
    store.close()
    with _opened(store.root):   # settles SQLite's write-ahead log, so the bytes below are final
        pass
    return run_id


def test_reading_through_the_normal_path_writes_nothing(store: Store, crashed: str, tmp_path: Path) -> None:
    before = _db_state(store)
    with _opened(store.root) as s:                         # the normal path of every surface
        assert crashed in {r.id for r in records.list_runs(s)}
    frame = runlock.runs("p", store=store.root)            # the public API, reading
    assert list(frame["id"]) == [crashed]
    listed = _cli(store, tmp_path, "runs", "list")          # a reading command
    assert listed.returncode == 0, listed.stderr
    assert _db_state(store) == before
    assert _status(store, crashed) == "running"


@pytest.mark.parametrize("writer", [
    ["fsck"],
    ["run", "-p", "next", "--", sys.executable, "-c", "pass"],
])
def test_the_next_command_that_writes_reaps_the_crashed_run(store: Store, crashed: str, tmp_path: Path,
                                                             writer: list[str]) -> None:
    done = _cli(store, tmp_path, *writer)
    assert done.returncode == 0, done.stderr
    assert _status(store, crashed) == "crashed"


def test_start_run_reaps_the_crashed_run(store: Store, crashed: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with runlock.start_run(project="p", store=store.root):   # opened here, to write
        pass
    assert _status(store, crashed) == "crashed"
