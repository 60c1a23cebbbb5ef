"""Attestations travel in the bundle as they were signed: `runlock attest`'s (of the run and of
the model) and the one the production gate kept. `bundle verify` checks each against the audit
entry that names it, the key and the objects inside; import stores them, and `runlock attest
verify` passes on them in the new store."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runlock import audit, dsse, keys
from runlock.bundle import check, layout
from runlock.bundle.export import build
from runlock.cli.main import app
from runlock.store import Store
from runlock.workspace import init
from tests.bundle.conftest import Tiny, tiny_project
from tests.bundle.test_bundle import flipped, member_offsets


def cli(store: Store | None, *args: str) -> object:
    pre = ["--store", str(store.root)] if store is not None else []
    return CliRunner().invoke(app, [*pre, *args])


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tiny, Path, Path]]:
    """The tiny model, its run attested, the model attested and through the production gate, exported."""
    base = tmp_path_factory.mktemp("attested")
    tiny = tiny_project(base)
    run_att, model_att = base / "run.intoto.jsonl", base / "model.intoto.jsonl"
    # the tiny run neither writes a seeding report nor was reverified: a policy without those rules
    (base / "runlock-policy.toml").write_text(
        '[check]\nrules = ["code-committed", "inputs-pinned", "split-leakage", "environment-complete"]\n')
    here = Path.cwd()
    os.chdir(base)
    try:
        for ref, out in ((tiny.run_id, run_att), ("model:tiny@v1", model_att)):
            made = cli(tiny.store, "attest", ref, "-o", str(out))
            assert made.exit_code == 0, made.output
        gate = cli(tiny.store, "attest", "gate", "model:tiny@v1", "--attestation", str(model_att), "--json")
    finally:
        os.chdir(here)
    assert gate.exit_code == 0, gate.output
    assert json.loads(gate.stdout)["passed"], gate.output
    bundle = base / "tiny.rlb"
    done = cli(tiny.store, "bundle", "export", "model:tiny@v1", "-o", str(bundle), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["attestations"] == 2
    yield tiny, bundle, model_att
    tiny.store.close()


def test_every_attestation_is_inside_as_signed_and_verifies(gated: tuple[Tiny, Path, Path]) -> None:
    tiny, bundle, model_att = gated
    members = check.read_members(bundle)
    manifest = json.loads(members[layout.MANIFEST])
    listed = manifest["contents"]["attestations"]
    assert [a["action"] for a in listed] == ["attestation.create", "attestation.create", "gate.pass"]
    model_id = layout.sha256(model_att.read_bytes())
    assert members[layout.attestation_member(model_id)] == model_att.read_bytes()
    assert {a["attestation"] for a in listed if a["target"] == "model:tiny@v1"} == {model_id}
    result = cli(None, "bundle", "verify", str(bundle), "--key", str(tiny.pub), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checked"]["attestations"] == 2


@pytest.mark.parametrize("which", ["run", "model"])
def test_a_flipped_byte_in_an_attestation_is_named(gated: tuple[Tiny, Path, Path], tmp_path: Path,
                                                   which: str) -> None:
    tiny, bundle, model_att = gated
    model_member = layout.attestation_member(layout.sha256(model_att.read_bytes()))
    names = [n for n in member_offsets(bundle) if n.startswith("attestations/")]
    member = model_member if which == "model" else next(n for n in names if n != model_member)
    bad = flipped(bundle, tmp_path / "bad.rlb", member, at=member_offsets(bundle)[member][1] // 3)
    result = cli(None, "bundle", "verify", str(bad), "--key", str(tiny.pub), "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["part"] == member


def _envelope_line(data: bytes, i: int) -> dict:
    return json.loads(data.splitlines()[i])


def test_the_attestation_check_itself_refuses_a_bad_signature_hash_or_subject(
        gated: tuple[Tiny, Path, Path], tmp_path: Path) -> None:
    """What a re-signed manifest could not hide: the checks behind the manifest's hashes."""
    tiny, bundle, model_att = gated
    key = keys.load_public(tiny.pub)
    members = check.read_members(bundle)
    known = check._digests_inside(members, json.loads(members[layout.MANIFEST]))
    good = model_att.read_bytes()
    check._attestation("a", good, layout.sha256(good), key, known)            # passes as exported
    with pytest.raises(check._Fail, match="do not hash to"):
        check._attestation("a", good, "sha256:" + "0" * 64, key, known)
    env = _envelope_line(good, 0)
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["subject"][0]["digest"] = {"sha256": "1" * 64}
    (tmp_path / "other").mkdir()
    elsewhere = init(tmp_path / "other")
    cases = ((json.dumps({**env, "payload": base64.b64encode(json.dumps(stmt).encode()).decode()}),
              "does not verify with key"),                                   # the statement edited
             (json.dumps(dsse.sign(stmt, keys.ensure(elsewhere))), "does not verify with key"),  # another key
             (json.dumps(dsse.sign(stmt, keys.ensure(tiny.store))), "is not an object or artifact inside"))
    for data, why in cases:
        raw = data.encode() + b"\n" + good.splitlines()[1] + b"\n"
        with pytest.raises(check._Fail, match=why):
            check._attestation("a", raw, layout.sha256(raw), key, known)
    elsewhere.close()


