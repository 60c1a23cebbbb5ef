"""Attestations: in-toto Statement v1 + SLSA Provenance v1 + test-result, in DSSE envelopes that
an independent implementation (securesystemslib) verifies; offline checks; the production gate."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from runlock import attest, audit, keys, registry
from runlock.errors import Conflict, PermissionDenied
from runlock.store import Store


def statements(path: Path) -> list[dict]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"])) for line in path.read_text().splitlines()]


def test_the_bundle_holds_provenance_and_checklist_for_the_model(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    out = tmp_path / "statement.dsse.json"
    made = attest.attest(store, w.model.ref, out)
    prov, result = statements(out)
    assert prov["_type"] == "https://in-toto.io/Statement/v1"
    assert prov["predicateType"] == "https://slsa.dev/provenance/v1"
    assert result["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1"
    subjects = {s["name"]: s["digest"]["sha256"] for s in prov["subject"]}
    assert subjects[w.model.ref] == w.model.digest.split(":")[1]
    assert "adapter/weights.bin" in subjects and "eval" in subjects          # files, and the eval report
    build = prov["predicate"]["buildDefinition"]
    assert build["externalParameters"]["config"] == {"lr": 0.1} and build["externalParameters"]["seed"] == 7
    deps = {d["name"]: d for d in build["resolvedDependencies"]}
    assert deps["code"]["digest"]["gitCommit"] and "ds:rows@v1" in deps
    assert {"environment", "lock"} <= set(deps)
    assert prov["predicate"]["runDetails"]["metadata"]["invocationId"] == f"run:{w.run_id}"
    assert result["predicate"]["result"] == "PASSED" == made.result
    assert "outputs intact" in result["predicate"]["passedTests"]
    entry = audit.get(store, made.audit_seq)
    assert (entry.action, entry.target) == ("attestation.create", w.model.ref)


def test_securesystemslib_verifies_our_envelopes(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    out = tmp_path / "a.intoto.jsonl"
    attest.attest(store, w.model.ref, out)
    pub = keys.public_key(store)
    key = SSlibKey.from_crypto(pub.key, keyid=pub.keyid)
    for line in out.read_text().splitlines():
        env = Envelope.from_dict(json.loads(line))
        assert set(env.verify([key], 1)) == {pub.keyid}
        env.payload = env.payload.replace(b'"subject"', b'"Subject"')
        with pytest.raises(Exception, match="threshold|Verification"):
            env.verify([key], 1)


def test_verify_needs_only_the_file_and_the_public_key(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    out, pub = tmp_path / "a.jsonl", tmp_path / "store.pub"
    attest.attest(store, w.model.ref, out)
    keys.export_public(store, pub)
    check = attest.verify_attestation(out, keys.load_public(pub), root=w.repo / "out")
    assert check.ok, check.problems
    assert {f["name"] for f in check.files} >= {"adapter/weights.bin", "adapter/config.json"}
    (w.model_dir / "weights.bin").write_bytes(b"poisoned")
    check = attest.verify_attestation(out, keys.load_public(pub), root=w.repo / "out")
    assert not check.ok and "adapter/weights.bin" in check.problems[0]


def test_a_changed_envelope_or_another_key_fails(store: Store, make_world, make_store, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    out = tmp_path / "a.jsonl"
    attest.attest(store, w.model.ref, out)
    other = keys.public_key(make_store("other"))
    assert not attest.verify_attestation(out, other).ok
    lines = out.read_text().splitlines()
    env = json.loads(lines[1])
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["predicate"]["result"] = "PASSED" if stmt["predicate"]["result"] != "PASSED" else "FAILED"
    env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    out.write_text(lines[0] + "\n" + json.dumps(env) + "\n")
    check = attest.verify_attestation(out, keys.public_key(store))
    assert not check.ok and "envelope 2" in check.problems[0]


@dataclass
class FakeChecklist:
    """A checklist result as `runlock check` would hand it over (the ChecklistResult protocol)."""

    passed: bool
    checks: list

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": self.checks}


def test_production_needs_the_gate_and_the_gate_is_audited(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    with pytest.raises(Conflict, match="has not passed the production gate"):
        registry.set_alias(store, w.model.ref, "production", reason="ship")
    bad = tmp_path / "bad.jsonl"
    attest.attest(store, w.model.ref, bad, checklist=FakeChecklist(
        False, [{"name": "rerun matches", "status": "fail"}, {"name": "seed recorded", "ok": True}]))
    refused = attest.gate_production(store, w.model.ref, bad)
    assert not refused.allowed and "FAILED (failed: rerun matches)" in refused.reasons[-1]
    assert audit.log(store, action="gate.*") == []
    good = tmp_path / "good.jsonl"
    attest.attest(store, w.model.ref, good)
    passed = attest.gate_production(store, w.model.ref, good)
    assert passed.passed and audit.get(store, passed.audit_seq).action == "gate.pass"
    move = registry.set_alias(store, w.model.ref, "production", reason="ship")
    assert move.to_version == w.model.version


def test_an_attestation_of_another_model_does_not_open_the_gate(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    other = registry.register(store, w.run_id, "eval", "evalmodel")
    out = tmp_path / "other.jsonl"
    attest.attest(store, other.ref, out)
    result = attest.gate_production(store, w.model.ref, out)
    assert not result.allowed and any("another model" in r for r in result.reasons)


def test_only_an_admin_may_override_and_the_reason_is_recorded(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    bad = tmp_path / "bad.jsonl"
    attest.attest(store, w.model.ref, bad, checklist=FakeChecklist(False, [{"name": "rerun", "status": "fail"}]))
    maintainer = w.as_role("maintainer")
    with pytest.raises(PermissionDenied, match="admin"):
        attest.gate_production(maintainer, w.model.ref, bad, override_reason="hotfix")
    admin = w.as_role("admin")
    result = attest.gate_production(admin, w.model.ref, bad, override_reason="hotfix for incident 42")
    assert result.overridden and not result.passed
    entry = audit.get(store, result.audit_seq)
    assert (entry.action, entry.actor, entry.details["reason"]) == ("gate.override", "admin-user",
                                                                     "hotfix for incident 42")
    assert registry.set_alias(admin, w.model.ref, "production", reason="hotfix").to_version == w.model.version
    maintainer.close()
    admin.close()


def test_attesting_a_run_covers_all_its_artifacts(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    out = tmp_path / "run.jsonl"
    made = attest.attest(store, w.run_id, out)
    names = {s["name"] for s in statements(out)[0]["subject"]}
    assert {"adapter", "eval", "adapter/weights.bin"} <= names and made.ref == f"run:{w.run_id}"
