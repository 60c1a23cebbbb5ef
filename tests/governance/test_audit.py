"""The audit log resists tampering: every direct change to the database is found and the entry
named, on SQLite and on PostgreSQL; proofs check offline; nothing in runlock edits an entry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from runlock import audit, canonical, identity, keys, merkle
from runlock.store import Store


def fill(store: Store, n: int) -> None:
    """``n`` real audited writes (role changes of one identity)."""
    identity.create_identity(store, "alice")
    for i in range(n - 1):
        identity.grant_role(store, "alice", ("viewer", "editor")[i % 2], project=f"p{i % 3}")


def sql(store: Store, *statements: str) -> None:
    with store.db.write() as conn:
        for s in statements:
            conn.exec_driver_sql(s)


def test_an_untouched_log_verifies_with_signed_checkpoints(any_store: Store) -> None:
    fill(any_store, 300)
    assert audit.sign_pending(any_store) == 1        # what the next open_store does
    report = audit.verify(any_store)
    assert report.ok, report.problems
    assert report.entries == 300
    assert report.checkpoints_checked == 1 and report.signed_checkpoints == 1
    leaves = [merkle.leaf_hash(canonical.dumps(audit.entry_body(e.to_dict()))) for e in audit.log(any_store, limit=None)]
    assert report.root_hash == "sha256:" + merkle.root(leaves).hex()


def test_one_changed_field_is_named(any_store: Store) -> None:
    fill(any_store, 12)
    sql(any_store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 7")
    report = audit.verify(any_store)
    assert not report.ok and report.first_bad == 7
    assert report.problems[0].kind == "altered"


def test_an_edit_that_breaks_the_chain_is_not_called_a_recomputed_chain(any_store: Store) -> None:
    fill(any_store, 20)
    audit.checkpoint(any_store)
    sql(any_store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 7")
    report = audit.verify(any_store)
    assert [p.kind for p in report.problems if p.seq == 7] == ["altered"]
    assert not any("chain recomputed" in p.message for p in report.problems), report.problems


def test_a_changed_field_with_a_recomputed_own_hash_is_named(any_store: Store) -> None:
    fill(any_store, 12)
    row = audit.get(any_store, 5).to_dict()
    row["details"] = {**row["details"], "role": "admin"}
    forged = audit.entry_hash(row)
    with any_store.db.write() as conn:
        conn.execute(audit.audit_log.update().where(audit.audit_log.c.seq == 5)
                     .values(details=row["details"], entry_hash=forged))
    report = audit.verify(any_store)
    assert report.first_bad == 5 and report.problems[0].kind == "altered"


def test_a_deleted_row_is_named(any_store: Store) -> None:
    fill(any_store, 12)
    sql(any_store, "DELETE FROM audit_log WHERE seq = 4")
    report = audit.verify(any_store)
    assert report.first_bad == 4 and report.problems[0].kind == "removed"


def test_two_swapped_rows_are_named(any_store: Store) -> None:
    fill(any_store, 12)
    sql(any_store, "UPDATE audit_log SET seq = -1 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = -1")
    report = audit.verify(any_store)
    assert report.first_bad == 3
    assert report.problems[0].kind == "reordered" and "holds entry 4" in report.problems[0].message


def test_a_truncated_tail_is_found_against_a_checkpoint(any_store: Store) -> None:
    fill(any_store, 20)
    cp = audit.checkpoint(any_store)
    assert cp.tree_size == 20 and cp.signature
    sql(any_store, "DELETE FROM audit_log WHERE seq > 16")
    report = audit.verify(any_store)
    assert report.first_bad == 17 and report.problems[0].kind == "truncated"


def test_truncation_with_the_checkpoint_row_deleted_is_found_through_the_mirror(any_store: Store) -> None:
    fill(any_store, 20)
    audit.checkpoint(any_store)
    sql(any_store, "DELETE FROM audit_log WHERE seq > 16", "DELETE FROM audit_checkpoints")
    report = audit.verify(any_store)
    assert report.first_bad == 17 and report.problems[0].kind == "truncated"


def test_history_rewritten_with_a_recomputed_chain_fails_the_signed_checkpoint(any_store: Store) -> None:
    fill(any_store, 20)
    audit.checkpoint(any_store)
    rows = [e.to_dict() for e in audit.log(any_store, limit=None)]
    rows[2]["actor"] = "mallory"
    prev = audit.GENESIS
    with any_store.db.write() as conn:
        for r in rows:      # the attacker recomputes every hash after the change
            r["prev_hash"] = prev
            r["entry_hash"] = prev = audit.entry_hash(r)
            conn.execute(audit.audit_log.update().where(audit.audit_log.c.seq == r["seq"])
                         .values(actor=r["actor"], prev_hash=r["prev_hash"], entry_hash=r["entry_hash"]))
    report = audit.verify(any_store)
    assert not report.ok and report.problems[0].kind == "rewritten"
    assert report.first_bad == 1 and "between 1 and 20" in report.problems[0].message


def test_a_forged_checkpoint_signature_is_refused(any_store: Store) -> None:
    fill(any_store, 10)
    audit.checkpoint(any_store)
    sql(any_store, "UPDATE audit_checkpoints SET root_hash = 'sha256:" + "ab" * 32 + "'")
    report = audit.verify(any_store)
    assert not report.ok and any(p.kind == "checkpoint" for p in report.problems)


def test_verify_against_another_stores_key_fails(make_store) -> None:  # noqa: ANN001
    a, b = make_store("a"), make_store("b")
    fill(a, 5)
    audit.checkpoint(a)
    report = audit.verify(a, key=keys.public_key(b))
    assert not report.ok and "another key" in report.problems[0].message


def test_checkpoints_are_recorded_every_n_entries_in_the_write_transaction(store: Store) -> None:
    fill(store, audit.CHECKPOINT_EVERY * 2 + 3)
    sizes = [c.tree_size for c in audit.checkpoints(store)]
    assert sizes == [audit.CHECKPOINT_EVERY, audit.CHECKPOINT_EVERY * 2]
    assert audit.sign_pending(store) == 2       # signed by the next process that holds the key
    assert all(c.signature_ok(keys.public_key(store)) for c in audit.checkpoints(store))
    assert len(audit.mirrored_checkpoints(store)) == 2


def test_an_inclusion_proof_checks_offline_and_fails_when_changed(store: Store, tmp_path: Path) -> None:
    fill(store, 40)
    proof = json.loads(json.dumps(audit.proof(store, 17).to_dict()))
    pub = keys.public_key(store)
    assert audit.check_proof(proof, pub).ok
    bad = json.loads(json.dumps(proof))
    bad["entry"]["actor"] = "mallory"
    assert not audit.check_proof(bad, pub).ok
    bad = json.loads(json.dumps(proof))
    bad["path"][0] = "00" * 32
    assert "the audit path does not lead to the checkpoint's root" in audit.check_proof(bad, pub).reasons
    bad = json.loads(json.dumps(proof))
    bad["checkpoint"]["tree_size"] += 1
    assert not audit.check_proof(bad, pub).ok


def test_body_bytes_are_the_canonical_bytes_of_the_entry(any_store: Store) -> None:
    fill(any_store, 3)
    with any_store.db.read() as conn:
        for row in audit.iter_rows(conn):
            assert audit.body_bytes(row) == canonical.dumps(audit.entry_body(dict(row._mapping)))


def test_entry_hash_golden_and_stable_in_a_fresh_process() -> None:
    row = {"seq": 1, "time": "2026-01-01T00:00:00.000000Z", "actor": "ana", "action": "run.create",
           "target": "run:X", "before": None, "after": None, "details": {"project": "p", "ü": 1.5},
           "prev_hash": audit.GENESIS}
    golden = "sha256:8aad9c0e27d65b6c1d1db106973e403a4225662c4dd8d184cc622d81fec1ba57"
    code = ("from runlock import audit; import json,sys; "
            "print(audit.entry_hash(json.loads(sys.argv[1])))")
    fresh = subprocess.run([sys.executable, "-c", code, json.dumps(row)], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert fresh == audit.entry_hash(row)
    assert fresh == golden


def test_nothing_in_runlock_updates_or_deletes_an_entry() -> None:
    src = Path(audit.__file__).parent
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py") if "migrations" not in p.parts
                 for text in [p.read_text()]
                 if "audit_log.update(" in text or "audit_log.delete(" in text
                 or "UPDATE audit_log" in text or "DELETE FROM audit_log" in text]
    assert offenders == []


def test_log_filters_by_target_actor_and_action(store: Store) -> None:
    fill(store, 5)
    identity.create_identity(store, "bob")
    assert [e.action for e in audit.log(store, target="user:bob")] == ["user.create"]
    assert {e.action for e in audit.log(store, action="role.*")} == {"role.grant"}
    assert audit.log(store, actor="nobody") == []
    assert len(audit.log(store, limit=2)) == 2
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit.audit_log)).scalar() == 6
