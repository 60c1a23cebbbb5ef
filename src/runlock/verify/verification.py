"""Verification: rerun + compare, kept as a record on the run; or a model's outputs on a small
benchmark set compared with a stored reference file.

``verify(store, RUN)`` reruns RUN from its lock and compares the rerun with it. The outcome is
stored even when the rerun cannot happen (commit gone, objects lost) or does not finish: the
record then has tier ``failed`` and the reason, because "this result can no longer be rebuilt"
is exactly what an audit wants to learn.

``verify_reference(store, RUN, REFERENCE)`` compares the run's outputs (its ``outputs``
artifact, or a file given with ``outputs=``) with a reference file. Both are JSON: an object of
``{case id: output}``, or ``{"outputs": {...}, "rtol": ..., "atol": ...}`` to carry their own
tolerances. A case is ``bitwise`` when its output is identical, ``tolerance`` when it is a
number or a nested list of numbers of the same shape within ``rtol``/``atol``, else
``different``; a reference case missing from the outputs is ``different``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from runlock import artifacts, canonical
from runlock.errors import InvalidInput, RunlockError
from runlock.store import Store
from runlock.tracking import records
from runlock.verify.compare import ATOL, K, RTOL
from runlock.verify.records import Verification, add_verification, tier_rank
from runlock.verify.rerun import Rerunner, incomplete, rerun, rerunner


def verify(source: Store | Rerunner, run: str, *, isolated: bool = True, repo: str | Path | None = None,
           rtol: float = RTOL, atol: float = ATOL, k: float = K, rehearsal_id: str | None = None,
           progress: Callable[[int, int, str], None] | None = None) -> Verification:
    """Rerun ``run`` and compare the rerun with it; store and return the outcome (``progress``:
    the rerun's preparation, as in ``rerun``). The comparison is made where the records are: a
    team server compares the rerun it holds with the original and stores the outcome itself."""
    backend = rerunner(source)
    rec = backend.record(run)
    tol = {"rtol": rtol, "atol": atol, "k": k, "rehearsal_id": rehearsal_id}
    failure = incomplete(rec)
    if failure is not None:
        return backend.verified(rec.id, failure=failure, **tol)
    try:
        result = rerun(backend, rec.id, isolated=isolated, repo=repo, progress=progress)
    except RunlockError as e:
        return backend.verified(rec.id, failure={"error": e.message, "hint": e.hint}, **tol)
    if result.status != "finished":
        return backend.verified(rec.id, rerun_id=result.run_id, failure={
            "error": f"The rerun run:{result.run_id} ended {result.status} (exit status {result.returncode}).",
            "hint": None}, **tol)
    return backend.verified(rec.id, rerun_id=result.run_id, **tol)


def verify_reference(store: Store, run: str, reference: str | Path, *, outputs: str | Path | None = None,
                     artifact: str = "outputs", rtol: float | None = None, atol: float | None = None) -> Verification:
    """Compare a run's outputs on a benchmark set with the reference file; store the outcome."""
    ref_data = _read(Path(reference), "reference file")
    out = None if outputs is None else (_read(Path(outputs), "outputs file"), str(outputs))
    return verify_reference_data(store, run, ref_data, str(reference), outputs=out, artifact=artifact,
                                 rtol=rtol, atol=atol)


def verify_reference_data(store: Store, run: str, reference: bytes, source: str, *,
                          outputs: tuple[bytes, str] | None = None, artifact: str = "outputs",
                          rtol: float | None = None, atol: float | None = None) -> Verification:
    """``verify_reference`` over bytes: the reference (read from ``source``, for messages) and the
    outputs (``(bytes, source)``, else the run's artifact ``artifact``). A team server gets both
    as objects the client uploaded."""
    rec = records.get(store, run)
    ref_doc = _parse(reference, f"reference file {source}")
    if outputs is not None:
        out_doc, out_source = _parse(outputs[0], f"outputs file {outputs[1]}"), outputs[1]
    else:
        art = artifacts.get(store, rec.id, artifact)
        if art.manifest is not None:
            raise InvalidInput(f"Artifact {artifact!r} of run {rec.id} is a folder, not a JSON file of outputs.",
                               hint="Name the outputs file artifact with --artifact, or pass --outputs FILE.")
        out_doc = _parse(store.objects.get_bytes(art.digest), f"artifact {artifact}")
        out_source = f"artifact:{art.digest}"
    expected, opts = _cases(ref_doc)
    if not expected:
        raise InvalidInput(f"The reference file {source} has no cases, so there is nothing to check the outputs against.",
                           hint="A reference is {case id: expected output}, a list of outputs, or {\"outputs\": {...}}.")
    got, _ = _cases(out_doc)
    rtol = opts.get("rtol", RTOL) if rtol is None else rtol
    atol = opts.get("atol", ATOL) if atol is None else atol
    cases = [{"case": c, "tier": _case_tier(expected[c], got[c], rtol, atol) if c in got else "different",
              "expected": expected[c], "got": got.get(c, "<missing>")} for c in sorted(expected)]
    tier = max((c["tier"] for c in cases), key=tier_rank, default="bitwise")
    counts = {t: sum(c["tier"] == t for c in cases) for t in ("bitwise", "tolerance", "different")}
    report = {"tier": tier, "outputs": out_source, "rtol": rtol, "atol": atol, "counts": counts,
              "extra_cases": sorted(set(got) - set(expected)),
              "cases": sorted(cases, key=lambda c: (-tier_rank(c["tier"]), c["case"]))}
    ref_id = store.objects.put_bytes(reference)
    return add_verification(store, rec.id, "reference", tier, {**report, "reference": ref_id}, reference=ref_id)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"Cannot read the {what} {path}: {e.strerror}.") from None


def _parse(data: bytes, what: str) -> object:
    if not data.strip():
        raise InvalidInput(f"The {what} is empty.", hint="Give a JSON file of outputs: {case id: output}.")
    try:
        return canonical.normalize(canonical.loads(data))
    except ValueError as e:
        raise InvalidInput(f"The {what} is not valid JSON: {e}.") from None


def _cases(doc: object) -> tuple[dict, dict]:
    opts = {}
    if isinstance(doc, dict) and isinstance(doc.get("outputs"), (dict, list)):
        opts = {k: doc[k] for k in ("rtol", "atol") if isinstance(doc.get(k), (int, float))}
        doc = doc["outputs"]
    if isinstance(doc, list):
        return {str(i): v for i, v in enumerate(doc)}, opts
    if isinstance(doc, dict):
        return doc, opts
    raise InvalidInput("Outputs must be a JSON object {case id: output} or a list of outputs.")


def _case_tier(expected: object, got: object, rtol: float, atol: float) -> str:
    if canonical.dumps(expected) == canonical.dumps(got):
        return "bitwise"
    return "tolerance" if _close(expected, got, rtol, atol) else "different"


def _close(x: object, y: object, rtol: float, atol: float) -> bool:
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(a, b, rtol, atol) for a, b in zip(x, y))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
    return numbers and math.isfinite(x) and math.isfinite(y) and abs(x - y) <= atol + rtol * abs(x)