def test_import_stores_them_and_attest_verify_passes_in_the_new_store(gated: tuple[Tiny, Path, Path],
                                                                        tmp_path: Path) -> None:
    tiny, bundle, model_att = gated
    (tmp_path / "fresh").mkdir()
    fresh = init(tmp_path / "fresh")
    done = cli(fresh, "bundle", "import", str(bundle), "--key", str(tiny.pub), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["attestations"] == 2
    (entry,) = audit.log(fresh, action="bundle.import")
    listed = entry.details["attestations"]
    assert {a["action"] for a in listed} == {"attestation.create", "gate.pass"}
    for oid in {a["attestation"] for a in listed}:
        out = tmp_path / f"{oid[7:19]}.intoto.jsonl"
        out.write_bytes(fresh.objects.get_bytes(oid))
        verified = cli(None, "attest", "verify", str(out), "--key", str(tiny.pub), "--json")
        assert verified.exit_code == 0, verified.output
    assert fresh.objects.get_bytes(layout.sha256(model_att.read_bytes())) == model_att.read_bytes()
    assert audit.verify(fresh, deep=True).ok
    fresh.close()


def _resigned(store: Store, files: dict[str, layout.Member], manifest: dict, out: Path) -> Path:
    """A bundle of ``files`` whose manifest (hashes recomputed) is signed again with the store's key:
    what only the key holder could make, to reach the checks behind the manifest's hashes."""
    manifest = {**manifest, "members": {n: {"sha256": layout.sha256_of(b), "size": layout.size_of(b)}
                                        for n, b in sorted(files.items())}}
    body = layout.dumps(manifest)
    sig = base64.b64encode(keys.signer(store).sign(body)) + b"\n"
    with open(out, "wb") as f:
        layout.write(f, [(layout.MANIFEST, body), (layout.SIGNATURE, sig), *sorted(files.items())])
    return out


def test_an_attestation_the_store_never_kept_is_named_excluded(tmp_path: Path) -> None:
    tiny = tiny_project(tmp_path / "old")
    gone = layout.sha256(b"an attestation an older runlock wrote only to a file")
    seq = tiny.store.db.run_write(lambda conn: audit.append(
        conn, tiny.store.actor, "attestation.create", "model:tiny@v1", after=gone,
        details={"run": tiny.run_id, "result": "PASSED"}))
    with tempfile.TemporaryDirectory() as scratch:
        members, manifest = build(tiny.store, "model:tiny@v1", scratch=Path(scratch))
        assert {"run": tiny.run_id, "input": f"attestation:{gone}"} == \
            {k: v for k, v in manifest["excluded"][-1].items() if k != "reason"}
        files = dict(members[2:])
        good = _resigned(tiny.store, files, manifest, tmp_path / "good.rlb")
        assert check.verify(good, keys.load_public(tiny.pub)).ok
        # the same bundle, no longer saying the attestation is excluded: verify names the entry
        silent = {**manifest, "excluded": [x for x in manifest["excluded"] if x["input"] != f"attestation:{gone}"]}
        found = check.verify(_resigned(tiny.store, files, silent, tmp_path / "silent.rlb"), keys.load_public(tiny.pub))
        assert (found.ok, found.part) == (False, f"audit/entries/{seq:012d}.json"), found
        assert "neither in the bundle nor named as excluded" in found.reason
        # an attestation no audit entry names has no business inside
        stray = b'{"payload": "", "payloadType": "x", "signatures": []}\n'
        name = layout.attestation_member(layout.sha256(stray))
        found = check.verify(_resigned(tiny.store, {**files, name: stray}, manifest, tmp_path / "stray.rlb"),
                             keys.load_public(tiny.pub))
        assert (found.ok, found.part) == (False, name) and "no audit entry inside names" in found.reason
    tiny.store.close()
