"""Dep digests: a folder's id is the id it gets as an artifact; unchanged files are not re-read."""

from __future__ import annotations

import time
from pathlib import Path

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


def test_packages_agree_with_the_lock_environment() -> None:
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
