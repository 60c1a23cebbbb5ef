"""A bundle carries the whole history of each alias that pointed at a model version inside (who,
when, why), verify checks every move against its audit entry, and import brings the history
(with its original actors and times), keeps the ids, and records the import."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runlock import attest, audit, bundle, keys, registry, sealed
from runlock.cli.main import app
from runlock.errors import Conflict
from runlock.workspace import init
from tests.bundle.conftest import Tiny, tiny_project
from tests.bundle.test_bundle import flipped, member_offsets

KEY = ("name", "alias", "from_version", "to_version", "at", "actor", "reason")


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    """tiny@v1 promoted to staging, through the production gate (an override) to production, and
    a short-lived 'candidate' alias set and removed."""
    base = tmp_path_factory.mktemp("moved")
    project = tiny_project(base)
    s = project.store
    registry.set_alias(s, "model:tiny@v1", "staging", reason="first look")
    registry.set_alias(s, "model:tiny@v1", "candidate", reason="try it")
    registry.remove_alias(s, "tiny", "candidate", reason="not needed")
    attest.attest(s, "model:tiny@v1", base / "att.jsonl")
    gate = attest.gate_production(s, "model:tiny@v1", base / "att.jsonl", override_reason="test store")
    assert gate.passed or gate.overridden, gate
    registry.set_alias(s, "model:tiny@v1", "production", reason="ship it")
    yield project
    s.close()


def history(store, name: str = "tiny") -> list[tuple]:  # noqa: ANN001
    return [tuple(getattr(m, k) for k in KEY) for m in registry.history(store, name)]


def export(project: Tiny, out: Path) -> Path:
    result = CliRunner().invoke(app, ["--store", str(project.store.root), "bundle", "export", "model:tiny@v1",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_bundle_holds_each_alias_history_and_verify_checks_every_move(moved: Tiny, tmp_path: Path) -> None:
    out = export(moved, tmp_path / "m.rlb")
    with tarfile.open(out) as tar:
        names = tar.getnames()
        candidate = json.load(tar.extractfile("records/aliases/tiny@candidate.json"))
    assert {"records/aliases/tiny@staging.json", "records/aliases/tiny@production.json"} <= set(names)
    assert [(m["from_version"], m["to_version"], m["reason"]) for m in candidate["moves"]] == \
        [(None, 1, "try it"), (1, None, "not needed")]
    found = bundle.verify(out, keys.load_public(moved.pub))
    assert found.ok, found
    assert found.checked["alias_moves"] == 4
    bad = flipped(out, tmp_path / "bad.rlb", "records/aliases/tiny@production.json",
                  at=member_offsets(out)["records/aliases/tiny@production.json"][1] // 2)
    failed = bundle.verify(bad, keys.load_public(moved.pub))
    assert not failed.ok and failed.part == "records/aliases/tiny@production.json"


def test_import_brings_the_history_keeps_ids_and_records_the_import(moved: Tiny, tmp_path: Path) -> None:
    out = export(moved, tmp_path / "m.rlb")
    (tmp_path / "fresh").mkdir()
    fresh = init(tmp_path / "fresh")
    result = bundle.load(fresh, out, key=keys.load_public(moved.pub))
    assert result.alias_moves == 4
    assert history(fresh) == history(moved.store)               # who, when, why, from, to: as in the source
    assert registry.resolve(fresh, "model:tiny@production").digest == registry.resolve(moved.store,
                                                                                         "model:tiny@v1").digest
    assert registry.resolve(fresh, "model:tiny@staging").ref == "model:tiny@v1"
    assert set(registry.list_models(fresh)[0].aliases) == {"production", "staging"}
    imports = audit.log(fresh, action="model.alias.import")
    assert [e.details["reason"] for e in imports] == ["first look", "try it", "not needed", "ship it"]
    source = {m.audit_seq: m for m in registry.history(moved.store, "tiny")}
    assert all(source[e.details["source_seq"]].actor == e.details["actor"] for e in imports)
    (entry,) = audit.log(fresh, action="bundle.import")
    assert entry.details["alias_moves"] == 4
    assert audit.verify(fresh, deep=True).ok
    with fresh.db.read() as conn:
        assert sealed.changed(conn) == []
    again = bundle.load(fresh, out, key=keys.load_public(moved.pub))
    assert again.alias_moves == 0 and again.new_records == 0 and len(audit.log(fresh, action="bundle.import")) == 1
    # re-exported from the store it was imported into, the history still verifies
    (tmp_path / "k").mkdir()
    keys.export_public(fresh, tmp_path / "k" / "fresh.pub")
    bundle.export(fresh, "model:tiny@v1", tmp_path / "again.rlb")
    assert bundle.verify(tmp_path / "again.rlb", keys.load_public(tmp_path / "k" / "fresh.pub")).ok
    fresh.close()


def test_an_alias_moved_differently_here_refuses_the_import(moved: Tiny, tmp_path: Path) -> None:
    out = export(moved, tmp_path / "m.rlb")
    (tmp_path / "other").mkdir()
    other = init(tmp_path / "other")
    bundle.load(other, out, key=keys.load_public(moved.pub))
    registry.remove_alias(other, "tiny", "staging", reason="moved here")     # history here goes on: fine
    assert bundle.load(other, out, key=keys.load_public(moved.pub)).alias_moves == 0
    registry.remove_alias(moved.store, "tiny", "staging", reason="moved there")   # and differently there
    try:
        newer = export(moved, tmp_path / "newer.rlb")
        before = len(audit.log(other, limit=None))
        with pytest.raises(Conflict, match="tiny@staging has a history here that differs"):
            bundle.load(other, newer, key=keys.load_public(moved.pub))
        assert len(audit.log(other, limit=None)) == before
    finally:
        registry.set_alias(moved.store, "model:tiny@v1", "staging", reason="back")
        other.close()
