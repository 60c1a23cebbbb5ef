"""runlock gc: scratch files of dead processes and objects nothing references; fsck counts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from runlock import artifacts, audit, fsck, gc, identity
from runlock.cli.main import app
from runlock.data.checkout import checkout
from runlock.data.snapshot import create_snapshot
from runlock.errors import InvalidInput, PermissionDenied
from runlock.store import Store, scratch
from tests.lineage.world import build

ROOT = Path(__file__).resolve().parents[2]
OLD = 2 * 86400                         # older than the default grace period


def _age(store: Store, oid: str, seconds: float) -> None:
    path = store.objects.path_of(oid)
    t = time.time() - seconds
    os.utime(path, (t, t))


def _audit_rows(store: Store) -> list[dict]:
    with store.db.read() as conn:
        rows = conn.execute(sa.select(audit.audit_log.c.details).where(audit.audit_log.c.action == "store.gc"))
        return [dict(r.details) for r in rows]


def test_nothing_a_record_names_is_ever_collected(any_store: Store, tmp_path: Path) -> None:
    """Snapshots, records indexes, a derived snapshot, a split and its report, locks, code diffs,
    folder artifacts and their files, a model, verifications: a full world loses nothing."""
    store = any_store
    w = build(store, tmp_path)
    before = set(store.objects.iter_ids())
    report = gc.collect(store, grace=0, delete=True)
    assert report.unreferenced == [] and report.deleted
    assert set(store.objects.iter_ids()) == before
    assert fsck.fsck(store).ok
    checkout(store, w.clean.ref, tmp_path / "co")
    artifacts.get_artifact(store, f"{w.lora.id}/adapter", tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes() == b"weights-v1"


def test_an_unreferenced_object_is_kept_while_young_then_collected_and_audited(store: Store) -> None:
    orphan = store.objects.put_bytes(b"left by a killed run")
    young = gc.collect(store)                                       # default grace: 1 day
    assert young.unreferenced == [] and young.kept_young == 1
    assert fsck.fsck(store).unreferenced == 0
    _age(store, orphan, OLD)
    dry = gc.collect(store)
    assert [x.id for x in dry.unreferenced] == [orphan] and not dry.deleted
    assert store.objects.has(orphan)                                # a dry run deletes nothing
    report = fsck.fsck(store)
    assert report.ok and report.unreferenced == 1 and report.leftover_bytes == len(b"left by a killed run")
    done = gc.collect(store, delete=True)
    assert [x.id for x in done.unreferenced] == [orphan] and not store.objects.has(orphan)
    [entry] = _audit_rows(store)
    assert entry["objects"] == 1 and entry["removed"] == [orphan]


def test_an_old_object_stored_again_is_young_again(store: Store, tmp_path: Path) -> None:
    """A writer that finds its bytes already stored (put, or a snapshot's stat cache hit) restarts
    the object's age, so gc's grace period protects an object being reused."""
    old = store.objects.put_bytes(b"reused")
    _age(store, old, OLD)
    assert [x.id for x in gc.collect(store).unreferenced] == [old]
    store.objects.put_bytes(b"reused")
    assert gc.collect(store).unreferenced == []
    (tmp_path / "t").mkdir()
    f = tmp_path / "t" / "f.bin"
    f.write_bytes(b"cached file")
    time.sleep(0.3)                     # not "racy" (ctime well before the read): the stat cache keeps it
    oid = create_snapshot(store, tmp_path / "t", "t").entries[0]["sha256"]
    for touch in (False, True):         # a stat cache hit; then a re-read of bytes already stored
        if touch:
            os.utime(f, (time.time() - 120, time.time() - 120))
        _age(store, oid, 7200)
        create_snapshot(store, tmp_path / "t", "t")
        assert _mtime_age(store, oid) < 60


def _mtime_age(store: Store, oid: str) -> float:
    return time.time() - store.objects.path_of(oid).stat().st_mtime


def test_an_id_in_any_table_keeps_its_object_even_one_added_later(any_store: Store) -> None:
    store = any_store
    oid = store.objects.put_bytes(b"named by a plugin's table")
    _age(store, oid, 7200)
    with store.db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE plugin_notes (doc TEXT)")
        conn.exec_driver_sql(f"INSERT INTO plugin_notes (doc) VALUES ('{{\"see\": \"{oid}\"}}')")
    assert gc.collect(store, grace=0).unreferenced == []
    # and one named only inside a stored document reached from the database
    inner = store.objects.put_bytes(b"named inside a document")
    doc = store.objects.put_bytes(b'{"inner": "' + inner.encode() + b'"}')
    with store.db.write() as conn:
        conn.exec_driver_sql(f"INSERT INTO plugin_notes (doc) VALUES ('{doc}')")
    assert gc.collect(store, grace=0).unreferenced == []


def test_scratch_of_a_dead_process_goes_and_of_a_live_one_stays(store: Store) -> None:
    folder = store.objects.scratch_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = folder / f"snap-{scratch.host()}~{dead.pid}~abc.tmp"
    gone.write_bytes(b"x" * 10)
    live = folder / f"{scratch.prefix('put')}def.tmp"
    live.write_bytes(b"y")
    other_host = folder / "snap-elsewhere~1~ghi.tmp"
    other_host.write_bytes(b"z")
    dry = gc.collect(store)
    assert [x.id for x in dry.scratch] == [str(gone)]
    assert fsck.fsck(store).scratch_files == 1
    gc.collect(store, delete=True)
    assert not gone.exists() and live.exists() and other_host.exists()
    old = time.time() - 7200
    os.utime(other_host, (old, old))                         # another host's writer may still be at work
    gc.collect(store, delete=True)
    assert other_host.exists()
    old = time.time() - 2 * 86400
    os.utime(other_host, (old, old))                         # ... not after a day without a change
    gc.collect(store, delete=True)
    assert not other_host.exists() and live.exists()


_SLOW_SNAPSHOT = textwrap.dedent("""
    import sys, time
    from runlock.store import Store
    from runlock.data.snapshot import create_snapshot

    def hold(p):
        if p.files_done == p.files_total:
            print("ready", flush=True)
            time.sleep(600)

    create_snapshot(Store.open(sys.argv[1]), sys.argv[2], "big", on_progress=hold, use_cache=False)
""")


def test_a_snapshot_killed_mid_way_leaves_nothing_after_gc(store: Store, tmp_path: Path) -> None:
    tree = tmp_path / "big"
    tree.mkdir()
    for i in range(64):
        (tree / f"f{i:03}.bin").write_bytes(os.urandom(4096) + bytes([i]))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SNAPSHOT, str(store.root), str(tree)],
                            stdout=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert proc.stdout.readline().strip() == b"ready"    # every file hashed, nothing committed yet
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = [p for p in store.objects.scratch_dir().iterdir() if p.name.startswith("snap-")]
    assert len(left) == 64
    assert fsck.fsck(store).scratch_files == 64
    checked = CliRunner().invoke(app, ["--store", str(store.root), "fsck"])
    assert checked.exit_code == 0 and "leftovers: 64 scratch file(s)" in checked.output
    result = CliRunner().invoke(app, ["--store", str(store.root), "gc", "--yes"])
    assert result.exit_code == 0, result.output
    assert "removed 64 scratch file(s)" in result.output
    assert [p for p in store.objects.scratch_dir().iterdir()] == []
    assert fsck.fsck(store).scratch_files == 0


def test_only_an_admin_may_delete_and_a_dry_run_is_the_default(store: Store, tmp_path: Path) -> None:
    orphan = store.objects.put_bytes(b"orphan")
    _age(store, orphan, OLD)
    identity.create_identity(store, "ed")
    identity.grant_role(store, "ed", "editor")
    owner, store.actor = store.actor, "ed"
    assert [x.id for x in gc.collect(store).unreferenced] == [orphan]      # anyone may look
    with pytest.raises(PermissionDenied):
        gc.collect(store, delete=True)
    assert store.objects.has(orphan) and _audit_rows(store) == []
    store.actor = owner
    runner = CliRunner()
    dry = runner.invoke(app, ["--store", str(store.root), "gc"])
    assert dry.exit_code == 0 and "would remove 0 scratch file(s) and 1 unreferenced object(s)" in dry.output
    assert store.objects.has(orphan)
    bad = runner.invoke(app, ["--store", str(store.root), "gc", "--grace", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output and "Traceback" not in bad.output
    with pytest.raises(InvalidInput):
        gc.collect(store, grace=float("nan"))
    assert gc.parse_grace("30m") == 1800 and gc.parse_grace("2d") == 172800 and gc.parse_grace("0") == 0


def test_gc_on_an_s3_store(tmp_path: Path, s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from runlock.workspace import init

    monkeypatch.setenv("RUNLOCK_S3_ENDPOINT_URL", s3_endpoint)
    store = init(tmp_path, objects=s3_bucket)
    try:
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "a.txt").write_text("kept")
        snap = create_snapshot(store, tmp_path / "d", "d")
        orphan = store.objects.put_bytes(b"orphan in the bucket")
        assert gc.collect(store).kept_young == 1                      # young: its age comes from the bucket
        done = gc.collect(store, grace=0, delete=True)
        assert [x.id for x in done.unreferenced] == [orphan] and not store.objects.has(orphan)
        assert store.objects.has(snap.id) and store.objects.has(snap.entries[0]["sha256"])
    finally:
        store.close()


def test_a_deleted_runs_objects_are_released_and_a_live_runs_kept(store: Store, tmp_path: Path) -> None:
    from runlock.tracking import annotations
    from tests.lineage.world import train

    gone = train(store, tmp_path, "gone", [], b"weights only the deleted run made", config={"lr": 1})
    kept = train(store, tmp_path, "kept", [], b"weights of the live run", config={"lr": 2})
    gone_art = artifacts.for_run(store, gone.id)[0]
    gone_objects = {gone.recipe_id, gone_art.digest, *(e["digest"] for e in artifacts.folder_entries(store, gone_art))}
    shared = {e["digest"] for e in artifacts.folder_entries(store, artifacts.for_run(store, kept.id)[0])}
    annotations.delete(store, gone.id, reason="bad data")
    for oid in store.objects.iter_ids():
        _age(store, oid, OLD)
    report = gc.collect(store, delete=True)
    removed = {x.id for x in report.unreferenced}
    assert removed == gone_objects - shared and removed
    assert store.objects.has(kept.recipe_id) and all(store.objects.has(d) for d in shared)
    assert fsck.fsck(store).ok                              # the deleted run's lost objects are not "missing"
    artifacts.get_artifact(store, f"{kept.id}/adapter", tmp_path / "kept")
