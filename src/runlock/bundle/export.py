"""``export``: a model's (or a run's) whole upstream lineage as one deterministic, signed bundle.

What goes in is found by construction: the lineage walk upstream from the root names the runs,
snapshots, splits, artifacts and model versions; their records name objects (locks, diffs,
manifests, artifact files), and every ``sha256:…`` id inside a JSON object reached that way is
followed too (a lock names its diff, a snapshot manifest its files, a folder list its files), as
``gc`` finds what is referenced. With ``data=False`` a snapshot's manifest goes in but not the
files it names, which the manifest lists as omitted. Each run's environment goes in as a PEP 751
``pylock.toml`` and a CycloneDX SBOM (``env/RUN/``), made from its lock; with ``hashes``, the
pylock and SBOM carry each index wheel's sha256 looked up on the index at export
(``runlock.verify.wheels``). Without cyclonedx-python-lib the SBOMs are left out and named under
``excluded``.

Members are written as they are read: an object larger than ``SMALL`` and each git bundle (made in
a scratch folder) are hashed once to fill the manifest, then copied into the tar in chunks, so
the memory an export needs does not grow with the size of the data.

The audit entries whose target is one of those entities go in with an inclusion proof against
one signed checkpoint (the latest signed one when it covers them all, else a new one), with
every attestation those entries name (``runlock attest``'s and the gate's) as its signed bytes
(``attestations/HEX.intoto.jsonl``), and the
manifest, which holds the sha256 of every other member, is signed with the store's key. Nothing
in a bundle depends on when it was written, so exporting twice gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from runlock import audit, auditlog, keys, lineage, merkle, registry, sealed
from runlock.bundle import layout
from runlock.data.snapshot import snapshots
from runlock.data.split import splits
from runlock.errors import Conflict, IntegrityError, InvalidInput, NotFound, RunlockError, StoreError
from runlock.hashing import digest_file, digest_stream
from runlock.store import Store
from runlock.store.schema import artifacts, edges, metrics, refs, runs
from runlock.tracking import records
from runlock.verify import envlock, pylock

DOCUMENT_LIMIT = 64 << 20
SMALL = 1 << 20              # objects up to this size are held in memory; larger ones are streamed
SBOM_MISSING = ("cyclonedx-python-lib is not installed where the bundle was exported "
                "(pip install 'runlock[sbom]')")
_ID = re.compile(rb"sha256:[0-9a-f]{64}")
METRIC_COLUMNS = ("key", "rank", "seq", "step", "value", "raw", "time")


@dataclass(frozen=True)
class ExportResult:
    path: str
    root: str
    bytes: int
    runs: list[str]
    snapshots: list[str]
    splits: list[str]
    models: list[str]
    objects: int
    omitted: int
    audit_entries: int
    data: bool
    excluded: list[dict] = field(default_factory=list)
    environment_files: int = 0
    attestations: int = 0                              # attestation members (signed DSSE envelopes)
    notes: list[str] = field(default_factory=list)     # what the exporter should know (left out, unhashed)

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def root_node(store: Store, ref: str) -> str:
    """The lineage node of ``model:NAME@vN|@ALIAS`` or a run id / prefix."""
    if ref.startswith("model:"):
        return registry.resolve(store, ref).lineage_node
    return f"run:{records.get(store, ref.removeprefix('run:')).id}"


def export(store: Store, ref: str, output: str | Path, *, data: bool = True, hashes: bool = False,
           index_url: str | None = None) -> ExportResult:
    """Write the bundle of ``ref``'s upstream lineage to ``output``; return what it holds."""
    out = Path(output)
    tmp = out.with_name(f".{out.name}.tmp")
    with tempfile.TemporaryDirectory(prefix="runlock-bundle-") as scratch:
        members, manifest = build(store, ref, data=data, hashes=hashes, index_url=index_url, scratch=Path(scratch))
        try:
            with open(tmp, "wb") as f:
                layout.write(f, members)
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
    inside = manifest["contents"]
    return ExportResult(str(out), manifest["root"], out.stat().st_size, inside["runs"], inside["snapshots"],
                        inside["splits"], inside["models"], len(inside["objects"]), len(inside["omitted_objects"]),
                        len(inside["audit_entries"]), data, manifest["excluded"],
                        sum(n.startswith("env/") for n, _ in members), notes=_notes(manifest),
                        attestations=sum(n.startswith("attestations/") for n, _ in members))


