"""The model registry on SQLite and PostgreSQL: immutable versions, recorded alias moves, the
promotion gate, history as of a date, verified downloads, and every refusal with its reason."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

import runlock
from runlock import registry
from runlock.audit import audit_log
from runlock.errors import Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied
from runlock.store import Store
from runlock.tracking.run import start_run


def audit_actions(store: Store, target_prefix: str) -> list[tuple[str, str]]:
    with store.db.read() as conn:
        rows = conn.execute(sa.select(audit_log.c.action, audit_log.c.target)
                            .where(audit_log.c.target.like(f"{target_prefix}%")).order_by(audit_log.c.seq))
        return [(r.action, r.target) for r in rows]

def test_versions_are_numbered_by_content_and_never_duplicated(any_store: Store, make_run) -> None:
    a = make_run(any_store, "a", b"one")
    b = make_run(any_store, "b", b"two")
    same = make_run(any_store, "c", b"one")        # same bytes as run a
    v1 = runlock.register_model(a, artifact="adapter", name="support-bot")
    assert v1.ref == "model:support-bot@v1" and str(v1) == v1.ref
    assert registry.register(any_store, b.id, "adapter", "support-bot").ref == "model:support-bot@v2"
    again = registry.register(any_store, same.id, "adapter", "support-bot")
    assert again.ref == "model:support-bot@v1" and again.run_id == a.id
    assert [m.ref for m in registry.list_models(any_store, "support-bot")] == ["model:support-bot@v1",
                                                                                "model:support-bot@v2"]
    assert registry.resolve(any_store, "model:support-bot").version == 2          # latest
    assert audit_actions(any_store, "model:support-bot@v") == [("model.register", "model:support-bot@v1"),
                                                               ("model.register", "model:support-bot@v2")]

def test_a_run_that_did_not_finish_cannot_be_registered(any_store: Store, make_run, tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ValueError):
        with start_run(project="p", name="bad", store=any_store) as failed:
            failed.log_artifact(tmp_path / "w.bin", "adapter")
            raise ValueError("loss is nan")
    with pytest.raises(Conflict, match=r"failed \(ValueError: loss is nan\)"):
        registry.register(any_store, failed.id, "adapter", "support-bot")
    with start_run(project="p", name="live", store=any_store) as live:
        live.log_artifact(tmp_path / "w.bin", "adapter")
        with pytest.raises(Conflict, match="still running"):
            runlock.register_model(live, artifact="adapter", name="support-bot")
    assert registry.list_models(any_store) == []
    ok = make_run(any_store)
    for name in ("support bot", "-x", "a/b", "", "é"):
        with pytest.raises(InvalidInput):
            registry.register(any_store, ok.id, "adapter", name)
    with pytest.raises(NotFound):
        registry.register(any_store, ok.id, "no-such-artifact", "support-bot")

def test_alias_moves_are_recorded_with_who_when_and_why(any_store: Store, make_run) -> None:
    v1 = registry.register(any_store, make_run(any_store, "a", b"1").id, "adapter", "bot")
    v2 = registry.register(any_store, make_run(any_store, "b", b"2").id, "adapter", "bot")
    first = registry.set_alias(any_store, v1.ref, "live", reason="passed eval")
    registry.set_alias(any_store, v2.ref, "staging", reason="candidate")
    second = registry.set_alias(any_store, "model:bot@staging", "live", reason="promote v2")
    assert registry.resolve(any_store, "model:bot@live").version == 2
    assert registry.resolve(any_store, "bot@live").aliases == ("live", "staging")
    with pytest.raises(Conflict):
        registry.set_alias(any_store, v2.ref, "live", reason="again")
    removed = registry.remove_alias(any_store, "bot", "staging", reason="done")
    moves = registry.history(any_store, "bot")
    assert [(m.alias, m.from_version, m.to_version, m.reason) for m in moves] == [
        ("live", None, 1, "passed eval"), ("staging", None, 2, "candidate"),
        ("live", 1, 2, "promote v2"), ("staging", 2, None, "done")]
    assert all(m.actor == any_store.actor and m.at for m in moves)
    assert moves[2].target == v2.digest and removed.to_version is None
    assert [m.reason for m in registry.history(any_store, "bot", "live")] == ["passed eval", "promote v2"]
    assert audit_actions(any_store, "model:bot@live") == [("model.alias", "model:bot@live")] * 2
    # what was in live just before / after the promotion
    assert registry.aliases_at(any_store, "bot", first.at).aliases == {"live": "model:bot@v1"}
    assert registry.aliases_at(any_store, "bot", second.at).aliases == {"live": "model:bot@v2",
                                                                         "staging": "model:bot@v2"}
    assert registry.aliases_at(any_store, "bot", "2000-01-01").aliases == {}
    today = second.at[:10]
    assert registry.aliases_at(any_store, "bot", today, "live").aliases == {"live": "model:bot@v2"}
    with pytest.raises(InvalidInput):
        registry.aliases_at(any_store, "bot", "last tuesday")

def test_unknown_and_malformed_aliases_are_refused(any_store: Store, make_run) -> None:
    v1 = registry.register(any_store, make_run(any_store).id, "adapter", "bot")
    with pytest.raises(NotFound, match="live"):
        registry.resolve(any_store, "model:bot@live")
    for bad in ("v2", "latest", "pro duction", "1st", ""):
        with pytest.raises(InvalidInput):
            registry.set_alias(any_store, v1.ref, bad, reason="x")
    with pytest.raises(InvalidInput):
        registry.set_alias(any_store, v1.ref, "live", reason="  ")
    with pytest.raises(NotFound):
        registry.remove_alias(any_store, "bot", "live", reason="never set")
    with pytest.raises(NotFound):
        registry.set_alias(any_store, "model:bot@v7", "live", reason="no such version")

def test_a_gate_can_refuse_a_move_and_then_nothing_is_written(any_store: Store, make_run) -> None:
    v1 = registry.register(any_store, make_run(any_store).id, "adapter", "bot")
    seen = []

    def gate(conn, move: registry.AliasMove) -> None:  # noqa: ANN001
        seen.append(move)
        if move.alias == "live":
            raise PermissionDenied(move.actor, "promote", f"model:{move.name}@{move.alias}", "approver")

    before = audit_actions(any_store, "model:bot@")
    with pytest.raises(PermissionDenied):
        registry.set_alias(any_store, v1.ref, "live", reason="ship it", gate=gate)
    assert registry.history(any_store, "bot") == [] and audit_actions(any_store, "model:bot@") == before
    registry.set_alias(any_store, v1.ref, "staging", reason="try", gate=gate)
    assert [(m.alias, m.to_version, m.target) for m in seen] == [("live", 1, v1.digest), ("staging", 1, v1.digest)]

def test_get_writes_the_exact_bytes_checks_them_and_records_the_read(any_store: Store, make_run,
                                                                     tmp_path: Path) -> None:
    run = make_run(any_store, payload=b"exact weights")
    v1 = registry.register(any_store, run.id, "adapter", "bot")
    registry.set_alias(any_store, v1.ref, "live", reason="go")
    seen: list[tuple[int, int]] = []
    got = registry.get(any_store, "model:bot@live", tmp_path / "dl", on_progress=lambda *p: seen.append(p))
    assert got.ref == v1.ref and got.files == 3
    assert len(seen) == 3 and seen[-1] == (got.size, got.size)
    assert (tmp_path / "dl" / "adapter_model.safetensors").read_bytes() == b"exact weights"
    assert (tmp_path / "dl" / "sub" / "tokenizer.json").read_text() == "{}"
    assert ("model.read", v1.ref) in audit_actions(any_store, v1.ref)
    with pytest.raises(Conflict, match="exists"):
        registry.get(any_store, v1.ref, tmp_path / "dl")
    (tmp_path / "dl" / "stale.txt").write_text("left over")
    (tmp_path / "dl" / "adapter_model.safetensors").write_bytes(b"edited")
    registry.get(any_store, v1.ref, tmp_path / "dl", force=True)     # replaces the files it names, only
    assert (tmp_path / "dl" / "adapter_model.safetensors").read_bytes() == b"exact weights"
    assert (tmp_path / "dl" / "stale.txt").read_text() == "left over"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dl.")]     # no scratch left
    assert not [p for p in (tmp_path / "dl").iterdir() if p.name.startswith(".runlock-")]
    # a corrupted object is reported, never written
    oid = hashlib.sha256(b"exact weights").hexdigest()
    obj = any_store.objects.root / oid[:2] / oid[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"evil weights!")
    with pytest.raises(IntegrityError):
        registry.get(any_store, v1.ref, tmp_path / "dl2")
    assert not (tmp_path / "dl2").exists()


def test_production_needs_the_governance_gate_and_a_refusal_writes_nothing(any_store: Store, make_run) -> None:
    """@production is special: governance refuses the move (inside the same transaction) until the
    version has passed the attestation gate; the registry then records nothing."""
    v1 = registry.register(any_store, make_run(any_store).id, "adapter", "bot")
    with pytest.raises(Conflict, match="production gate"):
        registry.set_alias(any_store, v1.ref, "production", reason="ship it")
    assert registry.history(any_store, "bot") == [] and registry.resolve(any_store, v1.ref).aliases == ()
    assert audit_actions(any_store, "model:bot@production") == []
