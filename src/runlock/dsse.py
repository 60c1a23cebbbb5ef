"""DSSE envelopes of in-toto statements: sign, open, verify offline, and the gate's binding rule.

Needs no store: ``verify_attestation(path, key, root=DIR)`` checks every signature (DSSE PAE,
Ed25519), decodes the statements, and re-hashes under ``root`` every file the attestation names
(a file it names that is not there is a failure, not a skip). A bundle is complete when it holds
both runlock statements: SLSA provenance and the checklist's test result.

``gate_reasons(check, ref, digest, run_id)`` is the production gate's rule, shared by the gate
itself (``runlock.attest``) and by ``runlock.audit``, which re-checks every recorded ``gate.pass``:
the provenance **and** the test-result statement must each have a subject that *is* the model
version (its ``model:NAME@vN`` name, or the registered artifact of the run that produced it, by
the version's own digest; an evaluation report's digest does not count), and the checklist's
result must be present and ``PASSED``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

from runlock import canonical, keys, paths
from runlock.errors import IntegrityError, InvalidInput
from runlock.hashing import digest_file

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
EVAL_KINDS = ("evaluation", "eval", "report", "metrics")
MAX_BUNDLE_BYTES = 64 * 1024 * 1024


def digest_set(content_id: str) -> dict:
    algo, hexd = content_id.split(":", 1)
    return {algo: hexd}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def sign(stmt: dict, key: keys.SigningKey) -> dict:
    """A DSSE envelope holding ``stmt``, signed with ``key``."""
    payload = canonical.dumps(stmt)
    return {"payload": base64.b64encode(payload).decode(), "payloadType": PAYLOAD_TYPE,
            "signatures": [{"keyid": key.keyid, "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode()}]}


def open_envelope(env: dict, key: keys.PublicKey) -> dict:
    """The statement inside a DSSE envelope, if ``key`` signed it; else IntegrityError."""
    try:
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = [base64.b64decode(s["sig"], validate=True) for s in env["signatures"]]
        ptype = env["payloadType"]
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(f"Not a DSSE envelope ({e}).") from None
    if ptype != PAYLOAD_TYPE:
        raise IntegrityError(f"Envelope payload type is {ptype!r}, not {PAYLOAD_TYPE!r}.")
    if not any(key.verify(sig, pae(ptype, payload)) for sig in sigs):
        raise IntegrityError("No signature in the envelope verifies with this key: it was altered, "
                             "or signed by another store.", hint="Check that --key is this store's public key.")
    try:
        stmt = json.loads(payload)
    except ValueError:
        raise IntegrityError("The signed payload is not JSON.") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE or not isinstance(stmt.get("subject"), list):
        raise IntegrityError("The signed payload is not an in-toto Statement v1.")
    return stmt


def read_bundle(path: str | Path) -> list[dict]:
    """The envelopes of a bundle file: JSON Lines, or one JSON envelope."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BUNDLE_BYTES:
            raise InvalidInput(f"{p} is larger than an attestation can be ({MAX_BUNDLE_BYTES} bytes).")
        data = p.read_bytes()
    except OSError as e:
        raise InvalidInput(f"Cannot read {p}: {e.strerror}.") from e
    return parse_bundle(data, str(p))


def parse_bundle(data: bytes, source: str = "the bundle") -> list[dict]:
    try:
        text = data.decode("utf-8")
        if text.lstrip().startswith("{") and "\n{" not in text.strip():
            found = [json.loads(text)]
        else:
            found = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidInput(f"{source} is not an attestation (JSON or JSON Lines of DSSE envelopes): {e}.") from None
    if not all(isinstance(env, dict) for env in found):
        raise InvalidInput(f"{source} is not an attestation: each line must be a DSSE envelope (a JSON object).")
    return found


@dataclass(frozen=True)
class AttestationCheck:
    ok: bool
    statements: list[dict]
    files: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    complete: bool = True

    def predicate(self, predicate_type: str) -> dict | None:
        return next((s.get("predicate") for s in self.statements if s.get("predicateType") == predicate_type), None)

    def subjects(self, predicate_type: str) -> list[dict]:
        return next((s["subject"] for s in self.statements if s.get("predicateType") == predicate_type), [])

    def to_dict(self) -> dict:
        return {"ok": self.ok, "complete": self.complete, "files": self.files, "problems": self.problems,
                "statements": [{"predicateType": s.get("predicateType"), "subjects": len(s["subject"])}
                               for s in self.statements]}


def verify_attestation(path: str | Path, key: keys.PublicKey, *, root: str | Path | None = None) -> AttestationCheck:
    """Check every envelope of a bundle with ``key`` and re-hash the files it names under ``root``.

    Needs no store and no network. With ``root`` None no file is re-hashed. A subject
    ``NAME/inner/path`` (a file of a folder artifact) is looked for as ``root/NAME/inner/path``
    and then ``root/inner/path`` (a model downloaded into ``root``); one found in neither place is
    reported missing. A bundle without its provenance or test-result statement is incomplete.
    """
    return check_envelopes(read_bundle(path), key, root=root)


