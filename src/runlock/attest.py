"""Attestations: signed in-toto statements about a run or a registered model, and the production gate.

``attest(store, "model:NAME@vN" | "run:ID", output)`` writes an in-toto attestation bundle (JSON
Lines, one DSSE envelope a line, each signed with the store's Ed25519 key):

1. an in-toto Statement v1 with the SLSA Provenance v1 predicate. Subjects: the model (or every
   artifact of the run) file by file, plus the whole model by its content id, plus the evaluation
   reports. Resolved dependencies: the git commit (and the uncommitted diff's id), every input
   (dataset snapshot, split with its leakage report, base model, artifact), the environment lock
   and the run's lock. External parameters: the canonical config, seeds and determinism settings.
2. an in-toto Statement v1 with the ``test-result`` predicate: the reproducibility checklist's
   result for the same subjects.

``verify_attestation(path, key)`` needs no store and no network: it checks every signature
(DSSE PAE), decodes the statements, and re-hashes the subjects it finds as local files.
``gate_production`` decides whether a model version may become ``@production`` (a valid
attestation of that exact model whose checklist passed) and records the decision in the audit
log; ``audit.append`` refuses any move to production without such a record. An admin may
override a failing gate with a reason, which is recorded too.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runlock import artifacts, audit, canonical, keys, refs, registry
from runlock.errors import InvalidInput, IntegrityError, NotFound, RunlockError
from runlock.hashing import digest_bytes, digest_file, is_digest
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://runlock.dev/training-run/v1"
CHECKLIST_URI = "https://runlock.dev/checklist/lock/v1"
EVAL_KINDS = ("evaluation", "eval", "report", "metrics")


# -- the checklist interface -------------------------------------------------------------
class ChecklistResult(Protocol):
    """What the gate needs from a reproducibility checklist (``runlock check`` provides one).

    ``checks`` items need a ``name`` and either ``status`` ("pass", "warn", "fail", "skip") or a
    boolean ``ok``/``passed``.
    """

    @property
    def passed(self) -> bool: ...

    @property
    def checks(self) -> Any: ...

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class CheckItem:
    name: str
    status: str        # pass | warn | fail
    detail: str = ""


@dataclass(frozen=True)
class Checklist:
    run: str
    checks: tuple[CheckItem, ...]

    @property
    def passed(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_dict(self) -> dict:
        return {"run": self.run, "passed": self.passed, "checks": [c.__dict__ for c in self.checks]}


def lock_checklist(store: Store, run: str) -> Checklist:
    """The checks runlock can make from the record alone (no rerun): is everything pinned?"""
    rec = records.get(store, run)
    lock = locks.load(store, rec.recipe_id) if rec.recipe_id else {}
    git = (lock.get("code") or {}).get("git") or {}
    inputs = lock.get("inputs") or []
    problems = [p for a in artifacts.for_run(store, rec.id) for p in _artifact_problems(store, a)]
    checks = (
        CheckItem("run finished", "pass" if rec.status == "finished" else "fail", rec.status),
        CheckItem("lock recorded", "pass" if rec.recipe_id else "fail", rec.recipe_id or "no lock"),
        CheckItem("seed recorded", "pass" if lock.get("seed") is not None or lock.get("seeding") else "fail",
                  str(lock.get("seed"))),
        CheckItem("code pinned", "pass" if git.get("commit") and (not git.get("dirty") or git.get("diff"))
                  else "fail", git.get("commit") or "not a git checkout"),
        CheckItem("inputs pinned", "pass" if inputs and all(is_digest(str(i.get("id"))) for i in inputs)
                  else ("warn" if not inputs else "fail"), f"{len(inputs)} input(s)"),
        CheckItem("environment locked", "pass" if (lock.get("environment") or {}).get("packages") else "fail"),
        CheckItem("outputs intact", "fail" if problems else "pass", "; ".join(problems)),
    )
    return Checklist(rec.id, checks)


def _artifact_problems(store: Store, art: artifacts.Artifact) -> list[str]:
    ids = [art.manifest or art.digest]
    if art.manifest:
        ids += [e["digest"] for e in artifacts.folder_entries(store, art)]
    return [f"{art.name}: {p.problem}" for oid in ids if (p := store.objects.verify_one(oid))]


def _status(item: Any) -> str:
    status = getattr(item, "status", None) if not isinstance(item, dict) else item.get("status")
    if status is None:
        ok = item.get("ok", item.get("passed")) if isinstance(item, dict) else \
            getattr(item, "ok", getattr(item, "passed", None))
        return "pass" if ok else "fail"
    return {"ok": "pass", "passed": "pass", "failed": "fail", "warning": "warn", "skipped": "skip"}.get(
        str(status).lower(), str(status).lower())


def _name(item: Any) -> str:
    return str(item.get("name") if isinstance(item, dict) else getattr(item, "name", item))


# -- statements --------------------------------------------------------------------------
@dataclass(frozen=True)
class Attestation:
    path: str
    ref: str
    run: str
    subjects: list[dict]
    result: str
    key_id: str
    digest: str            # sha256 of the bundle file
    audit_seq: int

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def attest(store: Store, ref: str, output: str | Path, *, checklist: ChecklistResult | None = None) -> Attestation:
    """Sign provenance and checklist statements for a model version or a run, write the bundle."""
    model = _model(store, ref)
    rec = records.get(store, model.run_id if model else ref)
    if not rec.recipe_id:
        raise InvalidInput(f"Run {rec.id} has no lock to attest.", hint="Attest a run started with runlock.")
    lock = locks.load(store, rec.recipe_id)
    subjects = _subjects(store, rec.id, model)
    checklist = checklist if checklist is not None else lock_checklist(store, rec.id)
    key = keys.ensure(store)
    lines = [sign(statement(subjects, PROVENANCE, provenance(store, rec, lock)), key),
             sign(statement(subjects, TEST_RESULT, test_result(checklist, rec.id)), key)]
    data = b"".join(canonical.dumps(env) + b"\n" for env in lines)
    out = Path(output)
    try:
        out.write_bytes(data)
    except OSError as e:
        raise InvalidInput(f"Cannot write the attestation to {out}: {e.strerror}.") from e
    target = model.ref if model else f"run:{rec.id}"
    result = _result(checklist)
    seq = store.db.run_write(lambda conn: audit.append(
        conn, store.actor, "attestation.create", target, after=digest_bytes(data),
        details={"run": rec.id, "result": result, "key_id": key.keyid,
                 "subjects": [s["name"] for s in subjects]}))
    return Attestation(str(out), target, rec.id, subjects, result, key.keyid, digest_bytes(data), seq)


def _model(store: Store, ref: str) -> registry.ModelVersion | None:
    return registry.resolve(store, ref) if ref.startswith("model:") else None


def _subjects(store: Store, run_id: str, model: registry.ModelVersion | None) -> list[dict]:
    arts = artifacts.for_run(store, run_id)
    if model is not None:
        arts = [a for a in arts if a.digest == model.digest or a.kind in EVAL_KINDS]
    out = []
    for a in arts:
        name = model.ref if model is not None and a.digest == model.digest else a.name
        out.append({"name": name, "digest": _digest_set(a.digest),
                    "annotations": {"runlock.kind": a.kind, "runlock.files": a.files, "runlock.artifact": a.name}})
        if a.manifest:
            out += [{"name": f"{a.name}/{e['path']}", "digest": _digest_set(e["digest"])}
                    for e in artifacts.folder_entries(store, a)]
    if not out:
        raise NotFound("artifact", f"of run {run_id}", hint="Log the model with run.log_artifact() first.")
    return out


def _digest_set(content_id: str) -> dict:
    algo, hexd = content_id.split(":", 1)
    return {algo: hexd}


def statement(subjects: list[dict], predicate_type: str, predicate: dict) -> dict:
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": predicate_type, "predicate": predicate}


def provenance(store: Store, rec: records.RunRecord, lock: dict) -> dict:
    """The SLSA Provenance v1 predicate of a run, from its lock."""
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {k: lock.get(k) for k in ("config", "seed", "knobs", "entrypoint")},
            "internalParameters": {"project": rec.project, "run_name": rec.name, "seeding": lock.get("seeding")},
            "resolvedDependencies": dependencies(store, lock, rec.recipe_id,
                                                 remote=((rec.context or {}).get("git") or {}).get("remote")),
        },
        "runDetails": {
            "builder": {"id": "https://runlock.dev/builder/local",
                        "version": {"runlock": _version()}},
            "metadata": {"invocationId": f"run:{rec.id}", "startedOn": rec.started_at, "finishedOn": rec.ended_at},
        },
    }


def dependencies(store: Store, lock: dict, recipe_id: str, *, remote: str | None = None) -> list[dict]:
    """SLSA resolved dependencies: the code (commit, and the remote it came from when known),
    every input, the environment and the lock itself."""
    git = (lock.get("code") or {}).get("git") or {}
    out = []
    if git.get("commit"):
        uri = f"git+{remote}@{git['commit']}" if remote else f"git+{git['commit']}"
        out.append({"name": "code", "uri": uri, "digest": {"gitCommit": git["commit"]},
                    "annotations": {"dirty": bool(git.get("dirty")), "diff": git.get("diff")}})
    for entry in lock.get("inputs") or []:
        dep = {"name": entry.get("ref") or entry["node"], "uri": f"runlock:{entry['node']}",
               "digest": _digest_set(entry["id"]), "annotations": {"kind": entry.get("kind")}}
        leakage = _leakage(store, entry)
        if leakage:
            dep["annotations"]["leakage_report"] = leakage
        out.append(dep)
    env = lock.get("environment") or {}
    out.append({"name": "environment", "uri": "runlock:environment", "digest": _digest_set(canonical.digest(env)),
                "annotations": {"python": (env.get("python") or {}).get("version"),
                                "packages": len(env.get("packages") or {})}})
    out.append({"name": "lock", "uri": f"runlock:lock:{recipe_id}", "digest": _digest_set(recipe_id),
                "mediaType": "application/json"})
    return out


def _leakage(store: Store, entry: dict) -> str | None:
    """The digest of a split's leakage report, if its version records one."""
    if entry.get("kind") != "split" or not str(entry.get("ref", "")).startswith("split:"):
        return None
    try:
        meta = refs.resolve(store, entry["ref"], "split").meta
    except RunlockError:
        return None
    found = meta.get("leakage") or meta.get("leakage_report")
    return found.get("digest") if isinstance(found, dict) else found


