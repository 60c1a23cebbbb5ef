"""Issue 12, sections 3-6: file modes and secrets, sealed records bound to the audit log, required
signed checkpoints and one key per store, the gate bound to the exact version, authorisation
before effect and identity from the effective uid. Each test fails on the code before the fix."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import runlock
from runlock import attest, audit, auditlog, fsck, identity, keys, registry
from runlock.cli.main import app
from runlock.errors import IntegrityError, InvalidInput, PermissionDenied, StoreError
from runlock.store import Store, init_store, local_user
from runlock.verify.checklist import Policy, RULES
from runlock.verify.rerun import plan_rerun
from runlock.workspace import init
from tests.pg import new_database

runner = CliRunner()


def sql(store: Store, *statements: str) -> None:
    with store.db.write() as conn:
        for s in statements:
            conn.exec_driver_sql(s)


# -- 3. modes and secrets -------------------------------------------------------------------
def test_nothing_in_the_store_is_world_readable_even_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        (tmp_path / "p").mkdir()
        store = init(tmp_path / "p")
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "a.txt").write_text("hello")
        with runlock.start_run(project="p", store=store) as run:
            run.log({"loss": 1.0}, step=0)
            run.log_artifact(tmp_path / "data" / "a.txt", name="a")
        runlock.snapshot(tmp_path / "data", name="d", store=store)
        audit.checkpoint(store)
        store.close()
    finally:
        os.umask(old)
    root = tmp_path / "p" / ".runlock"
    seen = 0
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        assert mode & 0o007 == 0, f"{path} is {oct(mode)}"
        seen += 1
    assert seen > 10
    assert stat.S_IMODE(os.stat(root / "keys" / "store.ed25519").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(root / "keys").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "runlock.db").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(root / "config.toml").st_mode) == 0o640
    obj = next(p for p in (root / "objects").rglob("*") if p.is_file() and p.parent.name != "tmp")
    assert stat.S_IMODE(os.stat(obj).st_mode) == 0o440


def test_init_shared_widens_to_the_group_and_says_so(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        result = runner.invoke(app, ["init", str(tmp_path), "--shared"])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert "Shared with group" in result.output and "0660" in result.output
    root = tmp_path / ".runlock"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o2770
    assert stat.S_IMODE(os.stat(root / "runlock.db").st_mode) == 0o660
    assert "shared = true" in (root / "config.toml").read_text()
    assert stat.S_IMODE(os.stat(root / "keys" / "store.ed25519").st_mode) == 0o600   # the key stays private


def test_a_database_url_with_a_password_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="password") as e:
        init_store(tmp_path, database="postgresql+psycopg://bob:hunter2@localhost/db")
    assert "PGPASSWORD" in e.value.hint and ".pgpass" in e.value.hint and "hunter2" not in str(e.value)
    assert not (tmp_path / ".runlock").exists()
    result = runner.invoke(app, ["init", str(tmp_path), "--database", "postgresql://bob:hunter2@h/db"])
    assert result.exit_code == 2 and "hunter2" not in result.output and "Traceback" not in result.output


def test_the_pg_fixture_works_without_a_password_in_config(any_store: Store) -> None:
    config = (any_store.root / "config.toml").read_text()
    url = any_store.settings.get("database")
    assert url is None or sa.engine.make_url(url).password is None
    assert "password" not in config.lower()


def test_the_local_identity_is_the_effective_uid_not_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                                      store: Store) -> None:
    import pwd
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    assert local_user() == pwd.getpwuid(os.geteuid()).pw_name != "mallory"
    s = runlock.open_store(store.root)
    assert s.actor != "mallory"
    s.close()


# -- 4. sealed records ------------------------------------------------------------------------
def _world_with_metrics(store: Store, make_world) -> tuple:  # noqa: ANN001
    w = make_world(store)
    with runlock.start_run(project="bot", name="m", store=store) as run:
        for i in range(5):
            run.log({"loss": 1.0 / (i + 1)}, step=i)
        run.log_artifact(w.model_dir, name="adapter", kind="model")
    return w, run.id


def test_an_edit_straight_in_the_database_is_named_by_deep_verify_and_refused(store: Store, make_world,
                                                                             tmp_path: Path) -> None:  # noqa: ANN001
    w, metric_run = _world_with_metrics(store, make_world)
    assert audit.verify(store, deep=True).ok
    sql(store, f"UPDATE runs SET summary = '{{\"f1\": 0.99}}' WHERE id = '{w.run_id}'",
        f"UPDATE metrics SET value = 42.0 WHERE run_id = '{metric_run}' AND step = 3",
        "UPDATE refs SET target = 'sha256:" + "ab" * 32 + "' WHERE namespace = 'model'")
    report = audit.verify(store, deep=True)
    text = " ".join(p.message for p in report.problems)
    assert not report.ok
    assert f"run:{w.run_id}" in text and f"run:{metric_run}" in text and w.model.ref in text
    assert not [p for p in audit.verify(store).problems if p.kind == "sealed"]   # only --deep recomputes records
    result = runner.invoke(app, ["--store", str(store.root), "audit", "verify", "--deep"])
    assert result.exit_code == 1 and w.model.ref in result.output
    assert len(fsck.fsck(store).changed_records) == 3 and not fsck.fsck(store).ok
    with pytest.raises(IntegrityError, match="changed since it was sealed"):
        registry.get(store, "model:bot@v1", tmp_path / "dl")
    assert not (tmp_path / "dl").exists()
    with pytest.raises(IntegrityError, match=f"run:{w.run_id}"):
        attest.attest(store, f"run:{w.run_id}", tmp_path / "a.jsonl")
    with pytest.raises(IntegrityError, match=f"run:{metric_run}"):
        plan_rerun(store, metric_run)


def test_a_moved_alias_row_is_named(store: Store, make_world) -> None:  # noqa: ANN001
    w = make_world(store)
    registry.set_alias(store, w.model.ref, "staging", reason="try")
    sql(store, "UPDATE model_alias_moves SET reason = 'other'", "UPDATE model_aliases SET version = 7")
    messages = [p.message for p in audit.verify(store, deep=True).problems]
    assert any("alias move of model:bot@staging" in m for m in messages)
    assert any("points at v7" in m for m in messages)


# -- checkpoints and the key -------------------------------------------------------------------
def fill(store: Store, n: int) -> None:
    identity.create_identity(store, "alice")
    for i in range(n - 1):
        identity.grant_role(store, "alice", ("viewer", "editor")[i % 2], project=f"p{i % 3}")


def test_a_rewritten_log_with_checkpoints_and_mirror_deleted_fails(store: Store) -> None:
    fill(store, 601)
    audit.sign_pending(store)
    assert audit.verify(store).ok
    rows = [e.to_dict() for e in audit.log(store, limit=None)]
    rows[2]["actor"] = "mallory"
    prev = audit.GENESIS
    with store.db.write() as conn:
        for r in rows:
            r["prev_hash"] = prev
            r["entry_hash"] = prev = audit.entry_hash(r)
            conn.execute(audit.audit_log.update().where(audit.audit_log.c.seq == r["seq"])
                         .values(actor=r["actor"], prev_hash=r["prev_hash"], entry_hash=r["entry_hash"]))
        conn.exec_driver_sql("DELETE FROM audit_checkpoints")
    audit.mirror_path(store).unlink()
    report = audit.verify(store)
    assert not report.ok and {p.seq for p in report.problems if p.kind == "checkpoint"} == {256, 512}


def test_unsigned_recomputed_checkpoints_are_not_signed_over_a_rewritten_log(store: Store) -> None:
    fill(store, 300)
    audit.sign_pending(store)
    sql(store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    with store.db.write() as conn:
        conn.exec_driver_sql("UPDATE audit_checkpoints SET signature = NULL, key_id = NULL")
    audit.mirror_path(store).unlink()
    assert audit.sign_pending(store) == 0
    assert not audit.verify(store).ok


def test_two_clients_of_one_postgresql_database_share_one_key(make_store, pg_base_url: str) -> None:  # noqa: ANN001
    url = new_database(pg_base_url)
    a = make_store("a", database=url)
    b = make_store("b", database=url)
    assert keys.recorded(a).keyid == keys.recorded(b).keyid == keys.load(a).keyid
    assert keys.load(b) is None                          # b did not mint a key of its own
    fill(a, 260)
    assert audit.sign_pending(b) == 0                    # b cannot sign: it holds no copy
    audit.checkpoint(a)
    report = audit.verify(b)
    assert report.ok, report.problems
    assert report.key_id == keys.load(a).keyid
    with pytest.raises(StoreError, match="kept by the client that created it"):
        keys.ensure(b)
    with pytest.raises(StoreError, match="kept by the client that created it"):
        audit.checkpoint(b)


def test_a_viewer_cannot_write_or_sign_checkpoints(store: Store, make_world) -> None:  # noqa: ANN001
    w = make_world(store)
    viewer = w.as_role("viewer")
    with pytest.raises(PermissionDenied):
        audit.checkpoint(viewer)
    fill(store, 300)
    assert audit.sign_pending(viewer) == 0
    assert audit.sign_pending(store) >= 1
    viewer.close()


# -- 5. the gate binds the exact version ---------------------------------------------------------
def test_v2_does_not_pass_with_v1s_bundle(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    v2 = registry.register(store, w.run_id, "eval", "bot")        # an evaluation report as bot@v2
    bundle = tmp_path / "v1.jsonl"
    attest.attest(store, w.model.ref, bundle)
    assert attest.gate_production(store, w.model.ref, bundle).passed
    refused = attest.gate_production(store, v2.ref, bundle)
    assert not refused.allowed and any("another model" in r for r in refused.reasons)


def test_audit_verify_rechecks_every_gate_pass(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    v2 = registry.register(store, w.run_id, "eval", "bot")
    bundle = tmp_path / "v1.jsonl"
    attest.attest(store, w.model.ref, bundle)
    passed = attest.gate_production(store, w.model.ref, bundle)
    assert audit.verify(store).ok
    forged = audit.get(store, passed.audit_seq).details
    store.db.run_write(lambda conn: audit.append(conn, store.actor, "gate.pass", v2.ref, after=v2.digest,
                                                 details=forged))
    problems = [p for p in audit.verify(store).problems if p.kind == "gate"]
    assert len(problems) == 1 and v2.ref in problems[0].message


def test_attest_verify_root_fails_on_a_missing_file_and_an_incomplete_bundle(store: Store, make_world,
                                                                             tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    bundle, pub = tmp_path / "a.jsonl", tmp_path / "store.pub"
    attest.attest(store, w.model.ref, bundle)
    keys.export_public(store, pub)
    (w.model_dir / "config.json").unlink()
    result = runner.invoke(app, ["attest", "verify", str(bundle), "--key", str(pub), "--root", str(w.repo / "out")])
    assert result.exit_code == 1 and "config.json" in result.output and "missing" in result.output
    first = bundle.read_text().splitlines()[0]
    (tmp_path / "half.jsonl").write_text(first + "\n")
    result = runner.invoke(app, ["attest", "verify", str(tmp_path / "half.jsonl"), "--key", str(pub)])
    assert result.exit_code == 1 and "incomplete" in result.output
    stmt = json.loads(base64.b64decode(json.loads(first)["payload"]))
    assert stmt["predicateType"] == attest.PROVENANCE


def test_the_gate_runs_runlock_check_and_an_admin_override_is_audited(store: Store, make_world,
                                                                       tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    bundle = tmp_path / "a.jsonl"
    attest.attest(store, w.model.ref, bundle)
    strict = Policy("strict", {"test-evaluation": dict(RULES["test-evaluation"][1])})
    refused = attest.gate_production(store, w.model.ref, bundle, policy=strict)
    assert not refused.allowed and any("test-evaluation" in r for r in refused.reasons)
    admin = w.as_role("admin")
    over = attest.gate_production(admin, w.model.ref, bundle, policy=strict, override_reason="incident 7")
    entry = audit.get(store, over.audit_seq)
    assert (entry.action, entry.details["reason"]) == ("gate.override", "incident 7")
    admin.close()


# -- 6. authorisation before effect --------------------------------------------------------------
def test_reading_needs_a_role_on_the_models_project_before_anything_is_written(store: Store, make_world,
                                                                              tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    for name, project in (("outsider", "other"), ("reader", "bot"), ("keeper", "bot")):
        identity.create_identity(store, name)
        identity.grant_role(store, name, "maintainer" if name == "keeper" else "viewer", project=project)
    before = len(audit.log(store, limit=None))
    store.actor = "outsider"
    with pytest.raises(PermissionDenied, match="project bot"):
        registry.get(store, w.model.ref, tmp_path / "dl")
    assert not (tmp_path / "dl").exists() and len(audit.log(store, limit=None)) == before
    with pytest.raises(PermissionDenied):
        runlock.artifacts.get_artifact(store, f"run:{w.run_id}/eval", tmp_path / "e.json")
    assert not (tmp_path / "e.json").exists()
    store.actor = "reader"
    registry.get(store, w.model.ref, tmp_path / "dl")
    assert audit.log(store, limit=1)[0].action == "model.read"
    store.actor = "keeper"
    assert registry.set_alias(store, w.model.ref, "staging", reason="try").to_version == 1
    with pytest.raises(PermissionDenied, match="admin"):
        registry.set_alias(store, w.model.ref, "production", reason="ship")


def test_the_gate_refuses_a_model_trained_on_a_leaking_split(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    from runlock.data import create_snapshot
    from runlock.data.split import create_split
    from tests.splits.conftest import rows

    w = make_world(store)
    data = rows(60)
    data += [{**r, "id": f"copy{i}"} for i, r in enumerate(data[:30])]       # 30 exact duplicates
    table = tmp_path / "tickets.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in data))
    snap = create_snapshot(store, table, name="tickets", id_column="id")
    split = create_split(store, snap, name="leaky", seed=1)
    assert split.leakage is not None and split.leakage.passed is False
    with runlock.start_run(project="bot", name="leaky", store=store) as run:
        run.use(split)
        run.log_artifact(w.model_dir, name="adapter", kind="model")
    mv = registry.register(store, run.id, "adapter", "leaky")
    bundle = tmp_path / "leaky.jsonl"
    attest.attest(store, mv.ref, bundle)
    refused = attest.gate_production(store, mv.ref, bundle, policy=Policy("lenient", {}))
    assert not refused.allowed and any("split-leakage" in r for r in refused.reasons)
    over = attest.gate_production(store, mv.ref, bundle, policy=Policy("lenient", {}), override_reason="known dup")
    assert over.overridden and audit.get(store, over.audit_seq).action == "gate.override"


def test_series_hashed_ahead_of_the_seal_are_rehashed_when_a_point_arrives_meanwhile(store: Store) -> None:
    from runlock import sealed

    with runlock.start_run(project="p", store=store) as run:
        for i in range(3):
            run.log({"loss": float(i)}, step=i)
    ahead = sealed.prepare_run(store, run.id)
    with store.db.read() as conn:
        assert sealed.run_state(conn, run.id, ahead) == sealed.state(conn, "run", f"run:{run.id}")
    sql(store, f"INSERT INTO metrics (run_id, key, step, rank, seq, value, raw, time) "
               f"VALUES ('{run.id}', 'loss', 9, 0, 99, 9.0, NULL, 0.0)")
    with store.db.read() as conn:
        assert sealed.run_state(conn, run.id, ahead) == sealed.state(conn, "run", f"run:{run.id}")
    assert any(f"run:{run.id}" in p.message for p in audit.verify(store, deep=True).problems)


def test_the_key_holder_remembers_what_it_signed(store: Store) -> None:
    """Someone who can write the database but not the key folder rewrites the log, deletes every
    checkpoint and the mirror, and records fresh unsigned checkpoints of the rewritten chain: the
    owner's next open does not sign them, and verify names the loss."""
    fill(store, 300)
    assert audit.sign_pending(store) == 1
    rows = [e.to_dict() for e in audit.log(store, limit=None)]
    rows[9]["actor"] = "mallory"
    prev = audit.GENESIS
    with store.db.write() as conn:
        for r in rows:
            r["prev_hash"] = prev
            r["entry_hash"] = prev = audit.entry_hash(r)
            conn.execute(audit.audit_log.update().where(audit.audit_log.c.seq == r["seq"])
                         .values(actor=r["actor"], prev_hash=r["prev_hash"], entry_hash=r["entry_hash"]))
        conn.exec_driver_sql("DELETE FROM audit_checkpoints")
        auditlog.record_checkpoint(conn, 256)
    audit.mirror_path(store).unlink()
    assert audit.sign_pending(store) == 0
    report = audit.verify(store)
    assert not report.ok and any("last checkpoint this store's key signed" in p.message for p in report.problems)


def test_attest_gate_takes_the_policy_runlock_check_takes(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    bundle, strict = tmp_path / "a.jsonl", tmp_path / "strict.toml"
    attest.attest(store, w.model.ref, bundle)
    strict.write_text('[check]\nrules = ["test-evaluation"]\n')
    base = ["--store", str(store.root), "attest", "gate", w.model.ref, "--attestation", str(bundle)]
    refused = runner.invoke(app, [*base, "--policy", str(strict)])
    assert refused.exit_code == 1 and "test-evaluation" in refused.output
    check = runner.invoke(app, ["--store", str(store.root), "check", w.model.ref, "--policy", str(strict)])
    assert check.exit_code == 1                                   # the same verdict as runlock check
    assert runner.invoke(app, base).exit_code == 0                # the repository's policy passes
