"""Dep digests: a folder's id is the id it gets as an artifact; unchanged files are not re-read."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from runlock import artifacts
from runlock.environment import distributions
from runlock.pipeline.digests import Hasher
from runlock.pipeline.inputs import changes, packages
from runlock.store import Store


def test_folder_digest_is_the_artifact_id_and_the_stat_cache_skips_unchanged_files(tmp_path: Path,
                                                                                    store: Store) -> None:
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    for i in range(5):
        (d / "sub" / f"{i}.txt").write_text(str(i))
    time.sleep(0.3)                                   # past the racy window: the stat cache may keep them
    first = Hasher(store)
    digest = first.digest(d)
    assert digest == artifacts.store_path(store, d)[0]
    assert first.hashed_files == 5
    again = Hasher(store)
    assert again.digest(d) == digest and again.hashed_files == 0
    (d / "sub" / "3.txt").write_text("three")
    changed = Hasher(store)
    assert changed.digest(d) != digest and changed.hashed_files == 1
    assert Hasher(store).digest(tmp_path / "nothing") is None


def test_an_unchanged_folder_is_not_listed_again_and_every_change_is_seen(tmp_path: Path, store: Store) -> None:
    """The folder cache: a second look stats what it recorded and lists nothing; any change to the
    tree (a file added, in an empty subfolder too, removed, renamed, edited in place with its size
    and mtime put back, the root moved to another folder) gives the id a fresh listing gives."""
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "empty").mkdir()
    for i in range(5):
        (d / "sub" / f"{i}.txt").write_text(str(i))
    (d / "top.txt").write_text("top")
    time.sleep(0.3)                                   # past the racy window

    def fresh(path: Path) -> str:                    # what a listing and hashing of every file gives
        return artifacts.store_path(store, path)[0]

    first = Hasher(store)
    digest = first.digest(d)
    assert digest == fresh(d) and first.listed_folders == 1
    again = Hasher(store)
    assert again.digest(d) == digest and again.listed_folders == 0 and again.hashed_files == 0

    def edit(change) -> None:  # noqa: ANN001
        nonlocal digest
        change()
        time.sleep(0.3)
        h = Hasher(store)
        now = h.digest(d)
        assert now == fresh(d) and now != digest and h.listed_folders == 1
        digest = now
        assert Hasher(store).digest(d) == digest         # and recorded again

    edit(lambda: (d / "empty" / "new.txt").write_text("new"))
    edit(lambda: (d / "sub" / "2.txt").unlink())
    edit(lambda: (d / "sub" / "1.txt").rename(d / "sub" / "one.txt"))

    def same_size_same_mtime() -> None:
        st = (d / "top.txt").stat()
        (d / "top.txt").write_text("TOP")
        os.utime(d / "top.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    edit(same_size_same_mtime)

    other = tmp_path / "other"
    shutil.copytree(d, other)
    (other / "extra.txt").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(d, target_is_directory=True)
    assert Hasher(store).digest(link) == digest
    link.unlink()
    link.symlink_to(other, target_is_directory=True)
    time.sleep(0.3)
    assert Hasher(store).digest(link) == fresh(other) != digest


def test_a_folder_changed_within_the_racy_window_is_not_recorded(tmp_path: Path, store: Store) -> None:
    d = tmp_path / "data"
    d.mkdir()
    (d / "a.txt").write_text("a")
    h = Hasher(store)
    h.digest(d)
    again = Hasher(store)
    again.digest(d)
    assert again.listed_folders == 1                  # written just now: listed again, never trusted


def test_packages_agree_with_the_lock_environment() -> None:
    assert packages() == distributions()


def test_packages_read_egg_info_and_agree_on_which_of_two_installs_wins(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A src-layout `pip install -e .` leaves NAME.egg-info (no version in its name) on sys.path."""
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "Demo_Pkg.egg-info").mkdir(parents=True)
    (first / "Demo_Pkg.egg-info" / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: Demo_Pkg\nVersion: 0.3\n\nbody\n")
    (first / "other-1.0-py3.11.egg-info").write_text("Metadata-Version: 1.0\nName: other\nVersion: 1.0\n")
    (second / "demo_pkg-0.4.dist-info").mkdir(parents=True)
    (second / "demo_pkg-0.4.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-pkg\nVersion: 0.4\n")
    monkeypatch.setattr(sys, "path", [str(first), str(second), *sys.path])
    found = packages()
    assert found["demo-pkg"] == "0.4" and found["other"] == "1.0"
    assert found == distributions()
    (first / "broken.egg-info").mkdir()                      # no PKG-INFO: the slow path, still right
    assert packages() == distributions()


def test_changes_name_each_field_from_what_to_what() -> None:
    old = {"cmd": "a", "seed": 1, "params": {"p:x": 1}, "deps": {"f": {"digest": "sha256:1"}}, "outs": ["o"],
           "environment": {"python": "3.11.7", "packages": {"numpy": "1.26.4"}}}
    new = {"cmd": "a", "seed": 2, "params": {"p:x": 1, "p:y": 0}, "deps": {"f": {"digest": "sha256:2"}},
           "outs": ["o"], "environment": {"python": "3.11.7", "packages": {"numpy": "2.0.1"}}}
    assert changes(old, new) == [
        {"what": "seed", "name": "seed", "from": 1, "to": 2},
        {"what": "param", "name": "p:y", "from": None, "to": 0},
        {"what": "dep", "name": "f", "from": "sha256:1", "to": "sha256:2"},
        {"what": "environment", "name": "package numpy", "from": "1.26.4", "to": "2.0.1"},
    ]