def test_result(checklist: ChecklistResult, run_id: str) -> dict:
    """The in-toto test-result predicate of a checklist."""
    items = list(getattr(checklist, "checks", []) or [])
    by = {s: [_name(i) for i in items if _status(i) == s] for s in ("pass", "warn", "fail")}
    return {"result": _result(checklist),
            "configuration": [{"name": "runlock reproducibility checklist", "uri": CHECKLIST_URI,
                               "digest": _digest_set(canonical.digest(checklist.to_dict()))}],
            "url": f"runlock:run:{run_id}",
            "passedTests": by["pass"], "warnedTests": by["warn"], "failedTests": by["fail"]}


def _result(checklist: ChecklistResult) -> str:
    if not checklist.passed:
        return "FAILED"
    statuses = {_status(i) for i in getattr(checklist, "checks", []) or []}
    return "FAILED" if "fail" in statuses else ("WARNED" if "warn" in statuses else "PASSED")


def _version() -> str:
    try:
        return importlib.metadata.version("runlock")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# -- DSSE --------------------------------------------------------------------------------
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
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise IntegrityError("The signed payload is not an in-toto Statement v1.")
    return stmt


def read_bundle(path: str | Path) -> list[dict]:
    """The envelopes of a bundle file: JSON Lines, or one JSON envelope."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"Cannot read {p}: {e.strerror}.") from e
    try:
        if text.lstrip().startswith("{") and "\n{" not in text.strip():
            return [json.loads(text)]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as e:
        raise InvalidInput(f"{p} is not an attestation (JSON or JSON Lines of DSSE envelopes): {e}.") from e


@dataclass(frozen=True)
class AttestationCheck:
    ok: bool
    statements: list[dict]
    files: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def predicate(self, predicate_type: str) -> dict | None:
        return next((s["predicate"] for s in self.statements if s["predicateType"] == predicate_type), None)

    def subjects(self, predicate_type: str) -> list[dict]:
        return next((s["subject"] for s in self.statements if s["predicateType"] == predicate_type), [])

    def to_dict(self) -> dict:
        return {"ok": self.ok, "files": self.files, "problems": self.problems,
                "statements": [{"predicateType": s["predicateType"], "subjects": len(s["subject"])}
                               for s in self.statements]}


def verify_attestation(path: str | Path, key: keys.PublicKey, *, root: str | Path | None = None) -> AttestationCheck:
    """Check every envelope of a bundle with ``key`` and re-hash the subjects found under ``root``.

    Needs no store and no network. With ``root`` None no file is re-hashed. A subject ``NAME/inner/path`` is looked for as
    ``root/NAME/inner/path`` and then ``root/inner/path`` (a model downloaded into ``root``).
    """
    problems, statements = [], []
    for i, env in enumerate(read_bundle(path), 1):
        try:
            statements.append(open_envelope(env, key))
        except IntegrityError as e:
            problems.append(f"envelope {i}: {e}")
    files = _rehash(statements, Path(root)) if root is not None else []
    problems += [f"{f['name']}: file {f['path']} has {f['actual']}, the attestation says {f['expected']}"
                 for f in files if not f["ok"]]
    if not statements and not problems:
        problems.append("the file holds no envelope")
    return AttestationCheck(not problems, statements, files, problems)


def _rehash(statements: list[dict], root: Path) -> list[dict]:
    seen, out = set(), []
    for stmt in statements:
        for s in stmt.get("subject", []):
            want = s.get("digest", {}).get("sha256")
            name = str(s.get("name", ""))
            if not want or name in seen or name.startswith(("model:", "run:")):
                continue
            seen.add(name)
            parts = Path(name).parts
            for cand in (root / name, root.joinpath(*parts[1:]) if len(parts) > 1 else None):
                if cand is not None and cand.is_file():
                    actual, _ = digest_file(cand)
                    out.append({"name": name, "path": str(cand), "expected": f"sha256:{want}",
                                "actual": actual, "ok": actual == f"sha256:{want}"})
                    break
    return out


# -- the production gate -----------------------------------------------------------------
@dataclass(frozen=True)
class GateResult:
    model: str
    digest: str
    passed: bool
    overridden: bool
    reasons: list[str]
    audit_seq: int | None

    @property
    def allowed(self) -> bool:
        return self.passed or self.overridden

    def to_dict(self) -> dict:
        return {**{f: getattr(self, f) for f in self.__dataclass_fields__}, "allowed": self.allowed}


def gate_production(store: Store, model_ref: str, attestation: str | Path, *,
                    key: keys.PublicKey | None = None, override_reason: str | None = None) -> GateResult:
    """May ``model_ref`` become @production? It needs an attestation of that exact model, signed
    by this store's key (or ``key``), whose checklist PASSED. The decision is audited
    (``gate.pass``, or ``gate.override`` by an admin with a reason); nothing is written on a
    plain failure. Then ``registry.set_alias(..., "production")`` is allowed."""
    mv = registry.resolve(store, model_ref)
    key = key or keys.public_key(store)
    reasons = gate_reasons(verify_attestation(attestation, key), mv.digest)
    if reasons and not (override_reason and override_reason.strip()):
        return GateResult(mv.ref, mv.digest, False, False, reasons, None)
    action = "gate.override" if reasons else "gate.pass"
    details = {"run": mv.run_id, "attestation": digest_file(attestation)[0], "key_id": key.keyid,
               "failures": reasons, "reason": (override_reason or "").strip() or None}
    seq = store.db.run_write(lambda conn: audit.append(conn, store.actor, action, mv.ref, after=mv.digest,
                                                       details=details))
    return GateResult(mv.ref, mv.digest, not reasons, bool(reasons), reasons, seq)


def gate_reasons(check: AttestationCheck, model_digest: str) -> list[str]:
    """Why an attestation does not let this model through the gate (empty: it does)."""
    reasons = list(check.problems)
    want = _digest_set(model_digest)
    for ptype, what in ((PROVENANCE, "provenance"), (TEST_RESULT, "checklist result")):
        if check.predicate(ptype) is None:
            reasons.append(f"the attestation has no {what} statement")
        elif not any(s.get("digest") == want for s in check.subjects(ptype)):
            reasons.append(f"the {what} statement is about another model (no subject {model_digest})")
    result = (check.predicate(TEST_RESULT) or {}).get("result")
    if result is not None and result != "PASSED":
        failed = ", ".join((check.predicate(TEST_RESULT) or {}).get("failedTests") or []) or "see warnings"
        reasons.append(f"the reproducibility checklist result is {result} ({failed})")
    return reasons