def build(store: Store, ref: str, *, data: bool = True, hashes: bool = False, index_url: str | None = None,
          scratch: Path) -> tuple[list[tuple[str, layout.Member]], dict]:
    """The bundle's members in order, and its manifest. Large members are ``layout.Stream``s,
    some of them files under ``scratch``, which must outlive the writing of the members."""
    signing = keys.signer(store)
    if signing is None:
        raise StoreError("This client holds no copy of the store's signing key, so it cannot sign a bundle.",
                         hint="Export from the account (or server host) that holds .runlock/keys/.")
    root = root_node(store, ref)
    graph = lineage.traverse(store, root, "upstream", depth=1000)
    if graph.truncated:
        raise InvalidInput(f"The lineage of {root} has more than {lineage.MAX_NODES} nodes; a bundle holds "
                           "it whole or not at all.")
    files: dict[str, layout.Member] = {}
    with store.db.read() as conn:
        run_ids = [n.split(":", 1)[1] for n in graph.of_type("run")]
        snap_ids = [n.split(":", 1)[1] for n in graph.of_type("snapshot")]
        split_ids = [n.split(":", 1)[1] for n in graph.of_type("split")]
        model_refs = [n.split(":", 1)[1] for n in graph.of_type("model")]
        for rid in run_ids:
            rec = _run_record(conn, rid)
            if rec["run"]["status"] == "running":
                raise Conflict(f"Run {rid} in the lineage of {root} is still running; its record is not sealed.",
                               hint="Export once it has ended.")
            files[f"records/runs/{rid}.json"] = layout.dumps(rec)
        for sid in snap_ids:
            files[f"records/snapshots/{_hex(sid)}.json"] = layout.dumps(
                _row_record(conn, snapshots, sid, "ds", "snapshot"))
        for sid in split_ids:
            rec = _row_record(conn, splits, sid, "split", "split")
            # the columns the seal hashed, as the database returns them untyped (JSON as its text)
            rec["sealed"] = dict(conn.execute(sa.select(sealed.splits).where(sealed.splits.c.id == sid)).one()._mapping)
            files[f"records/splits/{_hex(sid)}.json"] = layout.dumps(rec)
        for m in model_refs:
            files[f"records/models/{m}.json"] = layout.dumps(_model_record(conn, m))
        histories = _alias_histories(conn, model_refs)
        for name, history in histories.items():
            files[f"records/aliases/{name}.json"] = layout.dumps(history)
        nodes = set(graph.nodes)
        edge_rows = [dict(e._mapping) for e in conn.execute(
            sa.select(edges).order_by(edges.c.kind, edges.c.src, edges.c.dst))
            if e.src in nodes and e.dst in nodes]
        files["records/edges.json"] = layout.dumps(edge_rows)
        targets = _targets(conn, run_ids, snap_ids, split_ids, model_refs)
        targets |= {f"model:{h['name']}@{h['alias']}" for h in histories.values()}
    objects, omitted = _objects(store, files, snap_ids, data)
    for oid in objects:
        files[f"objects/{_hex(oid)}"] = _object(store, oid)
    for commit in sorted(_commits(store, run_ids)):
        files[f"code/{commit}.bundle"] = _git_bundle(store, run_ids, commit, scratch)
    excluded = _excluded(store, run_ids, graph)
    environment = _environments(store, run_ids, files, excluded, hashes, index_url)
    seqs = _audit(store, targets, files)
    attestations = _attestations(store, files, excluded)
    pub = signing.public
    files[layout.PUBLIC_KEY] = pub.pem()
    manifest = {
        "schema": layout.SCHEMA, "root": root, "key_id": pub.keyid, "data": data,
        "contents": {"runs": sorted(run_ids), "snapshots": sorted(snap_ids), "splits": sorted(split_ids),
                     "models": sorted(model_refs), "objects": sorted(objects), "omitted_objects": sorted(omitted),
                     "audit_entries": seqs, "attestations": attestations},
        "environment": environment,
        "excluded": excluded,
        "members": {name: {"sha256": layout.sha256_of(b), "size": layout.size_of(b)}
                    for name, b in sorted(files.items())},
    }
    body = layout.dumps(manifest)
    sig = base64.b64encode(signing.sign(body)) + b"\n"
    members = [(layout.MANIFEST, body), (layout.SIGNATURE, sig), *sorted(files.items())]
    return members, manifest


