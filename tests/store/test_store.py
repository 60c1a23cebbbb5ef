"""The store: init, locate, schema migrations on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import importlib
import pkgutil

import runlock
from runlock.errors import InvalidInput, StoreError, StoreNotFound
from runlock.store import METADATA, Store, init_store, locate, schema_revisions


def _import_every_module() -> None:
    """Each domain module registers its tables on METADATA when imported."""
    for info in pkgutil.walk_packages(runlock.__path__, "runlock."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)


def test_migrated_schema_matches_the_table_definitions(any_store: Store) -> None:
    _import_every_module()
    with any_store.db.read() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), METADATA)
    assert diff == []


def test_store_is_at_every_head_after_init(any_store: Store) -> None:
    current, heads = schema_revisions(any_store.db)
    assert current == heads and heads


def test_init_is_idempotent_and_keeps_identity(tmp_path: Path) -> None:
    a = init_store(tmp_path)
    first = a.info()
    b = init_store(tmp_path)
    assert b.info() == first
    assert (tmp_path / ".runlock" / ".gitignore").read_text().strip().endswith("*")


def test_locate_walks_up_like_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_store(tmp_path)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.delenv("RUNLOCK_STORE", raising=False)
    assert locate() == tmp_path / ".runlock"


def test_env_var_and_explicit_path_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_store(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNLOCK_STORE", str(tmp_path / "x"))
    assert locate() == tmp_path / "x" / ".runlock"
    assert locate(tmp_path / "x" / ".runlock") == tmp_path / "x" / ".runlock"


def test_missing_store_says_run_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNLOCK_STORE", raising=False)
    with pytest.raises(StoreNotFound, match="runlock init"):
        locate()


def test_init_refuses_a_file_and_a_bad_url(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInput):
        init_store(f)
    with pytest.raises(InvalidInput):
        init_store(tmp_path, database="mysql://x")


def test_opening_a_store_with_an_old_schema_asks_for_migrate(tmp_path: Path) -> None:
    s = init_store(tmp_path)
    with s.db.write() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version")
        conn.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES ('0001')")
    with pytest.raises(StoreError, match="runlock migrate"):
        Store.open(tmp_path)
