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

``verify_attestation(path, key)`` (``runlock.dsse``) needs no store and no network: it checks
every signature (DSSE PAE), decodes the statements, and re-hashes the files it names.
``gate_production`` decides whether a model version may become ``@production``: its record and
its run's must still match the audit log, ``runlock check`` (the repository's policy) must pass
on it, every split it was trained on must have a passed leakage report, and the attestation must
be of that exact version (``dsse.gate_reasons``) with a PASSED checklist. The decision is
recorded in the audit log with the attestation itself kept as an object (as ``attest`` keeps
every attestation it writes, named by ``details.attestation`` of its ``attestation.create`` entry), so ``audit verify``
re-checks it; ``audit.append`` refuses any move to production without such a record. An admin
may override a failing gate with a reason, which is recorded too.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runlock import artifacts, audit, canonical, keys, refs, registry
from runlock.dsse import (EVAL_KINDS, MAX_BUNDLE_BYTES, PAYLOAD_TYPE, PROVENANCE, STATEMENT_TYPE, TEST_RESULT,  # noqa: F401
                          AttestationCheck, check_envelopes, gate_reasons, open_envelope, pae, parse_bundle,
                          read_bundle, sign, verify_attestation)
from runlock.dsse import digest_set as _digest_set
from runlock.errors import InvalidInput, NotFound, RunlockError
from runlock.hashing import digest_bytes, is_digest
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.verify import checklist as policy_checklist
BUILD_TYPE = "https://runlock.dev/training-run/v1"
CHECKLIST_URI = "https://runlock.dev/checklist/lock/v1"


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


def policy_result(store: Store, target: str, policy: policy_checklist.Policy | None = None) -> Checklist:
    """The checklist an attestation carries: ``runlock check`` with the repository's policy (the
    same rules as the production gate), plus what the record alone shows (finished, locked,
    outputs intact)."""
    report = policy_checklist.check(store, target, policy)
    own = {c.name: c for c in lock_checklist(store, report.run_id).checks}
    items = [CheckItem(r.rule, "pass" if r.passed else "fail", r.detail) for r in report.results]
    items += [own[n] for n in ("run finished", "lock recorded", "outputs intact")]
    return Checklist(report.run_id, tuple(items))


def gate_policy(policy: policy_checklist.Policy | None = None) -> policy_checklist.Policy:
    """The repository's policy (as ``runlock check`` loads it), with ``split-leakage`` always on:
    no model trained on a split whose leakage report failed passes the gate."""
    policy = policy or policy_checklist.load_policy()
    if "split-leakage" in policy.rules:
        return policy
    rule = dict(policy_checklist.RULES["split-leakage"][1])
    return policy_checklist.Policy(f"{policy.source} + split-leakage", {**policy.rules, "split-leakage": rule})


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


def attest(store: Store, ref: str, output: str | Path, *, checklist: ChecklistResult | None = None,
           policy: policy_checklist.Policy | None = None) -> Attestation:
    """Sign provenance and checklist statements for a model version or a run, write the bundle.
    The checklist is ``runlock check`` with ``policy`` (default: the repository's) unless given."""
    out = Path(output)

    def write(data: bytes) -> str:
        try:
            out.write_bytes(data)
        except OSError as e:
            raise InvalidInput(f"Cannot write the attestation to {out}: {e.strerror}.") from e
        return str(out)

    return sign_attestation(store, ref, write, checklist=checklist, policy=policy)[0]