def _environments(store: Store, run_ids: list[str], files: dict[str, layout.Member], excluded: list[dict],
                  hashes: bool, index_url: str | None) -> dict:
    """Add each run's ``env/RUN/pylock.toml`` and ``env/RUN/sbom.cdx.json``; return the manifest's
    ``environment`` section (whether wheel hashes were looked up, and which distributions lack one)."""
    sbom = pylock.sbom_available()
    cache: dict = {}
    unhashed: dict[str, dict[str, str]] = {}
    for rid in sorted(run_ids):
        lock = envlock.export_lockfile(store, rid, "pylock", hashes=hashes, index_url=index_url, cache=cache)
        files[f"env/{rid}/pylock.toml"] = lock.text.encode("utf-8")
        if hashes and lock.unhashed:
            unhashed[rid] = lock.unhashed
        if sbom:
            files[f"env/{rid}/sbom.cdx.json"] = envlock.export_lockfile(
                store, rid, "cyclonedx", hashes=hashes, index_url=index_url, cache=cache).text.encode("utf-8")
        else:
            excluded.append({"run": rid, "input": "environment:sbom", "reason": SBOM_MISSING})
    return {"pylock": True, "sbom": sbom, "wheel_hashes": hashes, "unhashed": unhashed}


def _notes(manifest: dict) -> list[str]:
    env = manifest.get("environment") or {}
    out = []
    if not env.get("sbom"):
        out.append(f"SBOMs left out: {SBOM_MISSING}.")
    missing = sorted({n for names in (env.get("unhashed") or {}).values() for n in names})
    if missing:
        out.append(f"No wheel hash for {len(missing)} distribution(s): {', '.join(missing)} "
                   "(the manifest's environment.unhashed says why for each).")
    return out


def _object(store: Store, oid: str) -> layout.Member:
    """A small object's bytes; a large one as a stream, hashed now (it must be what its id says)
    and checked again as it is copied into the bundle."""
    with store.objects.open(oid) as f:
        head = f.read(SMALL + 1)
        if len(head) <= SMALL:
            if "sha256:" + hashlib.sha256(head).hexdigest() != oid:
                raise IntegrityError(f"Stored object {oid} does not hash to its id; nothing was exported.",
                                     hint="Run `runlock fsck` to find every damaged object.")
            return head
    with store.objects.open(oid) as f:
        actual, size = digest_stream(f)
    if actual != oid:
        raise IntegrityError(f"Stored object {oid} does not hash to its id; nothing was exported.",
                             hint="Run `runlock fsck` to find every damaged object.")
    return layout.Stream(size, oid, lambda: _Checked(store.objects.open(oid), oid))


class _Checked:
    """A reader that hashes what passes through and, once closed, refuses bytes that changed."""

    def __init__(self, f: BinaryIO, want: str) -> None:
        self._f, self._want, self._h = f, want, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        self._h.update(chunk)
        return chunk

    def __enter__(self) -> "_Checked":
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._f.close()
        if exc_type is None and "sha256:" + self._h.hexdigest() != self._want:
            raise IntegrityError(f"Stored object {self._want} changed while it was being exported; "
                                 "nothing was written.")


def _hex(oid: str) -> str:
    return oid.split(":", 1)[1]


def _run_record(conn: sa.Connection, run_id: str) -> dict:
    row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound("run", run_id)
    arts = conn.execute(sa.select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.name)).all()
    q = (sa.select(*[metrics.c[c] for c in METRIC_COLUMNS]).where(metrics.c.run_id == run_id)
         .order_by(metrics.c.key, metrics.c.rank, metrics.c.seq))
    return {"run": dict(row._mapping), "artifacts": [dict(a._mapping) for a in arts],
            "metric_columns": list(METRIC_COLUMNS), "metrics": [list(r) for r in conn.execute(q)]}