def check_envelopes(envelopes: list[dict], key: keys.PublicKey, *, root: str | Path | None = None) -> AttestationCheck:
    problems, statements = [], []
    for i, env in enumerate(envelopes, 1):
        try:
            statements.append(open_envelope(env, key))
        except IntegrityError as e:
            problems.append(f"envelope {i}: {e}")
    files = _rehash(statements, Path(root)) if root is not None else []
    problems += [f"{f['name']}: file {f['path']} is missing" if f["actual"] is None else
                 f"{f['name']}: file {f['path']} has {f['actual']}, the attestation says {f['expected']}"
                 for f in files if not f["ok"]]
    if not statements and not problems:
        problems.append("the file holds no envelope")
    kinds = {s.get("predicateType") for s in statements}
    missing = [what for ptype, what in ((PROVENANCE, "provenance"), (TEST_RESULT, "test-result (checklist)"))
               if ptype not in kinds]
    complete = not missing
    if statements and missing:
        problems.append(f"incomplete: the bundle has no {' and no '.join(missing)} statement")
    return AttestationCheck(not problems, statements, files, problems, complete)


def _rehash(statements: list[dict], root: Path) -> list[dict]:
    """Re-hash under ``root`` every file the statements name. Every name passes the path
    validator (``runlock.paths``) before any file is opened, and a file is read only where its
    real location is below ``root`` (no link is followed out): an attestation cannot make this
    read ``../../etc/passwd`` or ``/etc/passwd``; it is refused, naming the entry."""
    wanted: dict[str, str] = {}
    for stmt in statements:
        for s in stmt.get("subject", []):
            want = (s.get("digest") or {}).get("sha256") if isinstance(s, dict) else None
            name = s.get("name", "") if isinstance(s, dict) else ""
            if not want or not isinstance(name, str) or name in wanted or name.startswith(("model:", "run:")) \
                    or "/" not in name:
                continue        # the whole artifact: its files are subjects of their own
            why = paths.problem(name)
            if why is not None:
                raise paths.UnsafePath(f"The attestation names the file {name!r}, which runlock will not read "
                                       f"under --root: {why}.", hint="Nothing was read. The attestation was "
                                       "crafted or damaged; do not trust it.")
            wanted[name] = want
    out = []
    for name, want in wanted.items():
        cands = [root / name, root.joinpath(*name.split("/")[1:])]
        found = next((c for c in cands if c.is_file()), None)
        if found is not None and not paths.is_within(found, root):
            raise paths.UnsafePath(f"The attestation's file {name!r} is {found}, a link that leads out of "
                                   f"{root}; runlock will not read it.", hint="Nothing was read. Check the "
                                   "folder given as --root.")
        if found is None:
            out.append({"name": name, "path": str(cands[0]), "expected": f"sha256:{want}", "actual": None,
                        "ok": False})
            continue
        actual, _ = digest_file(found)
        out.append({"name": name, "path": str(found), "expected": f"sha256:{want}",
                    "actual": actual, "ok": actual == f"sha256:{want}"})
    return out


def gate_reasons(check: AttestationCheck, ref: str, digest: str, run_id: str | None = None) -> list[str]:
    """Why an attestation does not let the model version ``ref`` (content ``digest``, produced by
    ``run_id``) through the gate (empty: it does)."""
    reasons = list(check.problems)
    invocation = (((check.predicate(PROVENANCE) or {}).get("runDetails") or {}).get("metadata") or {}).get("invocationId")
    for ptype, what in ((PROVENANCE, "provenance"), (TEST_RESULT, "checklist result")):
        if check.predicate(ptype) is None:
            if not any(what in r for r in reasons):
                reasons.append(f"the attestation has no {what} statement")
        elif not any(_is_version(s, ref, digest, run_id, invocation) for s in check.subjects(ptype)):
            reasons.append(f"the {what} statement is about another model (no subject {ref} with digest {digest})")
    test = check.predicate(TEST_RESULT)
    if test is not None:
        result = test.get("result") if isinstance(test, dict) else None
        if result != "PASSED":
            named = {k: ", ".join(map(str, test.get(k) or [])) if isinstance(test, dict) else ""
                     for k in ("failedTests", "warnedTests")}
            why = "; ".join(f"{label}: {named[k]}" for k, label in (("failedTests", "failed"), ("warnedTests", "warned"))
                            if named[k]) or "the attestation names no failed or warned check"
            reasons.append(f"the reproducibility checklist result is {result or 'missing'} ({why})")
    return reasons


def _is_version(subject: dict, ref: str, digest: str, run_id: str | None, invocation: str | None) -> bool:
    if not isinstance(subject, dict) or subject.get("digest") != digest_set(digest):
        return False
    if subject.get("name") == ref:
        return True
    notes = subject.get("annotations") or {}
    return (run_id is not None and invocation == f"run:{run_id}" and notes.get("runlock.kind") not in EVAL_KINDS
            and "runlock.kind" in notes)
