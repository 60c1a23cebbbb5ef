"""A snapshot makes its objects durable by syncing the store's own filesystem, never by flushing
every filesystem on the machine (``os.sync``), and falls back to an fsync per file where the
Linux calls are missing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from runlock.data import create_snapshot
from runlock.store import Store, durable


def tree(root: Path, n: int = 20) -> Path:
    for i in range(n):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 3}" / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    return root


def test_a_snapshot_never_flushes_the_whole_machine(store: Store, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def whole_machine() -> None:
        raise AssertionError("os.sync() flushes every filesystem on the host")

    monkeypatch.setattr(os, "sync", whole_machine)
    snap = create_snapshot(store, tree(tmp_path / "data"), "files")
    assert len(snap.entries) == 20
    for e in snap.entries:
        assert store.objects.has(e["sha256"])
        assert store.objects.get_bytes(e["sha256"]) == (tmp_path / "data" / e["path"]).read_bytes()
    assert not any((store.objects.scratch_dir()).glob("*.tmp"))   # every scratch copy became an object


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs and sync_file_range are Linux calls")
def test_linux_uses_syncfs_and_early_writeback() -> None:
    libc = durable._libc()
    assert libc is not None and hasattr(libc, "syncfs") and hasattr(libc, "sync_file_range")


def test_without_the_linux_calls_each_file_is_fsynced(store: Store, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fsynced: list[int] = []
    synced: list[bool] = []
    real_fsync = os.fsync
    monkeypatch.setattr(durable, "_libc", lambda: None)
    monkeypatch.setattr(os, "fsync", lambda fd: (fsynced.append(fd), real_fsync(fd))[1])
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))
    snap = create_snapshot(store, tree(tmp_path / "data", 7), "files")
    assert len(snap.entries) == 7 and len(fsynced) >= 7 and synced
    assert all(store.objects.has(e["sha256"]) for e in snap.entries)


def test_barrier_on_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        durable.barrier(tmp_path / "gone")