def _row_record(conn: sa.Connection, table: sa.Table, oid: str, namespace: str, key: str) -> dict:
    row = conn.execute(sa.select(table).where(table.c.id == oid)).first()
    if row is None:
        raise NotFound(key, oid)
    names = conn.execute(sa.select(refs).where(refs.c.namespace == namespace, refs.c.target == oid)
                         .order_by(refs.c.name, refs.c.version)).all()
    return {key: dict(row._mapping), "refs": [dict(r._mapping) for r in names]}


def _model_record(conn: sa.Connection, ref: str) -> dict:
    name, _, tag = ref.partition("@")
    row = conn.execute(sa.select(refs).where(refs.c.namespace == "model", refs.c.name == name,
                                             refs.c.version == int(tag[1:]))).first()
    if row is None:
        raise NotFound("model", f"model:{ref}")
    aliases = conn.execute(sa.select(registry.model_aliases.c.alias).where(
        registry.model_aliases.c.name == name, registry.model_aliases.c.version == int(tag[1:]))
        .order_by(registry.model_aliases.c.alias)).scalars().all()
    return {"ref": dict(row._mapping), "aliases": list(aliases)}


def _alias_histories(conn: sa.Connection, model_refs: list[str]) -> dict[str, dict]:
    """``NAME@ALIAS`` -> every move (who, when, why, from, to) of each alias that ever pointed at
    one of the model versions inside, oldest first: the whole history of that alias, not a part."""
    inside: dict[str, set[int]] = {}
    for m in model_refs:
        name, _, tag = m.partition("@")
        inside.setdefault(name, set()).add(int(tag[1:]))
    moves = registry.model_alias_moves
    out: dict[str, dict] = {}
    for name, versions in sorted(inside.items()):
        rows = conn.execute(sa.select(moves).where(moves.c.name == name)
                            .order_by(moves.c.alias, moves.c.audit_seq)).all()
        for alias in sorted({r.alias for r in rows if {r.from_version, r.to_version} & versions}):
            out[f"{name}@{alias}"] = {"name": name, "alias": alias, "moves": [
                {c: getattr(r, c) for c in ("audit_seq", "from_version", "to_version", "at", "actor", "reason")}
                for r in rows if r.alias == alias]}
    return out


def _targets(conn: sa.Connection, run_ids: list[str], snap_ids: list[str], split_ids: list[str],
             model_refs: list[str]) -> set[str]:
    """The audit targets of the entities inside: run:ID, ds:NAME@vN, split:NAME@vN, model:…"""
    out = {f"run:{r}" for r in run_ids} | {f"model:{m}" for m in model_refs}
    for namespace, ids in (("ds", snap_ids), ("split", split_ids)):
        for r in conn.execute(sa.select(refs.c.name, refs.c.version).where(
                refs.c.namespace == namespace, refs.c.target.in_(ids or [""]))):
            out.add(f"{namespace}:{r.name}@v{r.version}")
    return out


def _ids_in(data: bytes) -> set[str]:
    return {m.decode() for m in _ID.findall(data)}


def _objects(store: Store, files: dict[str, bytes], snap_ids: list[str], data: bool) -> tuple[set[str], set[str]]:
    """Every stored object the records name, followed through JSON objects; and, without data, the
    objects only a snapshot manifest names (left out)."""
    found: set[str] = set()
    omitted: set[str] = set()
    todo = sorted({i for b in files.values() for i in _ids_in(b)})
    while todo:
        oid = todo.pop()
        if oid in found or oid in omitted or not store.objects.has(oid):
            continue
        found.add(oid)
        named = _ids_in(_document(store, oid))
        if not data and oid in snap_ids:
            omitted |= {i for i in named if store.objects.has(i)} - found
            continue
        todo.extend(sorted(named - found))
    return found - omitted, omitted - found


def _document(store: Store, oid: str) -> bytes:
    with store.objects.open(oid) as f:
        head = f.read(1)
        if head not in (b"{", b"["):
            return b""
        data = head + f.read(DOCUMENT_LIMIT)
    return data if len(data) <= DOCUMENT_LIMIT else b""


def _lock(store: Store, run_id: str) -> dict:
    recipe = records.get(store, run_id).recipe_id
    return _json(store.objects.get_bytes(recipe)) if recipe and store.objects.has(recipe) else {}


def _commits(store: Store, run_ids: list[str]) -> set[str]:
    """The commits the runs' locks record."""
    out = set()
    for rid in run_ids:
        commit = ((_lock(store, rid).get("code") or {}).get("git") or {}).get("commit")
        if commit:
            out.add(commit)
    return out