def sign_attestation(store: Store, ref: str, write: Callable[[bytes], str], *,
                     checklist: ChecklistResult | None = None,
                     policy: policy_checklist.Policy | None = None) -> tuple[Attestation, bytes]:
    """``attest`` with where the bundle goes left to ``write`` (called with its bytes before the
    audit entry; it returns the path to report): a team server signs with the key it holds and
    returns the bytes to the client, which writes them."""
    model = _model(store, ref)
    rec = records.get(store, model.run_id if model else ref)
    audit.require_sealed(store, *([model.ref] if model else []), f"run:{rec.id}")
    if not rec.recipe_id:
        raise InvalidInput(f"Run {rec.id} has no lock to attest.", hint="Attest a run started with runlock.")
    lock = locks.load(store, rec.recipe_id)
    subjects = _subjects(store, rec.id, model)
    checklist = checklist if checklist is not None else policy_result(store, model.ref if model else rec.id, policy)
    key = keys.ensure(store)
    lines = [sign(statement(subjects, PROVENANCE, provenance(store, rec, lock)), key),
             sign(statement(subjects, TEST_RESULT, test_result(checklist, rec.id)), key)]
    data = b"".join(canonical.dumps(env) + b"\n" for env in lines)
    path = write(data)
    target = model.ref if model else f"run:{rec.id}"
    result = _result(checklist)
    kept = store.objects.put_bytes(data)        # kept as an object too, so a bundle can carry it signed
    seq = store.db.run_write(lambda conn: audit.append(
        conn, store.actor, "attestation.create", target, after=digest_bytes(data),
        details={"run": rec.id, "result": result, "key_id": key.keyid, "attestation": kept,
                 "subjects": [s["name"] for s in subjects]}))
    return Attestation(path, target, rec.id, subjects, result, key.keyid, digest_bytes(data), seq), data


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
        raise InvalidInput(f"run:{run_id} has no artifacts, so there is nothing to attest.",
                           hint="Log the model with run.log_artifact() first, or attest a run that has one.")
    return out


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


def gate_production(store: Store, model_ref: str, attestation: str | Path | bytes, *,
                    key: keys.PublicKey | None = None, override_reason: str | None = None,
                    policy: policy_checklist.Policy | None = None,
                    source: str | None = None) -> GateResult:
    """May ``model_ref`` become @production? Its record and its run's must match the audit log
    (else IntegrityError), ``runlock check`` with the repository's policy must pass on it (with
    ``split-leakage`` always on), and the attestation must be of that exact version, signed by
    this store's key (or ``key``), with a PASSED checklist. The decision is audited
    (``gate.pass``, or ``gate.override`` by an admin with a reason) with the attestation kept as
    an object; nothing is written on a plain failure. Then ``registry.set_alias(...,
    "production")`` is allowed."""
    mv = registry.resolve(store, model_ref)
    audit.require_sealed(store, mv.ref, f"run:{mv.run_id}")
    key = key or keys.public_key(store)
    data = attestation if isinstance(attestation, bytes) else read_attestation(attestation)
    name = source or ("the attestation" if isinstance(attestation, bytes) else str(attestation))
    reasons = gate_reasons(check_envelopes(parse_bundle(data, name), key), mv.ref, mv.digest, mv.run_id)
    report = policy_checklist.check(store, mv.ref, gate_policy(policy))
    reasons += [f"runlock check: {r.rule} failed ({r.detail})" for r in report.results if not r.passed]
    if reasons and not (override_reason and override_reason.strip()):
        return GateResult(mv.ref, mv.digest, False, False, reasons, None)
    action = "gate.override" if reasons else "gate.pass"
    details = {"run": mv.run_id, "attestation": store.objects.put_bytes(data), "key_id": key.keyid,
               "policy": report.policy, "failures": reasons, "reason": (override_reason or "").strip() or None}
    seq = store.db.run_write(lambda conn: audit.append(conn, store.actor, action, mv.ref, after=mv.digest,
                                                       details=details))
    return GateResult(mv.ref, mv.digest, not reasons, bool(reasons), reasons, seq)


def read_attestation(path: str | Path) -> bytes:
    """An attestation bundle's bytes, at most ``MAX_BUNDLE_BYTES``; one line when it cannot be read."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BUNDLE_BYTES:
            raise InvalidInput(f"{p} is larger than an attestation can be.")
        return p.read_bytes()
    except OSError as e:
        raise InvalidInput(f"Cannot read the attestation {p}: {e.strerror}.") from e
