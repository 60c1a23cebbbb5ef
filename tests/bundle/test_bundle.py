"""Bundles end to end: deterministic export, offline verification that names the part a flipped
byte broke, and import into a fresh store in another folder, where rerun is bitwise equal."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from runlock import audit, bundle, keys
from runlock.cli.main import app
from runlock.data.snapshot import snapshots
from runlock.errors import IntegrityError
from runlock.store import Store
from runlock.store.schema import refs, runs
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.run import start_run
from runlock.verify import compare, rerun
from runlock.workspace import init
from tests.bundle.conftest import Tiny, tiny_project
from tests.net import free_port


def cli(store: Store | None, *args: str) -> object:
    pre = ["--store", str(store.root)] if store is not None else []
    return CliRunner().invoke(app, [*pre, *args])


@pytest.fixture(scope="module")
def exported(tiny: Tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "tiny.rlb"
    result = cli(tiny.store, "bundle", "export", "model:tiny@v1", "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    return out


def member_offsets(path: Path) -> dict[str, tuple[int, int]]:
    with tarfile.open(path) as tar:
        return {m.name: (m.offset_data, m.size) for m in tar}


def flipped(src: Path, dest: Path, member: str, at: int = 0) -> Path:
    start, size = member_offsets(src)[member]
    raw = bytearray(src.read_bytes())
    raw[start + min(at, size - 1)] ^= 0x01
    dest.write_bytes(bytes(raw))
    return dest


def test_exporting_twice_gives_identical_bytes(tiny: Tiny, exported: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.rlb"
    result = cli(tiny.store, "bundle", "export", "model:tiny@v1", "-o", str(again))
    assert result.exit_code == 0, result.output
    assert again.read_bytes() == exported.read_bytes()
    with tarfile.open(again) as tar:
        members = tar.getmembers()
    assert [m.name for m in members[:2]] == ["manifest.json", "manifest.sig"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_the_bundle_holds_the_whole_upstream(tiny: Tiny, exported: Path) -> None:
    with tarfile.open(exported) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    rec = records.get(tiny.store, tiny.run_id)
    lock = locks.load(tiny.store, rec.recipe_id)
    commit = lock["code"]["git"]["commit"]
    assert manifest["contents"]["runs"] == [tiny.run_id]
    assert f"records/runs/{tiny.run_id}.json" in names
    assert f"objects/{rec.recipe_id[7:]}" in names                       # the lock
    assert f"code/{commit}.bundle" in names                             # the code
    split_id = lock["inputs"][0]["id"]
    snap_id = json.loads(tiny.store.objects.get_bytes(split_id))["snapshot"]
    assert manifest["contents"]["splits"] == [split_id] and manifest["contents"]["snapshots"] == [snap_id]
    data_file = json.loads(tiny.store.objects.get_bytes(snap_id))["entries"][0]["sha256"]
    assert f"objects/{data_file[7:]}" in names                          # the data itself
    assert manifest["contents"]["models"] == ["tiny@v1"]
    assert manifest["excluded"] == []
    with tiny.store.db.read() as conn:
        about = {r.seq for r in audit.iter_rows(conn) if r.target in (f"run:{tiny.run_id}", "model:tiny@v1",
                                                                     "ds:rows@v1", "split:rows@v1")}
    assert set(manifest["contents"]["audit_entries"]) == about


def test_verify_passes_offline_with_the_public_key(tiny: Tiny, exported: Path) -> None:
    result = cli(None, "bundle", "verify", str(exported), "--key", str(tiny.pub), "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["ok"] and found["root"] == "model:tiny@v1"
    assert found["checked"]["sealed_records"] == 4 and found["checked"]["runs"] == 1


def _data_object(tiny: Tiny) -> str:
    rec = records.get(tiny.store, tiny.run_id)
    split_id = locks.load(tiny.store, rec.recipe_id)["inputs"][0]["id"]
    snap_id = json.loads(tiny.store.objects.get_bytes(split_id))["snapshot"]
    return "objects/" + json.loads(tiny.store.objects.get_bytes(snap_id))["entries"][0]["sha256"][7:]


@pytest.mark.parametrize("which", ["data", "lock", "run record", "audit entry", "code", "manifest", "signature",
                                   "public key", "pylock", "sbom"])
def test_one_flipped_byte_fails_verify_naming_the_part(tiny: Tiny, exported: Path, tmp_path: Path,
                                                       which: str) -> None:
    rec = records.get(tiny.store, tiny.run_id)
    offsets = member_offsets(exported)
    member = {"data": _data_object(tiny), "lock": f"objects/{rec.recipe_id[7:]}",
              "run record": f"records/runs/{tiny.run_id}.json",
              "audit entry": next(n for n in offsets if n.startswith("audit/entries/")),
              "code": next(n for n in offsets if n.startswith("code/")),
              "manifest": "manifest.json", "signature": "manifest.sig", "public key": "store.pub",
              "pylock": f"env/{tiny.run_id}/pylock.toml", "sbom": f"env/{tiny.run_id}/sbom.cdx.json"}[which]
    bad = flipped(exported, tmp_path / "bad.rlb", member, at=offsets[member][1] // 2)
    result = cli(None, "bundle", "verify", str(bad), "--key", str(tiny.pub), "--json")
    assert result.exit_code == 1, result.output
    found = json.loads(result.stdout)
    assert not found["ok"]
    # a flipped signature byte that is still base64 fails the signature check on the manifest; one
    # that is not (A, a, Z, z, +, / flip to @ ` [ { * .) fails as unreadable, naming the signature
    assert found["part"] in (("manifest.json", "manifest.sig") if which == "signature" else (member,)), found


def test_a_flipped_byte_anywhere_in_the_file_fails_verify(tiny: Tiny, exported: Path, tmp_path: Path) -> None:
    """Headers, padding and the end-of-archive blocks too, not only members' contents."""
    raw = exported.read_bytes()
    key = keys.load_public(tiny.pub)
    bad = tmp_path / "bad.rlb"
    for at in [*range(0, len(raw), max(1, len(raw) // 97)), 100, 124, 148, 512 + 5, len(raw) - 1]:
        changed = bytearray(raw)
        changed[at] ^= 0x20
        bad.write_bytes(bytes(changed))
        found = bundle.verify(bad, key)
        assert not found.ok and found.part, (at, found)


def test_verify_with_another_key_fails_on_the_manifest(tiny: Tiny, exported: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    s = init(other)
    keys.export_public(s, tmp_path / "other.pub")
    s.close()
    result = cli(None, "bundle", "verify", str(exported), "--key", str(tmp_path / "other.pub"), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["part"] == "manifest.json"


def test_no_data_leaves_the_data_out_and_still_verifies(tiny: Tiny, exported: Path, tmp_path: Path) -> None:
    out = tmp_path / "nodata.rlb"
    assert cli(tiny.store, "bundle", "export", tiny.run_id[:10], "-o", str(out), "--no-data").exit_code == 0
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    data = _data_object(tiny)
    assert data not in names and "sha256:" + data[8:] in manifest["contents"]["omitted_objects"]
    assert manifest["data"] is False and manifest["root"] == f"run:{tiny.run_id}"
    assert out.stat().st_size < exported.stat().st_size
    assert bundle.verify(out, keys.load_public(tiny.pub)).ok


def test_import_into_a_fresh_store_elsewhere_then_rerun_is_bitwise(tiny: Tiny, exported: Path,
                                                                     tmp_path: Path) -> None:
    copy = tmp_path / "carried.rlb"
    shutil.copy(exported, copy)
    hidden = tiny.repo.with_name("repo-gone")
    tiny.repo.rename(hidden)                 # the fresh store has no access to the first one's code
    try:
        (tmp_path / "elsewhere").mkdir()
        fresh = init(tmp_path / "elsewhere")
        assert cli(None, "bundle", "verify", str(copy), "--key", str(tiny.pub)).exit_code == 0
        result = cli(fresh, "bundle", "import", str(copy), "--key", str(tiny.pub), "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["new_records"] > 0
        original = records.get(fresh, tiny.run_id)          # the same id, the same recipe
        assert original.recipe_id == records.get(tiny.store, tiny.run_id).recipe_id
        imports = audit.log(fresh, action="bundle.import")
        assert len(imports) == 1 and imports[0].details["root"] == "model:tiny@v1"
        assert audit.verify(fresh, deep=True).ok
        here = Path.cwd()
        os.chdir(tmp_path / "elsewhere")                    # not a git repository
        try:
            new = rerun(fresh, tiny.run_id)
        finally:
            os.chdir(here)
        assert new.status == "finished"
        assert records.get(fresh, new.run_id).recipe_id == original.recipe_id
        assert compare(fresh, new.run_id, tiny.run_id).tier == "bitwise"
        again = cli(fresh, "bundle", "import", str(copy), "--key", str(tiny.pub), "--json")
        assert again.exit_code == 0 and json.loads(again.stdout)["new_records"] == 0
        assert len(audit.log(fresh, action="bundle.import")) == 1
        fresh.close()
    finally:
        hidden.rename(tiny.repo)


def test_a_tampered_bundle_imports_nothing(tiny: Tiny, exported: Path, tmp_path: Path) -> None:
    bad = flipped(exported, tmp_path / "bad.rlb", _data_object(tiny))
    (tmp_path / "s").mkdir()
    fresh = init(tmp_path / "s")
    with pytest.raises(IntegrityError, match="objects/"):
        bundle.load(fresh, bad)
    with fresh.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(refs)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar() == 0
    fresh.close()


def test_bad_input_is_one_line_not_a_traceback(tiny: Tiny, exported: Path, tmp_path: Path) -> None:
    missing = cli(None, "bundle", "verify", str(tmp_path / "nope.rlb"), "--key", str(tiny.pub))
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    exists = cli(tiny.store, "bundle", "export", "model:tiny@v1", "-o", str(exported))
    assert exists.exit_code == 2 and "already exists" in exists.output
    junk = tmp_path / "junk.rlb"
    junk.write_bytes(b"not a tar at all")
    result = cli(None, "bundle", "verify", str(junk), "--key", str(tiny.pub), "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["part"] == "file"


def test_a_running_run_is_not_exported(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    store = init(tmp_path / "s")
    run = start_run("p", "live", store=store)
    try:
        result = cli(store, "bundle", "export", run.id, "-o", str(tmp_path / "b.rlb"))
        assert result.exit_code != 0 and "still running" in result.stderr, result.output
        assert not (tmp_path / "b.rlb").exists()
    finally:
        run.finish()
        store.close()


def test_each_run_has_its_environment_lock_and_sbom(tiny: Tiny, exported: Path) -> None:
    import tomllib

    from runlock.verify import pylock

    with tarfile.open(exported) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        lock = tomllib.loads(tar.extractfile(f"env/{tiny.run_id}/pylock.toml").read().decode())
        sbom = json.load(tar.extractfile(f"env/{tiny.run_id}/sbom.cdx.json"))
    rec = records.get(tiny.store, tiny.run_id)
    recorded = locks.load(tiny.store, rec.recipe_id)["environment"]["packages"]
    assert lock["lock-version"] == "1.0"
    assert {p["name"] for p in lock["packages"]} == set(recorded)
    assert {c["name"]: c["version"] for c in sbom["components"]} == recorded
    assert sbom["serialNumber"] == f"urn:uuid:{pylock.serial(rec.id, rec.recipe_id)}"
    assert sbom["metadata"]["timestamp"].startswith(rec.ended_at[:19])           # the run's end, not the clock
    assert manifest["environment"] == {"pylock": True, "sbom": True, "wheel_hashes": False, "unhashed": {}}
    for member in (f"env/{tiny.run_id}/pylock.toml", f"env/{tiny.run_id}/sbom.cdx.json"):
        assert manifest["members"][member]["size"] > 0


def test_without_cyclonedx_the_export_says_so_and_names_the_sbom_excluded(
        tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in [m for m in sys.modules if m == "cyclonedx" or m.startswith(("cyclonedx.", "packageurl"))]:
        monkeypatch.setitem(sys.modules, name, None)          # as if the optional extra were not installed
    monkeypatch.setitem(sys.modules, "cyclonedx", None)
    out = tmp_path / "nosbom.rlb"
    result = cli(tiny.store, "bundle", "export", "model:tiny@v1", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "SBOMs left out: cyclonedx-python-lib is not installed" in " ".join(result.stderr.split())
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    assert f"env/{tiny.run_id}/pylock.toml" in names and f"env/{tiny.run_id}/sbom.cdx.json" not in names
    assert {"run": tiny.run_id, "input": "environment:sbom",
            "reason": "cyclonedx-python-lib is not installed where the bundle was exported "
                      "(pip install 'runlock[sbom]')"} in manifest["excluded"]
    assert manifest["environment"]["sbom"] is False
    assert bundle.verify(out, keys.load_public(tiny.pub)).ok


def test_hashes_from_an_unreachable_index_are_named_missing_in_the_manifest(tiny: Tiny, tmp_path: Path) -> None:
    out = tmp_path / "offline.rlb"
    nowhere = f"http://127.0.0.1:{free_port()}/simple"
    result = cli(tiny.store, "bundle", "export", "model:tiny@v1", "-o", str(out), "--hashes", "--index-url", nowhere)
    assert result.exit_code == 0, result.output
    assert "No wheel hash for" in " ".join(result.stderr.split())
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        lock = tar.extractfile(f"env/{tiny.run_id}/pylock.toml").read().decode()
    missing = manifest["environment"]["unhashed"][tiny.run_id]
    assert manifest["environment"]["wheel_hashes"] is True and "sqlalchemy" in missing
    assert "unreachable" in missing["sqlalchemy"] and "[[packages.wheels]]" not in lock
    assert bundle.verify(out, keys.load_public(tiny.pub)).ok
    bad = cli(tiny.store, "bundle", "export", "model:tiny@v1", "-o", str(tmp_path / "x.rlb"), "--index-url", nowhere)
    assert bad.exit_code == 2 and "--index-url goes with --hashes" in " ".join(bad.output.split())


def test_streamed_members_give_the_same_bytes_verify_and_import(tiny: Tiny, exported: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With the in-memory threshold at 64 bytes every object and git bundle takes the streaming
    path (hashed first, copied in chunks; verified and imported from its place in the file)."""
    import importlib

    from runlock.bundle import check

    export = importlib.import_module("runlock.bundle.export")   # the module, not the function bundle.export
    monkeypatch.setattr(export, "SMALL", 64)
    monkeypatch.setattr(check, "SMALL", 64)
    out = tmp_path / "streamed.rlb"
    bundle.export(tiny.store, "model:tiny@v1", out)
    assert out.read_bytes() == exported.read_bytes()
    members = check.read_members(out)
    streamed = [n for n, m in members.items() if not isinstance(m, bytes)]
    assert any(n.startswith("code/") for n in streamed) and _data_object(tiny) in streamed
    assert bundle.verify(out, keys.load_public(tiny.pub)).ok
    bad = flipped(out, tmp_path / "bad.rlb", _data_object(tiny), at=3)
    found = bundle.verify(bad, keys.load_public(tiny.pub))
    assert not found.ok and found.part == _data_object(tiny)
    (tmp_path / "s").mkdir()
    fresh = init(tmp_path / "s")
    result = bundle.load(fresh, out, key=keys.load_public(tiny.pub))
    assert result.new_records > 0 and len(result.commits) == 1
    oid = "sha256:" + _data_object(tiny)[8:]
    assert fresh.objects.get_bytes(oid) == tiny.store.objects.get_bytes(oid)
    fresh.close()