def _json(data: bytes) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _git_bundle(store: Store, run_ids: list[str], commit: str, scratch: Path) -> layout.Stream:
    """A `git bundle` of ``commit`` from the repository one of the runs ran in, as a file in ``scratch``."""
    tried = []
    cwds = [records.get(store, rid).context.get("cwd") for rid in sorted(run_ids)]
    for cwd in [c for c in cwds if c] + [str(store.root / "code.git")]:
        if not Path(cwd).is_dir():
            continue
        tried.append(cwd)
        ref = f"refs/runlock/bundle-{commit}"
        if _git(cwd, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
            continue
        if _git(cwd, "update-ref", ref, commit).returncode != 0:
            continue
        path = scratch / f"{commit}.bundle"
        try:
            p = _git(cwd, "-c", "pack.threads=1", "bundle", "create", str(path), ref)
        finally:
            _git(cwd, "update-ref", "-d", ref)
        if p.returncode == 0:
            sha, size = digest_file(path)
            return layout.Stream(size, sha, lambda: open(path, "rb"))
    raise RunlockError(f"No repository holds commit {commit} (looked in {', '.join(tried) or 'no folder'}), "
                       "so the bundle cannot carry the code.",
                       hint="Run the export inside a clone that has the commit.")


def _git(cwd: str, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=600)
    except FileNotFoundError:
        raise RunlockError("git is not installed, and a bundle carries the code as a git bundle.",
                           hint="Install git.") from None


def _audit(store: Store, targets: set[str], files: dict[str, bytes]) -> list[int]:
    """Add every audit entry about ``targets`` with its inclusion proof; return their numbers."""
    with store.db.read() as conn:
        rows = [r for r in audit.iter_rows(conn) if r.target in targets]
    if not rows:
        return []
    last = max(r.seq for r in rows)
    signed = [c for c in audit.checkpoints(store) if c.signature]
    cp = signed[-1] if signed and signed[-1].tree_size >= last else audit.checkpoint(store)
    with store.db.read() as conn:
        leaves = [merkle.leaf_hash(audit.body_bytes(r)) for r in audit.iter_rows(conn, 0, cp.tree_size)]
    files[layout.CHECKPOINT] = layout.dumps(cp.to_dict())
    for r in rows:
        path = [h.hex() for h in merkle.inclusion_proof(leaves, r.seq - 1)]
        entry = auditlog.entry_from_row(r).to_dict()
        proof = audit.InclusionProof(entry, r.seq - 1, cp.tree_size, path, cp.to_dict())
        files[f"audit/entries/{r.seq:012d}.json"] = layout.dumps(proof.to_dict())
    return [r.seq for r in rows]


def _attestations(store: Store, files: dict[str, layout.Member], excluded: list[dict]) -> list[dict]:
    """Add, as it was signed, every attestation an audit entry inside names (``runlock attest``'s,
    and the one the production gate kept); return (seq, action, target, attestation id) of each
    entry. One the store does not hold (written by a runlock that kept none) is named excluded."""
    out, missing = [], set()
    for name in sorted(n for n in files if n.startswith("audit/entries/")):
        entry = json.loads(files[name])["entry"]
        oid = layout.attestation_of(entry)
        if oid is None:
            continue
        out.append({"seq": entry["seq"], "action": entry["action"], "target": entry["target"], "attestation": oid})
        if store.objects.has(oid):
            files[layout.attestation_member(oid)] = _object(store, oid)
        elif oid not in missing:
            missing.add(oid)
            excluded.append({"run": (entry.get("details") or {}).get("run"), "input": f"attestation:{oid}",
                             "reason": f"audit entry {entry['seq']} names it, but the store does not hold it "
                                       "(it was written only to a file)"})
    return out


def _excluded(store: Store, run_ids: list[str], graph: lineage.Graph) -> list[dict]:
    """Inputs a run's lock names that the lineage walk did not reach (so are not inside)."""
    out = []
    for rid in sorted(run_ids):
        for i in _lock(store, rid).get("inputs") or []:
            if i.get("node") not in graph.nodes:
                out.append({"run": rid, "input": i.get("node"),
                            "reason": "not in the lineage graph of the store it was exported from"})
    return out
