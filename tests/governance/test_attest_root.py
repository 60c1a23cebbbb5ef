"""`attest verify --root DIR` reads only below DIR: every file name an attestation gives passes the
path validator before anything is read, and no link leads the re-hash out of DIR (issue 12, §2).
The attestations here are crafted and properly signed, as an attacker holding a key would make."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from runlock import dsse, keys
from runlock.cli.main import app
from runlock.paths import UnsafePath

runner = CliRunner()


def crafted(tmp_path: Path, names: list[str], content: bytes) -> tuple[Path, Path, keys.PublicKey]:
    """A signed bundle (provenance + passing test result) whose subjects are ``names``, each
    claiming ``content``'s digest; and the public key, written as PEM."""
    key = keys.SigningKey(Ed25519PrivateKey.generate())
    subjects = [{"name": n, "digest": {"sha256": hashlib.sha256(content).hexdigest()}} for n in names]
    stmts = [{"_type": dsse.STATEMENT_TYPE, "subject": subjects, "predicateType": dsse.PROVENANCE,
              "predicate": {}},
             {"_type": dsse.STATEMENT_TYPE, "subject": subjects, "predicateType": dsse.TEST_RESULT,
              "predicate": {"result": "PASSED"}}]
    bundle, pub = tmp_path / "crafted.jsonl", tmp_path / "key.pub"
    bundle.write_text("".join(json.dumps(dsse.sign(s, key)) + "\n" for s in stmts))
    pub.write_bytes(key.public.pem())
    return bundle, pub, key.public


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, bytes]:
    """A file outside --root that the attacker knows the contents (so the digest) of."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root:x:0:0\n")
    return outside / "passwd", b"root:x:0:0\n"


@pytest.mark.parametrize("name", ["../../etc/passwd", "art/../../outside/passwd", "/etc/passwd",
                                  "art/.git/config", "art/..\\..\\passwd"])
def test_a_name_the_path_validator_refuses_is_refused_naming_the_entry(tmp_path: Path, secret, name: str) -> None:
    root = tmp_path / "root" / "sub"
    root.mkdir(parents=True)
    bundle, pub, key = crafted(tmp_path, ["art/weights.bin", name], secret[1])
    with pytest.raises(UnsafePath, match="will not read"):
        dsse.verify_attestation(bundle, key, root=root)
    result = runner.invoke(app, ["attest", "verify", str(bundle), "--key", str(pub), "--root", str(root)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert repr(name) in lines[0] and "will not read" in lines[0]
    assert result.stdout == ""


def test_a_link_in_root_does_not_lead_the_rehash_out(tmp_path: Path, secret) -> None:
    """Old code followed DEST/art -> outside and reported the outside file as verified."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "art").symlink_to(secret[0].parent, target_is_directory=True)
    bundle, pub, key = crafted(tmp_path, ["art/passwd"], secret[1])
    with pytest.raises(UnsafePath, match="leads out of"):
        dsse.verify_attestation(bundle, key, root=root)
    result = runner.invoke(app, ["attest", "verify", str(bundle), "--key", str(pub), "--root", str(root)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "'art/passwd'" in result.stderr


def test_names_inside_root_are_still_rehashed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "art").mkdir(parents=True)
    (root / "art" / "weights.bin").write_bytes(b"w")
    bundle, _, key = crafted(tmp_path, ["art/weights.bin"], b"w")
    check = dsse.verify_attestation(bundle, key, root=root)
    assert check.ok and [f["ok"] for f in check.files] == [True]
